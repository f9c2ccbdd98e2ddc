//! What never leaves tenx: secrets in source properties, at any depth.
//! One rule, used by every export format and by the explorer's details pane.
//!
//! - **A field whose name looks like a secret** (`secret`, `password`,
//!   `passcode`, `privateKey`, `accessToken`, `credential` anywhere in the
//!   name, case-insensitive; not `…Required` or `…MinimumLength`, which are
//!   policy settings) is removed, in the top-level properties and in every
//!   nested object, including objects inside arrays (an ARM VM's
//!   `properties.osProfile.adminPassword`).
//! - **A name/value pair whose name looks like a secret** (`{"name":
//!   "DB_PASSWORD", "value": "…"}`, as App Service settings are listed) keeps
//!   its name; its `value` becomes [`REDACTED`].
//! - **A string value that carries a credential** becomes [`REDACTED`],
//!   whole: a connection string with `Password=`, `Pwd=`, `AccountKey=`,
//!   `SharedAccessKey=` or `SharedAccessSignature=`, a URL whose query has a
//!   SAS signature (`sig=`) or a `client_secret=`, a URL with a password in
//!   it (`https://user:pass@host`), a PEM private key. The whole value goes,
//!   not only the secret part: a connection string's syntax (quotes,
//!   braces, escapes) varies by driver, and a partial cut that misreads it
//!   would leak.

use serde_json::{Map, Value};

/// What a value that carried a credential is replaced with.
pub const REDACTED: &str = "(redacted)";

/// A field name that holds a secret, whatever an API returns.
pub fn is_sensitive(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passcode",
        "privatekey",
        "accesstoken",
        "credential",
    ]
    .iter()
    .any(|w| f.contains(w))
        && !f.ends_with("required")
        && !f.ends_with("minimumlength")
}

/// `key=` pairs of connection strings whose value is a secret.
const SECRET_PAIRS: [&str; 8] = [
    "password",
    "pwd",
    "accountkey",
    "sharedaccesskey",
    "sharedaccesssignature",
    "sig",
    "client_secret",
    "clientsecret",
];

/// Whether a string value carries a credential (see the module's rule).
pub fn holds_credential(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    if l.contains("-----begin") && l.contains("private key") {
        return true;
    }
    // `https://user:password@host`
    if let Some(i) = l.find("://") {
        let rest = &l[i + 3..];
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                return true;
            }
        }
    }
    // `Password=…` after a start, `;`, `,`, `?` or `&`, spaces allowed around
    // the name and before `=`.
    for name in SECRET_PAIRS {
        let mut from = 0;
        while let Some(at) = l[from..].find(name) {
            let start = from + at;
            let end = start + name.len();
            from = end;
            let before = l[..start].trim_end_matches(' ');
            let starts_pair = before.is_empty() || before.ends_with([';', '?', '&', ',']);
            let after = l[end..].trim_start_matches(' ');
            if starts_pair && after.starts_with('=') {
                let value = after[1..].trim_start_matches(' ');
                if !value.is_empty() && !value.starts_with([';', '&', ',']) {
                    return true;
                }
            }
        }
    }
    false
}

/// Redacts a value in place, at every depth.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) if holds_credential(s) => *s = REDACTED.to_string(),
        Value::Array(a) => a.iter_mut().for_each(redact_value),
        Value::Object(m) => redact_map(m),
        _ => {}
    }
}

/// Redacts an object in place: sensitive fields removed, the value of a
/// sensitive name/value pair replaced, credential strings replaced.
pub fn redact_map(m: &mut Map<String, Value>) {
    m.retain(|k, _| !is_sensitive(k));
    let pair_is_secret = ["name", "key", "settingName"]
        .iter()
        .any(|n| m.get(*n).and_then(Value::as_str).is_some_and(is_sensitive));
    for (k, v) in m.iter_mut() {
        if pair_is_secret && k == "value" && !v.is_null() {
            *v = Value::String(REDACTED.to_string());
        } else {
            redact_value(v);
        }
    }
}

/// A set of source properties with every secret gone.
pub fn redacted(mut m: Map<String, Value>) -> Map<String, Value> {
    redact_map(&mut m);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_names() {
        for s in [
            "clientSecret",
            "adminPassword",
            "PASSWORD",
            "privateKey",
            "accessToken",
            "passcodeValue",
            "credentials",
        ] {
            assert!(is_sensitive(s), "{s}");
        }
        for s in [
            "passwordRequired",
            "passwordMinimumLength",
            "mail",
            "adminUsername",
        ] {
            assert!(!is_sensitive(s), "{s}");
        }
    }

    #[test]
    fn credential_values() {
        for s in [
            "Server=tcp:x.database.windows.net,1433;Database=d;User ID=u;Password=Hunter2;",
            "Data Source=x;Initial Catalog=d;User Id=u; pwd = Hunter2",
            "redis-1.redis.cache.windows.net:6380,password=Hunter2=,ssl=True",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==;EndpointSuffix=core.windows.net",
            "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=abc=",
            "https://a.blob.core.windows.net/c?sv=2022-11-02&sr=c&sig=abc%3D",
            "https://login/x?client_id=1&client_secret=abc",
            "postgres://admin:Hunter2@db.example.com:5432/x",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIB...",
        ] {
            assert!(holds_credential(s), "{s}");
        }
        for s in [
            "Server=tcp:x;Database=d;Authentication=Active Directory Default",
            "https://a.blob.core.windows.net/c",
            "https://user@host/path",
            "passwords must be long",
            "signature=abc",
            "Password=;",
            "design=x",
            "mailto:a@b.c",
        ] {
            assert!(!holds_credential(s), "{s}");
        }
    }

    #[test]
    fn nested_arm_properties_lose_every_secret() {
        let mut v = json!({
            "osProfile": {"adminUsername": "azureuser", "adminPassword": "Hunter2!"},
            "siteConfig": {
                "connectionStrings": [
                    {"name": "db", "connectionString": "Server=x;Password=Hunter2!;", "type": "SQLAzure"}
                ],
                "appSettings": [
                    {"name": "DB_PASSWORD", "value": "Hunter2!"},
                    {"name": "REGION", "value": "westeurope"}
                ]
            }
        });
        redact_value(&mut v);
        let text = v.to_string();
        assert!(!text.contains("Hunter2"), "{text}");
        assert_eq!(v["osProfile"], json!({"adminUsername": "azureuser"}));
        assert_eq!(
            v["siteConfig"]["connectionStrings"][0]["connectionString"],
            REDACTED
        );
        assert_eq!(v["siteConfig"]["connectionStrings"][0]["name"], "db");
        assert_eq!(v["siteConfig"]["appSettings"][0]["value"], REDACTED);
        assert_eq!(v["siteConfig"]["appSettings"][1]["value"], "westeurope");
    }
}
