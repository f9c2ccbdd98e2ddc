//! The simulated tenant over loopback HTTP: one port, four services under
//! path prefixes that stand where the real hosts stand (`/login`, `/graph`,
//! `/defender`, `/arm`).
//!
//! Requests go through one dispatcher (`Sim::dispatch`) so that Graph
//! `$batch` runs its inner requests through exactly the same checks, faults
//! and throttling as top-level ones. Each service's paths live in a module
//! of their own; this one holds the dispatcher and what all services share.
//!
//! Size: long because the one dispatcher holds what all four services share
//! (faults, throttling, paging, `$batch`'s inner requests); each service's
//! paths are already modules of their own.

mod arm;
mod clock;
mod defender;
mod graph;
mod hunting;
mod login;
mod paging;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use hunting::HuntingStats;
use paging::{decode_skiptoken, encode_query, encode_skiptoken};

use super::knobs::{
    EndpointWindows, Faults, HuntingLimits, Limit, RateLimits, RetryAfter, Service, SourceName,
    Throttle, ThrottleSpec,
};
use super::render;
use super::rng::Rng;
use super::tenant::FakeTenant;
use super::token;

/// Knobs of a running simulated tenant.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    pub latency: Duration,
    pub throttle: Option<ThrottleSpec>,
    /// Per-endpoint limits the services document (Defender's logon users:
    /// 100 calls a minute, 1,500 an hour); on unless set to none.
    pub rate_limits: RateLimits,
    pub faults: Faults,
    pub request_log: Option<std::path::PathBuf>,
    /// Answer the right secret with "expired" (AADSTS7000222).
    pub secret_expired: bool,
    /// Keep every successful answer and send the same bytes when the same
    /// request comes again (off when faults or throttling are on, whose
    /// answers must stay random). Benchmarks use it so that a measured
    /// fetch pays for its own work, not for rendering the simulated
    /// records on the same cores.
    pub cache_responses: bool,
    /// Advanced hunting's documented limits (`runHuntingQuery`), or scaled
    /// ones for tests.
    pub hunting: HuntingLimits,
    /// Test-only: a wait shorter than a second is sent as its fraction
    /// (`Retry-After: 0.05`) and `retry-after=S` may be fractional. Real
    /// services send whole seconds or an HTTP date; without this knob so
    /// does this one, rounding a scaled window's wait up to a second.
    pub subsecond_retry_after: bool,
}

/// A simulated tenant serving on a loopback port.
pub struct RunningTenant {
    pub addr: SocketAddr,
    pub tenant: Arc<FakeTenant>,
    sim: Arc<Sim>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningTenant {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `KEY=value` settings a client needs, one per line.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let b = self.base_url();
        vec![
            ("TENX_TENANT_ID", self.tenant.tenant_id.clone()),
            ("TENX_CLIENT_ID", self.tenant.client_id.clone()),
            ("TENX_CLIENT_SECRET", self.tenant.client_secret.clone()),
            ("TENX_LOGIN_URL", format!("{b}/login")),
            ("TENX_GRAPH_URL", format!("{b}/graph")),
            ("TENX_DEFENDER_URL", format!("{b}/defender")),
            ("TENX_ARM_URL", format!("{b}/arm")),
        ]
    }

    /// Seconds the advanced hunting tables add to the generator's event
    /// times: whole days that bring its `EPOCH` to the day this server
    /// started (a `DeviceInfo` row's `Timestamp` is the Defender API's
    /// `lastSeen` plus this).
    pub fn hunting_shift(&self) -> i64 {
        crate::hunting::shift_for(self.sim.started)
    }

    /// What advanced hunting answered so far: answers, answers cut at the
    /// row limit (silently, as the service does), refusals for a limit.
    pub fn hunting_stats(&self) -> HuntingStats {
        self.sim
            .hunting
            .stats
            .lock()
            .map(|s| *s)
            .unwrap_or_default()
    }

    /// Requests served so far (batch sub-requests included).
    pub fn request_count(&self) -> u64 {
        self.sim.counter.lock().map(|c| *c).unwrap_or(0)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningTenant {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `addr` (use port 0 for a free one) and serves until stopped.
pub async fn serve(
    tenant: FakeTenant,
    addr: SocketAddr,
    options: ServerOptions,
) -> anyhow::Result<RunningTenant> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let tenant = Arc::new(tenant);
    let log = match &options.request_log {
        Some(p) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("cannot open request log {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let sim = Arc::new(Sim::new(
        tenant.clone(),
        format!("http://{addr}"),
        options,
        log,
    ));
    let app = axum::Router::new().fallback(handle).with_state(sim.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(RunningTenant {
        addr,
        tenant,
        sim,
        shutdown: Some(tx),
        task: Some(task),
    })
}

async fn handle(State(sim): State<Arc<Sim>>, req: Request) -> Response {
    let arrived = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    if let Some(clock) = &sim.clock {
        clock.until(arrived + sim.options.latency).await;
    }
    let reply = sim.dispatch(&method, &path, &raw_query, &headers, &body, false);
    sim.log(&method, &path, &raw_query, reply.status);
    reply.into_response()
}

/// An answer before it becomes HTTP (batch sub-requests stay in this form).
struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: ReplyBody,
}

/// An answer kept by `--cache-responses`: its headers and its bytes.
type CachedAnswer = (Vec<(&'static str, String)>, Bytes);

enum ReplyBody {
    Json(Value),
    /// A serialised answer from the response cache.
    Cached(Bytes),
    /// Bytes sent as they are (the malformed-JSON fault).
    Raw(String),
    /// A JSON answer written without a `Value` (large hunting results);
    /// faults apply to it as to `Json`.
    Serialized(Bytes),
    /// Headers, then the connection breaks.
    Drop,
}

impl Reply {
    fn json(status: StatusCode, v: Value) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: ReplyBody::Json(v),
        }
    }
    fn ok(v: Value) -> Reply {
        Reply::json(StatusCode::OK, v)
    }
    fn header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let body = match self.body {
            ReplyBody::Json(v) => Body::from(v.to_string()),
            ReplyBody::Cached(b) | ReplyBody::Serialized(b) => Body::from(b),
            ReplyBody::Raw(s) => Body::from(s),
            ReplyBody::Drop => Body::from_stream(futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated dropped connection",
                ))
            })),
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        resp
    }
}

/// Query parameters, decoded; OData names are matched case-insensitively.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Query {
        Query(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Precomputed lookups so that every request is an index, not a scan.
struct Index {
    groups: HashMap<String, usize>,
    devices: HashMap<String, usize>,
    policies: HashMap<String, usize>,
    configs: HashMap<String, usize>,
    detected: HashMap<String, usize>,
    mobile: HashMap<String, usize>,
    machines: HashMap<String, usize>,
    subs: HashMap<String, usize>,
    /// (device, status) per compliance policy.
    policy_devices: Vec<Vec<(u32, &'static str)>>,
    config_devices: Vec<Vec<(u32, &'static str)>>,
    rgs_of_sub: Vec<Vec<usize>>,
    resources_of_sub: Vec<Vec<usize>>,
    resources_of_rg: HashMap<(usize, String), Vec<usize>>,
    /// Every (machine, cve, product) row of the bulk listing.
    machine_vulns: Vec<(u32, u32, u8)>,
    /// CVEs exposed on at least one machine, with how many.
    exposed_cves: Vec<(u32, usize)>,
}

impl Index {
    fn new(t: &FakeTenant) -> Index {
        let ids = |it: &mut dyn Iterator<Item = String>| -> HashMap<String, usize> {
            it.enumerate()
                .map(|(i, id)| (id.to_lowercase(), i))
                .collect()
        };
        let mut policy_devices = vec![Vec::new(); t.compliance_policies.len()];
        let mut config_devices = vec![Vec::new(); t.configurations.len()];
        for (di, d) in t.devices.iter().enumerate() {
            for s in &d.policy_states {
                policy_devices[s.policy as usize].push((di as u32, s.status.as_str()));
            }
            for (c, st) in &d.config_states {
                config_devices[*c as usize].push((di as u32, *st));
            }
        }
        let mut rgs_of_sub = vec![Vec::new(); t.subscriptions.len()];
        for (i, g) in t.resource_groups.iter().enumerate() {
            rgs_of_sub[g.sub as usize].push(i);
        }
        let mut resources_of_sub = vec![Vec::new(); t.subscriptions.len()];
        let mut resources_of_rg: HashMap<(usize, String), Vec<usize>> = HashMap::new();
        for (i, r) in t.resources.iter().enumerate() {
            resources_of_sub[r.sub as usize].push(i);
            resources_of_rg
                .entry((
                    r.sub as usize,
                    t.resource_groups[r.rg as usize].name.to_lowercase(),
                ))
                .or_default()
                .push(i);
        }
        let machine_vulns = t.machine_vulnerability_rows();
        let mut exposure = vec![0usize; t.cves.len()];
        for m in &t.machines {
            for &c in &m.vulns {
                exposure[c as usize] += 1;
            }
        }
        Index {
            groups: ids(&mut t.groups.iter().map(|g| g.id.clone())),
            devices: ids(&mut t.devices.iter().map(|d| d.id.clone())),
            policies: ids(&mut t.compliance_policies.iter().map(|p| p.id.clone())),
            configs: ids(&mut t.configurations.iter().map(|c| c.id.clone())),
            detected: ids(&mut t.detected_apps.iter().map(|a| a.id.clone())),
            mobile: ids(&mut t.mobile_apps.iter().map(|a| a.id.clone())),
            machines: ids(&mut t.machines.iter().map(|m| m.id.clone())),
            subs: ids(&mut t.subscriptions.iter().map(|s| s.id.clone())),
            policy_devices,
            config_devices,
            rgs_of_sub,
            resources_of_sub,
            resources_of_rg,
            machine_vulns,
            exposed_cves: exposure
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| (c as u32, *n))
                .collect(),
        }
    }
}

struct Sim {
    t: Arc<FakeTenant>,
    ix: Index,
    base: String,
    options: ServerOptions,
    key: u64,
    /// The app's service principal object id (the token's `oid`).
    app_oid: String,
    rng: Mutex<Rng>,
    throttle: Mutex<Throttle>,
    endpoint_windows: Mutex<EndpointWindows>,
    counter: Mutex<u64>,
    log: Option<Mutex<std::fs::File>>,
    /// See `ServerOptions::cache_responses`: request → answer body.
    cache: Option<Mutex<HashMap<Vec<u8>, CachedAnswer>>>,
    /// Ends the simulated latency on time (none without latency).
    clock: Option<clock::Clock>,
    /// Tokens whose signature was checked, with their claims: a fetch sends
    /// a few tokens thousands of times, and decoding each again was a fifth
    /// of this server's CPU, taken from the client it shares the machine
    /// with. Expiry is still checked on every request.
    verified: Mutex<HashMap<String, Arc<Value>>>,
    /// When the server started (Unix seconds): the hunting tables' day.
    started: i64,
    hunting: hunting::HuntingState,
}

/// Tokens kept verified; more (a client renewing constantly) start afresh.
const VERIFIED_TOKENS: usize = 64;

/// Where `big-number` goes in a rendered record.
const BIG_NUMBER_MARK: &str = "__tenx_big_number__";

/// `/api/machines/{id}/logonusers`, the one Defender endpoint with limits
/// of its own.
fn is_logon_users(rest: &str) -> bool {
    let path = rest.split('?').next().unwrap_or(rest).trim_end_matches('/');
    path.strip_prefix("/api/machines/")
        .and_then(|r| r.strip_suffix("/logonusers"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The limit of `--throttle` a request counts against, if any: Graph by
/// service area (a `$batch` itself counts nowhere, its requests each where
/// they belong), ARM reads by subscription, Resource Graph queries.
fn limit_of(svc: Service, method: &Method, rest: &str, q: &Query) -> Option<Limit> {
    match svc {
        Service::Login => None,
        Service::Defender => Some(Limit::Defender),
        Service::Arm if *method == Method::POST => Some(Limit::ResourceGraph),
        Service::Arm => {
            let lower = rest.to_ascii_lowercase();
            let mut segs = lower.trim_matches('/').split('/');
            match (segs.next(), segs.next()) {
                (Some("subscriptions"), Some(sub)) => Some(Limit::ArmReads(Some(sub.to_string()))),
                _ => Some(Limit::ArmReads(None)),
            }
        }
        Service::Graph => {
            let path = rest.trim_start_matches('/');
            let path = path.split_once('/').map_or("", |(_, p)| p);
            let segs: Vec<&str> = path.split('/').collect();
            Some(match segs.as_slice() {
                ["$batch"] => return None,
                ["deviceManagement", "reports", ..] => Limit::IntuneReports,
                ["deviceManagement", "managedDevices", ..]
                | ["deviceManagement", "detectedApps", ..] => Limit::IntuneDevices,
                ["deviceManagement", ..] => Limit::IntuneConfiguration,
                ["deviceAppManagement", ..] => Limit::IntuneApps,
                _ => {
                    // Base costs and what lowers them ("Identity and access
                    // service limits").
                    let base: u32 = match segs.as_slice() {
                        ["users"] | ["users", _] => 2,
                        ["groups", _, "members"] => 3,
                        _ => 1,
                    };
                    let select = u32::from(q.get("$select").is_some());
                    let small_top = u32::from(
                        q.get("$top")
                            .and_then(|t| t.parse::<u32>().ok())
                            .is_some_and(|t| t < 20),
                    );
                    Limit::Directory(base.saturating_sub(select + small_top).max(1))
                }
            })
        }
    }
}

/// `/{version}/deviceManagement/reports/get…Report`: an Intune report, an
/// action that reads.
fn is_intune_report(rest: &str) -> bool {
    let path = rest.split('?').next().unwrap_or(rest);
    let mut segs = path.trim_matches('/').split('/');
    let _version = segs.next();
    matches!(
        (segs.next(), segs.next(), segs.next(), segs.next()),
        (Some("deviceManagement"), Some("reports"), Some(name), None)
            if name.starts_with("get") && name.ends_with("Report")
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn request_id(rng: &mut Rng) -> String {
    rng.guid()
}

impl Sim {
    fn new(
        t: Arc<FakeTenant>,
        base: String,
        options: ServerOptions,
        log: Option<Mutex<std::fs::File>>,
    ) -> Sim {
        let mut rng = Rng::new(t.params.seed ^ 0xFA17);
        let random = options.throttle.is_some() || options.faults != Faults::default();
        let cache = (options.cache_responses && !random).then(|| Mutex::new(HashMap::new()));
        Sim {
            cache,
            clock: (!options.latency.is_zero()).then(clock::Clock::start),
            ix: Index::new(&t),
            key: rng.next_u64(),
            app_oid: rng.guid(),
            rng: Mutex::new(rng),
            t,
            base,
            options,
            throttle: Mutex::new(Throttle::default()),
            endpoint_windows: Mutex::new(EndpointWindows::default()),
            counter: Mutex::new(0),
            log,
            verified: Mutex::new(HashMap::new()),
            started: now_unix(),
            hunting: hunting::HuntingState::default(),
        }
    }

    /// The claims of a token this server issued (see `token::verify`).
    fn verify(&self, tok: &str) -> Option<Arc<Value>> {
        if let Some(claims) = self.verified.lock().ok()?.get(tok) {
            return Some(claims.clone());
        }
        let claims = Arc::new(token::verify(self.key, tok)?);
        if let Ok(mut v) = self.verified.lock() {
            if v.len() >= VERIFIED_TOKENS {
                v.clear();
            }
            v.insert(tok.to_string(), claims.clone());
        }
        Some(claims)
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().map(|mut r| r.chance(p)).unwrap_or(false)
    }

    /// Whether the last page of the collection at `path` (its full path,
    /// service prefix included) links back to one already served
    /// (`loop-next`).
    fn loops(&self, path: &str) -> bool {
        self.options
            .faults
            .loop_next
            .iter()
            .any(|p| path.starts_with(p.as_str()))
    }

    /// `null-records`: a share of a page's records replaced by `null`, a
    /// string, or the record without its `id`, in turn.
    fn spoil(&self, items: &mut [Value]) {
        let share = self.options.faults.null_records;
        if share <= 0.0 {
            return;
        }
        for (k, v) in items.iter_mut().enumerate() {
            if self.roll(share) {
                match k % 3 {
                    0 => *v = Value::Null,
                    1 => *v = json!("not a record"),
                    _ => {
                        if let Some(o) = v.as_object_mut() {
                            o.remove("id");
                        }
                    }
                }
            }
        }
    }

    /// `deep-nesting` and `big-number`: values serde cannot build, on a
    /// record (the first subscription). The number is written in by
    /// `odd_number`, as no `Value` can hold it.
    fn odd_values(&self, v: &mut Value) {
        let f = &self.options.faults;
        if let Some(depth) = f.deep_nesting {
            let mut deep = json!("the bottom");
            for _ in 1..depth {
                deep = json!({ "inner": deep });
            }
            v["tenxNested"] = deep;
        }
        if f.big_number.is_some() {
            v["tenxQuota"] = json!(BIG_NUMBER_MARK);
        }
    }

    /// An answer's JSON with `big-number` written where `odd_values` left
    /// its mark.
    fn odd_number(&self, reply: Reply) -> Reply {
        let (Some(number), ReplyBody::Json(v)) = (&self.options.faults.big_number, &reply.body)
        else {
            return reply;
        };
        let text = v.to_string();
        let mark = format!("\"{BIG_NUMBER_MARK}\"");
        if !text.contains(&mark) {
            return reply;
        }
        Reply {
            status: reply.status,
            headers: reply.headers,
            body: ReplyBody::Raw(text.replace(&mark, number)),
        }
    }

    fn log(&self, method: &Method, path: &str, query: &str, status: StatusCode) {
        if let Some(log) = &self.log {
            if let Ok(mut f) = log.lock() {
                let q = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{query}")
                };
                let _ = writeln!(f, "{method} {path}{q} {}", status.as_u16());
            }
        }
    }

    fn dispatch(
        &self,
        method: &Method,
        path: &str,
        raw_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        in_batch: bool,
    ) -> Reply {
        if let Ok(mut c) = self.counter.lock() {
            *c += 1;
        }
        let (svc, rest) = if let Some(r) = path.strip_prefix("/login/") {
            (Service::Login, r)
        } else if let Some(r) = path.strip_prefix("/graph") {
            (Service::Graph, r)
        } else if let Some(r) = path.strip_prefix("/defender") {
            (Service::Defender, r)
        } else if let Some(r) = path.strip_prefix("/arm") {
            (Service::Arm, r)
        } else {
            return Reply::json(
                StatusCode::NOT_FOUND,
                json!({"error": {"code": "NotFound", "message": format!("No service at '{path}'. This simulated tenant serves /login, /graph, /defender and /arm.")}}),
            );
        };
        let query = Query::parse(raw_query);
        if svc == Service::Login {
            return self.token_endpoint(method, rest, headers, body);
        }
        // Only reads exist here: GET, Graph $batch, Intune reports (read-only
        // actions under deviceManagement/reports), Resource Graph queries
        // and advanced hunting queries.
        let read_post = (svc == Service::Graph
            && !in_batch
            && (rest.ends_with("/$batch") || is_intune_report(rest)))
            || (svc == Service::Arm
                && rest.eq_ignore_ascii_case("/providers/Microsoft.ResourceGraph/resources"))
            || (svc == Service::Graph && hunting::is_hunting(rest) && !in_batch);
        if !(method == Method::GET || (method == Method::POST && read_post)) {
            return self.error(
                svc,
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            );
        }
        let claims = match self.authenticate(svc, headers) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let app = claims["appid"].as_str().unwrap_or("").to_string();
        let mut quota = Vec::new();
        if let (Some(spec), Some(limit)) =
            (&self.options.throttle, limit_of(svc, method, rest, &query))
        {
            let users = self.t.users.len();
            if let Ok(a) = self
                .throttle
                .lock()
                .map(|mut t| t.admit(spec, &app, &limit, users))
            {
                if let Err(wait) = a.verdict {
                    let mut r = self.throttled(svc, &limit, wait);
                    r.headers.extend(a.headers);
                    return r;
                }
                quota = a.headers;
            }
        }
        let mut reply = self.admitted(
            method, path, raw_query, headers, body, in_batch, svc, rest, &query, &claims, &app,
        );
        reply.headers.extend(quota);
        reply
    }

    /// `dispatch` once the request passed its service limits.
    #[allow(clippy::too_many_arguments)]
    fn admitted(
        &self,
        method: &Method,
        path: &str,
        raw_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        in_batch: bool,
        svc: Service,
        rest: &str,
        query: &Query,
        claims: &Value,
        app: &str,
    ) -> Reply {
        if svc == Service::Defender && is_logon_users(rest) {
            let limits = &self.options.rate_limits.logon_users;
            let verdict = self
                .endpoint_windows
                .lock()
                .map(|mut w| w.admit(limits, app));
            if let Ok(Err(wait)) = verdict {
                return self.with_retry_after(
                    self.error(
                        svc,
                        StatusCode::TOO_MANY_REQUESTS,
                        "TooManyRequests",
                        "API calls quota exceeded! Maximum allowed calls for this API have been reached.",
                    ),
                    Some(wait.max(Duration::from_millis(1))),
                );
            }
        }
        let f = &self.options.faults;
        if !in_batch && self.roll(f.rate_drop) {
            return Reply {
                status: StatusCode::OK,
                headers: vec![],
                body: ReplyBody::Drop,
            };
        }
        if self.roll(f.rate_429) {
            return self.throttled_fault(svc);
        }
        if self.roll(f.rate_503) {
            return self.with_retry_after(
                self.error(
                    svc,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Please retry.",
                ),
                None,
            );
        }
        if self.roll(f.rate_500) {
            return self.error(
                svc,
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An internal server error occurred.",
            );
        }
        let roles: Vec<String> = claims["roles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        // Sub-requests of a `$batch` are kept one by one, and the `$batch`
        // itself not at all: a client groups per-item requests as it learns
        // of the items, differently each run.
        let is_batch = method == Method::POST && svc == Service::Graph && rest.ends_with("/$batch");
        let cache_key = self.cache.as_ref().filter(|_| !is_batch).map(|_| {
            let mut k = format!("{method} {path}?{raw_query}\n{}\n", roles.join(",")).into_bytes();
            k.extend_from_slice(body);
            k
        });
        if let (Some(cache), Some(k)) = (&self.cache, &cache_key) {
            if let Some((headers, hit)) = cache.lock().ok().and_then(|c| c.get(k).cloned()) {
                return Reply {
                    status: StatusCode::OK,
                    headers,
                    body: ReplyBody::Cached(hit),
                };
            }
        }
        let reply = match svc {
            Service::Graph if hunting::is_hunting(rest) => {
                if method == Method::POST {
                    self.run_hunting(rest, body, &roles)
                } else {
                    self.error(
                        svc,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "Request_BadRequest",
                        "Specified HTTP method is not allowed for the request target.",
                    )
                }
            }
            Service::Graph => self.graph(method, rest, query, body, &roles, headers),
            Service::Defender => self.defender(rest, query, &roles),
            Service::Arm => self.arm(method, rest, query, body),
            Service::Login => unreachable_reply(),
        };
        if let (Some(cache), Some(k)) = (&self.cache, cache_key) {
            if let (StatusCode::OK, ReplyBody::Json(v)) = (reply.status, &reply.body) {
                let bytes = Bytes::from(v.to_string());
                if let Ok(mut c) = cache.lock() {
                    c.insert(k, (reply.headers.clone(), bytes.clone()));
                }
                return Reply {
                    status: reply.status,
                    headers: reply.headers,
                    body: ReplyBody::Cached(bytes),
                };
            }
        }
        let first_page =
            !raw_query.to_ascii_lowercase().contains("skiptoken") && !raw_query.contains("$skip=");
        let mut reply = reply;
        if let (Some(mb), true, ReplyBody::Json(v)) = (
            f.big_page_mb,
            path == "/graph/v1.0/users" && first_page,
            &mut reply.body,
        ) {
            if v["value"][0].is_object() {
                v["value"][0]["tenxPadding"] = json!("x".repeat(mb << 20));
            }
        }
        let reply = self.odd_number(reply);
        if reply.status == StatusCode::OK
            && matches!(reply.body, ReplyBody::Json(_) | ReplyBody::Serialized(_))
        {
            let targeted =
                f.malformed_at.iter().any(|p| path.starts_with(p.as_str())) && first_page;
            if targeted || self.roll(f.rate_malformed) {
                let text = match &reply.body {
                    ReplyBody::Json(v) => Some(v.to_string()),
                    ReplyBody::Serialized(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    _ => None,
                };
                if let Some(s) = text {
                    let cut = s.len() / 2;
                    let cut = (0..=cut)
                        .rev()
                        .find(|&i| s.is_char_boundary(i))
                        .unwrap_or(0);
                    return Reply {
                        status: reply.status,
                        headers: reply.headers,
                        body: ReplyBody::Raw(s[..cut].to_string()),
                    };
                }
            }
        }
        reply
    }

    fn error(&self, svc: Service, status: StatusCode, code: &str, message: &str) -> Reply {
        let rid = self
            .rng
            .lock()
            .map(|mut r| request_id(&mut r))
            .unwrap_or_default();
        let body = match svc {
            Service::Graph => {
                json!({"error": {"code": code, "message": message, "innerError": {"date": render::ts(now_unix()), "request-id": rid, "client-request-id": rid}}})
            }
            Service::Defender => {
                json!({"error": {"code": code, "message": message, "target": rid}})
            }
            _ => json!({"error": {"code": code, "message": message}}),
        };
        Reply::json(status, body).header("request-id", rid)
    }

    /// `Retry-After` as the real services write it: whole seconds, rounded
    /// up, or an HTTP date (`retry-after=date`), never a fraction unless
    /// the test-only `subsecond_retry_after` asks for one. `wait` is what
    /// a limit computed; without one the `retry-after=` fault decides.
    fn with_retry_after(&self, reply: Reply, wait: Option<Duration>) -> Reply {
        let fractions = self.options.subsecond_retry_after;
        let seconds = |secs: f64| {
            if fractions && secs.fract() != 0.0 {
                format!("{:.3}", secs)
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            } else {
                format!("{}", secs.max(0.0).ceil() as u64)
            }
        };
        match (&self.options.faults.retry_after, wait) {
            (_, Some(w)) => reply.header("Retry-After", seconds(w.as_secs_f64())),
            (RetryAfter::Seconds(s), None) => reply.header("Retry-After", seconds(*s)),
            (RetryAfter::None, None) => reply,
            (RetryAfter::HttpDate(secs), None) => reply.header(
                "Retry-After",
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(*secs)),
            ),
        }
    }

    /// A 429 of the `429=R` fault: the service's generic refusal with the
    /// `retry-after=` fault's value.
    fn throttled_fault(&self, svc: Service) -> Reply {
        let (code, msg) = match svc {
            Service::Graph => (
                "TooManyRequests",
                "Too many requests. Please try again later.",
            ),
            Service::Defender => (
                "TooManyRequests",
                "API calls quota exceeded! Maximum allowed calls per minute have been reached.",
            ),
            _ => (
                "TooManyRequests",
                "The request is being throttled as the limit has been reached for operation type - Read.",
            ),
        };
        let r = self.error(svc, StatusCode::TOO_MANY_REQUESTS, code, msg);
        self.with_retry_after(r, None)
    }

    /// A 429 of a service limit (`--throttle`), worded as that service
    /// words it, with the wait until the request would pass.
    fn throttled(&self, svc: Service, limit: &Limit, wait: Duration) -> Reply {
        let r = match limit {
            // The identity service names the scope and the reason
            // ("Microsoft Graph service-specific throttling limits").
            Limit::Directory(_) => self
                .error(
                    svc,
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Too many requests. Please try again later.",
                )
                .header(
                    "x-ms-throttle-scope",
                    format!(
                        "Tenant_Application/ReadWrite/{}/{}",
                        self.t.client_id, self.t.tenant_id
                    ),
                )
                .header(
                    "x-ms-throttle-information",
                    "ResourceUnitLimitExceeded".into(),
                ),
            // As real ARM answers a spent read bucket (velero-io/velero#9171).
            Limit::ArmReads(sub) => {
                let (code, scope) = match sub {
                    Some(s) => (
                        "SubscriptionRequestsThrottled",
                        format!("subscription '{s}'"),
                    ),
                    None => (
                        "TenantRequestsThrottled",
                        format!("tenant '{}'", self.t.tenant_id),
                    ),
                };
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                self.error(
                    svc,
                    StatusCode::TOO_MANY_REQUESTS,
                    code,
                    &format!(
                        "Number of 'read' requests for {scope} actor '{}' exceeded. Please try again after '{secs}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
                        self.app_oid
                    ),
                )
            }
            // Resource Graph says when its quota resets in its own headers
            // and sends no Retry-After (Azure/azure-cli-extensions#3325).
            Limit::ResourceGraph => {
                let rid = self.rng.lock().map(|mut r| r.guid()).unwrap_or_default();
                return Reply::json(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"error": {
                        "code": "RateLimiting",
                        "message": format!("Please provide below info when asking for support: timestamp = {}, correlationId = {rid}.", render::ts(now_unix())),
                        "details": [{"code": "RateLimiting", "message": "Client application has been throttled and should not attempt to repeat the request until an amount of time has elapsed. Please see https://aka.ms/resourcegraph-throttling for help."}]
                    }}),
                );
            }
            Limit::Defender => self.error(
                svc,
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "API calls quota exceeded! Maximum allowed calls per minute have been reached.",
            ),
            _ => self.error(
                svc,
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests. Please try again later.",
            ),
        };
        self.with_retry_after(r, Some(wait))
    }

    // ---- identity platform ------------------------------------------------

    fn authenticate(&self, svc: Service, headers: &HeaderMap) -> Result<Arc<Value>, Reply> {
        let unauthorized = |code: &str, msg: &str| {
            let mut r = self.error(svc, StatusCode::UNAUTHORIZED, code, msg);
            r = r.header(
                "WWW-Authenticate",
                format!("Bearer realm=\"\", error=\"invalid_token\", error_description=\"{msg}\""),
            );
            r
        };
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(tok) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
        else {
            return Err(match svc {
                Service::Arm => unauthorized(
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                ),
                _ => unauthorized("InvalidAuthenticationToken", "Access token is empty."),
            });
        };
        let Some(claims) = self.verify(tok.trim()) else {
            return Err(match svc {
                Service::Arm => {
                    unauthorized("InvalidAuthenticationToken", "The access token is invalid.")
                }
                _ => unauthorized(
                    "InvalidAuthenticationToken",
                    "IDX14100: JWT is not well formed.",
                ),
            });
        };
        let expected = match svc {
            Service::Graph => token::AUD_GRAPH,
            Service::Defender => token::AUD_DEFENDER,
            _ => token::AUD_ARM,
        };
        let aud = claims["aud"].as_str().unwrap_or("");
        if aud.trim_end_matches('/') != expected {
            return Err(match svc {
                Service::Arm => unauthorized(
                    "InvalidAuthenticationTokenAudience",
                    &format!(
                        "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of the allowed audiences '{expected}', '{expected}/'."
                    ),
                ),
                _ => unauthorized(
                    "InvalidAuthenticationToken",
                    &format!(
                        "Invalid audience '{aud}'. The token was issued for another resource."
                    ),
                ),
            });
        }
        let issued_ms = claims["tenx_issued_ms"]
            .as_u64()
            .unwrap_or(claims["iat"].as_u64().unwrap_or(0) * 1000);
        let exp = claims["exp"].as_i64().unwrap_or(0);
        let now = now_unix();
        // `expire=S` makes a token stop working S seconds after it was issued,
        // although it still claims an hour (a revoked or clock-skewed token).
        let expired = now >= exp
            || self
                .options
                .faults
                .expire_after
                .is_some_and(|d| now_ms() >= issued_ms + d.as_millis() as u64);
        if expired {
            return Err(match svc {
                Service::Arm => unauthorized(
                    "ExpiredAuthenticationToken",
                    "The access token expiry UTC time is earlier than current UTC time.",
                ),
                _ => unauthorized(
                    "InvalidAuthenticationToken",
                    "Lifetime validation failed, the token is expired.",
                ),
            });
        }
        Ok(claims)
    }

    // ---- paging -----------------------------------------------------------

    // ---- Graph ------------------------------------------------------------

    // ---- Defender -----------------------------------------------------------

    // ---- ARM ----------------------------------------------------------------
}

fn unreachable_reply() -> Reply {
    Reply::json(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": {"code": "InternalServerError", "message": "no handler"}}),
    )
}

/// The application permissions a source needs.
pub fn source_roles(s: SourceName) -> &'static [&'static str] {
    match s {
        SourceName::Directory => &["Directory.Read.All", "Organization.Read.All"],
        SourceName::Intune => &[
            "DeviceManagementManagedDevices.Read.All",
            "DeviceManagementConfiguration.Read.All",
            "DeviceManagementApps.Read.All",
        ],
        SourceName::Defender => &[
            "Machine.Read.All",
            "Vulnerability.Read.All",
            "User.Read.All",
            hunting::ROLE,
        ],
        SourceName::Arm => &[],
    }
}
