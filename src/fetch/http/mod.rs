//! The one HTTP client of tenx. It can only send what reads a tenant: GET,
//! the token POST, Graph `$batch` whose inner requests are all GETs, Azure
//! Resource Graph queries and the Intune reports of `report::IntuneReport`.
//! That is enforced by the type of what goes out (`Outgoing`): there is no
//! way to name another method, and the `reqwest::Client` never leaves this
//! module.
//!
//! Around every request: a bearer token per API (refreshed once on a 401),
//! a per-API concurrency limit, a pause before requests to a service whose
//! answers say its limit is near (`pace`), retries of 429/503 after
//! `Retry-After` (seconds, fractional seconds or an HTTP date; Resource
//! Graph's `x-ms-user-quota-resets-after`; exponential backoff with jitter
//! when absent), bounded retries of other 5xx, dropped connections and
//! malformed bodies, and request counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::auth::endpoints::{Api, join};
use crate::auth::{AccessToken, Auth, AuthError};
use crate::fetch::gate::{Gate, Priority};
use crate::fetch::record::{RawPage, Record};

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
    /// Attempts for other 5xx, dropped connections and malformed bodies.
    pub error_attempts: u32,
    /// First backoff step when no `Retry-After` is given; doubles each time.
    pub backoff: Duration,
    /// The longest a collection waits in all for a throttled service: the
    /// time its requests' `Retry-After`s and backoffs cover (waits that
    /// overlap count once). A service that asks for more than is left is
    /// given up on at once, with what it asked.
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

pub use crate::fetch::outgoing::Outgoing;

pub const MAX_BATCH: usize = 20;

/// Pages a chain of next links may run ahead of the reading of its records.
const PAGES_AHEAD: usize = 16;

/// Told a page's next link as soon as the page's first bytes name it.
type OnHead<'a> = dyn Fn(String) + Send + Sync + 'a;

/// A page request in a chain: its page, once read whole.
type PageTask = std::pin::Pin<Box<dyn Future<Output = Result<RawPage, HttpError>> + Send>>;

/// Why a body could not be read whole.
enum BodyError {
    /// Larger than `MAX_BODY` (claimed or seen).
    TooLarge,
    Broken(reqwest::Error),
}

/// Reads a body chunk by chunk, up to `MAX_BODY`, telling `on_head` (if
/// any) the next link the moment the first bytes name it.
async fn read_body(
    mut resp: reqwest::Response,
    on_head: Option<&OnHead<'_>>,
    max: usize,
) -> Result<bytes::Bytes, BodyError> {
    // A length the service claims is a hint, not a promise to allocate.
    let claimed = resp.content_length().unwrap_or(64 << 10);
    if claimed > max as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut buf = bytes::BytesMut::with_capacity(claimed.min(16 << 20) as usize);
    let mut watching = on_head.is_some();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Broken)? {
        if buf.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
        if let (true, Some(on_head)) = (watching, on_head) {
            match crate::fetch::record::head_link(&buf) {
                crate::fetch::record::Head::Link(link) => {
                    on_head(link);
                    watching = false;
                }
                crate::fetch::record::Head::NoLink => watching = false,
                crate::fetch::record::Head::NeedMore => {}
            }
        }
    }
    Ok(buf.freeze())
}

/// A task that ends when its handle is dropped (a collection given up), and
/// that can be awaited for what it returns.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{endpoint}: access denied by {api} (HTTP 403{}): {message}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Forbidden {
        api: &'static str,
        endpoint: String,
        code: Option<String>,
        message: String,
    },
    #[error("{endpoint}: HTTP {status}{}: {message}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        endpoint: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error("{endpoint}: the answer could not be read ({cause})")]
    Malformed { endpoint: String, cause: String },
    #[error("{endpoint}: {cause}")]
    Transport { endpoint: String, cause: String },
    #[error("{endpoint}: still throttled after {attempts} attempts")]
    Throttled { endpoint: String, attempts: u32 },
    #[error("{endpoint}: refused to follow a next link to another host")]
    ForeignLink { endpoint: String },
    #[error("{endpoint}: the service's rate limit is spent (HTTP 429; it asks to wait {} s)", retry_after.as_secs_f64().ceil())]
    RateLimited {
        endpoint: String,
        retry_after: Duration,
    },
    #[error("{endpoint}: still throttled; the service asks to wait {} s more, beyond the {} s tenx waits for one collection (waited {} s)", asked.as_secs_f64().ceil(), limit.as_secs(), waited.as_secs())]
    WaitedTooLong {
        endpoint: String,
        asked: Duration,
        waited: Duration,
        limit: Duration,
    },
    #[error("{endpoint}: the answer is larger than {} MiB, the most tenx reads; the collection was not read", limit >> 20)]
    TooLarge { endpoint: String, limit: usize },
    #[error(
        "{endpoint}: the next link leads back to page {again} of this collection after {pages} pages; the service pages in a loop, so the collection was not read whole"
    )]
    PageLoop {
        endpoint: String,
        pages: usize,
        again: usize,
    },
    #[error("{endpoint}: more than {limit} pages; the collection was not read whole")]
    TooManyPages { endpoint: String, limit: usize },
    /// What tenx decided of an answer that came (a result cut at a service's
    /// row limit), not a status the service sent.
    #[error("{endpoint}: {what}")]
    Cut { endpoint: String, what: String },
}

impl HttpError {
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            HttpError::Auth(_) => None,
            HttpError::Forbidden { endpoint, .. }
            | HttpError::Status { endpoint, .. }
            | HttpError::Malformed { endpoint, .. }
            | HttpError::Transport { endpoint, .. }
            | HttpError::Throttled { endpoint, .. }
            | HttpError::RateLimited { endpoint, .. }
            | HttpError::WaitedTooLong { endpoint, .. }
            | HttpError::TooLarge { endpoint, .. }
            | HttpError::PageLoop { endpoint, .. }
            | HttpError::TooManyPages { endpoint, .. }
            | HttpError::Cut { endpoint, .. }
            | HttpError::ForeignLink { endpoint } => Some(endpoint),
        }
    }
}

/// Counters of what was sent.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; 4],
    batched: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
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
    auth: Arc<Auth>,
    limits: [Gate; 3],
    /// Lanes held back while a service says its limit is near.
    pacing: crate::fetch::pace::Pacing,
    metrics: Metrics,
    opts: HttpOptions,
    /// Told of every wait of a second or more (`watch_waits`).
    waits: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<WaitNotice>>>,
}

/// A request waiting for a throttled or failing service before it tries
/// again: shown while a fetch runs, so a long wait is never silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitNotice {
    pub endpoint: String,
    pub wait: Duration,
    /// Why: `HTTP 429`, `HTTP 503`, a broken connection, …
    pub cause: String,
}

/// What the requests of one collection have waited so far, against
/// `HttpOptions::max_wait`: the time covered by their waits, so twenty
/// requests told at once to wait ten seconds have waited ten seconds, not
/// two hundred.
#[derive(Debug, Default)]
pub struct Waited(std::sync::Mutex<WaitSpan>);

#[derive(Debug, Default, Clone, Copy)]
struct WaitSpan {
    /// The union of the waits so far.
    covered: Duration,
    /// When the latest-ending wait ends.
    until: Option<std::time::Instant>,
}

impl WaitSpan {
    /// What a wait of `d` starting `now` adds to the union.
    fn added(&self, now: std::time::Instant, d: Duration) -> Duration {
        let start = self.until.map_or(now, |u| u.max(now));
        (now + d).saturating_duration_since(start)
    }
}

impl Waited {
    /// Takes a wait of `d` starting now, unless it would bring the time
    /// covered past `limit`; then the time covered so far.
    fn take(&self, d: Duration, limit: Duration) -> Result<(), Duration> {
        let now = std::time::Instant::now();
        let Ok(mut span) = self.0.lock() else {
            return Ok(());
        };
        let added = span.added(now, d);
        if span.covered.saturating_add(added) > limit {
            return Err(span.covered);
        }
        span.covered = span.covered.saturating_add(added);
        let end = now.checked_add(d);
        span.until = match (span.until, end) {
            (Some(u), Some(e)) => Some(u.max(e)),
            (u, e) => e.or(u),
        };
        Ok(())
    }
}

/// Which of a response's statuses to treat how.
enum Verdict<T> {
    Done(T),
    Retry {
        wait: Duration,
        throttled: bool,
        cause: String,
    },
    RefreshToken,
    Fail(HttpError),
}

impl Http {
    pub fn new(auth: Arc<Auth>, opts: HttpOptions) -> anyhow::Result<Http> {
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

    /// Waits of a second or more from now on are told on the returned
    /// channel (the last caller's; a fetch watches its own).
    pub fn watch_waits(&self) -> tokio::sync::mpsc::UnboundedReceiver<WaitNotice> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut w) = self.waits.lock() {
            *w = Some(tx);
        }
        rx
    }

    /// Tells the watcher of a wait the caller makes itself (pacing to a
    /// quota), without taking it out of any allowance.
    pub fn tell_wait(&self, endpoint: &str, wait: Duration, cause: &str) {
        if wait < Duration::from_secs(1) {
            return;
        }
        if let Some(tx) = self.waits.lock().ok().and_then(|w| w.clone()) {
            let _ = tx.send(WaitNotice {
                endpoint: endpoint.to_string(),
                wait,
                cause: cause.to_string(),
            });
        }
    }

    /// Takes `wait` out of a collection's allowance and tells the watcher;
    /// an error when the allowance cannot cover it.
    fn take_wait(
        &self,
        endpoint: &str,
        wait: Duration,
        cause: &str,
        waited: &Waited,
    ) -> Result<(), HttpError> {
        if let Err(so_far) = waited.take(wait, self.opts.max_wait) {
            return Err(HttpError::WaitedTooLong {
                endpoint: endpoint.to_string(),
                asked: wait,
                waited: so_far,
                limit: self.opts.max_wait,
            });
        }
        if wait >= Duration::from_secs(1) {
            if let Some(tx) = self.waits.lock().ok().and_then(|w| w.clone()) {
                let _ = tx.send(WaitNotice {
                    endpoint: endpoint.to_string(),
                    wait,
                    cause: cause.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The configured number of requests in flight for an API.
    /// Attempts a throttled request gets.
    pub fn throttle_attempts(&self) -> u32 {
        self.opts.throttle_attempts.max(1)
    }

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

    /// A token for an API, from the cache or freshly requested (one request
    /// at a time per API).
    pub async fn token(&self, api: Api) -> Result<Arc<AccessToken>, HttpError> {
        self.token_since(api, None).await
    }

    /// `token`, but a cached token obtained before `since` is not used: a
    /// service refused a token then, and one cached from before may have
    /// died the same way though another request fetched it.
    async fn token_since(
        &self,
        api: Api,
        since: Option<Instant>,
    ) -> Result<Arc<AccessToken>, HttpError> {
        let mut slot = self.auth.slot(api).lock().await;
        if let Some(t) = slot
            .as_ref()
            .filter(|t| t.fresh() && since.is_none_or(|s| t.obtained >= s))
        {
            return Ok(t.clone());
        }
        let body = Box::pin(self.send(&Outgoing::Token { api })).await?;
        let token = AccessToken::from_response(&body)
            .map(Arc::new)
            .ok_or_else(|| HttpError::Malformed {
                endpoint: "POST token".into(),
                cause: "no access_token in the answer".into(),
            })?;
        *slot = Some(token.clone());
        Ok(token)
    }

    async fn invalidate(&self, api: Api, stale: &AccessToken) {
        let mut slot = self.auth.slot(api).lock().await;
        if slot.as_ref().is_some_and(|t| t.value == stale.value) {
            *slot = None;
        }
    }

    /// The endpoint as error messages name it: method and path, no host, no query.
    fn endpoint_name(&self, out: &Outgoing) -> String {
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

    /// Sends one request, retrying as the module comment says; the answer
    /// parsed into a `Value`.
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<Value, HttpError> {
        self.send_as(out, |b| serde_json::from_slice(&b)).await
    }

    /// Sends one request; a successful answer's body goes through `parse`,
    /// and one it cannot read is retried like a dropped connection.
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
    /// of the body has arrived.
    async fn send_inner<T>(
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
        let mut throttled_tries = 0u32;
        let mut error_tries = 0u32;
        let mut refreshed = false;
        let mut refused_at = None;
        let mut priority = priority;
        let lane = crate::fetch::pace::Lane::of(out);
        loop {
            // Held back while the service says its limit is near, before a
            // slot is taken.
            if let Some((wait, why)) = lane.and_then(|l| self.pacing.delay(l)) {
                self.take_wait(&endpoint, wait, &why, waited)?;
                tokio::time::sleep(wait).await;
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
            let verdict = {
                let counter = match out {
                    Outgoing::Token { .. } => 3,
                    _ => api.index(),
                };
                self.metrics.requests[counter].fetch_add(1, Ordering::Relaxed);
                let req = self.build(out, token.as_deref());
                match req.send().await {
                    Err(e) => Verdict::Retry {
                        wait: Duration::ZERO,
                        throttled: false,
                        cause: format!("connection failed: {}", describe(&e)),
                    },
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
            match verdict {
                Verdict::Done(v) => return Ok(v),
                Verdict::RefreshToken if !refreshed => {
                    refreshed = true;
                    refused_at = Some(Instant::now());
                    // Sent again at once with the new token: at the back of
                    // the queue, the new token could die waiting too.
                    priority = Priority::RENEWED;
                    if let Some(t) = &token {
                        self.invalidate(api, t).await;
                    }
                }
                Verdict::RefreshToken => {
                    return Err(HttpError::Status {
                        endpoint,
                        status: 401,
                        code: None,
                        message: "the service refused a freshly issued token".into(),
                    });
                }
                Verdict::Retry {
                    wait,
                    throttled,
                    cause,
                } => {
                    // Only two refusals in a row mean the service refuses
                    // fresh tokens: a renewed token may age out while this
                    // request waits out a throttle, and then earns a renewal.
                    refreshed = false;
                    // A rate limit that asks for a longer wait than the
                    // caller will spend is its answer, not a delay.
                    if let Some(p) = patience.filter(|p| throttled && wait > *p) {
                        tracing::debug!(%endpoint, ?wait, ?p, "rate limited beyond patience");
                        self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
                        return Err(HttpError::RateLimited {
                            endpoint,
                            retry_after: wait,
                        });
                    }
                    let (tries, max) = if throttled {
                        throttled_tries += 1;
                        self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
                        (throttled_tries, self.opts.throttle_attempts)
                    } else {
                        error_tries += 1;
                        (error_tries, self.opts.error_attempts)
                    };
                    if tries >= max {
                        return Err(if throttled {
                            HttpError::Throttled {
                                endpoint,
                                attempts: tries,
                            }
                        } else {
                            exhausted(&endpoint, cause)
                        });
                    }
                    self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = if wait.is_zero() {
                        backoff(self.opts.backoff, tries)
                    } else {
                        wait
                    };
                    self.take_wait(&endpoint, wait, &cause, waited)?;
                    tokio::time::sleep(wait).await;
                }
                Verdict::Fail(e) => return Err(e),
            }
        }
    }

    fn build(&self, out: &Outgoing, token: Option<&AccessToken>) -> reqwest::RequestBuilder {
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

    async fn judge<T>(
        &self,
        out: &Outgoing<'_>,
        endpoint: &str,
        resp: reqwest::Response,
        parse: &impl Fn(bytes::Bytes) -> Result<T, serde_json::Error>,
        on_head: Option<&OnHead<'_>>,
    ) -> Verdict<T> {
        let status = resp.status().as_u16();
        // Resource Graph answers a spent quota without Retry-After, with
        // when the quota resets (Azure/azure-cli-extensions#3325).
        let retry_wait = retry_after(resp.headers()).or_else(|| {
            resp.headers()
                .get("x-ms-user-quota-resets-after")
                .and_then(|v| v.to_str().ok())
                .and_then(crate::fetch::pace::parse_resets_after)
        });
        let bytes =
            match read_body(resp, on_head.filter(|_| status == 200), self.opts.max_body).await {
                Ok(b) => b,
                Err(BodyError::TooLarge) => {
                    return Verdict::Fail(HttpError::TooLarge {
                        endpoint: endpoint.to_string(),
                        limit: self.opts.max_body,
                    });
                }
                Err(BodyError::Broken(e)) => {
                    return Verdict::Retry {
                        wait: Duration::ZERO,
                        throttled: false,
                        cause: format!("the connection broke mid-answer: {}", describe(&e)),
                    };
                }
            };
        if let Outgoing::Token { api } = out {
            if status == 200 {
                if let Ok(v) = parse(bytes.clone()) {
                    return Verdict::Done(v);
                }
            }
            let parsed: Result<Value, _> = serde_json::from_slice(&bytes);
            return match (status, parsed) {
                (429 | 500..=599, _) => Verdict::Retry {
                    wait: retry_wait.unwrap_or_default(),
                    throttled: status == 503 || status == 429,
                    cause: format!("HTTP {status}"),
                },
                (_, Ok(v)) if v.get("error").is_some() => {
                    Verdict::Fail(HttpError::Auth(AuthError::from_body(*api, status, &v)))
                }
                (_, _) => Verdict::Fail(HttpError::Auth(AuthError {
                    api: api.name(),
                    code: None,
                    guidance: format!(
                        "the token endpoint answered HTTP {status} without an error body; check the login URL and cloud"
                    ),
                })),
            };
        }
        match status {
            200..=299 => match parse(bytes) {
                Ok(v) => Verdict::Done(v),
                Err(e) => Verdict::Retry {
                    wait: Duration::ZERO,
                    throttled: false,
                    cause: format!("{MALFORMED}{e}"),
                },
            },
            401 => Verdict::RefreshToken,
            429 | 503 => Verdict::Retry {
                wait: retry_wait.unwrap_or_default(),
                throttled: true,
                cause: format!("HTTP {status}"),
            },
            500 | 502 | 504 => Verdict::Retry {
                wait: Duration::ZERO,
                throttled: false,
                cause: format!("HTTP {status}"),
            },
            _ => {
                let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
                let (code, message) = error_of(parsed.as_ref());
                if status == 403 {
                    Verdict::Fail(HttpError::Forbidden {
                        api: out.api().name(),
                        endpoint: endpoint.to_string(),
                        code,
                        message,
                    })
                } else {
                    Verdict::Fail(HttpError::Status {
                        endpoint: endpoint.to_string(),
                        status,
                        code,
                        message,
                    })
                }
            }
        }
    }

    /// GET of a path on an API (`/v1.0/users?$top=999`).
    pub async fn get(&self, api: Api, path: &str) -> Result<Value, HttpError> {
        let url = join(self.auth.endpoints.base(api), path);
        self.send(&Outgoing::Get { api, url: &url }).await
    }

    /// Follows `@odata.nextLink` / `nextLink` from `path` to the end, handing
    /// each page's records to `on_page`. Returns the number of items.
    pub async fn get_pages(
        self: &Arc<Self>,
        api: Api,
        path: &str,
        on_page: impl FnMut(Vec<Record<'_>>),
    ) -> Result<usize, HttpError> {
        self.get_pages_within(api, path, None, on_page).await
    }

    /// `get_pages`, but with a `patience`, a first page throttled with a
    /// `Retry-After` longer than it fails at once with
    /// `HttpError::RateLimited`: for an endpoint whose documented limit is
    /// per minute or per hour, waiting is worse than reading what is left on
    /// a later fetch.
    pub async fn get_pages_within(
        self: &Arc<Self>,
        api: Api,
        path: &str,
        patience: Option<Duration>,
        mut on_page: impl FnMut(Vec<Record<'_>>),
    ) -> Result<usize, HttpError> {
        let first = join(self.auth.endpoints.base(api), path);
        let waited = Arc::new(Waited::default());
        let page = self
            .send_inner(
                &Outgoing::Get { api, url: &first },
                RawPage::scan,
                None,
                Priority::Normal,
                patience,
                &waited,
            )
            .await?;
        self.follow(api, first, page, waited, &mut on_page).await
    }

    /// Hands a page's records over and follows its next links. The chain of
    /// next links runs as a task of its own, a few pages ahead of the
    /// records' reading: a source reads all its collections on one task, and
    /// the longest chain of requests must never wait while another
    /// collection's page is read. `first` is the first page's URL: a next
    /// link back to it is a loop.
    async fn follow(
        self: &Arc<Self>,
        api: Api,
        first: String,
        mut page: RawPage,
        waited: Arc<Waited>,
        on_page: &mut impl FnMut(Vec<Record<'_>>),
    ) -> Result<usize, HttpError> {
        let mut total = 0;
        let mut deliver = |page: &RawPage| {
            let records = page.records();
            total += records.len();
            on_page(records);
        };
        let Some(next) = page.next.take() else {
            deliver(&page);
            return Ok(total);
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let _chain = AbortOnDrop(tokio::spawn(
            Arc::clone(self).chain(api, first, next, waited, tx),
        ));
        deliver(&page);
        while let Some(next) = rx.recv().await {
            match next {
                Ok(page) => deliver(&page),
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Requests pages from `next` on until the last and sends each on, in
    /// order, as soon as it is scanned. A page's request goes out the moment
    /// the page before names it — from its first bytes where the service
    /// writes the link before the records (Graph) — so a page's transfer and
    /// scan overlap the next one's round trip. A link already followed ends
    /// the chain with `PageLoop`, and so does a chain longer than
    /// `MAX_PAGES`: a broken service must not page forever.
    async fn chain(
        self: Arc<Self>,
        api: Api,
        first: String,
        next: String,
        waited: Arc<Waited>,
        tx: tokio::sync::mpsc::Sender<Result<RawPage, HttpError>>,
    ) {
        use futures::StreamExt;
        let mut pages: futures::stream::FuturesOrdered<PageTask> = Default::default();
        // Each page's URL, with its number in the collection.
        let mut seen: std::collections::HashMap<String, usize> =
            std::collections::HashMap::from([(first, 1)]);
        // Pages read before the one asked for: the chain's rank at the gate.
        let mut depth = 1;
        let mut link = Some(self.start_page(api, next, depth, &waited, &mut seen, &mut pages));
        loop {
            tokio::select! {
                // The next link first: a request out sooner, a page later.
                biased;
                named = async {
                    match link.as_mut() {
                        Some(rx) => rx.await,
                        None => std::future::pending().await,
                    }
                }, if link.is_some() => {
                    link = None;
                    if let Ok(Some(next)) = named {
                        depth += 1;
                        link = Some(self.start_page(api, next, depth, &waited, &mut seen, &mut pages));
                    }
                }
                Some(page) = pages.next(), if !pages.is_empty() => {
                    let failed = page.is_err();
                    if tx.send(page).await.is_err() || failed {
                        return;
                    }
                }
                else => return,
            }
        }
    }

    /// Starts the request of one page of a chain (page `depth + 1`) as a
    /// task of its own and queues its page. The returned receiver gets the
    /// page's next link (`None` at the last page or when the page cannot be
    /// read), early when its head names it. A link to another host, one
    /// already followed, or past `MAX_PAGES` is not followed: its page is an
    /// error, queued after the pages before it.
    fn start_page(
        self: &Arc<Self>,
        api: Api,
        url: String,
        depth: u32,
        waited: &Arc<Waited>,
        seen: &mut std::collections::HashMap<String, usize>,
        pages: &mut futures::stream::FuturesOrdered<PageTask>,
    ) -> tokio::sync::oneshot::Receiver<Option<String>> {
        let (link_tx, link_rx) = tokio::sync::oneshot::channel();
        let number = depth as usize + 1;
        let refused = if !self.same_origin(api, &url) {
            Some(HttpError::ForeignLink {
                endpoint: format!("GET {}", url.split('?').next().unwrap_or("")),
            })
        } else if let Some(&again) = seen.get(&url) {
            Some(HttpError::PageLoop {
                endpoint: self.endpoint_name(&Outgoing::Get { api, url: &url }),
                pages: number - 1,
                again,
            })
        } else if number > self.opts.max_pages {
            Some(HttpError::TooManyPages {
                endpoint: self.endpoint_name(&Outgoing::Get { api, url: &url }),
                limit: self.opts.max_pages,
            })
        } else {
            None
        };
        if let Some(e) = refused {
            pages.push_back(Box::pin(async move { Err(e) }));
            return link_rx;
        }
        seen.insert(url.clone(), number);
        let http = Arc::clone(self);
        let waited = Arc::clone(waited);
        let endpoint = self.endpoint_name(&Outgoing::Get { api, url: &url });
        let task = AbortOnDrop(tokio::spawn(async move {
            let link = std::sync::Mutex::new(Some(link_tx));
            let tell = |next: Option<String>| {
                if let Some(tx) = link.lock().ok().and_then(|mut l| l.take()) {
                    let _ = tx.send(next);
                }
            };
            let page = http
                .send_inner(
                    &Outgoing::Get { api, url: &url },
                    RawPage::scan,
                    Some(&|next| tell(Some(next))),
                    Priority::First(depth),
                    None,
                    &waited,
                )
                .await;
            // Told already when the head named it; else the scan tells.
            tell(page.as_ref().ok().and_then(|p| p.next.clone()));
            page
        }));
        pages.push_back(Box::pin(async move {
            task.await.unwrap_or_else(|e| {
                Err(HttpError::Transport {
                    endpoint,
                    cause: format!("the request stopped unexpectedly ({e})"),
                })
            })
        }));
        link_rx
    }

    fn same_origin(&self, api: Api, link: &str) -> bool {
        let base = self.auth.endpoints.base(api);
        match url::Url::parse(link) {
            Ok(u) => {
                u.scheme() == base.scheme()
                    && u.host() == base.host()
                    && u.port_or_known_default() == base.port_or_known_default()
            }
            Err(_) => false,
        }
    }

    /// Graph `$batch`: every path answered on its own, in order. Throttled,
    /// unavailable and expired-token sub-requests are sent again (after the
    /// longest `Retry-After` among them), and so are sub-answers with a
    /// success status whose body is not a page (`null`, an error object, a
    /// string that is not a base64 page); the rest fail one by one.
    pub async fn graph_batch(
        &self,
        version: &str,
        paths: &[String],
    ) -> Vec<Result<RawPage, HttpError>> {
        self.graph_batch_waiting(version, paths, &Waited::default())
            .await
    }

    async fn graph_batch_waiting(
        &self,
        version: &str,
        paths: &[String],
        waited: &Waited,
    ) -> Vec<Result<RawPage, HttpError>> {
        let chunks: Vec<&[String]> = paths.chunks(MAX_BATCH).collect();
        let results = futures::future::join_all(
            chunks
                .into_iter()
                .map(|c| self.batch_chunk(version, c, waited)),
        )
        .await;
        results.into_iter().flatten().collect()
    }

    async fn batch_chunk(
        &self,
        version: &str,
        paths: &[String],
        waited: &Waited,
    ) -> Vec<Result<RawPage, HttpError>> {
        let endpoint_of = |i: usize| {
            format!(
                "GET /{version}/{}",
                paths[i]
                    .trim_start_matches('/')
                    .split('?')
                    .next()
                    .unwrap_or("")
            )
        };
        let mut results: Vec<Option<Result<RawPage, HttpError>>> = vec![None; paths.len()];
        let mut pending: Vec<usize> = (0..paths.len()).collect();
        // Per request: answers that failed other than by throttling.
        let mut failures: Vec<u32> = vec![0; paths.len()];
        let mut round = 0u32;
        while !pending.is_empty() {
            round += 1;
            let sub_paths: Vec<String> = pending.iter().map(|&i| paths[i].clone()).collect();
            self.metrics
                .batched
                .fetch_add(sub_paths.len() as u64, Ordering::Relaxed);
            let answer = self
                .send_inner(
                    &Outgoing::GraphBatch {
                        version,
                        paths: &sub_paths,
                    },
                    BatchAnswer::scan,
                    None,
                    Priority::Normal,
                    None,
                    waited,
                )
                .await;
            let mut answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    for i in pending {
                        results[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            };
            let mut again = Vec::new();
            let mut wait = Duration::ZERO;
            let mut cause = String::new();
            // A request that failed other than by throttling is asked
            // again up to `error_attempts` times in all.
            let max = self.opts.error_attempts;
            let retry =
                |i: usize,
                 error: HttpError,
                 again: &mut Vec<usize>,
                 failures: &mut [u32],
                 results: &mut [Option<Result<RawPage, HttpError>>]| {
                    failures[i] += 1;
                    if failures[i] >= max {
                        results[i] = Some(Err(error));
                    } else {
                        again.push(i);
                    }
                };
            // Sub-answers say how near Graph's limit is, too.
            for sub in &answer.subs {
                if let Some(p) = &sub.throttle_percentage {
                    self.pacing.limit_percentage(p);
                }
            }
            for (pos, &i) in pending.iter().enumerate() {
                let endpoint = endpoint_of(i);
                let id = pos.to_string();
                let Some(at) = answer
                    .subs
                    .iter()
                    .position(|r| r.id.as_deref() == Some(id.as_str()))
                else {
                    cause = "no answer in the $batch answer".into();
                    let e = HttpError::Transport {
                        endpoint,
                        cause: "the $batch answer had no answer for it in every attempt".into(),
                    };
                    retry(i, e, &mut again, &mut failures, &mut results);
                    continue;
                };
                let status = answer.subs[at].status;
                match status {
                    200..=299 => match answer.take_page(at) {
                        Ok(page) => results[i] = Some(Ok(page)),
                        Err(why) => {
                            tracing::debug!(%endpoint, %why, "a $batch sub-answer is not a page");
                            cause = format!("HTTP {status} with {why}");
                            let e = HttpError::Malformed {
                                endpoint,
                                cause: format!("HTTP {status} with {why}, in every attempt"),
                            };
                            retry(i, e, &mut again, &mut failures, &mut results);
                        }
                    },
                    429 | 503 => {
                        self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
                        let sub = &answer.subs[at];
                        let ra = sub.retry_after.as_deref().and_then(parse_retry_after);
                        wait = wait.max(ra.unwrap_or_default());
                        cause = format!("HTTP {status}");
                        if round >= self.opts.throttle_attempts {
                            results[i] = Some(Err(HttpError::Throttled {
                                endpoint,
                                attempts: round,
                            }));
                        } else {
                            again.push(i);
                        }
                    }
                    500 | 502 | 504 | 401 => {
                        if status == 401 {
                            if let Ok(t) = self.token(Api::Graph).await {
                                self.invalidate(Api::Graph, &t).await;
                            }
                        }
                        cause = format!("HTTP {status}");
                        let e = HttpError::Status {
                            endpoint,
                            status,
                            code: None,
                            message: "failed in every attempt".into(),
                        };
                        retry(i, e, &mut again, &mut failures, &mut results);
                    }
                    _ => {
                        let sub = &answer.subs[at];
                        let (code, message) = error_of(answer.body_value(sub).as_ref());
                        results[i] = Some(Err(if status == 403 {
                            HttpError::Forbidden {
                                api: Api::Graph.name(),
                                endpoint,
                                code,
                                message,
                            }
                        } else {
                            HttpError::Status {
                                endpoint,
                                status,
                                code,
                                message,
                            }
                        }));
                    }
                }
            }
            pending = again;
            if !pending.is_empty() {
                self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                let w = if wait.is_zero() {
                    backoff(self.opts.backoff, round)
                } else {
                    wait
                };
                let batch = format!("POST /{version}/$batch");
                if let Err(e) = self.take_wait(&batch, w, &cause, waited) {
                    for &i in &pending {
                        results[i] = Some(Err(match &e {
                            HttpError::WaitedTooLong {
                                asked,
                                waited,
                                limit,
                                ..
                            } => HttpError::WaitedTooLong {
                                endpoint: endpoint_of(i),
                                asked: *asked,
                                waited: *waited,
                                limit: *limit,
                            },
                            other => other.clone(),
                        }));
                    }
                    break;
                }
                tokio::time::sleep(w).await;
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(HttpError::Transport {
                        endpoint: format!("POST /{version}/$batch"),
                        cause: "no answer for a batched request".into(),
                    })
                })
            })
            .collect()
    }

    /// Many collections at once: first pages through `$batch`, the rest by
    /// following next links. `on_page(index, items)` for each page. The
    /// collections share one allowance of waiting (`HttpOptions::max_wait`).
    pub async fn batch_pages(
        self: &Arc<Self>,
        version: &str,
        paths: &[String],
        on_page: impl Fn(usize, Vec<Record<'_>>),
    ) -> Vec<Result<usize, HttpError>> {
        let waited = Arc::new(Waited::default());
        let firsts = self.graph_batch_waiting(version, paths, &waited).await;
        let base = self.auth.endpoints.graph.clone();
        let follows = firsts.into_iter().enumerate().map(|(i, first)| {
            let on_page = &on_page;
            let url = join(
                &base,
                &format!("/{version}/{}", paths[i].trim_start_matches('/')),
            );
            let waited = Arc::clone(&waited);
            async move {
                let page = first?;
                self.follow(Api::Graph, url, page, waited, &mut |items| {
                    on_page(i, items)
                })
                .await
            }
        });
        futures::future::join_all(follows).await
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

    /// An Azure Resource Graph query over some subscriptions, paged by
    /// `$skipToken`; a token that comes back again is a loop
    /// (`HttpError::PageLoop`), and pages past `MAX_PAGES` are refused.
    pub async fn resource_graph(
        &self,
        subscriptions: &[String],
        query: &str,
        mut on_page: impl FnMut(Vec<Record<'_>>),
    ) -> Result<usize, HttpError> {
        let endpoint = self.endpoint_name(&Outgoing::ResourceGraph { body: &Value::Null });
        let waited = Waited::default();
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        let mut skip: Option<String> = None;
        let mut total = 0;
        for number in 1.. {
            if number > self.opts.max_pages {
                return Err(HttpError::TooManyPages {
                    endpoint,
                    limit: self.opts.max_pages,
                });
            }
            let mut options = json!({"$top": 1000, "resultFormat": "objectArray"});
            if let Some(s) = &skip {
                options["$skipToken"] = json!(s);
            }
            let body = json!({"subscriptions": subscriptions, "query": query, "options": options});
            // Rows read in place, as collection pages are: a row's text
            // becomes its properties without a `Value` made and written
            // out again.
            let page = self
                .send_inner(
                    &Outgoing::ResourceGraph { body: &body },
                    RawPage::scan_resource_graph,
                    None,
                    Priority::Normal,
                    None,
                    &waited,
                )
                .await?;
            let records = page.records();
            total += records.len();
            on_page(records);
            match page.next {
                Some(s) => {
                    if let Some(&again) = seen.get(&s) {
                        return Err(HttpError::PageLoop {
                            endpoint,
                            pages: number,
                            again: again + 1,
                        });
                    }
                    seen.insert(s.clone(), number);
                    skip = Some(s);
                }
                None => return Ok(total),
            }
        }
        Ok(total)
    }
}

impl Http {
    /// Every row of an Intune report whose rows `filter` picks, with the
    /// `select`ed columns, page by page (`skip` and `top`) until
    /// `TotalRowCount` rows came or a page is empty. `on_page` sees each
    /// page. A page is asked again after a throttle or a failure like any
    /// request; the pages of a report share one allowance of waiting.
    pub async fn report_rows(
        &self,
        report: crate::fetch::report::IntuneReport,
        filter: &str,
        select: &[&str],
        mut on_page: impl FnMut(&crate::fetch::report::ReportPage),
    ) -> Result<usize, HttpError> {
        /// Rows asked for a page; the service may answer fewer, and the
        /// next page starts after what came.
        const TOP: usize = 1000;
        let waited = Waited::default();
        let mut query = crate::fetch::report::ReportQuery {
            filter: filter.to_string(),
            select: select.iter().map(|c| c.to_string()).collect(),
            // A stable order, so pages by skip/top neither repeat nor miss
            // rows.
            order_by: select
                .first()
                .map(|c| vec![c.to_string()])
                .unwrap_or_default(),
            skip: 0,
            top: TOP,
        };
        for _ in 0..self.opts.max_pages {
            let page = self
                .send_inner(
                    &Outgoing::IntuneReport {
                        report,
                        query: &query,
                    },
                    crate::fetch::report::ReportPage::parse,
                    None,
                    Priority::Normal,
                    None,
                    &waited,
                )
                .await?;
            on_page(&page);
            query.skip += page.rows.len();
            match page.total {
                Some(total) if query.skip >= total => return Ok(query.skip),
                // An empty page before the total: rows are missing.
                Some(total) if page.rows.is_empty() => {
                    return Err(HttpError::Malformed {
                        endpoint: format!("POST {}", report.path()),
                        cause: format!(
                            "the report says {total} rows but ended after {}",
                            query.skip
                        ),
                    });
                }
                None if page.rows.is_empty() => return Ok(query.skip),
                _ => {}
            }
        }
        Err(HttpError::TooManyPages {
            endpoint: format!("POST {}", report.path()),
            limit: self.opts.max_pages,
        })
    }
}

/// The error for retries that ran out, with the last cause seen.
fn exhausted(endpoint: &str, cause: String) -> HttpError {
    match cause.strip_prefix(MALFORMED) {
        Some(c) => HttpError::Malformed {
            endpoint: endpoint.to_string(),
            cause: c.to_string(),
        },
        None => HttpError::Transport {
            endpoint: endpoint.to_string(),
            cause,
        },
    }
}

const MALFORMED: &str = "malformed: ";

fn describe(e: &reqwest::Error) -> String {
    // reqwest's Display can include the URL; keep only the cause chain.
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// `code` and `message` of a Graph/Defender/ARM error body.
fn error_of(body: Option<&Value>) -> (Option<String>, String) {
    let err = body.map(|b| &b["error"]);
    let code = err.and_then(|e| e["code"].as_str()).map(String::from);
    let message = err
        .and_then(|e| e["message"].as_str())
        .map(String::from)
        .unwrap_or_else(|| "no error message".into());
    (code, message)
}

/// A `$batch` answer, scanned in one pass (`scan::batch`): each
/// sub-response's id, status, `Retry-After`, where its body is and, for a
/// body that is an object, its page's records.
struct BatchAnswer {
    body: bytes::Bytes,
    subs: Vec<crate::fetch::scan::SubScan>,
}

impl BatchAnswer {
    fn scan(body: bytes::Bytes) -> Result<BatchAnswer, serde_json::Error> {
        let subs = crate::fetch::scan::batch(&body).map_err(serde::de::Error::custom)?;
        Ok(BatchAnswer { body, subs })
    }

    /// A successful sub-response's collection page, taken out of the
    /// answer; why not when its body is not one. Graph writes a body whose
    /// content type is not JSON as a base64 string (the OData JSON batch
    /// format says so, and Graph's SDKs decode such bodies when they are
    /// not JSON); a string that decodes to a page is read as that page.
    fn take_page(&mut self, at: usize) -> Result<RawPage, String> {
        let Some(sub) = self.subs.get_mut(at) else {
            return Err("no answer".into());
        };
        if let Some(scan) = sub.page.take() {
            if scan.has_items {
                return Ok(RawPage::scanned(
                    self.body.clone(),
                    scan,
                    crate::fetch::scan::COLLECTION,
                ));
            }
            let v = sub
                .body
                .clone()
                .and_then(|r| serde_json::from_slice::<Value>(&self.body[r]).ok());
            return Err(match v.as_ref().and_then(|v| v.get("error")) {
                Some(_) => {
                    let (code, message) = error_of(v.as_ref());
                    format!(
                        "an error body ({}{message})",
                        code.map(|c| format!("{c}: ")).unwrap_or_default()
                    )
                }
                None => {
                    crate::fetch::scan::missing_items(crate::fetch::scan::COLLECTION).to_string()
                }
            });
        }
        let Some(range) = sub.body.clone() else {
            if sub.status == 204 {
                return Ok(RawPage::default());
            }
            return Err("no body".into());
        };
        match serde_json::from_slice::<Value>(&self.body[range]) {
            Ok(Value::String(text)) => base64_page(&text),
            Ok(Value::Null) => Err("a null body".into()),
            Ok(Value::Array(_)) => Err("an array for a body".into()),
            Ok(_) => Err("a body that is not a page".into()),
            Err(e) => Err(format!("a body that is not JSON ({e})")),
        }
    }

    fn body_value(&self, sub: &crate::fetch::scan::SubScan) -> Option<Value> {
        let r = sub.body.clone()?;
        serde_json::from_slice(&self.body[r]).ok()
    }
}

/// A `$batch` body sent as a base64 string: the page it encodes.
fn base64_page(text: &str) -> Result<RawPage, String> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let decoded = [
        GeneralPurpose::new(&base64::alphabet::STANDARD, lenient),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient),
    ]
    .iter()
    .find_map(|engine| engine.decode(text.trim()).ok());
    match decoded {
        Some(bytes) => RawPage::scan(bytes::Bytes::from(bytes))
            .map_err(|e| format!("a base64 body that is not a page ({e})")),
        None => Err("a string body that is neither a page nor base64".into()),
    }
}

/// `Retry-After`: whole or fractional seconds, or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(secs) = v.parse::<f64>() {
        // Kept as asked (what tenx does with a long wait is its own
        // decision, `HttpOptions::max_wait`), within what a Duration holds.
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(f64::from(u32::MAX))));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// Exponential backoff with jitter: base × 2^(try−1), ±50 %, capped at 30 s.
fn backoff(base: Duration, tries: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << tries.saturating_sub(1).min(8));
    let jitter = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(tries);
        (h.finish() % 1000) as f64 / 1000.0
    };
    exp.mul_f64(0.5 + jitter).min(Duration::from_secs(30))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_that_overlap_count_once_against_the_allowance() {
        let limit = Duration::from_secs(300);
        let w = Waited::default();
        // Twenty requests told at once to wait 20 s have waited 20 s.
        for _ in 0..20 {
            w.take(Duration::from_secs(20), limit).expect("within");
        }
        let covered = w.0.lock().expect("lock").covered;
        assert!(covered < Duration::from_secs(21), "{covered:?}");
        // What would pass the allowance is refused, with what was covered.
        let so_far = w
            .take(Duration::from_secs(330), limit)
            .expect_err("past the allowance");
        assert!(so_far < Duration::from_secs(21), "{so_far:?}");
        // Waits one after the other add up.
        let t = std::time::Instant::now();
        let span = WaitSpan {
            covered: Duration::from_secs(10),
            until: Some(t + Duration::from_secs(10)),
        };
        assert_eq!(
            span.added(t + Duration::from_secs(15), Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        assert_eq!(
            span.added(t + Duration::from_secs(5), Duration::from_secs(10)),
            Duration::from_secs(5)
        );
    }

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

    /// A loopback server of paged collections: `/v1.0/things?page=N` has
    /// two items and links to page N+1 up to page 5; `/v1.0/leak` links to
    /// another host.
    async fn paging_server() -> url::Url {
        use axum::extract::{Query, Request};
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let app = axum::Router::new().fallback(
            move |Query(q): Query<std::collections::HashMap<String, String>>, req: Request| async move {
                let path = req.uri().path().to_string();
                let body = if req.method() == axum::http::Method::POST {
                    json!({"access_token": "x", "expires_in": 3600, "token_type": "Bearer"})
                } else if path == "/v1.0/leak" {
                    json!({"value": [{"id": "l"}], "@odata.nextLink": "http://127.0.0.2:9/v1.0/leak?page=2"})
                } else {
                    let n: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    let mut page = json!({"value": [{"id": format!("{n}-0")}, {"id": format!("{n}-1")}]});
                    if n < 5 {
                        page["@odata.nextLink"] =
                            json!(format!("http://{addr}/v1.0/things?page={}", n + 1));
                    }
                    page
                };
                axum::Json(body).into_response()
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        url::Url::parse(&format!("http://{addr}")).expect("url")
    }

    /// A loopback server that issues tokens `t1`, `t2`, … and answers
    /// `GET /v1.0/x` with the scripted statuses in turn (then 200); a 429
    /// carries `Retry-After: {retry_after}`. It counts token requests.
    async fn scripted_server(
        script: Vec<u16>,
        retry_after: &'static str,
    ) -> (url::Url, Arc<std::sync::atomic::AtomicUsize>) {
        use axum::extract::Request;
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let tokens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let issued = tokens.clone();
        let script = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
            script,
        )));
        let app = axum::Router::new().fallback(move |req: Request| {
            let issued = issued.clone();
            let script = script.clone();
            async move {
                if req.method() == axum::http::Method::POST {
                    let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                    let body = json!({"access_token": format!("t{n}"), "expires_in": 3600, "token_type": "Bearer"});
                    return axum::Json(body).into_response();
                }
                let status = script.lock().expect("script").pop_front().unwrap_or(200);
                let code = axum::http::StatusCode::from_u16(status).expect("status");
                let mut r = (code, axum::Json(json!({"value": [{"id": "a"}]}))).into_response();
                if status == 429 {
                    r.headers_mut().insert(
                        "retry-after",
                        axum::http::HeaderValue::from_static(retry_after),
                    );
                }
                r
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (
            url::Url::parse(&format!("http://{addr}")).expect("url"),
            tokens,
        )
    }

    #[tokio::test]
    async fn a_renewed_token_that_ages_out_during_a_throttle_is_renewed_again() {
        let (base, tokens) = scripted_server(vec![401, 429, 401], "0.01").await;
        let http = client_of(base);
        let v = http.get(Api::Graph, "/v1.0/x").await.expect("answered");
        assert_eq!(v["value"][0]["id"], "a");
        assert_eq!(tokens.load(Ordering::SeqCst), 3, "a token per refusal");
    }

    #[tokio::test]
    async fn two_refusals_in_a_row_mean_the_token_is_refused() {
        let (base, _) = scripted_server(vec![401, 401], "0.01").await;
        let err = client_of(base)
            .get(Api::Graph, "/v1.0/x")
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, HttpError::Status { status: 401, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_rate_limit_beyond_patience_answers_at_once() {
        let (base, _) = scripted_server(vec![429], "60").await;
        let http = client_of(base.clone());
        let t = std::time::Instant::now();
        let err = http
            .get_pages_within(Api::Graph, "/v1.0/x", Some(Duration::from_secs(5)), |_| {})
            .await
            .expect_err("rate limited");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(
            matches!(&err, HttpError::RateLimited { retry_after, .. } if *retry_after == Duration::from_secs(60)),
            "{err:?}"
        );
        assert!(err.to_string().contains("wait 60 s"), "{err}");
        // Within patience, the same answer is waited out.
        let (base, _) = scripted_server(vec![429], "0.05").await;
        let n = client_of(base)
            .get_pages_within(Api::Graph, "/v1.0/x", Some(Duration::from_secs(5)), |_| {})
            .await
            .expect("waited and read");
        assert_eq!(n, 1);
    }

    fn client_of(base: url::Url) -> Arc<Http> {
        let mut endpoints =
            crate::auth::endpoints::Endpoints::for_cloud(crate::auth::endpoints::Cloud::Public);
        endpoints.login = base.clone();
        endpoints.graph = base;
        let auth = Auth::new(
            crate::auth::Credentials {
                tenant: "t".into(),
                client_id: "c".into(),
                secret: crate::auth::secret::Secret::new("s"),
            },
            endpoints,
        );
        Arc::new(Http::new(Arc::new(auth), HttpOptions::default()).expect("client"))
    }

    /// Reads every page from `path`: the outcome and the records' ids in the
    /// order they were handed over.
    async fn ids_from(path: &str) -> (Result<usize, HttpError>, Vec<String>) {
        let http = client_of(paging_server().await);
        let mut ids = Vec::new();
        let r = http
            .get_pages(Api::Graph, path, |records| {
                ids.extend(records.iter().filter_map(|r| r.str("id").map(String::from)));
            })
            .await;
        (r, ids)
    }

    #[tokio::test]
    async fn a_chain_of_pages_arrives_whole_and_in_order() {
        let (r, ids) = ids_from("/v1.0/things?page=1").await;
        let n = r.expect("pages");
        assert_eq!(n, 10);
        let want: Vec<String> = (1..=5)
            .flat_map(|p| [format!("{p}-0"), format!("{p}-1")])
            .collect();
        assert_eq!(ids, want);
    }

    /// A loopback server whose pages `/v1.0/slow?page=N` (N = 1..3) send
    /// their head with the next link at once and their records 300 ms
    /// later; it logs when each page is asked for and when it ends.
    async fn slow_paging_server() -> (url::Url, Arc<std::sync::Mutex<Vec<String>>>) {
        use axum::extract::{Query, Request};
        use axum::response::IntoResponse;
        use futures::StreamExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = log.clone();
        let app = axum::Router::new().fallback(
            move |Query(q): Query<std::collections::HashMap<String, String>>, req: Request| {
                let log = seen.clone();
                async move {
                    if req.method() == axum::http::Method::POST {
                        let token = json!({"access_token": "x", "expires_in": 3600, "token_type": "Bearer"});
                        return axum::Json(token).into_response();
                    }
                    let n: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    log.lock().expect("log").push(format!("ask {n}"));
                    let head = if n < 3 {
                        format!(r#"{{"@odata.nextLink":"http://{addr}/v1.0/slow?page={}","value":["#, n + 1)
                    } else {
                        r#"{"value":["#.to_string()
                    };
                    let tail = format!(r#"{{"id":"{n}"}}]}}"#);
                    let parts = futures::stream::iter([(false, head), (true, tail)]).then(
                        move |(last, text)| {
                            let log = log.clone();
                            async move {
                                if last {
                                    tokio::time::sleep(Duration::from_millis(300)).await;
                                    log.lock().expect("log").push(format!("end {n}"));
                                }
                                Ok::<_, std::io::Error>(bytes::Bytes::from(text))
                            }
                        },
                    );
                    (
                        [("content-type", "application/json")],
                        axum::body::Body::from_stream(parts),
                    )
                        .into_response()
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (
            url::Url::parse(&format!("http://{addr}")).expect("url"),
            log,
        )
    }

    #[tokio::test]
    async fn the_next_page_is_asked_for_as_soon_as_a_page_names_it() {
        let (base, log) = slow_paging_server().await;
        let http = client_of(base);
        let mut ids = Vec::new();
        let n = http
            .get_pages(Api::Graph, "/v1.0/slow?page=1", |records| {
                ids.extend(records.iter().filter_map(|r| r.str("id").map(String::from)));
            })
            .await
            .expect("pages");
        assert_eq!((n, ids), (3, vec!["1".into(), "2".into(), "3".into()]));
        let log = log.lock().expect("log").clone();
        let at = |e: &str| log.iter().position(|l| l == e).expect(e);
        // Page 3 is asked for while page 2 is still arriving. (Page 1 is
        // the first page, read whole before the chain starts from its link.)
        assert!(
            at("ask 3") < at("end 2"),
            "page 3 waited for page 2: {log:?}"
        );
    }

    #[tokio::test]
    async fn a_next_link_to_another_host_is_refused_after_its_page() {
        let (r, ids) = ids_from("/v1.0/leak").await;
        let err = r.expect_err("a foreign next link");
        assert!(matches!(err, HttpError::ForeignLink { .. }), "{err:?}");
        assert_eq!(ids, ["l"], "the page that named the link is still read");
    }

    fn client_with(base: url::Url, opts: HttpOptions) -> Arc<Http> {
        let mut endpoints =
            crate::auth::endpoints::Endpoints::for_cloud(crate::auth::endpoints::Cloud::Public);
        endpoints.login = base.clone();
        endpoints.graph = base.clone();
        endpoints.arm = base;
        let auth = Auth::new(
            crate::auth::Credentials {
                tenant: "t".into(),
                client_id: "c".into(),
                secret: crate::auth::secret::Secret::new("s"),
            },
            endpoints,
        );
        Arc::new(Http::new(Arc::new(auth), opts).expect("client"))
    }

    /// A loopback server of hostile answers: `$batch` sub-answers by path
    /// (`/ok`, `/b64`, `/null`, `/error`, `/valuenull`, `/flaky`: null the
    /// first time), pages whose last links back (`/v1.0/loop`), pages that
    /// never end with new links (`/v1.0/endless`), a page of 2 MB
    /// (`/v1.0/big`, and `/v1.0/bigstream` without a length), and Resource
    /// Graph answers whose `$skipToken` never changes.
    async fn hostile_server() -> url::Url {
        use axum::extract::{Query, Request};
        use axum::response::IntoResponse;
        use base64::Engine;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let flaky = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = axum::Router::new().fallback(
            move |Query(q): Query<std::collections::HashMap<String, String>>, req: Request| {
                let flaky = flaky.clone();
                async move {
                    let path = req.uri().path().to_string();
                    let page = json!({"value": [{"id": "a"}]});
                    if req.method() == axum::http::Method::POST && path.ends_with("/token") {
                        let t = json!({"access_token": "x", "expires_in": 3600, "token_type": "Bearer"});
                        return axum::Json(t).into_response();
                    }
                    if path == "/v1.0/$batch" {
                        let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                            .await
                            .unwrap_or_default();
                        let asked: Value = serde_json::from_slice(&body).unwrap_or_default();
                        let subs: Vec<Value> = asked["requests"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|r| {
                                let url = r["url"].as_str().unwrap_or("");
                                let body = match url {
                                    "/ok" => page.clone(),
                                    "/b64" => json!(base64::engine::general_purpose::STANDARD.encode(page.to_string())),
                                    "/null" => Value::Null,
                                    "/error" => json!({"error": {"code": "generalException", "message": "General exception while processing"}}),
                                    "/valuenull" => json!({"value": null}),
                                    _ if flaky.fetch_add(1, Ordering::SeqCst) == 0 => Value::Null,
                                    _ => page.clone(),
                                };
                                json!({"id": r["id"], "status": 200, "body": body})
                            })
                            .collect();
                        return axum::Json(json!({"responses": subs})).into_response();
                    }
                    if path.ends_with("/resources") {
                        return axum::Json(json!({"data": [{"id": "r"}], "$skipToken": "same"}))
                            .into_response();
                    }
                    let n: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    match path.as_str() {
                        "/v1.0/loop" => {
                            let next = if n < 3 { n + 1 } else { 1 };
                            let v = json!({"value": [{"id": format!("{n}")}], "@odata.nextLink": format!("http://{addr}/v1.0/loop?page={next}")});
                            axum::Json(v).into_response()
                        }
                        "/v1.0/endless" => {
                            let v = json!({"value": [{"id": format!("{n}")}], "@odata.nextLink": format!("http://{addr}/v1.0/endless?page={}", n + 1)});
                            axum::Json(v).into_response()
                        }
                        "/v1.0/big" => {
                            let v = json!({"value": [{"id": "a", "pad": "x".repeat(2 << 20)}]});
                            axum::Json(v).into_response()
                        }
                        _ => {
                            let v = json!({"value": [{"id": "a", "pad": "x".repeat(2 << 20)}]}).to_string();
                            let parts = futures::stream::iter(
                                v.into_bytes()
                                    .chunks(64 << 10)
                                    .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                                    .collect::<Vec<_>>(),
                            );
                            axum::body::Body::from_stream(parts).into_response()
                        }
                    }
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        url::Url::parse(&format!("http://{addr}")).expect("url")
    }

    #[tokio::test]
    async fn batch_sub_answers_that_are_not_pages_are_asked_again_then_fail() {
        let base = hostile_server().await;
        let http = client_with(
            base,
            HttpOptions {
                backoff: Duration::from_millis(1),
                ..Default::default()
            },
        );
        let paths: Vec<String> = ["/ok", "/b64", "/null", "/error", "/valuenull", "/flaky"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        let got = http.graph_batch("v1.0", &paths).await;
        let ids = |r: &Result<RawPage, HttpError>| -> Vec<String> {
            r.as_ref()
                .map(|p| {
                    p.records()
                        .iter()
                        .filter_map(|r| r.str("id").map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(ids(&got[0]), ["a"]);
        assert_eq!(ids(&got[1]), ["a"], "a base64 body is the page it encodes");
        for (i, why) in [
            (2, "a null body"),
            (
                3,
                "an error body (generalException: General exception while processing)",
            ),
            (4, "without a `value` array"),
        ] {
            let e = got[i].as_ref().expect_err("not a page");
            assert!(
                matches!(e, HttpError::Malformed { .. }) && e.to_string().contains(why),
                "{e}"
            );
            assert!(
                e.to_string().contains(&format!("GET /v1.0{}", paths[i])),
                "{e}"
            );
        }
        assert_eq!(ids(&got[5]), ["a"], "asked again, and read");
    }

    #[tokio::test]
    async fn a_next_link_back_to_a_page_read_ends_the_collection_with_a_loop() {
        let http = client_of(hostile_server().await);
        let mut ids = Vec::new();
        let e = http
            .get_pages(Api::Graph, "/v1.0/loop?page=1", |records| {
                ids.extend(records.iter().filter_map(|r| r.str("id").map(String::from)));
            })
            .await
            .expect_err("a loop");
        assert!(
            matches!(
                e,
                HttpError::PageLoop {
                    pages: 3,
                    again: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(ids, ["1", "2", "3"], "each page once");
        assert!(e.to_string().contains("back to page 1"), "{e}");
    }

    #[tokio::test]
    async fn a_collection_past_the_page_limit_ends_with_an_error() {
        let base = hostile_server().await;
        let http = client_with(
            base,
            HttpOptions {
                max_pages: 5,
                ..Default::default()
            },
        );
        let mut n = 0;
        let e = http
            .get_pages(Api::Graph, "/v1.0/endless?page=1", |records| {
                n += records.len()
            })
            .await
            .expect_err("too many pages");
        assert!(
            matches!(e, HttpError::TooManyPages { limit: 5, .. }),
            "{e:?}"
        );
        assert_eq!(n, 5);
    }

    #[tokio::test]
    async fn a_skip_token_that_repeats_ends_resource_graph_with_a_loop() {
        let http = client_with(hostile_server().await, HttpOptions::default());
        let e = http
            .resource_graph(&["s".into()], "Resources", |_| {})
            .await
            .expect_err("a loop");
        assert!(
            matches!(
                e,
                HttpError::PageLoop {
                    pages: 2,
                    again: 2,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn an_answer_larger_than_the_limit_fails_without_being_held() {
        let base = hostile_server().await;
        let http = client_with(
            base,
            HttpOptions {
                max_body: 1 << 20,
                ..Default::default()
            },
        );
        for path in ["/v1.0/big", "/v1.0/bigstream"] {
            let e = http
                .get_pages(Api::Graph, path, |_| {})
                .await
                .expect_err("too large");
            assert!(matches!(e, HttpError::TooLarge { .. }), "{path}: {e:?}");
            assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_wait_longer_than_a_collection_may_wait_gives_up_at_once() {
        let (base, _) = scripted_server(vec![429], "999999").await;
        let t = std::time::Instant::now();
        let e = client_of(base)
            .get_pages(Api::Graph, "/v1.0/x", |_| {})
            .await
            .expect_err("given up");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(matches!(e, HttpError::WaitedTooLong { .. }), "{e:?}");
        assert!(e.to_string().contains("asks to wait 999999 s"), "{e}");
        // Waits add up: a second wait past the allowance gives up too.
        let (base, _) = scripted_server(vec![429, 429], "0.6").await;
        let http = client_with(
            base,
            HttpOptions {
                max_wait: Duration::from_secs(1),
                ..Default::default()
            },
        );
        let e = http
            .get_pages(Api::Graph, "/v1.0/x", |_| {})
            .await
            .expect_err("given up");
        assert!(matches!(e, HttpError::WaitedTooLong { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn a_wait_of_a_second_or_more_is_told_while_it_lasts() {
        let (base, _) = scripted_server(vec![429], "1").await;
        let http = client_of(base);
        let mut waits = http.watch_waits();
        let n = http
            .get_pages(Api::Graph, "/v1.0/x", |_| {})
            .await
            .expect("read after the wait");
        assert_eq!(n, 1);
        let w = waits.try_recv().expect("the wait was told");
        assert_eq!(
            (w.endpoint.as_str(), w.wait, w.cause.as_str()),
            ("GET /v1.0/x", Duration::from_secs(1), "HTTP 429")
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

    #[test]
    fn retry_after_takes_seconds_fractions_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_retry_after(""), None);
        assert_eq!(parse_retry_after("soon"), None);
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(5));
        let d = parse_retry_after(&date).expect("date");
        assert!(
            d <= Duration::from_secs(5) && d >= Duration::from_secs(3),
            "{d:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let b = Duration::from_millis(100);
        let first = backoff(b, 1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(150));
        let fourth = backoff(b, 4);
        assert!(fourth >= Duration::from_millis(400) && fourth <= Duration::from_millis(1200));
        assert!(backoff(b, 30) <= Duration::from_secs(30));
    }
}
