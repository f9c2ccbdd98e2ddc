//! `TenantGraph`: every entity of a tenant in one arena with `u32` ids, a
//! key → id map, per-kind indexes and adjacency lists in both directions.
//!
//! Relationships arrive by key and may name an entity that has not arrived
//! yet (a group member before the user, a finding before its device); they
//! wait in `pending` and are linked the moment the entity appears. One whose
//! end never appears (a role assignment for a deleted principal) stays
//! pending: it is not part of the graph and is not exported.
//!
//! Size: long because the arena, its indexes and the pending links must
//! change together; pending links are `pending`, properties `props`.

use std::collections::HashMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

use serde_json::{Map, Value};

use super::pending::{Known, Pending, Waiting};
use super::props::Props;
use tenx_kinds::{EntityKind, Verb};

pub type EntityId = u32;

/// One entity. `props` holds the source properties compactly (see
/// `Props`), parsed only when something needs to look inside.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub key: Box<str>,
    pub kind: EntityKind,
    /// The id in the source API, as the API wrote it; `None` when it is the
    /// key (most entities: one allocation fewer each).
    id: Option<Box<str>>,
    pub display_name: Box<str>,
    props: Props,
}

impl Entity {
    pub fn new(
        key: impl Into<Box<str>>,
        kind: EntityKind,
        id: impl AsRef<str>,
        display_name: impl Into<Box<str>>,
        props: &Map<String, Value>,
    ) -> Entity {
        let props = serde_json::to_string(props).unwrap_or_else(|_| "{}".to_string());
        Entity::with_props_json(key, kind, id, display_name, props)
    }

    /// An entity whose properties are already a compact JSON object.
    pub fn with_props_json(
        key: impl Into<Box<str>>,
        kind: EntityKind,
        id: impl AsRef<str>,
        display_name: impl Into<Box<str>>,
        props: impl Into<Box<str>>,
    ) -> Entity {
        Entity::with_props(key, kind, id, display_name, Props::json(props))
    }

    pub fn with_props(
        key: impl Into<Box<str>>,
        kind: EntityKind,
        id: impl AsRef<str>,
        display_name: impl Into<Box<str>>,
        props: Props,
    ) -> Entity {
        let key = key.into();
        let id = id.as_ref();
        Entity {
            id: (id != &*key).then(|| id.into()),
            key,
            kind,
            display_name: display_name.into(),
            props,
        }
    }

    /// The id in the source API, as the API wrote it.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.key)
    }

    /// The source properties as compact JSON object text.
    pub fn props_json(&self) -> std::borrow::Cow<'_, str> {
        self.props.to_json()
    }

    /// The source properties as a JSON object (empty when unreadable).
    pub fn properties(&self) -> Map<String, Value> {
        serde_json::from_str(&self.props.to_json()).unwrap_or_default()
    }

    /// One property, parsed on demand.
    pub fn prop(&self, name: &str) -> Option<Value> {
        match self.props.raw(name) {
            Some(raw) => serde_json::from_str(raw?).ok(),
            None => self.properties().remove(name),
        }
    }
}

/// A relationship as ingest produces it: by entity key. Both keys share
/// one allocation: ingest makes hundreds of thousands of these per fetch.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelRecord {
    /// `from` then `to`.
    keys: Box<str>,
    /// Where `to` begins in `keys`.
    split: u32,
    pub verb: Verb,
}

impl RelRecord {
    pub fn new(from: impl AsRef<str>, verb: Verb, to: impl AsRef<str>) -> RelRecord {
        let (from, to) = (from.as_ref(), to.as_ref());
        let mut keys = String::with_capacity(from.len() + to.len());
        keys.push_str(from);
        keys.push_str(to);
        RelRecord {
            keys: keys.into_boxed_str(),
            split: from.len() as u32,
            verb,
        }
    }

    /// The key of the entity the relationship goes from.
    pub fn from(&self) -> &str {
        self.keys.get(..self.split as usize).unwrap_or("")
    }

    /// The key of the entity it goes to.
    pub fn to(&self) -> &str {
        self.keys.get(self.split as usize..).unwrap_or("")
    }

    /// The relationship `_key`: `{from}|{verb}|{to}`.
    pub fn key(&self) -> String {
        RelRef {
            from: self.from(),
            verb: self.verb,
            to: self.to(),
        }
        .key()
    }
}

impl std::fmt::Debug for RelRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelRecord")
            .field("from", &self.from())
            .field("verb", &self.verb)
            .field("to", &self.to())
            .finish()
    }
}

/// Relationships as ingest produces them, by key, packed: every key of a
/// batch in one string. Ingest makes millions of relationships in a large
/// fetch; one allocation each, made on a worker and freed on the graph's
/// thread, was a few percent of the fetch's CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rels {
    keys: String,
    items: Vec<RelAt>,
}

/// Where one relationship's keys are in `Rels::keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RelAt {
    from: u32,
    to: u32,
    end: u32,
    verb: Verb,
}

/// One relationship of `Rels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelRef<'a> {
    pub from: &'a str,
    pub verb: Verb,
    pub to: &'a str,
}

impl RelRef<'_> {
    /// The relationship `_key`: `{from}|{verb}|{to}`.
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.from, self.verb.class(), self.to)
    }

    pub fn to_record(&self) -> RelRecord {
        RelRecord::new(self.from, self.verb, self.to)
    }
}

impl Rels {
    pub fn push(&mut self, from: &str, verb: Verb, to: &str) {
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let start = self.keys.len();
        self.keys.push_str(from);
        self.keys.push_str(to);
        self.items.push(RelAt {
            from: at(start),
            to: at(start + from.len()),
            end: at(self.keys.len()),
            verb,
        });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<RelRef<'_>> {
        self.items.get(i).map(|r| self.at(r))
    }

    fn at(&self, r: &RelAt) -> RelRef<'_> {
        let text = |a: u32, b: u32| self.keys.get(a as usize..b as usize).unwrap_or("");
        RelRef {
            from: text(r.from, r.to),
            verb: r.verb,
            to: text(r.to, r.end),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = RelRef<'_>> {
        self.items.iter().map(|r| self.at(r))
    }

    pub fn extend(&mut self, other: Rels) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let base = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        self.keys.push_str(&other.keys);
        self.items.extend(other.items.iter().map(|r| RelAt {
            from: r.from.saturating_add(base),
            to: r.to.saturating_add(base),
            end: r.end.saturating_add(base),
            verb: r.verb,
        }));
    }
}

/// One entity's edges in one direction.
type Edges = smallvec::SmallVec<[Edge; 2]>;

/// Out-degree up to which duplicates are found by searching the list.
const FEW_EDGES: usize = 16;

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
    /// Each slot keeps its key's hash, so growing the table and most probes
    /// never reach the key text.
    by_key: HashTable<(u64, EntityId)>,
    by_kind: Vec<Vec<EntityId>>,
    /// Adjacency in both directions. Most entities have one to three edges
    /// each way: kept inline, they cost no allocation of their own.
    out: Vec<Edges>,
    inc: Vec<Edges>,
    /// Linked relationships.
    edge_count: usize,
    /// The edges of entities with more than `FEW_EDGES` outgoing ones, to
    /// find duplicates; a shorter list is searched in place, which spares
    /// the hash table almost every relationship.
    fanout: FxHashSet<(EntityId, Verb, EntityId)>,
    /// Relationships waiting for the entity whose key they are filed under.
    pending: Pending,
    /// Reused by `upsert` for what waited on a new entity.
    arrived: Vec<Waiting>,
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
        self.edge_count
    }

    /// Relationships still waiting for an end that has not (or never) arrived.
    pub fn pending_count(&self) -> usize {
        self.pending.iter().map(|(_, w)| w.len()).sum()
    }

    /// Relationships waiting for an end, grouped by the missing key, each
    /// group in arrival order, without repeats.
    pub fn pending(&self) -> impl Iterator<Item = RelRecord> + '_ {
        self.pending.iter().flat_map(move |(key, waiting)| {
            waiting.into_iter().map(move |w| {
                let other = match &w.other {
                    Known::Id(id) => &*self.entities[*id as usize].key,
                    Known::Key(k) => &**k,
                };
                if w.missing_from {
                    RelRecord::new(key, w.verb, other)
                } else {
                    RelRecord::new(other, w.verb, key)
                }
            })
        })
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
            .find(hash, |&(h, id)| {
                h == hash && &*entities[id as usize].key == key
            })
            .map(|&(_, id)| id)
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
        self.out
            .get(id as usize)
            .map(|e| e.as_slice())
            .unwrap_or(&[])
    }

    pub fn incoming(&self, id: EntityId) -> &[Edge] {
        self.inc
            .get(id as usize)
            .map(|e| e.as_slice())
            .unwrap_or(&[])
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
        self.out.push(Edges::new());
        self.inc.push(Edges::new());
        self.by_key.insert_unique(hash, (hash, id), |&(h, _)| h);
        let mut arrived = std::mem::take(&mut self.arrived);
        if self
            .pending
            .take(hash, &self.entities[id as usize].key, &mut arrived)
        {
            for w in arrived.drain(..) {
                match w.other {
                    Known::Id(other) => self.link_with(id, w.verb, w.missing_from, other),
                    Known::Key(other) => self.relate_to_key(id, w.verb, w.missing_from, other),
                }
            }
        }
        self.arrived = arrived;
        id
    }

    /// Links entity `id` with the entity of `other`'s key, `id` being the
    /// `from` end or not; files the relationship under `other` when it is
    /// not in the graph yet.
    fn relate_to_key(&mut self, id: EntityId, verb: Verb, id_is_from: bool, other: Box<str>) {
        let hash = key_hash(&other);
        match self.find(hash, &other) {
            Some(o) => self.link_with(id, verb, id_is_from, o),
            None => self.pend(
                hash,
                &other,
                Waiting {
                    verb,
                    missing_from: !id_is_from,
                    other: Known::Id(id),
                },
            ),
        }
    }

    /// Links `id` and `other`, `id` being the `from` end or not.
    fn link_with(&mut self, id: EntityId, verb: Verb, id_is_from: bool, other: EntityId) {
        if id_is_from {
            self.link(id, verb, other);
        } else {
            self.link(other, verb, id);
        }
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
        if cur.id().is_empty() {
            cur.id = (new.id() != &*cur.key).then(|| new.id().into());
        }
        if cur.props != new.props {
            let mut merged = cur.properties();
            for (k, v) in new.properties() {
                if !v.is_null() || !merged.contains_key(&k) {
                    merged.insert(k, v);
                }
            }
            if let Ok(s) = serde_json::to_string(&merged) {
                cur.props = Props::json(s);
            }
        }
        if !new.display_name.is_empty() {
            cur.display_name = new.display_name;
        }
    }

    /// Links a relationship by key, or files it until its missing end arrives.
    /// Returns whether it is linked now. Duplicates are ignored.
    pub fn relate(&mut self, rel: RelRecord) -> bool {
        self.relate_keys(rel.from(), rel.verb, rel.to())
    }

    /// `relate`, of a relationship given by its keys.
    pub fn relate_keys(&mut self, from_key: &str, verb: Verb, to_key: &str) -> bool {
        let from_hash = key_hash(from_key);
        let to_hash = key_hash(to_key);
        let from = self.find(from_hash, from_key);
        let to = self.find(to_hash, to_key);
        match (from, to) {
            (Some(from), Some(to)) => {
                self.link(from, verb, to);
                true
            }
            (None, to) => {
                let other = match to {
                    Some(id) => Known::Id(id),
                    None => Known::Key(to_key.into()),
                };
                let waiting = Waiting {
                    verb,
                    missing_from: true,
                    other,
                };
                self.pend(from_hash, from_key, waiting);
                false
            }
            (Some(from), None) => {
                let waiting = Waiting {
                    verb,
                    missing_from: false,
                    other: Known::Id(from),
                };
                self.pend(to_hash, to_key, waiting);
                false
            }
        }
    }

    /// Files a relationship under the key of its missing end.
    fn pend(&mut self, hash: u64, missing: &str, waiting: Waiting) {
        self.pending.add(hash, missing, waiting);
    }

    /// Links two entities already in the graph.
    pub fn link(&mut self, from: EntityId, verb: Verb, to: EntityId) -> bool {
        let edge = Edge { verb, other: to };
        let out = &mut self.out[from as usize];
        if out.len() < FEW_EDGES {
            if out.contains(&edge) {
                return false;
            }
        } else {
            if out.len() == FEW_EDGES {
                self.fanout
                    .extend(out.iter().map(|e| (from, e.verb, e.other)));
            }
            if !self.fanout.insert((from, verb, to)) {
                return false;
            }
        }
        out.push(edge);
        self.edge_count += 1;
        self.generation += 1;
        self.inc[to as usize].push(Edge { verb, other: from });
        true
    }

    /// Applies a batch from ingest: entities first, so relationships inside
    /// the batch find both ends.
    pub fn apply(&mut self, entities: Vec<Entity>, relationships: &Rels) {
        for e in entities {
            self.upsert(e);
        }
        for r in relationships.iter() {
            self.relate_keys(r.from, r.verb, r.to);
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
            .map(|((f, v, t), n)| (tenx_kinds::relationship_type(f, v, t), n))
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
    fn packed_relationships_read_back_as_pushed_and_after_extend() {
        let mut a = Rels::default();
        a.push("d1", Verb::Has, "d1|agent");
        a.push("", Verb::Owns, "é");
        let mut b = Rels::default();
        b.push("u1", Verb::Owns, "d1");
        let mut empty = Rels::default();
        empty.extend(a.clone());
        assert_eq!(empty, a);
        a.extend(b);
        let keys: Vec<String> = a.iter().map(|r| r.key()).collect();
        assert_eq!(keys, ["d1|HAS|d1|agent", "|OWNS|é", "u1|OWNS|d1"]);
        assert_eq!(a.len(), 3);
        assert_eq!(
            a.get(2).map(|r| r.to_record()),
            Some(RelRecord::new("u1", Verb::Owns, "d1"))
        );
        assert!(a.get(3).is_none());
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
        let waiting: Vec<String> = g.pending().map(|r| r.to().to_string()).take(3).collect();
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
    fn waiting_relationships_read_back_as_they_arrived_and_keep_no_duplicates() {
        let mut g = TenantGraph::new();
        g.relate(RelRecord::new("a", Verb::Uses, "b"));
        let b = g.upsert(ent("b", EntityKind::AzureNic, "nic", json!({})));
        g.relate(RelRecord::new("c", Verb::Uses, "b"));
        let all: Vec<RelRecord> = g.pending().collect();
        assert_eq!(all.len(), 2);
        assert!(all.contains(&RelRecord::new("a", Verb::Uses, "b")));
        assert!(all.contains(&RelRecord::new("c", Verb::Uses, "b")));
        // `a` arrives; then the same relationship again, now waiting on
        // nothing: linked once, never filed twice.
        let a = g.upsert(ent("a", EntityKind::AzureVm, "vm", json!({})));
        assert!(g.relate(RelRecord::new("a", Verb::Uses, "b")));
        assert_eq!(
            g.outgoing(a),
            &[Edge {
                verb: Verb::Uses,
                other: b
            }]
        );
        // A relationship to a key that never arrives, sent twice after its
        // `from` is known, waits once.
        g.relate(RelRecord::new("a", Verb::Uses, "gone"));
        g.relate(RelRecord::new("a", Verb::Uses, "gone"));
        assert_eq!(g.pending_count(), 2);
        let waiting: Vec<RelRecord> = g.pending().collect();
        assert!(waiting.contains(&RelRecord::new("a", Verb::Uses, "gone")));
    }

    #[test]
    fn duplicates_are_found_on_entities_with_few_and_many_edges() {
        let mut g = TenantGraph::new();
        let hub = g.upsert(ent("hub", EntityKind::AzureUserGroup, "G", json!({})));
        let n = FEW_EDGES * 3;
        for i in 0..n {
            g.upsert(ent(&format!("u{i}"), EntityKind::AzureUser, "U", json!({})));
        }
        for round in 0..2 {
            for i in 0..n {
                let new = g.link(hub, Verb::Has, i as EntityId + 1);
                assert_eq!(new, round == 0, "u{i} in round {round}");
                g.relate(RelRecord::new("hub", Verb::Has, format!("u{i}")));
            }
        }
        assert_eq!(g.relationship_count(), n);
        // The same ends with another verb is another relationship.
        assert!(g.link(hub, Verb::Owns, 1));
        assert!(!g.link(hub, Verb::Owns, 1));
        assert_eq!(g.relationship_count(), n + 1);
        assert_eq!(g.outgoing(hub).len(), n + 1);
        assert_eq!(g.incoming(1).len(), 2);
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
