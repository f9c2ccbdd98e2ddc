//! `tenx fetch`: a headless fetch into the snapshot store, with a table of
//! what was read.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fetch::http::{Http, HttpOptions};
use crate::fetch::{
    FetchEvent, FetchOptions, GraphBuilder, Outcome, Source, SourceStatus, fetch_all_with,
};
use crate::store::Store;

use super::Target;
use crate::base::text::{line, text};

pub struct FetchArgs {
    pub sources: Vec<Source>,
    pub json: bool,
    pub keep: usize,
    pub logon_users: crate::fetch::logons::LogonBudget,
    /// Complete the snapshot with the sources not read (from the latest
    /// snapshot that has each whole).
    pub carry_over: bool,
}

pub async fn run(target: Target, args: FetchArgs) -> anyhow::Result<ExitCode> {
    let tenant_hint = target.credentials.tenant.clone();
    let auth = Arc::new(crate::auth::Auth::new(target.credentials, target.endpoints));
    let http = Arc::new(Http::new(auth, HttpOptions::default())?);
    let mut progress = Progress::new(std::io::stderr().is_terminal() && !args.json);
    tracing::info!(sources = ?args.sources, "fetch started");
    let options = FetchOptions {
        logons: crate::fetch::logons::LogonPolicy::with_budget(args.logon_users)?,
        carry: Some(crate::store::carry_loader(target.store_name.clone())),
        defender: target.defender,
        hunting: crate::fetch::HuntingPolicy::from_env()?,
        today: Some(crate::fetch::today()?),
    };
    let mut b = fetch_all_with(http, &args.sources, options, |ev| progress.see(ev)).await;
    let fetch_cpu = cpu_ms();
    progress.clear();
    let any = b.read_any();
    let all = args.sources.iter().all(|s| {
        b.statuses
            .get(s)
            .is_some_and(|st| st.outcome == Outcome::Complete)
    });
    let tenant_id = b
        .graph
        .of_kind(crate::model::EntityKind::AzureAccount)
        .first()
        .map(|&i| b.graph.entity(i).key.to_string())
        .unwrap_or(tenant_hint);
    let snapshot = if any {
        let mut store = Store::for_profile(&target.store_name)?;
        Store::mark_not_asked(&mut b.statuses);
        if args.carry_over {
            // What was read is saved whatever happens to the older copy:
            // a store that cannot give it means gaps, said as gaps.
            match store.carry_patch(&b.statuses) {
                Ok(patch) => {
                    patch.apply(&mut b.graph, &mut b.statuses);
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    eprintln!(
                        "tenx: warning: nothing carried over from earlier snapshots ({}); saving what was read",
                        line(&why)
                    );
                    for st in b.statuses.values_mut() {
                        if matches!(st.outcome, Outcome::Failed | Outcome::NotAsked) {
                            st.notes
                                .push(format!("not carried over from an earlier snapshot: {why}"));
                        }
                    }
                }
            }
        }
        let mut metrics = serde_json::to_value(b.metrics.unwrap_or_default())?;
        if let Some(m) = metrics.as_object_mut() {
            m.insert(
                "unresolvedRelationships".into(),
                b.graph.pending_count().into(),
            );
        }
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
        Store::mark_not_asked(&mut b.statuses);
        None
    };
    let missing = missing(&b.statuses, &args.sources);
    let unresolved = Unresolved::of(&b.graph);
    if args.json {
        let v = serde_json::json!({
            "snapshot": snapshot.as_ref().map(|(id, p)| serde_json::json!({"id": id, "path": p})),
            "complete": all,
            "missing": missing,
            "entities": b.graph.entity_counts(),
            "relationships": b.graph.relationship_counts(),
            "sources": b.statuses,
            "unresolvedRelationships": unresolved,
            "requests": b.metrics,
            "elapsedMs": b.elapsed.map(|e| e.as_millis() as u64),
            "peakRssBytes": peak_rss_bytes(),
            "cpuMs": fetch_cpu,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_report(&b, snapshot.as_ref(), &missing, &unresolved);
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

/// What a fetch was asked for and did not read, one line per source:
/// its outcome, the collections it lacks, where its data comes from.
pub fn missing(statuses: &BTreeMap<Source, SourceStatus>, asked: &[Source]) -> Vec<String> {
    let now = chrono::Utc::now();
    statuses
        .values()
        .filter(|s| s.outcome != Outcome::Complete)
        .filter(|s| asked.contains(&s.source) || s.carried.is_some())
        .map(|s| s.gap(now))
        .collect()
}

/// Relationships that name an entity no source gave (one not read, one
/// outside what tenx reads — a role assignment made at a management group
/// — or one gone between two reads): left out of the graph, and counted
/// so that nothing is dropped in silence.
#[derive(Debug, serde::Serialize)]
struct Unresolved {
    count: usize,
    /// How many per verb (`ASSIGNED`: a role assignment's principal not in
    /// the directory, `ALLOWS`: a scope tenx does not read, …).
    #[serde(rename = "byVerb")]
    by_verb: BTreeMap<&'static str, usize>,
    /// A few of them, as `from|VERB|to`.
    examples: Vec<String>,
}

impl Unresolved {
    fn of(g: &crate::model::TenantGraph) -> Unresolved {
        let mut by_verb = BTreeMap::new();
        for r in g.pending() {
            *by_verb.entry(r.verb.class()).or_default() += 1;
        }
        Unresolved {
            count: g.pending_count(),
            by_verb,
            examples: g.pending().take(3).map(|r| r.key()).collect(),
        }
    }
}

fn print_report(
    b: &GraphBuilder,
    snapshot: Option<&(i64, std::path::PathBuf)>,
    missing: &[String],
    unresolved: &Unresolved,
) {
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
    let now = chrono::Utc::now();
    for (source, st) in &b.statuses {
        let mark = match st.outcome {
            Outcome::Complete => "ok",
            Outcome::Partial => "PARTIAL",
            Outcome::Failed => "FAILED",
            Outcome::NotAsked => "not asked",
        };
        let items: usize = st.counts.values().sum();
        let skipped: usize = st.skipped.values().sum();
        let mut line = format!(
            "{:<10} {:<9} {:>9} items in {:.1} s",
            source.name(),
            mark,
            items,
            st.elapsed_ms as f64 / 1000.0
        );
        if skipped > 0 {
            line += &format!(", {skipped} not kept");
        }
        if st.outcome == Outcome::NotAsked {
            line = format!("{:<10} {mark}", source.name());
        }
        println!("{line}");
        // Errors and notes carry the services' own words: cleaned of
        // anything a terminal would obey.
        for e in &st.errors {
            println!("    {}", text(e));
        }
        if !st.incomplete.is_empty() {
            println!("    not read completely: {}", st.incomplete.join(", "));
        }
        if let Some(c) = &st.carried {
            println!("    {}", c.words(now));
        }
        for n in &st.notes {
            println!("    note: {}", text(n));
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
    if unresolved.count > 0 {
        let verbs: Vec<String> = unresolved
            .by_verb
            .iter()
            .map(|(v, n)| format!("{n} {v}"))
            .collect();
        println!(
            "note: {} relationship{} name an entity no source gave (one not read, outside what tenx reads such as a management group, or gone between reads), so left out: {}; e.g. {}",
            unresolved.count,
            if unresolved.count == 1 { "" } else { "s" },
            verbs.join(", "),
            line(unresolved.examples.first().map_or("", |e| e.as_str()))
        );
    }
    if !missing.is_empty() {
        println!("incomplete:");
        for m in missing {
            println!("    {}", line(m));
        }
    }
}

/// One line on stderr that says what is being read, redrawn at most ten
/// times a second; silent when stderr is not a terminal.
struct Progress {
    on: bool,
    last: Instant,
    /// When a wait was last told (at most one line a second).
    last_wait: Instant,
    state: BTreeMap<(Source, &'static str), usize>,
    done: BTreeMap<Source, bool>,
}

impl Progress {
    fn new(on: bool) -> Progress {
        Progress {
            on,
            last: Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now),
            last_wait: Instant::now()
                .checked_sub(Duration::from_secs(2))
                .unwrap_or_else(Instant::now),
            state: BTreeMap::new(),
            done: BTreeMap::new(),
        }
    }

    fn see(&mut self, ev: &FetchEvent) {
        // A wait is told on and off a terminal: a long one must never be
        // silent.
        if let FetchEvent::Waiting {
            endpoint,
            wait,
            cause,
        } = ev
        {
            if self.last_wait.elapsed() >= Duration::from_secs(1) {
                self.last_wait = Instant::now();
                self.clear();
                eprintln!(
                    "tenx: {}: {}; waiting {} s as the service asks",
                    line(endpoint),
                    line(cause),
                    wait.as_secs_f64().ceil()
                );
            }
            return;
        }
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
                eprintln!("{}: {}", source.name(), text(message));
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
