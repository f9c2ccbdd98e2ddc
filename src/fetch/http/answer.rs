//! What an answer means: its body read up to `MAX_BODY` (telling its next
//! link as soon as the first bytes name it), then judged by its status —
//! the value, a miss to ask again, or the error it is.

use std::time::Duration;

use serde_json::Value;

use super::client::Http;
use super::error::{HttpError, describe};
use super::retry::{Miss, Trouble, asked_wait};
use crate::auth::AuthError;
use crate::fetch::outgoing::Outgoing;

/// Told a page's next link as soon as the page's first bytes name it.
pub(super) type OnHead<'a> = dyn Fn(String) + Send + Sync + 'a;

/// Why a body could not be read whole.
enum BodyError {
    /// Larger than `MAX_BODY` (claimed or seen).
    TooLarge,
    Broken(reqwest::Error),
}

/// Reads a body chunk by chunk, up to `max`, telling `on_head` (if any)
/// the next link the moment the first bytes name it.
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

impl Http {
    /// An answer's value through `parse`, or why not. A body larger than
    /// `max_body` is the answer (`TooLarge`); one that breaks off is asked
    /// again. Of the token endpoint, 429 and 503 are throttles, any other
    /// 5xx a failure to ask again, and the rest its refusal in its own words
    /// (`AuthError`). Of an API, a success that `parse` cannot read is asked
    /// again, 401 asks for a renewed token, 429 and 503 are throttles, 500,
    /// 502 and 504 failures to ask again, and any other status is the
    /// answer (`Forbidden` for 403, else `Status`).
    pub(super) async fn judge<T>(
        &self,
        out: &Outgoing<'_>,
        endpoint: &str,
        resp: reqwest::Response,
        parse: &impl Fn(bytes::Bytes) -> Result<T, serde_json::Error>,
        on_head: Option<&OnHead<'_>>,
    ) -> Result<T, Miss> {
        let status = resp.status().as_u16();
        let asked = asked_wait(resp.headers()).unwrap_or_default();
        let retry = |trouble| {
            Err(Miss::Trouble {
                trouble,
                asked: Duration::ZERO,
            })
        };
        let bytes =
            match read_body(resp, on_head.filter(|_| status == 200), self.opts.max_body).await {
                Ok(b) => b,
                Err(BodyError::TooLarge) => {
                    return Err(Miss::Fail(HttpError::TooLarge {
                        endpoint: endpoint.to_string(),
                        limit: self.opts.max_body,
                    }));
                }
                Err(BodyError::Broken(e)) => return retry(Trouble::Broke(describe(&e))),
            };
        let throttled = |status| Miss::Trouble {
            trouble: Trouble::Throttled { status },
            asked,
        };
        if let Outgoing::Token { api } = out {
            if status == 200 {
                if let Ok(v) = parse(bytes.clone()) {
                    return Ok(v);
                }
            }
            let parsed: Result<Value, _> = serde_json::from_slice(&bytes);
            return Err(match (status, parsed) {
                (429 | 503, _) => throttled(status),
                (500..=599, _) => Miss::Trouble {
                    trouble: Trouble::ServerError { status },
                    asked,
                },
                (_, Ok(v)) if v.get("error").is_some() => {
                    Miss::Fail(HttpError::Auth(AuthError::from_body(*api, status, &v)))
                }
                (_, _) => Miss::Fail(HttpError::Auth(AuthError {
                    api: api.name(),
                    code: None,
                    guidance: format!(
                        "the token endpoint answered HTTP {status} without an error body; check the login URL and cloud"
                    ),
                })),
            });
        }
        match status {
            200..=299 => parse(bytes).or_else(|e| retry(Trouble::Malformed(e.to_string()))),
            401 => Err(Miss::TokenRefused),
            429 | 503 => Err(throttled(status)),
            500 | 502 | 504 => retry(Trouble::ServerError { status }),
            _ => {
                let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
                Err(Miss::Fail(HttpError::refused(
                    out.api().name(),
                    endpoint.to_string(),
                    status,
                    parsed.as_ref(),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::endpoints::Api;
    use crate::fetch::http::HttpOptions;
    use crate::fetch::http::tests::{client_with, hostile_server};

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
}
