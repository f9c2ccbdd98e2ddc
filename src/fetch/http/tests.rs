//! Loopback servers and clients the tests of this folder share, and the
//! retry policy seen from outside: what a collection waits, and how long.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Http, HttpError, HttpOptions};
use crate::auth::Auth;
use crate::auth::endpoints::Api;

/// A loopback server of paged collections: `/v1.0/things?page=N` has
/// two items and links to page N+1 up to page 5; `/v1.0/leak` links to
/// another host.
pub(super) async fn paging_server() -> url::Url {
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
pub(super) async fn scripted_server(
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

pub(super) fn client_of(base: url::Url) -> Arc<Http> {
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

pub(super) fn client_with(base: url::Url, opts: HttpOptions) -> Arc<Http> {
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

/// Reads every page from `path`: the outcome and the records' ids in the
/// order they were handed over.
pub(super) async fn ids_from(path: &str) -> (Result<usize, HttpError>, Vec<String>) {
    let http = client_of(paging_server().await);
    let mut ids = Vec::new();
    let r = http
        .get_pages(Api::Graph, path, |records| {
            ids.extend(records.iter().filter_map(|r| r.str("id").map(String::from)));
        })
        .await;
    (r, ids)
}

/// A loopback server of hostile answers: `$batch` sub-answers by path
/// (`/ok`, `/b64`, `/null`, `/error`, `/valuenull`, `/flaky`: null the
/// first time), pages whose last links back (`/v1.0/loop`), pages that
/// never end with new links (`/v1.0/endless`), a page of 2 MB
/// (`/v1.0/big`, and `/v1.0/bigstream` without a length), and Resource
/// Graph answers whose `$skipToken` never changes.
pub(super) async fn hostile_server() -> url::Url {
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
