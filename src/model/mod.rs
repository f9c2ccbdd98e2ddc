//! The tenant as one graph: entity kinds, relationship verbs, `TenantGraph`.
//! Depends on nothing else of ours.

mod graph;
mod kind;
mod pending;
mod props;

pub use graph::{Edge, Entity, EntityId, RelRecord, RelRef, Rels, TenantGraph};
pub use kind::{ARM_TYPES, EntityKind, Verb, relationship_type};
pub use props::{Name, Props, PropsWriter};
