//! Explorer frame time on a large tenant: the real fetch of a simulated
//! 100,000-user tenant (in-process, no latency), the largest collection
//! (Users) open with a chunk of 500 rows, drawn to a 120×40 TestBackend.
//! Prints frame time and keypress-to-frame time (p50/p99/max).
//!
//!     cargo bench --bench frame
//!     TENX_BENCH_USERS=20000 cargo bench --bench frame

use std::sync::Arc;
use std::time::{Duration, Instant};
use tenx::cmd::demo::Simulated as _;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tenx::auth::Auth;
use tenx::fetch::Source;
use tenx::fetch::http::{Http, HttpOptions};
use tenx::tui::app::{Action, App, Msg};
use tenx::tui::view;
use tenx_sim::{FakeParams, FakeTenant, ServerOptions, serve};

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    format!(
        "p50 {:.2} ms · p99 {:.2} ms · max {:.2} ms ({} samples)",
        p(0.5),
        p(0.99),
        p(1.0),
        v.len()
    )
}

async fn fetched(users: usize) -> App {
    let t = FakeTenant::generate(FakeParams {
        users,
        ..Default::default()
    });
    let s = serve(
        t,
        "127.0.0.1:0".parse().expect("addr"),
        ServerOptions::default(),
    )
    .await
    .expect("server");
    let endpoints = s.endpoints().expect("endpoints");
    let http = Arc::new(
        Http::new(
            Arc::new(Auth::new(s.credentials(), endpoints)),
            HttpOptions::default(),
        )
        .expect("http"),
    );
    let mut app = App::new("bench", chrono::Utc::now());
    app.start_fetch(&Source::ALL);
    let mut rx = tenx::fetch::spawn(http, &Source::ALL);
    // Through the one door state changes by, as the explorer does.
    while let Some(ev) = rx.recv().await {
        app.handle(Msg::Fetch(ev));
        if !app.fetching {
            break;
        }
    }
    app.handle(Msg::Frame(chrono::Utc::now()));
    s.stop().await;
    app
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let users: usize = std::env::var("TENX_BENCH_USERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t0 = Instant::now();
    let mut app = rt.block_on(fetched(users));
    println!(
        "{users} users: {} entities, {} relationships (fetched in {:.1} s)",
        app.graph().entity_count(),
        app.graph().relationship_count(),
        t0.elapsed().as_secs_f64()
    );

    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    // Users open: one row per chunk of 500; the first chunk open.
    app.update(Action::Down);
    app.update(Action::Right);
    app.update(Action::Down);
    app.update(Action::Right);
    term.draw(|f| view::draw(f, &mut app)).expect("draw");
    let rows = app.visible().len();

    let mut frames = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        term.draw(|f| view::draw(f, &mut app)).expect("draw");
        frames.push(t.elapsed());
    }
    println!(
        "  frame (Users open, {rows} visible rows)   {}",
        stats(frames)
    );

    let mut keys = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        app.update(if i % 100 < 50 {
            Action::Down
        } else {
            Action::Up
        });
        term.draw(|f| view::draw(f, &mut app)).expect("draw");
        keys.push(t.elapsed());
    }
    println!("  keypress to frame                     {}", stats(keys));

    // The biggest relationship group: a group's members, opened in the tree.
    let big = app
        .graph()
        .of_kind(tenx::model::EntityKind::AzureUserGroup)
        .iter()
        .copied()
        .max_by_key(|&g| app.graph().outgoing(g).len())
        .expect("a group");
    app.update(Action::Jump(big));
    app.update(Action::Right);
    term.draw(|f| view::draw(f, &mut app)).expect("draw");
    let mut frames = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        term.draw(|f| view::draw(f, &mut app)).expect("draw");
        frames.push(t.elapsed());
    }
    println!(
        "  frame (group of {} members selected)  {}",
        app.graph().outgoing(big).len(),
        stats(frames)
    );
}
