//! What the integration tests share: starting the simulated tenant and
//! signing in to it, running the `tenx` binary in a folder of the test's
//! own, the hostile tenant, and the explorer's fixture. Each test binary
//! uses part of it.
#![allow(dead_code)]

pub mod bin;
pub mod fixture;
pub mod hostile;
pub mod sim;
pub mod wire;

/// A directory removed when dropped.
pub fn tempdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tenx-{name}-"))
        .tempdir()
        .expect("temp dir")
}

/// A runtime for tests that start the simulated tenant and run the binary
/// against it.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt")
}
