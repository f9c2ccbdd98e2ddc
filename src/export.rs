//! Subgraph selection and writers. The JSON form is
//! `{"entities": [...], "relationships": [...]}` with the fields
//! DATA-MODEL.md names. Files are written whole or not at all (a temporary
//! file, then a rename) and created 0600.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value, json};

use crate::model::{EntityId, TenantGraph, Verb, relationship_type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    Out,
    In,
    #[default]
    Both,
}

impl Direction {
    pub fn parse(s: &str) -> anyhow::Result<Direction> {
        match s.to_ascii_lowercase().as_str() {
            "out" | "outgoing" => Ok(Direction::Out),
            "in" | "incoming" => Ok(Direction::In),
            "both" | "all" => Ok(Direction::Both),
            other => anyhow::bail!("unknown direction '{other}' (out, in, both)"),
        }
    }
}

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

/// Source properties that must never leave tenx, whatever an API returns.
fn is_sensitive(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passcode",
        "privatekey",
        "accesstoken",
        "credential",
    ]
    .iter()
    .any(|w| f.contains(w))
        && !f.ends_with("required")
        && !f.ends_with("minimumlength")
}

/// An entity as exported: its source properties, then the fields the data
/// model names (which win over a property of the same name).
pub fn entity_json(g: &TenantGraph, id: EntityId, with_properties: bool) -> Value {
    let e = g.entity(id);
    let mut m = Map::new();
    if with_properties {
        for (k, v) in e.properties() {
            if !is_sensitive(&k) && !k.starts_with('_') {
                m.insert(k, v);
            }
        }
    }
    m.insert("_key".into(), json!(&*e.key));
    m.insert("_type".into(), json!(e.kind.type_name()));
    m.insert("_class".into(), json!(e.kind.classes()));
    m.insert("displayName".into(), json!(&*e.display_name));
    m.insert("id".into(), json!(&*e.id));
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

/// Writes a file whole or not at all, mode 0600: a temporary file in the
/// same folder, synced, then renamed over the target.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the output path has no file name")?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = o
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let result = write(&mut w)
        .and_then(|_| w.flush())
        .and_then(|_| w.get_ref().sync_all());
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    drop(w);
    std::fs::rename(&tmp, path)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
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

    #[test]
    fn atomic_writes_leave_nothing_behind_on_failure() {
        let dir = std::env::temp_dir().join(format!("tenx-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("out.json");
        std::fs::write(&path, b"old").expect("write");
        let r = write_atomic(&path, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(r.is_err());
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"old",
            "the old file is untouched"
        );
        assert_eq!(
            std::fs::read_dir(&dir).expect("dir").count(),
            1,
            "no temporary file is left"
        );
        write_atomic(&path, |w| w.write_all(b"new")).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
