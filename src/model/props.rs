//! `Props`: an entity's source properties, kept compact.
//!
//! A tenant's records of one kind share their field names: a managed device
//! has the same 55 names as the next, and they were two thirds of its
//! properties' text. Properties read from a page keep their values only,
//! with a `Shape` — the names, shared by every record that has them in that
//! order. At 100,000 users that is a quarter of a fetch's memory less, and
//! memory a fetch touches first costs it a page fault.
//!
//! Values are joined by `\x01`, which compact JSON cannot hold outside a
//! string and a JSON string cannot hold unescaped; names likewise.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

const SEP: char = '\x01';

/// Field names, each as written in JSON (quoted, escapes kept), joined by
/// `SEP`.
#[derive(Debug, PartialEq, Eq)]
pub struct Shape {
    names: Box<str>,
    /// Where each name ends in `names`.
    ends: Box<[u32]>,
}

impl Shape {
    fn new(names: String) -> Shape {
        let mut ends: Vec<u32> = names.match_indices(SEP).map(|(i, _)| i as u32).collect();
        ends.push(names.len() as u32);
        Shape {
            ends: ends.into_boxed_slice(),
            names: names.into_boxed_str(),
        }
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.names.split(SEP)
    }

    /// Whether these are the fields' names, in order.
    fn is(&self, fields: &[Field<'_>]) -> bool {
        if self.ends.len() != fields.len() {
            return false;
        }
        let mut start = 0;
        for (&end, (name, _)) in self.ends.iter().zip(fields) {
            let mine = self.names.get(start..end as usize).unwrap_or("");
            if !name.is(mine) {
                return false;
            }
            start = end as usize + SEP.len_utf8();
        }
        true
    }
}

/// An entity's properties: a compact JSON object, or the values of one
/// with the shape that names them.
#[derive(Clone)]
pub struct Props {
    shape: Option<Arc<Shape>>,
    text: Box<str>,
}

impl Props {
    /// Properties given as a compact JSON object.
    pub fn json(text: impl Into<Box<str>>) -> Props {
        Props {
            shape: None,
            text: text.into(),
        }
    }

    /// The properties as a compact JSON object.
    pub fn to_json(&self) -> Cow<'_, str> {
        match &self.shape {
            None => Cow::Borrowed(&self.text),
            Some(shape) => Cow::Owned(object(
                shape.names(),
                self.values(),
                shape.names.len() + self.text.len() + shape.ends.len() + 2,
            )),
        }
    }

    fn values(&self) -> impl Iterator<Item = &str> {
        self.text.split(SEP)
    }

    /// One property's JSON text, when the properties are shaped and have
    /// it (the last, when a name repeats); `None` also when unshaped.
    pub fn raw(&self, name: &str) -> Option<Option<&str>> {
        let shape = self.shape.as_ref()?;
        if shape.names.contains('\\') {
            // A name written with escapes: read the whole object.
            return None;
        }
        let at = shape
            .names()
            .enumerate()
            .filter(|(_, n)| n.len() == name.len() + 2 && n.get(1..n.len() - 1) == Some(name))
            .last()
            .map(|(i, _)| i);
        Some(at.and_then(|i| self.values().nth(i)))
    }
}

impl PartialEq for Props {
    fn eq(&self, other: &Props) -> bool {
        match (&self.shape, &other.shape) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => self.text == other.text,
            _ => self.to_json() == other.to_json(),
        }
    }
}

impl std::fmt::Debug for Props {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As the JSON text it stands for, quoted like the string it was.
        write!(f, "{:?}", self.to_json())
    }
}

/// A field name: as written in JSON (quoted, escapes kept), or as text.
#[derive(Debug, Clone, Copy)]
pub enum Name<'a> {
    Written(&'a str),
    Plain(&'a str),
}

impl Name<'_> {
    /// Whether this is the name written `written`.
    fn is(&self, written: &str) -> bool {
        match *self {
            Name::Written(n) => n == written,
            Name::Plain(n) => {
                written.len() == n.len() + 2
                    && written.starts_with('"')
                    && written.ends_with('"')
                    && written.get(1..written.len() - 1) == Some(n)
                    && !n.contains(['"', '\\'])
            }
        }
    }

    fn write(&self, out: &mut String) {
        match *self {
            Name::Written(n) => out.push_str(n),
            Name::Plain(n) => out.push_str(&serde_json::Value::String(n.to_string()).to_string()),
        }
    }
}

/// Writes shaped properties: names and compact values, in order. Nothing
/// is copied until `finish`, which allocates the values' text once.
#[derive(Default)]
pub struct PropsWriter<'a> {
    fields: smallvec::SmallVec<[Field<'a>; 32]>,
}

/// A field's name and compact value.
type Field<'a> = (Name<'a>, Cow<'a, str>);

impl<'a> PropsWriter<'a> {
    pub fn new() -> PropsWriter<'a> {
        PropsWriter::default()
    }

    /// Adds a field; its value must be compact JSON.
    pub fn field(&mut self, name: Name<'a>, value: Cow<'a, str>) {
        self.fields.push((name, value));
    }

    pub fn finish(self) -> Props {
        self.finish_with(shapes::intern)
    }

    /// `finish`, the shape found by `intern` (`None`: too many shapes).
    fn finish_with(self, intern: impl FnOnce(&[Field<'a>]) -> Option<Arc<Shape>>) -> Props {
        if self.fields.is_empty() {
            return Props::json("{}");
        }
        let size = self.fields.iter().map(|(_, v)| v.len() + 1).sum::<usize>() - 1;
        let mut values = String::with_capacity(size);
        for (i, (_, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                values.push(SEP);
            }
            values.push_str(v);
        }
        match intern(&self.fields) {
            Some(shape) => Props {
                shape: Some(shape),
                text: values.into_boxed_str(),
            },
            // Too many shapes: the object itself.
            None => {
                let names = shapes::joined(&self.fields);
                Props::json(object(
                    names.split(SEP),
                    values.split(SEP),
                    names.len() + values.len() + 2,
                ))
            }
        }
    }
}

/// A JSON object of names (as written) and values, in order.
fn object<'a>(
    names: impl Iterator<Item = &'a str>,
    values: impl Iterator<Item = &'a str>,
    capacity: usize,
) -> String {
    let mut out = String::with_capacity(capacity);
    out.push('{');
    for (i, (name, value)) in names.zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

mod shapes {
    use super::*;

    /// Shapes kept in all; a tenant whose records all differ gets its
    /// properties unshaped past this.
    const MAX_SHAPES: usize = 4096;
    /// Shapes each thread remembers, most recent first: a page's records
    /// share one, and a worker reads a few collections at a time.
    const RECENT: usize = 8;

    static ALL: Mutex<Option<Registry>> = Mutex::new(None);

    thread_local! {
        static RECENT_SHAPES: RefCell<Vec<Arc<Shape>>> = const { RefCell::new(Vec::new()) };
    }

    /// Every shape, by its names joined.
    #[derive(Default)]
    pub(super) struct Registry(FxHashMap<Box<str>, Arc<Shape>>);

    impl Registry {
        /// The one shape of these names, or `None` when `max` are kept.
        pub(super) fn shape(&mut self, joined: String, max: usize) -> Option<Arc<Shape>> {
            if let Some(s) = self.0.get(joined.as_str()) {
                return Some(s.clone());
            }
            if self.0.len() >= max {
                return None;
            }
            let s = Arc::new(Shape::new(joined.clone()));
            self.0.insert(joined.into_boxed_str(), s.clone());
            Some(s)
        }
    }

    /// The one shape of these fields' names, or `None` when too many are
    /// kept.
    pub(super) fn intern(fields: &[Field<'_>]) -> Option<Arc<Shape>> {
        let recent = RECENT_SHAPES.with(|r| {
            let mut r = r.borrow_mut();
            let at = r.iter().position(|s| s.is(fields))?;
            let s = r.remove(at);
            r.insert(0, s.clone());
            Some(s)
        });
        if recent.is_some() {
            return recent;
        }
        let shape = ALL
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Registry::default)
            .shape(joined(fields), MAX_SHAPES)?;
        RECENT_SHAPES.with(|r| {
            let mut r = r.borrow_mut();
            r.truncate(RECENT - 1);
            r.insert(0, shape.clone());
        });
        Some(shape)
    }

    /// The fields' names as written, joined by `SEP`.
    pub(super) fn joined(fields: &[Field<'_>]) -> String {
        let mut out = String::new();
        for (i, (n, _)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(SEP);
            }
            n.write(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaped(fields: &[(&str, &str)]) -> Props {
        let mut w = PropsWriter::new();
        for (n, v) in fields {
            w.field(Name::Plain(n), Cow::Borrowed(*v));
        }
        w.finish()
    }

    #[test]
    fn shaped_properties_read_back_as_the_object() {
        let p = shaped(&[
            ("id", "\"d1\""),
            ("a,b", "[1,{\"x\":\"y,z\"}]"),
            ("n", "null"),
        ]);
        assert_eq!(p.to_json(), r#"{"id":"d1","a,b":[1,{"x":"y,z"}],"n":null}"#);
        assert_eq!(p.raw("a,b"), Some(Some(r#"[1,{"x":"y,z"}]"#)));
        assert_eq!(p.raw("missing"), Some(None));
        assert_eq!(shaped(&[]).to_json(), "{}");
        assert_eq!(Props::json("{\"id\":1}").raw("id"), None);
    }

    #[test]
    fn records_of_one_shape_share_it_and_compare_as_json() {
        let a = shaped(&[("id", "\"a\""), ("os", "\"Windows\"")]);
        let b = shaped(&[("id", "\"b\""), ("os", "\"Windows\"")]);
        let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
            panic!("shaped")
        };
        assert!(Arc::ptr_eq(sa, sb));
        // The names are not repeated.
        assert_eq!(&*a.text, "\"a\"\x01\"Windows\"");
        // Another order is another shape; equality is the JSON text's.
        let c = shaped(&[("os", "\"Windows\""), ("id", "\"a\"")]);
        assert_ne!(a, c);
        assert_eq!(a, Props::json(r#"{"id":"a","os":"Windows"}"#));
        assert_ne!(a, b);
    }

    #[test]
    fn past_the_shapes_kept_properties_stay_json_and_read_the_same() {
        let mut registry = shapes::Registry::default();
        let mut unshaped = 0;
        for i in 0..5 {
            let name = format!("field{i}");
            let mut w = PropsWriter::new();
            w.field(Name::Plain("id"), Cow::Borrowed("\"x\""));
            w.field(Name::Plain(&name), Cow::Borrowed("[1, 2]"));
            let p = w.finish_with(|f| registry.shape(shapes::joined(f), 3));
            unshaped += usize::from(p.shape.is_none());
            assert_eq!(p.to_json(), format!(r#"{{"id":"x","{name}":[1, 2]}}"#));
            let e = crate::model::Entity::with_props(
                "x",
                crate::model::EntityKind::AzureUser,
                "x",
                "",
                p,
            );
            assert_eq!(e.prop(&name), Some(serde_json::json!([1, 2])));
        }
        assert_eq!(unshaped, 2, "three shapes kept, two records past them");
    }
}
