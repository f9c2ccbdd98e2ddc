//! A subset of the Kusto Query Language, enough for a client of advanced
//! hunting: read from the query text (lexer → parser → compiler with
//! Kusto's semantic checks → a streaming evaluator over lazily generated
//! rows), so the simulated tenant answers whatever a client writes, not a
//! list of known queries.
//!
//! What runs: a table name, then `where`/`filter`, `project`,
//! `project-away`, `project-keep`, `project-rename`, `extend`, `summarize …
//! by …` (count, countif, dcount, make_set, make_list, min, max, sum, avg,
//! take_any/any, arg_max, arg_min), `order by`/`sort by`, `take`/`limit`,
//! `top … by`, `count` and `distinct`; the scalar operators and functions
//! are listed in `compile.rs`. Other KQL operators are refused by name.
//!
//! Streaming: rows are produced by the table one at a time and each column
//! only when an expression asks for it, so `where` before `project` looks at
//! the few columns it needs; blocking operators (summarize, sort, distinct,
//! count) keep only their state. A filter right after `summarize … by` on a
//! grouping column, or after a projection, runs before it (Kusto's engine
//! does the same rewrite), so partitioning a large table by
//! `hash(DeviceId, N)` does not group every row N times.

mod compile;
mod eval;
pub mod hash;
mod lex;
mod parse;
pub mod value;

pub use value::{Text, Type, Value};

/// A column of a table or of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: Type,
}

impl Column {
    pub fn new(name: &str, ty: Type) -> Column {
        Column {
            name: name.to_string(),
            ty,
        }
    }
}

/// One row of a table, read column by column.
pub trait RowAccess<'a> {
    fn cell(&self, col: usize) -> Value<'a>;
}

impl<'a> RowAccess<'a> for Vec<Value<'a>> {
    fn cell(&self, col: usize) -> Value<'a> {
        self.as_slice().get(col).cloned().unwrap_or(Value::Null)
    }
}

/// A table the queries read: its schema and its rows, generated on demand.
pub trait Table<'a>: Sync {
    fn name(&self) -> &str;
    fn columns(&self) -> &[Column];
    /// Calls `visit` with each row until it returns false.
    fn scan(&self, visit: &mut dyn FnMut(&dyn RowAccess<'a>) -> bool);
}

/// What a query runs with.
#[derive(Debug, Clone)]
pub struct Context {
    /// "Now" in ticks since 1970 (`now()`, `ago()`).
    pub now: i64,
    /// Rows of a table's `Timestamp` outside [from, to] (ticks) are not
    /// there (the service's retention and the request's `Timespan`).
    pub window: Option<(i64, i64)>,
    /// Rows kept in the result; scanning stops when a streaming result has
    /// this many.
    pub max_rows: usize,
}

/// A query's result.
#[derive(Debug)]
pub struct Output<'a> {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value<'a>>>,
    /// Rows produced by the table and rows processed after a blocking
    /// operator: the simulated CPU cost.
    pub work: u64,
    /// More rows than `max_rows` were produced (or scanning was cut there).
    pub truncated: bool,
}

/// A refused query: the message Kusto gives, as Graph passes it on.
#[derive(Debug, Clone, PartialEq)]
pub struct KqlError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Syntax,
    Semantic,
    /// Valid KQL that the simulated tenant does not run.
    Unsupported,
}

impl KqlError {
    /// Kusto's wording of a parse error (e.g. "Query could not be parsed at
    /// 'as' on line [1,20]").
    pub fn syntax(token: &str, line: usize, col: usize) -> KqlError {
        KqlError {
            kind: ErrorKind::Syntax,
            message: format!("Query could not be parsed at '{token}' on line [{line},{col}]"),
        }
    }

    /// `'where' operator: Failed to resolve scalar expression named 'X'.
    /// Fix semantic errors in your query.` — Kusto's message with the
    /// service's recommended action, as Graph answers it
    /// (msgraph-sdk-powershell issue 3188).
    pub fn semantic(op: &str, msg: impl std::fmt::Display) -> KqlError {
        KqlError {
            kind: ErrorKind::Semantic,
            message: format!("'{op}' operator: {msg}. Fix semantic errors in your query."),
        }
    }

    pub fn semantic_bare(msg: impl std::fmt::Display) -> KqlError {
        KqlError {
            kind: ErrorKind::Semantic,
            message: format!("{msg}. Fix semantic errors in your query."),
        }
    }

    pub fn unsupported(op: &str) -> KqlError {
        KqlError {
            kind: ErrorKind::Unsupported,
            message: format!(
                "'{op}' operator: the simulated tenant does not run this operator. It runs a subset of KQL: where, project, project-away, project-keep, project-rename, extend, summarize, order by, sort by, take, limit, top, count and distinct (docs/SIMULATED-TENANT.md)."
            ),
        }
    }
}

impl std::fmt::Display for KqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KqlError {}

/// Parses and checks `query` against `tables` and runs it.
pub fn run<'a>(
    query: &str,
    tables: &[&dyn Table<'a>],
    ctx: &Context,
) -> Result<Output<'a>, KqlError> {
    let toks = lex::lex(query)?;
    let ast = parse::parse(&toks)?;
    let plan = compile::compile(&ast, tables, ctx)?;
    Ok(eval::execute(&plan, ctx))
}

#[cfg(test)]
mod tests;
