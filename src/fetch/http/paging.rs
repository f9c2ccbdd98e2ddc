//! Collections read page by page along their next links (`@odata.nextLink`,
//! `nextLink`): the chain of requests runs ahead of the reading of its
//! records, and ends at a link to another host (`ForeignLink`), at a link
//! back to a page already read (`PageLoop`) or past `max_pages`
//! (`TooManyPages`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesOrdered;

use super::client::Http;
use super::error::HttpError;
use super::retry::Waited;
use crate::auth::endpoints::{Api, join};
use crate::fetch::gate::Priority;
use crate::fetch::outgoing::Outgoing;
use crate::fetch::record::{RawPage, Record};

/// Pages a chain of next links may run ahead of the reading of its records.
const PAGES_AHEAD: usize = 16;

/// A page request in a chain: its page, once read whole.
type PageTask = std::pin::Pin<Box<dyn Future<Output = Result<RawPage, HttpError>> + Send>>;

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

impl Http {
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
    pub(super) async fn follow(
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
    /// scan overlap the next one's round trip. A page that cannot be read
    /// ends the chain with its error after the pages before it, and so does
    /// a link `start_page` refuses to follow: a broken service must not page
    /// forever.
    async fn chain(
        self: Arc<Self>,
        api: Api,
        first: String,
        next: String,
        waited: Arc<Waited>,
        tx: tokio::sync::mpsc::Sender<Result<RawPage, HttpError>>,
    ) {
        use futures::StreamExt;
        let mut pages: FuturesOrdered<PageTask> = Default::default();
        // Each page's URL, with its number in the collection.
        let mut seen: HashMap<String, usize> = HashMap::from([(first, 1)]);
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
    /// read), early when its head names it. A link to another host
    /// (`ForeignLink`), one already followed (`PageLoop`), or past
    /// `max_pages` (`TooManyPages`) is not followed: its page is that
    /// error, queued after the pages before it.
    fn start_page(
        self: &Arc<Self>,
        api: Api,
        url: String,
        depth: u32,
        waited: &Arc<Waited>,
        seen: &mut HashMap<String, usize>,
        pages: &mut FuturesOrdered<PageTask>,
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

    /// Whether a next link stays on the API's scheme, host and port: a
    /// bearer token goes nowhere else.
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fetch::http::HttpOptions;
    use crate::fetch::http::tests::{client_of, client_with, hostile_server, ids_from};

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
}
