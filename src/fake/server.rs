//! The simulated tenant over loopback HTTP: one port, four services under
//! path prefixes that stand where the real hosts stand (`/login`, `/graph`,
//! `/defender`, `/arm`).
//!
//! Requests go through one dispatcher (`Sim::dispatch`) so that Graph
//! `$batch` runs its inner requests through exactly the same checks, faults
//! and throttling as top-level ones.

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

use super::knobs::{Faults, RetryAfter, Service, SourceName, Throttle, ThrottleSpec};
use super::render;
use super::rng::Rng;
use super::tenant::FakeTenant;
use super::token;

/// Knobs of a running simulated tenant.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    pub latency: Duration,
    pub throttle: Option<ThrottleSpec>,
    pub faults: Faults,
    pub request_log: Option<std::path::PathBuf>,
    /// Answer the right secret with "expired" (AADSTS7000222).
    pub secret_expired: bool,
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

    /// Endpoints that point a client at this simulated tenant.
    pub fn endpoints(&self) -> anyhow::Result<crate::endpoints::Endpoints> {
        use crate::endpoints::{Cloud, Endpoints, parse_base};
        let b = self.base_url();
        let mut e = Endpoints::for_cloud(Cloud::Public);
        e.login = parse_base("simulated login", &format!("{b}/login"))?;
        e.graph = parse_base("simulated graph", &format!("{b}/graph"))?;
        e.defender = parse_base("simulated defender", &format!("{b}/defender"))?;
        e.arm = parse_base("simulated arm", &format!("{b}/arm"))?;
        Ok(e)
    }

    /// The app registration's credentials in this simulated tenant.
    pub fn credentials(&self) -> crate::auth::Credentials {
        crate::auth::Credentials {
            tenant: self.tenant.tenant_id.clone(),
            client_id: self.tenant.client_id.clone(),
            secret: crate::secret::Secret::new(self.tenant.client_secret.clone()),
        }
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
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    if !sim.options.latency.is_zero() {
        tokio::time::sleep(sim.options.latency).await;
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

enum ReplyBody {
    Json(Value),
    /// Bytes sent as they are (the malformed-JSON fault).
    Raw(String),
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
    /// Every (machine, cve) pair, for the bulk listing.
    machine_vulns: Vec<(u32, u32)>,
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
        let mut machine_vulns = Vec::new();
        let mut exposure = vec![0usize; t.cves.len()];
        for (mi, m) in t.machines.iter().enumerate() {
            for &c in &m.vulns {
                machine_vulns.push((mi as u32, c));
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
    counter: Mutex<u64>,
    log: Option<Mutex<std::fs::File>>,
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
        Sim {
            ix: Index::new(&t),
            key: rng.next_u64(),
            app_oid: rng.guid(),
            rng: Mutex::new(rng),
            t,
            base,
            options,
            throttle: Mutex::new(Throttle::default()),
            counter: Mutex::new(0),
            log,
        }
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().map(|mut r| r.chance(p)).unwrap_or(false)
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
        // Only reads exist here: GET, Graph $batch and Resource Graph queries.
        let read_post = (svc == Service::Graph && rest.ends_with("/$batch") && !in_batch)
            || (svc == Service::Arm
                && rest.eq_ignore_ascii_case("/providers/Microsoft.ResourceGraph/resources"));
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
        if let Some(spec) = &self.options.throttle {
            let verdict = self.throttle.lock().map(|mut t| t.admit(spec, &app, svc));
            if let Ok(Err(wait)) = verdict {
                return self.throttled(svc, Some(wait));
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
            return self.throttled(svc, None);
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
        let reply = match svc {
            Service::Graph => self.graph(method, rest, &query, body, &roles, headers),
            Service::Defender => self.defender(rest, &query, &roles),
            Service::Arm => self.arm(method, rest, &query, body),
            Service::Login => unreachable_reply(),
        };
        if reply.status == StatusCode::OK && matches!(reply.body, ReplyBody::Json(_)) {
            let first_page = !raw_query.to_ascii_lowercase().contains("skiptoken")
                && !raw_query.contains("$skip=");
            let targeted =
                f.malformed_at.iter().any(|p| path.starts_with(p.as_str())) && first_page;
            if targeted || self.roll(f.rate_malformed) {
                if let ReplyBody::Json(v) = &reply.body {
                    let s = v.to_string();
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

    fn with_retry_after(&self, reply: Reply, wait: Option<Duration>) -> Reply {
        match (&self.options.faults.retry_after, wait) {
            (_, Some(w)) => reply.header(
                "Retry-After",
                format!("{}", w.as_secs_f64().ceil().max(1.0) as u64),
            ),
            (RetryAfter::Seconds(s), None) => {
                let v = if s.fract() == 0.0 {
                    format!("{}", *s as u64)
                } else {
                    format!("{s}")
                };
                reply.header("Retry-After", v)
            }
            (RetryAfter::None, None) => reply,
            (RetryAfter::HttpDate(secs), None) => reply.header(
                "Retry-After",
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(*secs)),
            ),
        }
    }

    fn throttled(&self, svc: Service, wait: Option<Duration>) -> Reply {
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
        let mut r = self.error(svc, StatusCode::TOO_MANY_REQUESTS, code, msg);
        if svc == Service::Arm {
            r = r.header("x-ms-ratelimit-remaining-subscription-reads", "0".into());
        }
        self.with_retry_after(r, wait)
    }

    // ---- identity platform ------------------------------------------------

    fn aadsts(&self, status: StatusCode, error: &str, code: u32, message: String) -> Reply {
        let (trace, corr) = self
            .rng
            .lock()
            .map(|mut r| (r.guid(), r.guid()))
            .unwrap_or_default();
        let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        Reply::json(
            status,
            json!({
                "error": error,
                "error_description": format!("AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"),
                "error_codes": [code],
                "timestamp": ts,
                "trace_id": trace,
                "correlation_id": corr,
                "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
            }),
        )
    }

    fn token_endpoint(
        &self,
        method: &Method,
        rest: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        let t = &self.t;
        let Some(tenant) = rest.strip_suffix("/oauth2/v2.0/token") else {
            return Reply::json(
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "error_description": format!("No endpoint at /login/{rest}. The token endpoint is /login/{{tenant}}/oauth2/v2.0/token.")}),
            );
        };
        if method != Method::POST {
            return self.aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests. Received a GET request.".into(),
            );
        }
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return self.aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.".into(),
            );
        }
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let tenant_ok =
            tenant.eq_ignore_ascii_case(&t.tenant_id) || tenant.eq_ignore_ascii_case(&t.domain);
        if !tenant_ok {
            return self.aadsts(StatusCode::BAD_REQUEST, "invalid_request", 90002, format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."));
        }
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {}
            None => {
                return self.aadsts(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'grant_type'.".into(),
                );
            }
            Some(other) => {
                return self.aadsts(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    70003,
                    format!("The app requested an unsupported grant type '{other}'."),
                );
            }
        }
        let client_id = form.get("client_id").map(String::as_str).unwrap_or("");
        if client_id.is_empty() {
            return self.aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.".into(),
            );
        }
        if !client_id.eq_ignore_ascii_case(&t.client_id) {
            return self.aadsts(StatusCode::BAD_REQUEST, "unauthorized_client", 700016, format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", t.org_name));
        }
        let secret = form.get("client_secret").map(String::as_str).unwrap_or("");
        if secret.is_empty() {
            return self.aadsts(StatusCode::UNAUTHORIZED, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into());
        }
        if secret != t.client_secret {
            return self.aadsts(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", t.client_id));
        }
        if self.options.secret_expired {
            return self.aadsts(StatusCode::UNAUTHORIZED, "invalid_client", 7000222, format!("The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", t.client_id));
        }
        let scope = form.get("scope").map(String::as_str).unwrap_or("");
        let Some(resource) = scope.strip_suffix("/.default") else {
            return self.aadsts(StatusCode::BAD_REQUEST, "invalid_scope", 1002012, format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."));
        };
        let resource = resource.trim_end_matches('/');
        let (aud, svc_roles): (&str, &[&str]) = if is_resource(
            resource,
            &[
                "graph.microsoft.com",
                "graph.microsoft.us",
                "dod-graph.microsoft.us",
                "microsoftgraph.chinacloudapi.cn",
            ],
        ) {
            (token::AUD_GRAPH, token::GRAPH_ROLES)
        } else if is_resource(
            resource,
            &[
                "api.securitycenter.microsoft.com",
                "api.security.microsoft.com",
                "api-gcc.securitycenter.microsoft.us",
                "api-gov.securitycenter.microsoft.us",
            ],
        ) {
            (token::AUD_DEFENDER, token::DEFENDER_ROLES)
        } else if is_resource(
            resource,
            &[
                "management.azure.com",
                "management.core.windows.net",
                "management.usgovcloudapi.net",
                "management.chinacloudapi.cn",
            ],
        ) {
            (token::AUD_ARM, &[])
        } else {
            return self.aadsts(StatusCode::BAD_REQUEST, "invalid_resource", 500011, format!("The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", t.org_name));
        };
        let f = &self.options.faults;
        let roles: Vec<String> = svc_roles
            .iter()
            .filter(|r| !f.missing_roles.iter().any(|m| m.eq_ignore_ascii_case(r)))
            .filter(|r| !f.forbid.iter().any(|s| source_roles(*s).contains(r)))
            .map(|r| r.to_string())
            .collect();
        let claims = token::claims(
            aud,
            &t.tenant_id,
            &t.client_id,
            &self.app_oid,
            &roles,
            now_unix(),
        );
        let mut claims = claims;
        if aud == token::AUD_ARM {
            if let Some(o) = claims.as_object_mut() {
                o.remove("roles");
            }
        }
        Reply::ok(json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token::issue(self.key, &claims),
        }))
    }

    fn authenticate(&self, svc: Service, headers: &HeaderMap) -> Result<Value, Reply> {
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
        let Some(claims) = token::verify(self.key, tok.trim()) else {
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
        let iat = claims["iat"].as_i64().unwrap_or(0);
        let exp = claims["exp"].as_i64().unwrap_or(0);
        let now = now_unix();
        // `expire=S` makes a token stop working S seconds after it was issued,
        // although it still claims an hour (a revoked or clock-skewed token).
        let now_f = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let expired = now >= exp
            || self
                .options
                .faults
                .expire_after
                .is_some_and(|d| now_f >= iat as f64 + d.as_secs_f64().max(1.0));
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

    /// An OData collection page. Graph style pages with an opaque
    /// `$skiptoken`; Defender style with `$skip`.
    #[allow(clippy::too_many_arguments)]
    fn odata_page(
        &self,
        svc: Service,
        path: &str,
        q: &Query,
        total: usize,
        default_top: usize,
        max_top: usize,
        render: &dyn Fn(usize) -> Value,
    ) -> Reply {
        let top = match q.get("$top") {
            None => default_top,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max_top).contains(&n) => n,
                _ => {
                    return match svc {
                        Service::Defender => self.error(svc, StatusCode::BAD_REQUEST, "InvalidRequestBody", &format!("Invalid $top value '{v}'. $top must be between 1 and {max_top}.")),
                        _ => self.error(svc, StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", &format!("Invalid page size specified: '{v}'. Must be between 1 and {max_top} inclusive.")),
                    };
                }
            },
        };
        let offset = if svc == Service::Defender {
            q.get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0)
        } else {
            match q.get("$skiptoken") {
                None => 0,
                Some(tok) => match decode_skiptoken(tok) {
                    Some(n) => n,
                    None => {
                        return self.error(
                            svc,
                            StatusCode::BAD_REQUEST,
                            "Request_BadRequest",
                            "The specified page token value has expired or is invalid.",
                        );
                    }
                },
            }
        };
        let select: Option<Vec<String>> = q
            .get("$select")
            .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
        let filter = q.get("$filter").and_then(parse_eq_filter);
        let mut items = Vec::new();
        let mut next_offset = None;
        if let Some((field, value)) = &filter {
            // Filtering: walk everything, page over the matches.
            let mut matched = 0;
            for i in 0..total {
                let v = render(i);
                if v[field.as_str()]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(value))
                {
                    if matched >= offset && items.len() < top {
                        items.push(v);
                    } else if items.len() == top {
                        next_offset = Some(offset + top);
                        break;
                    }
                    matched += 1;
                }
            }
        } else {
            let end = (offset + top).min(total);
            for i in offset.min(total)..end {
                items.push(render(i));
            }
            if end < total {
                next_offset = Some(end);
            }
        }
        if let Some(sel) = &select {
            for v in items.iter_mut() {
                if let Some(o) = v.as_object_mut() {
                    o.retain(|k, _| {
                        k == "id"
                            || k == "@odata.type"
                            || sel.iter().any(|s| s.eq_ignore_ascii_case(k))
                    });
                }
            }
        }
        let context = match svc {
            Service::Defender => format!(
                "{}/defender/api/$metadata#{}",
                self.base,
                path.rsplit('/').next().unwrap_or("")
            ),
            _ => format!(
                "{}/graph/v1.0/$metadata#{}",
                self.base,
                path.trim_start_matches('/')
                    .split('/')
                    .next_back()
                    .unwrap_or("")
            ),
        };
        let mut out = json!({"@odata.context": context, "value": items});
        if let Some(next) = next_offset {
            let mut params: Vec<(String, String)> =
                q.0.iter()
                    .filter(|(k, _)| {
                        !k.eq_ignore_ascii_case("$skiptoken") && !k.eq_ignore_ascii_case("$skip")
                    })
                    .cloned()
                    .collect();
            if q.get("$top").is_none() && svc == Service::Graph {
                params.push(("$top".into(), top.to_string()));
            }
            match svc {
                Service::Defender => params.push(("$skip".into(), next.to_string())),
                _ => params.push(("$skiptoken".into(), encode_skiptoken(next))),
            }
            let prefix = match svc {
                Service::Defender => "/defender",
                _ => "/graph",
            };
            out["@odata.nextLink"] = json!(format!(
                "{}{prefix}{path}?{}",
                self.base,
                encode_query(&params)
            ));
        }
        Reply::ok(out)
    }

    // ---- Graph ------------------------------------------------------------

    fn graph(
        &self,
        method: &Method,
        rest: &str,
        q: &Query,
        body: &[u8],
        roles: &[String],
        headers: &HeaderMap,
    ) -> Reply {
        let t = &*self.t;
        let (version, path) = if let Some(p) = rest.strip_prefix("/v1.0") {
            ("v1.0", p)
        } else if let Some(p) = rest.strip_prefix("/beta") {
            ("beta", p)
        } else {
            return self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "Invalid version: {}",
                    rest.trim_start_matches('/').split('/').next().unwrap_or("")
                ),
            );
        };
        if path == "/$batch" {
            if method != Method::POST {
                return self.error(
                    Service::Graph,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                );
            }
            return self.batch(version, body, headers);
        }
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let has = |role: &str| roles.iter().any(|r| r == role);
        let dir_ok = has("Directory.Read.All");
        let denied_dir = || {
            self.error(
                Service::Graph,
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        };
        let denied_intune = |scope: &str| {
            let op = self.rng.lock().map(|mut r| r.guid()).unwrap_or_default();
            self.error(Service::Graph, StatusCode::FORBIDDEN, "Forbidden", &format!("{{\"_version\": 3, \"Message\": \"Application is not authorized to perform this operation. Application must have one of the following scopes: {scope}, {} - Operation ID (for customer support): {op}\"}}", scope.replace(".Read.", ".ReadWrite.")))
        };
        let path_owned = path.to_string();
        let page =
            |total: usize, default_top: usize, max_top: usize, render: &dyn Fn(usize) -> Value| {
                self.odata_page(
                    Service::Graph,
                    &format!("/{version}{path_owned}"),
                    q,
                    total,
                    default_top,
                    max_top,
                    render,
                )
            };
        let not_found = |id: &str| {
            self.error(Service::Graph, StatusCode::NOT_FOUND, "Request_ResourceNotFound", &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."))
        };
        let lookup = |map: &HashMap<String, usize>, id: &str| map.get(&id.to_lowercase()).copied();
        match segs.as_slice() {
            ["organization"] => {
                if !(dir_ok || has("Organization.Read.All")) {
                    return denied_dir();
                }
                page(1, 100, 999, &|_| render::organization(t))
            }
            ["users"] => {
                if dir_ok {
                    page(t.users.len(), 100, 999, &|i| render::user(t, i))
                } else {
                    denied_dir()
                }
            }
            ["users", id] => {
                if !dir_ok {
                    return denied_dir();
                }
                match t
                    .users
                    .iter()
                    .position(|u| u.id.eq_ignore_ascii_case(id) || u.upn.eq_ignore_ascii_case(id))
                {
                    Some(i) => Reply::ok(render::user(t, i)),
                    None => not_found(id),
                }
            }
            ["groups"] => {
                if dir_ok {
                    page(t.groups.len(), 100, 999, &|i| render::group(t, i))
                } else {
                    denied_dir()
                }
            }
            ["groups", id, "members"] => {
                if !dir_ok {
                    return denied_dir();
                }
                match lookup(&self.ix.groups, id) {
                    Some(g) => {
                        let members = &t.groups[g].members;
                        page(members.len(), 100, 999, &|i| render::member(t, members[i]))
                    }
                    None => not_found(id),
                }
            }
            ["servicePrincipals"] => {
                if dir_ok {
                    page(t.service_principals.len(), 100, 999, &|i| {
                        render::service_principal(t, i)
                    })
                } else {
                    denied_dir()
                }
            }
            ["deviceManagement", rest @ ..] => {
                let devices_ok = has("DeviceManagementManagedDevices.Read.All");
                let config_ok = has("DeviceManagementConfiguration.Read.All");
                match rest {
                    ["managedDevices"] => {
                        if devices_ok {
                            page(t.devices.len(), 1000, 1000, &|i| {
                                render::managed_device(t, i)
                            })
                        } else {
                            denied_intune("DeviceManagementManagedDevices.Read.All")
                        }
                    }
                    ["managedDevices", id] => {
                        if !devices_ok {
                            denied_intune("DeviceManagementManagedDevices.Read.All")
                        } else {
                            match lookup(&self.ix.devices, id) {
                                Some(d) => Reply::ok(render::managed_device(t, d)),
                                None => not_found(id),
                            }
                        }
                    }
                    ["managedDevices", id, "deviceCompliancePolicyStates"] => {
                        if !(devices_ok && config_ok) {
                            return denied_intune("DeviceManagementConfiguration.Read.All");
                        }
                        match lookup(&self.ix.devices, id) {
                            Some(d) => {
                                let states = &t.devices[d].policy_states;
                                page(states.len(), 1000, 1000, &|i| {
                                    render::device_policy_state(t, d, &states[i])
                                })
                            }
                            None => not_found(id),
                        }
                    }
                    ["deviceCompliancePolicies"] => {
                        if config_ok {
                            page(t.compliance_policies.len(), 1000, 1000, &|i| {
                                render::compliance_policy(t, i)
                            })
                        } else {
                            denied_intune("DeviceManagementConfiguration.Read.All")
                        }
                    }
                    ["deviceCompliancePolicies", id, "deviceStatuses"] => {
                        if !config_ok {
                            return denied_intune("DeviceManagementConfiguration.Read.All");
                        }
                        match lookup(&self.ix.policies, id) {
                            Some(p) => {
                                let list = &self.ix.policy_devices[p];
                                let pid = &t.compliance_policies[p].id;
                                page(list.len(), 1000, 1000, &|i| {
                                    render::device_status(t, list[i].0 as usize, pid, list[i].1)
                                })
                            }
                            None => not_found(id),
                        }
                    }
                    ["deviceConfigurations"] => {
                        if config_ok {
                            page(t.configurations.len(), 1000, 1000, &|i| {
                                render::configuration(t, i)
                            })
                        } else {
                            denied_intune("DeviceManagementConfiguration.Read.All")
                        }
                    }
                    ["deviceConfigurations", id, "deviceStatuses"] => {
                        if !config_ok {
                            return denied_intune("DeviceManagementConfiguration.Read.All");
                        }
                        match lookup(&self.ix.configs, id) {
                            Some(c) => {
                                let list = &self.ix.config_devices[c];
                                let cid = &t.configurations[c].id;
                                page(list.len(), 1000, 1000, &|i| {
                                    render::configuration_status(
                                        t,
                                        list[i].0 as usize,
                                        cid,
                                        list[i].1,
                                    )
                                })
                            }
                            None => not_found(id),
                        }
                    }
                    ["detectedApps"] => {
                        if devices_ok {
                            page(t.detected_apps.len(), 1000, 1000, &|i| {
                                render::detected_app(t, i)
                            })
                        } else {
                            denied_intune("DeviceManagementManagedDevices.Read.All")
                        }
                    }
                    ["detectedApps", id, "managedDevices"] => {
                        if !devices_ok {
                            return denied_intune("DeviceManagementManagedDevices.Read.All");
                        }
                        match lookup(&self.ix.detected, id) {
                            Some(a) => {
                                let list = &t.detected_apps[a].devices;
                                page(list.len(), 1000, 1000, &|i| {
                                    render::managed_device(t, list[i] as usize)
                                })
                            }
                            None => not_found(id),
                        }
                    }
                    _ => self.error(
                        Service::Graph,
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!(
                            "Resource not found for the segment '{}'.",
                            rest.last().unwrap_or(&"")
                        ),
                    ),
                }
            }
            ["deviceAppManagement", "mobileApps"] => {
                if has("DeviceManagementApps.Read.All") {
                    page(t.mobile_apps.len(), 1000, 1000, &|i| {
                        render::mobile_app(t, i)
                    })
                } else {
                    denied_intune("DeviceManagementApps.Read.All")
                }
            }
            ["deviceAppManagement", "mobileApps", id, "deviceStatuses"] => {
                if version != "beta" {
                    return self.error(
                        Service::Graph,
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "Resource not found for the segment 'deviceStatuses'.",
                    );
                }
                if !has("DeviceManagementApps.Read.All") {
                    return denied_intune("DeviceManagementApps.Read.All");
                }
                match lookup(&self.ix.mobile, id) {
                    Some(a) => {
                        let list = &t.mobile_apps[a].device_statuses;
                        page(list.len(), 1000, 1000, &|i| {
                            render::mobile_app_install_status(t, a, list[i].0 as usize, list[i].1)
                        })
                    }
                    None => not_found(id),
                }
            }
            _ => self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    segs.first().unwrap_or(&"")
                ),
            ),
        }
    }

    /// JSON `$batch`: up to 20 requests, each answered on its own.
    fn batch(&self, version: &str, body: &[u8], headers: &HeaderMap) -> Reply {
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid batch payload format.",
            );
        };
        let Some(requests) = req["requests"].as_array() else {
            return self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid batch payload format.",
            );
        };
        if requests.len() > 20 {
            return self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Unable to deserialize content. Maximum number of requests in a batch is 20.",
            );
        }
        let mut responses = Vec::new();
        for r in requests {
            let id = r["id"].as_str().unwrap_or("").to_string();
            let method = r["method"].as_str().unwrap_or("GET");
            let url = r["url"].as_str().unwrap_or("");
            let (p, qs) = url.split_once('?').unwrap_or((url, ""));
            let path = format!("/graph/{version}/{}", p.trim_start_matches('/'));
            let m = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            let sub = if m == Method::GET {
                self.dispatch(&m, &path, qs, headers, &[], true)
            } else {
                self.error(
                    Service::Graph,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                )
            };
            self.log(&m, &path, qs, sub.status);
            let mut h = serde_json::Map::new();
            h.insert("Content-Type".into(), json!("application/json"));
            for (k, v) in &sub.headers {
                h.insert(k.to_string(), json!(v));
            }
            let body = match sub.body {
                ReplyBody::Json(v) => v,
                ReplyBody::Raw(s) => json!(s),
                ReplyBody::Drop => json!(null),
            };
            responses
                .push(json!({"id": id, "status": sub.status.as_u16(), "headers": h, "body": body}));
        }
        Reply::ok(json!({"responses": responses}))
    }

    // ---- Defender -----------------------------------------------------------

    fn defender(&self, rest: &str, q: &Query, roles: &[String]) -> Reply {
        let t = &*self.t;
        let has = |role: &str| roles.iter().any(|r| r == role);
        let denied = |needed: &str, resource: &str| {
            self.error(Service::Defender, StatusCode::FORBIDDEN, "Forbidden", &format!("The application does not have any of the required application roles ({needed}, {}) to access resource '{resource}'.", needed.replace(".Read.", ".ReadWrite.")))
        };
        let Some(path) = rest.strip_prefix("/api") else {
            return self.error(
                Service::Defender,
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("Resource {rest} not found"),
            );
        };
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let page = |total: usize, max_top: usize, render: &dyn Fn(usize) -> Value| {
            self.odata_page(
                Service::Defender,
                &format!("/api{path}"),
                q,
                total,
                max_top,
                max_top,
                render,
            )
        };
        let machine = |id: &str| self.ix.machines.get(&id.to_lowercase()).copied();
        let not_found = |id: &str| {
            self.error(
                Service::Defender,
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("Machine {id} was not found"),
            )
        };
        match segs.as_slice() {
            ["machines"] => {
                if has("Machine.Read.All") {
                    page(t.machines.len(), 10_000, &|i| render::machine(t, i))
                } else {
                    denied("Machine.Read.All", "Machine")
                }
            }
            ["machines", id] => {
                if !has("Machine.Read.All") {
                    denied("Machine.Read.All", "Machine")
                } else {
                    match machine(id) {
                        Some(m) => Reply::ok(render::machine(t, m)),
                        None => not_found(id),
                    }
                }
            }
            ["machines", id, "logonusers"] => {
                if !(has("Machine.Read.All") && has("User.Read.All")) {
                    return denied("User.Read.All", "User");
                }
                match machine(id) {
                    Some(m) => {
                        let l = &t.machines[m].logons;
                        page(l.len(), 10_000, &|i| {
                            render::logon_user(t, m, l[i] as usize)
                        })
                    }
                    None => not_found(id),
                }
            }
            ["machines", id, "vulnerabilities"] => {
                if !has("Vulnerability.Read.All") {
                    return denied("Vulnerability.Read.All", "Vulnerability");
                }
                match machine(id) {
                    Some(m) => {
                        let v = &t.machines[m].vulns;
                        page(v.len(), 10_000, &|i| {
                            render::vulnerability(t, v[i] as usize, 1)
                        })
                    }
                    None => not_found(id),
                }
            }
            ["vulnerabilities"] => {
                if has("Vulnerability.Read.All") {
                    let list = &self.ix.exposed_cves;
                    page(list.len(), 8_000, &|i| {
                        render::vulnerability(t, list[i].0 as usize, list[i].1)
                    })
                } else {
                    denied("Vulnerability.Read.All", "Vulnerability")
                }
            }
            ["vulnerabilities", "machinesVulnerabilities"] => {
                if has("Vulnerability.Read.All") {
                    let list = &self.ix.machine_vulns;
                    page(list.len(), 10_000, &|i| {
                        render::machine_vulnerability(t, list[i].0 as usize, list[i].1 as usize)
                    })
                } else {
                    denied("Vulnerability.Read.All", "Vulnerability")
                }
            }
            _ => self.error(
                Service::Defender,
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("Resource /api{path} not found"),
            ),
        }
    }

    // ---- ARM ----------------------------------------------------------------

    fn arm(&self, method: &Method, rest: &str, q: &Query, body: &[u8]) -> Reply {
        let t = &*self.t;
        if q.get("api-version").is_none() {
            return self.error(
                Service::Arm,
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        let forbidden = self.options.faults.forbid.contains(&SourceName::Arm);
        let lower = rest.to_lowercase();
        let segs: Vec<&str> = lower.trim_matches('/').split('/').collect();
        let denied = |action: &str, scope: &str| {
            self.error(Service::Arm, StatusCode::FORBIDDEN, "AuthorizationFailed", &format!("The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.", t.client_id, self.app_oid))
        };
        let sub_of = |s: &str| -> Result<usize, Reply> {
            match self.ix.subs.get(s) {
                Some(&i) if !forbidden => Ok(i),
                Some(_) => Err(denied(
                    "Microsoft.Resources/subscriptions/read",
                    &format!("/subscriptions/{s}"),
                )),
                None => Err(self.error(
                    Service::Arm,
                    StatusCode::NOT_FOUND,
                    "SubscriptionNotFound",
                    &format!("The subscription '{s}' could not be found."),
                )),
            }
        };
        let path = rest.to_string();
        let page = |items: &[usize], render: &dyn Fn(usize) -> Value| -> Reply {
            let top = q
                .get("$top")
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(1000)
                .clamp(1, 1000);
            let offset = match q.get("$skiptoken") {
                None => 0,
                Some(tok) => match decode_skiptoken(tok) {
                    Some(n) => n,
                    None => {
                        return self.error(
                            Service::Arm,
                            StatusCode::BAD_REQUEST,
                            "InvalidSkipToken",
                            "The provided skip token is invalid.",
                        );
                    }
                },
            };
            let end = (offset + top).min(items.len());
            let value: Vec<Value> = items[offset.min(end)..end]
                .iter()
                .map(|&i| render(i))
                .collect();
            let mut out = json!({"value": value});
            if end < items.len() {
                let mut params: Vec<(String, String)> =
                    q.0.iter()
                        .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
                        .cloned()
                        .collect();
                params.push(("$skiptoken".into(), encode_skiptoken(end)));
                out["nextLink"] =
                    json!(format!("{}/arm{path}?{}", self.base, encode_query(&params)));
            }
            Reply::ok(out)
        };
        if method == Method::POST {
            return self.resource_graph(body, forbidden);
        }
        match segs.as_slice() {
            ["subscriptions"] => {
                let visible: Vec<usize> = if forbidden {
                    vec![]
                } else {
                    (0..t.subscriptions.len()).collect()
                };
                page(&visible, &|i| render::subscription(t, i))
            }
            ["subscriptions", s, "resourcegroups"] => match sub_of(s) {
                Ok(si) => page(&self.ix.rgs_of_sub[si], &|i| render::resource_group(t, i)),
                Err(r) => r,
            },
            ["subscriptions", s, "resources"] => match sub_of(s) {
                Ok(si) => page(&self.ix.resources_of_sub[si], &|i| render::resource(t, i)),
                Err(r) => r,
            },
            ["subscriptions", s, "resourcegroups", rg, "resources"] => match sub_of(s) {
                Ok(si) => match self.ix.resources_of_rg.get(&(si, rg.to_string())) {
                    Some(list) => page(list, &|i| render::resource(t, i)),
                    None if self.ix.rgs_of_sub[si]
                        .iter()
                        .any(|&g| t.resource_groups[g].name.eq_ignore_ascii_case(rg)) =>
                    {
                        page(&[], &|i| render::resource(t, i))
                    }
                    None => self.error(
                        Service::Arm,
                        StatusCode::NOT_FOUND,
                        "ResourceGroupNotFound",
                        &format!("Resource group '{rg}' could not be found."),
                    ),
                },
                Err(r) => r,
            },
            [
                "subscriptions",
                s,
                "providers",
                "microsoft.authorization",
                "roleassignments",
            ] => match sub_of(s) {
                Ok(si) => {
                    let list = t.assignments_in_sub(si);
                    let idx: Vec<usize> = (0..list.len()).collect();
                    page(&idx, &|i| render::role_assignment(t, si, list[i]))
                }
                Err(r) => r,
            },
            [
                "subscriptions",
                s,
                "providers",
                "microsoft.authorization",
                "roledefinitions",
            ] => match sub_of(s) {
                Ok(si) => {
                    let idx: Vec<usize> = (0..t.role_definitions.len()).collect();
                    page(&idx, &|i| render::role_definition(t, si, i))
                }
                Err(r) => r,
            },
            _ => self.error(
                Service::Arm,
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                &format!("The resource type could not be found for path '{rest}'."),
            ),
        }
    }

    /// Azure Resource Graph: `POST /providers/Microsoft.ResourceGraph/resources`.
    /// Understands the `Resources` and `ResourceContainers` tables with
    /// optional `| where type =~ '...'` clauses; paging by `$skipToken`.
    fn resource_graph(&self, body: &[u8], forbidden: bool) -> Reply {
        let t = &*self.t;
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return self.error(
                Service::Arm,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Please provide a valid JSON request body.",
            );
        };
        let Some(query) = req["query"].as_str() else {
            return self.error(
                Service::Arm,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "The request body must contain 'query'.",
            );
        };
        let subs: Vec<usize> = match req["subscriptions"].as_array() {
            Some(a) => a
                .iter()
                .filter_map(|s| s.as_str())
                .filter_map(|s| self.ix.subs.get(&s.to_lowercase()).copied())
                .collect(),
            None => (0..t.subscriptions.len()).collect(),
        };
        let subs: Vec<usize> = if forbidden { vec![] } else { subs };
        let mut parts = query.split('|').map(str::trim);
        let table = parts.next().unwrap_or("").to_lowercase();
        let mut type_filters: Vec<String> = Vec::new();
        for clause in parts {
            let c = clause.to_lowercase();
            if let Some(rest) = c
                .strip_prefix("where type =~ ")
                .or_else(|| c.strip_prefix("where type == "))
            {
                type_filters.push(
                    rest.trim_matches(|ch| ch == '\'' || ch == '"' || ch == ' ')
                        .to_string(),
                );
            } else if c.starts_with("project") || c.starts_with("order by") || c.is_empty() {
            } else {
                return self.error(Service::Arm, StatusCode::BAD_REQUEST, "BadRequest", &format!("Please provide below info when asking for support: timestamp = {}. This simulated Resource Graph understands only 'where type =~', 'project' and 'order by' clauses; got '{clause}'.", render::ts(now_unix())));
            }
        }
        let rows: Vec<Value> =
            match table.as_str() {
                "resources" => subs
                    .iter()
                    .flat_map(|&s| self.ix.resources_of_sub[s].iter().copied())
                    .filter(|&i| {
                        type_filters.is_empty()
                            || type_filters
                                .iter()
                                .any(|f| t.resources[i].arm_type.eq_ignore_ascii_case(f))
                    })
                    .map(|i| render::resource_graph_row(t, i))
                    .collect(),
                "resourcecontainers" => subs
                    .iter()
                    .flat_map(|&s| self.ix.rgs_of_sub[s].iter().copied())
                    .map(|i| {
                        let mut v = render::resource_group(t, i);
                        v["type"] = json!("microsoft.resources/subscriptions/resourcegroups");
                        v["subscriptionId"] =
                            json!(t.subscriptions[t.resource_groups[i].sub as usize].id);
                        v
                    })
                    .collect(),
                other => return self.error(
                    Service::Arm,
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!(
                        "Table '{other}' could not be found. Use Resources or ResourceContainers."
                    ),
                ),
            };
        let opts = &req["options"];
        let top = opts["$top"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
        let offset = match opts["$skipToken"].as_str() {
            Some(tok) => match decode_skiptoken(tok) {
                Some(n) => n,
                None => {
                    return self.error(
                        Service::Arm,
                        StatusCode::BAD_REQUEST,
                        "InvalidSkipToken",
                        "The provided skip token is invalid.",
                    );
                }
            },
            None => opts["$skip"].as_u64().unwrap_or(0) as usize,
        };
        let end = (offset + top).min(rows.len());
        let data: Vec<Value> = rows[offset.min(end)..end].to_vec();
        let mut out = json!({
            "totalRecords": rows.len(),
            "count": data.len(),
            "data": data,
            "facets": [],
            "resultTruncated": "false",
        });
        if end < rows.len() {
            out["$skipToken"] = json!(encode_skiptoken(end));
        }
        Reply::ok(out)
    }
}

fn unreachable_reply() -> Reply {
    Reply::json(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": {"code": "InternalServerError", "message": "no handler"}}),
    )
}

fn is_resource(resource: &str, hosts: &[&str]) -> bool {
    let host = resource
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    hosts.iter().any(|h| host.eq_ignore_ascii_case(h))
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
        SourceName::Defender => token::DEFENDER_ROLES,
        SourceName::Arm => &[],
    }
}

/// Opaque page tokens (clients must pass them back unchanged).
fn encode_skiptoken(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("tenx-page:{offset}"))
}

fn decode_skiptoken(tok: &str) -> Option<usize> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("tenx-page:")?
        .parse()
        .ok()
}

/// `field eq 'value'`, the one OData filter form the listings need.
fn parse_eq_filter(f: &str) -> Option<(String, String)> {
    let (field, rest) = f.trim().split_once(" eq ")?;
    let value = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some((field.trim().to_string(), value.to_string()))
}

fn encode_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_skiptoken(&encode_skiptoken(1234)), Some(1234));
        assert_eq!(decode_skiptoken("nonsense"), None);
    }

    #[test]
    fn eq_filters_parse() {
        assert_eq!(
            parse_eq_filter("machineId eq 'abc'"),
            Some(("machineId".into(), "abc".into()))
        );
        assert_eq!(parse_eq_filter("machineId gt 3"), None);
    }
}
