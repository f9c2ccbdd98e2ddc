//! What each source requests, in what order (`directory`, `intune`,
//! `defender`, `hunting`, `arm`), and the `context` they read through.
//!
//! Every collection streams its pages through ingest to the graph as they
//! arrive; dependent requests (members of each group, per-device states)
//! start as soon as their inputs are known, so the fetch takes about as long
//! as its longest page chain.

pub mod arm;
pub mod collect;
pub mod context;
pub mod defender;
pub mod directory;
pub mod hunting;
pub mod intune;

use serde_json::Value;

/// The `value` items of a batch sub-response body, for a collection read in
/// one page.
pub fn items(body: &Value) -> &[Value] {
    body["value"].as_array().map(Vec::as_slice).unwrap_or(&[])
}
