//! tenx: a read-only terminal explorer for Microsoft tenants.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![recursion_limit = "256"]

pub mod alloc;
pub mod auth;
pub mod cmd;
pub mod config;
pub mod endpoints;
pub mod export;
pub mod fake;
pub mod fetch;
pub mod gate;
pub mod http;
pub mod ingest;
pub mod logons;
pub mod model;
pub mod outfile;
pub mod outgoing;
pub mod pace;
pub mod record;
pub mod redact;
pub mod report;
pub mod scan;
pub mod search;
pub mod secret;
pub mod secrets;
pub mod sources;
pub mod store;
pub mod terminal;
pub mod text;
pub mod triage;
pub mod tui;
