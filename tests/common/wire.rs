//! A plain HTTP client for the simulated tenant, as any client would call
//! it: tokens from its login endpoint, pages followed to the end.

use std::time::Duration;

use serde_json::Value;
use tenx_sim::RunningTenant;

pub const GRAPH: &str = "https://graph.microsoft.com/.default";
pub const DEFENDER: &str = "https://api.securitycenter.microsoft.com/.default";
pub const ARM: &str = "https://management.azure.com/.default";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The token endpoint's answer for these client credentials: its status
/// and body.
pub async fn token_response(
    s: &RunningTenant,
    tenant: &str,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> (u16, Value) {
    let body = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={}&scope={}",
        urlencode(secret),
        urlencode(scope)
    );
    let r = client()
        .post(format!("{}/login/{tenant}/oauth2/v2.0/token", s.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("token json"))
}

/// An access token of the tenant's own app for this scope.
pub async fn token(s: &RunningTenant, scope: &str) -> String {
    let t = &s.tenant;
    let (status, body) =
        token_response(s, &t.tenant_id, &t.client_id, &t.client_secret, scope).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// GET with a bearer token: status, headers and body.
pub async fn get(url: &str, tok: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = client()
        .get(url)
        .bearer_auth(tok)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap_or_default())
}

/// Follows `@odata.nextLink` / `nextLink` to the end; returns every item.
pub async fn walk(url: &str, tok: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = Some(url.to_string());
    while let Some(u) = next {
        let (status, _, body) = get(&u, tok).await;
        assert_eq!(status, 200, "{u}: {body}");
        let v: Value = serde_json::from_str(&body).expect("page is JSON");
        items.extend(v["value"].as_array().expect("value array").iter().cloned());
        next = v["@odata.nextLink"]
            .as_str()
            .or(v["nextLink"].as_str())
            .map(String::from);
        if let Some(n) = &next {
            assert!(
                n.starts_with("http://127.0.0.1:"),
                "nextLink points back at the server: {n}"
            );
        }
    }
    items
}
