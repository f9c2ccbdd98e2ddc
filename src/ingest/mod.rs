//! Records become graph: pure functions from the APIs' JSON to entities,
//! relationships and join hints, one file per API family (`joins` links
//! sources as both sides arrive). They tolerate what real tenants send — nulls, empty strings,
//! unknown fields, missing optional objects, sentinel dates, mixed-case
//! enum values — and skip a malformed record with a reason instead of
//! failing the fetch.

pub mod arm;
pub mod defender;
pub mod directory;
pub mod hunting;
pub mod intune;
pub mod joins;

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::fetch::record::Record;
use crate::model::{Entity, EntityKind, Props, Rels, Verb};

/// What ingest reads a record through: a record read in place from a page
/// (`Record`, as fetches do) or a `serde_json::Value` (tests, the few
/// collections whose records nest what ingest needs).
pub trait Json {
    fn is_object(&self) -> bool;
    /// A string field, as written.
    fn str_field(&self, field: &str) -> Option<&str>;
    /// The record's properties (see `props`).
    fn props(&self) -> Props;
    /// `props` without the named fields.
    fn props_without(&self, drop: &[&str]) -> Props;
    /// The named fields that are present.
    fn pick(&self, fields: &[&str]) -> Props;
    /// A field's value as JSON text.
    fn raw_field(&self, field: &str) -> Option<Cow<'_, str>>;
    fn to_value(&self) -> Value;
}

impl<J: Json + ?Sized> Json for &J {
    fn is_object(&self) -> bool {
        (**self).is_object()
    }
    fn str_field(&self, field: &str) -> Option<&str> {
        (**self).str_field(field)
    }
    fn props(&self) -> Props {
        (**self).props()
    }
    fn props_without(&self, drop: &[&str]) -> Props {
        (**self).props_without(drop)
    }
    fn pick(&self, fields: &[&str]) -> Props {
        (**self).pick(fields)
    }
    fn raw_field(&self, field: &str) -> Option<Cow<'_, str>> {
        (**self).raw_field(field)
    }
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl Json for Value {
    fn is_object(&self) -> bool {
        Value::is_object(self)
    }
    fn str_field(&self, field: &str) -> Option<&str> {
        self.get(field)?.as_str()
    }
    fn props(&self) -> Props {
        Props::json(props_json(self))
    }
    fn props_without(&self, drop: &[&str]) -> Props {
        let mut p = props(self);
        for f in drop {
            p.remove(*f);
        }
        Props::json(serde_json::to_string(&p).unwrap_or_else(|_| "{}".into()))
    }
    fn pick(&self, fields: &[&str]) -> Props {
        let picked: Map<String, Value> = fields
            .iter()
            .filter_map(|f| self.get(*f).map(|v| (f.to_string(), v.clone())))
            .collect();
        Props::json(serde_json::to_string(&picked).unwrap_or_else(|_| "{}".into()))
    }
    fn raw_field(&self, field: &str) -> Option<Cow<'_, str>> {
        self.get(field).map(|v| Cow::Owned(v.to_string()))
    }
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl Json for Record<'_> {
    fn is_object(&self) -> bool {
        Record::is_object(self)
    }
    fn str_field(&self, field: &str) -> Option<&str> {
        self.str(field)
    }
    fn props(&self) -> Props {
        Record::props(self)
    }
    fn props_without(&self, drop: &[&str]) -> Props {
        Record::props_without(self, drop)
    }
    fn pick(&self, fields: &[&str]) -> Props {
        Record::pick(self, fields)
    }
    fn raw_field(&self, field: &str) -> Option<Cow<'_, str>> {
        Record::raw_field(self, field).map(Cow::Borrowed)
    }
    fn to_value(&self) -> Value {
        Record::to_value(self)
    }
}

/// Facts that let records from different sources meet (see `joins`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinHint {
    /// An Intune device: its Entra device id and host name (lower case).
    Device {
        key: String,
        aad_device_id: Option<String>,
        host: String,
    },
    /// A Defender machine: the same facts from Defender's side.
    Machine {
        key: String,
        aad_device_id: Option<String>,
        host: String,
    },
    /// An Entra user: the local part of the UPN (lower case).
    User { key: String, upn_local: String },
    /// A Defender logon user: the account name (lower case).
    LogonUser { key: String, account: String },
}

/// What ingest produced from some records.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub entities: Vec<Entity>,
    pub relationships: Rels,
    pub hints: Vec<JoinHint>,
    /// One line per skipped record: what and why.
    pub skipped: Vec<String>,
    /// When per-item details of an entity were read (a machine's logon
    /// users): its key and Unix seconds. Carried-over details keep the time
    /// they were first read.
    pub read_at: Vec<(String, i64)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
            && self.relationships.is_empty()
            && self.hints.is_empty()
            && self.skipped.is_empty()
            && self.read_at.is_empty()
    }

    pub fn entity(
        &mut self,
        key: &str,
        kind: EntityKind,
        id: &str,
        name: &str,
        props: Map<String, Value>,
    ) {
        self.entities.push(Entity::new(key, kind, id, name, &props));
    }

    /// An entity whose properties are the record's own (see `props`),
    /// written straight from the record rather than copied first.
    pub fn record(&mut self, key: &str, kind: EntityKind, id: &str, name: &str, v: &impl Json) {
        self.entities
            .push(Entity::with_props(key, kind, id, name, v.props()));
    }

    /// An entity whose properties are made already.
    pub fn entity_props(
        &mut self,
        key: &str,
        kind: EntityKind,
        id: &str,
        name: &str,
        props: Props,
    ) {
        self.entities
            .push(Entity::with_props(key, kind, id, name, props));
    }

    pub fn rel(&mut self, from: &str, verb: Verb, to: &str) {
        self.relationships.push(from, verb, to);
    }

    pub fn skip(&mut self, what: &str, why: impl std::fmt::Display) {
        self.skipped.push(format!("skipped {what}: {why}"));
    }

    pub fn extend(&mut self, other: Batch) {
        self.entities.extend(other.entities);
        self.relationships.extend(other.relationships);
        self.hints.extend(other.hints);
        self.skipped.extend(other.skipped);
        self.read_at.extend(other.read_at);
    }

    pub fn take(&mut self) -> Batch {
        std::mem::take(self)
    }
}

/// A non-empty string field.
pub fn text<'a, J: Json + ?Sized>(v: &'a J, field: &str) -> Option<&'a str> {
    v.str_field(field).map(str::trim).filter(|s| !s.is_empty())
}

/// The record's `id`, or the reason it cannot be used.
pub fn id_of<'a, J: Json + ?Sized>(v: &'a J, what: &str) -> Result<&'a str, String> {
    if !v.is_object() {
        return Err(format!("{what} is not a JSON object"));
    }
    text(v, "id").ok_or_else(|| format!("{what} has no id"))
}

/// The record's properties, without OData annotations.
pub fn props(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| is_property(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Map::new(),
    }
}

/// `props(v)` as compact JSON, without copying the record first.
pub fn props_json(v: &Value) -> String {
    struct Annotated<'a>(&'a Map<String, Value>);
    impl serde::Serialize for Annotated<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().filter(|(k, _)| is_property(k)))
        }
    }
    match v {
        Value::Object(m) => serde_json::to_string(&Annotated(m)).unwrap_or_else(|_| "{}".into()),
        _ => "{}".into(),
    }
}

pub(crate) use crate::fetch::record::is_property;

/// A date the API wrote, or None for null, empty and the sentinels Microsoft
/// uses for "never" (`0001-01-01T00:00:00Z`) and "no end" (`9999-12-31…`).
pub fn date<J: Json + ?Sized>(v: &J, field: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = text(v, field)?;
    if s.starts_with("0001-01-01") || s.starts_with("9999-12-31") {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// An enum value in lower case, so `nonCompliant`, `noncompliant` and
/// `NonCompliant` compare equal.
pub fn lower<J: Json + ?Sized>(v: &J, field: &str) -> Option<String> {
    text(v, field).map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sentinel_and_bad_dates_are_none() {
        let v = json!({"a": "0001-01-01T00:00:00Z", "b": "9999-12-31T23:59:59.9999999Z", "c": "2026-10-01T10:00:00Z", "d": "", "e": null, "f": "yesterday"});
        assert!(date(&v, "a").is_none());
        assert!(date(&v, "b").is_none());
        assert!(date(&v, "c").is_some());
        assert!(date(&v, "d").is_none() && date(&v, "e").is_none() && date(&v, "f").is_none());
        assert!(date(&v, "missing").is_none());
    }

    #[test]
    fn props_json_is_the_record_without_annotations() {
        let v = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "@odata.etag": "W/\"1\"",
            "@odata.type": "#microsoft.graph.user",
            "id": "u1",
            "displayName": "Zoë \"Z\" O'Brien\n",
            "nested": {"@odata.type": "#x", "n": [1, null, true]},
            "empty": null
        });
        let text = props_json(&v);
        let back: Map<String, Value> = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back, props(&v));
        assert!(!text.contains("odata.context") && !text.contains("odata.etag"));
        assert!(text.contains("#microsoft.graph.user") && text.contains("#x"));
        assert_eq!(props_json(&json!([1, 2])), "{}");
    }

    #[test]
    fn ids_and_text_tolerate_nulls_and_blanks() {
        assert_eq!(id_of(&json!({"id": " x "}), "user"), Ok("x"));
        assert!(id_of(&json!({"id": ""}), "user").is_err());
        assert!(id_of(&json!({"id": null}), "user").is_err());
        assert!(
            id_of(&json!([1]), "user")
                .expect_err("not an object")
                .contains("not a JSON object")
        );
        assert_eq!(
            lower(&json!({"s": "NonCompliant"}), "s").as_deref(),
            Some("noncompliant")
        );
    }
}
