//! Pages and records read in place.
//!
//! A page is scanned once for its `value` array and next link without
//! building anything (`RawValue`), so the next page can be requested at once.
//! Each record is then a flat list of its top-level fields: names and string
//! values borrowed from the page (owned only when escaped), every other value
//! left as its JSON text until something asks for it. Ingest reads a handful
//! of fields per record and keeps the rest as the record's own text; building
//! and freeing a `serde_json::Value` tree per record was most of a fetch's CPU.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// One top-level field of a record.
#[derive(Debug, Clone)]
pub struct Slot<'a> {
    pub name: Cow<'a, str>,
    /// The value's JSON text.
    pub raw: &'a str,
    /// The value, when it is a string.
    pub text: Option<Cow<'a, str>>,
}

/// A record: its JSON text and its top-level fields.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    raw: &'a str,
    /// `None` when the record is not a JSON object.
    fields: Option<Vec<Slot<'a>>>,
    /// Whether the text has no white space outside strings, when known
    /// (splitting finds out for free; else it is checked when needed).
    compact: Option<bool>,
}

impl<'a> Record<'a> {
    /// Reads a record's top-level fields; a value that is not an object is a
    /// record with no fields (ingest skips it, naming why).
    pub fn read(text: &'a str) -> Record<'a> {
        let fields = if text.starts_with('{') {
            serde_json::from_str::<Fields>(text).ok().map(|f| f.0)
        } else {
            None
        };
        Record {
            raw: text,
            fields,
            compact: None,
        }
    }

    /// Reads a record from JSON text (tests, and values kept elsewhere).
    pub fn from_json(text: &'a str) -> Result<Record<'a>, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(text)?;
        Ok(Record::read(raw.get()))
    }

    pub fn is_object(&self) -> bool {
        self.fields.is_some()
    }

    /// The record's JSON text, as the service wrote it.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    pub fn fields(&self) -> &[Slot<'a>] {
        self.fields.as_deref().unwrap_or(&[])
    }

    /// A field by name (the last one, as JSON parsers keep, when repeated).
    pub fn get(&self, name: &str) -> Option<&Slot<'a>> {
        self.fields().iter().rev().find(|s| s.name == name)
    }

    /// A string field's value, as written.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name)?.text.as_deref()
    }

    /// A field's value as a `serde_json::Value`.
    pub fn value(&self, name: &str) -> Option<Value> {
        let slot = self.get(name)?;
        Some(match &slot.text {
            Some(t) => Value::String(t.to_string()),
            None => serde_json::from_str(slot.raw).unwrap_or(Value::Null),
        })
    }

    /// The whole record as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.raw).unwrap_or(Value::Null)
    }

    /// The record's properties as compact JSON: its own text when nothing
    /// needs leaving out, else its fields without OData annotations
    /// (`@odata.type` stays: it says what a record is).
    pub fn props_json(&self) -> String {
        self.props_json_without(&[])
    }

    /// `props_json` without the named fields.
    pub fn props_json_without(&self, drop: &[&str]) -> String {
        let Some(fields) = &self.fields else {
            return "{}".into();
        };
        let keep = |s: &Slot| crate::ingest::is_property(&s.name) && !drop.contains(&&*s.name);
        if fields.iter().all(keep) && self.compact.unwrap_or_else(|| is_compact(self.raw)) {
            return self.raw.to_string();
        }
        let mut out = String::with_capacity(self.raw.len());
        out.push('{');
        for s in fields.iter().filter(|s| keep(s)) {
            if out.len() > 1 {
                out.push(',');
            }
            push_field(&mut out, &s.name, s.raw);
        }
        out.push('}');
        out
    }

    /// The named fields that are present, in that order, as a compact JSON
    /// object.
    pub fn pick_json(&self, names: &[&str]) -> String {
        // Sized for the usual case (names needing no escapes, compact
        // values): the text becomes an entity's properties, kept as is.
        let size = names
            .iter()
            .filter_map(|n| self.get(n).map(|s| n.len() + s.raw.len() + 4))
            .sum::<usize>()
            + 2;
        let mut out = String::with_capacity(size);
        out.push('{');
        for name in names {
            if let Some(s) = self.get(name) {
                if out.len() > 1 {
                    out.push(',');
                }
                push_field(&mut out, name, s.raw);
            }
        }
        out.push('}');
        out
    }
}

/// Appends `"name":value`, the value's text made compact if it was not.
fn push_field(out: &mut String, name: &str, text: &str) {
    push_json_str(out, name);
    out.push(':');
    // A string, number or literal is one token, compact as written.
    let scalar = !text.starts_with(['{', '[']);
    if scalar || is_compact(text) {
        out.push_str(text);
    } else if let Ok(v) = serde_json::from_str::<Value>(text) {
        out.push_str(&v.to_string());
    } else {
        out.push_str("null");
    }
}

fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::String(s.to_string()).to_string());
    }
}

/// True when JSON text has no white space outside its strings.
fn is_compact(text: &str) -> bool {
    let b = text.as_bytes();
    if !b.iter().any(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t')) {
        return true;
    }
    let mut in_str = false;
    let mut escaped = false;
    for &c in b {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b' ' | b'\n' | b'\r' | b'\t' => return false,
                _ => {}
            }
        }
    }
    true
}

/// A string borrowed from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

struct Fields<'a>(Vec<Slot<'a>>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some(CowStr(name)) = m.next_key::<CowStr<'de>>()? {
                    let raw: &'de RawValue = m.next_value()?;
                    let text = if raw.get().starts_with('"') {
                        serde_json::from_str::<CowStr<'de>>(raw.get())
                            .ok()
                            .map(|s| s.0)
                    } else {
                        None
                    };
                    fields.push(Slot {
                        name,
                        raw: raw.get(),
                        text,
                    });
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A collection page as received: the body, where each of its `value`
/// items and their top-level fields are (found by `scan::page`, which also
/// checked the JSON), and its next link.
#[derive(Debug, Clone, Default)]
pub struct RawPage {
    body: Bytes,
    scan: crate::scan::PageScan,
    pub next: Option<String>,
}

impl RawPage {
    /// Scans a whole body: checks it is a JSON object, finds each `value`
    /// item's fields and the next link (`@odata.nextLink` or `nextLink`).
    pub fn scan(body: Bytes) -> Result<RawPage, serde_json::Error> {
        let len = body.len();
        RawPage::scan_in(body, 0..len)
    }

    /// Scans the part `within` of a body (a `$batch` sub-response's body).
    pub fn scan_in(body: Bytes, within: Range<usize>) -> Result<RawPage, serde_json::Error> {
        let scan = crate::scan::page(&body, within).map_err(de::Error::custom)?;
        Ok(RawPage::scanned(body, scan))
    }

    /// A page from a scan of (part of) its body.
    pub fn scanned(body: Bytes, mut scan: crate::scan::PageScan) -> RawPage {
        let next = scan.next.take();
        RawPage { body, scan, next }
    }

    /// The page's records, read in place from the offsets the scan found.
    pub fn records(&self) -> Vec<Record<'_>> {
        // The scan checked this text is UTF-8; only a `&str` is made here,
        // of this page's items alone (a `$batch`'s pages share its body).
        let (Some(first), Some(last)) = (self.scan.items.first(), self.scan.items.last()) else {
            return Vec::new();
        };
        let base = first.span.0 as usize;
        let Some(Ok(text)) = self
            .body
            .get(base..last.span.1 as usize)
            .map(std::str::from_utf8)
        else {
            return Vec::new();
        };
        let at = |(start, end): (u32, u32)| text.get(start as usize - base..end as usize - base);
        self.scan
            .items
            .iter()
            .map(|item| {
                let raw = at(item.span).unwrap_or_default();
                let fields = item.fields.and_then(|(from, to)| {
                    let fields = self.scan.fields.get(from as usize..to as usize)?;
                    fields.iter().map(|f| slot(f, &at)).collect()
                });
                Record {
                    raw,
                    compact: fields.as_ref().map(|_| item.compact),
                    fields,
                }
            })
            .collect()
    }
}

/// A field found by the scan, with its name and string value borrowed from
/// the page unless they hold escapes. `None` when an escape does not decode
/// (a lone surrogate): the record then reads as having no fields.
fn slot<'a>(
    f: &crate::scan::FieldAt,
    at: &impl Fn((u32, u32)) -> Option<&'a str>,
) -> Option<Slot<'a>> {
    use crate::scan::{NAME_ESCAPED, STRING, VALUE_ESCAPED};
    let quoted = |span, escaped| crate::scan::unquote(at(span)?, escaped);
    Some(Slot {
        name: quoted(f.name, f.flags & NAME_ESCAPED != 0)?,
        raw: at(f.value)?,
        text: if f.flags & STRING != 0 {
            Some(quoted(f.value, f.flags & VALUE_ESCAPED != 0)?)
        } else {
            None
        },
    })
}

/// What the first bytes of a page say of its next link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// The next link, read before the records.
    Link(String),
    /// The records begin (or the page ends) with no next link before them:
    /// only the whole page can tell.
    NoLink,
    /// Too few bytes yet to tell.
    NeedMore,
}

/// Reads the top-level fields that come before a page's `value` array for
/// its next link. Graph writes `@odata.nextLink` before `value` (as its
/// paging documentation shows), so the next request can go out as soon as
/// the first bytes of a page arrive, not after the whole page is read and
/// scanned: that wait was on the critical path of every chain of pages.
/// `prefix` may end anywhere; a field cut off asks for more.
pub fn head_link(prefix: &[u8]) -> Head {
    fn ws(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }
    /// One JSON value at `i` and the offset after it; `None` when it is
    /// cut off, `Some(Err)` when it is not JSON.
    fn value<'a, T: Deserialize<'a>>(b: &'a [u8], i: usize) -> Option<Result<(T, usize), ()>> {
        let mut it = serde_json::Deserializer::from_slice(&b[i..]).into_iter::<T>();
        match it.next()? {
            Ok(v) => Some(Ok((v, i + it.byte_offset()))),
            Err(e) if e.is_eof() => None,
            Err(_) => Some(Err(())),
        }
    }
    let mut i = ws(prefix, 0);
    match prefix.get(i) {
        None => return Head::NeedMore,
        Some(b'{') => i += 1,
        Some(_) => return Head::NoLink,
    }
    loop {
        i = ws(prefix, i);
        match prefix.get(i) {
            None => return Head::NeedMore,
            Some(b'"') => {}
            Some(_) => return Head::NoLink,
        }
        let (key, after) = match value::<Cow<str>>(prefix, i) {
            None => return Head::NeedMore,
            Some(Err(())) => return Head::NoLink,
            Some(Ok(k)) => k,
        };
        i = ws(prefix, after);
        match prefix.get(i) {
            None => return Head::NeedMore,
            Some(b':') => i = ws(prefix, i + 1),
            Some(_) => return Head::NoLink,
        }
        if i >= prefix.len() {
            return Head::NeedMore;
        }
        match &*key {
            "value" => return Head::NoLink,
            "@odata.nextLink" | "nextLink" => {
                return match value::<Option<String>>(prefix, i) {
                    None => Head::NeedMore,
                    Some(Ok((Some(link), _))) if !link.is_empty() => Head::Link(link),
                    Some(_) => Head::NoLink,
                };
            }
            _ => match value::<de::IgnoredAny>(prefix, i) {
                None => return Head::NeedMore,
                Some(Err(())) => return Head::NoLink,
                Some(Ok((_, after))) => i = ws(prefix, after),
            },
        }
        match prefix.get(i) {
            None => return Head::NeedMore,
            Some(b',') => i += 1,
            Some(_) => return Head::NoLink,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A record found by the page scan reads exactly as serde reads it.
    fn same_as_serde(text: &str) {
        let by_serde = Record::read(text);
        let body = format!("{{\"value\": [{text}]}}");
        let page = RawPage::scan(Bytes::from(body)).expect("scans");
        let records = page.records();
        let [split] = records.as_slice() else {
            panic!("one record: {text}")
        };
        assert_eq!(split.raw(), text);
        assert_eq!(split.is_object(), by_serde.is_object(), "{text}");
        let view = |r: &Record| -> Vec<(String, String, Option<String>)> {
            r.fields()
                .iter()
                .map(|s| {
                    (
                        s.name.to_string(),
                        s.raw.to_string(),
                        s.text.as_ref().map(|t| t.to_string()),
                    )
                })
                .collect()
        };
        assert_eq!(view(split), view(&by_serde), "{text}");
        if split.is_object() {
            assert_eq!(split.compact, Some(is_compact(text)), "{text}");
        }
    }

    #[test]
    fn records_split_in_place_read_as_serde_reads_them() {
        for text in [
            r#"{}"#,
            r#"{ }"#,
            r#"{"a":1}"#,
            r#"{ "a" : 1 , "b" : [ 1 , { "x" : "}" } ] , "c" : "q\"uote" }"#,
            r#"{"k\u00e9y":"v\\\\","e\"":null,"t":true,"f":false}"#,
            r#"{"n":-1.5e+3,"z":0,"s":"ends in a backslash \\","u":"\u2603 snow"}"#,
            r#"{"deep":{"a":[[],[{}],{"b":"]}[{"}],"c":"\\\""},"after":"x"}"#,
            "{\n\t\"tabbed\"\t:\r\n\"yes\"\n}",
            r#"{"dup":1,"dup":2}"#,
            r#"{"emoji":"😀","name":"Åsa Öberg"}"#,
            r#"[1,2]"#,
            r#""just a string""#,
            r#"42"#,
            r#"null"#,
        ] {
            same_as_serde(text);
        }
    }

    #[test]
    fn records_of_every_simulated_collection_split_as_serde_reads_them() {
        use crate::fake::{FakeParams, FakeTenant, render};
        let t = FakeTenant::generate(FakeParams {
            users: 300,
            ..Default::default()
        });
        let mut records: Vec<Value> = Vec::new();
        records.extend((0..t.users.len()).map(|i| render::user(&t, i)));
        records.extend((0..t.devices.len()).map(|i| render::managed_device(&t, i)));
        records.extend((0..t.machines.len()).map(|i| render::machine(&t, i)));
        assert!(records.len() > 600);
        for r in records {
            same_as_serde(&r.to_string());
            same_as_serde(&serde_json::to_string_pretty(&r).expect("json"));
        }
    }

    #[test]
    fn a_page_names_its_records_and_next_link() {
        let body = Bytes::from(
            json!({
                "@odata.context": "x",
                "value": [{"id": "a", "n": 1}, "not an object", {"id": "b\u{e9}\"q\"", "nested": {"id": "inner"}}],
                "@odata.nextLink": "http://127.0.0.1/next"
            })
            .to_string(),
        );
        let page = RawPage::scan(body).expect("scans");
        assert_eq!(page.next.as_deref(), Some("http://127.0.0.1/next"));
        let records = page.records();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].str("id"), Some("a"));
        assert!(!records[1].is_object());
        assert_eq!(records[2].str("id"), Some("bé\"q\""));
        assert_eq!(records[2].value("nested"), Some(json!({"id": "inner"})));
        assert_eq!(records[0].str("n"), None);
        assert_eq!(records[0].value("n"), Some(json!(1)));
    }

    #[test]
    fn pages_without_value_or_link_are_empty_and_bad_json_is_an_error() {
        let page = RawPage::scan(Bytes::from_static(b"{\"nextLink\":\"\"}")).expect("scans");
        assert!(page.records().is_empty() && page.next.is_none());
        let page = RawPage::scan(Bytes::from_static(b"{\"value\":null,\"nextLink\":\"n\"}"))
            .expect("scans");
        assert!(page.records().is_empty());
        assert_eq!(page.next.as_deref(), Some("n"));
        assert!(RawPage::scan(Bytes::from_static(b"{\"value\":[{\"id\":")).is_err());
        assert!(RawPage::scan(Bytes::from_static(b"<html>")).is_err());
    }

    #[test]
    fn props_are_the_record_without_annotations_and_compact() {
        let text = r##"{"@odata.type":"#microsoft.graph.user","@odata.etag":"W/\"1\"","id":"u1","a": [1, 2],"s":"x y"}"##;
        let r = Record::from_json(text).expect("json");
        let props = r.props_json();
        assert_eq!(
            props,
            r##"{"@odata.type":"#microsoft.graph.user","id":"u1","a":[1,2],"s":"x y"}"##
        );
        let plain = r#"{"id":"u1","s":"x y"}"#;
        assert_eq!(Record::from_json(plain).expect("json").props_json(), plain);
        assert_eq!(Record::from_json("[1]").expect("json").props_json(), "{}");
    }

    #[test]
    fn picked_fields_keep_their_json() {
        let r = Record::from_json(r#"{"a":"x\n","b":null,"c":{"d":[true]}}"#).expect("json");
        assert_eq!(
            r.pick_json(&["c", "missing", "a", "b"]),
            r#"{"c":{"d":[true]},"a":"x\n","b":null}"#
        );
        let back: Value = serde_json::from_str(&r.pick_json(&["a"])).expect("valid");
        assert_eq!(back, json!({"a": "x\n"}));
    }

    #[test]
    fn repeated_fields_keep_the_last_like_json_parsers() {
        let r = Record::from_json(r#"{"id":"first","id":"second"}"#).expect("json");
        assert_eq!(r.str("id"), Some("second"));
    }

    #[test]
    fn the_head_of_a_page_names_its_next_link_before_the_records() {
        let page = br#"{"@odata.context":"https://graph/v1.0/$metadata#users","@odata.count":24000,"@odata.nextLink":"https://graph/v1.0/users?$skiptoken=abc","value":[{"id":"u1"}]}"#;
        let link = Head::Link("https://graph/v1.0/users?$skiptoken=abc".into());
        assert_eq!(head_link(page), link);
        // However the bytes are cut, the answer is the link or "more".
        for cut in 0..page.len() {
            let h = head_link(&page[..cut]);
            assert!(h == link || h == Head::NeedMore, "cut at {cut}: {h:?}");
        }
        let end = page.iter().position(|&b| b == b'[').expect("array");
        assert_eq!(head_link(&page[..end]), link);
    }

    #[test]
    fn a_head_without_a_next_link_says_so_at_the_records() {
        // Defender and ARM may write the link after the records.
        assert_eq!(
            head_link(br#"{"@odata.context":"x","value":[{"id":1}],"@odata.nextLink":"n"}"#),
            Head::NoLink
        );
        assert_eq!(head_link(br#"{"value":["#), Head::NoLink);
        assert_eq!(head_link(br#"{"value""#), Head::NeedMore);
        assert_eq!(head_link(br#"{"nextLink":null,"value":[]}"#), Head::NoLink);
        assert_eq!(head_link(br#"{"nextLink":"","value":[]}"#), Head::NoLink);
        assert_eq!(
            head_link(br#"  {"nextLink" : "l" , "value":[]}"#),
            Head::Link("l".into())
        );
        assert_eq!(head_link(br#"{"error":{"code":"x"}}"#), Head::NoLink);
        assert_eq!(head_link(b"[1,2]"), Head::NoLink);
        assert_eq!(head_link(b"not json"), Head::NoLink);
        assert_eq!(head_link(b""), Head::NeedMore);
        assert_eq!(head_link(br#"{"@odata.count":12"#), Head::NeedMore);
    }
}
