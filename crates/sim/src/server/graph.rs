//! Microsoft Graph (v1.0 and the one beta path), and JSON `$batch`.
//!
//! Size: long because Graph's every path the client reads is answered here,
//! with its documented paging, filters and errors.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use super::*;

impl Sim {
    pub(super) fn graph(
        &self,
        method: &Method,
        rest: &str,
        q: &Query,
        body: &[u8],
        roles: &[String],
        headers: &HeaderMap,
    ) -> Reply {
        let t = &*self.t;
        let (version, path) = if let Some(p) = rest.strip_prefix("/v1.0") {
            ("v1.0", p)
        } else if let Some(p) = rest.strip_prefix("/beta") {
            ("beta", p)
        } else {
            return self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "Invalid version: {}",
                    rest.trim_start_matches('/').split('/').next().unwrap_or("")
                ),
            );
        };
        if path == "/$batch" {
            if method != Method::POST {
                return self.error(
                    Service::Graph,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                );
            }
            return self.batch(version, body, headers);
        }
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let has = |role: &str| roles.iter().any(|r| r == role);
        let dir_ok = has("Directory.Read.All");
        let denied_dir = || {
            self.error(
                Service::Graph,
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        };
        let denied_intune = |scope: &str| {
            let op = self.rng.lock().map(|mut r| r.guid()).unwrap_or_default();
            self.error(Service::Graph, StatusCode::FORBIDDEN, "Forbidden", &format!("{{\"_version\": 3, \"Message\": \"Application is not authorized to perform this operation. Application must have one of the following scopes: {scope}, {} - Operation ID (for customer support): {op}\"}}", scope.replace(".Read.", ".ReadWrite.")))
        };
        let path_owned = path.to_string();
        let filter = match self.graph_filter(&segs, q) {
            Ok(f) => f,
            Err(refused) => return refused,
        };
        // Without `$select`, a user has only its default properties.
        let defaults = (segs.first() == Some(&"users")).then_some(&USER_DEFAULT_PROPERTIES[..]);
        let page =
            |total: usize, default_top: usize, max_top: usize, render: &dyn Fn(usize) -> Value| {
                self.odata_page_filtered(
                    Service::Graph,
                    &format!("/{version}{path_owned}"),
                    q,
                    total,
                    default_top,
                    max_top,
                    render,
                    filter.clone(),
                    defaults,
                )
            };
        let not_found = |id: &str| {
            self.error(Service::Graph, StatusCode::NOT_FOUND, "Request_ResourceNotFound", &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."))
        };
        let lookup = |map: &HashMap<String, usize>, id: &str| map.get(&id.to_lowercase()).copied();
        match segs.as_slice() {
            ["organization"] => {
                if !(dir_ok || has("Organization.Read.All")) {
                    return denied_dir();
                }
                page(1, 100, 999, &|_| render::organization(t))
            }
            ["users"] => {
                if dir_ok {
                    page(t.users.len(), 100, 999, &|i| render::user(t, i))
                } else {
                    denied_dir()
                }
            }
            ["users", id] => {
                if !dir_ok {
                    return denied_dir();
                }
                match t
                    .users
                    .iter()
                    .position(|u| u.id.eq_ignore_ascii_case(id) || u.upn.eq_ignore_ascii_case(id))
                {
                    Some(i) => {
                        let v = render::user(t, i);
                        Reply::ok(match q.get("$select") {
                            Some(sel) => selected_properties(v, sel),
                            None => default_user_properties(v),
                        })
                    }
                    None => not_found(id),
                }
            }
            ["groups"] => {
                if dir_ok {
                    page(t.groups.len(), 100, 999, &|i| render::group(t, i))
                } else {
                    denied_dir()
                }
            }
            ["groups", id, "members"] => {
                if !dir_ok {
                    return denied_dir();
                }
                match lookup(&self.ix.groups, id) {
                    Some(g) => {
                        let members = &t.groups[g].members;
                        page(members.len(), 100, 999, &|i| render::member(t, members[i]))
                    }
                    None => not_found(id),
                }
            }
            ["servicePrincipals"] => {
                if dir_ok {
                    page(t.service_principals.len(), 100, 999, &|i| {
                        render::service_principal(t, i)
                    })
                } else {
                    denied_dir()
                }
            }
            ["deviceManagement", rest @ ..] => {
                let devices_ok = has("DeviceManagementManagedDevices.Read.All");
                let config_ok = has("DeviceManagementConfiguration.Read.All");
                match rest {
                    ["reports", report] => {
                        if method != Method::POST {
                            return self.error(
                                Service::Graph,
                                StatusCode::METHOD_NOT_ALLOWED,
                                "Request_BadRequest",
                                "Specified HTTP method is not allowed for the request target.",
                            );
                        }
                        // An action of beta only: v1.0 does not know the
                        // segment (a client that called it there said so).
                        if version != "beta" || *report != "getDeviceInstallStatusReport" {
                            return self.error(
                                Service::Graph,
                                StatusCode::BAD_REQUEST,
                                "BadRequest",
                                &format!("Resource not found for the segment '{report}'."),
                            );
                        }
                        // Any of the device-management permissions will do
                        // (the reports' permission tables), and a refusal
                        // names all six (msgraph-sdk-powershell#2081).
                        let allowed = [
                            "DeviceManagementApps.Read.All",
                            "DeviceManagementConfiguration.Read.All",
                            "DeviceManagementManagedDevices.Read.All",
                        ];
                        if !allowed.iter().any(|r| has(r)) {
                            let op = self.rng.lock().map(|mut r| r.guid()).unwrap_or_default();
                            return self.error(Service::Graph, StatusCode::FORBIDDEN, "Forbidden", &format!("{{\"_version\": 3, \"Message\": \"Application is not authorized to perform this operation. Application must have one of the following scopes: DeviceManagementApps.Read.All, DeviceManagementApps.ReadWrite.All, DeviceManagementConfiguration.Read.All, DeviceManagementConfiguration.ReadWrite.All, DeviceManagementManagedDevices.Read.All, DeviceManagementManagedDevices.ReadWrite.All - Operation ID (for customer support): {op}\"}}"));
                        }
                        self.install_status_report(body)
                    }
                    ["managedDevices"] => {
                        if devices_ok {
                            page(t.devices.len(), 1000, 1000, &|i| {
                                render::managed_device(t, i)
                            })
                        } else {
                            denied_intune("DeviceManagementManagedDevices.Read.All")
                        }
                    }
                    ["managedDevices", id] => {
                        if !devices_ok {
                            denied_intune("DeviceManagementManagedDevices.Read.All")
                        } else {
                            match lookup(&self.ix.devices, id) {
                                Some(d) => Reply::ok(render::managed_device(t, d)),
                                None => not_found(id),
                            }
                        }
                    }
                    ["managedDevices", id, "deviceCompliancePolicyStates"] => {
                        if !(devices_ok && config_ok) {
                            return denied_intune("DeviceManagementConfiguration.Read.All");
                        }
                        match lookup(&self.ix.devices, id) {
                            Some(d) => {
                                let states = &t.devices[d].policy_states;
                                page(states.len(), 1000, 1000, &|i| {
                                    render::device_policy_state(t, d, &states[i])
                                })
                            }
                            None => not_found(id),
                        }
                    }
                    ["deviceCompliancePolicies"] => {
                        if config_ok {
                            page(t.compliance_policies.len(), 1000, 1000, &|i| {
                                render::compliance_policy(t, i)
                            })
                        } else {
                            denied_intune("DeviceManagementConfiguration.Read.All")
                        }
                    }
                    ["deviceCompliancePolicies", id, "deviceStatuses"] => {
                        if !config_ok {
                            return denied_intune("DeviceManagementConfiguration.Read.All");
                        }
                        match lookup(&self.ix.policies, id) {
                            Some(p) => {
                                let list = &self.ix.policy_devices[p];
                                let pid = &t.compliance_policies[p].id;
                                page(list.len(), 1000, 1000, &|i| {
                                    render::device_status(t, list[i].0 as usize, pid, list[i].1)
                                })
                            }
                            None => not_found(id),
                        }
                    }
                    ["deviceConfigurations"] => {
                        if config_ok {
                            page(t.configurations.len(), 1000, 1000, &|i| {
                                render::configuration(t, i)
                            })
                        } else {
                            denied_intune("DeviceManagementConfiguration.Read.All")
                        }
                    }
                    ["deviceConfigurations", id, "deviceStatuses"] => {
                        if !config_ok {
                            return denied_intune("DeviceManagementConfiguration.Read.All");
                        }
                        match lookup(&self.ix.configs, id) {
                            Some(c) => {
                                let list = &self.ix.config_devices[c];
                                let cid = &t.configurations[c].id;
                                page(list.len(), 1000, 1000, &|i| {
                                    render::configuration_status(
                                        t,
                                        list[i].0 as usize,
                                        cid,
                                        list[i].1,
                                    )
                                })
                            }
                            None => not_found(id),
                        }
                    }
                    ["detectedApps"] => {
                        if devices_ok {
                            page(t.detected_apps.len(), 1000, 1000, &|i| {
                                render::detected_app(t, i)
                            })
                        } else {
                            denied_intune("DeviceManagementManagedDevices.Read.All")
                        }
                    }
                    ["detectedApps", id, "managedDevices"] => {
                        if !devices_ok {
                            return denied_intune("DeviceManagementManagedDevices.Read.All");
                        }
                        match lookup(&self.ix.detected, id) {
                            Some(a) => {
                                let list = &t.detected_apps[a].devices;
                                page(list.len(), 1000, 1000, &|i| {
                                    render::managed_device(t, list[i] as usize)
                                })
                            }
                            None => not_found(id),
                        }
                    }
                    _ => self.error(
                        Service::Graph,
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!(
                            "Resource not found for the segment '{}'.",
                            rest.last().unwrap_or(&"")
                        ),
                    ),
                }
            }
            ["deviceAppManagement", "mobileApps"] => {
                if has("DeviceManagementApps.Read.All") {
                    page(t.mobile_apps.len(), 1000, 1000, &|i| {
                        render::mobile_app(t, i)
                    })
                } else {
                    denied_intune("DeviceManagementApps.Read.All")
                }
            }
            // Removed in June 2023, in beta and v1.0 alike: real Graph
            // answers exactly this (microsoft-graph-docs-contrib#1106).
            ["deviceAppManagement", "mobileApps", _, "deviceStatuses"] => self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Resource not found for the segment 'deviceStatuses'.",
            ),
            _ => self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    segs.first().unwrap_or(&"")
                ),
            ),
        }
    }
    /// What Graph does with the `$filter` of a listing: the records'
    /// `(field, value)` conditions to apply (all must hold), none, or the
    /// refusal.
    ///
    /// Directory objects reject what they do not support, with 400
    /// `Request_UnsupportedQuery` "Unsupported or invalid query filter
    /// clause specified for property 'X' of resource 'User'."
    /// (microsoftgraph/microsoft-graph-docs#14586, #14144) and a clause
    /// they cannot read, such as a quoted Boolean, with 400 `BadRequest`
    /// "Invalid filter clause" (microsoftgraph/microsoft-graph-docs#3044,
    /// msgraph-sdk-dotnet#1190). Intune's managed devices filter on a few
    /// properties and silently ignore a filter on any other, answering
    /// every device (microsoft-graph-explorer-v4#3125 for `userId`,
    /// microsoft-graph-docs-contrib#235 for `deviceEnrollmentType`): a
    /// client must not rely on it. Other Intune listings apply
    /// `field eq 'value'`.
    #[allow(clippy::type_complexity)]
    fn graph_filter(&self, segs: &[&str], q: &Query) -> Result<Vec<(String, Value)>, Reply> {
        let Some(filter) = q.get("$filter") else {
            return Ok(Vec::new());
        };
        let support = match segs {
            ["users"] => FilterSupport::Directory("User", USER_FILTERS),
            ["groups"] => FilterSupport::Directory("Group", GROUP_FILTERS),
            ["servicePrincipals"] => {
                FilterSupport::Directory("ServicePrincipal", SERVICE_PRINCIPAL_FILTERS)
            }
            // Filtering members needs advanced query parameters
            // (ConsistencyLevel: eventual and $count), which this
            // simulated tenant does not offer.
            ["groups", _, "members"] => FilterSupport::Directory("DirectoryObject", &[]),
            ["organization"] => FilterSupport::Directory("Organization", &[]),
            ["deviceManagement", "managedDevices"] => FilterSupport::Ignoring(&[
                ("operatingSystem", FilterType::Text),
                ("deviceName", FilterType::Text),
                ("azureADDeviceId", FilterType::Text),
            ]),
            _ => FilterSupport::Lenient,
        };
        let invalid = || {
            self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid filter clause",
            )
        };
        let clauses = filter_clauses(filter);
        match support {
            FilterSupport::Lenient => Ok(clauses
                .into_iter()
                .flatten()
                .filter_map(|(f, v)| match v {
                    FilterValue::Text(t) => Some((f, json!(t))),
                    FilterValue::Bool(_) => None,
                })
                .collect()),
            FilterSupport::Ignoring(props) => {
                let Some(clauses) = clauses else {
                    return Err(invalid());
                };
                let mut kept = Vec::new();
                for (field, value) in clauses {
                    match props.iter().find(|(p, _)| p.eq_ignore_ascii_case(&field)) {
                        Some((p, ty)) => match typed(*ty, value) {
                            Some(v) => kept.push((p.to_string(), v)),
                            None => return Err(invalid()),
                        },
                        // Ignored: every record matches.
                        None => return Ok(Vec::new()),
                    }
                }
                Ok(kept)
            }
            FilterSupport::Directory(resource, props) => {
                let Some(clauses) = clauses else {
                    return Err(invalid());
                };
                let mut kept = Vec::new();
                for (field, value) in clauses {
                    let Some((p, ty)) = props.iter().find(|(p, _)| p.eq_ignore_ascii_case(&field))
                    else {
                        return Err(self.error(
                            Service::Graph,
                            StatusCode::BAD_REQUEST,
                            "Request_UnsupportedQuery",
                            &format!(
                                "Unsupported or invalid query filter clause specified for property '{field}' of resource '{resource}'."
                            ),
                        ));
                    };
                    match typed(*ty, value) {
                        Some(v) => kept.push((p.to_string(), v)),
                        None => return Err(invalid()),
                    }
                }
                Ok(kept)
            }
        }
    }

    /// `POST /beta/deviceManagement/reports/getDeviceInstallStatusReport`:
    /// the devices a managed app is assigned to, with their install state,
    /// as a table (`TotalRowCount`, `Schema`, `Values`), served as
    /// `application/octet-stream` like the real one (see `crate::report`).
    /// `filter` must name the app (`(ApplicationId eq '…')`, required, as
    /// MicrosoftDocs/memdocs#1887 found) and may add `AppInstallState` or
    /// `InstallState`; `select` names known columns (asking for an
    /// `_loc` column is refused: it comes with its own); `skip` and `top`
    /// page. The wording of the refusals is this simulated tenant's, in
    /// Intune's error envelope.
    fn install_status_report(&self, body: &[u8]) -> Reply {
        let t = &*self.t;
        let intune_error = |message: &str| {
            let op = self.rng.lock().map(|mut r| r.guid()).unwrap_or_default();
            self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "{{\"_version\": 3, \"Message\": \"{message} - Operation ID (for customer support): {op}\", \"CustomApiErrorPhrase\": \"\", \"RetryAfter\": null, \"ErrorSourceService\": \"\", \"HttpHeaders\": \"{{}}\"}}"
                ),
            )
        };
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return intune_error("The request body is not valid JSON.");
        };
        // The filter: `(Column eq 'value')` clauses joined by `and`.
        let filter = req["filter"].as_str().unwrap_or("");
        let mut app = None;
        let mut state: Option<String> = None;
        for clause in filter
            .split(" and ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let inner = clause
                .strip_prefix('(')
                .and_then(|c| c.strip_suffix(')'))
                .unwrap_or(clause);
            let Some((column, value)) = super::paging::parse_eq_filter(inner) else {
                return intune_error(&format!("Invalid filter: '{filter}'."));
            };
            match column.as_str() {
                "ApplicationId" => app = Some(value),
                "AppInstallState" | "InstallState" => state = Some(value),
                other => {
                    return intune_error(&format!(
                        "Filtering on column '{other}' is not supported by this report."
                    ));
                }
            }
        }
        let Some(app_id) = app else {
            return intune_error("The filter must specify ApplicationId.");
        };
        // Columns: as selected, each `_loc` right after its own; all of
        // them without a select.
        let all = render::INSTALL_STATUS_COLUMNS;
        let mut columns: Vec<usize> = Vec::new();
        match req["select"].as_array().filter(|a| !a.is_empty()) {
            None => columns.extend(0..all.len()),
            Some(select) => {
                for c in select {
                    let name = c.as_str().unwrap_or("");
                    let Some(at) = all
                        .iter()
                        .position(|(n, _)| *n == name && !n.ends_with("_loc"))
                    else {
                        return intune_error(&format!("Invalid select column: '{name}'."));
                    };
                    columns.push(at);
                    if let Some(loc) = all.iter().position(|(n, _)| *n == format!("{name}_loc")) {
                        columns.push(loc);
                    }
                }
            }
        }
        let skip = req["skip"].as_u64().unwrap_or(0) as usize;
        let top = req["top"].as_u64().unwrap_or(50).clamp(1, 1000) as usize;
        // `orderBy`: columns, each optionally followed by ` desc`.
        let mut order: Vec<(usize, bool)> = Vec::new();
        for o in req["orderBy"].as_array().into_iter().flatten() {
            let text = o.as_str().unwrap_or("");
            let (name, desc) = match text.split_once(' ') {
                Some((n, d)) => (n, d.trim().eq_ignore_ascii_case("desc")),
                None => (text, false),
            };
            let Some(at) = all.iter().position(|(n, _)| *n == name) else {
                return intune_error(&format!("Invalid orderBy column: '{name}'."));
            };
            order.push((at, desc));
        }
        let mut rows: Vec<Vec<Value>> = match self.ix.mobile.get(&app_id.to_lowercase()) {
            None => Vec::new(),
            Some(&a) => t.mobile_apps[a]
                .device_statuses
                .iter()
                .map(|&(d, st)| render::install_status_row(t, a, d as usize, st))
                .filter(|row| {
                    // InstallState and AppInstallState carry the same code.
                    state.as_deref().is_none_or(|want| {
                        want.parse::<i64>()
                            .ok()
                            .is_some_and(|w| row[9].as_i64() == Some(w))
                    })
                })
                .collect(),
        };
        let key = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        rows.sort_by(|a, b| {
            order
                .iter()
                .map(|&(c, desc)| {
                    let o = key(&a[c]).cmp(&key(&b[c]));
                    if desc { o.reverse() } else { o }
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let page: Vec<Value> = rows
            .iter()
            .skip(skip)
            .take(top)
            .map(|row| Value::Array(columns.iter().map(|&c| row[c].clone()).collect()))
            .collect();
        let schema: Vec<Value> = columns
            .iter()
            .map(|&c| json!({"Column": all[c].0, "PropertyType": all[c].1}))
            .collect();
        Reply::ok(json!({
            "TotalRowCount": rows.len(),
            "Schema": schema,
            "Values": page,
        }))
        .header("content-type", "application/octet-stream".into())
    }

    /// `batch-body`: a successful sub-answer's body made into something
    /// that is not a page.
    fn batch_body_fault(&self, sub: Reply) -> Reply {
        let Some((kind, share)) = self.options.faults.batch_body else {
            return sub;
        };
        if sub.status != StatusCode::OK || !self.roll(share) {
            return sub;
        }
        let text = match &sub.body {
            ReplyBody::Json(v) => v.to_string(),
            ReplyBody::Cached(b) | ReplyBody::Serialized(b) => {
                String::from_utf8_lossy(b).into_owned()
            }
            _ => return sub,
        };
        use super::super::knobs::BatchBody;
        let body = match kind {
            BatchBody::Null => Value::Null,
            BatchBody::Base64 => {
                use base64::Engine;
                json!(base64::engine::general_purpose::STANDARD.encode(text))
            }
            BatchBody::Error => {
                json!({"error": {"code": "generalException", "message": "General exception while processing"}})
            }
            BatchBody::ValueNull => json!({"value": null}),
        };
        Reply {
            status: sub.status,
            headers: sub.headers,
            body: ReplyBody::Json(body),
        }
    }

    /// JSON `$batch`: up to 20 requests, each answered on its own.
    pub(super) fn batch(&self, version: &str, body: &[u8], headers: &HeaderMap) -> Reply {
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid batch payload format.",
            );
        };
        let Some(requests) = req["requests"].as_array() else {
            return self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid batch payload format.",
            );
        };
        if requests.len() > 20 {
            return self.error(
                Service::Graph,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Unable to deserialize content. Maximum number of requests in a batch is 20.",
            );
        }
        // Written out by hand so that a sub-request's cached answer goes in
        // as the bytes it is (see `ServerOptions::cache_responses`), in the
        // order Graph writes a response's members.
        let mut out = br#"{"responses":["#.to_vec();
        for (n, r) in requests.iter().enumerate() {
            let id = r["id"].as_str().unwrap_or("").to_string();
            let method = r["method"].as_str().unwrap_or("GET");
            let url = r["url"].as_str().unwrap_or("");
            let (p, qs) = url.split_once('?').unwrap_or((url, ""));
            let path = format!("/graph/{version}/{}", p.trim_start_matches('/'));
            let m = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            let sub = if m == Method::GET {
                self.dispatch(&m, &path, qs, headers, &[], true)
            } else if m == Method::POST && super::hunting::is_hunting(&path["/graph".len()..]) {
                // Whether Graph runs hunting queries in a batch is not
                // documented; the simulated tenant refuses them.
                self.error(
                    Service::Graph,
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "runHuntingQuery cannot be called inside a JSON batch; send it as a request of its own.",
                )
            } else {
                self.error(
                    Service::Graph,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                )
            };
            self.log(&m, &path, qs, sub.status);
            let mut h = serde_json::Map::new();
            h.insert("Content-Type".into(), json!("application/json"));
            for (k, v) in &sub.headers {
                h.insert(k.to_string(), json!(v));
            }
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"id":"#);
            out.extend_from_slice(json!(id).to_string().as_bytes());
            out.extend_from_slice(br#","status":"#);
            out.extend_from_slice(sub.status.as_u16().to_string().as_bytes());
            out.extend_from_slice(br#","headers":"#);
            out.extend_from_slice(Value::Object(h).to_string().as_bytes());
            out.extend_from_slice(br#","body":"#);
            let sub = self.batch_body_fault(sub);
            match sub.body {
                ReplyBody::Json(v) => out.extend_from_slice(v.to_string().as_bytes()),
                ReplyBody::Raw(s) => out.extend_from_slice(json!(s).to_string().as_bytes()),
                ReplyBody::Cached(b) | ReplyBody::Serialized(b) => out.extend_from_slice(&b),
                ReplyBody::Drop => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        Reply {
            status: StatusCode::OK,
            headers: vec![],
            body: ReplyBody::Cached(bytes::Bytes::from(out)),
        }
    }
}

/// The properties a user has without `$select` (the "List users" page:
/// "returns a default set of properties only"; its example answer lists
/// these eleven).
pub(super) const USER_DEFAULT_PROPERTIES: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// A record with its `id` and the properties `$select` names.
fn selected_properties(mut v: Value, select: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| k == "id" || select.split(',').any(|s| s.trim().eq_ignore_ascii_case(k)));
    }
    v
}

fn default_user_properties(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| USER_DEFAULT_PROPERTIES.contains(&k.as_str()));
    }
    v
}

/// What a listing does with a `$filter` (see `Sim::graph_filter`).
enum FilterSupport {
    /// Rejects a property not listed; applies `eq` on those listed.
    Directory(&'static str, &'static [(&'static str, FilterType)]),
    /// Applies `eq` on the properties listed, ignores a filter on others.
    Ignoring(&'static [(&'static str, FilterType)]),
    /// Applies `field eq 'value'`, ignores anything else.
    Lenient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterType {
    Text,
    Bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FilterValue {
    Text(String),
    Bool(bool),
}

/// A property's value in a filter, checked against its type: a quoted
/// Boolean or an unquoted string is not a clause Graph can read.
fn typed(ty: FilterType, v: FilterValue) -> Option<Value> {
    match (ty, v) {
        (FilterType::Text, FilterValue::Text(t)) => Some(json!(t)),
        (FilterType::Bool, FilterValue::Bool(b)) => Some(json!(b)),
        _ => None,
    }
}

/// Directory properties that support `$filter` with `eq` without advanced
/// query parameters (the user, group and servicePrincipal resource pages;
/// `officeLocation` and `companyName` are among those that do not,
/// microsoft-graph-docs#14144 and microsoft-graph-docs-contrib#1326).
const USER_FILTERS: &[(&str, FilterType)] = &[
    ("id", FilterType::Text),
    ("displayName", FilterType::Text),
    ("givenName", FilterType::Text),
    ("surname", FilterType::Text),
    ("userPrincipalName", FilterType::Text),
    ("mail", FilterType::Text),
    ("mailNickname", FilterType::Text),
    ("jobTitle", FilterType::Text),
    ("employeeId", FilterType::Text),
    ("userType", FilterType::Text),
    ("accountEnabled", FilterType::Bool),
];
const GROUP_FILTERS: &[(&str, FilterType)] = &[
    ("id", FilterType::Text),
    ("displayName", FilterType::Text),
    ("mail", FilterType::Text),
    ("mailNickname", FilterType::Text),
    ("securityEnabled", FilterType::Bool),
    ("mailEnabled", FilterType::Bool),
];
const SERVICE_PRINCIPAL_FILTERS: &[(&str, FilterType)] = &[
    ("id", FilterType::Text),
    ("appId", FilterType::Text),
    ("displayName", FilterType::Text),
    ("servicePrincipalType", FilterType::Text),
    ("accountEnabled", FilterType::Bool),
];

/// `a eq 'x' and b eq true`: the clauses, or `None` when the filter is
/// anything else (other operators, functions, `or`, a broken literal).
fn filter_clauses(filter: &str) -> Option<Vec<(String, FilterValue)>> {
    let mut out = Vec::new();
    for clause in filter.split(" and ") {
        let (field, value) = clause.trim().split_once(" eq ")?;
        let field = field.trim();
        if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let value = value.trim();
        let value =
            if let Some(quoted) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                FilterValue::Text(quoted.replace("''", "'"))
            } else {
                match value {
                    "true" => FilterValue::Bool(true),
                    "false" => FilterValue::Bool(false),
                    _ => return None,
                }
            };
        out.push((field.to_string(), value));
    }
    Some(out)
}
