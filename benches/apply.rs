//! Graph benchmark: the work of the thread that owns the graph during a
//! fetch. A real fetch runs once against the simulated tenant in this
//! process and its events are kept in the order they arrived; they are then
//! applied to a fresh `GraphBuilder` several times (batches, waiting
//! relationships, cross-source joins), timing only the applying.
//!
//!     cargo bench --bench apply
//!     TENX_BENCH_USERS=100000 cargo bench --bench apply

use std::sync::Arc;
use std::time::{Duration, Instant};
use tenx::cmd::demo::Simulated as _;

use tenx::auth::Auth;
use tenx::fetch::http::{Http, HttpOptions};
use tenx::fetch::{FetchEvent, FetchOptions, GraphBuilder, Source, spawn_with};
use tenx_sim::{FakeParams, FakeTenant, RateLimits, ServerOptions, serve};

/// The allocator of the `tenx` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 7;

fn main() {
    // `cargo test` runs benches with --bench absent: build only.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let users = std::env::var("TENX_BENCH_USERS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let events: Vec<FetchEvent> = rt.block_on(async {
        let tenant = FakeTenant::generate(FakeParams {
            users,
            ..Default::default()
        });
        let options = ServerOptions {
            rate_limits: RateLimits::parse("none").expect("limits"),
            ..Default::default()
        };
        let server = serve(tenant, "127.0.0.1:0".parse().expect("addr"), options)
            .await
            .expect("server");
        let auth = Auth::new(server.credentials(), server.endpoints().expect("endpoints"));
        let http = Arc::new(Http::new(Arc::new(auth), HttpOptions::default()).expect("http"));
        let mut rx = spawn_with(http, &Source::ALL, FetchOptions::default());
        let mut events = Vec::new();
        while let Some(ev) = rx.recv().await {
            let done = matches!(ev, FetchEvent::Done { .. });
            events.push(ev);
            if done {
                break;
            }
        }
        events
    });
    drop(rt);
    let (mut entities, mut relationships, mut batches) = (0, 0, 0);
    for ev in &events {
        if let FetchEvent::Batch { batch, .. } = ev {
            batches += 1;
            entities += batch.entities.len();
            relationships += batch.relationships.len();
        }
    }
    let rss = || {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .nth(1)
                    .and_then(|x| x.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 4096
    };
    let mut times = Vec::new();
    let before = rss();
    let mut last = None;
    for _ in 0..RUNS {
        let evs = events.clone();
        let start = Instant::now();
        let mut b = GraphBuilder::new();
        for ev in evs {
            b.apply(ev);
        }
        times.push(start.elapsed());
        if last.is_none() {
            eprintln!(
                "rss grew by {} MiB in the first apply",
                (rss() - before) >> 20
            );
        }
        // Freeing the graph is not part of a fetch.
        last = Some(b);
    }
    times.sort();
    let median = times[RUNS / 2];
    let b = last.expect("ran");
    let per = |d: Duration, n: usize| d.as_nanos() as f64 / n.max(1) as f64;
    println!(
        "users {users}: {batches} batches, {entities} entity and {relationships} relationship records"
    );
    println!(
        "  graph            {} entities, {} relationships linked, {} waiting",
        b.graph.entity_count(),
        b.graph.relationship_count(),
        b.graph.pending_count()
    );
    println!(
        "  apply            {:>8.1} ms median, {:.1} ms best of {RUNS}  ({:.0} ns per record)",
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        per(median, entities + relationships)
    );
}
