//! Intune reports: the read-only actions under Graph beta
//! `deviceManagement/reports`, which take a query in a POST body and answer
//! a table. tenx reads one of them, the per-device install state of a
//! managed app: `mobileApps/{id}/deviceStatuses`, which gave it before,
//! answers 400 "Resource not found for the segment 'deviceStatuses'" since
//! June 2023 (microsoftgraph/microsoft-graph-docs-contrib#1106), and
//! Microsoft points to `getDeviceInstallStatusReport` instead
//! (microsoftgraph/msgraph-sdk-powershell#2074).
//!
//! The request body is `{"filter", "select", "skip", "top", "orderBy"}`;
//! the answer is `{"TotalRowCount", "Schema": [{"Column",
//! "PropertyType"}], "Values": [[…], …]}`, served as
//! `application/octet-stream` (msgraph-sdk-powershell#2088: "Non-Json
//! response of OctetStream") although it is JSON. The reference page's
//! example shows `{"value": "<base64>"}` instead; that shape is read too.

use serde_json::{Value, json};

/// The reports tenx may ask for. Each is an action that only reads; there
/// is no way to name another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntuneReport {
    /// `getDeviceInstallStatusReport`: one row per device (and user) a
    /// managed app is assigned to, with its install state. Beta only: v1.0
    /// answers "Resource not found for the segment".
    DeviceInstallStatus,
}

impl IntuneReport {
    /// The path under the Graph base.
    pub fn path(self) -> &'static str {
        match self {
            IntuneReport::DeviceInstallStatus => {
                "/beta/deviceManagement/reports/getDeviceInstallStatusReport"
            }
        }
    }
}

/// One page of a report: which rows, which columns, from where. The body
/// holds nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// e.g. `(ApplicationId eq '…')`.
    pub filter: String,
    pub select: Vec<String>,
    pub order_by: Vec<String>,
    pub skip: usize,
    pub top: usize,
}

impl ReportQuery {
    /// The JSON body the service reads.
    pub fn body(&self) -> Value {
        json!({
            "filter": self.filter,
            "select": self.select,
            "skip": self.skip,
            "top": self.top,
            "orderBy": self.order_by,
        })
    }
}

/// A page of a report's rows, read from its `Schema` (so columns are found
/// by name, in whatever order the service writes them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportPage {
    pub total: Option<usize>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl ReportPage {
    /// The answer's bytes: the table itself, or the table as base64 in
    /// `value`.
    pub fn parse(body: bytes::Bytes) -> Result<ReportPage, serde_json::Error> {
        let v: Value = serde_json::from_slice(&body)?;
        let v = match v.get("value").and_then(Value::as_str) {
            Some(b64) if v.get("Values").is_none() => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| {
                        serde::de::Error::custom(format!("a `value` that is not base64 ({e})"))
                    })?;
                serde_json::from_slice(&bytes)?
            }
            _ => v,
        };
        let bad = |what: &str| -> serde_json::Error { serde::de::Error::custom(what) };
        let Some(schema) = v.get("Schema").and_then(Value::as_array) else {
            return Err(bad("a report without its `Schema`"));
        };
        let columns = schema
            .iter()
            .map(|c| c.get("Column").and_then(Value::as_str).map(String::from))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| bad("a `Schema` entry without its `Column`"))?;
        let rows = match v.get("Values") {
            Some(Value::Array(rows)) => rows
                .iter()
                .map(|r| r.as_array().cloned())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("a row of `Values` that is not an array"))?,
            _ => return Err(bad("a report without its `Values`")),
        };
        let total = v
            .get("TotalRowCount")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        Ok(ReportPage {
            total,
            columns,
            rows,
        })
    }

    /// Where a column is, by name (case-insensitive).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A loopback Graph whose report answers two rows a page whatever
    /// `top` asks, five rows in all, as `application/octet-stream`, its
    /// DeviceId in the second column; without `TotalRowCount` when the
    /// filter says `nototal`. Records each body it was sent.
    async fn report_server() -> (url::Url, Arc<Mutex<Vec<Value>>>) {
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let log = log.clone();
            async move {
                let path = req.uri().path().to_string();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .unwrap_or_default();
                if path.ends_with("/token") {
                    let t = json!({"access_token": "x", "expires_in": 3600, "token_type": "Bearer"});
                    return axum::Json(t).into_response();
                }
                let asked: Value = serde_json::from_slice(&body).unwrap_or_default();
                log.lock().expect("log").push(asked.clone());
                let skip = asked["skip"].as_u64().unwrap_or(0) as usize;
                let rows: Vec<Value> = (skip..5.min(skip + 2))
                    .map(|i| json!([1, format!("d{i}")]))
                    .collect();
                let mut table = json!({
                    "Schema": [{"Column": "AppInstallState", "PropertyType": "Int32"}, {"Column": "DeviceId", "PropertyType": "String"}],
                    "Values": rows,
                });
                let filter = asked["filter"].as_str().unwrap_or("");
                if filter.contains("short") {
                    // Says 9 rows, has 5.
                    table["TotalRowCount"] = json!(9);
                } else if !filter.contains("nototal") {
                    table["TotalRowCount"] = json!(5);
                }
                (
                    [("content-type", "application/octet-stream")],
                    table.to_string(),
                )
                    .into_response()
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (
            url::Url::parse(&format!("http://{addr}")).expect("url"),
            seen,
        )
    }

    fn client(base: url::Url) -> crate::fetch::http::Http {
        let mut endpoints =
            crate::auth::endpoints::Endpoints::for_cloud(crate::auth::endpoints::Cloud::Public);
        endpoints.login = base.clone();
        endpoints.graph = base;
        let auth = crate::auth::Auth::new(
            crate::auth::Credentials {
                tenant: "t".into(),
                client_id: "c".into(),
                secret: crate::auth::secret::Secret::new("s"),
            },
            endpoints,
        );
        crate::fetch::http::Http::new(Arc::new(auth), Default::default()).expect("client")
    }

    #[tokio::test]
    async fn a_report_is_read_page_by_page_as_far_as_its_rows_go() {
        let (base, seen) = report_server().await;
        let http = client(base);
        for (filter, asked) in [
            // TotalRowCount ends it: three pages of 2, 2 and 1 rows.
            ("(ApplicationId eq 'a')", 3),
            // Without one, an empty page does.
            ("(ApplicationId eq 'nototal')", 4),
        ] {
            seen.lock().expect("log").clear();
            let mut ids = Vec::new();
            let n = http
                .report_rows(
                    IntuneReport::DeviceInstallStatus,
                    filter,
                    &["DeviceId"],
                    |p| {
                        let at = p.column("DeviceId").expect("column");
                        ids.extend(
                            p.rows
                                .iter()
                                .filter_map(|r| r[at].as_str().map(String::from)),
                        );
                    },
                )
                .await
                .expect("read");
            assert_eq!(n, 5);
            assert_eq!(ids, ["d0", "d1", "d2", "d3", "d4"]);
            let bodies = seen.lock().expect("log").clone();
            assert_eq!(bodies.len(), asked, "{bodies:?}");
            // Each page starts after the rows that came, not after `top`.
            let skips: Vec<u64> = bodies.iter().filter_map(|b| b["skip"].as_u64()).collect();
            assert_eq!(&skips[..3], [0, 2, 4]);
            assert!(
                bodies
                    .iter()
                    .all(|b| b["filter"] == filter && b["select"] == json!(["DeviceId"]))
            );
            // In a stable order, so pages neither repeat nor miss rows.
            assert!(bodies.iter().all(|b| b["orderBy"] == json!(["DeviceId"])));
        }
        // A report that ends before the rows it said it has is not read.
        let e = http
            .report_rows(
                IntuneReport::DeviceInstallStatus,
                "(ApplicationId eq 'short')",
                &["DeviceId"],
                |_| {},
            )
            .await
            .expect_err("rows are missing");
        assert!(
            e.to_string().contains("says 9 rows but ended after 5"),
            "{e}"
        );
    }

    #[test]
    fn the_body_carries_only_the_query() {
        let q = ReportQuery {
            filter: "(ApplicationId eq 'a')".into(),
            select: vec!["DeviceId".into()],
            order_by: vec![],
            skip: 50,
            top: 50,
        };
        let b = q.body();
        let mut keys: Vec<&str> = b
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(keys, ["filter", "orderBy", "select", "skip", "top"]);
        assert_eq!(
            IntuneReport::DeviceInstallStatus.path(),
            "/beta/deviceManagement/reports/getDeviceInstallStatusReport"
        );
    }

    #[test]
    fn a_refused_report_names_the_permission_tenx_asks_for() {
        let fix = crate::fetch::permission_for(
            crate::fetch::Source::Intune,
            &format!("POST {}", IntuneReport::DeviceInstallStatus.path()),
        );
        assert_eq!(fix, "Microsoft Graph DeviceManagementApps.Read.All");
    }

    #[test]
    fn pages_are_read_by_their_schema_and_from_base64_too() {
        let table = json!({
            "TotalRowCount": 3,
            "Schema": [{"Column": "AppInstallState", "PropertyType": "Int32"}, {"Column": "DeviceId", "PropertyType": "String"}],
            "Values": [[1, "d1"], [2, "d2"]],
        });
        let p = ReportPage::parse(bytes::Bytes::from(table.to_string())).expect("page");
        assert_eq!(p.total, Some(3));
        let at = p.column("deviceid").expect("column");
        let ids: Vec<&str> = p.rows.iter().filter_map(|r| r[at].as_str()).collect();
        assert_eq!(ids, ["d1", "d2"]);
        use base64::Engine;
        let wrapped =
            json!({"value": base64::engine::general_purpose::STANDARD.encode(table.to_string())});
        assert_eq!(
            ReportPage::parse(bytes::Bytes::from(wrapped.to_string())).expect("page"),
            p
        );
        for bad in [
            json!({"value": []}),
            json!({"Schema": [], "Values": null}),
            json!({"Schema": [{"PropertyType": "String"}], "Values": []}),
            json!({"Schema": [], "Values": [3]}),
            json!({"value": "not base64!"}),
        ] {
            assert!(
                ReportPage::parse(bytes::Bytes::from(bad.to_string())).is_err(),
                "{bad}"
            );
        }
    }
}
