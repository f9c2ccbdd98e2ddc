//! The tenant as one graph: entity kinds, relationship verbs, `TenantGraph`.
//! Depends on nothing else of ours.

mod graph;

mod pending;
mod props;

pub use graph::{Edge, Entity, EntityId, RelRecord, RelRef, Rels, TenantGraph};
pub use props::{Name, Props, PropsWriter};
pub use tenx_kinds::{ARM_TYPES, EntityKind, Verb, relationship_type};
