//! Who tenx is to Microsoft: each cloud's endpoints, the app's secret (in
//! the OS keyring, never on disk) and the client-credentials tokens.
//!
//! This module's own part: one token per API (Graph, Defender, ARM), cached,
//! refreshed before it expires, requested once at a time per API, and
//! dropped when a service says it expired. The token request itself goes
//! through `fetch::http` (the only HTTP client); this module holds the state
//! and turns the identity platform's AADSTS errors into plain guidance.

pub mod endpoints;
pub mod secret;
pub mod secrets;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::auth::endpoints::{Api, Endpoints};
use crate::auth::secret::Secret;

#[derive(Debug, Clone)]
pub struct Credentials {
    /// Tenant GUID or verified domain.
    pub tenant: String,
    pub client_id: String,
    pub secret: Secret,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub value: Secret,
    pub refresh_at: Instant,
    /// When the answer arrived: a request refused with a token tries again
    /// only with one obtained after the refusal.
    pub obtained: Instant,
    pub roles: Vec<String>,
    /// `Bearer {value}`, built once and marked sensitive (it prints as
    /// `Sensitive`); every request of the token's life sends a copy of it.
    pub header: reqwest::header::HeaderValue,
}

/// Refresh this long before a token's stated expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The longest a token is kept, whatever its answer says.
const MAX_LIFE: Duration = Duration::from_secs(24 * 3600);

impl AccessToken {
    pub fn from_response(body: &Value) -> Option<AccessToken> {
        let value = body["access_token"].as_str()?.to_string();
        let expires_in = body["expires_in"]
            .as_u64()
            .or_else(|| body["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3599);
        // A lifetime from the network is a claim, not arithmetic to trust:
        // no token of the identity platform lives a day, and `Instant`
        // panics past its range (18446744073709551615 s did).
        let life = Duration::from_secs(expires_in.min(MAX_LIFE.as_secs()));
        let margin = REFRESH_MARGIN.min(life / 2);
        let mut header = reqwest::header::HeaderValue::from_str(&format!("Bearer {value}")).ok()?;
        header.set_sensitive(true);
        let now = Instant::now();
        Some(AccessToken {
            header,
            roles: roles_of(&value),
            value: Secret::new(value),
            refresh_at: now.checked_add(life - margin).unwrap_or(now),
            obtained: now,
        })
    }

    pub fn fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }
}

/// The `roles` claim of a JWT access token (empty when unreadable).
pub fn roles_of(token: &str) -> Vec<String> {
    claims_of(token)
        .and_then(|c| {
            c["roles"].as_array().map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default()
}

pub fn claims_of(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Token state for every API; `http` asks it and fills it.
#[derive(Debug)]
pub struct Auth {
    pub credentials: Credentials,
    pub endpoints: Endpoints,
    slots: [tokio::sync::Mutex<Option<Arc<AccessToken>>>; 3],
}

impl Auth {
    pub fn new(credentials: Credentials, endpoints: Endpoints) -> Auth {
        Auth {
            credentials,
            endpoints,
            slots: Default::default(),
        }
    }

    /// The slot for an API. Holding its lock while requesting a token makes
    /// the request single-flight: concurrent callers wait and reuse it.
    pub fn slot(&self, api: Api) -> &tokio::sync::Mutex<Option<Arc<AccessToken>>> {
        &self.slots[api.index()]
    }

    pub fn token_url(&self) -> String {
        crate::auth::endpoints::join(
            &self.endpoints.login,
            &format!("/{}/oauth2/v2.0/token", self.credentials.tenant),
        )
    }

    /// The form of a client-credentials token request.
    pub fn token_form(&self, api: Api) -> Vec<(&'static str, String)> {
        vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", self.credentials.client_id.clone()),
            (
                "client_secret",
                self.credentials.secret.expose().to_string(),
            ),
            ("scope", self.endpoints.scope(api)),
        ]
    }
}

/// What went wrong getting a token, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sign-in to {api} failed: {guidance}{}", code.map(|c| format!(" (AADSTS{c})")).unwrap_or_default())]
pub struct AuthError {
    pub api: &'static str,
    pub code: Option<u32>,
    pub guidance: String,
}

impl AuthError {
    /// From an identity platform error body (`error`, `error_description`,
    /// `error_codes`).
    pub fn from_body(api: Api, status: u16, body: &Value) -> AuthError {
        let code = body["error_codes"][0]
            .as_u64()
            .and_then(|c| u32::try_from(c).ok())
            .or_else(|| {
                body["error_description"]
                    .as_str()
                    .and_then(|d| d.strip_prefix("AADSTS"))
                    .and_then(|d| d.split(':').next())
                    .and_then(|c| c.parse().ok())
            });
        let error = body["error"].as_str().unwrap_or("");
        AuthError {
            api: api.name(),
            code,
            guidance: explain(code, error, status),
        }
    }
}

/// Plain guidance for the AADSTS codes a client-credentials sign-in meets.
pub fn explain(code: Option<u32>, error: &str, status: u16) -> String {
    match code {
        Some(7000215) => "the client secret is wrong. Use the secret's Value, not its Secret ID (App registrations → Certificates & secrets); if it was deleted or rotated, create a new one and run `tenx login` again".into(),
        Some(7000222) => "the client secret has expired. Create a new one under App registrations → Certificates & secrets and run `tenx login` again".into(),
        Some(700016) => "the application (client) id was not found in this tenant. Check the client id, and that the app is registered in this tenant or that an administrator consented to it here".into(),
        Some(90002) => "the tenant was not found. Check the tenant id or domain, and that you chose the right cloud (public, usgov, china)".into(),
        Some(900023) | Some(90013) => "the tenant id is not valid. Use the Directory (tenant) ID GUID or a verified domain such as contoso.onmicrosoft.com".into(),
        Some(7000218) | Some(900144) => "the request is missing a parameter: no client secret was provided".into(),
        Some(500011) => "this API is not available in the tenant (its service principal is missing): the service may not be licensed or provisioned here, or the cloud is wrong".into(),
        Some(65001) => "admin consent is missing: an administrator must grant consent for the app's permissions (App registrations → API permissions → Grant admin consent)".into(),
        Some(700024) | Some(7000112) => "the application is disabled in this tenant. Enable the service principal (Enterprise applications → Properties)".into(),
        Some(53003) => "a Conditional Access policy blocked the sign-in. Exclude the app or allow workload identities in the policy".into(),
        Some(1002012) | Some(70011) => "the requested scope is not valid for a client-credentials sign-in".into(),
        Some(50053) => "the account is locked after too many failed sign-ins; wait and try again".into(),
        Some(c) => format!("the identity platform refused the sign-in with AADSTS{c}; see https://login.microsoftonline.com/error?code={c}"),
        None if status == 401 || error == "invalid_client" => "the client id or secret was refused".into(),
        None => format!("the identity platform answered HTTP {status} {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aadsts_codes_become_guidance() {
        let body = json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": [7000215]});
        let e = AuthError::from_body(Api::Graph, 401, &body);
        assert_eq!(e.code, Some(7000215));
        let text = e.to_string();
        assert!(text.contains("Value, not its Secret ID"), "{text}");
        assert!(text.contains("AADSTS7000215"));
        let body = json!({"error": "unauthorized_client", "error_description": "AADSTS700016: Application with identifier 'x' was not found"});
        assert_eq!(
            AuthError::from_body(Api::Arm, 400, &body).code,
            Some(700016)
        );
        assert!(explain(Some(90002), "", 400).contains("tenant was not found"));
    }

    #[test]
    fn reads_roles_and_expiry_from_a_token_response() {
        let claims = json!({"roles": ["Machine.Read.All"], "aud": "x"});
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
        let tok = format!("e30.{payload}.sig");
        let t = AccessToken::from_response(&json!({"access_token": tok, "expires_in": 3599}))
            .expect("token");
        assert_eq!(t.roles, ["Machine.Read.All"]);
        assert!(t.fresh());
        assert!(t.refresh_at > Instant::now() + Duration::from_secs(3000));
        let short = AccessToken::from_response(&json!({"access_token": "a.b.c", "expires_in": 60}))
            .expect("token");
        assert!(short.refresh_at <= Instant::now() + Duration::from_secs(30));
        assert!(roles_of("garbage").is_empty());
    }

    #[test]
    fn a_lifetime_from_the_network_cannot_overflow() {
        // u64::MAX seconds overflowed `Instant` and killed the source's task.
        for life in [json!(u64::MAX), json!("18446744073709551615"), json!(0)] {
            let t =
                AccessToken::from_response(&json!({"access_token": "a.b.c", "expires_in": life}))
                    .expect("token");
            assert!(t.refresh_at <= Instant::now() + MAX_LIFE);
        }
        let t =
            AccessToken::from_response(&json!({"access_token": "a.b.c", "expires_in": u64::MAX}))
                .expect("token");
        assert!(t.fresh(), "a long-lived token is used, for a day at most");
    }
}
