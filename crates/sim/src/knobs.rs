//! Test and benchmark knobs of the simulated tenant: injected faults and
//! per-app throttling budgets.
//!
//! Size: long because every fault, budget and limit a test can set is parsed
//! here with the message a wrong value gets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The four services behind the one loopback port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Login,
    Graph,
    Defender,
    Arm,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Login => "login",
            Service::Graph => "graph",
            Service::Defender => "defender",
            Service::Arm => "arm",
        }
    }
}

/// Which API family a source name stands for (`--faults forbid=defender`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceName {
    Directory,
    Intune,
    Defender,
    Arm,
}

impl SourceName {
    pub fn parse(s: &str) -> anyhow::Result<SourceName> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "directory" | "entra" | "graph" => SourceName::Directory,
            "intune" => SourceName::Intune,
            "defender" => SourceName::Defender,
            "arm" | "azure" => SourceName::Arm,
            other => bail!("unknown source '{other}' (directory, intune, defender, arm)"),
        })
    }
}

/// `--faults SPEC`: comma-separated `name=value` items.
///
/// | item | effect |
/// | --- | --- |
/// | `429=R` | a share R (0..1) of API requests answered 429 with `Retry-After` |
/// | `503=R`, `500=R` | a share R answered with that status |
/// | `malformed=R` | a share R of 200 answers carry a truncated JSON body |
/// | `malformed-at=PATH` | every first page of PATH (a path prefix after the service prefix, e.g. `/defender/api/machines`) is malformed |
/// | `drop=R` | a share R of connections closed mid-answer |
/// | `forbid=SOURCE` | the app lacks every permission of a source: 403 on its endpoints |
/// | `missing-role=ROLE` | the app lacks one application permission (e.g. `Machine.Read.All`) |
/// | `expire=S` | tokens stop working S seconds after they were issued (they still claim an hour) |
/// | `retry-after=S` | the `Retry-After` value sent with 429/503 (default 1; `none` sends none, `date` an HTTP date); whole seconds, a fraction rounded up unless `ServerOptions::subsecond_retry_after` (test-only) |
/// | `batch-body=KIND[:R]` | `$batch` sub-answers with status 200 get a body that is not a page: `null`, `base64` (the page, base64-encoded: real Graph sends these, and a client reads them), `error` (an error object) or `value-null` (`{"value": null}`); all of them, or a share R |
/// | `loop-next=PATH` | the last page of every collection under PATH links back to a page already served (`@odata.nextLink`, ARM `nextLink`, Resource Graph `$skipToken`) |
/// | `token-expires-in=N` | tokens are answered with `expires_in` N (e.g. 18446744073709551615) |
/// | `null-records=R` | a share R of collection records is replaced by `null`, a string, or the record without its `id` |
/// | `deep-nesting=N` | the first subscription carries a property nested N levels deep |
/// | `big-number=NUMBER` | the first subscription carries a number out of a double's range, as written (e.g. `-1e999999`) |
/// | `big-page=MB` | the first page of users is padded to MB megabytes |
/// | `kb-missing=N` | advanced hunting's knowledge base (`DeviceTvmSoftwareVulnerabilitiesKB`) has no row for N of the CVEs machines have |
/// | `arm-no-reader` | the app has no role on any subscription: ARM lists none (200, empty) and refuses the rest |
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub rate_429: f64,
    pub rate_503: f64,
    pub rate_500: f64,
    pub rate_malformed: f64,
    pub malformed_at: Vec<String>,
    pub rate_drop: f64,
    pub forbid: Vec<SourceName>,
    pub missing_roles: Vec<String>,
    pub expire_after: Option<Duration>,
    pub retry_after: RetryAfter,
    pub batch_body: Option<(BatchBody, f64)>,
    pub loop_next: Vec<String>,
    pub token_expires_in: Option<u64>,
    pub null_records: f64,
    pub deep_nesting: Option<usize>,
    pub big_number: Option<String>,
    pub big_page_mb: Option<usize>,
    pub kb_missing: usize,
}

/// What a `$batch` sub-answer's body becomes (`batch-body=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchBody {
    Null,
    Base64,
    Error,
    ValueNull,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RetryAfter {
    Seconds(f64),
    None,
    HttpDate(u64),
}

impl Default for RetryAfter {
    fn default() -> Self {
        RetryAfter::Seconds(1.0)
    }
}

fn rate(name: &str, v: &str) -> anyhow::Result<f64> {
    let r: f64 = v
        .trim_end_matches('%')
        .parse()
        .with_context(|| format!("--faults {name}: '{v}' is not a number"))?;
    let r = if v.ends_with('%') { r / 100.0 } else { r };
    if !(0.0..=1.0).contains(&r) {
        bail!("--faults {name}: rate {v} is outside 0..1");
    }
    Ok(r)
}

impl Faults {
    pub fn parse(spec: &str) -> anyhow::Result<Faults> {
        let mut f = Faults::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "arm-no-reader" {
                f.forbid.push(SourceName::Arm);
                continue;
            }
            let (name, value) = item
                .split_once('=')
                .with_context(|| format!("--faults: '{item}' is not name=value"))?;
            let count = |what: &str| -> anyhow::Result<usize> {
                value
                    .parse()
                    .with_context(|| format!("--faults {what}: '{value}' is not a whole number"))
            };
            match name {
                "batch-body" => {
                    let (kind, share) = match value.split_once(':') {
                        Some((k, r)) => (k, rate(name, r)?),
                        None => (value, 1.0),
                    };
                    let kind = match kind {
                        "null" => BatchBody::Null,
                        "base64" => BatchBody::Base64,
                        "error" => BatchBody::Error,
                        "value-null" => BatchBody::ValueNull,
                        other => bail!(
                            "--faults batch-body: unknown body '{other}' (null, base64, error, value-null)"
                        ),
                    };
                    f.batch_body = Some((kind, share));
                }
                "loop-next" => f.loop_next.push(value.to_string()),
                "token-expires-in" => {
                    f.token_expires_in = Some(value.parse().with_context(|| {
                        format!("--faults token-expires-in: '{value}' is not a number of seconds")
                    })?)
                }
                "null-records" => f.null_records = rate(name, value)?,
                "deep-nesting" => f.deep_nesting = Some(count(name)?),
                "big-number" => {
                    let ok = serde_json::from_str::<serde::de::IgnoredAny>(value).is_ok()
                        && value
                            .starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
                    if !ok {
                        bail!("--faults big-number: '{value}' is not a JSON number");
                    }
                    f.big_number = Some(value.to_string());
                }
                "big-page" => f.big_page_mb = Some(count(name)?),
                "kb-missing" => f.kb_missing = count(name)?,
                "429" => f.rate_429 = rate(name, value)?,
                "503" => f.rate_503 = rate(name, value)?,
                "500" => f.rate_500 = rate(name, value)?,
                "malformed" => f.rate_malformed = rate(name, value)?,
                "malformed-at" => f.malformed_at.push(value.to_string()),
                "drop" => f.rate_drop = rate(name, value)?,
                "forbid" => f.forbid.push(SourceName::parse(value)?),
                "missing-role" => f.missing_roles.push(value.to_string()),
                "expire" => {
                    let s: f64 = value
                        .parse()
                        .with_context(|| format!("--faults expire: '{value}' is not seconds"))?;
                    f.expire_after =
                        Some(Duration::try_from_secs_f64(s.max(0.0)).with_context(|| {
                            format!("--faults expire: '{value}' is not seconds")
                        })?);
                }
                "retry-after" => {
                    f.retry_after = match value {
                        "none" => RetryAfter::None,
                        "date" => RetryAfter::HttpDate(2),
                        v => RetryAfter::Seconds(v.parse().with_context(|| {
                            format!("--faults retry-after: '{v}' is not seconds, none or date")
                        })?),
                    }
                }
                other => bail!(
                    "--faults: unknown fault '{other}' (429, 503, 500, malformed, malformed-at, drop, forbid, missing-role, expire, retry-after, batch-body, loop-next, token-expires-in, null-records, deep-nesting, big-number, big-page, kb-missing, arm-no-reader)"
                ),
            }
        }
        Ok(f)
    }
}

/// The service limits `--throttle` enforces, per app, as the services
/// document them by default:
///
/// - Graph's identity and access service (users, groups, members, service
///   principals, organization): a token bucket of resource units per app
///   and tenant, 3,500, 5,000 or 8,000 per 10 s for tenants of under 50,
///   up to 500 and over 500 users; a request costs 1, `users` 2 and
///   `groups/{id}/members` 3, one less with `$select`, one less with a
///   `$top` under 20, never under 1. Answers carry `x-ms-resource-unit`,
///   and `x-ms-throttle-limit-percentage` once more than 80 % of the limit
///   is used ("Microsoft Graph service-specific throttling limits").
/// - Intune, per area and per app per tenant, each a window of 20 s:
///   devices (managed and detected) 2,000; device configuration
///   (compliance policies, configurations and their statuses) 1,000;
///   applications 1,000 (the Intune sections of the same page). The
///   reports under `deviceManagement/reports` are not listed there; they
///   get the devices' 2,000.
/// - Defender: 1,500 calls a minute (unchanged).
/// - ARM reads: a token bucket of 250 refilled at 25 a second, per
///   subscription and, for requests naming none, per tenant, with
///   `x-ms-ratelimit-remaining-subscription-reads` (or `-tenant-reads`) on
///   every answer ("Understand how Azure Resource Manager throttles
///   requests", the 2024 regional token buckets).
/// - Azure Resource Graph: 15 queries per 5 s window per user, with
///   `x-ms-user-quota-remaining` and `x-ms-user-quota-resets-after`
///   (hh:mm:ss) on every answer ("Guidance for throttled requests in Azure
///   Resource Graph").
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleSpec {
    /// Resource units per window; `None`: by the tenant's size.
    pub directory: Option<(u32, Duration)>,
    pub intune_devices: (u32, Duration),
    pub intune_configuration: (u32, Duration),
    pub intune_apps: (u32, Duration),
    pub intune_reports: (u32, Duration),
    pub defender: (u32, Duration),
    /// Bucket size and tokens added a second.
    pub arm_reads: (u32, f64),
    pub resource_graph: (u32, Duration),
}

impl ThrottleSpec {
    pub fn documented() -> ThrottleSpec {
        let s = Duration::from_secs;
        ThrottleSpec {
            directory: None,
            intune_devices: (2000, s(20)),
            intune_configuration: (1000, s(20)),
            intune_apps: (1000, s(20)),
            intune_reports: (2000, s(20)),
            defender: (1500, s(60)),
            arm_reads: (250, 25.0),
            resource_graph: (15, s(5)),
        }
    }

    /// Graph's identity and access limit for a tenant of `users` users:
    /// resource units per 10 s per app and tenant (S, M, L).
    pub fn directory_for(&self, users: usize) -> (u32, Duration) {
        self.directory.unwrap_or_else(|| {
            let units = match users {
                0..50 => 3500,
                50..=500 => 5000,
                _ => 8000,
            };
            (units, Duration::from_secs(10))
        })
    }

    /// Comma-separated `name=N/Ws` items over the documented limits:
    /// `directory` (resource units), `intune` (every Intune area) or
    /// `intune-devices`, `intune-configuration`, `intune-apps`,
    /// `intune-reports`, `defender`, `resourcegraph`, `graph` (directory
    /// and every Intune area), and `arm=SIZE+RATE/s` (a bucket of SIZE
    /// tokens refilled at RATE a second). E.g. `resourcegraph=3/1s,arm=40+25/s`.
    pub fn parse(spec: &str) -> anyhow::Result<ThrottleSpec> {
        let mut t = ThrottleSpec::documented();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let err = || {
                format!(
                    "--throttle: '{item}' is not name=N/Ss (e.g. resourcegraph=15/5s) or arm=SIZE+RATE/s (e.g. arm=250+25/s)"
                )
            };
            let (name, budget) = item.split_once('=').with_context(err)?;
            if name == "arm" {
                let (size, rate) = budget.split_once('+').with_context(err)?;
                let size: u32 = size.parse().with_context(err)?;
                let rate: f64 = rate.trim_end_matches("/s").parse().with_context(err)?;
                if !(rate.is_finite() && rate > 0.0) {
                    bail!("{}", err());
                }
                t.arm_reads = (size.max(1), rate);
                continue;
            }
            let (n, window) = budget.split_once('/').with_context(err)?;
            let n: u32 = n.parse().with_context(err)?;
            let secs: f64 = window.trim_end_matches('s').parse().with_context(err)?;
            let w = (
                n.max(1),
                Duration::try_from_secs_f64(secs.max(0.001)).with_context(err)?,
            );
            match name {
                "graph" => {
                    t.directory = Some(w);
                    t.intune_devices = w;
                    t.intune_configuration = w;
                    t.intune_apps = w;
                    t.intune_reports = w;
                }
                "directory" => t.directory = Some(w),
                "intune" => {
                    t.intune_devices = w;
                    t.intune_configuration = w;
                    t.intune_apps = w;
                    t.intune_reports = w;
                }
                "intune-devices" => t.intune_devices = w,
                "intune-configuration" => t.intune_configuration = w,
                "intune-apps" => t.intune_apps = w,
                "intune-reports" => t.intune_reports = w,
                "defender" => t.defender = w,
                "resourcegraph" => t.resource_graph = w,
                _ => bail!(
                    "--throttle: unknown limit '{name}' (graph, directory, intune, intune-devices, intune-configuration, intune-apps, intune-reports, defender, arm, resourcegraph)"
                ),
            }
        }
        Ok(t)
    }
}

/// Which limit a request counts against (see `ThrottleSpec`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Graph's identity and access service, costing this many units.
    Directory(u32),
    IntuneDevices,
    IntuneConfiguration,
    IntuneApps,
    IntuneReports,
    Defender,
    /// ARM reads in a subscription (its id), or the tenant's (`None`).
    ArmReads(Option<String>),
    ResourceGraph,
}

/// What a limit let through, or why not.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// `Err(wait)` when refused: the time until the request would pass.
    pub verdict: Result<(), Duration>,
    /// Headers the answer carries, refused or not.
    pub headers: Vec<(&'static str, String)>,
}

/// The state of every limit, per app.
#[derive(Debug, Default)]
pub struct Throttle {
    windows: HashMap<(String, Limit), (Instant, u32)>,
    /// Tokens and when they were last counted.
    buckets: HashMap<(String, Limit), (Instant, f64)>,
}

impl Throttle {
    /// Counts a request of `app` against `limit`. `users` sizes Graph's
    /// identity limit.
    pub fn admit(
        &mut self,
        spec: &ThrottleSpec,
        app: &str,
        limit: &Limit,
        users: usize,
    ) -> Admission {
        let now = Instant::now();
        match limit {
            Limit::Directory(cost) => {
                let (units, window) = spec.directory_for(users);
                let rate = f64::from(units) / window.as_secs_f64();
                let (tokens, verdict) = self.take(app, limit, now, f64::from(units), rate, *cost);
                let used = 1.0 - tokens / f64::from(units);
                let mut headers = vec![("x-ms-resource-unit", cost.to_string())];
                if used > 0.8 || verdict.is_err() {
                    // From 0.8 to 1.8: past 1 when refused.
                    let shown = if verdict.is_err() {
                        1.0 + f64::from(*cost) / f64::from(units)
                    } else {
                        used
                    };
                    headers.push((
                        "x-ms-throttle-limit-percentage",
                        format!("{:.2}", shown.min(1.8)),
                    ));
                }
                Admission { verdict, headers }
            }
            Limit::ArmReads(sub) => {
                let (size, rate) = spec.arm_reads;
                let (tokens, verdict) = self.take(app, limit, now, f64::from(size), rate, 1);
                let name = match sub {
                    Some(_) => "x-ms-ratelimit-remaining-subscription-reads",
                    None => "x-ms-ratelimit-remaining-tenant-reads",
                };
                Admission {
                    verdict,
                    headers: vec![(name, format!("{}", tokens.max(0.0).floor() as u64))],
                }
            }
            Limit::ResourceGraph => {
                let (quota, window) = spec.resource_graph;
                let (used, started, verdict) = self.count(app, limit, now, quota, window);
                let resets = window.saturating_sub(now.duration_since(started));
                let secs = resets.as_secs_f64().ceil() as u64;
                Admission {
                    verdict,
                    headers: vec![
                        (
                            "x-ms-user-quota-remaining",
                            quota.saturating_sub(used).to_string(),
                        ),
                        (
                            "x-ms-user-quota-resets-after",
                            format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
                        ),
                    ],
                }
            }
            _ => {
                let (n, window) = match limit {
                    Limit::IntuneDevices => spec.intune_devices,
                    Limit::IntuneConfiguration => spec.intune_configuration,
                    Limit::IntuneApps => spec.intune_apps,
                    Limit::IntuneReports => spec.intune_reports,
                    _ => spec.defender,
                };
                let (_, _, verdict) = self.count(app, limit, now, n, window);
                Admission {
                    verdict,
                    headers: Vec::new(),
                }
            }
        }
    }

    /// A token bucket of `size` refilled at `rate` a second: takes `cost`
    /// tokens if there are as many. Returns the tokens left and the wait
    /// until `cost` would be there when there are not.
    fn take(
        &mut self,
        app: &str,
        limit: &Limit,
        now: Instant,
        size: f64,
        rate: f64,
        cost: u32,
    ) -> (f64, Result<(), Duration>) {
        let e = self
            .buckets
            .entry((app.to_string(), limit.clone()))
            .or_insert((now, size));
        let tokens = (e.1 + now.duration_since(e.0).as_secs_f64() * rate).min(size);
        let cost = f64::from(cost);
        *e = (now, tokens);
        if tokens < cost {
            let wait = Duration::from_secs_f64(((cost - tokens) / rate).max(0.001));
            return (tokens, Err(wait));
        }
        e.1 = tokens - cost;
        (e.1, Ok(()))
    }

    /// A fixed window of `n` requests: counts this one if it fits. Returns
    /// the requests counted, when the window began, and the wait until it
    /// ends when full. A refused request is not counted.
    fn count(
        &mut self,
        app: &str,
        limit: &Limit,
        now: Instant,
        n: u32,
        window: Duration,
    ) -> (u32, Instant, Result<(), Duration>) {
        let e = self
            .windows
            .entry((app.to_string(), limit.clone()))
            .or_insert((now, 0));
        if now.duration_since(e.0) >= window {
            *e = (now, 0);
        }
        if e.1 >= n {
            return (
                e.1,
                e.0,
                Err(window.saturating_sub(now.duration_since(e.0))),
            );
        }
        e.1 += 1;
        (e.1, e.0, Ok(()))
    }
}

/// The per-endpoint rate limits a service documents, enforced always (not a
/// knob of `--throttle`, which scales whole services): Defender allows
/// `GET /api/machines/{id}/logonusers` 100 calls a minute and 1,500 an
/// hour per app. Each limit is a fixed window; a call over any of them is
/// answered 429 with the seconds until that window ends.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// Windows of the logon-users endpoint: (calls, window).
    pub logon_users: Vec<(u32, Duration)>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::documented()
    }
}

impl RateLimits {
    pub fn documented() -> RateLimits {
        RateLimits {
            logon_users: vec![
                (100, Duration::from_secs(60)),
                (1500, Duration::from_secs(3600)),
            ],
        }
    }

    pub fn none() -> RateLimits {
        RateLimits {
            logon_users: Vec::new(),
        }
    }

    /// `documented`, `none`, or `logonusers=100/60s+1500/3600s` (scaled
    /// windows for tests).
    pub fn parse(spec: &str) -> anyhow::Result<RateLimits> {
        match spec.trim() {
            "" | "documented" => return Ok(RateLimits::documented()),
            "none" | "off" => return Ok(RateLimits::none()),
            _ => {}
        }
        let mut r = RateLimits::none();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, windows) = item.split_once('=').with_context(|| {
                format!(
                    "--rate-limits: '{item}' is not logonusers=N/Ss[+N/Ss] (e.g. logonusers=100/60s+1500/3600s), documented or none"
                )
            })?;
            if name != "logonusers" {
                bail!("--rate-limits: unknown endpoint '{name}' (logonusers)");
            }
            r.logon_users =
                parse_windows(windows).map_err(|e| anyhow::anyhow!("--rate-limits: {e}"))?;
        }
        Ok(r)
    }
}

/// The documented limits of advanced hunting (`runHuntingQuery`), per
/// tenant, with scaled values for tests (`--hunting-limits`).
///
/// Sources: Microsoft Graph's security API overview ("Quotas and resource
/// allocation": 30 days of data, 100,000 rows, at least 45 calls a minute,
/// CPU by tenant size in 15-minute cycles, three minutes per request, 50
/// MB of results) and the older Defender advanced hunting API page (10
/// minutes of running time an hour, 200 seconds per request, 124 MB).
#[derive(Debug, Clone, PartialEq)]
pub struct HuntingLimits {
    /// Rows kept of a result; the rest are cut silently.
    pub rows: usize,
    /// A result (the whole JSON answer) over this many bytes is a 400.
    pub bytes: usize,
    /// Calls per tenant: (calls, window) each.
    pub calls: Vec<(u32, Duration)>,
    /// Simulated CPU time per window: (allowance, window). None: no quota.
    pub cpu: Option<(Duration, Duration)>,
    /// Simulated CPU time per row a query reads.
    pub row_cost: Duration,
    /// A query costing more CPU than this ends with "Query exceeded the
    /// timeout period." (400).
    pub timeout: Duration,
    /// Days of data kept: rows older are not returned, whatever
    /// `Timespan` asks.
    pub retention_days: i64,
}

impl Default for HuntingLimits {
    fn default() -> Self {
        HuntingLimits::documented()
    }
}

impl HuntingLimits {
    pub fn documented() -> HuntingLimits {
        HuntingLimits {
            rows: 100_000,
            bytes: 50 << 20,
            calls: vec![(45, Duration::from_secs(60))],
            cpu: Some((Duration::from_secs(600), Duration::from_secs(3600))),
            row_cost: Duration::from_micros(1),
            timeout: Duration::from_secs(180),
            retention_days: 30,
        }
    }

    /// `documented`, or items over it: `rows=N`, `bytes=SIZE` (`124MB`,
    /// `64KB`, a number of bytes), `calls=N/Ss[+N/Ss]`, `cpu=S/Ws` (seconds
    /// of CPU per window) or `cpu=none`, `row-cost=DURATION` (`1us`,
    /// `2ms`), `timeout=DURATION` (`180s`), `retention=DAYS`.
    pub fn parse(spec: &str) -> anyhow::Result<HuntingLimits> {
        let mut l = HuntingLimits::documented();
        let spec = spec.trim();
        if spec.is_empty() || spec == "documented" {
            return Ok(l);
        }
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').with_context(|| {
                format!("--hunting-limits: '{item}' is not name=value (rows, bytes, calls, cpu, row-cost, timeout, retention)")
            })?;
            let bad =
                |what: &str| anyhow::anyhow!("--hunting-limits {name}: '{value}' is not {what}");
            match name {
                "rows" => l.rows = value.parse().map_err(|_| bad("a number of rows"))?,
                "bytes" => l.bytes = parse_size(value).ok_or_else(|| bad("a size (e.g. 124MB)"))?,
                "calls" => {
                    l.calls = parse_windows(value)
                        .map_err(|e| anyhow::anyhow!("--hunting-limits calls: {e}"))?
                }
                "cpu" => {
                    l.cpu = if value == "none" {
                        None
                    } else {
                        let (a, w) = value
                            .split_once('/')
                            .ok_or_else(|| bad("seconds/window (e.g. 600/3600s)"))?;
                        let a = parse_duration(a).ok_or_else(|| bad("seconds/window"))?;
                        let w = parse_duration(w).ok_or_else(|| bad("seconds/window"))?;
                        if w.is_zero() {
                            return Err(bad("a positive window"));
                        }
                        Some((a, w))
                    }
                }
                "row-cost" => {
                    l.row_cost =
                        parse_duration(value).ok_or_else(|| bad("a duration (e.g. 1us)"))?
                }
                "timeout" => {
                    l.timeout =
                        parse_duration(value).ok_or_else(|| bad("a duration (e.g. 180s)"))?
                }
                "retention" => {
                    l.retention_days = value.parse().map_err(|_| bad("a number of days"))?
                }
                other => bail!(
                    "--hunting-limits: unknown limit '{other}' (rows, bytes, calls, cpu, row-cost, timeout, retention)"
                ),
            }
        }
        Ok(l)
    }
}

/// `124MB` (MiB, as the documented "124 MB" is about 130 million bytes),
/// `64KB`, `1GB` or a number of bytes.
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let upper = s.to_ascii_uppercase();
    let (num, mult) = if let Some(n) = upper.strip_suffix("GB") {
        (n, 1usize << 30)
    } else if let Some(n) = upper.strip_suffix("MB") {
        (n, 1 << 20)
    } else if let Some(n) = upper.strip_suffix("KB") {
        (n, 1 << 10)
    } else {
        (upper.strip_suffix('B').unwrap_or(&upper), 1)
    };
    let n: f64 = num.trim().parse().ok()?;
    (n >= 0.0).then_some((n * mult as f64) as usize)
}

/// `1us`, `2ms`, `1.5s`, `3m`, `1h`, or seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let n: f64 = num.trim().parse().ok()?;
    Duration::try_from_secs_f64(n * scale).ok()
}

/// Simulated CPU spent in the current window of `HuntingLimits::cpu`.
#[derive(Debug, Default)]
pub struct CpuWindow {
    start: Option<Instant>,
    used: Duration,
}

impl CpuWindow {
    /// `Err(wait)` while the window's allowance is spent: queries are
    /// blocked until the window ends (the service's "next cycle").
    pub fn admit(&mut self, quota: (Duration, Duration)) -> Result<(), Duration> {
        let now = Instant::now();
        let (allowance, window) = quota;
        let start = *self.start.get_or_insert(now);
        if now.duration_since(start) >= window {
            self.start = Some(now);
            self.used = Duration::ZERO;
            return Ok(());
        }
        if self.used >= allowance {
            return Err(window.saturating_sub(now.duration_since(start)));
        }
        Ok(())
    }

    /// Counts a query's cost against the window.
    pub fn charge(&mut self, cost: Duration) {
        if self.start.is_none() {
            self.start = Some(Instant::now());
        }
        self.used += cost;
    }
}

/// Fixed windows per (app, limit) of `RateLimits`.
#[derive(Debug, Default)]
pub struct EndpointWindows {
    windows: HashMap<(String, usize), (Instant, u32)>,
}

impl EndpointWindows {
    /// Counts a call against every window; `Err(wait)` when one is spent,
    /// with the time until that window ends. A refused call counts nowhere.
    pub fn admit(&mut self, limits: &[(u32, Duration)], app: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for (i, &(limit, window)) in limits.iter().enumerate() {
            let e = self.windows.entry((app.to_string(), i)).or_insert((now, 0));
            if now.duration_since(e.0) >= window {
                *e = (now, 0);
            }
            if e.1 >= limit {
                wait = wait.max(window.saturating_sub(now.duration_since(e.0)));
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for i in 0..limits.len() {
            if let Some(e) = self.windows.get_mut(&(app.to_string(), i)) {
                e.1 += 1;
            }
        }
        Ok(())
    }
}

/// Call allowances as `calls/seconds` windows joined by `+`
/// (`100/60s+1500/3600s`). The product parses the same syntax for its own
/// pacing (`tenx::logons::parse_windows`); the simulated tenant keeps its own
/// copy so that it depends on nothing of the product but the data model's
/// names.
pub fn parse_windows(spec: &str) -> anyhow::Result<Vec<(u32, std::time::Duration)>> {
    let mut out = Vec::new();
    for w in spec.split('+').map(str::trim) {
        let bad = || anyhow::anyhow!("'{w}' is not calls/seconds (e.g. 100/60s+1500/3600s)");
        let (n, secs) = w.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let secs: f64 = secs
            .trim()
            .trim_end_matches('s')
            .parse()
            .map_err(|_| bad())?;
        let window = std::time::Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero() && n > 0);
        let Some(window) = window else {
            anyhow::bail!("'{w}' needs at least one call per positive window");
        };
        out.push((n, window));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault() {
        let f = Faults::parse("429=0.1,503=5%,drop=0.01,forbid=defender,expire=30,malformed-at=/graph/v1.0/users,missing-role=Machine.Read.All,retry-after=0.2").unwrap();
        assert_eq!(f.rate_429, 0.1);
        assert!((f.rate_503 - 0.05).abs() < 1e-9);
        assert_eq!(f.forbid, vec![SourceName::Defender]);
        assert_eq!(f.expire_after, Some(Duration::from_secs(30)));
        assert_eq!(f.retry_after, RetryAfter::Seconds(0.2));
        assert_eq!(f.missing_roles, vec!["Machine.Read.All"]);
    }

    #[test]
    fn bad_specs_name_what_is_wrong() {
        let e = Faults::parse("429=2").unwrap_err().to_string();
        assert!(e.contains("outside 0..1"), "{e}");
        let e = Faults::parse("teapot=1").unwrap_err().to_string();
        assert!(e.contains("unknown fault 'teapot'"), "{e}");
        let e = Faults::parse("forbid=mail").unwrap_err().to_string();
        assert!(e.contains("unknown source 'mail'"), "{e}");
        assert!(ThrottleSpec::parse("graph=abc").is_err());
    }

    #[test]
    fn throttle_spends_a_budget_per_window() {
        let spec = ThrottleSpec::parse("graph=2/10s").unwrap();
        let mut t = Throttle::default();
        let apps = Limit::IntuneApps;
        assert!(t.admit(&spec, "app", &apps, 10).verdict.is_ok());
        assert!(t.admit(&spec, "app", &apps, 10).verdict.is_ok());
        let wait = t.admit(&spec, "app", &apps, 10).verdict.unwrap_err();
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
        assert!(t.admit(&spec, "other-app", &apps, 10).verdict.is_ok());
    }

    #[test]
    fn the_documented_limits_and_their_headers() {
        let spec = ThrottleSpec::documented();
        assert_eq!(spec.directory_for(40).0, 3500);
        assert_eq!(spec.directory_for(500).0, 5000);
        assert_eq!(spec.directory_for(501).0, 8000);
        assert_eq!(spec.intune_devices, (2000, Duration::from_secs(20)));
        let mut t = Throttle::default();
        // ARM: a bucket of 250, the remaining reads on every answer.
        let sub = Limit::ArmReads(Some("s1".into()));
        let first = t.admit(&spec, "app", &sub, 10);
        assert_eq!(
            first.headers,
            [(
                "x-ms-ratelimit-remaining-subscription-reads",
                "249".to_string()
            )]
        );
        for _ in 0..249 {
            assert!(t.admit(&spec, "app", &sub, 10).verdict.is_ok());
        }
        let refused = t.admit(&spec, "app", &sub, 10);
        assert!(refused.verdict.unwrap_err() <= Duration::from_millis(41));
        let tenant = t.admit(&spec, "app", &Limit::ArmReads(None), 10);
        assert_eq!(tenant.headers[0].0, "x-ms-ratelimit-remaining-tenant-reads");
        // Resource Graph: 15 in 5 s, remaining and the time to the reset.
        for i in 0..15 {
            let a = t.admit(&spec, "app", &Limit::ResourceGraph, 10);
            assert!(a.verdict.is_ok());
            assert_eq!(a.headers[0].1, (14 - i).to_string());
            assert_eq!(a.headers[1].1, "00:00:05");
        }
        let a = t.admit(&spec, "app", &Limit::ResourceGraph, 10);
        assert!(a.verdict.is_err());
        assert_eq!(a.headers[0].1, "0");
        // Graph's identity limit: the percentage once past 80 %.
        let spec = ThrottleSpec::parse("directory=10/10s").unwrap();
        let mut t = Throttle::default();
        let mut shown = Vec::new();
        for _ in 0..5 {
            let a = t.admit(&spec, "app", &Limit::Directory(2), 10);
            shown.push(
                a.headers
                    .iter()
                    .find(|(k, _)| *k == "x-ms-throttle-limit-percentage")
                    .map(|(_, v)| v.clone()),
            );
        }
        assert_eq!(shown[..3], [None, None, None]);
        assert_eq!(shown[4].as_deref(), Some("1.00"), "{shown:?}");
        assert!(
            t.admit(&spec, "app", &Limit::Directory(2), 10)
                .verdict
                .is_err()
        );
        assert!(ThrottleSpec::parse("arm=40+25/s").unwrap().arm_reads == (40, 25.0));
        assert!(ThrottleSpec::parse("arm=40/10s").is_err());
        assert!(ThrottleSpec::parse("teapot=1/1s").is_err());
    }

    #[test]
    fn rate_limits_parse_and_spend_every_window() {
        assert_eq!(RateLimits::parse("").unwrap(), RateLimits::documented());
        assert!(RateLimits::parse("none").unwrap().logon_users.is_empty());
        let r = RateLimits::parse("logonusers=2/10s+3/3600s").unwrap();
        assert_eq!(r.logon_users.len(), 2);
        let mut w = EndpointWindows::default();
        assert!(w.admit(&r.logon_users, "app").is_ok());
        assert!(w.admit(&r.logon_users, "app").is_ok());
        let wait = w.admit(&r.logon_users, "app").unwrap_err();
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10));
        // A refused call is not counted: another app is untouched.
        assert!(w.admit(&r.logon_users, "other").is_ok());
        let e = RateLimits::parse("users=1/1s").unwrap_err().to_string();
        assert!(e.contains("unknown endpoint 'users'"), "{e}");
        let e = RateLimits::parse("logonusers=0/1s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one call"), "{e}");
        assert!(RateLimits::parse("logonusers=abc").is_err());
    }

    #[test]
    fn hunting_limits_parse_over_the_documented_ones() {
        let d = HuntingLimits::parse("").unwrap();
        assert_eq!(d, HuntingLimits::documented());
        assert_eq!(d.rows, 100_000);
        assert_eq!(d.bytes, 50 * 1024 * 1024);
        let l = HuntingLimits::parse(
            "rows=10,bytes=124MB,calls=3/1s+10/60s,cpu=0.5/2s,row-cost=2ms,timeout=0.1s,retention=7",
        )
        .unwrap();
        assert_eq!(l.rows, 10);
        assert_eq!(l.bytes, 130_023_424);
        assert_eq!(l.calls.len(), 2);
        assert_eq!(
            l.cpu,
            Some((Duration::from_millis(500), Duration::from_secs(2)))
        );
        assert_eq!(l.row_cost, Duration::from_millis(2));
        assert_eq!(l.timeout, Duration::from_millis(100));
        assert_eq!(l.retention_days, 7);
        assert_eq!(HuntingLimits::parse("cpu=none").unwrap().cpu, None);
        assert_eq!(HuntingLimits::parse("bytes=2048").unwrap().bytes, 2048);
        let e = HuntingLimits::parse("pages=3").unwrap_err().to_string();
        assert!(e.contains("unknown limit 'pages'"), "{e}");
        assert!(HuntingLimits::parse("bytes=lots").is_err());
        assert!(HuntingLimits::parse("calls=0/1s").is_err());
        assert!(HuntingLimits::parse("cpu=5").is_err());
    }

    #[test]
    fn the_cpu_window_blocks_once_spent_until_it_ends() {
        let q = (Duration::from_millis(10), Duration::from_millis(60));
        let mut w = CpuWindow::default();
        assert!(w.admit(q).is_ok());
        w.charge(Duration::from_millis(25));
        let wait = w.admit(q).unwrap_err();
        assert!(wait <= Duration::from_millis(60));
        std::thread::sleep(Duration::from_millis(70));
        assert!(w.admit(q).is_ok(), "a new window");
    }

    #[test]
    fn the_hourly_window_outlasts_the_minute() {
        let r = RateLimits::parse("logonusers=2/0.05s+3/3600s").unwrap();
        let mut w = EndpointWindows::default();
        assert!(w.admit(&r.logon_users, "app").is_ok());
        assert!(w.admit(&r.logon_users, "app").is_ok());
        assert!(w.admit(&r.logon_users, "app").is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(w.admit(&r.logon_users, "app").is_ok());
        let wait = w.admit(&r.logon_users, "app").unwrap_err();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
    }
}
