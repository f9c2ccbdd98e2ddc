//! `TenantGraph`: every entity of a tenant in one arena with `u32` ids, a
//! key → id map, per-kind indexes and adjacency lists in both directions.
//!
//! Relationships arrive by key and may name an entity that has not arrived
//! yet (a group member before the user, a finding before its device); they
//! wait in `pending` and are linked the moment the entity appears. One whose
//! end never appears (a role assignment for a deleted principal) stays
//! pending: it is not part of the graph and is not exported.

use std::collections::HashMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

use serde_json::{Map, Value};

use super::kind::{EntityKind, Verb};

pub type EntityId = u32;

/// One entity. `props` holds the source properties as a compact JSON object,
/// parsed only when something needs to look inside.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub key: Box<str>,
    pub kind: EntityKind,
    /// The id in the source API, as the API wrote it.
    pub id: Box<str>,
    pub display_name: Box<str>,
    pub props: Box<str>,
}

impl Entity {
    pub fn new(
        key: impl Into<Box<str>>,
        kind: EntityKind,
        id: impl Into<Box<str>>,
        display_name: impl Into<Box<str>>,
        props: &Map<String, Value>,
    ) -> Entity {
        Entity {
            key: key.into(),
            kind,
            id: id.into(),
            display_name: display_name.into(),
            props: serde_json::to_string(props)
                .unwrap_or_else(|_| "{}".to_string())
                .into(),
        }
    }

    /// An entity whose properties are already a compact JSON object.
    pub fn with_props_json(
        key: impl Into<Box<str>>,
        kind: EntityKind,
        id: impl Into<Box<str>>,
        display_name: impl Into<Box<str>>,
        props: String,
    ) -> Entity {
        Entity {
            key: key.into(),
            kind,
            id: id.into(),
            display_name: display_name.into(),
            props: props.into(),
        }
    }

    /// The source properties as a JSON object (empty when unreadable).
    pub fn properties(&self) -> Map<String, Value> {
        serde_json::from_str(&self.props).unwrap_or_default()
    }

    /// One property, parsed on demand.
    pub fn prop(&self, name: &str) -> Option<Value> {
        self.properties().remove(name)
    }
}

/// A relationship as ingest produces it: by entity key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelRecord {
    pub from: Box<str>,
    pub verb: Verb,
    pub to: Box<str>,
}

impl RelRecord {
    pub fn new(from: impl Into<Box<str>>, verb: Verb, to: impl Into<Box<str>>) -> RelRecord {
        RelRecord {
            from: from.into(),
            verb,
            to: to.into(),
        }
    }

    /// The relationship `_key`: `{from}|{verb}|{to}`.
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.from, self.verb.class(), self.to)
    }
}

type PendingSet = indexmap::IndexSet<RelRecord, FxBuildHasher>;

/// The hash of an entity key, shared by the key index and `pending`: a key
/// is hashed once per lookup, whichever table it goes to.
fn key_hash(key: &str) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// One end of an adjacency list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edge {
    pub verb: Verb,
    pub other: EntityId,
}

#[derive(Debug, Default, Clone)]
pub struct TenantGraph {
    entities: Vec<Entity>,
    /// Key → id, the key read from the entity itself: a key is stored once.
    by_key: HashTable<EntityId>,
    by_kind: Vec<Vec<EntityId>>,
    out: Vec<Vec<Edge>>,
    inc: Vec<Vec<Edge>>,
    edges: FxHashSet<(EntityId, Verb, EntityId)>,
    /// Relationships waiting for the entity whose key they are filed under,
    /// in arrival order. A set: thousands can wait on one key (every machine
    /// on a tenant whose organization has not arrived yet).
    pending: HashTable<(Box<str>, PendingSet)>,
    pending_count: usize,
    /// When an entity's per-item details were read (a Defender machine's
    /// logon users), in Unix seconds: details carried over from an earlier
    /// snapshot keep their first read time, so their age is never hidden.
    read_at: FxHashMap<EntityId, i64>,
    /// Bumped on every change, so views know when to rebuild.
    generation: u64,
}

impl TenantGraph {
    pub fn new() -> TenantGraph {
        TenantGraph {
            by_kind: vec![Vec::new(); EntityKind::ALL.len()],
            ..Default::default()
        }
    }

    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    pub fn relationship_count(&self) -> usize {
        self.edges.len()
    }

    /// Relationships still waiting for an end that has not (or never) arrived.
    pub fn pending_count(&self) -> usize {
        self.pending_count
    }

    /// Relationships waiting for an end, in no particular order.
    pub fn pending(&self) -> impl Iterator<Item = &RelRecord> {
        self.pending.iter().flat_map(|(_, set)| set)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn get(&self, id: EntityId) -> Option<&Entity> {
        self.entities.get(id as usize)
    }

    /// The entity with this id. Ids come from this graph, so this is an index.
    pub fn entity(&self, id: EntityId) -> &Entity {
        &self.entities[id as usize]
    }

    pub fn id_of(&self, key: &str) -> Option<EntityId> {
        self.find(key_hash(key), key)
    }

    fn find(&self, hash: u64, key: &str) -> Option<EntityId> {
        let entities = &self.entities;
        self.by_key
            .find(hash, |&id| &*entities[id as usize].key == key)
            .copied()
    }

    pub fn by_key(&self, key: &str) -> Option<&Entity> {
        self.id_of(key).map(|id| self.entity(id))
    }

    /// Ids of every entity of a kind, in arrival order.
    pub fn of_kind(&self, kind: EntityKind) -> &[EntityId] {
        self.by_kind
            .get(kind.index())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn entities(&self) -> impl Iterator<Item = (EntityId, &Entity)> {
        self.entities
            .iter()
            .enumerate()
            .map(|(i, e)| (i as EntityId, e))
    }

    pub fn outgoing(&self, id: EntityId) -> &[Edge] {
        self.out.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn incoming(&self, id: EntityId) -> &[Edge] {
        self.inc.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every linked relationship as (from, verb, to), grouped by source entity.
    pub fn relationships(&self) -> impl Iterator<Item = (EntityId, Verb, EntityId)> + '_ {
        self.out.iter().enumerate().flat_map(|(from, edges)| {
            edges
                .iter()
                .map(move |e| (from as EntityId, e.verb, e.other))
        })
    }

    /// Adds an entity, or merges it into the one with the same key: properties
    /// are merged (a non-null value that arrives later wins), a non-empty name
    /// wins, and a specific kind is never replaced by a generic one.
    pub fn upsert(&mut self, entity: Entity) -> EntityId {
        self.generation += 1;
        let hash = key_hash(&entity.key);
        if let Some(id) = self.find(hash, &entity.key) {
            self.merge_into(id, entity);
            return id;
        }
        let id = self.entities.len() as EntityId;
        self.by_kind[entity.kind.index()].push(id);
        self.entities.push(entity);
        self.out.push(Vec::new());
        self.inc.push(Vec::new());
        let entities = &self.entities;
        self.by_key
            .insert_unique(hash, id, |&i| key_hash(&entities[i as usize].key));
        let key = &self.entities[id as usize].key;
        if let Ok(entry) = self.pending.find_entry(hash, |(k, _)| k == key) {
            let ((_, waiting), _) = entry.remove();
            self.pending_count -= waiting.len();
            for rel in waiting {
                self.relate(rel);
            }
        }
        id
    }

    fn merge_into(&mut self, id: EntityId, new: Entity) {
        let old_kind = self.entities[id as usize].kind;
        let generic = |k: EntityKind| {
            matches!(
                k,
                EntityKind::AzureResource | EntityKind::UserEndpoint | EntityKind::AzureGroupMember
            )
        };
        if new.kind != old_kind && (!generic(new.kind) || generic(old_kind)) {
            self.by_kind[old_kind.index()].retain(|&x| x != id);
            self.by_kind[new.kind.index()].push(id);
            self.entities[id as usize].kind = new.kind;
        }
        let cur = &mut self.entities[id as usize];
        if !new.display_name.is_empty() {
            cur.display_name = new.display_name;
        }
        if cur.id.is_empty() {
            cur.id = new.id;
        }
        if cur.props.as_ref() != new.props.as_ref() {
            let mut merged = cur.properties();
            let incoming: Map<String, Value> = serde_json::from_str(&new.props).unwrap_or_default();
            for (k, v) in incoming {
                if !v.is_null() || !merged.contains_key(&k) {
                    merged.insert(k, v);
                }
            }
            if let Ok(s) = serde_json::to_string(&merged) {
                cur.props = s.into();
            }
        }
    }

    /// Links a relationship by key, or files it until its missing end arrives.
    /// Returns whether it is linked now. Duplicates are ignored.
    pub fn relate(&mut self, rel: RelRecord) -> bool {
        let from_hash = key_hash(&rel.from);
        let Some(from) = self.find(from_hash, &rel.from) else {
            self.pend(from_hash, true, rel);
            return false;
        };
        let to_hash = key_hash(&rel.to);
        let Some(to) = self.find(to_hash, &rel.to) else {
            self.pend(to_hash, false, rel);
            return false;
        };
        self.link(from, rel.verb, to);
        true
    }

    /// Files a relationship under the key of its missing end (`from` or not).
    fn pend(&mut self, hash: u64, from: bool, rel: RelRecord) {
        let key = if from { &rel.from } else { &rel.to };
        let entry = self
            .pending
            .entry(hash, |(k, _)| k == key, |(k, _)| key_hash(k));
        let (_, set) = entry
            .or_insert_with(|| (key.clone(), PendingSet::default()))
            .into_mut();
        if set.insert(rel) {
            self.pending_count += 1;
        }
    }

    /// Links two entities already in the graph.
    pub fn link(&mut self, from: EntityId, verb: Verb, to: EntityId) -> bool {
        if !self.edges.insert((from, verb, to)) {
            return false;
        }
        self.generation += 1;
        self.out[from as usize].push(Edge { verb, other: to });
        self.inc[to as usize].push(Edge { verb, other: from });
        true
    }

    /// Applies a batch from ingest: entities first, so relationships inside
    /// the batch find both ends.
    pub fn apply(&mut self, entities: Vec<Entity>, relationships: Vec<RelRecord>) {
        for e in entities {
            self.upsert(e);
        }
        for r in relationships {
            self.relate(r);
        }
    }

    /// Records when the details of the entity with this key were read;
    /// false when no such entity exists.
    pub fn set_read_at(&mut self, key: &str, unix_secs: i64) -> bool {
        match self.id_of(key) {
            Some(id) => {
                self.set_read_at_id(id, unix_secs);
                true
            }
            None => false,
        }
    }

    pub fn set_read_at_id(&mut self, id: EntityId, unix_secs: i64) {
        self.read_at.insert(id, unix_secs);
        self.generation += 1;
    }

    /// When this entity's per-item details were read, if they were.
    pub fn read_at(&self, id: EntityId) -> Option<i64> {
        self.read_at.get(&id).copied()
    }

    /// Every read time, by entity id.
    pub fn read_times(&self) -> Vec<(EntityId, i64)> {
        let mut v: Vec<(EntityId, i64)> = self.read_at.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_unstable();
        v
    }

    /// Counts of entities per `_type`, sorted by type name.
    pub fn entity_counts(&self) -> std::collections::BTreeMap<String, usize> {
        EntityKind::ALL
            .iter()
            .filter(|k| !self.of_kind(**k).is_empty())
            .map(|k| (k.type_name().to_string(), self.of_kind(*k).len()))
            .collect()
    }

    /// Counts of linked relationships per `_type`, sorted by type name.
    pub fn relationship_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts: HashMap<(EntityKind, Verb, EntityKind), usize> = HashMap::new();
        for (f, v, t) in self.relationships() {
            *counts
                .entry((self.entity(f).kind, v, self.entity(t).kind))
                .or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((f, v, t), n)| (super::kind::relationship_type(f, v, t), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ent(key: &str, kind: EntityKind, name: &str, props: Value) -> Entity {
        let Value::Object(map) = props else {
            panic!("props must be an object")
        };
        Entity::new(key, kind, key, name, &map)
    }

    #[test]
    fn upsert_indexes_by_key_and_kind() {
        let mut g = TenantGraph::new();
        let a = g.upsert(ent("u1", EntityKind::AzureUser, "Åsa", json!({})));
        let b = g.upsert(ent("g1", EntityKind::AzureUserGroup, "Sales", json!({})));
        assert_eq!((a, b), (0, 1));
        assert_eq!(g.id_of("g1"), Some(1));
        assert_eq!(g.of_kind(EntityKind::AzureUser), &[0]);
        assert_eq!(g.entity_count(), 2);
    }

    #[test]
    fn upsert_merges_an_entity_seen_twice() {
        let mut g = TenantGraph::new();
        g.upsert(ent(
            "d1",
            EntityKind::UserEndpoint,
            "",
            json!({"a": 1, "b": "x"}),
        ));
        let id = g.upsert(ent(
            "d1",
            EntityKind::Laptop,
            "LAPTOP-1",
            json!({"b": null, "c": true}),
        ));
        assert_eq!(g.entity_count(), 1);
        let e = g.entity(id);
        assert_eq!(e.kind, EntityKind::Laptop);
        assert_eq!(&*e.display_name, "LAPTOP-1");
        assert_eq!(
            Value::Object(e.properties()),
            json!({"a": 1, "b": "x", "c": true})
        );
        assert!(g.of_kind(EntityKind::UserEndpoint).is_empty());
        assert_eq!(g.of_kind(EntityKind::Laptop), &[id]);
        // A generic kind never replaces a specific one.
        g.upsert(ent("d1", EntityKind::UserEndpoint, "", json!({})));
        assert_eq!(g.entity(id).kind, EntityKind::Laptop);
        assert_eq!(&*g.entity(id).display_name, "LAPTOP-1");
    }

    #[test]
    fn many_relationships_waiting_on_one_key_keep_their_order_and_no_duplicates() {
        // Every machine of a tenant waits on the tenant's account when the
        // organization has not arrived (or was not fetched at all).
        let mut g = TenantGraph::new();
        let n = 20_000;
        for round in 0..2 {
            for i in 0..n {
                let m = format!("m{i}");
                if round == 0 {
                    g.upsert(ent(&m, EntityKind::DefenderMachine, &m, json!({})));
                }
                assert!(!g.relate(RelRecord::new("tenant", Verb::Has, m.as_str())));
            }
        }
        assert_eq!(g.pending_count(), n, "the second round was all duplicates");
        let waiting: Vec<&str> = g.pending().map(|r| &*r.to).take(3).collect();
        assert_eq!(waiting, ["m0", "m1", "m2"], "arrival order");
        let t = g.upsert(ent("tenant", EntityKind::AzureAccount, "T", json!({})));
        assert_eq!(g.pending_count(), 0);
        assert_eq!(g.relationship_count(), n);
        assert_eq!(g.outgoing(t).len(), n);
        assert_eq!(g.outgoing(t)[0].other, 0, "linked in arrival order");
    }

    #[test]
    fn relationships_wait_for_missing_ends_and_link_both_ways() {
        let mut g = TenantGraph::new();
        g.upsert(ent("g1", EntityKind::AzureUserGroup, "G", json!({})));
        assert!(!g.relate(RelRecord::new("g1", Verb::Has, "u1")));
        assert!(!g.relate(RelRecord::new("g1", Verb::Has, "u1")), "dup");
        assert_eq!(g.pending_count(), 1);
        assert_eq!(g.relationship_count(), 0);
        let u = g.upsert(ent("u1", EntityKind::AzureUser, "U", json!({})));
        assert_eq!(g.pending_count(), 0);
        assert_eq!(g.relationship_count(), 1);
        assert_eq!(
            g.incoming(u),
            &[Edge {
                verb: Verb::Has,
                other: 0
            }]
        );
        assert_eq!(
            g.outgoing(0),
            &[Edge {
                verb: Verb::Has,
                other: u
            }]
        );
        assert!(g.relate(RelRecord::new("g1", Verb::Has, "u1")));
        assert_eq!(g.relationship_count(), 1, "duplicates are not linked twice");
        assert_eq!(
            g.relationship_counts()
                .get("azure_user_group_has_azure_user"),
            Some(&1)
        );
    }

    #[test]
    fn a_relationship_missing_both_ends_links_when_both_arrive() {
        let mut g = TenantGraph::new();
        g.relate(RelRecord::new("a", Verb::Uses, "b"));
        g.upsert(ent("b", EntityKind::AzureNic, "nic", json!({})));
        assert_eq!(g.relationship_count(), 0);
        g.upsert(ent("a", EntityKind::AzureVm, "vm", json!({})));
        assert_eq!(g.relationship_count(), 1);
        assert_eq!(g.pending_count(), 0);
    }
}
