//! Tokens of the KQL subset, each with the line and column where it starts
//! (for "Query could not be parsed at 'X' on line [L,C]").

use super::KqlError;
use super::value::{TICKS_PER_SEC, parse_datetime, timespan_unit};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Long(i64),
    Real(f64),
    /// A timespan literal (`30d`, `1.5h`) in ticks.
    Span(i64),
    /// `datetime(…)` with its literal, in ticks (None: `datetime(null)`).
    Date(Option<i64>),
    /// `dynamic(…)` with its JSON literal.
    Dyn(serde_json::Value),
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    pub col: usize,
    /// Byte offsets in the query text.
    pub start: usize,
    pub end: usize,
}

/// Punctuation, longest first.
const PUNCT: &[&str] = &[
    "==", "!=", "=~", "!~", "<=", ">=", "..", "<>", "|", "(", ")", "[", "]", ",", "=", "<", ">",
    "+", "-", "*", "/", "%", ".", ";", "!", ":",
];

/// Operators whose names carry a hyphen: lexed as one identifier.
const HYPHENATED: &[&str] = &[
    "project-away",
    "project-rename",
    "project-keep",
    "project-reorder",
    "mv-expand",
    "mv-apply",
    "make-series",
    "parse-where",
    "parse-kv",
    "top-nested",
    "top-hitters",
    "make-graph",
    "graph-match",
    "graph-merge",
    "graph-to-table",
];

pub fn lex(src: &str) -> Result<Vec<Token>, KqlError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut line_start = 0;
    let at = |pos: usize, line: usize, line_start: usize| {
        (line, src[line_start..pos].chars().count() + 1)
    };
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            i += 1;
            line += 1;
            line_start = i;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let (l, col) = at(i, line, line_start);
        let start = i;
        let push = |out: &mut Vec<Token>, tok: Tok, end: usize| {
            out.push(Token {
                tok,
                line: l,
                col,
                start,
                end,
            })
        };
        let syntax = |pos: usize| {
            let (l, c) = at(pos, line, line_start);
            let text: String = src[pos..].chars().take(1).collect();
            KqlError::syntax(&text, l, c)
        };
        // Strings: "…", '…', verbatim @"…", obfuscated h"…".
        let verbatim = (c == b'@' || c == b'h' || c == b'H')
            && matches!(bytes.get(i + 1), Some(b'"') | Some(b'\''));
        if c == b'"' || c == b'\'' || verbatim {
            let raw = c == b'@';
            let q = if verbatim { bytes[i + 1] } else { c };
            i += if verbatim { 2 } else { 1 };
            let mut s = String::new();
            let mut closed = false;
            while i < bytes.len() {
                let ch = src[i..].chars().next().unwrap_or('\0');
                let b = bytes[i];
                if b == q {
                    if raw && bytes.get(i + 1) == Some(&q) {
                        s.push(q as char);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    closed = true;
                    break;
                }
                if b == b'\n' {
                    break;
                }
                if b == b'\\' && !raw {
                    let Some(&e) = bytes.get(i + 1) else { break };
                    s.push(match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'\\' => '\\',
                        b'"' => '"',
                        b'\'' => '\'',
                        _ => return Err(syntax(i)),
                    });
                    i += 2;
                    continue;
                }
                s.push(ch);
                i += ch.len_utf8();
            }
            if !closed {
                return Err(syntax(start));
            }
            push(&mut out, Tok::Str(s), i);
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            let mut is_real = false;
            if j + 1 < bytes.len() && bytes[j] == b'.' && bytes[j + 1].is_ascii_digit() {
                is_real = true;
                j += 1;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
            }
            if j < bytes.len() && (bytes[j] == b'e' || bytes[j] == b'E') {
                let mut k = j + 1;
                if k < bytes.len() && (bytes[k] == b'+' || bytes[k] == b'-') {
                    k += 1;
                }
                if k < bytes.len() && bytes[k].is_ascii_digit() {
                    is_real = true;
                    j = k;
                    while j < bytes.len() && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                }
            }
            let num = &src[i..j];
            // A unit right after the number makes a timespan (`30d`, `1.5h`).
            let mut k = j;
            while k < bytes.len() && bytes[k].is_ascii_alphabetic() {
                k += 1;
            }
            if k > j {
                let unit = &src[j..k];
                let Some(per) = timespan_unit(unit) else {
                    return Err(syntax(start));
                };
                let n: f64 = num.parse().map_err(|_| syntax(start))?;
                push(&mut out, Tok::Span((n * per as f64).round() as i64), k);
                i = k;
                continue;
            }
            let tok = if is_real {
                Tok::Real(num.parse().map_err(|_| syntax(start))?)
            } else {
                match num.parse::<i64>() {
                    Ok(n) => Tok::Long(n),
                    Err(_) => Tok::Real(num.parse().map_err(|_| syntax(start))?),
                }
            };
            push(&mut out, tok, j);
            i = j;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] == b'$')
            {
                j += 1;
            }
            let mut word = src[i..j].to_string();
            // `project-away` and friends.
            if j < bytes.len() && bytes[j] == b'-' {
                let mut k = j + 1;
                while k < bytes.len() && (bytes[k].is_ascii_alphanumeric() || bytes[k] == b'_') {
                    k += 1;
                }
                let joined = &src[i..k];
                if HYPHENATED.iter().any(|h| h.eq_ignore_ascii_case(joined)) {
                    word = joined.to_string();
                    j = k;
                }
            }
            // `in~`, `has_any`… : `in~` is one operator.
            if word == "in" && bytes.get(j) == Some(&b'~') {
                word.push('~');
                j += 1;
            }
            // Literals whose text is not an expression.
            let mut k = j;
            while k < bytes.len() && (bytes[k] == b' ' || bytes[k] == b'\t') {
                k += 1;
            }
            let lower = word.to_ascii_lowercase();
            if bytes.get(k) == Some(&b'(')
                && matches!(lower.as_str(), "datetime" | "dynamic" | "timespan" | "time")
            {
                let open = k;
                let mut depth = 0usize;
                let mut m = open;
                let mut in_str: Option<u8> = None;
                while m < bytes.len() {
                    let b = bytes[m];
                    match in_str {
                        Some(q) if b == q => in_str = None,
                        Some(_) => {}
                        None => match b {
                            b'"' | b'\'' => in_str = Some(b),
                            b'(' | b'[' | b'{' => depth += 1,
                            b')' | b']' | b'}' => {
                                depth = depth.saturating_sub(1);
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        },
                    }
                    m += 1;
                }
                if m >= bytes.len() {
                    return Err(syntax(start));
                }
                let inner = src[open + 1..m].trim();
                let tok = match lower.as_str() {
                    "datetime" => {
                        if inner.eq_ignore_ascii_case("null") {
                            Tok::Date(None)
                        } else {
                            Tok::Date(Some(parse_datetime(inner).ok_or_else(|| {
                                KqlError::semantic_bare(format!(
                                    "Failed to parse datetime literal: '{inner}'"
                                ))
                            })?))
                        }
                    }
                    "dynamic" => Tok::Dyn(
                        serde_json::from_str(&single_quotes_to_json(inner)).map_err(|_| {
                            let (l, c) = at(open + 1, line, line_start);
                            KqlError::syntax(
                                inner
                                    .chars()
                                    .next()
                                    .map(String::from)
                                    .as_deref()
                                    .unwrap_or(")"),
                                l,
                                c,
                            )
                        })?,
                    ),
                    _ => {
                        let toks = lex(inner)?;
                        match toks.first().map(|t| &t.tok) {
                            Some(Tok::Span(t)) => Tok::Span(*t),
                            Some(Tok::Long(n)) => Tok::Span(n * TICKS_PER_SEC * 86_400),
                            _ => return Err(syntax(open + 1)),
                        }
                    }
                };
                push(&mut out, tok, m + 1);
                i = m + 1;
                continue;
            }
            push(&mut out, Tok::Ident(word), j);
            i = j;
            continue;
        }
        let rest = &src[i..];
        let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) else {
            return Err(syntax(i));
        };
        push(&mut out, Tok::Punct(p), i + p.len());
        i += p.len();
    }
    let (l, col) = at(src.len(), line, line_start);
    out.push(Token {
        tok: Tok::Eof,
        line: l,
        col,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

/// Kusto's dynamic literals take single-quoted strings; JSON does not.
fn single_quotes_to_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'') => {
                quote = Some('\'');
                out.push('"');
            }
            (None, '"') => {
                quote = Some('"');
                out.push('"');
            }
            (Some(q), '\\') => {
                out.push('\\');
                if let Some(n) = chars.next() {
                    if q == '\'' && n == '\'' {
                        out.pop();
                        out.push('\'');
                    } else {
                        out.push(n);
                    }
                }
            }
            (Some('\''), '\'') | (Some('"'), '"') => {
                quote = None;
                out.push('"');
            }
            (Some('\''), '"') => out.push_str("\\\""),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kql::value::TICKS_PER_DAY;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn lexes_operators_literals_and_positions() {
        let t = toks(
            "DeviceInfo | where Timestamp > ago(30d) and X =~ 'a\\'b' // note\n| project-away Y",
        );
        assert_eq!(t[0], Tok::Ident("DeviceInfo".into()));
        assert_eq!(t[1], Tok::Punct("|"));
        assert!(t.contains(&Tok::Span(30 * TICKS_PER_DAY)));
        assert!(t.contains(&Tok::Punct("=~")));
        assert!(t.contains(&Tok::Str("a'b".into())));
        assert!(t.contains(&Tok::Ident("project-away".into())));
        let l = lex("T\n  | take 1").unwrap();
        assert_eq!((l[1].line, l[1].col), (2, 3));
    }

    #[test]
    fn lexes_special_literals() {
        assert_eq!(
            toks("datetime(2024-01-01)")[0],
            Tok::Date(Some(19_723 * TICKS_PER_DAY))
        );
        assert_eq!(
            toks("dynamic([\"a\", 1])")[0],
            Tok::Dyn(serde_json::json!(["a", 1]))
        );
        assert_eq!(toks("@'C:\\x'")[0], Tok::Str("C:\\x".into()));
        assert_eq!(
            toks("dynamic(['a\"b', \"c\"])")[0],
            Tok::Dyn(serde_json::json!(["a\"b", "c"]))
        );
        assert_eq!(toks("in~ (1)")[0], Tok::Ident("in~".into()));
        assert_eq!(toks("1.5h")[0], Tok::Span(54_000_000_000));
        assert_eq!(toks("2.5")[0], Tok::Real(2.5));
        assert_eq!(toks("a-b")[1], Tok::Punct("-"));
    }

    #[test]
    fn reports_where_lexing_fails() {
        let e = lex("T | where x == \"open").unwrap_err();
        assert!(e.message.contains("on line [1,16]"), "{}", e.message);
        let e = lex("T | where 3zz").unwrap_err();
        assert!(e.message.contains("'3'"), "{}", e.message);
        assert!(lex("T | where x # 1").is_err());
    }
}
