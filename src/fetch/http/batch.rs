//! Graph `$batch`: up to `MAX_BATCH` GETs in one request, each answered on
//! its own. A sub-request that misses is asked again in the next round
//! under the same retry policy as a request on its own (`Attempts`), and
//! the collections whose first pages came this way are followed along
//! their next links (`batch_pages`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::client::Http;
use super::error::{HttpError, error_of};
use super::retry::{Attempts, Miss, Next, Trouble, Waited, parse_retry_after};
use crate::auth::endpoints::{Api, join};
use crate::fetch::gate::Priority;
use crate::fetch::outgoing::Outgoing;
use crate::fetch::record::{RawPage, Record};

/// The most requests one `$batch` carries (Graph's limit).
pub const MAX_BATCH: usize = 20;

impl Http {
    /// Graph `$batch`: every path answered on its own, in order. Throttled
    /// (429, 503), failed (500, 502, 504) and expired-token (401)
    /// sub-requests are sent again, and so are those the answer lacks and
    /// sub-answers with a success status whose body is not a page (`null`,
    /// an error object, a string that is not a base64 page); the rest fail
    /// one by one.
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

    /// One `$batch` of at most `MAX_BATCH` paths, in rounds: each round
    /// sends the requests still pending, and waits once for all of those
    /// that go again — the longest `Retry-After` among the throttled, or
    /// when none was asked, the backoff of its round.
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
        let batch = format!("POST /{version}/$batch");
        let policy = self.retry_policy(None);
        let mut results: Vec<Option<Result<RawPage, HttpError>>> = vec![None; paths.len()];
        let mut attempts: Vec<Attempts> = paths.iter().map(|_| Attempts::default()).collect();
        let mut pending: Vec<usize> = (0..paths.len()).collect();
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
            // Sub-answers say how near Graph's limit is, too.
            for sub in &answer.subs {
                if let Some(p) = &sub.throttle_percentage {
                    self.pacing.limit_percentage(p);
                }
            }
            let mut again = Vec::new();
            // The longest wait a throttled sub-answer asked for, and the
            // last miss seen: what the round's wait is told with.
            let mut longest = Duration::ZERO;
            let mut cause = None;
            for (pos, &i) in pending.iter().enumerate() {
                let endpoint = endpoint_of(i);
                let miss = match self.sub_answer(&mut answer, pos, &endpoint).await {
                    Ok(page) => {
                        results[i] = Some(Ok(page));
                        continue;
                    }
                    Err(miss) => miss,
                };
                if let Miss::Trouble { trouble, asked } = &miss {
                    longest = longest.max(*asked);
                    cause = Some(trouble.clone());
                }
                match self.next_attempt(&mut attempts[i], &policy, miss, &endpoint) {
                    Next::Again { .. } | Next::Renew => again.push(i),
                    Next::Stop(e) => results[i] = Some(Err(e)),
                }
            }
            pending = again;
            if let (false, Some(cause)) = (pending.is_empty(), cause) {
                let wait = policy.wait(longest, round);
                if let Err(over) = self.wait_to_retry(&batch, wait, &cause, waited).await {
                    for &i in &pending {
                        results[i] = Some(Err(over.at(&endpoint_of(i))));
                    }
                    break;
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(HttpError::Transport {
                        endpoint: batch.clone(),
                        cause: "no answer for a batched request".into(),
                    })
                })
            })
            .collect()
    }

    /// The page of the request numbered `pos` in a round, or why not. A
    /// sub-answer refusing its token (401) is a failure to ask again, the
    /// token dropped first: the next round carries a fresh one.
    async fn sub_answer(
        &self,
        answer: &mut BatchAnswer,
        pos: usize,
        endpoint: &str,
    ) -> Result<RawPage, Miss> {
        let trouble = |trouble| Miss::Trouble {
            trouble,
            asked: Duration::ZERO,
        };
        let id = pos.to_string();
        let Some(at) = answer
            .subs
            .iter()
            .position(|r| r.id.as_deref() == Some(id.as_str()))
        else {
            return Err(trouble(Trouble::NoSubAnswer));
        };
        let status = answer.subs[at].status;
        match status {
            200..=299 => answer.take_page(at).map_err(|why| {
                tracing::debug!(%endpoint, %why, "a $batch sub-answer is not a page");
                trouble(Trouble::NotAPage { status, why })
            }),
            429 | 503 => Err(Miss::Trouble {
                trouble: Trouble::Throttled { status },
                asked: answer.subs[at]
                    .retry_after
                    .as_deref()
                    .and_then(parse_retry_after)
                    .unwrap_or_default(),
            }),
            500 | 502 | 504 | 401 => {
                if status == 401 {
                    if let Ok(t) = self.token(Api::Graph).await {
                        self.invalidate(Api::Graph, &t).await;
                    }
                }
                Err(trouble(Trouble::SubFailed { status }))
            }
            _ => {
                let body = answer.body_value(&answer.subs[at]);
                Err(Miss::Fail(HttpError::refused(
                    Api::Graph.name(),
                    endpoint.to_string(),
                    status,
                    body.as_ref(),
                )))
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::http::HttpOptions;
    use crate::fetch::http::tests::{client_with, hostile_server};

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
}
