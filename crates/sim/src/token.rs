//! Access tokens of the simulated identity platform: JWT-shaped (header,
//! claims, signature), so clients can read `roles`, `aud` and `exp` exactly
//! as they would from a real token. The signature is a keyed hash that only
//! this server checks.

use std::hash::{Hash, Hasher};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

pub const AUD_GRAPH: &str = "https://graph.microsoft.com";
pub const AUD_DEFENDER: &str = "https://api.securitycenter.microsoft.com";
pub const AUD_ARM: &str = "https://management.azure.com";

pub const GRAPH_ROLES: &[&str] = &[
    "Directory.Read.All",
    "Organization.Read.All",
    "DeviceManagementManagedDevices.Read.All",
    "DeviceManagementConfiguration.Read.All",
    "DeviceManagementApps.Read.All",
    // Advanced hunting (`security/runHuntingQuery`).
    "ThreatHunting.Read.All",
];
pub const DEFENDER_ROLES: &[&str] = &[
    "Machine.Read.All",
    "Vulnerability.Read.All",
    "User.Read.All",
];

fn sign(key: u64, data: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    data.hash(&mut h);
    let a = h.finish();
    a.hash(&mut h);
    format!("{a:016x}{:016x}", h.finish())
}

pub fn issue(key: u64, claims: &Value) -> String {
    let header = B64.encode(br#"{"typ":"JWT","alg":"RS256","kid":"tenx-simulated"}"#);
    let body = B64.encode(claims.to_string());
    let signed = format!("{header}.{body}");
    let sig = B64.encode(sign(key, &signed));
    format!("{signed}.{sig}")
}

/// The claims of a token this server issued, or None when it is not one.
pub fn verify(key: u64, token: &str) -> Option<Value> {
    let (signed, sig) = token.rsplit_once('.')?;
    let expected = B64.encode(sign(key, signed));
    if sig != expected {
        return None;
    }
    let (_, body) = signed.split_once('.')?;
    serde_json::from_slice(&B64.decode(body).ok()?).ok()
}

pub fn claims(
    aud: &str,
    tenant: &str,
    client_id: &str,
    oid: &str,
    roles: &[String],
    iat: i64,
) -> Value {
    json!({
        "aud": aud,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": iat,
        "nbf": iat,
        "exp": iat + 3599,
        "aio": "E2dgYJgsimulated",
        "app_displayname": "tenx",
        "appid": client_id,
        "appidacr": "1",
        "idp": format!("https://sts.windows.net/{tenant}/"),
        "idtyp": "app",
        "oid": oid,
        "rh": "0.simulated",
        "roles": roles,
        "sub": oid,
        "tid": tenant,
        "uti": "simulated",
        "ver": "1.0",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let c = claims(
            AUD_GRAPH,
            "t",
            "c",
            "o",
            &["Directory.Read.All".into()],
            100,
        );
        let tok = issue(42, &c);
        assert_eq!(tok.split('.').count(), 3);
        assert_eq!(verify(42, &tok), Some(c));
        assert_eq!(verify(43, &tok), None);
        let mut parts: Vec<&str> = tok.split('.').collect();
        let other = B64.encode(r#"{"aud":"x"}"#);
        parts[1] = &other;
        assert_eq!(verify(42, &parts.join(".")), None);
    }
}
