//! Intune reports (`report::IntuneReport`), read page by page by `skip`
//! and `top` until the rows the report counts have come.

use super::client::Http;
use super::error::HttpError;
use super::retry::Waited;
use crate::fetch::gate::Priority;
use crate::fetch::outgoing::Outgoing;
use crate::fetch::report::{IntuneReport, ReportPage, ReportQuery};

impl Http {
    /// Every row of an Intune report whose rows `filter` picks, with the
    /// `select`ed columns, page by page (`skip` and `top`) until
    /// `TotalRowCount` rows came or, when the report gives no total, a page
    /// is empty; an empty page before the total is an error, and so are
    /// more than `max_pages` pages. `on_page` sees each page. A page is
    /// asked again after a throttle or a failure like any request; the
    /// pages of a report share one allowance of waiting.
    pub async fn report_rows(
        &self,
        report: IntuneReport,
        filter: &str,
        select: &[&str],
        mut on_page: impl FnMut(&ReportPage),
    ) -> Result<usize, HttpError> {
        /// Rows asked for a page; the service may answer fewer, and the
        /// next page starts after what came.
        const TOP: usize = 1000;
        let waited = Waited::default();
        let mut query = ReportQuery {
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
                    ReportPage::parse,
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
