//! tenx: a read-only terminal explorer for Microsoft tenants.
//!
//! The folders are the layers, lowest first (tests/it/layers.rs checks that
//! every `crate::` path points down): `base` and `model`; `auth`; `fetch`
//! with `ingest` inside its order (records become entities before the
//! sources use them); `search`, `export`, `triage`; `store`; `config`;
//! `tui`; `cmd`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![recursion_limit = "256"]

pub mod auth;
pub mod base;
pub mod cmd;
pub mod config;
pub mod export;
pub mod fetch;
pub mod ingest;
pub mod model;
pub mod search;
pub mod store;
pub mod triage;
pub mod tui;
