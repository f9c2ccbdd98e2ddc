//! Running a plan: rows stream from the table through filters,
//! projections and `take` until a blocking operator (summarize, sort,
//! distinct, count) keeps its state; its result streams into the next
//! stages.
//!
//! Size: long because each streaming and blocking operator has its evaluator
//! here, beside the row format they share.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::compile::{
    Agg, AggKind, CExpr, Func, Plan, Planned, SortKey, Stage, bin_ticks, start_of_day,
};
use super::hash::{kusto_hash, xxh64};
use super::parse::{BinOp, StrOp};
use super::value::{TICKS_PER_SEC, Value, compare, equals, parse_datetime, sort_cmp};
use super::{Context, Output, RowAccess};

pub fn execute<'a>(plan: &Plan<'_, 'a>, ctx: &Context) -> Output<'a> {
    // Segments: streaming stages, then at most one blocking stage.
    let mut segments: Vec<(&[Planned], Option<&Planned>)> = Vec::new();
    let mut start = 0;
    for (i, p) in plan.stages.iter().enumerate() {
        if p.stage.is_blocking() {
            segments.push((&plan.stages[start..i], Some(p)));
            start = i + 1;
        }
    }
    if start < plan.stages.len() || segments.is_empty() {
        segments.push((&plan.stages[start..], None));
    }
    let mut work: u64 = 0;
    let mut input: Option<Vec<Vec<Value<'a>>>> = None;
    let mut truncated = false;
    let final_width = plan.columns.len();
    for (streaming, blocker) in segments {
        let mut sink = match blocker.map(|b| &b.stage) {
            Some(Stage::Summarize { by, aggs }) => Sink::Summarize(Groups::new(by, aggs)),
            Some(Stage::Sort { keys, limit }) => Sink::Sort {
                keys,
                limit: *limit,
                rows: Vec::new(),
                width: blocker.map(|b| b.width_in).unwrap_or(0),
                worst: None,
            },
            Some(Stage::Distinct(exprs)) => Sink::Distinct {
                exprs,
                seen: FxHashSet::default(),
                rows: Vec::new(),
            },
            Some(Stage::Count) => Sink::Count(0),
            _ => Sink::Collect {
                rows: Vec::new(),
                width: final_width,
                cap: ctx.max_rows.saturating_add(1),
            },
        };
        let mut takes = vec![0usize; streaming.len()];
        match input.take() {
            None => plan.table.scan(&mut |row| {
                work += 1;
                push(streaming, 0, row, &mut takes, &mut sink, ctx)
            }),
            Some(rows) => {
                for r in &rows {
                    work += 1;
                    if !push(streaming, 0, r, &mut takes, &mut sink, ctx) {
                        break;
                    }
                }
            }
        }
        input = Some(sink.finish(ctx));
    }
    let mut rows = input.unwrap_or_default();
    if rows.len() > ctx.max_rows {
        rows.truncate(ctx.max_rows);
        truncated = true;
    }
    Output {
        columns: plan.columns.clone(),
        rows,
        work,
        truncated,
    }
}

/// Runs `row` through the streaming stages from `k`; false when no more
/// rows are wanted.
fn push<'a>(
    stages: &[Planned],
    k: usize,
    row: &dyn RowAccess<'a>,
    takes: &mut [usize],
    sink: &mut Sink<'a, '_>,
    ctx: &Context,
) -> bool {
    let Some(p) = stages.get(k) else {
        return sink.accept(row, ctx);
    };
    match &p.stage {
        Stage::Filter(e) => {
            if eval(e, row, ctx).as_bool() == Some(true) {
                push(stages, k + 1, row, takes, sink, ctx)
            } else {
                true
            }
        }
        Stage::Map(exprs) => {
            let v: Vec<Value<'a>> = exprs.iter().map(|e| eval(e, row, ctx)).collect();
            push(stages, k + 1, &v, takes, sink, ctx)
        }
        Stage::Take(n) => {
            if takes[k] >= *n {
                return false;
            }
            takes[k] += 1;
            let more = push(stages, k + 1, row, takes, sink, ctx);
            more && takes[k] < *n
        }
        _ => sink.accept(row, ctx),
    }
}

fn materialize<'a>(row: &dyn RowAccess<'a>, width: usize) -> Vec<Value<'a>> {
    (0..width).map(|i| row.cell(i)).collect()
}

enum Sink<'a, 'p> {
    Collect {
        rows: Vec<Vec<Value<'a>>>,
        width: usize,
        cap: usize,
    },
    Summarize(Groups<'a, 'p>),
    Sort {
        keys: &'p [SortKey],
        limit: Option<usize>,
        rows: Vec<(Vec<Value<'a>>, Vec<Value<'a>>)>,
        width: usize,
        /// With a limit: the last key kept so far; a row that does not sort
        /// before it is not even read (`top`, `order by … | take`).
        worst: Option<Vec<Value<'a>>>,
    },
    Distinct {
        exprs: &'p [CExpr],
        seen: FxHashSet<Vec<Value<'a>>>,
        rows: Vec<Vec<Value<'a>>>,
    },
    Count(i64),
}

impl<'a> Sink<'a, '_> {
    fn accept(&mut self, row: &dyn RowAccess<'a>, ctx: &Context) -> bool {
        match self {
            Sink::Collect { rows, width, cap } => {
                rows.push(materialize(row, *width));
                rows.len() < *cap
            }
            Sink::Summarize(g) => {
                g.add(row, ctx);
                true
            }
            Sink::Sort {
                keys,
                limit,
                rows,
                width,
                worst,
            } => {
                let k: Vec<Value<'a>> = keys.iter().map(|k| eval(&k.expr, row, ctx)).collect();
                if let Some(w) = worst {
                    if cmp_keys(keys, &k, w) != std::cmp::Ordering::Less {
                        return true;
                    }
                }
                rows.push((k, materialize(row, *width)));
                if let Some(n) = *limit {
                    if rows.len() >= (2 * n).max(1024) {
                        rows.sort_by(|(a, _), (b, _)| cmp_keys(keys, a, b));
                        rows.truncate(n);
                        *worst = rows.last().map(|(k, _)| k.clone());
                    }
                }
                true
            }
            Sink::Distinct { exprs, seen, rows } => {
                let k: Vec<Value<'a>> = exprs.iter().map(|e| eval(e, row, ctx)).collect();
                if !seen.contains(&k) {
                    seen.insert(k.clone());
                    rows.push(k);
                }
                true
            }
            Sink::Count(n) => {
                *n += 1;
                true
            }
        }
    }

    fn finish(self, _ctx: &Context) -> Vec<Vec<Value<'a>>> {
        match self {
            Sink::Collect { rows, .. } => rows,
            Sink::Summarize(g) => g.finish(),
            Sink::Sort {
                keys,
                limit,
                mut rows,
                ..
            } => {
                rows.sort_by(|(a, _), (b, _)| cmp_keys(keys, a, b));
                if let Some(n) = limit {
                    rows.truncate(n);
                }
                rows.into_iter().map(|(_, r)| r).collect()
            }
            Sink::Distinct { rows, .. } => rows,
            Sink::Count(n) => vec![vec![Value::Long(n)]],
        }
    }
}

/// The order of two rows' sort keys.
fn cmp_keys(keys: &[SortKey], a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    for (i, k) in keys.iter().enumerate() {
        let (x, y) = (&a[i], &b[i]);
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) if k.nulls_first => std::cmp::Ordering::Less,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) if k.nulls_first => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if k.desc => sort_cmp(y, x),
            _ => sort_cmp(x, y),
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

struct Groups<'a, 'p> {
    by: &'p [CExpr],
    aggs: &'p [Agg],
    index: FxHashMap<Vec<Value<'a>>, usize>,
    keys: Vec<Vec<Value<'a>>>,
    states: Vec<Vec<AggState<'a>>>,
}

enum AggState<'a> {
    Count(i64),
    DCount(FxHashSet<Value<'a>>),
    MakeSet {
        seen: FxHashSet<Value<'a>>,
        items: Vec<Value<'a>>,
    },
    MakeList(Vec<Value<'a>>),
    /// min, max, take_any.
    One(Value<'a>),
    Sum(Value<'a>),
    Avg(f64, i64),
    Arg {
        best: Value<'a>,
        ret: Option<Vec<Value<'a>>>,
    },
}

impl<'a, 'p> Groups<'a, 'p> {
    fn new(by: &'p [CExpr], aggs: &'p [Agg]) -> Self {
        Groups {
            by,
            aggs,
            index: FxHashMap::default(),
            keys: Vec::new(),
            states: Vec::new(),
        }
    }

    fn fresh(&self) -> Vec<AggState<'a>> {
        self.aggs
            .iter()
            .map(|a| match a.kind {
                AggKind::Count | AggKind::CountIf => AggState::Count(0),
                AggKind::DCount => AggState::DCount(FxHashSet::default()),
                AggKind::MakeSet => AggState::MakeSet {
                    seen: FxHashSet::default(),
                    items: Vec::new(),
                },
                AggKind::MakeList => AggState::MakeList(Vec::new()),
                AggKind::Min | AggKind::Max | AggKind::Any => AggState::One(Value::Null),
                AggKind::Sum => AggState::Sum(Value::Null),
                AggKind::Avg => AggState::Avg(0.0, 0),
                AggKind::ArgMax | AggKind::ArgMin => AggState::Arg {
                    best: Value::Null,
                    ret: None,
                },
            })
            .collect()
    }

    fn add(&mut self, row: &dyn RowAccess<'a>, ctx: &Context) {
        let key: Vec<Value<'a>> = self.by.iter().map(|e| eval(e, row, ctx)).collect();
        let g = match self.index.get(&key) {
            Some(&g) => g,
            None => {
                let g = self.keys.len();
                let fresh = self.fresh();
                self.states.push(fresh);
                self.keys.push(key.clone());
                self.index.insert(key, g);
                g
            }
        };
        for (a, st) in self.aggs.iter().zip(self.states[g].iter_mut()) {
            let arg = || {
                a.arg
                    .as_ref()
                    .map(|e| eval(e, row, ctx))
                    .unwrap_or(Value::Null)
            };
            match st {
                AggState::Count(n) => {
                    if a.kind == AggKind::Count || arg().as_bool() == Some(true) {
                        *n += 1;
                    }
                }
                AggState::DCount(set) => {
                    let v = arg();
                    if !v.is_null() {
                        set.insert(v);
                    }
                }
                AggState::MakeSet { seen, items } => {
                    let v = arg();
                    if !v.is_null() && items.len() < a.max && !seen.contains(&v) {
                        seen.insert(v.clone());
                        items.push(v);
                    }
                }
                AggState::MakeList(items) => {
                    let v = arg();
                    if !v.is_null() && items.len() < a.max {
                        items.push(v);
                    }
                }
                AggState::One(cur) => {
                    let v = arg();
                    if v.is_null() {
                        continue;
                    }
                    let better = match a.kind {
                        AggKind::Any => cur.is_null(),
                        AggKind::Min => {
                            cur.is_null() || compare(&v, cur) == Some(std::cmp::Ordering::Less)
                        }
                        _ => cur.is_null() || compare(&v, cur) == Some(std::cmp::Ordering::Greater),
                    };
                    if better {
                        *cur = v;
                    }
                }
                AggState::Sum(acc) => {
                    let v = arg();
                    if !v.is_null() {
                        *acc = if acc.is_null() {
                            v
                        } else {
                            arith(BinOp::Add, acc, &v)
                        };
                    }
                }
                AggState::Avg(s, n) => {
                    if let Some(x) = arg().as_f64() {
                        *s += x;
                        *n += 1;
                    }
                }
                AggState::Arg { best, ret } => {
                    let v = arg();
                    let better = if v.is_null() {
                        ret.is_none()
                    } else {
                        best.is_null()
                            || compare(&v, best)
                                == Some(if a.kind == AggKind::ArgMax {
                                    std::cmp::Ordering::Greater
                                } else {
                                    std::cmp::Ordering::Less
                                })
                    };
                    if better {
                        *ret = Some(a.ret.iter().map(|e| eval(e, row, ctx)).collect());
                        *best = v;
                    }
                }
            }
        }
    }

    fn finish(mut self) -> Vec<Vec<Value<'a>>> {
        // `summarize count()` of no rows is one row of 0; with `by`, none.
        if self.by.is_empty() && self.keys.is_empty() {
            let fresh = self.fresh();
            self.keys.push(Vec::new());
            self.states.push(fresh);
        }
        let aggs = self.aggs;
        self.keys
            .into_iter()
            .zip(self.states)
            .map(|(mut row, states)| {
                for (a, st) in aggs.iter().zip(states) {
                    match st {
                        AggState::Count(n) => row.push(Value::Long(n)),
                        AggState::DCount(set) => row.push(Value::Long(approx_dcount(set.len()))),
                        AggState::MakeSet { items, .. } | AggState::MakeList(items) => {
                            row.push(Value::Dynamic(Arc::new(serde_json::Value::Array(
                                items.iter().map(|v| v.to_json()).collect(),
                            ))))
                        }
                        AggState::One(v) | AggState::Sum(v) => row.push(v),
                        AggState::Avg(s, n) => row.push(if n == 0 {
                            Value::Null
                        } else {
                            Value::Real(s / n as f64)
                        }),
                        AggState::Arg { best, ret } => {
                            row.push(best);
                            match ret {
                                Some(r) => row.extend(r),
                                None => row.extend(a.ret.iter().map(|_| Value::Null)),
                            }
                        }
                    }
                }
                row
            })
            .collect()
    }
}

/// Kusto's `dcount()` is an estimate (HyperLogLog; about 1.6 % error at
/// the default accuracy). Here it is exact up to 1,000 distinct values and
/// off by a fixed, value-dependent amount within ±1.6 % above that, so a
/// client that counts distinct values with `dcount()` and expects an exact
/// answer learns it from the simulated tenant, not in production.
pub fn approx_dcount(n: usize) -> i64 {
    if n <= 1000 {
        return n as i64;
    }
    let e = ((xxh64(&(n as u64).to_le_bytes()) % 3201) as f64 - 1600.0) / 100_000.0;
    (n as f64 * (1.0 + e)).round() as i64
}

/// Evaluates an expression on a row.
pub fn eval<'a>(e: &CExpr, row: &dyn RowAccess<'a>, ctx: &Context) -> Value<'a> {
    match e {
        CExpr::Col(i) => row.cell(*i),
        CExpr::Lit(v) => v.clone(),
        CExpr::Neg(inner) => match eval(inner, row, ctx) {
            Value::Int(i) => Value::Int(i.wrapping_neg()),
            Value::Long(i) => Value::Long(i.wrapping_neg()),
            Value::Real(r) => Value::Real(-r),
            Value::TimeSpan(t) => Value::TimeSpan(-t),
            v @ Value::Dynamic(_) => match dyn_to_scalar(&v) {
                Value::Long(i) => Value::Long(-i),
                Value::Real(r) => Value::Real(-r),
                _ => Value::Null,
            },
            _ => Value::Null,
        },
        CExpr::Bin(op, l, r) => bin(*op, l, r, row, ctx),
        CExpr::In {
            expr,
            list,
            neg,
            ci,
        } => {
            let v = eval(expr, row, ctx);
            if v.is_null() {
                return Value::Bool(false);
            }
            let mut found = false;
            for item in list {
                let it = eval(item, row, ctx);
                let hit = match &it {
                    Value::Dynamic(d) if d.is_array() => d
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|x| same(&v, &Value::Dynamic(Arc::new(x.clone())), *ci)),
                    _ => same(&v, &it, *ci),
                };
                if hit {
                    found = true;
                    break;
                }
            }
            Value::Bool(found != *neg)
        }
        CExpr::Between { expr, lo, hi, neg } => {
            let v = eval(expr, row, ctx);
            let (l, h) = (eval(lo, row, ctx), eval(hi, row, ctx));
            match (compare(&v, &l), compare(&v, &h)) {
                (Some(a), Some(b)) => {
                    let inside = a != std::cmp::Ordering::Less && b != std::cmp::Ordering::Greater;
                    Value::Bool(inside != *neg)
                }
                _ => Value::Null,
            }
        }
        CExpr::Member(inner, name) => {
            let v = eval(inner, row, ctx);
            match as_json(&v) {
                Some(j) => match j.get(name.as_str()) {
                    Some(x) => Value::Dynamic(Arc::new(x.clone())),
                    None => Value::Null,
                },
                None => Value::Null,
            }
        }
        CExpr::Index(inner, idx) => {
            let v = eval(inner, row, ctx);
            let i = eval(idx, row, ctx);
            let Some(j) = as_json(&v) else {
                return Value::Null;
            };
            let got = match (&*j, &i) {
                (serde_json::Value::Array(a), _) => i.as_i64().and_then(|n| {
                    let n = if n < 0 { a.len() as i64 + n } else { n };
                    a.get(usize::try_from(n).ok()?)
                }),
                (serde_json::Value::Object(o), _) => i.as_str().and_then(|k| o.get(k)),
                _ => None,
            };
            got.map(|x| Value::Dynamic(Arc::new(x.clone())))
                .unwrap_or(Value::Null)
        }
        CExpr::Call(f, args) => call(*f, args, row, ctx),
    }
}

/// A dynamic value, or a string holding JSON, as JSON.
fn as_json(v: &Value) -> Option<Arc<serde_json::Value>> {
    match v {
        Value::Dynamic(d) => Some(d.clone()),
        Value::Str(s) => serde_json::from_str(s).ok().map(Arc::new),
        _ => None,
    }
}

fn dyn_to_scalar<'a>(v: &Value<'a>) -> Value<'a> {
    match v {
        Value::Dynamic(d) => match &**d {
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Long(i),
                None => n.as_f64().map(Value::Real).unwrap_or(Value::Null),
            },
            serde_json::Value::String(s) => Value::owned(s.as_str()),
            serde_json::Value::Null => Value::Null,
            _ => v.clone(),
        },
        other => other.clone(),
    }
}

fn lower_eq(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

/// Equality for `in`: `in~` compares strings without case.
fn same(a: &Value, b: &Value, ci: bool) -> bool {
    if ci {
        if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
            return lower_eq(x, y);
        }
    }
    equals(a, b) == Some(true)
}

fn bin<'a>(op: BinOp, l: &CExpr, r: &CExpr, row: &dyn RowAccess<'a>, ctx: &Context) -> Value<'a> {
    match op {
        BinOp::And => {
            let a = eval(l, row, ctx).as_bool();
            if a == Some(false) {
                return Value::Bool(false);
            }
            match (a, eval(r, row, ctx).as_bool()) {
                (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            }
        }
        BinOp::Or => {
            let a = eval(l, row, ctx).as_bool();
            if a == Some(true) {
                return Value::Bool(true);
            }
            match (a, eval(r, row, ctx).as_bool()) {
                (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            }
        }
        _ => {
            let a = eval(l, row, ctx);
            let b = eval(r, row, ctx);
            match op {
                BinOp::Eq => equals(&a, &b).map(Value::Bool).unwrap_or(Value::Null),
                BinOp::Ne => equals(&a, &b)
                    .map(|x| Value::Bool(!x))
                    .unwrap_or(Value::Null),
                BinOp::EqCi | BinOp::NeCi => match (a.as_str(), b.as_str()) {
                    (Some(x), Some(y)) => Value::Bool(lower_eq(x, y) == (op == BinOp::EqCi)),
                    _ => Value::Null,
                },
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => match compare(&a, &b) {
                    Some(o) => Value::Bool(match op {
                        BinOp::Lt => o.is_lt(),
                        BinOp::Le => o.is_le(),
                        BinOp::Gt => o.is_gt(),
                        _ => o.is_ge(),
                    }),
                    None => Value::Null,
                },
                BinOp::Str { op: sop, neg, cs } => {
                    let (x, y) = (text_of(&a), text_of(&b));
                    Value::Bool(str_match(sop, cs, &x, &y) != neg)
                }
                _ => arith(op, &a, &b),
            }
        }
    }
}

fn text_of<'v>(v: &'v Value) -> std::borrow::Cow<'v, str> {
    match v.as_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(v.to_text()),
    }
}

fn is_term_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// `has`, `contains`, `startswith`…: Kusto's string operators. `has`
/// looks for a whole term (a run of letters and digits).
pub fn str_match(op: StrOp, cs: bool, hay: &str, needle: &str) -> bool {
    let (h, n);
    let (hay, needle) = if cs {
        (hay, needle)
    } else {
        h = hay.to_lowercase();
        n = needle.to_lowercase();
        (h.as_str(), n.as_str())
    };
    match op {
        StrOp::Contains => hay.contains(needle),
        StrOp::StartsWith => hay.starts_with(needle),
        StrOp::EndsWith => hay.ends_with(needle),
        StrOp::Has | StrOp::HasPrefix | StrOp::HasSuffix => {
            if needle.is_empty() {
                return true;
            }
            let check_start =
                op != StrOp::HasSuffix && needle.chars().next().is_some_and(is_term_char);
            let check_end =
                op != StrOp::HasPrefix && needle.chars().next_back().is_some_and(is_term_char);
            hay.match_indices(needle).any(|(i, m)| {
                let before_ok = !check_start
                    || hay[..i]
                        .chars()
                        .next_back()
                        .is_none_or(|c| !is_term_char(c));
                let after_ok = !check_end
                    || hay[i + m.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| !is_term_char(c));
                before_ok && after_ok
            })
        }
    }
}

fn arith<'a>(op: BinOp, a: &Value<'a>, b: &Value<'a>) -> Value<'a> {
    use Value::*;
    if matches!(a, Dynamic(_)) || matches!(b, Dynamic(_)) {
        let (x, y) = (dyn_to_scalar(a), dyn_to_scalar(b));
        if matches!(x, Dynamic(_)) || matches!(y, Dynamic(_)) {
            return Null;
        }
        return arith(op, &x, &y);
    }
    match (op, a, b) {
        (_, Null, _) | (_, _, Null) => Null,
        (BinOp::Add, DateTime(x), TimeSpan(y)) | (BinOp::Add, TimeSpan(y), DateTime(x)) => {
            DateTime(x.wrapping_add(*y))
        }
        (BinOp::Sub, DateTime(x), TimeSpan(y)) => DateTime(x.wrapping_sub(*y)),
        (BinOp::Sub, DateTime(x), DateTime(y)) => TimeSpan(x.wrapping_sub(*y)),
        (BinOp::Add, TimeSpan(x), TimeSpan(y)) => TimeSpan(x.wrapping_add(*y)),
        (BinOp::Sub, TimeSpan(x), TimeSpan(y)) => TimeSpan(x.wrapping_sub(*y)),
        (BinOp::Div, TimeSpan(x), TimeSpan(y)) => {
            if *y == 0 {
                Null
            } else {
                Real(*x as f64 / *y as f64)
            }
        }
        (BinOp::Mul, TimeSpan(t), n) | (BinOp::Mul, n, TimeSpan(t)) => match n.as_f64() {
            Some(f) => TimeSpan((*t as f64 * f) as i64),
            None => Null,
        },
        (BinOp::Div, TimeSpan(t), n) => match n.as_f64() {
            Some(f) if f != 0.0 => TimeSpan((*t as f64 / f) as i64),
            _ => Null,
        },
        (_, Real(_), _) | (_, _, Real(_)) => {
            let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                return Null;
            };
            Real(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                _ => x % y,
            })
        }
        (_, Int(_) | Long(_), Int(_) | Long(_)) => {
            let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) else {
                return Null;
            };
            let v = match op {
                BinOp::Add => Some(x.wrapping_add(y)),
                BinOp::Sub => Some(x.wrapping_sub(y)),
                BinOp::Mul => Some(x.wrapping_mul(y)),
                BinOp::Div => x.checked_div(y),
                _ => x.checked_rem(y),
            };
            match (v, a, b) {
                (None, _, _) => Null,
                (Some(v), Int(_), Int(_)) => Int(v as i32),
                (Some(v), _, _) => Long(v),
            }
        }
        _ => Null,
    }
}

fn call<'a>(f: Func, args: &[CExpr], row: &dyn RowAccess<'a>, ctx: &Context) -> Value<'a> {
    let arg = |i: usize| {
        args.get(i)
            .map(|e| eval(e, row, ctx))
            .unwrap_or(Value::Null)
    };
    match f {
        Func::Ago => match arg(0) {
            Value::TimeSpan(t) => Value::DateTime(ctx.now - t),
            _ => Value::Null,
        },
        Func::Now => match arg(0) {
            Value::TimeSpan(t) => Value::DateTime(ctx.now + t),
            _ => Value::DateTime(ctx.now),
        },
        Func::StrCat => {
            let mut s = String::new();
            for i in 0..args.len() {
                s.push_str(&text_of(&arg(i)));
            }
            Value::owned(s)
        }
        Func::StrCatDelim => {
            let d = arg(0).to_text();
            let parts: Vec<String> = (1..args.len()).map(|i| arg(i).to_text()).collect();
            Value::owned(parts.join(&d))
        }
        Func::ToString => match arg(0) {
            v @ Value::Str(_) => v,
            v => Value::owned(v.to_text()),
        },
        Func::ToLower => Value::owned(text_of(&arg(0)).to_lowercase()),
        Func::ToUpper => Value::owned(text_of(&arg(0)).to_uppercase()),
        Func::ToLong => to_long(&arg(0)).map(Value::Long).unwrap_or(Value::Null),
        Func::ToInt => to_long(&arg(0))
            .and_then(|n| i32::try_from(n).ok())
            .map(Value::Int)
            .unwrap_or(Value::Null),
        Func::ToReal => {
            let v = dyn_to_scalar(&arg(0));
            match &v {
                Value::Str(s) => s.trim().parse().map(Value::Real).unwrap_or(Value::Null),
                Value::Bool(b) => Value::Real(*b as i64 as f64),
                _ => v.as_f64().map(Value::Real).unwrap_or(Value::Null),
            }
        }
        Func::ToBool => match dyn_to_scalar(&arg(0)) {
            Value::Bool(b) => Value::Bool(b),
            Value::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => Value::Null,
            },
            v => v
                .as_i64()
                .map(|n| Value::Bool(n != 0))
                .unwrap_or(Value::Null),
        },
        Func::ToDateTime => match dyn_to_scalar(&arg(0)) {
            v @ Value::DateTime(_) => v,
            Value::Str(s) => parse_datetime(&s)
                .map(Value::DateTime)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Func::ToTimeSpan => match dyn_to_scalar(&arg(0)) {
            v @ Value::TimeSpan(_) => v,
            Value::Str(s) => parse_clock(&s).map(Value::TimeSpan).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Func::Hash => {
            let m = if args.len() > 1 {
                arg(1).as_i64()
            } else {
                None
            };
            if args.len() > 1 && m.is_none() {
                return Value::Null;
            }
            kusto_hash(&arg(0), m)
        }
        Func::IsEmpty => Value::Bool(arg(0).is_empty()),
        Func::IsNotEmpty => Value::Bool(!arg(0).is_empty()),
        Func::IsNull => Value::Bool(arg(0).is_null()),
        Func::IsNotNull => Value::Bool(!arg(0).is_null()),
        Func::Not => match arg(0).as_bool() {
            Some(b) => Value::Bool(!b),
            None => Value::Null,
        },
        Func::Iff => {
            if arg(0).as_bool() == Some(true) {
                arg(1)
            } else {
                arg(2)
            }
        }
        Func::StrLen => Value::Long(text_of(&arg(0)).chars().count() as i64),
        Func::Substring => {
            let s = arg(0).to_text();
            let start = arg(1).as_i64().unwrap_or(0).max(0) as usize;
            let chars = s.chars().skip(start);
            let out: String = match args.len() {
                3 => chars
                    .take(arg(2).as_i64().unwrap_or(0).max(0) as usize)
                    .collect(),
                _ => chars.collect(),
            };
            Value::owned(out)
        }
        Func::Coalesce => {
            for i in 0..args.len() {
                let v = arg(i);
                if !v.is_empty() {
                    return v;
                }
            }
            Value::Null
        }
        Func::Bin => match (arg(0), arg(1)) {
            (Value::DateTime(t), Value::TimeSpan(s)) => Value::DateTime(bin_ticks(t, s)),
            (Value::TimeSpan(t), Value::TimeSpan(s)) => Value::TimeSpan(bin_ticks(t, s)),
            (Value::Real(x), s) => match s.as_f64() {
                Some(s) if s > 0.0 => Value::Real((x / s).floor() * s),
                _ => Value::Null,
            },
            (v @ (Value::Int(_) | Value::Long(_)), s) => match (v.as_i64(), s.as_i64()) {
                (Some(x), Some(s)) if s > 0 => {
                    let r = bin_ticks(x, s);
                    if matches!(v, Value::Int(_)) {
                        Value::Int(r as i32)
                    } else {
                        Value::Long(r)
                    }
                }
                _ => Value::Null,
            },
            _ => Value::Null,
        },
        Func::StartOfDay => match arg(0) {
            Value::DateTime(t) => Value::DateTime(start_of_day(t)),
            _ => Value::Null,
        },
        Func::ParseJson => match arg(0) {
            v @ Value::Dynamic(_) => v,
            Value::Str(s) => Value::Dynamic(Arc::new(
                serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s.to_string())),
            )),
            Value::Null => Value::Null,
            v => Value::Dynamic(Arc::new(v.to_json())),
        },
        Func::ArrayLength => match as_json(&arg(0)) {
            Some(j) => j
                .as_array()
                .map(|a| Value::Long(a.len() as i64))
                .unwrap_or(Value::Null),
            None => Value::Null,
        },
        Func::Split => {
            let s = arg(0).to_text();
            let d = arg(1).to_text();
            let parts: Vec<serde_json::Value> = if d.is_empty() {
                vec![serde_json::Value::String(s)]
            } else {
                s.split(d.as_str())
                    .map(|p| serde_json::Value::String(p.to_string()))
                    .collect()
            };
            Value::Dynamic(Arc::new(serde_json::Value::Array(parts)))
        }
        Func::Abs => match arg(0) {
            Value::Int(i) => Value::Int(i.wrapping_abs()),
            Value::Long(i) => Value::Long(i.wrapping_abs()),
            Value::Real(r) => Value::Real(r.abs()),
            Value::TimeSpan(t) => Value::TimeSpan(t.wrapping_abs()),
            _ => Value::Null,
        },
        Func::Round => {
            let digits = if args.len() > 1 {
                arg(1).as_i64().unwrap_or(0)
            } else {
                0
            };
            match arg(0).as_f64() {
                Some(x) => {
                    let p = 10f64.powi(digits.clamp(-15, 15) as i32);
                    Value::Real((x * p).round() / p)
                }
                None => Value::Null,
            }
        }
    }
}

fn to_long(v: &Value) -> Option<i64> {
    match dyn_to_scalar(v) {
        Value::Str(s) => {
            let t = s.trim();
            t.parse::<i64>().ok().or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
        Value::Bool(b) => Some(b as i64),
        Value::DateTime(t) | Value::TimeSpan(t) => Some(t),
        Value::Real(r) if r.is_finite() => Some(r as i64),
        other => other.as_i64(),
    }
}

/// `[d.]hh:mm:ss[.f]` as a timespan.
fn parse_clock(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (days, clock) = match s.split_once('.') {
        Some((d, rest)) if rest.contains(':') && !d.contains(':') => (d.parse::<i64>().ok()?, rest),
        _ => (0, s),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    let h: i64 = parts[0].parse().ok()?;
    let m: i64 = parts[1].parse().ok()?;
    let sec: f64 = parts[2].parse().ok()?;
    let t = ((days * 86_400 + h * 3600 + m * 60) as f64 + sec) * TICKS_PER_SEC as f64;
    Some(if neg { -(t as i64) } else { t as i64 })
}
