//! Pages and records read in place: `RawPage` (a body, where the scan found
//! its items and their top-level fields, its next link) and `Record`.
//!
//! `scan` checks a page and notes offsets in one pass; a `Record` keeps the
//! offsets of its top-level fields and reads one (a name compared in place,
//! a string borrowed from the page, decoded only when it holds escapes)
//! only when ingest asks for it. Ingest reads a handful of fields per record
//! and keeps the record's own text as its properties; a list of every field
//! made up front for every record was a tenth of a fetch's CPU. Items serde
//! could not build are rewritten first (`RawPage::scanned`). `head_link`
//! reads a next link from a page's first bytes, so the next request can go
//! out before the page has arrived whole.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde::de;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::fetch::scan::{FieldAt, ItemAt, NAME_ESCAPED, STRING, VALUE_ESCAPED};
use crate::model::{Name, Props, PropsWriter};

/// One top-level field of a record, as a view of its text.
#[derive(Debug, Clone)]
pub struct Slot<'a> {
    pub name: Cow<'a, str>,
    /// The value's JSON text.
    pub raw: &'a str,
    /// The value, when it is a string.
    pub text: Option<Cow<'a, str>>,
}

/// A record: its JSON text and where its top-level fields are. Fields are
/// found by the offsets the scan noted and read only when asked for: ingest
/// reads a handful of a record's fields, and building a list of every
/// field of every record (names, values, strings) was a tenth of a fetch's
/// CPU.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    raw: &'a str,
    /// The text the fields' offsets point into, which starts at offset
    /// `base` (a page's records share the page's text).
    text: &'a str,
    base: u32,
    /// `None` when the record is not a JSON object (or holds an escape that
    /// does not decode).
    fields: Option<Cow<'a, [FieldAt]>>,
    /// The string values that hold escapes, decoded, by field position:
    /// usually none, and then no allocation.
    unescaped: Vec<(u32, Box<str>)>,
    /// Whether the text has no white space outside strings (the scan finds
    /// out for free; false when unknown, and then each value is checked).
    compact: bool,
    /// What was changed to make the record readable, if anything.
    repair: Option<&'a crate::fetch::scan::Repair>,
}

impl<'a> Record<'a> {
    /// Reads a record's top-level fields; a value that is not an object is a
    /// record with no fields (ingest skips it, naming why).
    pub fn read(text: &'a str) -> Record<'a> {
        let scanned = if text.starts_with('{') {
            crate::fetch::scan::record(text.as_bytes())
        } else {
            None
        };
        match scanned {
            Some((item, fields)) => Record::new(text, text, 0, &item, Cow::Owned(fields)),
            None => Record::not_object(text),
        }
    }

    fn not_object(raw: &'a str) -> Record<'a> {
        Record {
            raw,
            text: raw,
            base: 0,
            fields: None,
            unescaped: Vec::new(),
            compact: false,
            repair: None,
        }
    }

    /// A record from its scanned item and fields; the escaped names and
    /// strings are decoded now, so that one that does not decode (a lone
    /// surrogate) makes a record without fields, as serde would refuse it.
    fn new(
        raw: &'a str,
        text: &'a str,
        base: u32,
        item: &ItemAt,
        fields: Cow<'a, [FieldAt]>,
    ) -> Record<'a> {
        let mut record = Record {
            raw,
            text,
            base,
            fields: None,
            unescaped: Vec::new(),
            compact: item.compact,
            repair: None,
        };
        if item.escapes {
            for (i, f) in fields.iter().enumerate() {
                if f.flags & NAME_ESCAPED != 0 && record.unquote(f.name, true).is_none() {
                    return record;
                }
                if f.flags & VALUE_ESCAPED != 0 {
                    match record.unquote(f.value, true) {
                        Some(t) => record.unescaped.push((i as u32, t.into())),
                        None => return record,
                    }
                }
            }
        }
        record.fields = Some(fields);
        record
    }

    /// Reads a record from JSON text (tests, and values kept elsewhere).
    pub fn from_json(text: &'a str) -> Result<Record<'a>, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(text)?;
        Ok(Record::read(raw.get()))
    }

    pub fn is_object(&self) -> bool {
        self.fields.is_some()
    }

    /// What was changed to make this record readable (a value nested too
    /// deep cut, a number out of range kept as text), if anything.
    pub fn repair(&self) -> Option<&'a crate::fetch::scan::Repair> {
        self.repair
    }

    /// The record's JSON text, as the service wrote it.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The text at a scanned span.
    fn at(&self, span: (u32, u32)) -> &'a str {
        span_text(self.text, self.base, span)
    }

    fn unquote(&self, span: (u32, u32), escaped: bool) -> Option<Cow<'a, str>> {
        crate::fetch::scan::unquote(self.at(span), escaped)
    }

    /// Whether a field has this name, without decoding it unless it holds
    /// escapes.
    fn is_named(&self, f: &FieldAt, name: &str) -> bool {
        if f.flags & NAME_ESCAPED != 0 {
            return self.unquote(f.name, true).is_some_and(|n| n == name);
        }
        (f.name.1 - f.name.0) as usize == name.len() + 2
            && self.at((f.name.0 + 1, f.name.1 - 1)) == name
    }

    fn field_at(&self) -> &[FieldAt] {
        self.fields.as_deref().unwrap_or(&[])
    }

    /// The position of a field (the last one, as JSON parsers keep, when
    /// repeated).
    fn position(&self, name: &str) -> Option<usize> {
        self.field_at().iter().rposition(|f| self.is_named(f, name))
    }

    /// A field's string value at a position.
    fn text_at(&self, i: usize) -> Option<&str> {
        let f = self.field_at().get(i)?;
        if f.flags & STRING == 0 {
            None
        } else if f.flags & VALUE_ESCAPED != 0 {
            let at = self.unescaped.iter().find(|(j, _)| *j as usize == i)?;
            Some(&at.1)
        } else {
            Some(self.at((f.value.0 + 1, f.value.1 - 1)))
        }
    }

    fn slot(&self, i: usize) -> Option<Slot<'a>> {
        let f = self.field_at().get(i)?;
        Some(Slot {
            name: self.unquote(f.name, f.flags & NAME_ESCAPED != 0)?,
            raw: self.at(f.value),
            text: if f.flags & STRING != 0 {
                Some(self.unquote(f.value, f.flags & VALUE_ESCAPED != 0)?)
            } else {
                None
            },
        })
    }

    /// The record's fields, in order (read on each call).
    pub fn fields(&self) -> impl Iterator<Item = Slot<'a>> + '_ {
        (0..self.field_at().len()).filter_map(|i| self.slot(i))
    }

    /// A field by name (the last one, as JSON parsers keep, when repeated).
    pub fn get(&self, name: &str) -> Option<Slot<'a>> {
        self.slot(self.position(name)?)
    }

    /// A field's value as JSON text.
    pub fn raw_field(&self, name: &str) -> Option<&'a str> {
        let f = self.field_at().get(self.position(name)?)?;
        Some(self.at(f.value))
    }

    /// A string field's value, as written.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.text_at(self.position(name)?)
    }

    /// A field's value as a `serde_json::Value`.
    pub fn value(&self, name: &str) -> Option<Value> {
        let i = self.position(name)?;
        Some(match self.text_at(i) {
            Some(t) => Value::String(t.to_string()),
            None => serde_json::from_str(self.at(self.field_at()[i].value)).unwrap_or(Value::Null),
        })
    }

    /// The whole record as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.raw).unwrap_or(Value::Null)
    }

    /// The record's properties: its fields without OData annotations
    /// (`@odata.type` stays: it says what a record is), values made
    /// compact, names shared with every record of the same shape.
    pub fn props(&self) -> Props {
        self.props_without(&[])
    }

    /// `props` without the named fields.
    pub fn props_without(&self, drop: &[&str]) -> Props {
        let Some(fields) = &self.fields else {
            return Props::json("{}");
        };
        let mut out = PropsWriter::new();
        for f in fields.iter() {
            // The name as written: it was a JSON string, and stays one.
            let written = self.at(f.name);
            let name = if f.flags & NAME_ESCAPED == 0 {
                Cow::Borrowed(written.get(1..written.len() - 1).unwrap_or(""))
            } else {
                self.unquote(f.name, true).unwrap_or_default()
            };
            if is_property(&name) && !drop.contains(&&*name) {
                out.field(Name::Written(written), self.compact(self.at(f.value)));
            }
        }
        out.finish()
    }

    /// The named fields that are present, in that order.
    pub fn pick(&self, names: &[&str]) -> Props {
        let mut out = PropsWriter::new();
        for name in names {
            if let Some(raw) = self.raw_field(name) {
                out.field(Name::Plain(name), self.compact(raw));
            }
        }
        out.finish()
    }

    /// A value of this record as compact JSON text.
    fn compact(&self, text: &'a str) -> Cow<'a, str> {
        // A string, number or literal is one token, compact as written.
        let scalar = !text.starts_with(['{', '[']);
        if scalar || self.compact || is_compact(text) {
            Cow::Borrowed(text)
        } else if let Ok(v) = serde_json::from_str::<Value>(text) {
            Cow::Owned(v.to_string())
        } else {
            Cow::Borrowed("null")
        }
    }
}

/// The text at a scanned span (body offsets) of `text`, which starts at
/// offset `base` of the body; empty if the span is not in it.
fn span_text(text: &str, base: u32, (start, end): (u32, u32)) -> &str {
    let base = base as usize;
    (start as usize)
        .checked_sub(base)
        .zip((end as usize).checked_sub(base))
        .and_then(|(s, e)| text.get(s..e))
        .unwrap_or_default()
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

/// A collection page as received: the body, where each of its `value`
/// items and their top-level fields are (found by `scan::page`, which also
/// checked the JSON), and its next link.
#[derive(Debug, Clone, Default)]
pub struct RawPage {
    body: Bytes,
    scan: crate::fetch::scan::PageScan,
    pub next: Option<String>,
    /// Items rewritten so they can be read (`scan::repair`), by position.
    repairs: Vec<(usize, crate::fetch::scan::Repair)>,
}

impl RawPage {
    /// Scans a whole body: checks it is a JSON object, finds each `value`
    /// item's fields and the next link (`@odata.nextLink` or `nextLink`).
    pub fn scan(body: Bytes) -> Result<RawPage, serde_json::Error> {
        let len = body.len();
        RawPage::scan_in(body, 0..len)
    }

    /// Scans an Azure Resource Graph answer: its `data` rows are the
    /// records, and its `$skipToken` is `next`.
    pub fn scan_resource_graph(body: Bytes) -> Result<RawPage, serde_json::Error> {
        let scan =
            crate::fetch::scan::page_of(crate::fetch::scan::RESOURCE_GRAPH, &body, 0..body.len())
                .map_err(de::Error::custom)?;
        Ok(RawPage::scanned(
            body,
            scan,
            crate::fetch::scan::RESOURCE_GRAPH,
        ))
    }

    /// Scans an advanced hunting answer: its `results` rows are the
    /// records.
    pub fn scan_hunting(body: Bytes) -> Result<RawPage, serde_json::Error> {
        let scan = crate::fetch::scan::page_of(crate::fetch::scan::HUNTING, &body, 0..body.len())
            .map_err(de::Error::custom)?;
        Ok(RawPage::scanned(body, scan, crate::fetch::scan::HUNTING))
    }

    /// How many records the page holds.
    pub fn len(&self) -> usize {
        self.scan.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scan.items.is_empty()
    }

    /// Scans the part `within` of a body (a `$batch` sub-response's body).
    pub fn scan_in(body: Bytes, within: Range<usize>) -> Result<RawPage, serde_json::Error> {
        let scan = crate::fetch::scan::page(&body, within).map_err(de::Error::custom)?;
        Ok(RawPage::scanned(body, scan, crate::fetch::scan::COLLECTION))
    }

    /// A page from a scan of (part of) its body. Items that serde could not
    /// build a value of (`ItemAt::odd`) are rewritten first, keeping what
    /// can be kept, and the page is scanned again: rare, and then only the
    /// page's own part of the body is copied.
    pub fn scanned(
        body: Bytes,
        mut scan: crate::fetch::scan::PageScan,
        shape: crate::fetch::scan::Shape,
    ) -> RawPage {
        if scan.has_odd() {
            if let Some(page) = RawPage::repaired(&body, &scan, shape) {
                return page;
            }
        }
        let next = scan.next.take();
        RawPage {
            body,
            scan,
            next,
            repairs: Vec::new(),
        }
    }

    fn repaired(
        body: &Bytes,
        scan: &crate::fetch::scan::PageScan,
        shape: crate::fetch::scan::Shape,
    ) -> Option<RawPage> {
        let (start, end) = (scan.span.0 as usize, scan.span.1 as usize);
        let mut out = Vec::with_capacity(end.saturating_sub(start) + 64);
        let mut repairs = Vec::new();
        let mut at = start;
        for (k, item) in scan.items.iter().enumerate().filter(|(_, i)| i.odd) {
            let (s, e) = (item.span.0 as usize, item.span.1 as usize);
            out.extend_from_slice(body.get(at..s)?);
            let (text, repair) = crate::fetch::scan::repair(body.get(s..e)?)?;
            out.extend_from_slice(text.as_bytes());
            if !repair.notes.is_empty() {
                repairs.push((k, repair));
            }
            at = e;
        }
        out.extend_from_slice(body.get(at..end)?);
        let body = Bytes::from(out);
        let mut scan = crate::fetch::scan::page_of(shape, &body, 0..body.len()).ok()?;
        let next = scan.next.take();
        Some(RawPage {
            body,
            scan,
            next,
            repairs,
        })
    }

    /// The page's records, read in place from the offsets the scan found.
    pub fn records(&self) -> Vec<Record<'_>> {
        // The scan checked this text is UTF-8; only a `&str` is made here,
        // of this page's items alone (a `$batch`'s pages share its body).
        let (Some(first), Some(last)) = (self.scan.items.first(), self.scan.items.last()) else {
            return Vec::new();
        };
        let base = first.span.0;
        let Some(Ok(text)) = self
            .body
            .get(base as usize..last.span.1 as usize)
            .map(std::str::from_utf8)
        else {
            return Vec::new();
        };
        self.scan
            .items
            .iter()
            .enumerate()
            .map(|(k, item)| {
                let raw = span_text(text, base, item.span);
                let fields = item
                    .fields
                    .and_then(|(from, to)| self.scan.fields.get(from as usize..to as usize));
                let mut record = match fields {
                    Some(fields) => Record::new(raw, text, base, item, Cow::Borrowed(fields)),
                    None => Record::not_object(raw),
                };
                if !self.repairs.is_empty() {
                    record.repair = self.repairs.iter().find(|(at, _)| *at == k).map(|(_, r)| r);
                }
                record
            })
            .collect()
    }
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

/// How serde reads a record's top-level fields: what the scan's reading is
/// held to in tests. `None` when serde refuses it as an object.
/// Not an OData annotation (`@odata.type` is kept: it says what a record is).
pub(crate) fn is_property(k: &str) -> bool {
    !k.starts_with("@odata.") || k == "@odata.type"
}

#[cfg(test)]
pub(crate) fn serde_fields(text: &str) -> Option<Vec<(String, String, Option<String>)>> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    use std::fmt;

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

    if !text.starts_with('{') {
        return None;
    }
    let Fields(fields) = serde_json::from_str::<Fields>(text).ok()?;
    Some(
        fields
            .into_iter()
            .map(|s| (s.name.into(), s.raw.into(), s.text.map(Into::into)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A record's fields as (name, JSON text, string value).
    fn view(r: &Record) -> Option<Vec<(String, String, Option<String>)>> {
        r.is_object().then(|| {
            r.fields()
                .map(|s| (s.name.into(), s.raw.into(), s.text.map(Into::into)))
                .collect()
        })
    }

    /// A record found by the page scan, or read on its own, reads exactly
    /// as serde reads it.
    fn same_as_serde(text: &str) {
        let by_serde = serde_fields(text);
        let body = format!("{{\"value\": [{text}]}}");
        let page = RawPage::scan(Bytes::from(body)).expect("scans");
        let records = page.records();
        let [split] = records.as_slice() else {
            panic!("one record: {text}")
        };
        assert_eq!(split.raw(), text);
        assert_eq!(view(split), by_serde, "{text}");
        assert_eq!(view(&Record::read(text)), by_serde, "{text}");
        if split.is_object() {
            assert_eq!(split.compact, is_compact(text), "{text}");
        }
        // Looked up by name, a repeated field reads as its last.
        let fields = by_serde.unwrap_or_default();
        for (name, _, _) in &fields {
            let (_, raw, string) = fields.iter().rfind(|f| &f.0 == name).expect("field");
            assert_eq!(split.raw_field(name), Some(raw.as_str()), "{text}");
            assert_eq!(split.str(name), string.as_deref(), "{text}");
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
        use tenx_sim::{FakeParams, FakeTenant, render};
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
    fn an_answer_without_its_array_of_records_is_not_a_page() {
        // JSON, but not a page: read as an empty one, it lost whole
        // collections without a word.
        for body in [
            &b"{\"nextLink\":\"\"}"[..],
            b"{\"value\":null,\"nextLink\":\"n\"}",
            b"{\"error\":{\"code\":\"x\",\"message\":\"y\"}}",
            b"{\"value\":{\"id\":\"a\"}}",
            b"{\"value\":[],\"value\":\"text\"}",
        ] {
            let e = RawPage::scan(Bytes::copy_from_slice(body)).expect_err("not a page");
            assert!(e.to_string().contains("without a `value` array"), "{e}");
        }
        let page = RawPage::scan(Bytes::from_static(b"{\"value\":[],\"nextLink\":\"\"}"))
            .expect("an empty page");
        assert!(page.records().is_empty() && page.next.is_none());
        let e = RawPage::scan_resource_graph(Bytes::from_static(b"{\"totalRecords\":0}"))
            .expect_err("no rows");
        assert!(e.to_string().contains("`data` array"), "{e}");
        assert!(RawPage::scan(Bytes::from_static(b"{\"value\":[{\"id\":")).is_err());
        assert!(RawPage::scan(Bytes::from_static(b"<html>")).is_err());
    }

    #[test]
    fn props_are_the_record_without_annotations_and_compact() {
        let text = r##"{"@odata.type":"#microsoft.graph.user","@odata.etag":"W/\"1\"","id":"u1","a": [1, 2],"s":"x y"}"##;
        let r = Record::from_json(text).expect("json");
        let props = r.props();
        assert_eq!(
            props.to_json(),
            r##"{"@odata.type":"#microsoft.graph.user","id":"u1","a":[1,2],"s":"x y"}"##
        );
        let plain = r#"{"id":"u1","s":"x y"}"#;
        assert_eq!(
            Record::from_json(plain).expect("json").props().to_json(),
            plain
        );
        assert_eq!(
            Record::from_json("[1]").expect("json").props().to_json(),
            "{}"
        );
        // A name written with escapes stays as written, and reads back.
        let escaped = r#"{"id":"u1","na\u006de":"v","n\"q":1}"#;
        let p = Record::from_json(escaped).expect("json").props();
        assert_eq!(p.to_json(), escaped);
        let e = crate::model::Entity::with_props(
            "u1",
            crate::model::EntityKind::AzureUser,
            "u1",
            "",
            p,
        );
        assert_eq!(e.prop("name"), Some(serde_json::json!("v")));
        assert_eq!(e.prop("n\"q"), Some(serde_json::json!(1)));
        assert_eq!(e.prop("id"), Some(serde_json::json!("u1")));
    }

    #[test]
    fn picked_fields_keep_their_json() {
        let r = Record::from_json(r#"{"a":"x\n","b":null,"c":{"d":[true]}}"#).expect("json");
        assert_eq!(
            r.pick(&["c", "missing", "a", "b"]).to_json(),
            r#"{"c":{"d":[true]},"a":"x\n","b":null}"#
        );
        let back: Value = serde_json::from_str(&r.pick(&["a"]).to_json()).expect("valid");
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
