//! A simulated tenant as a real fetch read it, kept as text in
//! `tests/fixtures/`, so the explorer's tests can build their state from it
//! without a server: the same graph and the same sources' statuses, sent
//! to the explorer as the events a fetch sends.
//!
//! The text is canonical (entities by key, relationships by their keys,
//! no durations, read times at `READ_AT`), so a fetch of the same tenant
//! today gives the same text: the explorer's tests check that
//! (`the_fixture_is_what_a_fetch_of_its_tenant_reads_now`), and
//! `TENX_WRITE_FIXTURES=1` writes the file anew when a change to the fetch
//! changes what it reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tenx::fetch::{FetchEvent, GraphBuilder, Source, SourceStatus};
use tenx::ingest::Batch;
use tenx::model::{Entity, EntityKind, Rels, TenantGraph, Verb};
use tenx_sim::FakeTenant;

/// When the fixture's per-item details were read: 2026-11-01 12:00 UTC,
/// the explorer tests' "now".
pub const READ_AT: i64 = 1_793_534_400;

/// A fetched tenant: the simulated tenant it was read from, the graph and
/// the sources' statuses.
pub struct Fixture {
    pub tenant: FakeTenant,
    pub graph: TenantGraph,
    pub statuses: BTreeMap<Source, SourceStatus>,
}

/// Where the fixture of the simulated tenant of this size and seed is kept.
pub fn path(users: usize, seed: u64) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(format!("tenant-{users}-{seed}.json"))
}

/// The canonical text of what a fetch read.
pub fn text(users: usize, seed: u64, b: &GraphBuilder) -> String {
    let g = &b.graph;
    let mut entities: Vec<&Entity> = g.entities().map(|(_, e)| e).collect();
    entities.sort_by(|a, b| a.key.cmp(&b.key));
    let mut rels: Vec<(String, &str, String)> = g
        .relationships()
        .map(|(f, v, t)| {
            (
                g.entity(f).key.to_string(),
                v.class(),
                g.entity(t).key.to_string(),
            )
        })
        // And those waiting for an end the tenant does not have.
        .chain(
            g.pending()
                .map(|r| (r.from().to_string(), r.verb.class(), r.to().to_string())),
        )
        .collect();
    rels.sort();
    let mut read: Vec<&str> = g
        .read_times()
        .into_iter()
        .map(|(id, _)| &*g.entity(id).key)
        .collect();
    read.sort();
    let statuses: BTreeMap<Source, SourceStatus> = b
        .statuses
        .iter()
        .map(|(s, st)| {
            let st = SourceStatus {
                elapsed_ms: 0,
                ..st.clone()
            };
            (*s, st)
        })
        .collect();
    let lines = |items: Vec<Value>| -> String {
        items
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",\n")
    };
    format!(
        "{{\n\"users\": {users},\n\"seed\": {seed},\n\"statuses\": {},\n\"entities\": [\n{}\n],\n\"relationships\": [\n{}\n],\n\"read\": [\n{}\n]\n}}\n",
        serde_json::to_string_pretty(&statuses).expect("statuses"),
        lines(
            entities
                .iter()
                .map(|e| json!([
                    &*e.key,
                    e.kind.type_name(),
                    e.id(),
                    &*e.display_name,
                    &*e.props_json()
                ]))
                .collect()
        ),
        lines(rels.iter().map(|r| json!([r.0, r.1, r.2])).collect()),
        lines(read.iter().map(|k| json!(k)).collect()),
    )
}

impl Fixture {
    /// The fixture of the simulated tenant of this size and seed.
    pub fn load(users: usize, seed: u64) -> Fixture {
        let path = path(users, seed);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text).expect("fixture JSON");
        let list = |name: &str| v[name].as_array().cloned().unwrap_or_default();
        let mut graph = TenantGraph::new();
        for e in list("entities") {
            let f = |i: usize| e[i].as_str().expect("a string");
            let kind = EntityKind::from_type_name(f(1)).expect("kind");
            graph.upsert(Entity::with_props_json(f(0), kind, f(2), f(3), f(4)));
        }
        for r in list("relationships") {
            let verb = Verb::from_class(r[1].as_str().expect("verb")).expect("verb");
            graph.relate_keys(
                r[0].as_str().expect("from"),
                verb,
                r[2].as_str().expect("to"),
            );
        }
        for k in list("read") {
            assert!(graph.set_read_at(k.as_str().expect("key"), READ_AT));
        }
        Fixture {
            tenant: super::sim::tenant(users, seed),
            graph,
            statuses: serde_json::from_value(v["statuses"].clone()).expect("statuses"),
        }
    }

    /// The events a fetch of the whole tenant sends, as the explorer gets
    /// them: the graph in one batch, each source's status, then the end.
    pub fn events(&self) -> Vec<FetchEvent> {
        let g = &self.graph;
        let mut relationships = Rels::default();
        for (f, v, t) in g.relationships() {
            relationships.push(&g.entity(f).key, v, &g.entity(t).key);
        }
        for r in g.pending() {
            relationships.push(r.from(), r.verb, r.to());
        }
        let batch = Batch {
            entities: g.entities().map(|(_, e)| e.clone()).collect(),
            relationships,
            read_at: g
                .read_times()
                .into_iter()
                .map(|(id, at)| (g.entity(id).key.to_string(), at))
                .collect(),
            ..Default::default()
        };
        let mut events = vec![FetchEvent::Batch {
            source: Source::Directory,
            batch,
        }];
        events.extend(
            self.statuses
                .iter()
                .map(|(source, status)| FetchEvent::SourceDone {
                    source: *source,
                    status: status.clone(),
                }),
        );
        events.push(FetchEvent::Done {
            metrics: Default::default(),
            elapsed: Duration::ZERO,
        });
        events
    }
}
