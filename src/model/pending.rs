//! Relationships waiting for an entity that has not arrived yet, filed
//! under the missing entity's key.
//!
//! In a large fetch about a million relationships wait at some point: the
//! rows of Intune's per-policy and per-app statuses name devices whose page
//! has not come yet, eight or nine each. So waiting is made cheap: the
//! missing keys share one string, the waiting relationships share one list
//! of nodes (reused once linked), and a key's relationships are chained
//! through it; nothing is allocated per key or per relationship. A
//! relationship that waits twice is kept twice and linked once (linking
//! drops duplicates); reading what waits leaves the repeats out.

use hashbrown::HashTable;
use rustc_hash::FxHashSet;

use super::EntityId;
use tenx_kinds::Verb;

/// The end of a waiting relationship that is not the missing one: an
/// entity already in the graph (linking it later needs no lookup), or a key
/// when both ends were missing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Known {
    Id(EntityId),
    Key(Box<str>),
}

/// A relationship waiting for the entity whose key it is filed under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Waiting {
    pub verb: Verb,
    /// Whether the missing end is `from`.
    pub missing_from: bool,
    pub other: Known,
}

/// No node.
const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node {
    waiting: Waiting,
    /// The node that arrived before it on the same key (or the next free
    /// node).
    prev: u32,
}

/// One missing key: its hash, where its text is in `keys`, and the last
/// relationship that arrived for it.
#[derive(Debug, Clone)]
struct Missing {
    hash: u64,
    key: (u32, u32),
    last: u32,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Pending {
    table: HashTable<Missing>,
    keys: String,
    nodes: Vec<Node>,
    /// The first free node, chained through `prev`.
    free: Option<u32>,
    /// Nodes in use.
    waiting: usize,
}

/// A missing key's text in `Pending::keys`.
fn key_of<'k>(keys: &'k str, m: &Missing) -> &'k str {
    keys.get(m.key.0 as usize..m.key.1 as usize).unwrap_or("")
}

impl Pending {
    /// Files a relationship under the key of its missing end.
    pub fn add(&mut self, hash: u64, missing: &str, waiting: Waiting) {
        let node = match self.free {
            Some(i) => {
                let n = &mut self.nodes[i as usize];
                self.free = (n.prev != NONE).then_some(n.prev);
                n.waiting = waiting;
                i
            }
            None => {
                self.nodes.push(Node {
                    waiting,
                    prev: NONE,
                });
                (self.nodes.len() - 1) as u32
            }
        };
        self.waiting += 1;
        let (keys, table) = (&self.keys, &mut self.table);
        let found = table.find_mut(hash, |m| m.hash == hash && key_of(keys, m) == missing);
        let prev = match found {
            Some(m) => std::mem::replace(&mut m.last, node),
            None => {
                let start = self.keys.len();
                self.keys.push_str(missing);
                let key = (start as u32, self.keys.len() as u32);
                self.table.insert_unique(
                    hash,
                    Missing {
                        hash,
                        key,
                        last: node,
                    },
                    |m| m.hash,
                );
                NONE
            }
        };
        self.nodes[node as usize].prev = prev;
    }

    /// Takes what waits on a key, in arrival order, into `out` (emptied
    /// first); false when nothing waits on it.
    pub fn take(&mut self, hash: u64, key: &str, out: &mut Vec<Waiting>) -> bool {
        out.clear();
        if self.waiting == 0 {
            return false;
        }
        let keys = &self.keys;
        let Ok(entry) = self
            .table
            .find_entry(hash, |m| m.hash == hash && key_of(keys, m) == key)
        else {
            return false;
        };
        let (missing, _) = entry.remove();
        let mut at = missing.last;
        while at != NONE {
            let node = &mut self.nodes[at as usize];
            let waiting = std::mem::replace(&mut node.waiting.other, Known::Id(0));
            out.push(Waiting {
                verb: node.waiting.verb,
                missing_from: node.waiting.missing_from,
                other: waiting,
            });
            let prev = node.prev;
            node.prev = self.free.unwrap_or(NONE);
            self.free = Some(at);
            at = prev;
        }
        out.reverse();
        self.waiting -= out.len();
        if self.waiting == 0 {
            // Nothing refers to the keys or nodes any more.
            self.table.clear();
            self.keys.clear();
            self.nodes.clear();
            self.free = None;
        }
        true
    }

    /// Each missing key with what waits on it, in arrival order, without
    /// repeats.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Vec<&Waiting>)> + '_ {
        self.table.iter().map(move |m| {
            let mut chain = Vec::new();
            let mut at = m.last;
            while at != NONE {
                let node = &self.nodes[at as usize];
                chain.push(&node.waiting);
                at = node.prev;
            }
            chain.reverse();
            let mut seen = FxHashSet::default();
            chain.retain(|w| seen.insert(*w));
            (key_of(&self.keys, m), chain)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn w(id: EntityId) -> Waiting {
        Waiting {
            verb: Verb::Has,
            missing_from: false,
            other: Known::Id(id),
        }
    }

    #[test]
    fn keys_interleaved_come_back_in_arrival_order_and_nodes_are_reused() {
        let h = |k: &str| rustc_hash::FxBuildHasher.hash_one(k);
        let mut p = Pending::default();
        for i in 0..6 {
            let key = if i % 2 == 0 { "a" } else { "b" };
            p.add(h(key), key, w(i));
        }
        p.add(h("b"), "b", w(1));
        let mut out = Vec::new();
        assert!(p.take(h("a"), "a", &mut out));
        assert_eq!(out, [w(0), w(2), w(4)]);
        assert!(!p.take(h("a"), "a", &mut out) && out.is_empty());
        let nodes = p.nodes.len();
        p.add(h("c"), "c", w(9));
        p.add(h("c"), "c", w(8));
        assert_eq!(p.nodes.len(), nodes, "freed nodes are used again");
        let listed: Vec<(String, Vec<Waiting>)> = {
            let mut l: Vec<_> = p
                .iter()
                .map(|(k, ws)| (k.to_string(), ws.into_iter().cloned().collect()))
                .collect();
            l.sort_by(|x, y| x.0.cmp(&y.0));
            l
        };
        assert_eq!(
            listed,
            [
                ("b".to_string(), vec![w(1), w(3), w(5)]),
                ("c".to_string(), vec![w(9), w(8)])
            ],
            "repeats left out when read"
        );
        assert!(p.take(h("b"), "b", &mut out));
        assert_eq!(out, [w(1), w(3), w(5), w(1)], "kept as they came");
        assert!(p.take(h("c"), "c", &mut out));
        assert!(
            p.nodes.is_empty() && p.keys.is_empty(),
            "emptied once nothing waits"
        );
    }
}
