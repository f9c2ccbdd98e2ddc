//! Bearer tokens, one per API: taken from the cache while fresh, requested
//! one at a time per API, and dropped when a service refuses them (what a
//! refusal does to the request is the retry policy's: `Attempts`).

use std::sync::Arc;
use std::time::Instant;

use super::client::Http;
use super::error::HttpError;
use crate::auth::AccessToken;
use crate::auth::endpoints::Api;
use crate::fetch::outgoing::Outgoing;

impl Http {
    /// A token for an API, from the cache or freshly requested (one request
    /// at a time per API).
    pub async fn token(&self, api: Api) -> Result<Arc<AccessToken>, HttpError> {
        self.token_since(api, None).await
    }

    /// `token`, but a cached token obtained before `since` is not used: a
    /// service refused a token then, and one cached from before may have
    /// died the same way though another request fetched it.
    pub(super) async fn token_since(
        &self,
        api: Api,
        since: Option<Instant>,
    ) -> Result<Arc<AccessToken>, HttpError> {
        let mut slot = self.auth.slot(api).lock().await;
        if let Some(t) = slot
            .as_ref()
            .filter(|t| t.fresh() && since.is_none_or(|s| t.obtained >= s))
        {
            return Ok(t.clone());
        }
        let body = Box::pin(self.send(&Outgoing::Token { api })).await?;
        let token = AccessToken::from_response(&body)
            .map(Arc::new)
            .ok_or_else(|| HttpError::Malformed {
                endpoint: "POST token".into(),
                cause: "no access_token in the answer".into(),
            })?;
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Drops `stale` from the cache, unless another request has already
    /// put a newer token there.
    pub(super) async fn invalidate(&self, api: Api, stale: &AccessToken) {
        let mut slot = self.auth.slot(api).lock().await;
        if slot.as_ref().is_some_and(|t| t.value == stale.value) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::fetch::http::tests::{client_of, scripted_server};

    #[tokio::test]
    async fn a_renewed_token_that_ages_out_during_a_throttle_is_renewed_again() {
        let (base, tokens) = scripted_server(vec![401, 429, 401], "0.01").await;
        let http = client_of(base);
        let v = http.get(Api::Graph, "/v1.0/x").await.expect("answered");
        assert_eq!(v["value"][0]["id"], "a");
        assert_eq!(tokens.load(Ordering::SeqCst), 3, "a token per refusal");
    }

    #[tokio::test]
    async fn two_refusals_in_a_row_mean_the_token_is_refused() {
        let (base, _) = scripted_server(vec![401, 401], "0.01").await;
        let err = client_of(base)
            .get(Api::Graph, "/v1.0/x")
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, HttpError::Status { status: 401, .. }),
            "{err:?}"
        );
    }
}
