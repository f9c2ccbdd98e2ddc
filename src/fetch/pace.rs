//! Slowing down before a service throttles, from what its answers say.
//!
//! Three services tell a client how close it is to their limit on answers
//! that succeed, and tenx holds back the next requests of that kind when
//! they say it is close, instead of running into 429s:
//!
//! - Graph's identity and access service sends
//!   `x-ms-throttle-limit-percentage` once an app has used more than 80 %
//!   of its limit (0.8 to 1.8; "Microsoft Graph service-specific throttling
//!   limits"). The limit is a bucket refilled over 10 s, so a pause of
//!   (p − 0.7) × 10 s brings the use back to about 70 % whatever the
//!   limit's size: 1 s at 0.8, 3 s at 1.0.
//! - ARM sends `x-ms-ratelimit-remaining-subscription-reads` (or
//!   `-tenant-reads`): the tokens left in a bucket refilled at 25 a second
//!   ("Understand how Azure Resource Manager throttles requests"). When
//!   no more are left than requests tenx may have in flight, the next wait
//!   until the bucket has that many again; so the requests already sent
//!   can never empty it.
//! - Azure Resource Graph sends `x-ms-user-quota-remaining` and
//!   `x-ms-user-quota-resets-after` (hh:mm:ss) on every answer ("Guidance
//!   for throttled requests in Azure Resource Graph"): at 0, the next query
//!   waits for the reset.
//!
//! A pause holds back requests not yet sent on that lane only; an answer
//! without these headers (every other service, or none near a limit)
//! changes nothing, so a fetch far from the limits runs as fast as before.
//! Each pause is at most `MAX_PAUSE`, and the requests that wait take it
//! out of their collection's allowance of waiting like any other wait.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::auth::endpoints::Api;
use crate::fetch::outgoing::Outgoing;

/// The longest one pause lasts, whatever a header asks.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// ARM's documented refill: 25 read tokens a second.
const ARM_REFILL_PER_SEC: f64 = 25.0;

/// Requests that one pause holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Graph's directory objects (users, groups, members, ...).
    Directory,
    /// ARM reads.
    Arm,
    /// Resource Graph queries.
    ResourceGraph,
}

impl Lane {
    fn index(self) -> usize {
        match self {
            Lane::Directory => 0,
            Lane::Arm => 1,
            Lane::ResourceGraph => 2,
        }
    }

    /// The lane of a request, if its service tells how near its limit is.
    pub fn of(out: &Outgoing) -> Option<Lane> {
        let intune = |path: &str| {
            let p = path.to_ascii_lowercase();
            p.contains("/devicemanagement") || p.contains("/deviceappmanagement")
        };
        match out {
            Outgoing::Get {
                api: Api::Graph,
                url,
            } => (!intune(url)).then_some(Lane::Directory),
            Outgoing::GraphBatch { paths, .. } => paths
                .first()
                .filter(|p| !intune(p))
                .map(|_| Lane::Directory),
            Outgoing::Get { api: Api::Arm, .. } => Some(Lane::Arm),
            Outgoing::ResourceGraph { .. } => Some(Lane::ResourceGraph),
            _ => None,
        }
    }
}

/// Until when each lane holds back, and why.
#[derive(Debug)]
pub struct Pacing {
    lanes: Mutex<[Option<(Instant, String)>; 3]>,
    /// ARM reads tenx may have in flight: the tokens it keeps in reserve.
    arm_reserve: u64,
}

impl Pacing {
    pub fn new(arm_in_flight: usize) -> Pacing {
        Pacing {
            lanes: Mutex::new([None, None, None]),
            arm_reserve: arm_in_flight as u64,
        }
    }

    /// How long a request on `lane` waits from now, and why; `None` when it
    /// may go.
    pub fn delay(&self, lane: Lane) -> Option<(Duration, String)> {
        let lanes = self.lanes.lock().ok()?;
        let (until, why) = lanes[lane.index()].as_ref()?;
        let left = until.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then(|| (left, why.clone()))
    }

    /// Reads an answer's headers; a lane near its limit holds back.
    pub fn observe(&self, lane: Lane, headers: &HeaderMap) {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match lane {
            Lane::Directory => {
                if let Some(p) = get("x-ms-throttle-limit-percentage") {
                    self.limit_percentage(p);
                }
            }
            Lane::Arm => {
                let remaining = [
                    "x-ms-ratelimit-remaining-subscription-reads",
                    "x-ms-ratelimit-remaining-tenant-reads",
                ]
                .iter()
                .filter_map(|n| get(n).map(|v| (*n, v)))
                .filter_map(|(n, v)| v.trim().parse::<u64>().ok().map(|r| (n, r)))
                .min_by_key(|(_, r)| *r);
                if let Some((name, left)) = remaining {
                    if left <= self.arm_reserve {
                        let tokens = (self.arm_reserve + 1 - left) as f64;
                        self.hold(
                            lane,
                            Duration::from_secs_f64(tokens / ARM_REFILL_PER_SEC),
                            format!("ARM reads nearly spent ({name}: {left})"),
                        );
                    }
                }
            }
            Lane::ResourceGraph => {
                let left =
                    get("x-ms-user-quota-remaining").and_then(|v| v.trim().parse::<i64>().ok());
                if let (Some(left), Some(reset)) = (
                    left,
                    get("x-ms-user-quota-resets-after").and_then(parse_resets_after),
                ) {
                    if left <= 0 {
                        self.hold(
                            lane,
                            reset,
                            format!(
                                "Resource Graph quota spent (x-ms-user-quota-remaining: {left})"
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Graph's `x-ms-throttle-limit-percentage`, from an answer or from a
    /// `$batch` sub-answer's headers.
    pub fn limit_percentage(&self, value: &str) {
        let Ok(p) = value.trim().parse::<f64>() else {
            return;
        };
        if p.is_finite() && p >= 0.8 {
            self.hold(
                Lane::Directory,
                Duration::from_secs_f64(((p - 0.7) * 10.0).min(10.0)),
                format!("Graph near its limit (x-ms-throttle-limit-percentage: {value})"),
            );
        }
    }

    /// Holds `lane` back for `pause` from now, unless it is held longer.
    fn hold(&self, lane: Lane, pause: Duration, why: String) {
        let until = Instant::now() + pause.min(MAX_PAUSE);
        if let Ok(mut lanes) = self.lanes.lock() {
            let slot = &mut lanes[lane.index()];
            if slot.as_ref().is_none_or(|(u, _)| *u < until) {
                *slot = Some((until, why));
            }
        }
    }
}

/// `hh:mm:ss` (fractions of a second allowed), as Resource Graph writes
/// `x-ms-user-quota-resets-after`.
pub fn parse_resets_after(v: &str) -> Option<Duration> {
    let mut parts = v.trim().split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || m > 59 || !(0.0..60.0).contains(&s) {
        return None;
    }
    // Hours as large as the header may hold must not overflow.
    let whole = h.checked_mul(3600)?.checked_add(m * 60)?;
    Duration::from_secs(whole).checked_add(Duration::try_from_secs_f64(s).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A loopback service whose every answer carries `headers` (header
    /// name, value) for the path asked, and that answers Resource Graph's
    /// first query 429 without Retry-After when `rg_refuses`. It records
    /// when each request arrived.
    async fn server(
        headers: Vec<(&'static str, &'static str, &'static str)>,
        rg_refuses: bool,
    ) -> (url::Url, Arc<std::sync::Mutex<Vec<(String, Instant)>>>) {
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let refused = Arc::new(std::sync::atomic::AtomicBool::new(!rg_refuses));
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (log, headers, refused) = (log.clone(), headers.clone(), refused.clone());
            async move {
                let path = req.uri().path().to_string();
                if path.ends_with("/token") {
                    let t = serde_json::json!({"access_token": "x", "expires_in": 3600, "token_type": "Bearer"});
                    return axum::Json(t).into_response();
                }
                log.lock().expect("log").push((path.clone(), Instant::now()));
                let mut resp = if path.ends_with("/resources") {
                    if !refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        let mut r = (
                            axum::http::StatusCode::TOO_MANY_REQUESTS,
                            r#"{"error":{"code":"RateLimiting","message":"throttled"}}"#,
                        )
                            .into_response();
                        r.headers_mut().insert("x-ms-user-quota-remaining", "0".parse().expect("v"));
                        r.headers_mut().insert("x-ms-user-quota-resets-after", "00:00:01".parse().expect("v"));
                        return r;
                    }
                    axum::Json(serde_json::json!({"data": [], "count": 0, "totalRecords": 0})).into_response()
                } else {
                    axum::Json(serde_json::json!({"value": []})).into_response()
                };
                for (on, name, value) in headers {
                    if path.contains(on) {
                        resp.headers_mut().insert(name, value.parse().expect("value"));
                    }
                }
                resp
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (
            url::Url::parse(&format!("http://{addr}")).expect("url"),
            seen,
        )
    }

    fn client(base: url::Url) -> Arc<crate::fetch::http::Http> {
        let mut endpoints =
            crate::auth::endpoints::Endpoints::for_cloud(crate::auth::endpoints::Cloud::Public);
        endpoints.login = base.clone();
        endpoints.graph = base.clone();
        endpoints.arm = base;
        let auth = crate::auth::Auth::new(
            crate::auth::Credentials {
                tenant: "t".into(),
                client_id: "c".into(),
                secret: crate::auth::secret::Secret::new("s"),
            },
            endpoints,
        );
        Arc::new(crate::fetch::http::Http::new(Arc::new(auth), Default::default()).expect("client"))
    }

    /// The time between the first and the second request to `path`.
    fn gap(seen: &std::sync::Mutex<Vec<(String, Instant)>>, path: &str) -> Duration {
        let at: Vec<Instant> = seen
            .lock()
            .expect("log")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| *t)
            .collect();
        at[1].duration_since(at[0])
    }

    #[tokio::test]
    async fn the_client_waits_before_the_next_request_when_the_headers_say_so() {
        let (base, seen) = server(
            vec![
                ("/v1.0/users", "x-ms-throttle-limit-percentage", "0.85"),
                (
                    "/subscriptions",
                    "x-ms-ratelimit-remaining-tenant-reads",
                    "3",
                ),
                ("/resources", "x-ms-user-quota-remaining", "0"),
                ("/resources", "x-ms-user-quota-resets-after", "00:00:01"),
            ],
            false,
        )
        .await;
        let http = client(base);
        // Graph at 85 %: the next directory request waits 1.5 s, an Intune
        // one does not.
        for path in [
            "/v1.0/users",
            "/v1.0/users",
            "/v1.0/deviceManagement/managedDevices",
            "/v1.0/deviceManagement/managedDevices",
        ] {
            http.get(Api::Graph, path).await.expect("read");
        }
        let g = gap(&seen, "/v1.0/users");
        assert!(g >= Duration::from_millis(1400), "{g:?}");
        assert!(gap(&seen, "/v1.0/deviceManagement/managedDevices") < Duration::from_millis(500));
        // ARM with 3 reads left and 12 requests allowed in flight: the next
        // waits for 10 tokens at 25 a second.
        for _ in 0..2 {
            http.get(Api::Arm, "/subscriptions?api-version=2022-12-01")
                .await
                .expect("read");
        }
        let g = gap(&seen, "/subscriptions");
        assert!(g >= Duration::from_millis(380), "{g:?}");
        // Resource Graph with its quota spent: the next query waits for the
        // reset.
        for _ in 0..2 {
            http.resource_graph(&["s".into()], "Resources", |_| {})
                .await
                .expect("read");
        }
        let g = gap(&seen, "/providers/Microsoft.ResourceGraph/resources");
        assert!(g >= Duration::from_millis(950), "{g:?}");
    }

    #[tokio::test]
    async fn answers_far_from_the_limits_cost_no_time() {
        let (base, seen) = server(
            vec![
                ("/v1.0/users", "x-ms-resource-unit", "1"),
                (
                    "/subscriptions",
                    "x-ms-ratelimit-remaining-subscription-reads",
                    "249",
                ),
                ("/resources", "x-ms-user-quota-remaining", "14"),
                ("/resources", "x-ms-user-quota-resets-after", "00:00:05"),
            ],
            false,
        )
        .await;
        let http = client(base);
        let t = Instant::now();
        for _ in 0..2 {
            http.get(Api::Graph, "/v1.0/users").await.expect("read");
            http.get(Api::Arm, "/subscriptions?api-version=2022-12-01")
                .await
                .expect("read");
            http.resource_graph(&["s".into()], "Resources", |_| {})
                .await
                .expect("read");
        }
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(seen.lock().expect("log").len(), 6);
    }

    #[tokio::test]
    async fn a_spent_resource_graph_quota_is_waited_out_without_retry_after() {
        // Resource Graph's 429 names no Retry-After, only when its quota
        // resets: the query is asked again after that, not at once.
        let (base, seen) = server(vec![], true).await;
        let http = client(base);
        http.resource_graph(&["s".into()], "Resources", |_| {})
            .await
            .expect("read after the reset");
        let g = gap(&seen, "/providers/Microsoft.ResourceGraph/resources");
        assert!(g >= Duration::from_millis(950), "{g:?}");
        assert_eq!(http.metrics().throttled, 1);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header"));
        }
        h
    }

    fn held(p: &Pacing, lane: Lane) -> Duration {
        p.delay(lane).map(|(d, _)| d).unwrap_or_default()
    }

    #[test]
    fn answers_far_from_a_limit_hold_nothing_back() {
        let p = Pacing::new(12);
        p.observe(Lane::Directory, &headers(&[("x-ms-resource-unit", "1")]));
        p.observe(
            Lane::Directory,
            &headers(&[("x-ms-throttle-limit-percentage", "0.5")]),
        );
        p.observe(
            Lane::Arm,
            &headers(&[("x-ms-ratelimit-remaining-subscription-reads", "249")]),
        );
        p.observe(
            Lane::ResourceGraph,
            &headers(&[
                ("x-ms-user-quota-remaining", "3"),
                ("x-ms-user-quota-resets-after", "00:00:04"),
            ]),
        );
        for lane in [Lane::Directory, Lane::Arm, Lane::ResourceGraph] {
            assert!(p.delay(lane).is_none(), "{lane:?}");
        }
    }

    #[test]
    fn near_a_limit_the_lane_holds_back_as_long_as_the_service_says() {
        let p = Pacing::new(12);
        // Graph past 80 %: back to about 70 % of a 10 s bucket.
        p.observe(
            Lane::Directory,
            &headers(&[("x-ms-throttle-limit-percentage", "0.90")]),
        );
        let d = held(&p, Lane::Directory);
        assert!(
            d > Duration::from_millis(1900) && d <= Duration::from_secs(2),
            "{d:?}"
        );
        assert!(p.delay(Lane::Arm).is_none(), "only that lane");
        // ARM: 5 reads left, 12 may be in flight: wait for 8 more at 25 a second.
        p.observe(
            Lane::Arm,
            &headers(&[
                ("x-ms-ratelimit-remaining-subscription-reads", "5"),
                ("x-ms-ratelimit-remaining-tenant-reads", "240"),
            ]),
        );
        let d = held(&p, Lane::Arm);
        assert!(
            d > Duration::from_millis(300) && d <= Duration::from_millis(320),
            "{d:?}"
        );
        // Resource Graph: none left, the reset in 3 s.
        p.observe(
            Lane::ResourceGraph,
            &headers(&[
                ("x-ms-user-quota-remaining", "0"),
                ("x-ms-user-quota-resets-after", "00:00:03"),
            ]),
        );
        let (d, why) = p.delay(Lane::ResourceGraph).expect("held");
        assert!(
            d > Duration::from_millis(2900) && d <= Duration::from_secs(3),
            "{d:?}"
        );
        assert!(why.contains("x-ms-user-quota-remaining: 0"), "{why}");
        // A shorter pause does not shorten a longer one; a hostile header
        // is capped.
        p.limit_percentage("0.8");
        assert!(held(&p, Lane::Directory) > Duration::from_millis(1800));
        p.observe(
            Lane::ResourceGraph,
            &headers(&[
                ("x-ms-user-quota-remaining", "0"),
                ("x-ms-user-quota-resets-after", "99:00:00"),
            ]),
        );
        assert!(held(&p, Lane::ResourceGraph) <= MAX_PAUSE);
    }

    #[test]
    fn resets_after_is_hours_minutes_seconds() {
        assert_eq!(parse_resets_after("00:00:05"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_resets_after("01:02:03"),
            Some(Duration::from_secs(3723))
        );
        assert_eq!(
            parse_resets_after("00:00:01.5"),
            Some(Duration::from_millis(1500))
        );
        // Hours past what a Duration holds are refused, not a panic.
        for bad in [
            "5",
            "00:61:00",
            "a:b:c",
            "00:00:05:00",
            "",
            "18446744073709551615:00:00",
            "5124095576030432:00:00",
            "00:00:NaN",
        ] {
            assert_eq!(parse_resets_after(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests_are_on_the_lane_of_their_service() {
        let batch = vec!["/groups/g/members".to_string()];
        let intune_batch =
            vec!["/deviceManagement/deviceCompliancePolicies/p/deviceStatuses".to_string()];
        let body = serde_json::json!({});
        let cases = [
            (
                Outgoing::Get {
                    api: Api::Graph,
                    url: "https://graph.microsoft.com/v1.0/users",
                },
                Some(Lane::Directory),
            ),
            (
                Outgoing::Get {
                    api: Api::Graph,
                    url: "https://graph.microsoft.com/v1.0/deviceManagement/managedDevices",
                },
                None,
            ),
            (
                Outgoing::GraphBatch {
                    version: "v1.0",
                    paths: &batch,
                },
                Some(Lane::Directory),
            ),
            (
                Outgoing::GraphBatch {
                    version: "v1.0",
                    paths: &intune_batch,
                },
                None,
            ),
            (
                Outgoing::Get {
                    api: Api::Arm,
                    url: "https://management.azure.com/subscriptions",
                },
                Some(Lane::Arm),
            ),
            (
                Outgoing::ResourceGraph { body: &body },
                Some(Lane::ResourceGraph),
            ),
            (
                Outgoing::Get {
                    api: Api::Defender,
                    url: "https://api.security.microsoft.com/api/machines",
                },
                None,
            ),
            (Outgoing::Token { api: Api::Graph }, None),
        ];
        for (out, lane) in cases {
            assert_eq!(Lane::of(&out), lane, "{out:?}");
        }
    }
}
