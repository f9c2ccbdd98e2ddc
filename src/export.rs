//! Subgraph selection and writers. The JSON form is
//! `{"entities": [...], "relationships": [...]}` with the fields
//! DATA-MODEL.md names. Files are written by `outfile`: whole or not at
//! all, 0600, only over a regular file or at a new path.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::base::outfile::{check_target, write_atomic};
use crate::model::{EntityId, TenantGraph, Verb, relationship_type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Direction {
    #[value(alias = "outgoing")]
    Out,
    #[value(alias = "incoming")]
    In,
    #[default]
    #[value(alias = "all")]
    Both,
}

/// The most hops `--depth` takes: beyond five, a neighbourhood is most of
/// a tenant (export everything instead).
pub const MAX_DEPTH: u8 = 5;

/// Which part of the graph to export.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub entities: Vec<EntityId>,
    pub relationships: Vec<(EntityId, Verb, EntityId)>,
}

impl Selection {
    /// Everything.
    pub fn all(g: &TenantGraph) -> Selection {
        Selection {
            entities: g.entities().map(|(i, _)| i).collect(),
            relationships: g.relationships().collect(),
        }
    }

    /// The entities within `depth` hops of the seeds, following `verbs` (all
    /// when None) in `direction`, and the relationships among them that those
    /// verbs and that direction allow.
    pub fn around(
        g: &TenantGraph,
        seeds: &[EntityId],
        depth: usize,
        verbs: Option<&[Verb]>,
        direction: Direction,
    ) -> Selection {
        let follows = |v: Verb| verbs.is_none_or(|vs| vs.contains(&v));
        let mut seen: HashSet<EntityId> = HashSet::new();
        let mut order = Vec::new();
        let mut queue: VecDeque<(EntityId, usize)> = VecDeque::new();
        for &s in seeds {
            if seen.insert(s) {
                order.push(s);
                queue.push_back((s, 0));
            }
        }
        while let Some((id, d)) = queue.pop_front() {
            if d >= depth {
                continue;
            }
            let out = matches!(direction, Direction::Out | Direction::Both)
                .then(|| g.outgoing(id))
                .unwrap_or(&[]);
            let inc = matches!(direction, Direction::In | Direction::Both)
                .then(|| g.incoming(id))
                .unwrap_or(&[]);
            for e in out.iter().chain(inc) {
                if follows(e.verb) && seen.insert(e.other) {
                    order.push(e.other);
                    queue.push_back((e.other, d + 1));
                }
            }
        }
        let mut relationships = Vec::new();
        for &id in &order {
            for e in g.outgoing(id) {
                if follows(e.verb) && seen.contains(&e.other) {
                    relationships.push((id, e.verb, e.other));
                }
            }
        }
        Selection {
            entities: order,
            relationships,
        }
    }
}

impl Selection {
    /// A standalone copy of just the selected part, so it can be written on
    /// another thread while the full graph stays where it is.
    pub fn extract(&self, g: &TenantGraph) -> (TenantGraph, Selection) {
        let mut out = TenantGraph::new();
        let mut map = std::collections::HashMap::new();
        for &id in &self.entities {
            map.insert(id, out.upsert(g.entity(id).clone()));
        }
        let mut rels = Vec::new();
        for &(f, v, t) in &self.relationships {
            if let (Some(&nf), Some(&nt)) = (map.get(&f), map.get(&t)) {
                out.link(nf, v, nt);
                rels.push((nf, v, nt));
            }
        }
        let entities = (0..out.entity_count() as EntityId).collect();
        (
            out,
            Selection {
                entities,
                relationships: rels,
            },
        )
    }
}

/// An entity as exported: its source properties, then the fields the data
/// model names (which win over a property of the same name).
pub fn entity_json(g: &TenantGraph, id: EntityId, with_properties: bool) -> Value {
    let e = g.entity(id);
    let mut m = Map::new();
    if with_properties {
        // Secrets at any depth never leave tenx (`redact`).
        for (k, v) in crate::base::redact::redacted(e.properties()) {
            if !k.starts_with('_') {
                m.insert(k, v);
            }
        }
    }
    m.insert("_key".into(), json!(&*e.key));
    m.insert("_type".into(), json!(e.kind.type_name()));
    m.insert("_class".into(), json!(e.kind.classes()));
    m.insert("displayName".into(), json!(&*e.display_name));
    m.insert("id".into(), json!(e.id()));
    Value::Object(m)
}

pub fn relationship_json(g: &TenantGraph, from: EntityId, verb: Verb, to: EntityId) -> Value {
    let (f, t) = (g.entity(from), g.entity(to));
    json!({
        "_key": format!("{}|{}|{}", f.key, verb.class(), t.key),
        "_type": relationship_type(f.kind, verb, t.kind),
        "_class": verb.class(),
        "_fromEntityKey": &*f.key,
        "_toEntityKey": &*t.key,
    })
}

/// The forms an export can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Json,
    #[value(alias = "ndjson")]
    Jsonl,
    #[value(alias = "graphviz")]
    Dot,
    #[value(alias = "mmd")]
    Mermaid,
    Csv,
    Graphml,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Json,
        Format::Jsonl,
        Format::Dot,
        Format::Mermaid,
        Format::Csv,
        Format::Graphml,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Dot => "dot",
            Format::Mermaid => "mermaid",
            Format::Csv => "csv",
            Format::Graphml => "graphml",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Mermaid => "mmd",
            f => f.name(),
        }
    }
}

/// Writes a selection in a format to `path`. CSV writes two files beside
/// it, `<name>-entities.csv` and `<name>-relationships.csv`; returns the
/// files written.
pub fn write_file(
    g: &TenantGraph,
    sel: &Selection,
    with_properties: bool,
    format: Format,
    path: &Path,
) -> Result<Vec<std::path::PathBuf>, crate::base::outfile::OutputError> {
    match format {
        Format::Csv => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "export".into());
            let stem = stem
                .trim_end_matches("-entities")
                .trim_end_matches("-relationships")
                .to_string();
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let ents = dir.join(format!("{stem}-entities.csv"));
            let rels = dir.join(format!("{stem}-relationships.csv"));
            // Both files are checked before either is written.
            check_target(&ents)?;
            check_target(&rels)?;
            write_atomic(&ents, |w| write_csv_entities(g, sel, with_properties, w))?;
            write_atomic(&rels, |w| write_csv_relationships(g, sel, w))?;
            Ok(vec![ents, rels])
        }
        f => {
            write_atomic(path, |w| match f {
                Format::Json => write_json(g, sel, with_properties, w),
                Format::Jsonl => write_jsonl(g, sel, with_properties, w),
                Format::Dot => write_dot(g, sel, w),
                Format::Mermaid => write_mermaid(g, sel, w),
                Format::Graphml => write_graphml(g, sel, with_properties, w),
                Format::Csv => Ok(()),
            })?;
            Ok(vec![path.to_path_buf()])
        }
    }
}

/// One record per line, `"record": "entity"` or `"relationship"`.
pub fn write_jsonl(
    g: &TenantGraph,
    sel: &Selection,
    with_properties: bool,
    w: &mut impl Write,
) -> std::io::Result<()> {
    for &id in &sel.entities {
        let mut v = entity_json(g, id, with_properties);
        v["record"] = json!("entity");
        serde_json::to_writer(&mut *w, &v)?;
        w.write_all(b"\n")?;
    }
    for &(f, v, t) in &sel.relationships {
        let mut r = relationship_json(g, f, v, t);
        r["record"] = json!("relationship");
        serde_json::to_writer(&mut *w, &r)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Shape and colour per class family, shared by the Graphviz writer.
fn dot_style(kind: crate::model::EntityKind) -> (&'static str, &'static str) {
    let class = kind.classes()[0];
    match class {
        "User" | "UserGroup" => ("ellipse", "#c6e5b3"),
        "Device" | "Host" => ("box", "#b3cde3"),
        "HostAgent" => ("component", "#decbe4"),
        "Finding" | "Vulnerability" => ("octagon", "#fbb4ae"),
        "Configuration" | "ControlPolicy" | "AccessPolicy" | "AccessRole" => ("note", "#fed9a6"),
        "Account" | "Group" => ("folder", "#e5d8bd"),
        "Application" | "Service" => ("cds", "#ffffcc"),
        _ => ("box", "#f2f2f2"),
    }
}

/// Text inside a double-quoted Graphviz string: `\` and `"` escaped, a line
/// break as Graphviz's `\n`, any other control character as `�` (nothing
/// that could reach a terminal reading the file raw).
fn dot_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' | '\u{2028}' | '\u{2029}' | '\u{85}' => o.push_str("\\n"),
            '\t' => o.push(' '),
            c if crate::base::text::is_control(c) => o.push(crate::base::text::CONTROL_MARK),
            c => o.push(c),
        }
    }
    o
}

/// Graphviz: nodes labelled with name and type, shaped and coloured by
/// class, edges labelled by verb. Renders with `dot -Tsvg`.
pub fn write_dot(g: &TenantGraph, sel: &Selection, w: &mut impl Write) -> std::io::Result<()> {
    writeln!(w, "digraph tenx {{")?;
    writeln!(w, "  rankdir=LR;")?;
    writeln!(
        w,
        "  node [style=filled, fontname=\"Helvetica\", fontsize=10];"
    )?;
    writeln!(w, "  edge [fontname=\"Helvetica\", fontsize=9];")?;
    for &id in &sel.entities {
        let e = g.entity(id);
        let (shape, color) = dot_style(e.kind);
        writeln!(
            w,
            "  n{id} [label=\"{}\\n{}\", shape={shape}, fillcolor=\"{color}\", tooltip=\"{}\"];",
            dot_escape(&e.display_name),
            e.kind.type_name(),
            dot_escape(&e.key)
        )?;
    }
    for &(f, v, t) in &sel.relationships {
        writeln!(w, "  n{f} -> n{t} [label=\"{}\"];", v.class())?;
    }
    writeln!(w, "}}")
}

/// Text inside a quoted Mermaid label. Mermaid's escapes are entity codes
/// (`#quot;`, `#35;`): `#` itself, quotes, `<` `>` `&` (labels are HTML),
/// `|` `[` `]` `{` `}` `(` `)` and backticks (node and edge syntax) are
/// written as codes; a line break as a space; any other control character
/// as `�`.
fn mermaid_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("#quot;"),
            '<' => o.push_str("#lt;"),
            '>' => o.push_str("#gt;"),
            '#' | '&' | '|' | '[' | ']' | '{' | '}' | '(' | ')' | '`' | ';' => {
                o.push_str(&format!("#{};", ch as u32))
            }
            '\n' | '\r' | '\t' | '\u{2028}' | '\u{2029}' | '\u{85}' => o.push(' '),
            c if crate::base::text::is_control(c) => o.push(crate::base::text::CONTROL_MARK),
            c => o.push(c),
        }
    }
    o
}

/// A Mermaid flowchart: renders in Markdown viewers that support Mermaid.
pub fn write_mermaid(g: &TenantGraph, sel: &Selection, w: &mut impl Write) -> std::io::Result<()> {
    writeln!(w, "flowchart LR")?;
    for &id in &sel.entities {
        let e = g.entity(id);
        writeln!(
            w,
            "  n{id}[\"{}<br/><small>{}</small>\"]",
            mermaid_escape(&e.display_name),
            e.kind.type_name()
        )?;
    }
    for &(f, v, t) in &sel.relationships {
        writeln!(w, "  n{f} -->|{}| n{t}", v.class())?;
    }
    Ok(())
}

/// Entities as CSV (RFC 4180): the data model's fields, then the source
/// properties as one JSON column.
pub fn write_csv_entities(
    g: &TenantGraph,
    sel: &Selection,
    with_properties: bool,
    w: &mut impl Write,
) -> std::io::Result<()> {
    let mut c = csv::Writer::from_writer(w);
    let mut header = vec!["_key", "_type", "_class", "displayName", "id"];
    if with_properties {
        header.push("properties");
    }
    c.write_record(&header)?;
    // Every cell is neutralised for spreadsheets (`text::csv_cell`).
    for &id in &sel.entities {
        let e = g.entity(id);
        let mut row = vec![
            e.key.to_string(),
            e.kind.type_name().to_string(),
            e.kind.classes().join(";"),
            e.display_name.to_string(),
            e.id().to_string(),
        ];
        if with_properties {
            let v = entity_json(g, id, true);
            let mut props = v.as_object().cloned().unwrap_or_default();
            for f in ["_key", "_type", "_class", "displayName", "id"] {
                props.remove(f);
            }
            row.push(serde_json::to_string(&props).unwrap_or_default());
        }
        c.write_record(
            row.iter()
                .map(|x| crate::base::text::csv_cell(x).into_owned()),
        )?;
    }
    c.flush()
}

pub fn write_csv_relationships(
    g: &TenantGraph,
    sel: &Selection,
    w: &mut impl Write,
) -> std::io::Result<()> {
    let mut c = csv::Writer::from_writer(w);
    c.write_record(["_key", "_type", "_class", "_fromEntityKey", "_toEntityKey"])?;
    for &(f, v, t) in &sel.relationships {
        let r = relationship_json(g, f, v, t);
        let s = |k: &str| crate::base::text::csv_cell(r[k].as_str().unwrap_or("")).into_owned();
        c.write_record([
            s("_key"),
            s("_type"),
            s("_class"),
            s("_fromEntityKey"),
            s("_toEntityKey"),
        ])?;
    }
    c.flush()
}

/// Text in XML content. XML 1.0 forbids C0 controls other than tab, line
/// feed and carriage return, and U+FFFE and U+FFFF: they are dropped. DEL
/// and C1 controls, allowed but able to drive a terminal that shows the
/// file, are dropped too; a carriage return is kept as `&#13;`.
fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\r' => o.push_str("&#13;"),
            '\n' | '\t' => o.push(ch),
            '\u{FFFE}' | '\u{FFFF}' => {}
            c if crate::base::text::is_control(c) => {}
            c => o.push(c),
        }
    }
    o
}

/// GraphML, for Gephi, yEd and Neo4j's import.
pub fn write_graphml(
    g: &TenantGraph,
    sel: &Selection,
    with_properties: bool,
    w: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">"#
    )?;
    for (id, what, name) in [
        ("d0", "node", "label"),
        ("d1", "node", "_key"),
        ("d2", "node", "_type"),
        ("d3", "node", "_class"),
        ("d4", "node", "properties"),
        ("d5", "edge", "label"),
        ("d6", "edge", "_type"),
    ] {
        writeln!(
            w,
            r#"  <key id="{id}" for="{what}" attr.name="{name}" attr.type="string"/>"#
        )?;
    }
    writeln!(w, r#"  <graph id="tenx" edgedefault="directed">"#)?;
    for &id in &sel.entities {
        let e = g.entity(id);
        writeln!(w, r#"    <node id="n{id}">"#)?;
        writeln!(
            w,
            r#"      <data key="d0">{}</data>"#,
            xml_escape(&e.display_name)
        )?;
        writeln!(w, r#"      <data key="d1">{}</data>"#, xml_escape(&e.key))?;
        writeln!(w, r#"      <data key="d2">{}</data>"#, e.kind.type_name())?;
        writeln!(
            w,
            r#"      <data key="d3">{}</data>"#,
            e.kind.classes().join(";")
        )?;
        if with_properties {
            let v = entity_json(g, id, true);
            writeln!(
                w,
                r#"      <data key="d4">{}</data>"#,
                xml_escape(&v.to_string())
            )?;
        }
        writeln!(w, "    </node>")?;
    }
    for (i, &(f, v, t)) in sel.relationships.iter().enumerate() {
        let ty = relationship_type(g.entity(f).kind, v, g.entity(t).kind);
        writeln!(
            w,
            r#"    <edge id="e{i}" source="n{f}" target="n{t}"><data key="d5">{}</data><data key="d6">{ty}</data></edge>"#,
            v.class()
        )?;
    }
    writeln!(w, "  </graph>")?;
    writeln!(w, "</graphml>")
}

/// Writes `{"entities": [...], "relationships": [...]}`, streamed.
pub fn write_json(
    g: &TenantGraph,
    sel: &Selection,
    with_properties: bool,
    w: &mut impl Write,
) -> std::io::Result<()> {
    w.write_all(b"{\"entities\":[")?;
    for (i, &id) in sel.entities.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        w.write_all(b"\n")?;
        serde_json::to_writer(&mut *w, &entity_json(g, id, with_properties))?;
    }
    w.write_all(b"\n],\"relationships\":[")?;
    for (i, &(f, v, t)) in sel.relationships.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        w.write_all(b"\n")?;
        serde_json::to_writer(&mut *w, &relationship_json(g, f, v, t))?;
    }
    w.write_all(b"\n]}\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Entity, EntityKind, RelRecord};

    /// a → b → c → d (HAS), plus e → a (OWNS)
    fn chain() -> TenantGraph {
        let mut g = TenantGraph::new();
        for k in ["a", "b", "c", "d", "e"] {
            g.upsert(Entity::new(
                k,
                EntityKind::AzureUserGroup,
                k,
                k,
                &Map::new(),
            ));
        }
        for (f, t) in [("a", "b"), ("b", "c"), ("c", "d")] {
            g.relate(RelRecord::new(f, Verb::Has, t));
        }
        g.relate(RelRecord::new("e", Verb::Owns, "a"));
        g
    }

    fn keys(g: &TenantGraph, s: &Selection) -> Vec<String> {
        let mut k: Vec<String> = s
            .entities
            .iter()
            .map(|&i| g.entity(i).key.to_string())
            .collect();
        k.sort();
        k
    }

    #[test]
    fn depth_verbs_and_direction_bound_the_selection() {
        let g = chain();
        let a = g.id_of("a").expect("a");
        assert_eq!(
            keys(&g, &Selection::around(&g, &[a], 0, None, Direction::Both)),
            ["a"]
        );
        assert_eq!(
            keys(&g, &Selection::around(&g, &[a], 1, None, Direction::Both)),
            ["a", "b", "e"]
        );
        assert_eq!(
            keys(&g, &Selection::around(&g, &[a], 2, None, Direction::Both)),
            ["a", "b", "c", "e"]
        );
        assert_eq!(
            keys(&g, &Selection::around(&g, &[a], 3, None, Direction::Out)),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            keys(&g, &Selection::around(&g, &[a], 3, None, Direction::In)),
            ["a", "e"]
        );
        let has_only = Selection::around(&g, &[a], 3, Some(&[Verb::Has]), Direction::Both);
        assert_eq!(keys(&g, &has_only), ["a", "b", "c", "d"]);
        assert_eq!(has_only.relationships.len(), 3);
        assert_eq!(
            Selection::around(&g, &[a], 1, None, Direction::Both)
                .relationships
                .len(),
            2
        );
    }

    #[test]
    fn exported_records_carry_the_data_model_fields_and_no_secrets() {
        let mut g = TenantGraph::new();
        let props = json!({"id": "X", "displayName": "api name", "clientSecret": "s3cr3t", "passwordRequired": true, "mail": "a@b"}).as_object().cloned().unwrap_or_default();
        g.upsert(Entity::new(
            "k1",
            EntityKind::AzureUser,
            "u-1",
            "Åsa",
            &props,
        ));
        g.upsert(Entity::new(
            "k2",
            EntityKind::AzureUserGroup,
            "g-1",
            "G",
            &Map::new(),
        ));
        g.relate(RelRecord::new("k2", Verb::Has, "k1"));
        let mut out = Vec::new();
        write_json(&g, &Selection::all(&g), true, &mut out).expect("write");
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        let e = &v["entities"][0];
        assert_eq!(e["_key"], "k1");
        assert_eq!(e["_type"], "azure_user");
        assert_eq!(e["_class"], json!(["User"]));
        assert_eq!(e["displayName"], "Åsa");
        assert_eq!(e["id"], "u-1");
        assert_eq!(e["mail"], "a@b");
        assert_eq!(e["passwordRequired"], true);
        assert!(e.get("clientSecret").is_none());
        let r = &v["relationships"][0];
        assert_eq!(r["_key"], "k2|HAS|k1");
        assert_eq!(r["_type"], "azure_user_group_has_azure_user");
        assert_eq!(r["_class"], "HAS");
        assert_eq!(r["_fromEntityKey"], "k2");
        assert_eq!(r["_toEntityKey"], "k1");
    }
}
