//! Azure Resource Manager and Azure Resource Graph.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;

impl Sim {
    pub(super) fn arm(&self, method: &Method, rest: &str, q: &Query, body: &[u8]) -> Reply {
        let t = &*self.t;
        if q.get("api-version").is_none() {
            return self.error(
                Service::Arm,
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        let forbidden = self.options.faults.forbid.contains(&SourceName::Arm);
        let lower = rest.to_lowercase();
        let segs: Vec<&str> = lower.trim_matches('/').split('/').collect();
        if let Some(refused) = self.api_version_refused(method, &segs, q.get("api-version")) {
            return refused;
        }
        let denied = |action: &str, scope: &str| {
            self.error(Service::Arm, StatusCode::FORBIDDEN, "AuthorizationFailed", &format!("The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.", t.client_id, self.app_oid))
        };
        let sub_of = |s: &str| -> Result<usize, Reply> {
            match self.ix.subs.get(s) {
                Some(&i) if !forbidden => Ok(i),
                Some(_) => Err(denied(
                    "Microsoft.Resources/subscriptions/read",
                    &format!("/subscriptions/{s}"),
                )),
                None => Err(self.error(
                    Service::Arm,
                    StatusCode::NOT_FOUND,
                    "SubscriptionNotFound",
                    &format!("The subscription '{s}' could not be found."),
                )),
            }
        };
        let path = rest.to_string();
        let page = |items: &[usize], render: &dyn Fn(usize) -> Value| -> Reply {
            let top = q
                .get("$top")
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(1000)
                .clamp(1, 1000);
            let offset = match q.get("$skiptoken") {
                None => 0,
                Some(tok) => match decode_skiptoken(tok) {
                    Some(n) => n,
                    None => {
                        return self.error(
                            Service::Arm,
                            StatusCode::BAD_REQUEST,
                            "InvalidSkipToken",
                            "The provided skip token is invalid.",
                        );
                    }
                },
            };
            let end = (offset + top).min(items.len());
            let mut value: Vec<Value> = items[offset.min(end)..end]
                .iter()
                .map(|&i| render(i))
                .collect();
            self.spoil(&mut value);
            let mut out = json!({"value": value});
            // Back to a page already served (`loop-next`).
            let next = if end < items.len() {
                Some(end)
            } else if self.loops(&format!("/arm{path}")) {
                Some(if items.len() > top { top } else { 0 })
            } else {
                None
            };
            if let Some(next) = next {
                let mut params: Vec<(String, String)> =
                    q.0.iter()
                        .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
                        .cloned()
                        .collect();
                params.push(("$skiptoken".into(), encode_skiptoken(next)));
                out["nextLink"] =
                    json!(format!("{}/arm{path}?{}", self.base, encode_query(&params)));
            }
            Reply::ok(out)
        };
        if method == Method::POST {
            return self.resource_graph(body, forbidden);
        }
        match segs.as_slice() {
            ["subscriptions"] => {
                let visible: Vec<usize> = if forbidden {
                    vec![]
                } else {
                    (0..t.subscriptions.len()).collect()
                };
                page(&visible, &|i| {
                    let mut v = render::subscription(t, i);
                    if i == 0 {
                        self.odd_values(&mut v);
                    }
                    v
                })
            }
            ["subscriptions", s, "resourcegroups"] => match sub_of(s) {
                Ok(si) => page(&self.ix.rgs_of_sub[si], &|i| render::resource_group(t, i)),
                Err(r) => r,
            },
            ["subscriptions", s, "resources"] => match sub_of(s) {
                Ok(si) => page(&self.ix.resources_of_sub[si], &|i| render::resource(t, i)),
                Err(r) => r,
            },
            ["subscriptions", s, "resourcegroups", rg, "resources"] => match sub_of(s) {
                Ok(si) => match self.ix.resources_of_rg.get(&(si, rg.to_string())) {
                    Some(list) => page(list, &|i| render::resource(t, i)),
                    None if self.ix.rgs_of_sub[si]
                        .iter()
                        .any(|&g| t.resource_groups[g].name.eq_ignore_ascii_case(rg)) =>
                    {
                        page(&[], &|i| render::resource(t, i))
                    }
                    None => self.error(
                        Service::Arm,
                        StatusCode::NOT_FOUND,
                        "ResourceGroupNotFound",
                        &format!("Resource group '{rg}' could not be found."),
                    ),
                },
                Err(r) => r,
            },
            [
                "subscriptions",
                s,
                "providers",
                "microsoft.authorization",
                "roleassignments",
            ] => match sub_of(s) {
                Ok(si) => {
                    let list = t.assignments_in_sub(si);
                    let idx: Vec<usize> = (0..list.len()).collect();
                    page(&idx, &|i| render::role_assignment(t, si, list[i]))
                }
                Err(r) => r,
            },
            [
                "subscriptions",
                s,
                "providers",
                "microsoft.authorization",
                "roledefinitions",
            ] => match sub_of(s) {
                Ok(si) => {
                    let idx: Vec<usize> = (0..t.role_definitions.len()).collect();
                    page(&idx, &|i| render::role_definition(t, si, i))
                }
                Err(r) => r,
            },
            _ => self.error(
                Service::Arm,
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                &format!("The resource type could not be found for path '{rest}'."),
            ),
        }
    }
    /// ARM checks `api-version` against the versions the resource
    /// provider of the path supports, and each provider words its refusal
    /// its own way (all quoted from real answers):
    /// - Microsoft.Resources (subscriptions, resource groups, resources):
    ///   400 `InvalidApiVersionParameter`, "The api-version '…' is invalid.
    ///   The supported versions are '…'." (Azure/azure-rest-api-specs#11711,
    ///   pulumi/pulumi-azure-native#3637);
    /// - Microsoft.Authorization role assignments: `InvalidResourceType`,
    ///   "The resource type 'roleAssignments' could not be found in the
    ///   namespace 'Microsoft.Authorization' for api version '…'. The
    ///   supported api-versions are '…'." (Azure/azure-sdk-for-java#28334);
    /// - role definitions: 400 `NoRegisteredProviderFound`, "No registered
    ///   resource provider found for location '…' and API version '…' for
    ///   type 'roleDefinitions'. The supported api-versions are '…'. The
    ///   supported locations are ''." (same thread);
    /// - Resource Graph: `InvalidResourceType` for type 'resources' in the
    ///   namespace 'Microsoft.ResourceGraph' (microsoft/ARI#306).
    ///
    /// `InvalidResourceType` is ARM's 404 (the SDKs raise it as
    /// ResourceNotFoundError, Azure/azure-sdk-for-python#17932).
    fn api_version_refused(
        &self,
        method: &Method,
        segs: &[&str],
        version: Option<&str>,
    ) -> Option<Reply> {
        let version = version?;
        let provider = if *method == Method::POST {
            ArmProvider::ResourceGraph
        } else {
            match segs {
                [.., "microsoft.authorization", "roleassignments"] => ArmProvider::RoleAssignments,
                [.., "microsoft.authorization", "roledefinitions"] => ArmProvider::RoleDefinitions,
                _ => ArmProvider::Resources,
            }
        };
        let supported = provider.versions();
        if supported.contains(&version) {
            return None;
        }
        let (status, code, message) = match provider {
            ArmProvider::Resources => (
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{version}' is invalid. The supported versions are '{}'.",
                    supported.join(",")
                ),
            ),
            ArmProvider::RoleAssignments => (
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                format!(
                    "The resource type 'roleAssignments' could not be found in the namespace 'Microsoft.Authorization' for api version '{version}'. The supported api-versions are '{}'.",
                    supported.join(",")
                ),
            ),
            ArmProvider::RoleDefinitions => (
                StatusCode::BAD_REQUEST,
                "NoRegisteredProviderFound",
                format!(
                    "No registered resource provider found for location '{}' and API version '{version}' for type 'roleDefinitions'. The supported api-versions are '{}'. The supported locations are ''.",
                    self.t
                        .resource_groups
                        .first()
                        .map(|g| g.location)
                        .unwrap_or("westeurope"),
                    supported.join(", ")
                ),
            ),
            ArmProvider::ResourceGraph => (
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                format!(
                    "The resource type 'resources' could not be found in the namespace 'Microsoft.ResourceGraph' for api version '{version}'. The supported api-versions are '{}'.",
                    supported.join(",")
                ),
            ),
        };
        Some(self.error(Service::Arm, status, code, &message))
    }

    /// Azure Resource Graph: `POST /providers/Microsoft.ResourceGraph/resources`.
    /// Understands the `Resources` and `ResourceContainers` tables with
    /// optional `| where type =~ '...'` clauses; paging by `$skipToken`.
    pub(super) fn resource_graph(&self, body: &[u8], forbidden: bool) -> Reply {
        let t = &*self.t;
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return self.error(
                Service::Arm,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Please provide a valid JSON request body.",
            );
        };
        let Some(query) = req["query"].as_str() else {
            return self.error(
                Service::Arm,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "The request body must contain 'query'.",
            );
        };
        let subs: Vec<usize> = match req["subscriptions"].as_array() {
            Some(a) => a
                .iter()
                .filter_map(|s| s.as_str())
                .filter_map(|s| self.ix.subs.get(&s.to_lowercase()).copied())
                .collect(),
            None => (0..t.subscriptions.len()).collect(),
        };
        let subs: Vec<usize> = if forbidden { vec![] } else { subs };
        let mut parts = query.split('|').map(str::trim);
        let table = parts.next().unwrap_or("").to_lowercase();
        let mut type_filters: Vec<String> = Vec::new();
        for clause in parts {
            let c = clause.to_lowercase();
            if let Some(rest) = c
                .strip_prefix("where type =~ ")
                .or_else(|| c.strip_prefix("where type == "))
            {
                type_filters.push(
                    rest.trim_matches(|ch| ch == '\'' || ch == '"' || ch == ' ')
                        .to_string(),
                );
            } else if c.starts_with("project") || c.starts_with("order by") || c.is_empty() {
            } else {
                return self.error(Service::Arm, StatusCode::BAD_REQUEST, "BadRequest", &format!("Please provide below info when asking for support: timestamp = {}. This simulated Resource Graph understands only 'where type =~', 'project' and 'order by' clauses; got '{clause}'.", render::ts(now_unix())));
            }
        }
        let rows: Vec<Value> =
            match table.as_str() {
                "resources" => subs
                    .iter()
                    .flat_map(|&s| self.ix.resources_of_sub[s].iter().copied())
                    .filter(|&i| {
                        type_filters.is_empty()
                            || type_filters
                                .iter()
                                .any(|f| t.resources[i].arm_type.eq_ignore_ascii_case(f))
                    })
                    .map(|i| render::resource_graph_row(t, i))
                    .collect(),
                "resourcecontainers" => subs
                    .iter()
                    .flat_map(|&s| self.ix.rgs_of_sub[s].iter().copied())
                    .map(|i| {
                        let mut v = render::resource_group(t, i);
                        v["type"] = json!("microsoft.resources/subscriptions/resourcegroups");
                        v["subscriptionId"] =
                            json!(t.subscriptions[t.resource_groups[i].sub as usize].id);
                        v
                    })
                    .collect(),
                other => return self.error(
                    Service::Arm,
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!(
                        "Table '{other}' could not be found. Use Resources or ResourceContainers."
                    ),
                ),
            };
        let opts = &req["options"];
        let top = opts["$top"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
        let offset = match opts["$skipToken"].as_str() {
            Some(tok) => match decode_skiptoken(tok) {
                Some(n) => n,
                None => {
                    return self.error(
                        Service::Arm,
                        StatusCode::BAD_REQUEST,
                        "InvalidSkipToken",
                        "The provided skip token is invalid.",
                    );
                }
            },
            None => opts["$skip"].as_u64().unwrap_or(0) as usize,
        };
        let end = (offset + top).min(rows.len());
        let mut data: Vec<Value> = rows[offset.min(end)..end].to_vec();
        self.spoil(&mut data);
        let mut out = json!({
            "totalRecords": rows.len(),
            "count": data.len(),
            "data": data,
            "facets": [],
            "resultTruncated": "false",
        });
        if end < rows.len() {
            out["$skipToken"] = json!(encode_skiptoken(end));
        } else if self.loops("/arm/providers/Microsoft.ResourceGraph/resources") {
            // A token already given (`loop-next`).
            let again = if rows.len() > top { top } else { 0 };
            out["$skipToken"] = json!(encode_skiptoken(again));
        }
        Reply::ok(out)
    }
}

/// The resource providers behind the paths this simulated ARM serves, as
/// far as `api-version` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArmProvider {
    Resources,
    RoleAssignments,
    RoleDefinitions,
    ResourceGraph,
}

impl ArmProvider {
    /// The versions each provider lists in its refusal, newest first as it
    /// lists them. Microsoft.Resources' list is the one a 2024 refusal
    /// quoted (pulumi/pulumi-azure-native#3637); the Authorization lists
    /// are those quoted in 2022 (Azure/azure-sdk-for-java#28334) with
    /// 2022-04-01, the stable version published since
    /// (azure-rest-api-specs `Microsoft.Authorization/stable/2022-04-01`);
    /// Resource Graph's is the public cloud's (microsoft/ARI#306 quotes the
    /// US Government list, which lacks 2024-04-01).
    fn versions(self) -> &'static [&'static str] {
        match self {
            ArmProvider::Resources => &[
                "2024-08-01",
                "2024-06-01-preview",
                "2024-03-01",
                "2023-07-01",
                "2023-07-01-preview",
                "2023-03-01-preview",
                "2022-12-01",
                "2022-11-01-preview",
                "2022-09-01",
                "2022-06-01",
                "2022-05-01",
                "2022-03-01-preview",
                "2022-01-01",
                "2021-04-01",
                "2021-01-01",
                "2020-10-01",
                "2020-09-01",
                "2020-08-01",
                "2020-07-01",
                "2020-06-01",
                "2020-05-01",
                "2020-01-01",
                "2019-11-01",
                "2019-10-01",
                "2019-09-01",
                "2019-08-01",
                "2019-07-01",
                "2019-06-01",
                "2019-05-10",
                "2019-05-01",
                "2019-03-01",
                "2018-11-01",
                "2018-09-01",
                "2018-08-01",
                "2018-07-01",
                "2018-06-01",
                "2018-05-01",
                "2018-02-01",
                "2018-01-01",
                "2017-12-01",
                "2017-08-01",
                "2017-06-01",
                "2017-05-10",
                "2017-05-01",
                "2017-03-01",
                "2016-09-01",
                "2016-07-01",
                "2016-06-01",
                "2016-02-01",
                "2015-11-01",
                "2015-01-01",
                "2014-04-01-preview",
                "2014-04-01",
                "2014-01-01",
                "2013-03-01",
                "2014-02-26",
                "2014-04",
            ],
            ArmProvider::RoleAssignments => &[
                "2014-04-01-preview",
                "2014-07-01-preview",
                "2014-10-01-preview",
                "2015-05-01-preview",
                "2015-06-01",
                "2015-07-01",
                "2016-07-01",
                "2017-05-01",
                "2017-09-01",
                "2017-10-01-preview",
                "2018-01-01-preview",
                "2018-07-01",
                "2018-09-01-preview",
                "2018-12-01-preview",
                "2019-04-01-preview",
                "2020-03-01-preview",
                "2020-04-01-preview",
                "2020-08-01-preview",
                "2020-10-01-preview",
                "2021-04-01-preview",
                "2022-01-01-preview",
                "2022-04-01",
            ],
            ArmProvider::RoleDefinitions => &[
                "2014-04-01-preview",
                "2014-07-01-preview",
                "2014-10-01-preview",
                "2015-05-01-preview",
                "2015-06-01",
                "2015-07-01",
                "2016-07-01",
                "2017-05-01",
                "2017-09-01",
                "2018-01-01-preview",
                "2018-07-01",
                "2022-04-01",
            ],
            ArmProvider::ResourceGraph => &[
                "2018-09-01-preview",
                "2019-04-01",
                "2020-04-01-preview",
                "2021-03-01",
                "2021-06-01-preview",
                "2022-10-01",
                "2024-04-01",
            ],
        }
    }
}
