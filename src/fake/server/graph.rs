//! Microsoft Graph (v1.0 and the one beta path), and JSON `$batch`.

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
        let page =
            |total: usize, default_top: usize, max_top: usize, render: &dyn Fn(usize) -> Value| {
                self.odata_page(
                    Service::Graph,
                    &format!("/{version}{path_owned}"),
                    q,
                    total,
                    default_top,
                    max_top,
                    render,
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
                    Some(i) => Reply::ok(render::user(t, i)),
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
            ["deviceAppManagement", "mobileApps", id, "deviceStatuses"] => {
                if version != "beta" {
                    return self.error(
                        Service::Graph,
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "Resource not found for the segment 'deviceStatuses'.",
                    );
                }
                if !has("DeviceManagementApps.Read.All") {
                    return denied_intune("DeviceManagementApps.Read.All");
                }
                match lookup(&self.ix.mobile, id) {
                    Some(a) => {
                        let list = &t.mobile_apps[a].device_statuses;
                        page(list.len(), 1000, 1000, &|i| {
                            render::mobile_app_install_status(t, a, list[i].0 as usize, list[i].1)
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
                    segs.first().unwrap_or(&"")
                ),
            ),
        }
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
