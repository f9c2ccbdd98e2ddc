//! The retry policy every request follows, sent alone or inside a `$batch`:
//! which misses are asked again (`Trouble`), how often (`Attempts` against
//! `RetryPolicy`: throttles and failures counted apart, a refused token
//! renewed once in a row), how long to wait first (what the service asked —
//! `Retry-After` in seconds, fractions or an HTTP date, or Resource Graph's
//! `x-ms-user-quota-resets-after` — else exponential backoff with jitter),
//! and the allowance of waiting a collection's requests share (`Waited`).

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderMap;

use super::client::{Http, HttpOptions};
use super::error::HttpError;

/// Why an attempt did not bring its answer.
#[derive(Debug)]
pub(super) enum Miss {
    /// Asking again may mend it; `asked` is the wait the service asked
    /// for (zero when it did not say).
    Trouble { trouble: Trouble, asked: Duration },
    /// The bearer token was refused (401): a renewed one may pass.
    TokenRefused,
    /// The answer came, and it is an error.
    Fail(HttpError),
}

/// A miss that asking again may mend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Trouble {
    /// 429 or 503: the service's limit is reached.
    Throttled { status: u16 },
    /// A server error of a request on its own: 500, 502 or 504 (any 5xx
    /// of the token endpoint).
    ServerError { status: u16 },
    /// The request could not be sent, or had no answer in time.
    Unsent(String),
    /// The connection broke while the answer arrived.
    Broke(String),
    /// A successful answer whose body could not be read.
    Malformed(String),
    /// A `$batch` answer without a sub-answer for the request.
    NoSubAnswer,
    /// A `$batch` sub-answer that failed (500, 502, 504) or whose token had
    /// expired (401).
    SubFailed { status: u16 },
    /// A successful `$batch` sub-answer whose body is not a page.
    NotAPage { status: u16, why: String },
}

impl Trouble {
    /// Whether this is the service's limit (counted against
    /// `HttpOptions::throttle_attempts`) rather than a failure (against
    /// `error_attempts`).
    pub(super) fn throttled(&self) -> bool {
        matches!(self, Trouble::Throttled { .. })
    }

    /// The error once asking again no longer helps, after `attempts`
    /// attempts missed this way.
    fn exhausted(self, endpoint: &str, attempts: u32) -> HttpError {
        let endpoint = endpoint.to_string();
        match self {
            Trouble::Throttled { .. } => HttpError::Throttled { endpoint, attempts },
            Trouble::Malformed(cause) => HttpError::Malformed { endpoint, cause },
            Trouble::NotAPage { status, why } => HttpError::Malformed {
                endpoint,
                cause: format!("HTTP {status} with {why}, in every attempt"),
            },
            Trouble::SubFailed { status } => HttpError::Status {
                endpoint,
                status,
                code: None,
                message: "failed in every attempt".into(),
            },
            Trouble::NoSubAnswer => HttpError::Transport {
                endpoint,
                cause: "the $batch answer had no answer for it in every attempt".into(),
            },
            t @ (Trouble::ServerError { .. } | Trouble::Unsent(_) | Trouble::Broke(_)) => {
                HttpError::Transport {
                    endpoint,
                    cause: t.to_string(),
                }
            }
        }
    }
}

/// The cause, as a wait tells it (`WaitNotice::cause`).
impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trouble::Throttled { status }
            | Trouble::ServerError { status }
            | Trouble::SubFailed { status } => write!(f, "HTTP {status}"),
            Trouble::Unsent(why) => write!(f, "connection failed: {why}"),
            Trouble::Broke(why) => write!(f, "the connection broke mid-answer: {why}"),
            Trouble::Malformed(why) => write!(f, "malformed: {why}"),
            Trouble::NoSubAnswer => f.write_str("no answer in the $batch answer"),
            Trouble::NotAPage { status, why } => write!(f, "HTTP {status} with {why}"),
        }
    }
}

/// How often a request is asked again, and how long it waits first.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy {
    throttle_attempts: u32,
    error_attempts: u32,
    backoff: Duration,
    /// A throttle that asks for a longer wait than this is the answer
    /// (`HttpError::RateLimited`), not a delay.
    patience: Option<Duration>,
}

impl RetryPolicy {
    pub(super) fn new(opts: &HttpOptions, patience: Option<Duration>) -> RetryPolicy {
        RetryPolicy {
            throttle_attempts: opts.throttle_attempts,
            error_attempts: opts.error_attempts,
            backoff: opts.backoff,
            patience,
        }
    }

    /// The wait before attempt `tries + 1`: what the service asked for, or
    /// when it did not say, the backoff.
    pub(super) fn wait(&self, asked: Duration, tries: u32) -> Duration {
        if asked.is_zero() {
            backoff(self.backoff, tries)
        } else {
            asked
        }
    }
}

/// What a request does after a miss.
#[derive(Debug)]
pub(super) enum Next {
    /// Asks again after `wait` (taken from the allowance first).
    Again { wait: Duration, trouble: Trouble },
    /// Asks again at once, with a renewed token.
    Renew,
    /// Stops: this error is the answer.
    Stop(HttpError),
}

/// One request's misses so far: throttled and failed attempts are counted
/// apart, each against its own limit of the `RetryPolicy`.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    throttled: u32,
    failed: u32,
    /// The last miss was a refused token, and the token was renewed.
    renewed: bool,
}

impl Attempts {
    /// What to do after `miss`. A refused token is renewed; refused again
    /// right after, the refusal is the answer. A throttle beyond the
    /// policy's patience is the answer at once; else a miss is asked again
    /// until its kind's attempts run out.
    pub(super) fn after(&mut self, policy: &RetryPolicy, miss: Miss, endpoint: &str) -> Next {
        let (trouble, asked) = match miss {
            Miss::Fail(e) => return Next::Stop(e),
            Miss::TokenRefused if self.renewed => {
                return Next::Stop(HttpError::Status {
                    endpoint: endpoint.to_string(),
                    status: 401,
                    code: None,
                    message: "the service refused a freshly issued token".into(),
                });
            }
            Miss::TokenRefused => {
                self.renewed = true;
                return Next::Renew;
            }
            Miss::Trouble { trouble, asked } => (trouble, asked),
        };
        // Only two refusals in a row mean the service refuses fresh tokens:
        // a renewed token may age out while this request waits out a
        // throttle, and then earns a renewal.
        self.renewed = false;
        let throttled = trouble.throttled();
        if let Some(p) = policy.patience.filter(|p| throttled && asked > *p) {
            tracing::debug!(%endpoint, ?asked, ?p, "rate limited beyond patience");
            return Next::Stop(HttpError::RateLimited {
                endpoint: endpoint.to_string(),
                retry_after: asked,
            });
        }
        let (tries, max) = if throttled {
            self.throttled += 1;
            (self.throttled, policy.throttle_attempts)
        } else {
            self.failed += 1;
            (self.failed, policy.error_attempts)
        };
        if tries >= max {
            return Next::Stop(trouble.exhausted(endpoint, tries));
        }
        Next::Again {
            wait: policy.wait(asked, tries),
            trouble,
        }
    }
}

/// A request waiting for a throttled or failing service before it tries
/// again, or held back while a service says its limit is near: shown while
/// a fetch runs, so a long wait is never silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitNotice {
    pub endpoint: String,
    pub wait: Duration,
    /// Why: `HTTP 429`, `HTTP 503`, a broken connection, a quota near its
    /// end, …
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
    until: Option<Instant>,
}

impl WaitSpan {
    /// What a wait of `d` starting `now` adds to the union.
    fn added(&self, now: Instant, d: Duration) -> Duration {
        let start = self.until.map_or(now, |u| u.max(now));
        (now + d).saturating_duration_since(start)
    }
}

/// A wait the allowance could not cover.
#[derive(Debug, Clone, Copy)]
pub(super) struct Overdrawn {
    asked: Duration,
    /// The time covered so far.
    waited: Duration,
    limit: Duration,
}

impl Overdrawn {
    /// The error of a request at `endpoint` that gives up for it.
    pub(super) fn at(self, endpoint: &str) -> HttpError {
        HttpError::WaitedTooLong {
            endpoint: endpoint.to_string(),
            asked: self.asked,
            waited: self.waited,
            limit: self.limit,
        }
    }
}

impl Waited {
    /// Takes a wait of `d` starting now, unless it would bring the time
    /// covered past `limit`.
    fn take(&self, d: Duration, limit: Duration) -> Result<(), Overdrawn> {
        let now = Instant::now();
        let Ok(mut span) = self.0.lock() else {
            return Ok(());
        };
        let added = span.added(now, d);
        if span.covered.saturating_add(added) > limit {
            return Err(Overdrawn {
                asked: d,
                waited: span.covered,
                limit,
            });
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

impl Http {
    /// Waits of a second or more from now on are told on the returned
    /// channel (the last caller's; a fetch watches its own).
    pub fn watch_waits(&self) -> tokio::sync::mpsc::UnboundedReceiver<WaitNotice> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut w) = self.waits.lock() {
            *w = Some(tx);
        }
        rx
    }

    /// Tells the watcher of a wait of a second or more. Called alone, for a
    /// wait the caller makes itself (pacing to a quota), it takes nothing
    /// out of any allowance.
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

    /// The retry policy of this client's options.
    pub(super) fn retry_policy(&self, patience: Option<Duration>) -> RetryPolicy {
        RetryPolicy::new(&self.opts, patience)
    }

    /// `Attempts::after`, and a throttle counted.
    pub(super) fn next_attempt(
        &self,
        attempts: &mut Attempts,
        policy: &RetryPolicy,
        miss: Miss,
        endpoint: &str,
    ) -> Next {
        if matches!(&miss, Miss::Trouble { trouble, .. } if trouble.throttled()) {
            self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
        }
        attempts.after(policy, miss, endpoint)
    }

    /// Waits before asking again: counted as a retry, taken out of the
    /// allowance and told (`pause`).
    pub(super) async fn wait_to_retry(
        &self,
        endpoint: &str,
        wait: Duration,
        cause: &Trouble,
        waited: &Waited,
    ) -> Result<(), Overdrawn> {
        self.metrics.retries.fetch_add(1, Ordering::Relaxed);
        self.pause(endpoint, wait, &cause.to_string(), waited).await
    }

    /// Waits `wait`, taken out of a collection's allowance first and told
    /// to the watcher; at once an error when the allowance cannot cover it.
    pub(super) async fn pause(
        &self,
        endpoint: &str,
        wait: Duration,
        cause: &str,
        waited: &Waited,
    ) -> Result<(), Overdrawn> {
        waited.take(wait, self.opts.max_wait)?;
        self.tell_wait(endpoint, wait, cause);
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// The wait a refusal asks for: `Retry-After`, or where Resource Graph
/// answers a spent quota without it, when the quota resets
/// (`x-ms-user-quota-resets-after`, Azure/azure-cli-extensions#3325).
pub(super) fn asked_wait(h: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    header("retry-after")
        .and_then(parse_retry_after)
        .or_else(|| {
            header("x-ms-user-quota-resets-after").and_then(crate::fetch::pace::parse_resets_after)
        })
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
        let over = w
            .take(Duration::from_secs(330), limit)
            .expect_err("past the allowance");
        assert!(over.waited < Duration::from_secs(21), "{over:?}");
        assert_eq!(over.asked, Duration::from_secs(330));
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

    fn policy(patience: Option<Duration>) -> RetryPolicy {
        RetryPolicy::new(
            &HttpOptions {
                throttle_attempts: 3,
                error_attempts: 2,
                ..Default::default()
            },
            patience,
        )
    }

    fn trouble(trouble: Trouble, asked: u64) -> Miss {
        Miss::Trouble {
            trouble,
            asked: Duration::from_secs(asked),
        }
    }

    #[test]
    fn throttles_and_failures_are_counted_apart_each_against_its_limit() {
        let p = policy(None);
        let mut a = Attempts::default();
        let throttled = || trouble(Trouble::Throttled { status: 429 }, 7);
        let failed = || trouble(Trouble::ServerError { status: 502 }, 0);
        // A throttle waits what the service asked; a failure backs off.
        assert!(matches!(
            a.after(&p, throttled(), "GET /x"),
            Next::Again { wait, .. } if wait == Duration::from_secs(7)
        ));
        assert!(matches!(
            a.after(&p, failed(), "GET /x"),
            Next::Again { .. }
        ));
        assert!(matches!(
            a.after(&p, throttled(), "GET /x"),
            Next::Again { .. }
        ));
        // The second failure is the last of two.
        let Next::Stop(e) = a.after(&p, failed(), "GET /x") else {
            panic!("failures ran out");
        };
        assert_eq!(
            e,
            HttpError::Transport {
                endpoint: "GET /x".into(),
                cause: "HTTP 502".into()
            }
        );
        let mut a = Attempts::default();
        for _ in 0..2 {
            assert!(matches!(
                a.after(&p, throttled(), "GET /x"),
                Next::Again { .. }
            ));
        }
        assert!(matches!(
            a.after(&p, throttled(), "GET /x"),
            Next::Stop(HttpError::Throttled { attempts: 3, .. })
        ));
    }

    #[test]
    fn each_miss_gives_up_with_its_own_error() {
        let p = policy(None);
        let last = |t: Trouble| {
            let mut a = Attempts::default();
            loop {
                match a.after(&p, trouble(t.clone(), 0), "GET /x") {
                    Next::Again { .. } => {}
                    Next::Stop(e) => return e,
                    Next::Renew => panic!("no token was refused"),
                }
            }
        };
        assert!(matches!(
            last(Trouble::Malformed("at byte 3".into())),
            HttpError::Malformed { cause, .. } if cause == "at byte 3"
        ));
        assert!(matches!(
            last(Trouble::NotAPage { status: 200, why: "a null body".into() }),
            HttpError::Malformed { cause, .. } if cause == "HTTP 200 with a null body, in every attempt"
        ));
        assert!(matches!(
            last(Trouble::SubFailed { status: 401 }),
            HttpError::Status { status: 401, .. }
        ));
        assert!(matches!(
            last(Trouble::Unsent("timed out".into())),
            HttpError::Transport { cause, .. } if cause == "connection failed: timed out"
        ));
        assert!(matches!(
            last(Trouble::NoSubAnswer),
            HttpError::Transport { .. }
        ));
        // What a wait is told with.
        assert_eq!(Trouble::Malformed("x".into()).to_string(), "malformed: x");
        assert_eq!(Trouble::Throttled { status: 503 }.to_string(), "HTTP 503");
    }

    #[test]
    fn a_refused_token_is_renewed_once_in_a_row() {
        let p = policy(None);
        let mut a = Attempts::default();
        assert!(matches!(
            a.after(&p, Miss::TokenRefused, "GET /x"),
            Next::Renew
        ));
        assert!(matches!(
            a.after(&p, Miss::TokenRefused, "GET /x"),
            Next::Stop(HttpError::Status { status: 401, .. })
        ));
        // A throttle between two refusals earns the second its renewal.
        let mut a = Attempts::default();
        assert!(matches!(
            a.after(&p, Miss::TokenRefused, "GET /x"),
            Next::Renew
        ));
        let t = trouble(Trouble::Throttled { status: 429 }, 1);
        assert!(matches!(a.after(&p, t, "GET /x"), Next::Again { .. }));
        assert!(matches!(
            a.after(&p, Miss::TokenRefused, "GET /x"),
            Next::Renew
        ));
    }

    #[test]
    fn a_throttle_beyond_patience_is_the_answer() {
        let p = policy(Some(Duration::from_secs(5)));
        let mut a = Attempts::default();
        let t = trouble(Trouble::Throttled { status: 429 }, 60);
        assert!(matches!(
            a.after(&p, t, "GET /x"),
            Next::Stop(HttpError::RateLimited { retry_after, .. }) if retry_after == Duration::from_secs(60)
        ));
        // A failure is not a throttle, whatever it asks.
        let t = trouble(Trouble::ServerError { status: 500 }, 60);
        assert!(matches!(a.after(&p, t, "GET /x"), Next::Again { .. }));
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
