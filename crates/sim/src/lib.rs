//! The simulated Microsoft tenant: a deterministic generator of a coherent
//! tenant at any size, served over loopback HTTP with the real services'
//! paths, JSON shapes, paging, errors and throttling. `tenx demo`, the
//! integration tests and the benchmarks all run the real fetch against it.

// A managed device rendered with `json!` has more fields than the default
// recursion limit expands.
#![recursion_limit = "256"]

pub mod hunting;
pub mod knobs;
pub mod kql;
pub mod manifest;
mod names;
pub mod render;
mod rng;
pub mod server;
pub mod tenant;
pub mod token;

pub use knobs::{Faults, HuntingLimits, RateLimits, ThrottleSpec};
pub use manifest::Manifest;
pub use server::{HuntingStats, RunningTenant, ServerOptions, serve};
pub use tenant::{FakeParams, FakeTenant};
