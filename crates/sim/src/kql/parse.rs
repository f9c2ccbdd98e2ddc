//! The parser: a table name followed by `| operator` stages, into an AST.
//! Names are resolved later (`compile`), so an unknown column is a
//! semantic error there and an unknown word where an operator belongs is a
//! syntax error here, as Kusto reports them.
//!
//! Size: long because every operator's grammar is parsed here, into one AST.

use super::KqlError;
use super::lex::{Tok, Token};
use super::value::Value;

#[derive(Debug, Clone)]
pub struct Query {
    pub table: String,
    pub ops: Vec<Op>,
}

#[derive(Debug, Clone)]
pub struct Op {
    /// The operator as written (`where`, `sort`, `project-away`…), for
    /// messages.
    pub name: String,
    pub kind: OpKind,
}

/// `Name = expr` or a bare expression.
pub type Named = (Option<String>, Expr);

#[derive(Debug, Clone)]
pub enum OpKind {
    Where(Expr),
    Project(Vec<Named>),
    Extend(Vec<Named>),
    ProjectAway(Vec<String>),
    ProjectKeep(Vec<String>),
    ProjectRename(Vec<(String, String)>),
    Summarize {
        aggs: Vec<Named>,
        by: Vec<Named>,
    },
    Sort(Vec<SortKey>),
    Take(Expr),
    Top {
        n: Expr,
        key: SortKey,
    },
    Count,
    /// Empty means `distinct *`.
    Distinct(Vec<Expr>),
}

#[derive(Debug, Clone)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    EqCi,
    NeCi,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    /// String operators; `neg` for `!has`…, `cs` for `has_cs`….
    Str {
        op: StrOp,
        neg: bool,
        cs: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    Has,
    Contains,
    StartsWith,
    EndsWith,
    HasPrefix,
    HasSuffix,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Col(String),
    Lit(Value<'static>),
    /// `*` as an argument (`arg_max(T, *)`, `count(*)`).
    Star,
    Call(String, Vec<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        neg: bool,
        ci: bool,
    },
    Between {
        expr: Box<Expr>,
        lo: Box<Expr>,
        hi: Box<Expr>,
        neg: bool,
    },
    Member(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
}

/// Operators of KQL that this subset does not run: named honestly instead
/// of pretending they are unknown.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "join",
    "union",
    "lookup",
    "mv-expand",
    "mv-apply",
    "parse",
    "parse-where",
    "parse-kv",
    "make-series",
    "render",
    "evaluate",
    "invoke",
    "as",
    "search",
    "find",
    "sample",
    "sample-distinct",
    "getschema",
    "serialize",
    "partition",
    "fork",
    "facet",
    "range",
    "print",
    "project-reorder",
    "top-nested",
    "top-hitters",
    "scan",
    "reduce",
    "consume",
    "externaldata",
    "datatable",
    "let",
    "materialize",
];

struct Parser<'t> {
    toks: &'t [Token],
    i: usize,
}

pub fn parse(toks: &[Token]) -> Result<Query, KqlError> {
    let mut p = Parser { toks, i: 0 };
    let q = p.query()?;
    Ok(q)
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn peek_at(&self, n: usize) -> &Token {
        &self.toks[(self.i + n).min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn error_here(&self) -> KqlError {
        let t = self.peek();
        let text = match &t.tok {
            Tok::Eof => "<EOF>".to_string(),
            Tok::Ident(s) => s.clone(),
            Tok::Punct(p) => p.to_string(),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Long(n) => n.to_string(),
            Tok::Real(r) => r.to_string(),
            _ => "literal".to_string(),
        };
        KqlError::syntax(&text, t.line, t.col)
    }
    fn is_punct(&self, p: &str) -> bool {
        matches!(&self.peek().tok, Tok::Punct(x) if *x == p)
    }
    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.next();
            true
        } else {
            false
        }
    }
    fn expect_punct(&mut self, p: &str) -> Result<(), KqlError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.error_here())
        }
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(x) if x == w)
    }
    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.next();
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Result<String, KqlError> {
        match &self.peek().tok {
            Tok::Ident(s) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(self.error_here()),
        }
    }

    fn query(&mut self) -> Result<Query, KqlError> {
        let table = match &self.peek().tok {
            Tok::Ident(w) if KNOWN_UNSUPPORTED.contains(&w.as_str()) => {
                return Err(KqlError::unsupported(w));
            }
            Tok::Ident(w) => w.clone(),
            _ => return Err(self.error_here()),
        };
        self.next();
        let mut ops = Vec::new();
        while self.eat_punct("|") {
            ops.push(self.op()?);
        }
        // One statement, an optional trailing semicolon.
        self.eat_punct(";");
        if !matches!(self.peek().tok, Tok::Eof) {
            return Err(self.error_here());
        }
        Ok(Query { table, ops })
    }

    fn op(&mut self) -> Result<Op, KqlError> {
        let Tok::Ident(name) = self.peek().tok.clone() else {
            return Err(self.error_here());
        };
        let kind = match name.as_str() {
            "where" | "filter" => {
                self.next();
                OpKind::Where(self.expr()?)
            }
            "project" => {
                self.next();
                OpKind::Project(self.named_list()?)
            }
            "extend" => {
                self.next();
                OpKind::Extend(self.named_list()?)
            }
            "project-away" | "project-keep" => {
                self.next();
                let mut cols = vec![self.ident()?];
                while self.eat_punct(",") {
                    cols.push(self.ident()?);
                }
                if name == "project-away" {
                    OpKind::ProjectAway(cols)
                } else {
                    OpKind::ProjectKeep(cols)
                }
            }
            "project-rename" => {
                self.next();
                let mut out = Vec::new();
                loop {
                    let new = self.ident()?;
                    self.expect_punct("=")?;
                    let old = self.ident()?;
                    out.push((new, old));
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                OpKind::ProjectRename(out)
            }
            "summarize" => {
                self.next();
                let aggs = if self.is_word("by") {
                    Vec::new()
                } else {
                    self.named_list()?
                };
                let by = if self.eat_word("by") {
                    self.named_list()?
                } else {
                    Vec::new()
                };
                if aggs.is_empty() && by.is_empty() {
                    return Err(self.error_here());
                }
                OpKind::Summarize { aggs, by }
            }
            "order" | "sort" => {
                self.next();
                if !self.eat_word("by") {
                    return Err(self.error_here());
                }
                let mut keys = vec![self.sort_key()?];
                while self.eat_punct(",") {
                    keys.push(self.sort_key()?);
                }
                OpKind::Sort(keys)
            }
            "take" | "limit" => {
                self.next();
                OpKind::Take(self.expr()?)
            }
            "top" => {
                self.next();
                let n = self.additive()?;
                if !self.eat_word("by") {
                    return Err(self.error_here());
                }
                OpKind::Top {
                    n,
                    key: self.sort_key()?,
                }
            }
            "count" => {
                self.next();
                OpKind::Count
            }
            "distinct" => {
                self.next();
                if self.eat_punct("*") {
                    OpKind::Distinct(Vec::new())
                } else {
                    let mut cols = vec![self.expr()?];
                    while self.eat_punct(",") {
                        cols.push(self.expr()?);
                    }
                    OpKind::Distinct(cols)
                }
            }
            w if KNOWN_UNSUPPORTED.contains(&w) => return Err(KqlError::unsupported(w)),
            _ => return Err(self.error_here()),
        };
        Ok(Op { name, kind })
    }

    fn sort_key(&mut self) -> Result<SortKey, KqlError> {
        let expr = self.expr()?;
        let desc = if self.eat_word("asc") {
            false
        } else {
            self.eat_word("desc");
            true
        };
        // Kusto: nulls last when descending, first when ascending.
        let mut nulls_first = !desc;
        if self.eat_word("nulls") {
            if self.eat_word("first") {
                nulls_first = true;
            } else if self.eat_word("last") {
                nulls_first = false;
            } else {
                return Err(self.error_here());
            }
        }
        Ok(SortKey {
            expr,
            desc,
            nulls_first,
        })
    }

    fn named_list(&mut self) -> Result<Vec<Named>, KqlError> {
        let mut out = vec![self.named()?];
        while self.eat_punct(",") {
            out.push(self.named()?);
        }
        Ok(out)
    }

    fn named(&mut self) -> Result<Named, KqlError> {
        if let (Tok::Ident(n), Tok::Punct("=")) = (&self.peek().tok, &self.peek_at(1).tok) {
            let n = n.clone();
            self.next();
            self.next();
            return Ok((Some(n), self.expr()?));
        }
        Ok((None, self.expr()?))
    }

    pub fn expr(&mut self) -> Result<Expr, KqlError> {
        self.or()
    }

    fn or(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.and()?;
        loop {
            if !self.eat_word("or") {
                return Ok(l);
            }
            let r = self.and()?;
            l = Expr::Bin(BinOp::Or, Box::new(l), Box::new(r));
        }
    }

    fn and(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.comparison()?;
        loop {
            if !self.eat_word("and") {
                return Ok(l);
            }
            let r = self.comparison()?;
            l = Expr::Bin(BinOp::And, Box::new(l), Box::new(r));
        }
    }

    /// A string operator word (`has`, `contains_cs`…), if that is next.
    fn str_op(word: &str) -> Option<(StrOp, bool)> {
        let (base, cs) = match word.strip_suffix("_cs") {
            Some(b) => (b, true),
            None => (word, false),
        };
        let op = match base {
            "has" => StrOp::Has,
            "contains" => StrOp::Contains,
            "startswith" => StrOp::StartsWith,
            "endswith" => StrOp::EndsWith,
            "hasprefix" => StrOp::HasPrefix,
            "hassuffix" => StrOp::HasSuffix,
            _ => return None,
        };
        Some((op, cs))
    }

    fn comparison(&mut self) -> Result<Expr, KqlError> {
        let l = self.additive()?;
        let op = match &self.peek().tok {
            Tok::Punct("==") => Some(BinOp::Eq),
            Tok::Punct("!=") | Tok::Punct("<>") => Some(BinOp::Ne),
            Tok::Punct("=~") => Some(BinOp::EqCi),
            Tok::Punct("!~") => Some(BinOp::NeCi),
            Tok::Punct("<") => Some(BinOp::Lt),
            Tok::Punct("<=") => Some(BinOp::Le),
            Tok::Punct(">") => Some(BinOp::Gt),
            Tok::Punct(">=") => Some(BinOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.next();
            let r = self.additive()?;
            return Ok(Expr::Bin(op, Box::new(l), Box::new(r)));
        }
        // `!has`, `!in`, `!between`: a `!` right before the word.
        let neg = if self.is_punct("!") {
            let bang = self.peek().end;
            let next = self.peek_at(1);
            if next.start == bang && matches!(next.tok, Tok::Ident(_)) {
                self.next();
                true
            } else {
                return Err(self.error_here());
            }
        } else {
            false
        };
        let Tok::Ident(w) = self.peek().tok.clone() else {
            if neg {
                return Err(self.error_here());
            }
            return Ok(l);
        };
        if let Some((sop, cs)) = Self::str_op(&w) {
            self.next();
            let r = self.additive()?;
            return Ok(Expr::Bin(
                BinOp::Str { op: sop, neg, cs },
                Box::new(l),
                Box::new(r),
            ));
        }
        if w == "in" || w == "in~" {
            self.next();
            self.expect_punct("(")?;
            let mut list = Vec::new();
            if !self.is_punct(")") {
                list.push(self.expr()?);
                while self.eat_punct(",") {
                    list.push(self.expr()?);
                }
            }
            self.expect_punct(")")?;
            return Ok(Expr::In {
                expr: Box::new(l),
                list,
                neg,
                ci: w == "in~",
            });
        }
        if w == "between" {
            self.next();
            self.expect_punct("(")?;
            let lo = self.additive()?;
            self.expect_punct("..")?;
            let hi = self.additive()?;
            self.expect_punct(")")?;
            return Ok(Expr::Between {
                expr: Box::new(l),
                lo: Box::new(lo),
                hi: Box::new(hi),
                neg,
            });
        }
        if neg {
            return Err(self.error_here());
        }
        Ok(l)
    }

    fn additive(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.multiplicative()?;
        loop {
            let op = if self.eat_punct("+") {
                BinOp::Add
            } else if self.eat_punct("-") {
                BinOp::Sub
            } else {
                return Ok(l);
            };
            let r = self.multiplicative()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.unary()?;
        loop {
            let op = if self.eat_punct("*") {
                BinOp::Mul
            } else if self.eat_punct("/") {
                BinOp::Div
            } else if self.eat_punct("%") {
                BinOp::Mod
            } else {
                return Ok(l);
            };
            let r = self.unary()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }

    fn unary(&mut self) -> Result<Expr, KqlError> {
        if self.eat_punct("-") {
            let e = self.unary()?;
            return Ok(match e {
                Expr::Lit(Value::Long(n)) => Expr::Lit(Value::Long(-n)),
                Expr::Lit(Value::Real(r)) => Expr::Lit(Value::Real(-r)),
                Expr::Lit(Value::TimeSpan(t)) => Expr::Lit(Value::TimeSpan(-t)),
                e => Expr::Neg(Box::new(e)),
            });
        }
        if self.eat_punct("+") {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, KqlError> {
        let mut e = self.primary()?;
        loop {
            if self.is_punct(".") {
                self.next();
                let name = self.ident()?;
                e = Expr::Member(Box::new(e), name);
            } else if self.is_punct("[") {
                self.next();
                let idx = self.expr()?;
                self.expect_punct("]")?;
                e = Expr::Index(Box::new(e), Box::new(idx));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, KqlError> {
        let t = self.peek().tok.clone();
        let e = match t {
            Tok::Long(n) => Expr::Lit(Value::Long(n)),
            Tok::Real(r) => Expr::Lit(Value::Real(r)),
            Tok::Str(s) => Expr::Lit(Value::owned(s)),
            Tok::Span(t) => Expr::Lit(Value::TimeSpan(t)),
            Tok::Date(Some(t)) => Expr::Lit(Value::DateTime(t)),
            Tok::Date(None) => Expr::Lit(Value::Null),
            Tok::Dyn(v) => Expr::Lit(Value::Dynamic(std::sync::Arc::new(v))),
            Tok::Punct("*") => Expr::Star,
            Tok::Punct("(") => {
                self.next();
                let e = self.expr()?;
                self.expect_punct(")")?;
                return Ok(e);
            }
            Tok::Ident(w) => {
                self.next();
                match w.as_str() {
                    "true" => return Ok(Expr::Lit(Value::Bool(true))),
                    "false" => return Ok(Expr::Lit(Value::Bool(false))),
                    _ => {}
                }
                if self.is_punct("(") {
                    self.next();
                    let mut args = Vec::new();
                    if !self.is_punct(")") {
                        args.push(self.expr()?);
                        while self.eat_punct(",") {
                            args.push(self.expr()?);
                        }
                    }
                    self.expect_punct(")")?;
                    return Ok(Expr::Call(w, args));
                }
                return Ok(Expr::Col(w));
            }
            _ => return Err(self.error_here()),
        };
        self.next();
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kql::lex::lex;

    fn q(s: &str) -> Result<Query, KqlError> {
        parse(&lex(s)?)
    }

    #[test]
    fn parses_a_pipeline() {
        let p = q("DeviceInfo | where Timestamp > ago(30d) | summarize arg_max(Timestamp, *) by DeviceId | where hash(DeviceId, 4) == 1 | project DeviceId, Name = DeviceName | order by DeviceId asc | take 5").unwrap();
        assert_eq!(p.table, "DeviceInfo");
        let names: Vec<&str> = p.ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            ["where", "summarize", "where", "project", "order", "take"]
        );
        match &p.ops[1].kind {
            OpKind::Summarize { aggs, by } => {
                assert_eq!(aggs.len(), 1);
                assert_eq!(by.len(), 1);
            }
            _ => panic!("not a summarize"),
        }
    }

    #[test]
    fn precedence_and_negated_operators() {
        let p = q("T | where a == 1 or b == 2 and not(c !has \"x\") and d !in (1, 2)").unwrap();
        let OpKind::Where(Expr::Bin(BinOp::Or, _, r)) = &p.ops[0].kind else {
            panic!("or at the top")
        };
        assert!(matches!(**r, Expr::Bin(BinOp::And, ..)));
        let p = q("T | where x !contains_cs 'a'").unwrap();
        let OpKind::Where(Expr::Bin(BinOp::Str { op, neg, cs }, ..)) = &p.ops[0].kind else {
            panic!("string operator")
        };
        assert_eq!((*op, *neg, *cs), (StrOp::Contains, true, true));
        let p = q("T | extend y = 1 + 2 * 3 % 2").unwrap();
        let OpKind::Extend(v) = &p.ops[0].kind else {
            panic!()
        };
        assert!(matches!(v[0].1, Expr::Bin(BinOp::Add, ..)));
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = q("DeviceInfo | frobnicate x").unwrap_err();
        assert_eq!(
            e.message,
            "Query could not be parsed at 'frobnicate' on line [1,14]"
        );
        let e = q("DeviceInfo\n| where x ==").unwrap_err();
        assert!(
            e.message.contains("'<EOF>' on line [2,13]"),
            "{}",
            e.message
        );
        let e = q("DeviceInfo | project a as b").unwrap_err();
        assert!(e.message.contains("'as'"), "{}", e.message);
        let e = q("DeviceInfo | join (T) on X").unwrap_err();
        assert!(e.message.contains("'join' operator"), "{}", e.message);
    }
}
