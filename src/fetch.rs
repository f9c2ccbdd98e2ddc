//! Orchestration: each source runs as its own tokio task and reports
//! `FetchEvent`s over a channel; a failed source never stops the others.
//! `GraphBuilder` is the one place where events become graph: the headless
//! `tenx fetch` and the explorer both feed it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::http::{Http, HttpError, MetricsSnapshot};
use crate::ingest::Batch;
use crate::ingest::joins::Linker;
use crate::logons::{LogonCarry, LogonPolicy};
use crate::model::TenantGraph;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Directory,
    Intune,
    Defender,
    Arm,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Directory,
        Source::Intune,
        Source::Defender,
        Source::Arm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Directory => "directory",
            Source::Intune => "intune",
            Source::Defender => "defender",
            Source::Arm => "arm",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Source::Directory => "Entra ID",
            Source::Intune => "Intune",
            Source::Defender => "Defender for Endpoint",
            Source::Arm => "Azure Resource Manager",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Source> {
        match s.trim().to_ascii_lowercase().as_str() {
            "directory" | "entra" | "aad" => Ok(Source::Directory),
            "intune" => Ok(Source::Intune),
            "defender" | "mde" => Ok(Source::Defender),
            "arm" | "azure" => Ok(Source::Arm),
            other => anyhow::bail!("unknown source '{other}' (directory, intune, defender, arm)"),
        }
    }

    pub fn parse_list(s: &str) -> anyhow::Result<Vec<Source>> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let src = Source::parse(part)?;
            if !out.contains(&src) {
                out.push(src);
            }
        }
        if out.is_empty() {
            anyhow::bail!("no source named (directory, intune, defender, arm)");
        }
        Ok(out)
    }
}

/// What a running fetch tells whoever owns the graph.
#[derive(Debug, Clone)]
pub enum FetchEvent {
    /// A collection's progress: items so far, and whether it is complete.
    Progress {
        source: Source,
        collection: &'static str,
        count: usize,
        done: bool,
    },
    /// Records to add to the graph.
    Batch { source: Source, batch: Batch },
    /// Something was skipped or is incomplete, but the source goes on.
    Warning { source: Source, message: String },
    /// A source ended, with its outcome.
    SourceDone {
        source: Source,
        status: SourceStatus,
    },
    /// Every source ended.
    Done {
        metrics: MetricsSnapshot,
        elapsed: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Everything was read.
    Complete,
    /// Some collections could not be read; the rest is there.
    Partial,
    /// Nothing could be read.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub source: Source,
    pub outcome: Outcome,
    /// One line per collection that failed: what, why and how to fix it.
    pub errors: Vec<String>,
    /// Items read per collection.
    pub counts: BTreeMap<String, usize>,
    pub elapsed_ms: u64,
    /// What a person should know of what was read, though nothing failed
    /// (logon users carried over from an earlier snapshot, and how old).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Reads the previous snapshot's logon users; run on a blocking thread
/// while the machines are listed.
pub type CarryLoader = Arc<dyn Fn() -> anyhow::Result<LogonCarry> + Send + Sync>;

/// How a fetch reads what has limits of its own.
#[derive(Clone, Default)]
pub struct FetchOptions {
    pub logons: LogonPolicy,
    /// Where logon users not read this time come from; none: not carried.
    pub carry: Option<CarryLoader>,
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("logons", &self.logons)
            .field("carry", &self.carry.is_some())
            .finish()
    }
}

/// Records gathered before a `Batch` event goes out. Per-item collections
/// (a machine's logon users, a group's members) answer a few records per
/// request; an event per request woke the graph's owner tens of thousands of
/// times.
const BATCH_RECORDS: usize = 2_000;

/// Progress of a collection is reported at most this often (and when done).
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// The state a source task shares with the sources' helpers.
pub struct Ctx {
    pub http: Arc<Http>,
    pub source: Source,
    pub tenant: String,
    pub options: Arc<FetchOptions>,
    tx: UnboundedSender<FetchEvent>,
    counts: std::sync::Mutex<BTreeMap<String, usize>>,
    /// When each collection's progress was last reported.
    reported: std::sync::Mutex<BTreeMap<&'static str, Instant>>,
    errors: std::sync::Mutex<Vec<String>>,
    notes: std::sync::Mutex<Vec<String>>,
    collections: std::sync::atomic::AtomicUsize,
    /// Records not yet sent (see `BATCH_RECORDS`).
    gathered: std::sync::Mutex<Batch>,
}

impl Ctx {
    fn new(
        http: Arc<Http>,
        source: Source,
        tenant: String,
        options: Arc<FetchOptions>,
        tx: UnboundedSender<FetchEvent>,
    ) -> Ctx {
        Ctx {
            http,
            source,
            tenant,
            options,
            tx,
            counts: Default::default(),
            reported: Default::default(),
            errors: Default::default(),
            notes: Default::default(),
            collections: Default::default(),
            gathered: Default::default(),
        }
    }

    /// Hands records to the graph: skipped-record warnings at once, the
    /// records themselves gathered into batches of `BATCH_RECORDS`.
    pub fn send(&self, mut batch: Batch) {
        for s in batch.skipped.drain(..) {
            let _ = self.tx.send(FetchEvent::Warning {
                source: self.source,
                message: s,
            });
        }
        if batch.is_empty() {
            return;
        }
        let full = match self.gathered.lock() {
            Ok(mut g) => {
                g.extend(batch);
                let records = g.entities.len() + g.relationships.len() + g.hints.len();
                (records >= BATCH_RECORDS).then(|| g.take())
            }
            // A poisoned lock: send this batch on its own rather than lose it.
            Err(_) => Some(batch),
        };
        if let Some(batch) = full {
            self.emit(batch);
        }
    }

    /// Sends whatever has been gathered.
    pub fn flush(&self) {
        let rest = self
            .gathered
            .lock()
            .map(|mut g| g.take())
            .unwrap_or_default();
        if !rest.is_empty() {
            self.emit(rest);
        }
    }

    fn emit(&self, batch: Batch) {
        let _ = self.tx.send(FetchEvent::Batch {
            source: self.source,
            batch,
        });
    }

    /// Counts items of a collection and reports progress (at most every
    /// `PROGRESS_EVERY`, and always when the collection is done).
    pub fn progress(&self, collection: &'static str, added: usize, done: bool) {
        let count = {
            let Ok(mut c) = self.counts.lock() else {
                return;
            };
            let n = c.entry(collection.to_string()).or_default();
            *n += added;
            *n
        };
        if !done {
            let now = Instant::now();
            let Ok(mut r) = self.reported.lock() else {
                return;
            };
            match r.get(collection) {
                Some(last) if now.duration_since(*last) < PROGRESS_EVERY => return,
                _ => {
                    r.insert(collection, now);
                }
            }
        } else {
            // Records counted as done are in the graph's hands first.
            self.flush();
        }
        let _ = self.tx.send(FetchEvent::Progress {
            source: self.source,
            collection,
            count,
            done,
        });
    }

    /// Records the outcome of one collection. Failures are kept (with the
    /// permission to grant, where that is the cause) and reported at the end.
    pub fn finish(&self, collection: &'static str, result: Result<usize, HttpError>) {
        self.collections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(_) => {
                tracing::debug!(source = self.source.name(), collection, "collection read");
                self.progress(collection, 0, true)
            }
            Err(e) => {
                let line = explain_failure(self.source, collection, &e);
                let _ = self.tx.send(FetchEvent::Warning {
                    source: self.source,
                    message: line.clone(),
                });
                if let Ok(mut errs) = self.errors.lock() {
                    errs.push(line);
                }
            }
        }
    }

    /// Something a person should know of what was read, kept in the
    /// source's status (and so in the snapshot).
    pub fn note(&self, message: String) {
        if let Ok(mut n) = self.notes.lock() {
            n.push(message);
        }
    }

    pub fn warn(&self, message: String) {
        let _ = self.tx.send(FetchEvent::Warning {
            source: self.source,
            message,
        });
    }
}

/// A collection failure in words: the endpoint, what the service said, and
/// for a 403 the application permission to grant.
pub fn explain_failure(source: Source, collection: &str, e: &HttpError) -> String {
    match e {
        HttpError::Forbidden { endpoint, .. } => {
            let fix = permission_for(source, endpoint);
            // The service's message ends with its own full stop.
            let said = e.to_string();
            format!(
                "{collection}: {}. The app lacks {fix}; add it as an Application permission and grant admin consent",
                said.trim_end_matches('.')
            )
        }
        HttpError::Auth(a) => format!("{collection}: {a}"),
        _ => format!("{collection}: {e}"),
    }
}

/// The application permission (or role) an endpoint needs, from the
/// permission lists in the setup documents.
pub fn permission_for(source: Source, endpoint: &str) -> &'static str {
    let e = endpoint.to_ascii_lowercase();
    match source {
        Source::Directory if e.contains("/organization") => {
            "Microsoft Graph Organization.Read.All (or Directory.Read.All)"
        }
        Source::Directory => "Microsoft Graph Directory.Read.All",
        Source::Intune if e.contains("compliancepolic") || e.contains("deviceconfiguration") => {
            "Microsoft Graph DeviceManagementConfiguration.Read.All"
        }
        Source::Intune if e.contains("deviceappmanagement") => {
            "Microsoft Graph DeviceManagementApps.Read.All"
        }
        Source::Intune => "Microsoft Graph DeviceManagementManagedDevices.Read.All",
        Source::Defender if e.contains("logonusers") => "WindowsDefenderATP User.Read.All",
        Source::Defender if e.contains("vulnerabilit") => {
            "WindowsDefenderATP Vulnerability.Read.All"
        }
        Source::Defender => "WindowsDefenderATP Machine.Read.All",
        Source::Arm => {
            "the Azure RBAC Reader role on the subscription (or the Tenant Root management group)"
        }
    }
}

/// Starts every source as its own task. Events arrive on the receiver; the
/// last one is `Done`.
pub fn spawn(http: Arc<Http>, sources: &[Source]) -> UnboundedReceiver<FetchEvent> {
    spawn_with(http, sources, FetchOptions::default())
}

/// `spawn` with options (logon-user budget, carry-over).
pub fn spawn_with(
    http: Arc<Http>,
    sources: &[Source],
    options: FetchOptions,
) -> UnboundedReceiver<FetchEvent> {
    let (tx, rx) = unbounded_channel();
    let sources = sources.to_vec();
    let options = Arc::new(options);
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for source in sources {
            let http = http.clone();
            let tx = tx.clone();
            let options = options.clone();
            tasks.spawn(async move {
                let status = run_source(http, source, options, tx.clone()).await;
                let _ = tx.send(FetchEvent::SourceDone { source, status });
            });
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!("a source task ended abnormally: {e}");
            }
        }
        let _ = tx.send(FetchEvent::Done {
            metrics: http.metrics(),
            elapsed: start.elapsed(),
        });
    });
    rx
}

async fn run_source(
    http: Arc<Http>,
    source: Source,
    options: Arc<FetchOptions>,
    tx: UnboundedSender<FetchEvent>,
) -> SourceStatus {
    let start = Instant::now();
    let failed = |errors: Vec<String>| SourceStatus {
        source,
        outcome: Outcome::Failed,
        errors,
        counts: BTreeMap::new(),
        elapsed_ms: start.elapsed().as_millis() as u64,
        notes: Vec::new(),
    };
    // The token tells the tenant's GUID (the account entity's key) and
    // whether the API can be used at all.
    let api = match source {
        Source::Directory | Source::Intune => crate::endpoints::Api::Graph,
        Source::Defender => crate::endpoints::Api::Defender,
        Source::Arm => crate::endpoints::Api::Arm,
    };
    let token = match http.token(api).await {
        Ok(t) => t,
        Err(e) => {
            let line = explain_failure(source, "sign-in", &e);
            let _ = tx.send(FetchEvent::Warning {
                source,
                message: line.clone(),
            });
            return failed(vec![line]);
        }
    };
    let tenant = crate::auth::claims_of(token.value.expose())
        .and_then(|c| c["tid"].as_str().map(String::from))
        .unwrap_or_else(|| http.auth().credentials.tenant.clone());
    let ctx = Ctx::new(http, source, tenant, options, tx);
    match source {
        Source::Directory => crate::sources::directory::run(&ctx).await,
        Source::Intune => crate::sources::intune::run(&ctx).await,
        Source::Defender => crate::sources::defender::run(&ctx).await,
        Source::Arm => crate::sources::arm::run(&ctx).await,
    }
    ctx.flush();
    // Collections end in any order; sorted, the same failure reads the same.
    let mut errors = ctx.errors.lock().map(|e| e.clone()).unwrap_or_default();
    errors.sort();
    let counts = ctx.counts.lock().map(|c| c.clone()).unwrap_or_default();
    let notes = ctx.notes.lock().map(|n| n.clone()).unwrap_or_default();
    let total = ctx.collections.load(std::sync::atomic::Ordering::Relaxed);
    let outcome = if errors.is_empty() {
        Outcome::Complete
    } else if errors.len() >= total || counts.values().all(|&n| n == 0) {
        Outcome::Failed
    } else {
        Outcome::Partial
    };
    SourceStatus {
        source,
        outcome,
        errors,
        counts,
        elapsed_ms: start.elapsed().as_millis() as u64,
        notes,
    }
}

/// Turns events into a graph: applies batches, and makes the cross-source
/// relationships (`joins`) as both sides arrive.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    pub graph: TenantGraph,
    linker: Linker,
    pub statuses: BTreeMap<Source, SourceStatus>,
    pub warnings: Vec<(Source, String)>,
    pub metrics: Option<MetricsSnapshot>,
    pub elapsed: Option<Duration>,
}

impl GraphBuilder {
    pub fn new() -> GraphBuilder {
        GraphBuilder {
            graph: TenantGraph::new(),
            ..Default::default()
        }
    }

    /// Applies one event; returns true when it was the last (`Done`).
    pub fn apply(&mut self, event: FetchEvent) -> bool {
        match event {
            FetchEvent::Batch { batch, .. } => {
                let joined = self.linker.add(batch.hints);
                self.graph.apply(batch.entities, &batch.relationships);
                for r in joined {
                    self.graph.relate(r);
                }
                for (key, at) in batch.read_at {
                    if !self.graph.set_read_at(&key, at) {
                        tracing::debug!(%key, "a read time for an entity not in the graph");
                    }
                }
            }
            FetchEvent::Warning { source, message } => self.warnings.push((source, message)),
            FetchEvent::SourceDone { source, status } => {
                self.statuses.insert(source, status);
            }
            FetchEvent::Done { metrics, elapsed } => {
                for r in self.linker.finish() {
                    self.graph.relate(r);
                }
                self.metrics = Some(metrics);
                self.elapsed = Some(elapsed);
                return true;
            }
            FetchEvent::Progress { .. } => {}
        }
        false
    }
}

/// Runs a whole fetch and returns the builder with the graph and statuses;
/// its `elapsed` runs until the graph is complete. `on_event` sees every
/// event first (progress displays).
pub async fn fetch_all(
    http: Arc<Http>,
    sources: &[Source],
    on_event: impl FnMut(&FetchEvent),
) -> GraphBuilder {
    fetch_all_with(http, sources, FetchOptions::default(), on_event).await
}

/// `fetch_all` with options (logon-user budget, carry-over).
pub async fn fetch_all_with(
    http: Arc<Http>,
    sources: &[Source],
    options: FetchOptions,
    mut on_event: impl FnMut(&FetchEvent),
) -> GraphBuilder {
    let start = Instant::now();
    let mut rx = spawn_with(http, sources, options);
    let mut b = GraphBuilder::new();
    while let Some(ev) = rx.recv().await {
        on_event(&ev);
        if b.apply(ev) {
            break;
        }
    }
    // Until the graph is whole: the last events applied and the joins made.
    b.elapsed = Some(start.elapsed());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Auth, Credentials};
    use crate::endpoints::{Cloud, Endpoints};
    use crate::http::HttpOptions;
    use crate::model::{EntityKind, Verb};
    use crate::secret::Secret;

    fn ctx() -> (Ctx, UnboundedReceiver<FetchEvent>) {
        let auth = Auth::new(
            Credentials {
                tenant: "t".into(),
                client_id: "c".into(),
                secret: Secret::new("s"),
            },
            Endpoints::for_cloud(Cloud::Public),
        );
        let http = Http::new(Arc::new(auth), HttpOptions::default()).expect("client");
        let (tx, rx) = unbounded_channel();
        (
            Ctx::new(
                Arc::new(http),
                Source::Defender,
                "t".into(),
                Default::default(),
                tx,
            ),
            rx,
        )
    }

    fn one(i: usize) -> Batch {
        let mut b = Batch::default();
        let key = format!("m{i}");
        b.entity(
            &key,
            EntityKind::DefenderMachine,
            &key,
            &key,
            Default::default(),
        );
        b.rel("t", Verb::Has, &key);
        b
    }

    #[test]
    fn small_batches_are_gathered_and_nothing_is_lost_or_late() {
        let (ctx, mut rx) = ctx();
        let mut skipped = one(0);
        skipped.skip("machine", "no id");
        ctx.send(skipped);
        for i in 1..5_000 {
            ctx.send(one(i));
            ctx.progress("machines", 1, false);
        }
        ctx.progress("machines", 0, true);
        let (mut entities, mut batches, mut progress, mut warnings) = (0, 0, 0, 0);
        let mut last = None;
        while let Ok(ev) = rx.try_recv() {
            match ev {
                FetchEvent::Batch { batch, .. } => {
                    assert!(last.is_none(), "records after the collection was done");
                    batches += 1;
                    entities += batch.entities.len();
                }
                FetchEvent::Progress { count, done, .. } => {
                    progress += 1;
                    if done {
                        last = Some(count);
                    }
                }
                FetchEvent::Warning { .. } => warnings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(entities, 5_000);
        assert_eq!(warnings, 1, "a skipped record is told at once");
        assert_eq!(batches, 5, "2,000 records an event");
        assert!(progress < 100, "{progress} progress events for 5,000 sends");
        assert_eq!(last, Some(4_999));
    }
}
