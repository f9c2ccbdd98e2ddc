//! `Http`, the one client, its options and counters, and how one request
//! is sent. It can only send what reads a tenant: GET, the token POST, Graph
//! `$batch` whose inner requests are all GETs, advanced hunting and Azure
//! Resource Graph queries, and the Intune reports of `report::IntuneReport`.
//! That is enforced by the type of what goes out (`Outgoing`): there is no
//! way to name another method, and the `reqwest::Client` never leaves this
//! file.
//!
//! Around every request: a bearer token per API (`tokens`), a per-API
//! concurrency limit (`Gate`, where the next page of a chain and a request
//! with a renewed token go first), a pause before requests to a service
//! whose answers say its limit is near (`pace`), what its answer means
//! (`answer`), what to do after a miss (`retry`: a refused token is
//! renewed, and refused again right after it is the answer; throttles wait
//! as the service asks and other failures back off, each kind a bounded
//! number of times, every wait within the collection's allowance), and
//! request counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::answer::OnHead;
use super::error::HttpError;
use super::retry::{Attempts, Miss, Next, Trouble, WaitNotice, Waited};
use crate::auth::endpoints::{Api, join};
use crate::auth::{AccessToken, Auth};
use crate::fetch::gate::{Gate, Priority};
use crate::fetch::outgoing::Outgoing;
use crate::fetch::record::RawPage;

#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Requests in flight per API (Graph, Defender, ARM). A Graph `$batch`
    /// counts once. Defender's is high because its logon users are one
    /// request per machine with no `$batch`: 512 in flight read 100,000
    /// machines' in about 3 s at 20 ms. A service that wants fewer says so
    /// with 429 and `Retry-After`, which every request then honours.
    pub concurrency: [usize; 3],
    /// Attempts for a throttled (429/503) request.
    pub throttle_attempts: u32,
    /// Attempts for other failures: 500, 502 and 504 (any other 5xx of the
    /// token endpoint), connections that fail or break, bodies that cannot
    /// be read, `$batch` sub-answers that fail or are not pages.
    pub error_attempts: u32,
    /// First backoff step when no `Retry-After` is given; doubles each time.
    pub backoff: Duration,
    /// The longest a collection waits in all: the time its requests'
    /// `Retry-After`s, backoffs and pauses for a service near its limit
    /// cover (waits that overlap count once). A service that asks for more
    /// than is left is given up on at once, with what it asked.
    pub max_wait: Duration,
    pub timeout: Duration,
    /// The largest answer read (`MAX_BODY`).
    pub max_body: usize,
    /// The most pages of one collection (`MAX_PAGES`).
    pub max_pages: usize,
}

/// The largest answer tenx reads: far above any real page (Graph's 999
/// users are about 2 MB, Defender's 10,000 machines about 10 MB, an advanced
/// hunting result at most 50 MB), and a bound on what a broken or hostile
/// server can make tenx hold.
pub const MAX_BODY: usize = 256 << 20;

/// The most pages one collection may have: 20,000 pages of 999 users is
/// twenty million users. A service that pages on past it is broken.
pub const MAX_PAGES: usize = 20_000;

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            concurrency: [24, 512, 12],
            throttle_attempts: 10,
            error_attempts: 5,
            backoff: Duration::from_millis(250),
            max_wait: Duration::from_secs(300),
            timeout: Duration::from_secs(100),
            max_body: MAX_BODY,
            max_pages: MAX_PAGES,
        }
    }
}

/// Counters of what was sent.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(super) requests: [AtomicU64; 4],
    pub(super) batched: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) throttled: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    pub graph: u64,
    pub defender: u64,
    pub arm: u64,
    pub token: u64,
    /// Inner requests carried by Graph `$batch`.
    pub batched: u64,
    pub retries: u64,
    pub throttled: u64,
}

impl MetricsSnapshot {
    /// HTTP requests sent (a batch counts once).
    pub fn total(&self) -> u64 {
        self.graph + self.defender + self.arm + self.token
    }
}

pub struct Http {
    client: reqwest::Client,
    pub(super) auth: Arc<Auth>,
    limits: [Gate; 3],
    /// Lanes held back while a service says its limit is near.
    pub(super) pacing: crate::fetch::pace::Pacing,
    pub(super) metrics: Metrics,
    pub(super) opts: HttpOptions,
    /// Told of every wait of a second or more (`watch_waits`).
    pub(super) waits: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<WaitNotice>>>,
}

impl Http {
    /// A client; `Err` only when the TLS backend cannot be set up.
    pub fn new(auth: Arc<Auth>, opts: HttpOptions) -> Result<Http, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            // A redirect is an answer to report, never a place to send a
            // bearer token to.
            .redirect(reqwest::redirect::Policy::none())
            // Keep a connection for every request that may be in flight:
            // fewer, and each round of per-machine requests reconnects.
            .pool_max_idle_per_host(opts.concurrency.iter().sum::<usize>().max(1))
            .user_agent(concat!("tenx/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Http {
            client,
            limits: [
                Gate::new(opts.concurrency[0]),
                Gate::new(opts.concurrency[1]),
                Gate::new(opts.concurrency[2]),
            ],
            auth,
            pacing: crate::fetch::pace::Pacing::new(opts.concurrency[Api::Arm.index()]),
            metrics: Metrics::default(),
            opts,
            waits: std::sync::Mutex::new(None),
        })
    }

    /// The longest a fetch waits in all for a throttled service.
    pub fn max_wait(&self) -> Duration {
        self.opts.max_wait
    }

    /// Attempts a throttled request gets.
    pub fn throttle_attempts(&self) -> u32 {
        self.opts.throttle_attempts.max(1)
    }

    /// The configured number of requests in flight for an API.
    pub fn concurrency(&self, api: Api) -> usize {
        self.opts.concurrency[api.index()].max(1)
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        let m = &self.metrics;
        let r = |i: usize| m.requests[i].load(Ordering::Relaxed);
        MetricsSnapshot {
            graph: r(0),
            defender: r(1),
            arm: r(2),
            token: r(3),
            batched: m.batched.load(Ordering::Relaxed),
            retries: m.retries.load(Ordering::Relaxed),
            throttled: m.throttled.load(Ordering::Relaxed),
        }
    }

    /// The endpoint as error messages name it: method and path, no host, no query.
    pub(super) fn endpoint_name(&self, out: &Outgoing) -> String {
        match out {
            Outgoing::Get { api, url } => {
                let base = self
                    .auth
                    .endpoints
                    .base(*api)
                    .as_str()
                    .trim_end_matches('/');
                let rest = url.strip_prefix(base).unwrap_or(url);
                format!("GET {}", rest.split('?').next().unwrap_or(rest))
            }
            Outgoing::GraphBatch { version, .. } => format!("POST /{version}/$batch"),
            Outgoing::Hunting { .. } => "POST /v1.0/security/runHuntingQuery".into(),
            Outgoing::ResourceGraph { .. } => {
                "POST /providers/Microsoft.ResourceGraph/resources".into()
            }
            Outgoing::IntuneReport { report, .. } => format!("POST {}", report.path()),
            Outgoing::Token { .. } => "POST token".into(),
        }
    }

    /// GET of a path on an API (`/v1.0/users?$top=999`).
    pub async fn get(&self, api: Api, path: &str) -> Result<Value, HttpError> {
        let url = join(self.auth.endpoints.base(api), path);
        self.send(&Outgoing::Get { api, url: &url }).await
    }

    /// One advanced hunting query: its rows. The service returns no more
    /// than its row limit and says nothing when it cut a result (the caller
    /// compares the count with the limit); `waited` is the collection's
    /// allowance of waiting.
    pub async fn hunt(&self, query: &str, waited: &Waited) -> Result<RawPage, HttpError> {
        self.send_inner(
            &Outgoing::Hunting { query },
            RawPage::scan_hunting,
            None,
            Priority::Normal,
            None,
            waited,
        )
        .await
    }

    /// Sends one request, asked again as the retry policy says; the answer
    /// parsed into a `Value`.
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<Value, HttpError> {
        self.send_as(out, |b| serde_json::from_slice(&b)).await
    }

    /// Sends one request; a successful answer's body goes through `parse`,
    /// and one it cannot read is asked again like a dropped connection.
    pub async fn send_as<T>(
        &self,
        out: &Outgoing<'_>,
        parse: impl Fn(bytes::Bytes) -> Result<T, serde_json::Error>,
    ) -> Result<T, HttpError> {
        self.send_inner(out, parse, None, Priority::Normal, None, &Waited::default())
            .await
    }

    /// `send_as`, and `on_head` sees a successful answer's next link as soon
    /// as its first bytes name it (see `record::head_link`), before the rest
    /// of the body has arrived. A throttle that asks to wait longer than
    /// `patience` is the answer (`HttpError::RateLimited`); `waited` is the
    /// collection's allowance of waiting.
    pub(super) async fn send_inner<T>(
        &self,
        out: &Outgoing<'_>,
        parse: impl Fn(bytes::Bytes) -> Result<T, serde_json::Error>,
        on_head: Option<&OnHead<'_>>,
        priority: Priority,
        patience: Option<Duration>,
        waited: &Waited,
    ) -> Result<T, HttpError> {
        let api = out.api();
        let endpoint = self.endpoint_name(out);
        let policy = self.retry_policy(patience);
        let mut attempts = Attempts::default();
        let mut refused_at = None;
        let mut priority = priority;
        let lane = crate::fetch::pace::Lane::of(out);
        loop {
            // Held back while the service says its limit is near, before a
            // slot is taken.
            if let Some((wait, why)) = lane.and_then(|l| self.pacing.delay(l)) {
                self.pause(&endpoint, wait, &why, waited)
                    .await
                    .map_err(|o| o.at(&endpoint))?;
            }
            let (slot, token) = match out {
                // A token request goes to the sign-in service, not to the API
                // whose slots are taken, and is one at a time already.
                Outgoing::Token { .. } => (None, None),
                // The token is taken once the request may go, so it is as
                // fresh as it can be when it is sent.
                _ => {
                    let slot = self.limits[api.index()].enter(priority).await;
                    (Some(slot), Some(self.token_since(api, refused_at).await?))
                }
            };
            let answer = {
                let counter = match out {
                    Outgoing::Token { .. } => 3,
                    _ => api.index(),
                };
                self.metrics.requests[counter].fetch_add(1, Ordering::Relaxed);
                match self.build(out, token.as_deref()).send().await {
                    Err(e) => Err(Miss::Trouble {
                        trouble: Trouble::Unsent(super::error::describe(&e)),
                        asked: Duration::ZERO,
                    }),
                    Ok(resp) => {
                        if let Some(lane) = lane {
                            self.pacing.observe(lane, resp.headers());
                        }
                        self.judge(out, &endpoint, resp, &parse, on_head).await
                    }
                }
            };
            // Free for others while this one waits to try again.
            drop(slot);
            let miss = match answer {
                Ok(v) => return Ok(v),
                Err(miss) => miss,
            };
            match self.next_attempt(&mut attempts, &policy, miss, &endpoint) {
                Next::Stop(e) => return Err(e),
                Next::Renew => {
                    refused_at = Some(Instant::now());
                    // Sent again at once with the new token: at the back of
                    // the queue, the new token could die waiting too.
                    priority = Priority::RENEWED;
                    if let Some(t) = &token {
                        self.invalidate(api, t).await;
                    }
                }
                Next::Again { wait, trouble } => {
                    self.wait_to_retry(&endpoint, wait, &trouble, waited)
                        .await
                        .map_err(|o| o.at(&endpoint))?;
                }
            }
        }
    }

    pub(super) fn build(
        &self,
        out: &Outgoing,
        token: Option<&AccessToken>,
    ) -> reqwest::RequestBuilder {
        let req = match out {
            Outgoing::Get { url, .. } => self.client.get(*url),
            Outgoing::GraphBatch { version, paths } => self
                .client
                .post(join(
                    &self.auth.endpoints.graph,
                    &format!("/{version}/$batch"),
                ))
                .json(&Outgoing::batch_body(paths)),
            Outgoing::Hunting { query } => self
                .client
                .post(join(
                    &self.auth.endpoints.graph,
                    "/v1.0/security/runHuntingQuery",
                ))
                .json(&json!({ "Query": query })),
            Outgoing::ResourceGraph { body } => self
                .client
                .post(join(
                    &self.auth.endpoints.arm,
                    "/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01",
                ))
                .json(body),
            Outgoing::IntuneReport { report, query } => self
                .client
                .post(join(&self.auth.endpoints.graph, report.path()))
                .json(&query.body()),
            Outgoing::Token { api } => {
                let form = self.auth.token_form(*api);
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.client
                    .post(self.auth.token_url())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
        };
        let req = req.header("accept", "application/json");
        match token {
            Some(t) => req.header(reqwest::header::AUTHORIZATION, t.header.clone()),
            None => req,
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::fetch::http::tests::client_of;

    /// A loopback server that grants any token and answers every other
    /// request with a redirect to `/elsewhere`; it counts what it was asked.
    async fn redirecting_server() -> (url::Url, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let head = String::from_utf8_lossy(&buf[..n]).to_string();
                        let line = head.lines().next().unwrap_or("").to_string();
                        log.lock().expect("log").push(line.clone());
                        let reply = if line.starts_with("POST") {
                            let body =
                                r#"{"access_token":"x","expires_in":3600,"token_type":"Bearer"}"#;
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        } else {
                            "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n".to_string()
                        };
                        if sock.write_all(reply.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let base = url::Url::parse(&format!("http://{addr}")).expect("url");
        (base, seen)
    }

    #[tokio::test]
    async fn a_redirect_is_reported_not_followed() {
        let (base, seen) = redirecting_server().await;
        let http = client_of(base);
        let err = http
            .get(Api::Graph, "/v1.0/users")
            .await
            .expect_err("a redirect is not an answer");
        assert!(
            matches!(&err, HttpError::Status { status: 302, endpoint, .. } if endpoint == "GET /v1.0/users"),
            "{err:?}"
        );
        let seen = seen.lock().expect("log").clone();
        assert!(
            !seen.iter().any(|l| l.contains("/elsewhere")),
            "followed the redirect: {seen:?}"
        );
    }

    #[test]
    fn only_reads_can_be_expressed() {
        let paths = vec!["/users/1".to_string(), "/groups/2/members".to_string()];
        let body = json!({});
        let query = crate::fetch::report::ReportQuery {
            filter: "(ApplicationId eq 'a')".into(),
            select: vec!["DeviceId".into()],
            order_by: vec![],
            skip: 0,
            top: 10,
        };
        let all = [
            Outgoing::Get {
                api: Api::Graph,
                url: "http://127.0.0.1/x",
            },
            Outgoing::GraphBatch {
                version: "v1.0",
                paths: &paths,
            },
            Outgoing::ResourceGraph { body: &body },
            Outgoing::Token { api: Api::Arm },
            Outgoing::IntuneReport {
                report: crate::fetch::report::IntuneReport::DeviceInstallStatus,
                query: &query,
            },
        ];
        for o in &all {
            let m = o.method();
            assert!(m == reqwest::Method::GET || m == reqwest::Method::POST);
            if m == reqwest::Method::POST {
                assert!(!matches!(o, Outgoing::Get { .. }));
            }
        }
        let b = Outgoing::batch_body(&paths);
        let methods: Vec<&str> = b["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["method"].as_str())
            .collect();
        assert_eq!(methods, ["GET", "GET"]);
        // An Intune report is a POST to one of the reports' own paths, the
        // read-only actions under deviceManagement/reports, with a query for
        // its body and nothing else.
        let http = client_of(url::Url::parse("http://127.0.0.1:9").expect("url"));
        for o in &all {
            if let Outgoing::IntuneReport { report, query } = o {
                let req = http.build(o, None).build().expect("request");
                assert_eq!(req.method(), reqwest::Method::POST);
                let path = req.url().path().to_string();
                assert!(
                    path == report.path()
                        && path.starts_with("/beta/deviceManagement/reports/get")
                        && path.ends_with("Report"),
                    "{path}"
                );
                let sent: Value =
                    serde_json::from_slice(req.body().and_then(|b| b.as_bytes()).expect("a body"))
                        .expect("json");
                assert_eq!(sent, query.body());
                assert_eq!(o.api(), Api::Graph);
            }
        }
    }
}
