//! Typed scalar values of the KQL subset: Kusto's scalar types, its
//! datetime (100 ns ticks) and timespan, and how each is written in a
//! `huntingQueryResults` answer.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Ticks (100 ns, Kusto's and .NET's unit) per second.
pub const TICKS_PER_SEC: i64 = 10_000_000;
pub const TICKS_PER_DAY: i64 = 86_400 * TICKS_PER_SEC;

/// Kusto's scalar types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Bool,
    Int,
    Long,
    Real,
    DateTime,
    TimeSpan,
    String,
    Dynamic,
}

impl Type {
    /// The name in `schema[].Type` of a `huntingQueryResults`: the .NET type
    /// the service reports (`String`, `DateTime`, `Int64`, …), as real
    /// answers show them.
    pub fn schema_name(self) -> &'static str {
        match self {
            Type::Bool => "Boolean",
            Type::Int => "Int32",
            Type::Long => "Int64",
            Type::Real => "Double",
            Type::DateTime => "DateTime",
            Type::TimeSpan => "TimeSpan",
            Type::String => "String",
            Type::Dynamic => "Object",
        }
    }

    /// The name Kusto uses in its messages.
    pub fn kql_name(self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Long => "long",
            Type::Real => "real",
            Type::DateTime => "datetime",
            Type::TimeSpan => "timespan",
            Type::String => "string",
            Type::Dynamic => "dynamic",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Long | Type::Real)
    }
}

/// Text borrowed from the tenant's facts (no copy per row) or owned.
#[derive(Debug, Clone)]
pub enum Text<'a> {
    B(&'a str),
    A(Arc<str>),
}

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::B(s) => s,
            Text::A(s) => s,
        }
    }
}

/// One scalar. Strings are never null in Kusto (empty instead); the other
/// types can be.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Real(f64),
    /// Ticks since 1970-01-01T00:00:00Z.
    DateTime(i64),
    /// Ticks.
    TimeSpan(i64),
    Str(Text<'a>),
    Dynamic(Arc<serde_json::Value>),
}

impl<'a> Value<'a> {
    pub fn str(s: &'a str) -> Value<'a> {
        Value::Str(Text::B(s))
    }

    pub fn owned(s: impl Into<Arc<str>>) -> Value<'a> {
        Value::Str(Text::A(s.into()))
    }

    pub fn empty() -> Value<'a> {
        Value::Str(Text::B(""))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Null, an empty string, or an empty dynamic array/object/string.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Str(s) => s.is_empty(),
            Value::Dynamic(d) => match &**d {
                serde_json::Value::Null => true,
                serde_json::Value::String(s) => s.is_empty(),
                _ => false,
            },
            _ => false,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Dynamic(d) => d.as_bool(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i as i64),
            Value::Long(i) => Some(*i),
            Value::Real(r) if r.is_finite() => Some(*r as i64),
            Value::Dynamic(d) => d.as_i64(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Long(i) => Some(*i as f64),
            Value::Real(r) => Some(*r),
            Value::Dynamic(d) => d.as_f64(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Dynamic(d) => d.as_str(),
            _ => None,
        }
    }

    /// The value as `tostring()` writes it.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Long(i) => i.to_string(),
            Value::Real(r) => format_real(*r),
            Value::DateTime(t) => format_datetime(*t),
            Value::TimeSpan(t) => format_timespan(*t),
            Value::Str(s) => s.to_string(),
            Value::Dynamic(d) => match &**d {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            },
        }
    }

    /// The value inside a dynamic array or property bag.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Long(i) => serde_json::Value::from(*i),
            Value::Real(r) => serde_json::Number::from_f64(*r)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::DateTime(t) => serde_json::Value::String(format_datetime(*t)),
            Value::TimeSpan(t) => serde_json::Value::String(format_timespan(*t)),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Dynamic(d) => (**d).clone(),
        }
    }

    /// Appends the value as it goes into a `results` row.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::Long(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::Real(r) => {
                if r.is_finite() {
                    out.extend_from_slice(format_real(*r).as_bytes())
                } else {
                    out.extend_from_slice(b"null")
                }
            }
            Value::DateTime(t) => write_json_str(out, &format_datetime(*t)),
            Value::TimeSpan(t) => write_json_str(out, &format_timespan(*t)),
            Value::Str(s) => write_json_str(out, s),
            Value::Dynamic(d) => {
                // Writing a serde_json value to a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, &**d);
            }
        }
    }
}

pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn format_real(r: f64) -> String {
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{r:.1}")
    } else {
        format!("{r}")
    }
}

/// Equality as Kusto's `==` sees it (strings case-sensitive, numbers across
/// int/long/real). None when either side is null.
pub fn equals(a: &Value, b: &Value) -> Option<bool> {
    if a.is_null() || b.is_null() {
        return None;
    }
    Some(compare(a, b) == Some(Ordering::Equal))
}

/// Ordering of two values of comparable types; None across types that do
/// not compare, or with null.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Null, _) | (_, Null) => None,
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        (Int(_) | Long(_), Int(_) | Long(_)) => Some(a.as_i64()?.cmp(&b.as_i64()?)),
        (Int(_) | Long(_) | Real(_), Int(_) | Long(_) | Real(_)) => {
            a.as_f64()?.partial_cmp(&b.as_f64()?)
        }
        (DateTime(x), DateTime(y)) | (TimeSpan(x), TimeSpan(y)) => Some(x.cmp(y)),
        (Str(x), Str(y)) => Some((**x).cmp(&**y)),
        (Dynamic(d), other) | (other, Dynamic(d)) => {
            let swapped = matches!(b, Dynamic(_)) && !matches!(a, Dynamic(_));
            let dv = dyn_scalar(d)?;
            let o = compare(&dv, other)?;
            Some(if swapped { o.reverse() } else { o })
        }
        _ => None,
    }
}

/// A dynamic scalar as a typed value, for comparisons.
fn dyn_scalar<'x>(d: &serde_json::Value) -> Option<Value<'x>> {
    Some(match d {
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Long(i),
            None => Value::Real(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::owned(s.as_str()),
        _ => return None,
    })
}

/// Grouping keys (`summarize … by`, `distinct`): equal values hash equal.
impl Hash for Value<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Int(i) => (2u8, *i as i64).hash(h),
            Value::Long(i) => (2u8, *i).hash(h),
            Value::Real(r) => (3u8, if *r == 0.0 { 0 } else { r.to_bits() }).hash(h),
            Value::DateTime(t) => (4u8, t).hash(h),
            Value::TimeSpan(t) => (5u8, t).hash(h),
            Value::Str(s) => (6u8, &**s).hash(h),
            Value::Dynamic(d) => (7u8, d.to_string()).hash(h),
        }
    }
}

impl PartialEq for Value<'_> {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(_) | Long(_), Int(_) | Long(_)) => self.as_i64() == other.as_i64(),
            (Real(a), Real(b)) => a == b || (a.is_nan() && b.is_nan()),
            (DateTime(a), DateTime(b)) | (TimeSpan(a), TimeSpan(b)) => a == b,
            (Str(a), Str(b)) => **a == **b,
            (Dynamic(a), Dynamic(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value<'_> {}

/// Sort order of `order by`: comparable values by value, nulls apart
/// (the caller puts them first or last), values of different types by
/// type.
pub fn sort_cmp(a: &Value, b: &Value) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    compare(a, b).unwrap_or_else(|| rank(a).cmp(&rank(b)))
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Long(_) | Value::Real(_) => 2,
        Value::DateTime(_) => 3,
        Value::TimeSpan(_) => 4,
        Value::Str(_) => 5,
        Value::Dynamic(_) => 6,
    }
}

/// `2024-03-26T09:39:50.7688641Z`: seven fractional digits, as the
/// service writes datetime values.
pub fn format_datetime(ticks: i64) -> String {
    let secs = ticks.div_euclid(TICKS_PER_SEC);
    let frac = ticks.rem_euclid(TICKS_PER_SEC);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(d) => format!("{}.{frac:07}Z", d.format("%Y-%m-%dT%H:%M:%S")),
        None => "0001-01-01T00:00:00.0000000Z".to_string(),
    }
}

/// .NET's `[-][d.]hh:mm:ss[.fffffff]`.
pub fn format_timespan(ticks: i64) -> String {
    let mut s = String::new();
    if ticks < 0 {
        s.push('-');
    }
    let t = ticks.unsigned_abs();
    let tps = TICKS_PER_SEC as u64;
    let days = t / (86_400 * tps);
    let rem = t % (86_400 * tps);
    let (h, m, sec, frac) = (
        rem / (3600 * tps),
        rem / (60 * tps) % 60,
        rem / tps % 60,
        rem % tps,
    );
    if days > 0 {
        let _ = write!(s, "{days}.");
    }
    let _ = write!(s, "{h:02}:{m:02}:{sec:02}");
    if frac > 0 {
        let _ = write!(s, ".{frac:07}");
    }
    s
}

/// A datetime literal as `datetime(…)` and `todatetime()` accept it.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim().trim_matches(|c| c == '"' || c == '\'');
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp() * TICKS_PER_SEC + (d.timestamp_subsec_nanos() / 100) as i64);
    }
    let body = s.strip_suffix('Z').unwrap_or(s);
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(body, f) {
            let u = d.and_utc();
            return Some(u.timestamp() * TICKS_PER_SEC + (u.timestamp_subsec_nanos() / 100) as i64);
        }
    }
    let d = chrono::NaiveDate::parse_from_str(body, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp() * TICKS_PER_SEC)
}

/// A timespan literal's unit in ticks (`d`, `h`, `m`, `s`, `ms` and
/// Kusto's longer spellings).
pub fn timespan_unit(unit: &str) -> Option<i64> {
    Some(match unit {
        "d" | "day" | "days" => TICKS_PER_DAY,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600 * TICKS_PER_SEC,
        "m" | "min" | "minute" | "minutes" => 60 * TICKS_PER_SEC,
        "s" | "sec" | "second" | "seconds" => TICKS_PER_SEC,
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => TICKS_PER_SEC / 1000,
        "microsecond" | "microseconds" => 10,
        "tick" | "ticks" => 1,
        _ => return None,
    })
}

/// An ISO 8601 duration (`P30D`, `PT12H`, `P1DT2H30M`, `P2W`) in ticks.
pub fn parse_iso_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    if rest.is_empty() {
        return None;
    }
    let mut ticks: i64 = 0;
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c {
            'T' | 't' => {
                if !num.is_empty() || in_time {
                    return None;
                }
                in_time = true;
            }
            '0'..='9' | '.' | ',' => num.push(if c == ',' { '.' } else { c }),
            u => {
                let n: f64 = num.parse().ok()?;
                num.clear();
                let unit = match (u.to_ascii_uppercase(), in_time) {
                    ('W', false) => 7 * TICKS_PER_DAY,
                    ('D', false) => TICKS_PER_DAY,
                    ('H', true) => 3600 * TICKS_PER_SEC,
                    ('M', true) => 60 * TICKS_PER_SEC,
                    ('S', true) => TICKS_PER_SEC,
                    _ => return None,
                };
                ticks = ticks.checked_add((n * unit as f64) as i64)?;
                any = true;
            }
        }
    }
    (num.is_empty() && any).then_some(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip_with_seven_digits() {
        let t = parse_datetime("2024-03-26T09:39:50.7688641Z").unwrap();
        assert_eq!(format_datetime(t), "2024-03-26T09:39:50.7688641Z");
        let d = parse_datetime("2024-02-01").unwrap();
        assert_eq!(format_datetime(d), "2024-02-01T00:00:00.0000000Z");
        assert_eq!(
            parse_datetime("2024-02-01 08:00"),
            parse_datetime("2024-02-01T08:00:00Z")
        );
        assert!(parse_datetime("yesterday").is_none());
    }

    #[test]
    fn timespans_format_like_dotnet() {
        assert_eq!(format_timespan(30 * TICKS_PER_DAY), "30.00:00:00");
        assert_eq!(format_timespan(90 * TICKS_PER_SEC), "00:01:30");
        assert_eq!(format_timespan(-TICKS_PER_SEC / 2), "-00:00:00.5000000");
    }

    #[test]
    fn iso_durations() {
        assert_eq!(parse_iso_duration("P30D"), Some(30 * TICKS_PER_DAY));
        assert_eq!(
            parse_iso_duration("P1DT2H30M"),
            Some(TICKS_PER_DAY + 9000 * TICKS_PER_SEC)
        );
        assert_eq!(parse_iso_duration("PT0.5S"), Some(TICKS_PER_SEC / 2));
        assert_eq!(parse_iso_duration("P2W"), Some(14 * TICKS_PER_DAY));
        assert_eq!(parse_iso_duration("P"), None);
        assert_eq!(parse_iso_duration("30D"), None);
        assert_eq!(parse_iso_duration("PT5D"), None);
    }

    #[test]
    fn comparisons_across_numeric_types() {
        assert_eq!(equals(&Value::Int(3), &Value::Long(3)), Some(true));
        assert_eq!(
            compare(&Value::Real(2.5), &Value::Long(3)),
            Some(Ordering::Less)
        );
        assert_eq!(equals(&Value::Null, &Value::Long(3)), None);
        assert_eq!(compare(&Value::str("a"), &Value::Long(1)), None);
    }
}
