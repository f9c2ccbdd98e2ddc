//! The one HTTP client of tenx, and all it does around a request: tokens,
//! the retry policy, page chains, Graph `$batch`, Resource Graph and reports.

mod answer;
mod batch;
mod client;
mod error;
mod paging;
mod reports;
mod resource_graph;
mod retry;
mod tokens;

#[cfg(test)]
mod tests;

pub use crate::fetch::outgoing::Outgoing;
pub use batch::MAX_BATCH;
pub use client::{Http, HttpOptions, MAX_BODY, MAX_PAGES, Metrics, MetricsSnapshot};
pub use error::HttpError;
pub(crate) use paging::AbortOnDrop;
pub use retry::{WaitNotice, Waited, parse_retry_after};
