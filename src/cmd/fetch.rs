//! `tenx fetch`: a headless fetch into the snapshot store, with a table of
//! what was read.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fetch::{FetchEvent, FetchOptions, GraphBuilder, Outcome, Source, fetch_all_with};
use crate::http::{Http, HttpOptions};
use crate::store::Store;

use super::Target;

pub struct FetchArgs {
    pub sources: Vec<Source>,
    pub json: bool,
    pub keep: usize,
    pub logon_users: crate::logons::LogonBudget,
}

pub async fn run(target: Target, args: FetchArgs) -> anyhow::Result<ExitCode> {
    let tenant_hint = target.credentials.tenant.clone();
    let auth = Arc::new(crate::auth::Auth::new(target.credentials, target.endpoints));
    let http = Arc::new(Http::new(auth, HttpOptions::default())?);
    let mut progress = Progress::new(std::io::stderr().is_terminal() && !args.json);
    tracing::info!(sources = ?args.sources, "fetch started");
    let options = FetchOptions {
        logons: crate::logons::LogonPolicy::with_budget(args.logon_users)?,
        carry: Some(crate::store::carry_loader(target.store_name.clone())),
    };
    let b = fetch_all_with(http, &args.sources, options, |ev| progress.see(ev)).await;
    let fetch_cpu = cpu_ms();
    progress.clear();
    let any = b.statuses.values().any(|s| s.outcome != Outcome::Failed);
    let all = b.statuses.values().all(|s| s.outcome == Outcome::Complete);
    let tenant_id = b
        .graph
        .of_kind(crate::model::EntityKind::AzureAccount)
        .first()
        .map(|&i| b.graph.entity(i).key.to_string())
        .unwrap_or(tenant_hint);
    let snapshot = if any {
        let mut store = Store::for_profile(&target.store_name)?;
        let metrics = serde_json::to_value(b.metrics.unwrap_or_default())?;
        let id = store.save(
            &tenant_id,
            "fetch",
            &b.graph,
            &b.statuses,
            b.elapsed.map(|e| e.as_millis() as u64).unwrap_or(0),
            &metrics,
        )?;
        if args.keep > 0 {
            store.prune(args.keep)?;
        }
        Some((id, store.path().to_path_buf()))
    } else {
        None
    };
    if args.json {
        let v = serde_json::json!({
            "snapshot": snapshot.as_ref().map(|(id, p)| serde_json::json!({"id": id, "path": p})),
            "entities": b.graph.entity_counts(),
            "relationships": b.graph.relationship_counts(),
            "sources": b.statuses,
            "requests": b.metrics,
            "elapsedMs": b.elapsed.map(|e| e.as_millis() as u64),
            "peakRssBytes": peak_rss_bytes(),
            "cpuMs": fetch_cpu,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_report(&b, snapshot.as_ref());
    }
    tracing::info!(
        entities = b.graph.entity_count(),
        relationships = b.graph.relationship_count(),
        "fetch finished"
    );
    Ok(if all {
        ExitCode::SUCCESS
    } else if any {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(b: &GraphBuilder, snapshot: Option<&(i64, std::path::PathBuf)>) {
    let counts = b.graph.entity_counts();
    let width = counts.keys().map(String::len).max().unwrap_or(10).max(12);
    println!("{:<width$}  {:>9}", "_type", "entities");
    for (ty, n) in &counts {
        println!("{ty:<width$}  {n:>9}");
    }
    println!("{:<width$}  {:>9}", "total", b.graph.entity_count());
    println!(
        "{:<width$}  {:>9}",
        "relationships",
        b.graph.relationship_count()
    );
    println!();
    for (source, st) in &b.statuses {
        let mark = match st.outcome {
            Outcome::Complete => "ok",
            Outcome::Partial => "PARTIAL",
            Outcome::Failed => "FAILED",
        };
        let items: usize = st.counts.values().sum();
        println!(
            "{:<10} {:<8} {:>9} items in {:.1} s",
            source.name(),
            mark,
            items,
            st.elapsed_ms as f64 / 1000.0
        );
        for e in &st.errors {
            println!("    {e}");
        }
        for n in &st.notes {
            println!("    note: {n}");
        }
    }
    if let Some(m) = &b.metrics {
        println!();
        println!(
            "{} requests ({} Graph incl. {} batched, {} Defender, {} ARM, {} token), {} retries, {} throttled, {:.1} s",
            m.total(),
            m.graph,
            m.batched,
            m.defender,
            m.arm,
            m.token,
            m.retries,
            m.throttled,
            b.elapsed.unwrap_or_default().as_secs_f64()
        );
    }
    match snapshot {
        Some((id, path)) => println!("saved snapshot {id} in {}", path.display()),
        None => println!("nothing was read; no snapshot saved"),
    }
}

/// One line on stderr that says what is being read, redrawn at most ten
/// times a second; silent when stderr is not a terminal.
struct Progress {
    on: bool,
    last: Instant,
    state: BTreeMap<(Source, &'static str), usize>,
    done: BTreeMap<Source, bool>,
}

impl Progress {
    fn new(on: bool) -> Progress {
        Progress {
            on,
            last: Instant::now() - Duration::from_secs(1),
            state: BTreeMap::new(),
            done: BTreeMap::new(),
        }
    }

    fn see(&mut self, ev: &FetchEvent) {
        if !self.on {
            return;
        }
        match ev {
            FetchEvent::Progress {
                source,
                collection,
                count,
                ..
            } => {
                self.state.insert((*source, collection), *count);
            }
            FetchEvent::SourceDone { source, .. } => {
                self.done.insert(*source, true);
            }
            FetchEvent::Warning { source, message } => {
                self.clear();
                eprintln!("{}: {message}", source.name());
            }
            _ => {}
        }
        if self.last.elapsed() >= Duration::from_millis(100) {
            self.last = Instant::now();
            let mut per_source: BTreeMap<Source, usize> = BTreeMap::new();
            for ((s, _), n) in &self.state {
                *per_source.entry(*s).or_default() += n;
            }
            let line: Vec<String> = per_source
                .iter()
                .map(|(s, n)| {
                    format!(
                        "{} {}{}",
                        s.name(),
                        n,
                        if self.done.contains_key(s) {
                            " ✓"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2Kfetching: {}", line.join(" · "));
            let _ = err.flush();
        }
    }

    fn clear(&mut self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// The process's peak resident memory (Linux; None elsewhere).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time this process used so far, user and system (Linux; None elsewhere).
pub fn cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10)
}
