//! The simulated identity platform: the client-credentials token endpoint
//! with the real AADSTS error bodies.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::json;

use super::*;

impl Sim {
    pub(super) fn aadsts(
        &self,
        status: StatusCode,
        error: &str,
        code: u32,
        message: String,
    ) -> Reply {
        let (trace, corr) = self
            .rng
            .lock()
            .map(|mut r| (r.guid(), r.guid()))
            .unwrap_or_default();
        let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        Reply::json(
            status,
            json!({
                "error": error,
                "error_description": format!("AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"),
                "error_codes": [code],
                "timestamp": ts,
                "trace_id": trace,
                "correlation_id": corr,
                "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
            }),
        )
    }
    pub(super) fn token_endpoint(
        &self,
        method: &Method,
        rest: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        let t = &self.t;
        let Some(tenant) = rest.strip_suffix("/oauth2/v2.0/token") else {
            return Reply::json(
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "error_description": format!("No endpoint at /login/{rest}. The token endpoint is /login/{{tenant}}/oauth2/v2.0/token.")}),
            );
        };
        if method != Method::POST {
            return self.aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests. Received a GET request.".into(),
            );
        }
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return self.aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.".into(),
            );
        }
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let tenant_ok =
            tenant.eq_ignore_ascii_case(&t.tenant_id) || tenant.eq_ignore_ascii_case(&t.domain);
        if !tenant_ok {
            return self.aadsts(StatusCode::BAD_REQUEST, "invalid_request", 90002, format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."));
        }
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {}
            None => {
                return self.aadsts(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'grant_type'.".into(),
                );
            }
            Some(other) => {
                return self.aadsts(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    70003,
                    format!("The app requested an unsupported grant type '{other}'."),
                );
            }
        }
        let client_id = form.get("client_id").map(String::as_str).unwrap_or("");
        if client_id.is_empty() {
            return self.aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.".into(),
            );
        }
        if !client_id.eq_ignore_ascii_case(&t.client_id) {
            return self.aadsts(StatusCode::BAD_REQUEST, "unauthorized_client", 700016, format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", t.org_name));
        }
        let secret = form.get("client_secret").map(String::as_str).unwrap_or("");
        if secret.is_empty() {
            return self.aadsts(StatusCode::UNAUTHORIZED, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into());
        }
        if secret != t.client_secret {
            return self.aadsts(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", t.client_id));
        }
        if self.options.secret_expired {
            return self.aadsts(StatusCode::UNAUTHORIZED, "invalid_client", 7000222, format!("The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", t.client_id));
        }
        let scope = form.get("scope").map(String::as_str).unwrap_or("");
        let Some(resource) = scope.strip_suffix("/.default") else {
            return self.aadsts(StatusCode::BAD_REQUEST, "invalid_scope", 1002012, format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."));
        };
        let resource = resource.trim_end_matches('/');
        let (aud, svc_roles): (&str, &[&str]) = if is_resource(
            resource,
            &[
                "graph.microsoft.com",
                "graph.microsoft.us",
                "dod-graph.microsoft.us",
                "microsoftgraph.chinacloudapi.cn",
            ],
        ) {
            (token::AUD_GRAPH, token::GRAPH_ROLES)
        } else if is_resource(
            resource,
            &[
                "api.securitycenter.microsoft.com",
                "api.security.microsoft.com",
                "api-gcc.securitycenter.microsoft.us",
                "api-gov.securitycenter.microsoft.us",
            ],
        ) {
            (token::AUD_DEFENDER, token::DEFENDER_ROLES)
        } else if is_resource(
            resource,
            &[
                "management.azure.com",
                "management.core.windows.net",
                "management.usgovcloudapi.net",
                "management.chinacloudapi.cn",
            ],
        ) {
            (token::AUD_ARM, &[])
        } else {
            return self.aadsts(StatusCode::BAD_REQUEST, "invalid_resource", 500011, format!("The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", t.org_name));
        };
        let f = &self.options.faults;
        let roles: Vec<String> = svc_roles
            .iter()
            .filter(|r| !f.missing_roles.iter().any(|m| m.eq_ignore_ascii_case(r)))
            .filter(|r| !f.forbid.iter().any(|s| source_roles(*s).contains(r)))
            .map(|r| r.to_string())
            .collect();
        let claims = token::claims(
            aud,
            &t.tenant_id,
            &t.client_id,
            &self.app_oid,
            &roles,
            now_unix(),
        );
        let mut claims = claims;
        // `iat` is whole seconds; the expiry fault needs the exact moment.
        claims["tenx_issued_ms"] = json!(now_ms());
        if aud == token::AUD_ARM {
            if let Some(o) = claims.as_object_mut() {
                o.remove("roles");
            }
        }
        Reply::ok(json!({
            "token_type": "Bearer",
            "expires_in": self.options.faults.token_expires_in.unwrap_or(3599),
            "ext_expires_in": 3599,
            "access_token": token::issue(self.key, &claims),
        }))
    }
}

pub(super) fn is_resource(resource: &str, hosts: &[&str]) -> bool {
    let host = resource
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    hosts.iter().any(|h| host.eq_ignore_ascii_case(h))
}
