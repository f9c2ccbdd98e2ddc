//! What every source reads through: its `Ctx` (the client, the options,
//! the channel to the graph, the source's counts and failures) and the
//! words of a fetch — `Source`, `FetchEvent`, `Outcome`, `SourceStatus`,
//! `FetchOptions`. Orchestration (`crate::fetch`) sits above it.
//!
//! Size: long because it holds both the words of a fetch (`Source`,
//! `FetchEvent`, `Outcome`, `SourceStatus`, `FetchOptions`) and the `Ctx`
//! that reports in them; moving the words to a module of their own is the
//! next step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use crate::fetch::http::{Http, HttpError, MetricsSnapshot};
use crate::fetch::logons::{LogonCarry, LogonPolicy};
use crate::ingest::Batch;

pub use crate::base::setting::SettingError;

/// What went wrong reading the carry-over, as the loader tells it.
pub type CarryError = Box<dyn std::error::Error + Send + Sync>;

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

    pub fn parse(s: &str) -> Result<Source, SettingError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "directory" | "entra" | "aad" => Ok(Source::Directory),
            "intune" => Ok(Source::Intune),
            "defender" | "mde" => Ok(Source::Defender),
            "arm" | "azure" => Ok(Source::Arm),
            other => Err(SettingError(format!(
                "unknown source '{other}' (directory, intune, defender, arm)"
            ))),
        }
    }

    /// The source whose records make an entity of this kind: a source
    /// that was not read is carried over with the kinds it owns.
    pub fn of_kind(kind: crate::model::EntityKind) -> Source {
        use crate::model::EntityKind as K;
        match kind {
            K::AzureAccount
            | K::AzureUser
            | K::AzureUserGroup
            | K::AzureGroupMember
            | K::AzureServicePrincipal => Source::Directory,
            K::DefenderMachine | K::DefenderVulnerability | K::Cve | K::DefenderLogonUser => {
                Source::Defender
            }
            K::AzureSubscription
            | K::AzureResourceGroup
            | K::AzureRoleAssignment
            | K::AzureRoleDefinition => Source::Arm,
            k if k.is_azure_resource() => Source::Arm,
            _ => Source::Intune,
        }
    }

    /// Whether carrying this source over brings a relationship between
    /// these kinds: whether the source's records make it. Within a source,
    /// that source; between the directory and another source, the other
    /// (a device's owner comes from Intune's device record, a role
    /// assignment's principal from ARM's); between two other sources (a
    /// machine that manages a device, joined after the fetch), either.
    /// A fresh read of the source that made a relationship is never
    /// contradicted by an older copy carried with another source.
    pub fn carries_relationship(
        self,
        from: crate::model::EntityKind,
        to: crate::model::EntityKind,
    ) -> bool {
        let (a, b) = (Source::of_kind(from), Source::of_kind(to));
        if a == b {
            a == self
        } else if a == Source::Directory {
            b == self
        } else if b == Source::Directory {
            a == self
        } else {
            a == self || b == self
        }
    }

    pub fn parse_list(s: &str) -> Result<Vec<Source>, SettingError> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let src = Source::parse(part)?;
            if !out.contains(&src) {
                out.push(src);
            }
        }
        if out.is_empty() {
            return Err(SettingError(
                "no source named (directory, intune, defender, arm)".into(),
            ));
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
    /// A request waits for a throttled or failing service before it tries
    /// again (waits of a second or more).
    Waiting {
        endpoint: String,
        wait: Duration,
        cause: String,
    },
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Everything was read.
    Complete,
    /// Some collections could not be read, or some of their records; the
    /// rest is there (even when every collection failed part way).
    Partial,
    /// Nothing could be read: every collection failed before a single
    /// item came.
    Failed,
    /// This fetch did not ask for the source (`--sources`, the profile's).
    NotAsked,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::NotAsked => "not-asked",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Complete,
            Outcome::Partial,
            Outcome::Failed,
            Outcome::NotAsked,
        ]
        .into_iter()
        .find(|o| o.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub source: Source,
    /// What this fetch read of the source.
    pub outcome: Outcome,
    /// One line per collection that failed or lost records: what, why and
    /// how to fix it.
    pub errors: Vec<String>,
    /// Items read per collection.
    pub counts: BTreeMap<String, usize>,
    /// Records a collection answered but that could not be kept (not an
    /// object, no id, …), per collection.
    #[serde(default)]
    pub skipped: BTreeMap<String, usize>,
    /// Collections not read completely: failed, or with records skipped or
    /// cut.
    #[serde(default)]
    pub incomplete: Vec<String>,
    pub elapsed_ms: u64,
    /// What a person should know of what was read, though nothing failed
    /// (logon users carried over from an earlier snapshot, and how old).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// When this fetch did not read the source completely, the data shown
    /// for it comes from an earlier snapshot that did: which, and when it
    /// was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<Carried>,
}

/// What a snapshot's data lacks or holds from earlier snapshots, one line
/// per source not read completely by its fetch (`SourceStatus::gap`).
pub fn gaps(
    statuses: &BTreeMap<Source, SourceStatus>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    statuses
        .values()
        .filter(|s| s.outcome != Outcome::Complete)
        .map(|s| s.gap(now))
        .collect()
}

/// Where a source's data came from when this fetch did not read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    /// The snapshot that read it completely.
    pub snapshot: i64,
    /// When that snapshot was read (RFC 3339).
    pub read_at: String,
}

impl Carried {
    /// "carried over from snapshot 3, read 2 h ago".
    pub fn words(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let age = chrono::DateTime::parse_from_rfc3339(&self.read_at)
            .map(|t| crate::fetch::logons::age((now - t.with_timezone(&chrono::Utc)).num_seconds()))
            .unwrap_or_else(|_| "at an unknown time".into());
        format!(
            "carried over from snapshot {}, read {age} ago",
            self.snapshot
        )
    }
}

impl SourceStatus {
    /// What this source lacks, in one line: "intune: partial (compliance
    /// device statuses not read completely)", "arm: not asked; carried over
    /// from snapshot 3, read 2 h ago".
    pub fn gap(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let mut line = format!(
            "{}: {}",
            self.source.name(),
            self.outcome.name().replace('-', " ")
        );
        if !self.incomplete.is_empty() {
            line += &format!(" ({} not read completely)", self.incomplete.join(", "));
        }
        match &self.carried {
            Some(c) => line += &format!("; {}", c.words(now)),
            None if self.outcome != Outcome::Partial => line += "; no earlier snapshot has it",
            None => {}
        }
        line
    }

    /// A source this fetch did not ask for.
    pub fn not_asked(source: Source) -> SourceStatus {
        SourceStatus {
            source,
            outcome: Outcome::NotAsked,
            errors: Vec::new(),
            counts: BTreeMap::new(),
            skipped: BTreeMap::new(),
            incomplete: Vec::new(),
            elapsed_ms: 0,
            notes: Vec::new(),
            carried: None,
        }
    }

    /// A source that ended before reading anything, with why.
    pub fn failed(source: Source, errors: Vec<String>, elapsed_ms: u64) -> SourceStatus {
        SourceStatus {
            outcome: Outcome::Failed,
            errors,
            elapsed_ms,
            ..SourceStatus::not_asked(source)
        }
    }

    /// Whether the data of this source in the snapshot is whole: read
    /// completely now, or carried over from a snapshot that read it so.
    pub fn is_whole(&self) -> bool {
        self.outcome == Outcome::Complete || self.carried.is_some()
    }
}

/// Reads the previous snapshot's logon users; run on a blocking thread
/// while the machines are listed.
pub type CarryLoader = Arc<dyn Fn() -> Result<LogonCarry, CarryError> + Send + Sync>;

/// Which API Defender's data is read through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DefenderApi {
    /// Microsoft Graph security advanced hunting (`ThreatHunting.Read.All`).
    #[default]
    Graph,
    /// The Defender for Endpoint API (`WindowsDefenderATP`), retired on
    /// 1 February 2027 (Message Center MC1220762).
    Mde,
}

impl DefenderApi {
    pub fn name(self) -> &'static str {
        match self {
            DefenderApi::Graph => "graph",
            DefenderApi::Mde => "mde",
        }
    }

    /// From a setting's text (`TENX_DEFENDER_API`), as the command line
    /// takes it.
    pub fn parse(s: &str) -> Result<DefenderApi, SettingError> {
        <DefenderApi as clap::ValueEnum>::from_str(s.trim(), true).map_err(|_| {
            SettingError(format!(
                "unknown Defender API '{}' (graph or mde)",
                s.trim()
            ))
        })
    }

    /// When the Defender for Endpoint API stops working.
    pub fn mde_retirement() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2027, 2, 1).unwrap_or_default()
    }

    /// What a person must know of choosing this API on `today`: `Err` when
    /// it no longer works.
    pub fn retirement(self, today: chrono::NaiveDate) -> Result<Option<String>, String> {
        if self != DefenderApi::Mde {
            return Ok(None);
        }
        if today >= DefenderApi::mde_retirement() {
            return Err(
                "the Defender for Endpoint API was retired on 1 February 2027 (Message Center MC1220762): read Defender through Microsoft Graph security instead (`defender = \"graph\"` in the profile, or `--defender-api graph`), which needs the application permission ThreatHunting.Read.All".into(),
            );
        }
        Ok(Some(
            "read through the Defender for Endpoint API, which retires on 1 February 2027: switch to Microsoft Graph security (`defender = \"graph\"`, permission ThreatHunting.Read.All)".into(),
        ))
    }
}

/// Advanced hunting's documented limits, which tenx keeps to.
#[derive(Debug, Clone, PartialEq)]
pub struct HuntingPolicy {
    /// The most rows one result holds; a result of this many was cut.
    pub row_cap: usize,
    /// Calls per window per tenant: (calls, window). Documented: at least
    /// 45 a minute.
    pub calls: Vec<(u32, Duration)>,
    /// The rows a partition is planned to hold: half the cap unless set
    /// (tests set it past the cap, to see cut results read again).
    pub target: Option<usize>,
}

impl Default for HuntingPolicy {
    fn default() -> Self {
        HuntingPolicy {
            row_cap: 100_000,
            calls: vec![(45, Duration::from_secs(60))],
            target: None,
        }
    }
}

impl HuntingPolicy {
    /// The documented limits, or those in `TENX_HUNTING_LIMITS`
    /// (`rows=100000,calls=45/60s`): for a tenant whose limits differ, and
    /// for tests against a simulated tenant with scaled limits.
    pub fn from_env() -> Result<HuntingPolicy, SettingError> {
        let mut p = HuntingPolicy::default();
        let Ok(spec) = std::env::var("TENX_HUNTING_LIMITS") else {
            return Ok(p);
        };
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || {
                SettingError(format!(
                    "TENX_HUNTING_LIMITS: '{item}' is not rows=N, calls=N/Ss or target=N"
                ))
            };
            match item.split_once('=').ok_or_else(bad)? {
                ("rows", n) => p.row_cap = n.parse().map_err(|_| bad())?,
                ("target", n) => p.target = Some(n.parse().map_err(|_| bad())?),
                ("calls", w) => {
                    p.calls = crate::fetch::logons::parse_windows(w)
                        .map_err(|e| SettingError(format!("TENX_HUNTING_LIMITS: {e}")))?
                }
                _ => return Err(bad()),
            }
        }
        // Above the service's own cap, a cut result would pass for whole.
        if !(2..=100_000).contains(&p.row_cap) {
            return Err(SettingError(
                "TENX_HUNTING_LIMITS: rows must be 2 to 100000 (the service's documented cap)"
                    .into(),
            ));
        }
        Ok(p)
    }
}

/// How a fetch reads what has limits of its own.
#[derive(Clone, Default)]
pub struct FetchOptions {
    pub logons: LogonPolicy,
    /// Where logon users not read this time come from; none: not carried.
    pub carry: Option<CarryLoader>,
    /// Which API Defender is read through.
    pub defender: DefenderApi,
    /// Advanced hunting's limits (Defender through Graph).
    pub hunting: HuntingPolicy,
    /// The day the old Defender API's retirement is judged on: today, or
    /// `TENX_TODAY` (`2027-02-01`), so what happens after the date can be
    /// seen before it and tests do not change with the calendar.
    pub today: Option<chrono::NaiveDate>,
}

/// Today, or the day `TENX_TODAY` names (`YYYY-MM-DD`).
pub fn today() -> Result<chrono::NaiveDate, SettingError> {
    match std::env::var("TENX_TODAY") {
        Ok(d) if !d.trim().is_empty() => chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
            .map_err(|e| {
                SettingError(format!(
                    "TENX_TODAY: '{d}' is not a date like 2027-02-01 ({e})"
                ))
            }),
        _ => Ok(chrono::Utc::now().date_naive()),
    }
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("logons", &self.logons)
            .field("defender", &self.defender)
            .field("hunting", &self.hunting)
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
    /// Per collection: records not kept, and a few of their reasons.
    skipped: std::sync::Mutex<BTreeMap<&'static str, Losses>>,
    /// Per collection: records kept with values changed to be readable.
    repaired: std::sync::Mutex<BTreeMap<&'static str, Losses>>,
    /// Collections that failed.
    failed: std::sync::Mutex<Vec<&'static str>>,
    collections: std::sync::atomic::AtomicUsize,
    /// Records not yet sent (see `BATCH_RECORDS`).
    gathered: std::sync::Mutex<Batch>,
}

/// Records of one collection that were not kept whole: how many, whether
/// any value was lost, and the first few reasons.
#[derive(Debug, Default)]
struct Losses {
    count: usize,
    lost: bool,
    examples: Vec<String>,
}

impl Losses {
    const EXAMPLES: usize = 3;

    fn add(&mut self, why: String, lost: bool) {
        self.count += 1;
        self.lost |= lost;
        if self.examples.len() < Self::EXAMPLES && !self.examples.contains(&why) {
            self.examples.push(why);
        }
    }

    /// The first few reasons, and how many more there were.
    fn examples(&self) -> String {
        let more = self.count.saturating_sub(self.examples.len());
        let mut s = self.examples.join("; ");
        if more > 0 {
            s += &format!("; and {more} more");
        }
        s
    }
}

impl Ctx {
    pub(crate) fn new(
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
            skipped: Default::default(),
            repaired: Default::default(),
            failed: Default::default(),
            collections: Default::default(),
            gathered: Default::default(),
        }
    }

    /// One page of a collection: each record through `ingest`, then the
    /// records to the graph and the page counted. Records that could not be
    /// kept (`Batch::skip`) or were kept with values changed to be readable
    /// (`Record::repair`) are counted against the collection.
    pub fn ingest(
        &self,
        collection: &'static str,
        records: &[crate::fetch::record::Record<'_>],
        mut ingest: impl FnMut(&crate::fetch::record::Record<'_>, &mut Batch),
    ) {
        let mut b = Batch::default();
        for r in records {
            ingest(r, &mut b);
            if let Some(repair) = r.repair() {
                let id = crate::ingest::text(r, "id").unwrap_or("a record");
                if let Ok(mut m) = self.repaired.lock() {
                    m.entry(collection)
                        .or_default()
                        .add(format!("{id}: {}", repair.notes.join(", ")), repair.lost);
                }
            }
        }
        self.progress(collection, records.len(), false);
        self.send(collection, b);
    }

    /// Hands records to the graph, gathered into batches of
    /// `BATCH_RECORDS`; records that could not be kept are counted against
    /// `collection` (and make it incomplete).
    pub fn send(&self, collection: &'static str, mut batch: Batch) {
        if !batch.skipped.is_empty() {
            if let Ok(mut m) = self.skipped.lock() {
                let losses = m.entry(collection).or_default();
                for why in batch.skipped.drain(..) {
                    losses.add(why, true);
                }
            }
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
                if let Ok(mut f) = self.failed.lock() {
                    f.push(collection);
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

    /// Something a person should know now: told while the fetch runs, and
    /// kept as a note in the source's status, so the snapshot and the
    /// report say it too.
    pub fn warn(&self, message: String) {
        self.note(message.clone());
        let _ = self.tx.send(FetchEvent::Warning {
            source: self.source,
            message,
        });
    }

    /// A collection that could not even start because the one it comes
    /// from failed (a group's members when the groups could not be
    /// listed): not read, and said so, never an empty collection.
    pub fn not_read(&self, collection: &'static str, because: &str) {
        self.collections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let line = format!("{collection}: not read, because {because}");
        let _ = self.tx.send(FetchEvent::Warning {
            source: self.source,
            message: line.clone(),
        });
        if let Ok(mut errs) = self.errors.lock() {
            errs.push(line);
        }
        if let Ok(mut f) = self.failed.lock() {
            f.push(collection);
        }
    }

    /// The source's status once every collection has ended.
    pub(crate) fn status(&self, elapsed_ms: u64) -> SourceStatus {
        let mut errors = self.errors.lock().map(|e| e.clone()).unwrap_or_default();
        let counts = self.counts.lock().map(|c| c.clone()).unwrap_or_default();
        let mut notes = self.notes.lock().map(|n| n.clone()).unwrap_or_default();
        let failed = self.failed.lock().map(|f| f.clone()).unwrap_or_default();
        let mut incomplete: Vec<String> = failed.iter().map(|c| c.to_string()).collect();
        let mut skipped = BTreeMap::new();
        if let Ok(m) = self.skipped.lock() {
            for (collection, losses) in m.iter() {
                skipped.insert(collection.to_string(), losses.count);
                incomplete.push(collection.to_string());
                errors.push(format!(
                    "{collection}: {} of {} records could not be kept: {}",
                    losses.count,
                    counts.get(*collection).copied().unwrap_or(losses.count),
                    losses.examples()
                ));
            }
        }
        if let Ok(m) = self.repaired.lock() {
            for (collection, losses) in m.iter() {
                let line = format!(
                    "{collection}: {} record{} kept with values changed: {}",
                    losses.count,
                    if losses.count == 1 { "" } else { "s" },
                    losses.examples()
                );
                if losses.lost {
                    incomplete.push(collection.to_string());
                    errors.push(line);
                } else {
                    notes.push(line);
                }
            }
        }
        // Collections end in any order; sorted, the same failure reads the same.
        errors.sort();
        incomplete.sort();
        incomplete.dedup();
        let total = self.collections.load(std::sync::atomic::Ordering::Relaxed);
        let outcome = if incomplete.is_empty() && errors.is_empty() {
            Outcome::Complete
        } else if failed.len() >= total && counts.values().all(|&n| n == 0) {
            // Nothing read at all: what an earlier snapshot read stands in
            // (carry-over). Anything read is kept as read, gaps named —
            // mixing it with older data would bring back what is gone.
            Outcome::Failed
        } else {
            Outcome::Partial
        };
        SourceStatus {
            source: self.source,
            outcome,
            errors,
            counts,
            skipped,
            incomplete,
            elapsed_ms,
            notes,
            carried: None,
        }
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
        Source::Intune
            if e.contains("deviceappmanagement") || e.contains("installstatusreport") =>
        {
            "Microsoft Graph DeviceManagementApps.Read.All"
        }
        Source::Intune => "Microsoft Graph DeviceManagementManagedDevices.Read.All",
        Source::Defender if e.contains("runhuntingquery") => {
            "Microsoft Graph ThreatHunting.Read.All"
        }
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
