//! tenx: a read-only terminal explorer for Microsoft tenants.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![recursion_limit = "256"]

pub mod fake;
pub mod model;
