//! The integration tests, one module a subject, as one test binary: one
//! link instead of one per subject, and one pool of test threads for all.
//! Two stay binaries of their own: `tests/panic_hook.rs` installs the
//! process's panic hook, and `tests/e2e_tmux.rs` drives a real terminal
//! within fixed time windows that CPU-heavy neighbours would make flaky.

#[path = "../common/mod.rs"]
mod common;

mod carry_over;
mod cli_args;
mod cli_fetch;
mod demo_store;
mod export_formats;
mod fake_tenant;
mod fetch;
mod hostile;
mod hunting;
mod layers;
mod leaks;
mod login;
mod output_paths;
mod store_files;
mod triage;
mod tui;
