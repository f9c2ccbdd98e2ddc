//! Azure Resource Graph queries, paged by `$skipToken`: a token that comes
//! back again is a loop (`PageLoop`), and pages past `max_pages` are refused
//! (`TooManyPages`).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::client::Http;
use super::error::HttpError;
use super::retry::Waited;
use crate::fetch::gate::Priority;
use crate::fetch::outgoing::Outgoing;
use crate::fetch::record::{RawPage, Record};

impl Http {
    /// A query over some subscriptions, page by page, each page's rows to
    /// `on_page`; the pages share one allowance of waiting. Returns the
    /// number of rows.
    pub async fn resource_graph(
        &self,
        subscriptions: &[String],
        query: &str,
        mut on_page: impl FnMut(Vec<Record<'_>>),
    ) -> Result<usize, HttpError> {
        let endpoint = self.endpoint_name(&Outgoing::ResourceGraph { body: &Value::Null });
        let waited = Waited::default();
        let mut seen: HashMap<String, usize> = Default::default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::http::HttpOptions;
    use crate::fetch::http::tests::{client_with, hostile_server};

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
}
