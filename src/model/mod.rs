//! The tenant as one graph: `TenantGraph` (an arena of entities, its indexes
//! and adjacency), the relationships waiting for an end, compact properties.
//! Entity kinds and verbs come from the `tenx-kinds` crate, re-exported here;
//! nothing else of ours is used.

mod graph;

mod pending;
mod props;

pub use graph::{Edge, Entity, EntityId, RelRecord, RelRef, Rels, TenantGraph};
pub use props::{Name, Props, PropsWriter};
pub use tenx_kinds::{ARM_TYPES, EntityKind, Verb, relationship_type};
