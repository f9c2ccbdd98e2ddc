//! Kusto's `hash()`: xxhash64 (seed 0) of the value's bytes, as the Kusto
//! documentation says (`hash-function`): strings as UTF-8, integers,
//! datetimes and timespans as 8 little-endian bytes of their value (ticks),
//! reals as their IEEE bits, booleans as one byte. With a modulo the
//! unsigned hash is reduced into `0..mod`.
//!
//! Checked against the documentation's examples: `hash("World")` is
//! 1846988464401551951 and `hash("World", 100)` is 51. Kusto notes the
//! algorithm may change; the simulated tenant keeps this one, so a
//! partition of the same value is the same on every run.

use super::value::Value;

pub fn xxh64(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, 0)
}

/// The unsigned hash of a value; None for null.
pub fn hash_value(v: &Value) -> Option<u64> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => xxh64(&[*b as u8]),
        Value::Int(i) => xxh64(&(*i as i64).to_le_bytes()),
        Value::Long(i) => xxh64(&i.to_le_bytes()),
        Value::Real(r) => xxh64(&r.to_bits().to_le_bytes()),
        Value::DateTime(t) | Value::TimeSpan(t) => xxh64(&t.to_le_bytes()),
        Value::Str(s) => xxh64(s.as_bytes()),
        Value::Dynamic(d) => match &**d {
            serde_json::Value::String(s) => xxh64(s.as_bytes()),
            other => xxh64(other.to_string().as_bytes()),
        },
    })
}

/// `hash(v)`: a long (the unsigned hash's bits), or `hash(v, m)` in `0..m`.
pub fn kusto_hash(v: &Value, modulo: Option<i64>) -> Value<'static> {
    let Some(h) = hash_value(v) else {
        return Value::Null;
    };
    match modulo {
        None => Value::Long(h as i64),
        Some(m) if m > 0 => Value::Long((h % m as u64) as i64),
        Some(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kustos_documented_examples() {
        assert_eq!(
            kusto_hash(&Value::str("World"), None),
            Value::Long(1_846_988_464_401_551_951)
        );
        assert_eq!(kusto_hash(&Value::str("World"), Some(100)), Value::Long(51));
        // The reference vector of xxhash64 for empty input.
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(kusto_hash(&Value::Null, Some(4)), Value::Null);
    }
}
