//! The `tenx` binary as the tests run it: its data and config in a folder
//! of the test's own, no profile chosen unless the test chooses one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tenx_sim::RunningTenant;

/// The binary with its data in `data` and its config in `data/config`,
/// choosing no profile.
pub fn command(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tenx"));
    c.env("TENX_DATA_DIR", data)
        .env("TENX_CONFIG_DIR", data.join("config"))
        .env_remove("TENX_PROFILE");
    c
}

/// `command`, reading the simulated tenant (its `TENX_*` sign-in and
/// endpoints).
pub fn against(s: &RunningTenant, data: &Path) -> Command {
    let mut c = command(data);
    c.envs(s.env());
    c
}

/// The binary with no tenant at all: its data in `home/data`, its config
/// in `home/config`, and none of the `TENX_*` variables that name a tenant,
/// its credentials or its endpoints.
pub fn bare(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tenx"));
    for k in [
        "TENX_TENANT_ID",
        "TENX_CLIENT_ID",
        "TENX_CLIENT_SECRET",
        "TENX_PROFILE",
        "TENX_LOGIN_URL",
        "TENX_GRAPH_URL",
        "TENX_DEFENDER_URL",
        "TENX_ARM_URL",
    ] {
        c.env_remove(k);
    }
    c.env("TENX_CONFIG_DIR", home.join("config"))
        .env("TENX_DATA_DIR", home.join("data"));
    c
}

/// Runs it to the end.
pub fn run(c: &mut Command) -> Output {
    c.output().expect("tenx runs")
}

/// `tenx ARGS` against the simulated tenant, its data in `data`.
pub fn tenx(s: &RunningTenant, data: &Path, args: &[&str]) -> Output {
    run(against(s, data).args(args))
}

/// The store `tenx fetch` wrote in `data`: its one `.sqlite` file.
pub fn store_in(data: &Path) -> PathBuf {
    std::fs::read_dir(data)
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .expect("a store")
}

/// Fails with the exit code and standard error unless it succeeded.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Standard output as JSON; fails with both streams when it is not.
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
