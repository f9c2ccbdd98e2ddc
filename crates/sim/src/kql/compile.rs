//! Names and types: the AST becomes a plan of stages over column indices,
//! and everything Kusto would refuse before running (an unknown table,
//! column or function, a comparison of a string with a number, an
//! aggregation outside `summarize`) is refused here with its message.
//!
//! Scalar functions: `ago`, `now`, `datetime(…)` literals, `todatetime`,
//! `totimespan`, `startofday`, `bin`/`floor`, `strcat`, `strcat_delim`,
//! `tostring`, `tolower`, `toupper`, `strlen`, `substring`, `tolong`,
//! `toint`, `todouble`/`toreal`, `tobool`, `hash(x [, mod])`, `isempty`,
//! `isnotempty`, `isnull`, `isnotnull`, `not`, `iff`/`iif`, `coalesce`,
//! `parse_json`/`todynamic`, `array_length`, `split`, `abs`, `round`.
//! Operators: `==`, `!=`, `=~`, `!~`, `<`, `<=`, `>`, `>=`, `in`, `!in`,
//! `in~`, `!in~`, `between`, `has`, `contains`, `startswith`, `endswith`,
//! `hasprefix`, `hassuffix` (each with `!` and `_cs`), `and`, `or`,
//! `+ - * / %`, member access (`.name`, `[i]`) on dynamic values.
//!
//! Size: long because each operator and scalar function is checked here with
//! the error Kusto gives for it; split by operator, the shared typing rules
//! would be repeated.

use super::parse::{BinOp, Expr, Op, OpKind, Query};
use super::value::{TICKS_PER_DAY, Type, Value};
use super::{Column, Context, KqlError, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Ago,
    Now,
    StrCat,
    StrCatDelim,
    ToString,
    ToLower,
    ToUpper,
    ToLong,
    ToInt,
    ToReal,
    ToBool,
    ToDateTime,
    ToTimeSpan,
    Hash,
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
    Not,
    Iff,
    StrLen,
    Substring,
    Coalesce,
    Bin,
    StartOfDay,
    ParseJson,
    ArrayLength,
    Split,
    Abs,
    Round,
}

#[derive(Debug, Clone)]
pub enum CExpr {
    Col(usize),
    Lit(Value<'static>),
    Call(Func, Vec<CExpr>),
    Bin(BinOp, Box<CExpr>, Box<CExpr>),
    Neg(Box<CExpr>),
    In {
        expr: Box<CExpr>,
        list: Vec<CExpr>,
        neg: bool,
        ci: bool,
    },
    Between {
        expr: Box<CExpr>,
        lo: Box<CExpr>,
        hi: Box<CExpr>,
        neg: bool,
    },
    Member(Box<CExpr>, String),
    Index(Box<CExpr>, Box<CExpr>),
}

impl CExpr {
    /// Every column index the expression reads.
    fn columns(&self, out: &mut Vec<usize>) {
        match self {
            CExpr::Col(i) => out.push(*i),
            CExpr::Lit(_) => {}
            CExpr::Call(_, a) => a.iter().for_each(|e| e.columns(out)),
            CExpr::Bin(_, l, r) | CExpr::Index(l, r) => {
                l.columns(out);
                r.columns(out);
            }
            CExpr::Neg(e) | CExpr::Member(e, _) => e.columns(out),
            CExpr::In { expr, list, .. } => {
                expr.columns(out);
                list.iter().for_each(|e| e.columns(out));
            }
            CExpr::Between { expr, lo, hi, .. } => {
                expr.columns(out);
                lo.columns(out);
                hi.columns(out);
            }
        }
    }

    /// The expression with each column replaced by `by(index)`.
    fn substitute(&self, by: &dyn Fn(usize) -> CExpr) -> CExpr {
        let s = |e: &CExpr| Box::new(e.substitute(by));
        match self {
            CExpr::Col(i) => by(*i),
            CExpr::Lit(v) => CExpr::Lit(v.clone()),
            CExpr::Call(f, a) => CExpr::Call(*f, a.iter().map(|e| e.substitute(by)).collect()),
            CExpr::Bin(op, l, r) => CExpr::Bin(*op, s(l), s(r)),
            CExpr::Index(l, r) => CExpr::Index(s(l), s(r)),
            CExpr::Neg(e) => CExpr::Neg(s(e)),
            CExpr::Member(e, n) => CExpr::Member(s(e), n.clone()),
            CExpr::In {
                expr,
                list,
                neg,
                ci,
            } => CExpr::In {
                expr: s(expr),
                list: list.iter().map(|e| e.substitute(by)).collect(),
                neg: *neg,
                ci: *ci,
            },
            CExpr::Between { expr, lo, hi, neg } => CExpr::Between {
                expr: s(expr),
                lo: s(lo),
                hi: s(hi),
                neg: *neg,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    Count,
    CountIf,
    DCount,
    MakeSet,
    MakeList,
    Min,
    Max,
    Sum,
    Avg,
    Any,
    ArgMax,
    ArgMin,
}

#[derive(Debug, Clone)]
pub struct Agg {
    pub kind: AggKind,
    /// The aggregated expression (the one maximised for arg_max).
    pub arg: Option<CExpr>,
    /// What arg_max/arg_min return.
    pub ret: Vec<CExpr>,
    /// make_set/make_list's maximum.
    pub max: usize,
}

#[derive(Debug, Clone)]
pub struct SortKey {
    pub expr: CExpr,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Debug, Clone)]
pub enum Stage {
    Filter(CExpr),
    /// A new row from expressions over the old one (project, extend, …).
    Map(Vec<CExpr>),
    Take(usize),
    Summarize {
        by: Vec<CExpr>,
        aggs: Vec<Agg>,
    },
    Sort {
        keys: Vec<SortKey>,
        limit: Option<usize>,
    },
    Distinct(Vec<CExpr>),
    Count,
}

impl Stage {
    pub fn is_blocking(&self) -> bool {
        matches!(
            self,
            Stage::Summarize { .. } | Stage::Sort { .. } | Stage::Distinct(_) | Stage::Count
        )
    }
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub stage: Stage,
    /// Columns of the rows the stage reads.
    pub width_in: usize,
}

pub struct Plan<'p, 'a> {
    pub table: &'p dyn Table<'a>,
    pub stages: Vec<Planned>,
    pub columns: Vec<Column>,
}

const AGGREGATIONS: &[&str] = &[
    "count",
    "countif",
    "dcount",
    "make_set",
    "makeset",
    "make_list",
    "makelist",
    "min",
    "max",
    "sum",
    "avg",
    "any",
    "take_any",
    "arg_max",
    "arg_min",
];

/// Which table a query reads, Kusto's message for an unknown one.
pub fn compile<'p, 'a>(
    q: &Query,
    tables: &[&'p dyn Table<'a>],
    ctx: &Context,
) -> Result<Plan<'p, 'a>, KqlError> {
    let Some(&table) = tables.iter().find(|t| t.name() == q.table) else {
        let msg = format!(
            "Failed to resolve table or column expression named '{}'",
            q.table
        );
        return Err(match q.ops.first() {
            Some(op) => KqlError::semantic(&op.name, msg),
            None => KqlError::semantic_bare(msg),
        });
    };
    let mut c = Compiler {
        ctx,
        cols: table.columns().to_vec(),
        stages: Vec::new(),
    };
    if let Some((from, to)) = ctx.window {
        if let Some(i) = c
            .cols
            .iter()
            .position(|col| col.name == "Timestamp" && col.ty == Type::DateTime)
        {
            c.push(Stage::Filter(CExpr::Between {
                expr: Box::new(CExpr::Col(i)),
                lo: Box::new(CExpr::Lit(Value::DateTime(from))),
                hi: Box::new(CExpr::Lit(Value::DateTime(to))),
                neg: false,
            }));
        }
    }
    for op in &q.ops {
        c.op(op)?;
    }
    let mut stages = c.stages;
    push_down_filters(&mut stages);
    fold_take_into_sort(&mut stages);
    Ok(Plan {
        table,
        stages,
        columns: c.cols,
    })
}

struct Compiler<'c> {
    ctx: &'c Context,
    cols: Vec<Column>,
    stages: Vec<Planned>,
}

/// Output names: a column keeps its name, `a.b` becomes `a_b`, anything
/// else `Column1`, `Column2`….
fn default_name(e: &Expr, n: &mut usize) -> String {
    match e {
        Expr::Col(name) => name.clone(),
        Expr::Member(inner, m) => match &**inner {
            Expr::Col(b) => format!("{b}_{m}"),
            _ => {
                *n += 1;
                format!("Column{n}")
            }
        },
        _ => {
            *n += 1;
            format!("Column{n}")
        }
    }
}

/// Kusto makes a repeated output name unique with a number (`DeviceId1`).
fn unique(cols: &[Column], name: &str) -> String {
    if !cols.iter().any(|c| c.name == name) {
        return name.to_string();
    }
    (1..)
        .map(|i| format!("{name}{i}"))
        .find(|n| !cols.iter().any(|c| &c.name == n))
        .unwrap_or_else(|| name.to_string())
}

impl Compiler<'_> {
    fn push(&mut self, stage: Stage) {
        self.stages.push(Planned {
            stage,
            width_in: self.cols.len(),
        });
    }

    fn lookup(&self, op: &str, name: &str) -> Result<usize, KqlError> {
        self.cols
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| {
                KqlError::semantic(
                    op,
                    format!("Failed to resolve scalar expression named '{name}'"),
                )
            })
    }

    fn op(&mut self, op: &Op) -> Result<(), KqlError> {
        let o = op.name.as_str();
        match &op.kind {
            OpKind::Where(e) => {
                let (ce, ty) = self.expr(o, e)?;
                if !matches!(ty, Type::Bool | Type::Dynamic) {
                    return Err(KqlError::semantic(
                        o,
                        format!(
                            "The filter expression must be of type bool, not {}",
                            ty.kql_name()
                        ),
                    ));
                }
                self.push(Stage::Filter(ce));
            }
            OpKind::Project(list) => {
                let mut out: Vec<Column> = Vec::new();
                let mut exprs = Vec::new();
                let mut n = 0;
                for (name, e) in list {
                    let (ce, ty) = self.expr(o, e)?;
                    let name = match name {
                        Some(n) => n.clone(),
                        None => default_name(e, &mut n),
                    };
                    if out.iter().any(|c| c.name == name) {
                        return Err(KqlError::semantic(
                            o,
                            format!("A column named '{name}' is projected more than once"),
                        ));
                    }
                    out.push(Column { name, ty });
                    exprs.push(ce);
                }
                self.push(Stage::Map(exprs));
                self.cols = out;
            }
            OpKind::Extend(list) => {
                let mut out = self.cols.clone();
                let mut exprs: Vec<CExpr> = (0..self.cols.len()).map(CExpr::Col).collect();
                let mut n = 0;
                for (name, e) in list {
                    let (ce, ty) = self.expr(o, e)?;
                    let name = match name {
                        Some(n) => n.clone(),
                        None => default_name(e, &mut n),
                    };
                    match out.iter().position(|c| c.name == name) {
                        Some(i) => {
                            out[i].ty = ty;
                            exprs[i] = ce;
                        }
                        None => {
                            out.push(Column { name, ty });
                            exprs.push(ce);
                        }
                    }
                }
                self.push(Stage::Map(exprs));
                self.cols = out;
            }
            OpKind::ProjectAway(names) | OpKind::ProjectKeep(names) => {
                let mut picked = Vec::new();
                for n in names {
                    picked.push(self.lookup(o, n)?);
                }
                let away = matches!(op.kind, OpKind::ProjectAway(_));
                let keep: Vec<usize> = (0..self.cols.len())
                    .filter(|i| picked.contains(i) != away)
                    .collect();
                let cols = keep.iter().map(|&i| self.cols[i].clone()).collect();
                self.push(Stage::Map(keep.into_iter().map(CExpr::Col).collect()));
                self.cols = cols;
            }
            OpKind::ProjectRename(pairs) => {
                let mut cols = self.cols.clone();
                for (new, old) in pairs {
                    let i = self.lookup(o, old)?;
                    cols[i].name = new.clone();
                }
                // A rename moves no data: no stage.
                self.cols = cols;
            }
            OpKind::Summarize { aggs, by } => self.summarize(o, aggs, by)?,
            OpKind::Sort(keys) => {
                let keys = keys
                    .iter()
                    .map(|k| {
                        Ok(SortKey {
                            expr: self.expr(o, &k.expr)?.0,
                            desc: k.desc,
                            nulls_first: k.nulls_first,
                        })
                    })
                    .collect::<Result<Vec<_>, KqlError>>()?;
                self.push(Stage::Sort { keys, limit: None });
            }
            OpKind::Take(n) => {
                let n = self.constant_count(o, n)?;
                self.push(Stage::Take(n));
            }
            OpKind::Top { n, key } => {
                let n = self.constant_count(o, n)?;
                let expr = self.expr(o, &key.expr)?.0;
                self.push(Stage::Sort {
                    keys: vec![SortKey {
                        expr,
                        desc: key.desc,
                        nulls_first: key.nulls_first,
                    }],
                    limit: Some(n),
                });
            }
            OpKind::Count => {
                self.push(Stage::Count);
                self.cols = vec![Column::new("Count", Type::Long)];
            }
            OpKind::Distinct(list) => {
                let (exprs, cols) = if list.is_empty() {
                    (
                        (0..self.cols.len()).map(CExpr::Col).collect(),
                        self.cols.clone(),
                    )
                } else {
                    let mut exprs = Vec::new();
                    let mut cols: Vec<Column> = Vec::new();
                    let mut n = 0;
                    for e in list {
                        let (ce, ty) = self.expr(o, e)?;
                        let name = unique(&cols, &default_name(e, &mut n));
                        cols.push(Column { name, ty });
                        exprs.push(ce);
                    }
                    (exprs, cols)
                };
                self.push(Stage::Distinct(exprs));
                self.cols = cols;
            }
        }
        Ok(())
    }

    fn constant_count(&self, o: &str, e: &Expr) -> Result<usize, KqlError> {
        let (ce, _) = self.expr(o, e)?;
        let empty: Vec<Value> = Vec::new();
        let v = super::eval::eval(&ce, &empty, self.ctx);
        match v.as_i64() {
            Some(n) if n >= 0 && matches!(v, Value::Int(_) | Value::Long(_)) => Ok(n as usize),
            _ => Err(KqlError::semantic(
                o,
                "The number of rows must be a non-negative constant of type long",
            )),
        }
    }

    fn summarize(
        &mut self,
        o: &str,
        aggs: &[(Option<String>, Expr)],
        by: &[(Option<String>, Expr)],
    ) -> Result<(), KqlError> {
        let mut out: Vec<Column> = Vec::new();
        let mut by_c = Vec::new();
        let mut n = 0;
        for (name, e) in by {
            let (ce, ty) = self.expr(o, e)?;
            let name = match name {
                Some(n) => n.clone(),
                None => match e {
                    // `bin(Timestamp, 1d)` keeps the column's name.
                    Expr::Call(_, args) if matches!(args.first(), Some(Expr::Col(_))) => {
                        default_name(&args[0], &mut n)
                    }
                    _ => default_name(e, &mut n),
                },
            };
            out.push(Column {
                name: unique(&out, &name),
                ty,
            });
            by_c.push(ce);
        }
        let mut agg_c = Vec::new();
        for (name, e) in aggs {
            let Expr::Call(f, args) = e else {
                return Err(KqlError::semantic(
                    o,
                    "Each expression of summarize must be a call of an aggregation function (the simulated tenant does not run scalar expressions around aggregations)",
                ));
            };
            let fl = f.as_str();
            if !AGGREGATIONS.contains(&fl) {
                return Err(if FUNCTIONS.contains(&fl) {
                    KqlError::semantic(o, format!("'{f}' is not an aggregation function"))
                } else {
                    KqlError::semantic(o, format!("Unknown function: '{f}'"))
                });
            }
            let nargs = |lo: usize, hi: usize| -> Result<(), KqlError> {
                if args.len() < lo || args.len() > hi {
                    Err(KqlError::semantic(
                        o,
                        format!(
                            "The function '{f}' expects {} argument(s), not {}",
                            if lo == hi {
                                lo.to_string()
                            } else {
                                format!("{lo} to {hi}")
                            },
                            args.len()
                        ),
                    ))
                } else {
                    Ok(())
                }
            };
            let first_name = |prefix: &str| match args.first() {
                Some(Expr::Col(c)) => format!("{prefix}_{c}"),
                Some(Expr::Member(inner, m)) => match &**inner {
                    Expr::Col(c) => format!("{prefix}_{c}_{m}"),
                    _ => format!("{prefix}_"),
                },
                _ => format!("{prefix}_"),
            };
            let arg = |c: &Self, i: usize| -> Result<(CExpr, Type), KqlError> {
                match &args[i] {
                    Expr::Star => Err(KqlError::semantic(
                        o,
                        format!("The function '{f}' does not take '*' here"),
                    )),
                    e => c.expr(o, e),
                }
            };
            let (kind, default) = match fl {
                "count" => {
                    // `count()`; Kusto also takes `count(*)`.
                    if !(args.is_empty() || matches!(args.as_slice(), [Expr::Star])) {
                        nargs(0, 0)?;
                    }
                    (AggKind::Count, "count_".to_string())
                }
                "countif" => {
                    nargs(1, 1)?;
                    (AggKind::CountIf, "countif_".to_string())
                }
                "dcount" => {
                    nargs(1, 2)?;
                    (AggKind::DCount, first_name("dcount"))
                }
                "make_set" | "makeset" => {
                    nargs(1, 2)?;
                    (AggKind::MakeSet, first_name("set"))
                }
                "make_list" | "makelist" => {
                    nargs(1, 2)?;
                    (AggKind::MakeList, first_name("list"))
                }
                "min" => {
                    nargs(1, 1)?;
                    (AggKind::Min, first_name("min"))
                }
                "max" => {
                    nargs(1, 1)?;
                    (AggKind::Max, first_name("max"))
                }
                "sum" => {
                    nargs(1, 1)?;
                    (AggKind::Sum, first_name("sum"))
                }
                "avg" => {
                    nargs(1, 1)?;
                    (AggKind::Avg, first_name("avg"))
                }
                "any" | "take_any" => {
                    nargs(1, 1)?;
                    (AggKind::Any, first_name("any"))
                }
                _ => {
                    if args.len() < 2 {
                        nargs(2, usize::MAX)?;
                    }
                    (
                        if fl == "arg_max" {
                            AggKind::ArgMax
                        } else {
                            AggKind::ArgMin
                        },
                        String::new(),
                    )
                }
            };
            match kind {
                AggKind::ArgMax | AggKind::ArgMin => {
                    let (target, tty) = arg(self, 0)?;
                    let tname = match &args[0] {
                        Expr::Col(c) => c.clone(),
                        _ => {
                            n += 1;
                            format!(
                                "{}_Column{n}",
                                if kind == AggKind::ArgMax {
                                    "max"
                                } else {
                                    "min"
                                }
                            )
                        }
                    };
                    let tname = name.clone().unwrap_or(tname);
                    out.push(Column {
                        name: unique(&out, &tname),
                        ty: tty,
                    });
                    let mut ret = Vec::new();
                    for a in &args[1..] {
                        if let Expr::Star = a {
                            // Every input column not already in the output.
                            for (i, col) in self.cols.iter().enumerate() {
                                if out.iter().any(|c| c.name == col.name) {
                                    continue;
                                }
                                out.push(col.clone());
                                ret.push(CExpr::Col(i));
                            }
                        } else {
                            let (ce, ty) = self.expr(o, a)?;
                            let nm = default_name(a, &mut n);
                            out.push(Column {
                                name: unique(&out, &nm),
                                ty,
                            });
                            ret.push(ce);
                        }
                    }
                    agg_c.push(Agg {
                        kind,
                        arg: Some(target),
                        ret,
                        max: 0,
                    });
                }
                _ => {
                    let (a, aty) = match (kind, args.first()) {
                        (AggKind::Count, _) => (None, Type::Long),
                        (_, Some(_)) => {
                            let (ce, t) = arg(self, 0)?;
                            (Some(ce), t)
                        }
                        (_, None) => (None, Type::Long),
                    };
                    if kind == AggKind::CountIf && !matches!(aty, Type::Bool | Type::Dynamic) {
                        return Err(KqlError::semantic(o, "countif() expects a bool predicate"));
                    }
                    let max = match kind {
                        AggKind::MakeSet | AggKind::MakeList if args.len() == 2 => {
                            self.constant_count(o, &args[1])?
                        }
                        _ => 1_048_576,
                    };
                    let ty = match kind {
                        AggKind::Count | AggKind::CountIf | AggKind::DCount => Type::Long,
                        AggKind::MakeSet | AggKind::MakeList => Type::Dynamic,
                        AggKind::Avg => Type::Real,
                        AggKind::Sum if aty == Type::Int => Type::Long,
                        _ => aty,
                    };
                    if matches!(kind, AggKind::Sum | AggKind::Avg)
                        && !(aty.is_numeric() || matches!(aty, Type::TimeSpan | Type::Dynamic))
                    {
                        return Err(KqlError::semantic(
                            o,
                            format!("{f}(): argument of type {} is not numeric", aty.kql_name()),
                        ));
                    }
                    let nm = name.clone().unwrap_or(default);
                    out.push(Column {
                        name: unique(&out, &nm),
                        ty,
                    });
                    agg_c.push(Agg {
                        kind,
                        arg: a,
                        ret: Vec::new(),
                        max,
                    });
                }
            }
        }
        self.push(Stage::Summarize {
            by: by_c,
            aggs: agg_c,
        });
        self.cols = out;
        Ok(())
    }

    /// An expression over the current columns, with its type.
    fn expr(&self, o: &str, e: &Expr) -> Result<(CExpr, Type), KqlError> {
        Ok(match e {
            Expr::Col(name) => {
                let i = self.lookup(o, name)?;
                (CExpr::Col(i), self.cols[i].ty)
            }
            Expr::Lit(v) => (CExpr::Lit(v.clone()), lit_type(v)),
            Expr::Star => {
                return Err(KqlError::semantic(o, "'*' is not a value here"));
            }
            Expr::Neg(inner) => {
                let (ce, ty) = self.expr(o, inner)?;
                if !(ty.is_numeric() || matches!(ty, Type::TimeSpan | Type::Dynamic)) {
                    return Err(KqlError::semantic(
                        o,
                        format!("Unary '-' is not defined for type {}", ty.kql_name()),
                    ));
                }
                (CExpr::Neg(Box::new(ce)), ty)
            }
            Expr::Member(inner, name) => {
                let (ce, ty) = self.expr(o, inner)?;
                check_dynamic(o, ty)?;
                (CExpr::Member(Box::new(ce), name.clone()), Type::Dynamic)
            }
            Expr::Index(inner, idx) => {
                let (ce, ty) = self.expr(o, inner)?;
                check_dynamic(o, ty)?;
                let (ci, _) = self.expr(o, idx)?;
                (CExpr::Index(Box::new(ce), Box::new(ci)), Type::Dynamic)
            }
            Expr::In {
                expr,
                list,
                neg,
                ci,
            } => {
                let (ce, ty) = self.expr(o, expr)?;
                let mut items = Vec::new();
                for item in list {
                    let (c, t) = self.expr(o, item)?;
                    check_comparable(o, ty, t)?;
                    items.push(c);
                }
                (
                    CExpr::In {
                        expr: Box::new(ce),
                        list: items,
                        neg: *neg,
                        ci: *ci,
                    },
                    Type::Bool,
                )
            }
            Expr::Between { expr, lo, hi, neg } => {
                let (ce, ty) = self.expr(o, expr)?;
                let (l, lt) = self.expr(o, lo)?;
                let (h, ht) = self.expr(o, hi)?;
                check_comparable(o, ty, lt)?;
                check_comparable(o, ty, ht)?;
                (
                    CExpr::Between {
                        expr: Box::new(ce),
                        lo: Box::new(l),
                        hi: Box::new(h),
                        neg: *neg,
                    },
                    Type::Bool,
                )
            }
            Expr::Bin(op, l, r) => {
                let (lc, lt) = self.expr(o, l)?;
                let (rc, rt) = self.expr(o, r)?;
                let ty = bin_type(o, *op, lt, rt)?;
                (CExpr::Bin(*op, Box::new(lc), Box::new(rc)), ty)
            }
            Expr::Call(name, args) => self.call(o, name, args)?,
        })
    }

    fn call(&self, o: &str, name: &str, args: &[Expr]) -> Result<(CExpr, Type), KqlError> {
        let n = name;
        if AGGREGATIONS.contains(&n) && !FUNCTIONS.contains(&n) {
            return Err(KqlError::semantic(
                o,
                format!("Function '{n}' cannot be invoked in current context"),
            ));
        }
        let (f, lo, hi) = match n {
            "ago" => (Func::Ago, 1, 1),
            "now" => (Func::Now, 0, 1),
            "strcat" => (Func::StrCat, 1, 64),
            "strcat_delim" => (Func::StrCatDelim, 2, 64),
            "tostring" => (Func::ToString, 1, 1),
            "tolower" => (Func::ToLower, 1, 1),
            "toupper" => (Func::ToUpper, 1, 1),
            "tolong" => (Func::ToLong, 1, 1),
            "toint" => (Func::ToInt, 1, 1),
            "todouble" | "toreal" => (Func::ToReal, 1, 1),
            "tobool" | "toboolean" => (Func::ToBool, 1, 1),
            "todatetime" => (Func::ToDateTime, 1, 1),
            "totimespan" => (Func::ToTimeSpan, 1, 1),
            "hash" => (Func::Hash, 1, 2),
            "isempty" => (Func::IsEmpty, 1, 1),
            "isnotempty" => (Func::IsNotEmpty, 1, 1),
            "isnull" => (Func::IsNull, 1, 1),
            "isnotnull" => (Func::IsNotNull, 1, 1),
            "not" => (Func::Not, 1, 1),
            "iff" | "iif" => (Func::Iff, 3, 3),
            "strlen" => (Func::StrLen, 1, 1),
            "substring" => (Func::Substring, 2, 3),
            "coalesce" => (Func::Coalesce, 1, 64),
            "bin" | "floor" => (Func::Bin, 2, 2),
            "startofday" => (Func::StartOfDay, 1, 1),
            "parse_json" | "todynamic" => (Func::ParseJson, 1, 1),
            "array_length" => (Func::ArrayLength, 1, 1),
            "split" => (Func::Split, 2, 2),
            "abs" => (Func::Abs, 1, 1),
            "round" => (Func::Round, 1, 2),
            _ => {
                return Err(KqlError::semantic(o, format!("Unknown function: '{n}'")));
            }
        };
        if args.len() < lo || args.len() > hi {
            return Err(KqlError::semantic(
                o,
                format!(
                    "The function '{n}' expects {} argument(s), not {}",
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo} to {hi}")
                    },
                    args.len()
                ),
            ));
        }
        let mut cs = Vec::new();
        let mut ts = Vec::new();
        for a in args {
            let (c, t) = self.expr(o, a)?;
            cs.push(c);
            ts.push(t);
        }
        let want = |i: usize, ok: &[Type]| -> Result<(), KqlError> {
            if ts[i] == Type::Dynamic || ok.contains(&ts[i]) {
                Ok(())
            } else {
                Err(KqlError::semantic(
                    o,
                    format!(
                        "The function '{n}' does not take an argument of type {} (argument {})",
                        ts[i].kql_name(),
                        i + 1
                    ),
                ))
            }
        };
        let ty = match f {
            Func::Ago => {
                want(0, &[Type::TimeSpan])?;
                Type::DateTime
            }
            Func::Now => {
                if !ts.is_empty() {
                    want(0, &[Type::TimeSpan])?;
                }
                Type::DateTime
            }
            Func::StrCat | Func::StrCatDelim | Func::ToString | Func::Substring => Type::String,
            Func::ToLower | Func::ToUpper => {
                want(0, &[Type::String])?;
                Type::String
            }
            Func::ToLong | Func::StrLen | Func::ArrayLength => Type::Long,
            Func::Hash => {
                if ts.len() == 2 {
                    want(1, &[Type::Int, Type::Long])?;
                }
                Type::Long
            }
            Func::ToInt => Type::Int,
            Func::ToReal => Type::Real,
            Func::ToBool | Func::IsEmpty | Func::IsNotEmpty | Func::IsNull | Func::IsNotNull => {
                Type::Bool
            }
            Func::Not => {
                want(0, &[Type::Bool])?;
                Type::Bool
            }
            Func::ToDateTime | Func::StartOfDay => Type::DateTime,
            Func::ToTimeSpan => Type::TimeSpan,
            Func::Iff => {
                want(0, &[Type::Bool])?;
                if ts[1] != ts[2] && !(ts[1].is_numeric() && ts[2].is_numeric()) {
                    return Err(KqlError::semantic(
                        o,
                        format!(
                            "iff(): the two results have different types ({} and {})",
                            ts[1].kql_name(),
                            ts[2].kql_name()
                        ),
                    ));
                }
                ts[1]
            }
            Func::Coalesce => ts[0],
            Func::Bin => {
                want(
                    0,
                    &[
                        Type::Int,
                        Type::Long,
                        Type::Real,
                        Type::DateTime,
                        Type::TimeSpan,
                    ],
                )?;
                ts[0]
            }
            Func::ParseJson | Func::Split => Type::Dynamic,
            Func::Abs => ts[0],
            Func::Round => Type::Real,
        };
        Ok((CExpr::Call(f, cs), ty))
    }
}

/// Scalar function names (for "not an aggregation" and context messages).
const FUNCTIONS: &[&str] = &[
    "ago",
    "now",
    "strcat",
    "strcat_delim",
    "tostring",
    "tolower",
    "toupper",
    "tolong",
    "toint",
    "todouble",
    "toreal",
    "tobool",
    "toboolean",
    "todatetime",
    "totimespan",
    "hash",
    "isempty",
    "isnotempty",
    "isnull",
    "isnotnull",
    "not",
    "iff",
    "iif",
    "strlen",
    "substring",
    "coalesce",
    "bin",
    "floor",
    "startofday",
    "parse_json",
    "todynamic",
    "array_length",
    "split",
    "abs",
    "round",
];

fn lit_type(v: &Value) -> Type {
    match v {
        Value::Null | Value::Dynamic(_) => Type::Dynamic,
        Value::Bool(_) => Type::Bool,
        Value::Int(_) => Type::Int,
        Value::Long(_) => Type::Long,
        Value::Real(_) => Type::Real,
        Value::DateTime(_) => Type::DateTime,
        Value::TimeSpan(_) => Type::TimeSpan,
        Value::Str(_) => Type::String,
    }
}

/// Member access and indexing read dynamic values; a string column holding
/// JSON (like `LoggedOnUsers`) is read as JSON too.
fn check_dynamic(o: &str, ty: Type) -> Result<(), KqlError> {
    if matches!(ty, Type::Dynamic | Type::String) {
        Ok(())
    } else {
        Err(KqlError::semantic(
            o,
            format!("Member access needs a dynamic value, not {}", ty.kql_name()),
        ))
    }
}

fn comparable(a: Type, b: Type) -> bool {
    a == b || a == Type::Dynamic || b == Type::Dynamic || (a.is_numeric() && b.is_numeric())
}

fn check_comparable(o: &str, a: Type, b: Type) -> Result<(), KqlError> {
    if comparable(a, b) {
        Ok(())
    } else {
        Err(KqlError::semantic(
            o,
            format!(
                "Cannot compare values of types {} and {}. Try adding explicit casts",
                a.kql_name(),
                b.kql_name()
            ),
        ))
    }
}

fn numeric_result(a: Type, b: Type) -> Type {
    if a == Type::Dynamic || b == Type::Dynamic {
        Type::Dynamic
    } else if a == Type::Real || b == Type::Real {
        Type::Real
    } else if a == Type::Long || b == Type::Long {
        Type::Long
    } else {
        Type::Int
    }
}

fn bin_type(o: &str, op: BinOp, l: Type, r: Type) -> Result<Type, KqlError> {
    use Type::*;
    let bad = || {
        KqlError::semantic(
            o,
            format!(
                "The operator '{}' is not defined for types {} and {}",
                op_text(op),
                l.kql_name(),
                r.kql_name()
            ),
        )
    };
    Ok(match op {
        BinOp::Or | BinOp::And => {
            if !matches!(l, Bool | Dynamic) || !matches!(r, Bool | Dynamic) {
                return Err(bad());
            }
            Bool
        }
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            check_comparable(o, l, r)?;
            Bool
        }
        BinOp::EqCi | BinOp::NeCi => {
            if !matches!(l, String | Dynamic) || !matches!(r, String | Dynamic) {
                return Err(bad());
            }
            Bool
        }
        BinOp::Str { .. } => Bool,
        BinOp::Add => match (l, r) {
            (DateTime, TimeSpan) | (TimeSpan, DateTime) => DateTime,
            (TimeSpan, TimeSpan) => TimeSpan,
            _ if (l.is_numeric() || l == Dynamic) && (r.is_numeric() || r == Dynamic) => {
                numeric_result(l, r)
            }
            _ => return Err(bad()),
        },
        BinOp::Sub => match (l, r) {
            (DateTime, DateTime) => TimeSpan,
            (DateTime, TimeSpan) => DateTime,
            (TimeSpan, TimeSpan) => TimeSpan,
            _ if (l.is_numeric() || l == Dynamic) && (r.is_numeric() || r == Dynamic) => {
                numeric_result(l, r)
            }
            _ => return Err(bad()),
        },
        BinOp::Mul => match (l, r) {
            (TimeSpan, n) | (n, TimeSpan) if n.is_numeric() => TimeSpan,
            _ if (l.is_numeric() || l == Dynamic) && (r.is_numeric() || r == Dynamic) => {
                numeric_result(l, r)
            }
            _ => return Err(bad()),
        },
        BinOp::Div => match (l, r) {
            (TimeSpan, TimeSpan) => Real,
            (TimeSpan, n) if n.is_numeric() => TimeSpan,
            _ if (l.is_numeric() || l == Dynamic) && (r.is_numeric() || r == Dynamic) => {
                numeric_result(l, r)
            }
            _ => return Err(bad()),
        },
        BinOp::Mod => {
            if (l.is_numeric() || l == Dynamic) && (r.is_numeric() || r == Dynamic) {
                numeric_result(l, r)
            } else {
                return Err(bad());
            }
        }
    })
}

fn op_text(op: BinOp) -> &'static str {
    match op {
        BinOp::Or => "or",
        BinOp::And => "and",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::EqCi => "=~",
        BinOp::NeCi => "!~",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Str { .. } => "string operator",
    }
}

/// Moves each filter ahead of the projection or grouping before it, when
/// it can (Kusto's optimizer does the same), so partition filters run on
/// the table's rows rather than on every group.
fn push_down_filters(stages: &mut [Planned]) {
    loop {
        let mut moved = false;
        for i in 0..stages.len().saturating_sub(1) {
            let Stage::Filter(f) = &stages[i + 1].stage else {
                continue;
            };
            let rewritten = match &stages[i].stage {
                Stage::Map(exprs) => Some(f.substitute(&|c| exprs[c].clone())),
                Stage::Summarize { by, .. } => {
                    let mut used = Vec::new();
                    f.columns(&mut used);
                    let plain = !used.is_empty()
                        && used
                            .iter()
                            .all(|&c| c < by.len() && matches!(by[c], CExpr::Col(_)));
                    plain.then(|| f.substitute(&|c| by[c].clone()))
                }
                _ => None,
            };
            if let Some(nf) = rewritten {
                let width = stages[i].width_in;
                let upper = std::mem::replace(
                    &mut stages[i],
                    Planned {
                        stage: Stage::Filter(nf),
                        width_in: width,
                    },
                );
                stages[i + 1] = upper;
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

/// `order by … | take n` is `top n by …`: the sort keeps n rows.
fn fold_take_into_sort(stages: &mut Vec<Planned>) {
    let mut i = 0;
    while i + 1 < stages.len() {
        if let (Stage::Sort { limit, .. }, Stage::Take(n)) =
            (&stages[i].stage, &stages[i + 1].stage)
        {
            let n = limit.map_or(*n, |l| l.min(*n));
            if let Stage::Sort { limit, .. } = &mut stages[i].stage {
                *limit = Some(n);
            }
            stages.remove(i + 1);
            continue;
        }
        i += 1;
    }
}

/// Ticks of `bin()` for a datetime rounded down to `span`.
pub fn bin_ticks(t: i64, span: i64) -> i64 {
    if span <= 0 {
        return t;
    }
    t.div_euclid(span) * span
}

/// Start of the UTC day.
pub fn start_of_day(t: i64) -> i64 {
    bin_ticks(t, TICKS_PER_DAY)
}
