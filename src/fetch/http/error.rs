//! `HttpError`: why a request, a collection or a query was not read, each
//! kind its own variant, and the words of a service's error body.

use std::time::Duration;

use serde_json::Value;

use crate::auth::AuthError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{endpoint}: access denied by {api} (HTTP 403{}): {message}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Forbidden {
        api: &'static str,
        endpoint: String,
        code: Option<String>,
        message: String,
    },
    #[error("{endpoint}: HTTP {status}{}: {message}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        endpoint: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error("{endpoint}: the answer could not be read ({cause})")]
    Malformed { endpoint: String, cause: String },
    #[error("{endpoint}: {cause}")]
    Transport { endpoint: String, cause: String },
    #[error("{endpoint}: still throttled after {attempts} attempts")]
    Throttled { endpoint: String, attempts: u32 },
    #[error("{endpoint}: refused to follow a next link to another host")]
    ForeignLink { endpoint: String },
    #[error("{endpoint}: the service's rate limit is spent (HTTP 429; it asks to wait {} s)", retry_after.as_secs_f64().ceil())]
    RateLimited {
        endpoint: String,
        retry_after: Duration,
    },
    #[error("{endpoint}: still throttled; the service asks to wait {} s more, beyond the {} s tenx waits for one collection (waited {} s)", asked.as_secs_f64().ceil(), limit.as_secs(), waited.as_secs())]
    WaitedTooLong {
        endpoint: String,
        asked: Duration,
        waited: Duration,
        limit: Duration,
    },
    #[error("{endpoint}: the answer is larger than {} MiB, the most tenx reads; the collection was not read", limit >> 20)]
    TooLarge { endpoint: String, limit: usize },
    #[error(
        "{endpoint}: the next link leads back to page {again} of this collection after {pages} pages; the service pages in a loop, so the collection was not read whole"
    )]
    PageLoop {
        endpoint: String,
        pages: usize,
        again: usize,
    },
    #[error("{endpoint}: more than {limit} pages; the collection was not read whole")]
    TooManyPages { endpoint: String, limit: usize },
    /// What tenx decided of an answer that came (a result cut at a service's
    /// row limit), not a status the service sent.
    #[error("{endpoint}: {what}")]
    Cut { endpoint: String, what: String },
}

impl HttpError {
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            HttpError::Auth(_) => None,
            HttpError::Forbidden { endpoint, .. }
            | HttpError::Status { endpoint, .. }
            | HttpError::Malformed { endpoint, .. }
            | HttpError::Transport { endpoint, .. }
            | HttpError::Throttled { endpoint, .. }
            | HttpError::RateLimited { endpoint, .. }
            | HttpError::WaitedTooLong { endpoint, .. }
            | HttpError::TooLarge { endpoint, .. }
            | HttpError::PageLoop { endpoint, .. }
            | HttpError::TooManyPages { endpoint, .. }
            | HttpError::Cut { endpoint, .. }
            | HttpError::ForeignLink { endpoint } => Some(endpoint),
        }
    }

    /// A 403 (`Forbidden`, which names the permission to grant) or another
    /// status that is the answer, with what the service's error body says.
    pub(super) fn refused(
        api: &'static str,
        endpoint: String,
        status: u16,
        body: Option<&Value>,
    ) -> HttpError {
        let (code, message) = error_of(body);
        if status == 403 {
            HttpError::Forbidden {
                api,
                endpoint,
                code,
                message,
            }
        } else {
            HttpError::Status {
                endpoint,
                status,
                code,
                message,
            }
        }
    }
}

/// `code` and `message` of a Graph/Defender/ARM error body.
pub(super) fn error_of(body: Option<&Value>) -> (Option<String>, String) {
    let err = body.map(|b| &b["error"]);
    let code = err.and_then(|e| e["code"].as_str()).map(String::from);
    let message = err
        .and_then(|e| e["message"].as_str())
        .map(String::from)
        .unwrap_or_else(|| "no error message".into());
    (code, message)
}

/// A failed request in words, without its URL (reqwest's Display can
/// include it): what failed and the chain of causes.
pub(super) fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
