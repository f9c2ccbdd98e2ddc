//! Microsoft Graph security advanced hunting:
//! `POST /v1.0/security/runHuntingQuery` (and beta), answering the KQL of
//! the request over the tables of `fake::hunting` with the documented
//! `huntingQueryResults`, errors and limits.
//!
//! Shapes, from the reference page (microsoft-graph-docs-contrib
//! `api-reference/v1.0/api/security-security-runhuntingquery.md`) and
//! what real answers show:
//! - request `{"Query": "…", "Timespan": "P30D"}`; the beta page writes
//!   `query`, both are read;
//! - answer `{"@odata.context": …, "schema": [{"Name", "Type"}], "results":
//!   [{column: value}]}`. The v1.0 page's newest examples write `name` and
//!   `type`; captured answers of the real service (and the same page's
//!   older example) write `Name` and `Type`, which this server sends;
//! - more rows than the limit: the first 100,000 and nothing else — the
//!   answer has no member that says so (huntingQueryResults is `schema`
//!   and `results` only); a client learns it from the count;
//! - a result over the size limit: 400 "Query execution has exceeded the
//!   allowed result size. Optimize your query by limiting the number of
//!   results and try again." (the wording the documentation quotes);
//! - a semantic or syntax error: 400 `BadRequest` with Kusto's message;
//! - quotas: 429 `TooManyRequests` saying which: "API calls quota
//!   exceeded! maximum allowed 45 per 00:01:00" (the calls quota, as the
//!   advanced hunting API words it) or "You have exceeded processing
//!   resources allocated to this tenant. You can run queries again in
//!   <duration>." (the CPU quota, `defender-xdr/advanced-hunting-errors`),
//!   with `Retry-After` in whole seconds;
//! - a query over the per-request time: 400 "Query exceeded the timeout
//!   period." (advanced-hunting-errors; the status is not documented);
//! - without `ThreatHunting.Read.All`: 403 "Missing application roles. API
//!   required roles: ThreatHunting.Read.All, application roles: …".

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::Value;

use super::*;
use crate::hunting::Hunting;
use crate::kql::value::{TICKS_PER_DAY, TICKS_PER_SEC, parse_datetime, parse_iso_duration};
use crate::kql::{self, Context, Output, Table};

/// `/v1.0/security/runHuntingQuery` or `/beta/…`, after the `/graph`
/// prefix; Graph matches path segments without case.
pub(super) fn is_hunting(rest: &str) -> bool {
    let path = rest.split('?').next().unwrap_or(rest).trim_end_matches('/');
    let Some(p) = path
        .strip_prefix("/v1.0")
        .or_else(|| path.strip_prefix("/beta"))
    else {
        return false;
    };
    p.eq_ignore_ascii_case("/security/runHuntingQuery")
}

pub(super) const ROLE: &str = "ThreatHunting.Read.All";

/// State of the hunting endpoint: the tables (built at the first query)
/// and the tenant's quotas.
#[derive(Default)]
pub(super) struct HuntingState {
    tables: std::sync::OnceLock<Hunting>,
    calls: Mutex<EndpointWindows>,
    cpu: Mutex<CpuWindow>,
    /// With `cache_responses`: (query, timespan) → (answer, its CPU cost,
    /// whether it was cut), so a repeated query is still charged to the
    /// quotas.
    cache: Mutex<HashMap<(String, String), Cached>>,
    pub(super) stats: Mutex<HuntingStats>,
}

/// A cached answer: its bytes, its CPU cost, whether it was cut.
type Cached = (Bytes, Duration, bool);

/// What the hunting endpoint answered, for tests: a client that never
/// accepts a cut result can be checked against `truncated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HuntingStats {
    /// Queries answered 200.
    pub answered: u64,
    /// Of those, answers cut at the row limit.
    pub truncated: u64,
    /// Queries refused for a limit (size, time, calls, CPU).
    pub refused: u64,
}

use super::super::knobs::CpuWindow;

/// `00:12:34`, as .NET writes a TimeSpan in the CPU quota message.
fn clock(d: Duration) -> String {
    let s = d.as_secs_f64().ceil() as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn whole_seconds(d: Duration) -> String {
    (d.as_secs_f64().ceil() as u64).max(1).to_string()
}

impl Sim {
    /// The tables of this tenant, built once.
    pub(super) fn hunting_tables(&self) -> &Hunting {
        self.hunting.tables.get_or_init(|| {
            Hunting::new(&self.t, self.started)
                .without_kb_rows(&self.t, self.options.faults.kb_missing)
        })
    }

    pub(super) fn run_hunting(&self, rest: &str, body: &[u8], roles: &[String]) -> Reply {
        let limits = &self.options.hunting;
        let version = if rest.starts_with("/beta") {
            "beta"
        } else {
            "v1.0"
        };
        if !roles.iter().any(|r| r == ROLE) {
            return self.error(
                Service::Graph,
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "Missing application roles. API required roles: {ROLE}, application roles: {}",
                    roles.join(",")
                ),
            );
        }
        let quota = |msg: String, wait: Duration| {
            self.count(|s| s.refused += 1);
            self.error(
                Service::Graph,
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                &msg,
            )
            .header("Retry-After", whole_seconds(wait))
        };
        // The calls quota is per tenant, whichever app calls.
        let verdict = self
            .hunting
            .calls
            .lock()
            .map(|mut w| w.admit(&limits.calls, "tenant"));
        if let Ok(Err(wait)) = verdict {
            let (n, window) = limits
                .calls
                .iter()
                .find(|(_, w)| *w >= wait)
                .or(limits.calls.first())
                .copied()
                .unwrap_or((0, Duration::ZERO));
            return quota(
                format!(
                    "API calls quota exceeded! maximum allowed {n} per {}",
                    clock(window)
                ),
                wait,
            );
        }
        if let Some(cpu) = limits.cpu {
            if let Ok(Err(wait)) = self.hunting.cpu.lock().map(|mut w| w.admit(cpu)) {
                return quota(
                    format!(
                        "You have exceeded processing resources allocated to this tenant. You can run queries again in {}.",
                        clock(wait)
                    ),
                    wait,
                );
            }
        }
        let bad =
            |msg: &str| self.error(Service::Graph, StatusCode::BAD_REQUEST, "BadRequest", msg);
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return bad("Invalid request body: the body is not JSON.");
        };
        let field = |name: &str| {
            req.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
        };
        let query = match field("Query") {
            Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return bad("The request body must contain a 'Query' with the KQL to run.");
            }
            Some(_) => return bad("'Query' must be a string."),
        };
        let timespan = match field("Timespan") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return bad("'Timespan' must be a string (an ISO 8601 duration or interval).");
            }
        };
        let now = now_ticks();
        let window = match hunting_window(&timespan, now, limits.retention_days) {
            Ok(w) => w,
            Err(msg) => return bad(&msg),
        };
        let key = (query.clone(), timespan.clone());
        if self.cache.is_some() {
            let hit = self
                .hunting
                .cache
                .lock()
                .ok()
                .and_then(|c| c.get(&key).cloned());
            if let Some((bytes, cost, cut)) = hit {
                self.charge(cost);
                self.count(|s| {
                    s.answered += 1;
                    s.truncated += cut as u64;
                });
                return Reply {
                    status: StatusCode::OK,
                    headers: vec![],
                    body: ReplyBody::Serialized(bytes),
                };
            }
        }
        let h = self.hunting_tables();
        let boxed = h.tables(&self.t);
        let tables: Vec<&dyn Table> = boxed.iter().map(|b| b.as_ref()).collect();
        let ctx = Context {
            now,
            window: Some(window),
            max_rows: limits.rows,
        };
        let out = match kql::run(&query, &tables, &ctx) {
            Ok(o) => o,
            Err(e) => return bad(&e.message),
        };
        let cost = limits
            .row_cost
            .saturating_mul(u32::try_from(out.work).unwrap_or(u32::MAX));
        self.charge(cost.min(limits.timeout));
        if cost > limits.timeout {
            self.count(|s| s.refused += 1);
            return bad("Query exceeded the timeout period.");
        }
        let Some(bytes) = results_json(&self.base, version, &out, limits.bytes) else {
            self.count(|s| s.refused += 1);
            return bad(
                "Query execution has exceeded the allowed result size. Optimize your query by limiting the number of results and try again.",
            );
        };
        self.count(|s| {
            s.answered += 1;
            s.truncated += out.truncated as u64;
        });
        let bytes = Bytes::from(bytes);
        if self.cache.is_some() {
            if let Ok(mut c) = self.hunting.cache.lock() {
                c.insert(key, (bytes.clone(), cost, out.truncated));
            }
        }
        Reply {
            status: StatusCode::OK,
            headers: vec![],
            body: ReplyBody::Serialized(bytes),
        }
    }

    fn count(&self, f: impl FnOnce(&mut HuntingStats)) {
        if let Ok(mut s) = self.hunting.stats.lock() {
            f(&mut s);
        }
    }

    fn charge(&self, cost: Duration) {
        if let Ok(mut w) = self.hunting.cpu.lock() {
            w.charge(cost);
        }
    }
}

fn now_ticks() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() as i64 * TICKS_PER_SEC + (d.subsec_nanos() / 100) as i64
}

/// The rows a query may see: the request's `Timespan` (default 30 days
/// back), within the data the service keeps (30 days: a longer span is
/// cut there).
pub fn hunting_window(timespan: &str, now: i64, retention_days: i64) -> Result<(i64, i64), String> {
    let kept = now - retention_days * TICKS_PER_DAY;
    let bad = || {
        format!(
            "Invalid Timespan '{timespan}': expected an ISO 8601 duration (P30D), interval (start/end, duration/end, start/duration) or start time."
        )
    };
    let point = |s: &str| parse_datetime(s).filter(|_| s.contains('-'));
    let (from, to) = if timespan.trim().is_empty() {
        (now - 30 * TICKS_PER_DAY, now)
    } else if let Some((a, b)) = timespan.split_once('/') {
        match (
            parse_iso_duration(a),
            point(a),
            parse_iso_duration(b),
            point(b),
        ) {
            (_, Some(s), _, Some(e)) => (s, e),
            (Some(d), _, _, Some(e)) => (e - d, e),
            (_, Some(s), Some(d), _) => (s, s + d),
            _ => return Err(bad()),
        }
    } else if let Some(d) = parse_iso_duration(timespan) {
        (now - d, now)
    } else if let Some(s) = point(timespan) {
        (s, now)
    } else {
        return Err(bad());
    };
    if from > to {
        return Err(bad());
    }
    Ok((from.max(kept), to.min(now)))
}

/// The `huntingQueryResults` answer, or None as soon as it is longer than
/// `max` bytes.
fn results_json(base: &str, version: &str, out: &Output, max: usize) -> Option<Vec<u8>> {
    let mut b = Vec::with_capacity(256 + out.rows.len() * 64);
    b.extend_from_slice(b"{\"@odata.context\":");
    crate::kql::value::write_json_str(
        &mut b,
        &format!("{base}/graph/{version}/$metadata#microsoft.graph.security.huntingQueryResults"),
    );
    b.extend_from_slice(b",\"schema\":[");
    let mut names = Vec::with_capacity(out.columns.len());
    for (i, c) in out.columns.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        let mut name = Vec::new();
        crate::kql::value::write_json_str(&mut name, &c.name);
        b.extend_from_slice(b"{\"Name\":");
        b.extend_from_slice(&name);
        b.extend_from_slice(b",\"Type\":\"");
        b.extend_from_slice(c.ty.schema_name().as_bytes());
        b.extend_from_slice(b"\"}");
        names.push(name);
    }
    b.extend_from_slice(b"],\"results\":[");
    for (r, row) in out.rows.iter().enumerate() {
        if r > 0 {
            b.push(b',');
        }
        b.push(b'{');
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            b.extend_from_slice(&names[i]);
            b.push(b':');
            v.write_json(&mut b);
        }
        b.push(b'}');
        if b.len() > max {
            return None;
        }
    }
    b.extend_from_slice(b"]}");
    (b.len() <= max).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_matched_without_case() {
        assert!(is_hunting("/v1.0/security/runHuntingQuery"));
        assert!(is_hunting("/beta/security/runhuntingquery/"));
        assert!(!is_hunting("/v1.0/security/runHuntingQuery/x"));
        assert!(!is_hunting("/v2/security/runHuntingQuery"));
    }

    #[test]
    fn timespans_are_cut_to_the_kept_days() {
        let now = parse_datetime("2026-12-07T00:00:00Z").unwrap();
        let day = TICKS_PER_DAY;
        assert_eq!(hunting_window("", now, 30), Ok((now - 30 * day, now)));
        assert_eq!(hunting_window("P7D", now, 30), Ok((now - 7 * day, now)));
        assert_eq!(hunting_window("P90D", now, 30), Ok((now - 30 * day, now)));
        assert_eq!(
            hunting_window("2026-12-01T00:00:00Z/2026-12-03T00:00:00Z", now, 30),
            Ok((now - 6 * day, now - 4 * day))
        );
        assert_eq!(
            hunting_window("P2D/2026-12-03T00:00:00Z", now, 30),
            Ok((now - 6 * day, now - 4 * day))
        );
        assert_eq!(
            hunting_window("2026-12-01T00:00:00Z/P1D", now, 30),
            Ok((now - 6 * day, now - 5 * day))
        );
        assert_eq!(
            hunting_window("2026-12-05T00:00:00Z", now, 30),
            Ok((now - 2 * day, now))
        );
        assert!(hunting_window("yesterday", now, 30).is_err());
        assert!(hunting_window("30", now, 30).is_err());
        assert!(hunting_window("2026-12-03T00:00:00Z/2026-12-01T00:00:00Z", now, 30).is_err());
    }

    #[test]
    fn clock_and_seconds() {
        assert_eq!(clock(Duration::from_secs(60)), "00:01:00");
        assert_eq!(clock(Duration::from_secs(3600)), "01:00:00");
        assert_eq!(whole_seconds(Duration::from_millis(1)), "1");
        assert_eq!(whole_seconds(Duration::from_millis(2500)), "3");
    }
}
