//! Reading a tenant: the HTTP client and its pacing, page scanning, the
//! sources and what they read, and the orchestration that makes one graph.
//!
//! This module's own part: each source runs as its own tokio task and
//! reports `FetchEvent`s over a channel; a failed source never stops the
//! others. `GraphBuilder` is the one place where events become graph: the
//! headless `tenx fetch` and the explorer both feed it.

pub mod gate;
pub mod http;
pub mod logons;
pub mod outgoing;
pub mod pace;
pub mod record;
pub mod report;
pub mod scan;
pub mod sources;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::fetch::http::{Http, MetricsSnapshot};
use crate::ingest::joins::Linker;
use crate::model::TenantGraph;

pub use crate::fetch::sources::context::{
    Carried, CarryError, CarryLoader, Ctx, DefenderApi, FetchEvent, FetchOptions, HuntingPolicy,
    Outcome, SettingError, Source, SourceStatus, explain_failure, gaps, permission_for, today,
};

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
        // Waits for throttled services are shown while they last.
        let mut waits = http.watch_waits();
        let told = tx.clone();
        let _waits = crate::fetch::http::AbortOnDrop(tokio::spawn(async move {
            while let Some(w) = waits.recv().await {
                let _ = told.send(FetchEvent::Waiting {
                    endpoint: w.endpoint,
                    wait: w.wait,
                    cause: w.cause,
                });
            }
        }));
        let tasks = sources.into_iter().map(|source| {
            let http = http.clone();
            let tx = tx.clone();
            let options = options.clone();
            (source, async move {
                let status = run_source(http, source, options, tx.clone()).await;
                let _ = tx.send(FetchEvent::SourceDone { source, status });
            })
        });
        supervise(tasks, &tx, start).await;
        let _ = tx.send(FetchEvent::Done {
            metrics: http.metrics(),
            elapsed: start.elapsed(),
        });
    });
    rx
}

/// Runs each source's task to its end. A source whose task dies (a panic)
/// is reported failed with its cause, never left out.
async fn supervise(
    tasks: impl IntoIterator<Item = (Source, impl Future<Output = ()> + Send + 'static)>,
    tx: &UnboundedSender<FetchEvent>,
    start: Instant,
) {
    let mut set = tokio::task::JoinSet::new();
    let mut running = std::collections::HashMap::new();
    for (source, task) in tasks {
        running.insert(set.spawn(task).id(), source);
    }
    while let Some(joined) = set.join_next_with_id().await {
        let Err(e) = joined else { continue };
        let Some(source) = running.get(&e.id()).copied() else {
            continue;
        };
        let cause = if e.is_panic() {
            let payload = e.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            format!("tenx failed while reading it (a panic: {text}); please report this")
        } else {
            "its task was cancelled".to_string()
        };
        tracing::error!(source = source.name(), %cause, "a source task ended abnormally");
        let line = format!("{}: {cause}", source.name());
        let _ = tx.send(FetchEvent::Warning {
            source,
            message: line.clone(),
        });
        let status = SourceStatus::failed(source, vec![line], start.elapsed().as_millis() as u64);
        let _ = tx.send(FetchEvent::SourceDone { source, status });
    }
}

/// A task that ends when its handle is dropped.
async fn run_source(
    http: Arc<Http>,
    source: Source,
    options: Arc<FetchOptions>,
    tx: UnboundedSender<FetchEvent>,
) -> SourceStatus {
    let start = Instant::now();
    // The retired Defender for Endpoint API is not called once it is gone.
    let mut retirement_note = None;
    if source == Source::Defender {
        let today = options
            .today
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        match options.defender.retirement(today) {
            Ok(note) => retirement_note = note,
            Err(why) => {
                let line = format!("defender: {why}");
                let _ = tx.send(FetchEvent::Warning {
                    source,
                    message: line.clone(),
                });
                return SourceStatus::failed(source, vec![line], 0);
            }
        }
    }
    // The token tells the tenant's GUID (the account entity's key) and
    // whether the API can be used at all.
    let api = match (source, options.defender) {
        (Source::Directory | Source::Intune, _) => crate::auth::endpoints::Api::Graph,
        (Source::Defender, DefenderApi::Graph) => crate::auth::endpoints::Api::Graph,
        (Source::Defender, DefenderApi::Mde) => crate::auth::endpoints::Api::Defender,
        (Source::Arm, _) => crate::auth::endpoints::Api::Arm,
    };
    let token = match http.token(api).await {
        Ok(t) => t,
        Err(e) => {
            let line = explain_failure(source, "sign-in", &e);
            let _ = tx.send(FetchEvent::Warning {
                source,
                message: line.clone(),
            });
            return SourceStatus::failed(source, vec![line], start.elapsed().as_millis() as u64);
        }
    };
    let tenant = crate::auth::claims_of(token.value.expose())
        .and_then(|c| c["tid"].as_str().map(String::from))
        .unwrap_or_else(|| http.auth().credentials.tenant.clone());
    let defender = options.defender;
    let ctx = Ctx::new(http, source, tenant, options, tx);
    match (source, defender) {
        (Source::Directory, _) => crate::fetch::sources::directory::run(&ctx).await,
        (Source::Intune, _) => crate::fetch::sources::intune::run(&ctx).await,
        (Source::Defender, DefenderApi::Graph) => crate::fetch::sources::hunting::run(&ctx).await,
        (Source::Defender, DefenderApi::Mde) => crate::fetch::sources::defender::run(&ctx).await,
        (Source::Arm, _) => crate::fetch::sources::arm::run(&ctx).await,
    }
    // What is read there first; then that the API is going away.
    if let Some(note) = retirement_note {
        ctx.note(note);
    }
    ctx.flush();
    ctx.status(start.elapsed().as_millis() as u64)
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
    /// Whether any source was read, even in part: what makes a fetch worth
    /// saving and showing.
    pub fn read_any(&self) -> bool {
        self.statuses
            .values()
            .any(|s| matches!(s.outcome, Outcome::Complete | Outcome::Partial))
    }

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
            FetchEvent::Progress { .. } | FetchEvent::Waiting { .. } => {}
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
    use crate::auth::endpoints::{Cloud, Endpoints};
    use crate::auth::secret::Secret;
    use crate::auth::{Auth, Credentials};
    use crate::fetch::http::HttpOptions;
    use crate::ingest::Batch;
    use crate::model::{EntityKind, Verb};

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

    #[tokio::test]
    async fn a_source_whose_task_panics_is_reported_failed_with_its_cause() {
        let (tx, mut rx) = unbounded_channel();
        let ok_tx = tx.clone();
        type Task = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
        let complete: Task = Box::pin(async move {
            let status = SourceStatus {
                outcome: Outcome::Complete,
                ..SourceStatus::not_asked(Source::Directory)
            };
            let _ = ok_tx.send(FetchEvent::SourceDone {
                source: Source::Directory,
                status,
            });
        });
        // What a token's `expires_in` of u64::MAX once did in auth.
        let overflow: Task = Box::pin(async {
            let big: u64 = std::hint::black_box(u64::MAX);
            let _ = Instant::now() + Duration::from_secs(big);
        });
        supervise(
            [(Source::Directory, complete), (Source::Arm, overflow)],
            &tx,
            Instant::now(),
        )
        .await;
        drop(tx);
        let mut done = BTreeMap::new();
        while let Some(ev) = rx.recv().await {
            if let FetchEvent::SourceDone { source, status } = ev {
                done.insert(source, status);
            }
        }
        assert_eq!(done.len(), 2, "no source vanishes: {done:?}");
        assert_eq!(done[&Source::Directory].outcome, Outcome::Complete);
        let arm = &done[&Source::Arm];
        assert_eq!(arm.outcome, Outcome::Failed);
        assert!(
            arm.errors[0].starts_with("arm: tenx failed while reading it (a panic: overflow"),
            "{:?}",
            arm.errors
        );
    }

    #[test]
    fn small_batches_are_gathered_and_nothing_is_lost_or_late() {
        let (ctx, mut rx) = ctx();
        let mut skipped = one(0);
        skipped.skip("machine", "no id");
        ctx.send("machines", skipped);
        for i in 1..5_000 {
            ctx.send("machines", one(i));
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
        assert_eq!(warnings, 0, "a skipped record is counted, not told alone");
        assert_eq!(batches, 5, "2,000 records an event");
        assert!(progress < 100, "{progress} progress events for 5,000 sends");
        assert_eq!(last, Some(4_999));
        // The skipped record makes its collection, and the source, incomplete.
        ctx.finish("machines", Ok(4_999));
        let status = ctx.status(1);
        assert_eq!(status.skipped.get("machines"), Some(&1));
        assert_eq!(status.incomplete, ["machines"]);
        assert_eq!(status.outcome, Outcome::Partial);
        assert!(
            status
                .errors
                .iter()
                .any(|e| e
                    == "machines: 1 of 4999 records could not be kept: skipped machine: no id"),
            "{:?}",
            status.errors
        );
    }
}
