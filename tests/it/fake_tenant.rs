//! The simulated tenant, walked with a plain HTTP client over loopback:
//! paging, $select/$top, $batch, audiences, throttling, every fault knob.

use crate::common;

use std::time::Duration;

use common::sim::{self, start};
use common::wire::{ARM, DEFENDER, GRAPH, client, get, token, token_response, urlencode, walk};
use serde_json::{Value, json};
use tenx_sim::{Faults, Manifest, RunningTenant, ServerOptions, ThrottleSpec};

const API: &str = "api-version=2022-12-01";
/// Microsoft.Authorization's: it does not know Microsoft.Resources' 2022-12-01.
const AUTHZ: &str = "api-version=2022-04-01";

fn count(m: &Manifest, ty: &str) -> usize {
    m.entities.get(ty).copied().unwrap_or(0)
}

/// `getDeviceInstallStatusReport` for one app, `top` rows a page: each
/// row's DeviceId. Checks the content type real Graph sends.
async fn report_rows(s: &RunningTenant, g: &str, app: &str, top: usize) -> Vec<String> {
    let url = format!(
        "{}/graph/beta/deviceManagement/reports/getDeviceInstallStatusReport",
        s.base_url()
    );
    let mut ids = Vec::new();
    loop {
        let body = json!({"filter": format!("(ApplicationId eq '{app}')"), "select": ["DeviceName", "DeviceId"], "skip": ids.len(), "top": top, "orderBy": []});
        let r = client()
            .post(&url)
            .bearer_auth(g)
            .json(&body)
            .send()
            .await
            .expect("report");
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/octet-stream")
        );
        let v: Value = serde_json::from_slice(&r.bytes().await.expect("body")).expect("JSON");
        let schema: Vec<&str> = v["Schema"]
            .as_array()
            .expect("Schema")
            .iter()
            .filter_map(|c| c["Column"].as_str())
            .collect();
        assert_eq!(schema, ["DeviceName", "DeviceId"]);
        let values = v["Values"].as_array().expect("Values");
        assert!(values.len() <= top);
        ids.extend(
            values
                .iter()
                .filter_map(|r| r[1].as_str().map(String::from)),
        );
        let total = v["TotalRowCount"].as_u64().expect("TotalRowCount") as usize;
        if ids.len() >= total || values.is_empty() {
            assert_eq!(ids.len(), total);
            return ids;
        }
    }
}

#[tokio::test]
async fn managed_app_install_state_comes_from_the_reports_api_and_the_removed_path_says_so() {
    let s = start(200, 4, ServerOptions::default()).await;
    let g = token(&s, GRAPH).await;
    let b = s.base_url();
    let app = &s.tenant.mobile_apps[0];
    // The listing Microsoft removed in 2023 answers as real Graph does.
    for version in ["beta", "v1.0"] {
        let (status, _, body) = get(
            &format!(
                "{b}/graph/{version}/deviceAppManagement/mobileApps/{}/deviceStatuses",
                app.id
            ),
            &g,
        )
        .await;
        assert_eq!(status, 400);
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["error"]["code"], "BadRequest");
        assert_eq!(
            v["error"]["message"],
            "Resource not found for the segment 'deviceStatuses'."
        );
    }
    // The report pages with skip and top and names the app's devices.
    let mut want: Vec<String> = app
        .device_statuses
        .iter()
        .map(|(d, _)| s.tenant.devices[*d as usize].id.clone())
        .collect();
    assert!(want.len() > 5, "{} devices", want.len());
    let mut got = report_rows(&s, &g, &app.id, 4).await;
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // An app with no devices: an empty table. Without a select: every
    // column, AppInstallState with its words.
    let post = |version: &'static str, body: Value| {
        let url =
            format!("{b}/graph/{version}/deviceManagement/reports/getDeviceInstallStatusReport");
        let g = g.clone();
        async move {
            let r = client()
                .post(url)
                .bearer_auth(g)
                .json(&body)
                .send()
                .await
                .expect("report");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let (status, body) = post(
        "beta",
        json!({"filter": "(ApplicationId eq 'no-such-app')"}),
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["TotalRowCount"], 0);
    assert_eq!(v["Values"], json!([]));
    let (_, body) = post(
        "beta",
        json!({"filter": format!("(ApplicationId eq '{}')", app.id), "top": 1}),
    )
    .await;
    let v: Value = serde_json::from_str(&body).expect("json");
    let columns: Vec<&str> = v["Schema"]
        .as_array()
        .expect("Schema")
        .iter()
        .filter_map(|c| c["Column"].as_str())
        .collect();
    assert!(
        columns.contains(&"DeviceId") && columns.contains(&"AppInstallState_loc"),
        "{columns:?}"
    );
    assert_eq!(v["Values"][0].as_array().expect("row").len(), columns.len());
    // Refusals: no ApplicationId, a column it cannot filter or select, v1.0.
    for (version, body) in [
        ("beta", json!({"select": ["DeviceId"]})),
        ("beta", json!({"filter": "(DeviceName eq 'x')"})),
        ("beta", json!({"filter": "ApplicationId = 'x'"})),
        (
            "beta",
            json!({"filter": format!("(ApplicationId eq '{}')", app.id), "select": ["AppInstallState_loc"]}),
        ),
        (
            "v1.0",
            json!({"filter": format!("(ApplicationId eq '{}')", app.id)}),
        ),
    ] {
        let (status, text) = post(version, body.clone()).await;
        assert_eq!(status, 400, "{body}: {text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["error"]["code"], "BadRequest", "{text}");
    }
    // A GET of a report is no read.
    let (status, _, _) = get(
        &format!("{b}/graph/beta/deviceManagement/reports/getDeviceInstallStatusReport"),
        &g,
    )
    .await;
    assert_eq!(status, 405);
    // Without any device-management permission: 403 naming all six.
    let (s, g) = with_faults("forbid=intune").await;
    let r = client()
        .post(format!(
            "{}/graph/beta/deviceManagement/reports/getDeviceInstallStatusReport",
            s.base_url()
        ))
        .bearer_auth(&g)
        .json(&json!({"filter": "(ApplicationId eq 'a')"}))
        .send()
        .await
        .expect("report");
    assert_eq!(r.status(), 403);
    let body = r.text().await.expect("body");
    for scope in [
        "DeviceManagementApps.Read.All",
        "DeviceManagementManagedDevices.ReadWrite.All",
    ] {
        assert!(body.contains(scope), "{body}");
    }
}

#[tokio::test]
async fn walking_every_collection_gives_the_manifest_counts() {
    for (users, seed) in [(150, 1), (420, 7)] {
        let s = start(users, seed, ServerOptions::default()).await;
        let m = Manifest::of(&s.tenant);
        let b = s.base_url();
        let g = token(&s, GRAPH).await;
        let d = token(&s, DEFENDER).await;
        let a = token(&s, ARM).await;

        assert_eq!(
            walk(&format!("{b}/graph/v1.0/organization"), &g)
                .await
                .len(),
            1
        );
        let users_seen = walk(&format!("{b}/graph/v1.0/users?$top=37"), &g).await;
        assert_eq!(users_seen.len(), count(&m, "azure_user"));
        let groups = walk(&format!("{b}/graph/v1.0/groups?$top=999"), &g).await;
        assert_eq!(groups.len(), count(&m, "azure_user_group"));
        let mut member_edges = 0;
        let mut others = std::collections::HashSet::new();
        for grp in &groups {
            let id = grp["id"].as_str().expect("group id");
            for mem in walk(
                &format!("{b}/graph/v1.0/groups/{id}/members?$top=50&$select=id,displayName"),
                &g,
            )
            .await
            {
                let ty = mem["@odata.type"]
                    .as_str()
                    .expect("members carry @odata.type");
                if ty == "#microsoft.graph.orgContact" || ty == "#microsoft.graph.device" {
                    others.insert(mem["id"].as_str().expect("id").to_string());
                }
                member_edges += 1;
            }
        }
        let manifest_member_edges: usize = m
            .relationships
            .iter()
            .filter(|(k, _)| k.starts_with("azure_user_group_has_"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(member_edges, manifest_member_edges);
        assert_eq!(others.len(), count(&m, "azure_group_member"));
        assert_eq!(
            walk(&format!("{b}/graph/v1.0/servicePrincipals"), &g)
                .await
                .len(),
            count(&m, "azure_service_principal")
        );

        let devices = walk(
            &format!("{b}/graph/v1.0/deviceManagement/managedDevices?$top=100"),
            &g,
        )
        .await;
        assert_eq!(devices.len(), count(&m, "intune_host_agent"));
        let policies = walk(
            &format!("{b}/graph/v1.0/deviceManagement/deviceCompliancePolicies"),
            &g,
        )
        .await;
        assert_eq!(policies.len(), count(&m, "intune_compliance_policy"));
        let mut findings = 0;
        for p in &policies {
            let id = p["id"].as_str().expect("policy id");
            for st in walk(
                &format!(
                    "{b}/graph/v1.0/deviceManagement/deviceCompliancePolicies/{id}/deviceStatuses"
                ),
                &g,
            )
            .await
            {
                let status = st["status"].as_str().expect("status");
                if ["nonCompliant", "error", "conflict"].contains(&status) {
                    findings += 1;
                }
            }
        }
        let configs = walk(
            &format!("{b}/graph/v1.0/deviceManagement/deviceConfigurations"),
            &g,
        )
        .await;
        assert_eq!(configs.len(), count(&m, "intune_device_configuration"));
        // A configuration's failing rows are findings too.
        for c in &configs {
            let id = c["id"].as_str().expect("configuration id");
            for st in walk(
                &format!(
                    "{b}/graph/v1.0/deviceManagement/deviceConfigurations/{id}/deviceStatuses"
                ),
                &g,
            )
            .await
            {
                let status = st["status"].as_str().expect("status");
                if ["nonCompliant", "error", "conflict"].contains(&status) {
                    findings += 1;
                }
            }
        }
        assert_eq!(findings, count(&m, "intune_noncompliance_finding"));
        let apps = walk(&format!("{b}/graph/v1.0/deviceManagement/detectedApps"), &g).await;
        assert_eq!(apps.len(), count(&m, "intune_detected_application"));
        let mobile = walk(
            &format!("{b}/graph/v1.0/deviceAppManagement/mobileApps"),
            &g,
        )
        .await;
        assert_eq!(mobile.len(), count(&m, "intune_managed_application"));
        // Every managed app's devices, from the install status report.
        let mut assigned = 0;
        for app in &mobile {
            let id = app["id"].as_str().expect("app id");
            assigned += report_rows(&s, &g, id, 7).await.len();
        }
        let want: usize = m
            .relationships
            .iter()
            .filter(|(k, _)| k.ends_with("_assigned_intune_managed_application"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(assigned, want);

        assert_eq!(
            walk(&format!("{b}/defender/api/machines?$top=40"), &d)
                .await
                .len(),
            count(&m, "microsoft_defender_machine")
        );
        // One row per (machine, software, CVE); a finding is a (machine,
        // CVE) pair, and some pairs have two vulnerable products.
        let rows = walk(
            &format!("{b}/defender/api/vulnerabilities/machinesVulnerabilities?$top=100"),
            &d,
        )
        .await;
        let pairs: std::collections::HashSet<(String, String)> = rows
            .iter()
            .map(|r| (r["machineId"].to_string(), r["cveId"].to_string()))
            .collect();
        assert_eq!(pairs.len(), count(&m, "microsoft_defender_vulnerability"));
        assert!(rows.len() > pairs.len(), "some pairs have a second product");
        assert_eq!(
            walk(&format!("{b}/defender/api/vulnerabilities"), &d)
                .await
                .len(),
            count(&m, "cve")
        );

        let subs = walk(&format!("{b}/arm/subscriptions?{API}"), &a).await;
        assert_eq!(subs.len(), count(&m, "azure_subscription"));
        let (mut rgs, mut resources, mut defs) = (0, 0, 0);
        let mut assignments = std::collections::HashSet::new();
        for sub in &subs {
            let sid = sub["subscriptionId"].as_str().expect("subscriptionId");
            rgs += walk(
                &format!("{b}/arm/subscriptions/{sid}/resourcegroups?{API}&$top=3"),
                &a,
            )
            .await
            .len();
            resources += walk(
                &format!("{b}/arm/subscriptions/{sid}/resources?{API}&$top=25"),
                &a,
            )
            .await
            .len();
            defs += walk(&format!("{b}/arm/subscriptions/{sid}/providers/Microsoft.Authorization/roleDefinitions?{AUTHZ}"), &a).await.len();
            for ra in walk(&format!("{b}/arm/subscriptions/{sid}/providers/Microsoft.Authorization/roleAssignments?{AUTHZ}"), &a).await {
                assignments.insert(ra["id"].as_str().expect("id").to_lowercase());
            }
        }
        assert_eq!(rgs, count(&m, "azure_resource_group"));
        let typed_resources: usize = m
            .relationships
            .iter()
            .filter(|(k, _)| k.starts_with("azure_resource_group_has_"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(resources, typed_resources);
        assert_eq!(defs, count(&m, "azure_role_definition"));
        assert_eq!(assignments.len(), count(&m, "azure_role_assignment"));

        // Resource Graph pages with $skipToken and carries properties.
        let mut rows = Vec::new();
        let mut skip: Option<String> = None;
        loop {
            let mut body = json!({"query": "Resources | project id, name, type, properties", "options": {"$top": 7}});
            if let Some(t) = &skip {
                body["options"]["$skipToken"] = json!(t);
            }
            let r = client()
                .post(format!(
                    "{b}/arm/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01"
                ))
                .bearer_auth(&a)
                .json(&body)
                .send()
                .await
                .expect("resource graph");
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.expect("json");
            rows.extend(v["data"].as_array().expect("data").iter().cloned());
            match v["$skipToken"].as_str() {
                Some(t) => skip = Some(t.to_string()),
                None => break,
            }
        }
        assert_eq!(rows.len(), typed_resources);
        assert!(rows.iter().all(|r| r["properties"].is_object()));
        s.stop().await;
    }
}

#[tokio::test]
async fn top_and_select_are_honoured_and_bounded() {
    let s = start(60, 2, ServerOptions::default()).await;
    let g = token(&s, GRAPH).await;
    let b = s.base_url();
    let (status, _, body) = get(
        &format!("{b}/graph/v1.0/users?$top=5&$select=displayName,mail"),
        &g,
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    let first = v["value"][0].as_object().expect("object");
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["displayName", "id", "mail"]);
    assert_eq!(v["value"].as_array().map(Vec::len), Some(5));
    let next = v["@odata.nextLink"].as_str().expect("nextLink");
    assert!(
        next.contains("$skiptoken=") && next.contains("$select="),
        "{next}"
    );

    let (status, _, body) = get(&format!("{b}/graph/v1.0/users?$top=1000"), &g).await;
    assert_eq!(status, 400);
    assert!(body.contains("Must be between 1 and 999"), "{body}");
    let (status, _, body) = get(&format!("{b}/graph/v1.0/users?$skiptoken=garbage"), &g).await;
    assert_eq!(status, 400, "{body}");

    let d = token(&s, DEFENDER).await;
    let (status, _, body) = get(&format!("{b}/defender/api/machines?$top=3&$skip=2"), &d).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["value"][0]["id"], json!(s.tenant.machines[2].id));
    assert!(
        v["@odata.nextLink"]
            .as_str()
            .is_some_and(|n| n.contains("$skip=5"))
    );
    let (status, _, _) = get(&format!("{b}/defender/api/machines?$top=10001"), &d).await;
    assert_eq!(status, 400);
    let mid = &s.tenant.machines[0].id;
    let filtered = walk(
        &format!(
            "{b}/defender/api/vulnerabilities/machinesVulnerabilities?$filter=machineId eq '{mid}'"
        ),
        &d,
    )
    .await;
    let cves: std::collections::HashSet<String> =
        filtered.iter().map(|r| r["cveId"].to_string()).collect();
    assert_eq!(cves.len(), s.tenant.machines[0].vulns.len());
    assert_eq!(
        filtered.len(),
        s.tenant.machines[0].vulns.len() + s.tenant.machines[0].second_products.len()
    );

    let a = token(&s, ARM).await;
    let (status, _, body) = get(&format!("{b}/arm/subscriptions"), &a).await;
    assert_eq!(status, 400);
    assert!(body.contains("MissingApiVersionParameter"));

    // An api-version the path's resource provider does not support is
    // refused the way that provider words it, listing what it supports.
    let sid = &s.tenant.subscriptions[0].id;
    let authz = format!("{b}/arm/subscriptions/{sid}/providers/Microsoft.Authorization");
    for (url, status, code, listed) in [
        (
            format!("{b}/arm/subscriptions?api-version=2099-01-01"),
            400,
            "InvalidApiVersionParameter",
            "The api-version '2099-01-01' is invalid. The supported versions are '2024-08-01,",
        ),
        (
            format!("{b}/arm/subscriptions/{sid}/resourcegroups?api-version=2022-04-01-preview"),
            400,
            "InvalidApiVersionParameter",
            "2022-12-01,",
        ),
        (
            format!("{authz}/roleAssignments?{API}"),
            404,
            "InvalidResourceType",
            "The resource type 'roleAssignments' could not be found in the namespace 'Microsoft.Authorization' for api version '2022-12-01'. The supported api-versions are '2014-04-01-preview,",
        ),
        (
            format!("{authz}/roleDefinitions?{API}"),
            400,
            "NoRegisteredProviderFound",
            "and API version '2022-12-01' for type 'roleDefinitions'. The supported api-versions are '2014-04-01-preview, 2014-07-01-preview,",
        ),
    ] {
        let (got, _, body) = get(&url, &a).await;
        assert_eq!(got, status, "{url}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["error"]["code"], code, "{body}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(listed)),
            "{body}"
        );
    }
    let r = client()
        .post(format!(
            "{b}/arm/providers/Microsoft.ResourceGraph/resources?api-version=2020-01-01"
        ))
        .bearer_auth(&a)
        .json(&json!({"query": "Resources"}))
        .send()
        .await
        .expect("resource graph");
    assert_eq!(r.status(), 404);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("InvalidResourceType")
            && body.contains("'Microsoft.ResourceGraph' for api version '2020-01-01'")
            && body.contains("2022-10-01"),
        "{body}"
    );
}

#[tokio::test]
async fn users_have_their_default_properties_and_filters_are_checked_as_graph_does() {
    let s = start(60, 5, ServerOptions::default()).await;
    let g = token(&s, GRAPH).await;
    let b = s.base_url();
    // Without $select: the eleven default properties, nothing else.
    let defaults = [
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
    let users = walk(&format!("{b}/graph/v1.0/users"), &g).await;
    assert_eq!(users.len(), s.tenant.users.len());
    for u in &users {
        let keys: Vec<&str> = u
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert!(keys.iter().all(|k| defaults.contains(k)), "{keys:?}");
        assert!(u.get("accountEnabled").is_none() && u.get("department").is_none());
    }
    let id = s.tenant.users[0].id.clone();
    let (_, _, one) = get(&format!("{b}/graph/v1.0/users/{id}"), &g).await;
    assert!(!one.contains("accountEnabled"), "{one}");
    let (_, _, one) = get(
        &format!("{b}/graph/v1.0/users/{id}?$select=accountEnabled"),
        &g,
    )
    .await;
    assert!(
        one.contains("accountEnabled") && !one.contains("surname"),
        "{one}"
    );
    // With $select, what is named.
    let selected = walk(
        &format!("{b}/graph/v1.0/users?$select=id,accountEnabled,department"),
        &g,
    )
    .await;
    assert!(selected.iter().all(|u| u.get("accountEnabled").is_some()));

    // Directory objects refuse a filter they do not support ...
    let (status, _, body) = get(
        &format!("{b}/graph/v1.0/users?$filter=officeLocation eq 'Oslo'"),
        &g,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], "Request_UnsupportedQuery");
    assert_eq!(
        v["error"]["message"],
        "Unsupported or invalid query filter clause specified for property 'officeLocation' of resource 'User'."
    );
    // ... and one they cannot read (a quoted Boolean, an operator).
    for bad in [
        "accountEnabled eq 'true'",
        "startswith(displayName,'A')",
        "displayName eq",
    ] {
        let (status, _, body) = get(&format!("{b}/graph/v1.0/users?$filter={bad}"), &g).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("Invalid filter clause"), "{bad}: {body}");
    }
    let (status, _, body) = get(
        &format!(
            "{b}/graph/v1.0/groups/{}/members?$filter=id eq 'x'",
            s.tenant.groups[0].id
        ),
        &g,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A supported one is applied, on properties not selected too.
    let enabled = s.tenant.users.iter().filter(|u| u.enabled).count();
    assert!(enabled > 0 && enabled < s.tenant.users.len());
    let got = walk(
        &format!("{b}/graph/v1.0/users?$filter=accountEnabled eq true"),
        &g,
    )
    .await;
    assert_eq!(got.len(), enabled);

    // Intune's managed devices ignore a filter on a property they do not
    // filter on, answering every device, as the real service does.
    let all = s.tenant.devices.len();
    let got = walk(
        &format!("{b}/graph/v1.0/deviceManagement/managedDevices?$filter=userId eq 'nobody'"),
        &g,
    )
    .await;
    assert_eq!(got.len(), all);
    let windows = s
        .tenant
        .devices
        .iter()
        .filter(|d| d.platform.operating_system() == "Windows")
        .count();
    assert!(windows > 0 && windows < all);
    let got = walk(
        &format!(
            "{b}/graph/v1.0/deviceManagement/managedDevices?$filter=operatingSystem eq 'Windows'"
        ),
        &g,
    )
    .await;
    assert_eq!(got.len(), windows);
}

#[tokio::test]
async fn batch_answers_each_request_on_its_own() {
    let s = start(40, 3, ServerOptions::default()).await;
    let g = token(&s, GRAPH).await;
    let b = s.base_url();
    let group = &s.tenant.groups[0].id;
    let requests: Vec<Value> = vec![
        json!({"id": "1", "method": "GET", "url": format!("/groups/{group}/members?$select=id")}),
        json!({"id": "2", "method": "GET", "url": "/groups/00000000-0000-0000-0000-000000000000/members"}),
        json!({"id": "3", "method": "DELETE", "url": format!("/groups/{group}")}),
        json!({"id": "4", "method": "GET", "url": "/organization"}),
    ];
    let r = client()
        .post(format!("{b}/graph/v1.0/$batch"))
        .bearer_auth(&g)
        .json(&json!({"requests": requests}))
        .send()
        .await
        .expect("batch");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let by_id = |id: &str| {
        v["responses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == id))
            .cloned()
            .expect("response")
    };
    assert_eq!(by_id("1")["status"], 200);
    assert!(
        by_id("1")["body"]["value"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(by_id("3")["status"], 405, "a batch cannot write");
    assert_eq!(
        by_id("4")["body"]["value"][0]["id"],
        json!(s.tenant.tenant_id)
    );

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/organization"}))
        .collect();
    let r = client()
        .post(format!("{b}/graph/v1.0/$batch"))
        .bearer_auth(&g)
        .json(&json!({"requests": too_many}))
        .send()
        .await
        .expect("batch");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn only_reads_are_accepted() {
    let s = start(20, 4, ServerOptions::default()).await;
    let g = token(&s, GRAPH).await;
    let b = s.base_url();
    for method in [
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
        reqwest::Method::PUT,
        reqwest::Method::POST,
    ] {
        let r = client()
            .request(method.clone(), format!("{b}/graph/v1.0/users"))
            .bearer_auth(&g)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 405, "{method}");
    }
}

#[tokio::test]
async fn tokens_for_the_wrong_audience_or_tenant_are_refused() {
    let s = start(20, 5, ServerOptions::default()).await;
    let b = s.base_url();
    let g = token(&s, GRAPH).await;
    let d = token(&s, DEFENDER).await;
    let a = token(&s, ARM).await;
    let (status, headers, body) = get(&format!("{b}/defender/api/machines"), &g).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(get(&format!("{b}/graph/v1.0/users"), &d).await.0, 401);
    assert_eq!(
        get(&format!("{b}/arm/subscriptions?{API}"), &g).await.0,
        401
    );
    assert_eq!(get(&format!("{b}/graph/v1.0/users"), &a).await.0, 401);
    assert_eq!(
        get(&format!("{b}/graph/v1.0/users"), "not-a-token").await.0,
        401
    );
    let r = client()
        .get(format!("{b}/graph/v1.0/users"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_token_endpoint_answers_with_real_aadsts_errors() {
    let s = start(20, 6, ServerOptions::default()).await;
    let t = s.tenant.clone();
    let cases = [
        (
            t.tenant_id.as_str(),
            t.client_id.as_str(),
            t.client_secret.as_str(),
            "https://example.com/.default",
            500011,
        ),
        (
            "11111111-2222-3333-4444-555555555555",
            t.client_id.as_str(),
            t.client_secret.as_str(),
            GRAPH,
            90002,
        ),
        (
            t.tenant_id.as_str(),
            "99999999-2222-3333-4444-555555555555",
            t.client_secret.as_str(),
            GRAPH,
            700016,
        ),
        (
            t.tenant_id.as_str(),
            t.client_id.as_str(),
            "wrong",
            GRAPH,
            7000215,
        ),
        (
            t.tenant_id.as_str(),
            t.client_id.as_str(),
            t.secret_id.as_str(),
            GRAPH,
            7000215,
        ),
        (
            t.tenant_id.as_str(),
            t.client_id.as_str(),
            t.client_secret.as_str(),
            "https://graph.microsoft.com/User.Read",
            1002012,
        ),
    ];
    for (tenant, client_id, secret, scope, code) in cases {
        let (status, body) = token_response(&s, tenant, client_id, secret, scope).await;
        assert!(status == 400 || status == 401, "{status} {body}");
        assert_eq!(body["error_codes"][0], json!(code), "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.starts_with(&format!("AADSTS{code}:"))),
            "{body}"
        );
    }
    // The verified domain works as the tenant, too.
    let (status, _) = token_response(&s, &t.domain, &t.client_id, &t.client_secret, GRAPH).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after() {
    let spec = ThrottleSpec::parse("graph=5/10s").expect("spec");
    let s = start(
        20,
        7,
        ServerOptions {
            throttle: Some(spec),
            ..Default::default()
        },
    )
    .await;
    let g = token(&s, GRAPH).await;
    let b = s.base_url();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..7 {
        let (status, headers, body) = get(&format!("{b}/graph/v1.0/organization"), &g).await;
        if status == 429 {
            retry_after = headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            assert!(body.contains("TooManyRequests"), "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    let secs: u64 = retry_after
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=10).contains(&secs));
}

#[tokio::test]
async fn service_limits_answer_as_each_service_does_and_say_how_near_they_are() {
    let spec =
        ThrottleSpec::parse("intune-apps=2/20s,arm=3+1/s,resourcegraph=2/5s,directory=10/10s")
            .expect("spec");
    let s = start(
        30,
        7,
        ServerOptions {
            throttle: Some(spec),
            ..Default::default()
        },
    )
    .await;
    let (g, a) = (token(&s, GRAPH).await, token(&s, ARM).await);
    let b = s.base_url();
    // Graph's identity service: each answer's cost, and the share of the
    // limit used once past 80 %.
    let mut shown = Vec::new();
    for _ in 0..5 {
        let (status, h, _) = get(&format!("{b}/graph/v1.0/users"), &g).await;
        assert_eq!(status, 200);
        assert_eq!(
            h.get("x-ms-resource-unit").and_then(|v| v.to_str().ok()),
            Some("2")
        );
        shown.push(h.get("x-ms-throttle-limit-percentage").is_some());
    }
    // (The fourth uses 80 % less what refilled meanwhile.)
    assert!(!shown[0] && !shown[1] && !shown[2] && shown[4], "{shown:?}");
    let (status, h, _) = get(&format!("{b}/graph/v1.0/users"), &g).await;
    assert_eq!(status, 429);
    assert!(h.contains_key("retry-after") && h.contains_key("x-ms-throttle-scope"));
    // Intune by area: the apps' window is spent, the devices' is not.
    for want in [200, 200, 429] {
        let (status, _, _) = get(
            &format!("{b}/graph/v1.0/deviceAppManagement/mobileApps"),
            &g,
        )
        .await;
        assert_eq!(status, want);
    }
    let (status, _, _) = get(
        &format!("{b}/graph/v1.0/deviceManagement/managedDevices"),
        &g,
    )
    .await;
    assert_eq!(status, 200);
    // ARM: the reads left in the subscription's bucket on every answer,
    // then ARM's own refusal.
    let sid = &s.tenant.subscriptions[0].id;
    let url = format!("{b}/arm/subscriptions/{sid}/resourcegroups?{API}");
    let mut left = Vec::new();
    for _ in 0..3 {
        let (status, h, _) = get(&url, &a).await;
        assert_eq!(status, 200);
        left.push(
            h.get("x-ms-ratelimit-remaining-subscription-reads")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
                .expect("remaining reads"),
        );
    }
    assert_eq!(left, ["2", "1", "0"]);
    let (status, h, body) = get(&url, &a).await;
    assert_eq!(status, 429);
    assert_eq!(
        h.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert!(
        body.contains("SubscriptionRequestsThrottled")
            && body.contains("Number of 'read' requests for subscription"),
        "{body}"
    );
    let (_, h, _) = get(&format!("{b}/arm/subscriptions?{API}"), &a).await;
    assert!(h.contains_key("x-ms-ratelimit-remaining-tenant-reads"));
    // Resource Graph: its quota on every answer; refused without
    // Retry-After, with when the quota resets.
    let query = || async {
        let r = client()
            .post(format!(
                "{b}/arm/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01"
            ))
            .bearer_auth(&a)
            .json(&json!({"query": "Resources"}))
            .send()
            .await
            .expect("query");
        let h = r.headers().clone();
        (r.status().as_u16(), h, r.text().await.expect("body"))
    };
    for left in ["1", "0"] {
        let (status, h, _) = query().await;
        assert_eq!(status, 200);
        assert_eq!(
            h.get("x-ms-user-quota-remaining")
                .and_then(|v| v.to_str().ok()),
            Some(left)
        );
        let reset = h
            .get("x-ms-user-quota-resets-after")
            .and_then(|v| v.to_str().ok())
            .expect("reset");
        assert!(["00:00:05", "00:00:04"].contains(&reset), "{reset}");
    }
    let (status, h, body) = query().await;
    assert_eq!(status, 429);
    assert!(!h.contains_key("retry-after"));
    assert_eq!(
        h.get("x-ms-user-quota-remaining")
            .and_then(|v| v.to_str().ok()),
        Some("0")
    );
    assert!(
        body.contains("RateLimiting") && body.contains("resourcegraph-throttling"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logon_users_keep_their_documented_limits_by_default() {
    // 100 calls a minute per app, whatever else is asked; other Defender
    // endpoints are not counted against it.
    let s = start(150, 8, ServerOptions::default()).await;
    let d = token(&s, DEFENDER).await;
    let b = s.base_url();
    let machines = walk(&format!("{b}/defender/api/machines"), &d).await;
    assert!(machines.len() > 100, "{} machines", machines.len());
    let mut statuses = Vec::new();
    let mut refused = None;
    for m in machines.iter().take(102) {
        let id = m["id"].as_str().expect("id");
        let (status, headers, body) =
            get(&format!("{b}/defender/api/machines/{id}/logonusers"), &d).await;
        if status == 429 {
            refused = Some((headers, body));
        }
        statuses.push(status);
    }
    assert!(statuses[..100].iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(&statuses[100..], [429, 429]);
    let (headers, body) = refused.expect("a refusal");
    assert!(body.contains("TooManyRequests"), "{body}");
    let secs: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((50..=60).contains(&secs), "the minute's rest: {secs}");
    let (status, _, _) = get(&format!("{b}/defender/api/machines?$top=1"), &d).await;
    assert_eq!(status, 200, "machines are not counted");

    // Scaled windows (for tests), and none at all.
    let fast = tenx_sim::RateLimits::parse("logonusers=2/0.2s").expect("limits");
    let s = start(
        20,
        8,
        ServerOptions {
            rate_limits: fast,
            ..Default::default()
        },
    )
    .await;
    let d = token(&s, DEFENDER).await;
    let b = s.base_url();
    let id = walk(&format!("{b}/defender/api/machines"), &d).await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let url = format!("{b}/defender/api/machines/{id}/logonusers");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(get(&url, &d).await.0);
    }
    assert_eq!(got, [200, 200, 429]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // A window scaled below a second still answers whole seconds: real
    // services never send a fraction.
    for _ in 0..2 {
        get(&url, &d).await;
    }
    let (status, headers, _) = get(&url, &d).await;
    assert_eq!(status, 429);
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(get(&url, &d).await.0, 200, "a new window");
}

async fn with_faults(spec: &str) -> (RunningTenant, String) {
    let s = start(30, 8, sim::faults(spec)).await;
    let g = token(&s, GRAPH).await;
    (s, g)
}

#[tokio::test]
async fn fault_knobs_do_what_they_say() {
    let (s, g) = with_faults("503=1").await;
    let (status, headers, _) = get(&format!("{}/graph/v1.0/users", s.base_url()), &g).await;
    assert_eq!(status, 503);
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );

    // Whole seconds, as the real services send, unless the test-only
    // knob asks for fractions.
    let (s, g) = with_faults("429=1,retry-after=0.25").await;
    let (status, headers, _) = get(&format!("{}/graph/v1.0/users", s.base_url()), &g).await;
    assert_eq!(status, 429);
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let s = start(
        30,
        8,
        ServerOptions {
            faults: Faults::parse("429=1,retry-after=0.25").expect("faults"),
            subsecond_retry_after: true,
            ..Default::default()
        },
    )
    .await;
    let g = token(&s, GRAPH).await;
    let (_, headers, _) = get(&format!("{}/graph/v1.0/users", s.base_url()), &g).await;
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("0.25")
    );

    let (s, g) = with_faults("429=1,retry-after=date").await;
    let (_, headers, _) = get(&format!("{}/graph/v1.0/users", s.base_url()), &g).await;
    let date = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .expect("Retry-After");
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");

    let (s, g) = with_faults("429=1,retry-after=none").await;
    let (status, headers, _) = get(&format!("{}/graph/v1.0/users", s.base_url()), &g).await;
    assert_eq!(status, 429);
    assert!(!headers.contains_key("retry-after"));

    let (s, g) = with_faults("500=1").await;
    assert_eq!(
        get(&format!("{}/graph/v1.0/users", s.base_url()), &g)
            .await
            .0,
        500
    );

    let (s, g) = with_faults("malformed=1").await;
    let (status, _, body) = get(&format!("{}/graph/v1.0/users", s.base_url()), &g).await;
    assert_eq!(status, 200);
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "body must be malformed"
    );

    let (s, g) = with_faults("malformed-at=/graph/v1.0/groups").await;
    let (_, _, body) = get(&format!("{}/graph/v1.0/groups", s.base_url()), &g).await;
    assert!(serde_json::from_str::<Value>(&body).is_err());
    let (_, _, body) = get(&format!("{}/graph/v1.0/users", s.base_url()), &g).await;
    assert!(
        serde_json::from_str::<Value>(&body).is_ok(),
        "other paths stay intact"
    );

    let (s, g) = with_faults("drop=1").await;
    let r = client()
        .get(format!("{}/graph/v1.0/users", s.base_url()))
        .bearer_auth(&g)
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.text().await.is_err(),
    };
    assert!(failed, "the connection must break");

    let (s, g) = with_faults("forbid=defender").await;
    let d = token(&s, DEFENDER).await;
    let (status, _, body) = get(&format!("{}/defender/api/machines", s.base_url()), &d).await;
    assert_eq!(status, 403);
    assert!(body.contains("Machine.Read.All"), "{body}");
    assert_eq!(
        get(&format!("{}/graph/v1.0/users", s.base_url()), &g)
            .await
            .0,
        200
    );

    let (s, g) = with_faults("missing-role=DeviceManagementManagedDevices.Read.All").await;
    let (status, _, body) = get(
        &format!(
            "{}/graph/v1.0/deviceManagement/managedDevices",
            s.base_url()
        ),
        &g,
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body.contains("DeviceManagementManagedDevices.Read.All"),
        "{body}"
    );
    assert_eq!(
        get(&format!("{}/graph/v1.0/users", s.base_url()), &g)
            .await
            .0,
        200
    );

    let (s, g) = with_faults("forbid=arm").await;
    let a = token(&s, ARM).await;
    let (status, _, body) = get(&format!("{}/arm/subscriptions?{API}", s.base_url()), &a).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"value\":[]"),
        "no subscription is visible: {body}"
    );
    let sid = &s.tenant.subscriptions[0].id;
    let (status, _, body) = get(
        &format!("{}/arm/subscriptions/{sid}/resources?{API}", s.base_url()),
        &a,
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("AuthorizationFailed"));
    drop(g);

    let (s, g) = with_faults("expire=1").await;
    assert_eq!(
        get(&format!("{}/graph/v1.0/users", s.base_url()), &g)
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = get(&format!("{}/graph/v1.0/users", s.base_url()), &g).await;
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");
    let fresh = token(&s, GRAPH).await;
    assert_eq!(
        get(&format!("{}/graph/v1.0/users", s.base_url()), &fresh)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn the_request_log_records_method_path_and_status() {
    let dir = common::tempdir("reqlog");
    let dir = dir.path();
    let log = dir.join("requests.log");
    let s = start(
        20,
        9,
        ServerOptions {
            request_log: Some(log.clone()),
            ..Default::default()
        },
    )
    .await;
    let g = token(&s, GRAPH).await;
    get(&format!("{}/graph/v1.0/users?$top=5", s.base_url()), &g).await;
    client()
        .delete(format!("{}/graph/v1.0/users", s.base_url()))
        .bearer_auth(&g)
        .send()
        .await
        .expect("delete");
    let text = std::fs::read_to_string(&log).expect("log written");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("POST /login/") && l.ends_with(" 200")),
        "{text}"
    );
    assert!(
        lines.contains(&"GET /graph/v1.0/users?$top=5 200"),
        "{text}"
    );
    assert!(lines.contains(&"DELETE /graph/v1.0/users 405"), "{text}");
}

#[tokio::test]
async fn cached_answers_are_the_same_bytes_and_faults_turn_the_cache_off() {
    let plain = start(300, 4, ServerOptions::default()).await;
    let cached = start(
        300,
        4,
        ServerOptions {
            cache_responses: true,
            ..Default::default()
        },
    )
    .await;
    let path = "/graph/v1.0/deviceManagement/managedDevices?$top=100";
    let (_, _, want) = get(
        &format!("{}{path}", plain.base_url()),
        &token(&plain, GRAPH).await,
    )
    .await;
    let tok = token(&cached, GRAPH).await;
    let first = get(&format!("{}{path}", cached.base_url()), &tok).await;
    let again = get(&format!("{}{path}", cached.base_url()), &tok).await;
    assert_eq!(first.0, 200);
    // Next links name the server they came from; the rest is the same.
    let want = want.replace(&plain.base_url(), &cached.base_url());
    assert_eq!(first.2, want);
    assert_eq!(again.2, want);
    // Still authenticated: a cached answer is not a way around the token.
    let (status, _, _) = get(&format!("{}{path}", cached.base_url()), "not-a-token").await;
    assert_eq!(status, 401);
    // With faults, answers stay random: nothing is served from the cache.
    let faulty = start(
        300,
        4,
        ServerOptions {
            cache_responses: true,
            faults: Faults::parse("429=0.5").expect("faults"),
            ..Default::default()
        },
    )
    .await;
    let tok = token(&faulty, GRAPH).await;
    let mut statuses = std::collections::BTreeSet::new();
    for _ in 0..40 {
        statuses.insert(get(&format!("{}{path}", faulty.base_url()), &tok).await.0);
    }
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        [200, 429],
        "both kinds of answer keep coming"
    );
}

#[test]
fn the_command_prints_settings_and_writes_the_manifest() {
    use std::io::{BufRead, BufReader};
    let dir = common::tempdir("fake-tenant");
    let dir = dir.path();
    let manifest = dir.join("manifest.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tenx"))
        .args([
            "fake-tenant",
            "--port",
            "0",
            "--users",
            "50",
            "--seed",
            "3",
            "--manifest",
        ])
        .arg(&manifest)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tenx starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut env = std::collections::HashMap::new();
    for line in BufReader::new(stdout).lines().take(7) {
        let line = line.expect("line");
        let (k, v) = line.split_once('=').expect("KEY=value");
        env.insert(k.to_string(), v.to_string());
    }
    for key in [
        "TENX_TENANT_ID",
        "TENX_CLIENT_ID",
        "TENX_CLIENT_SECRET",
        "TENX_LOGIN_URL",
        "TENX_GRAPH_URL",
        "TENX_DEFENDER_URL",
        "TENX_ARM_URL",
    ] {
        assert!(env.contains_key(key), "{key} missing: {env:?}");
    }
    assert!(env["TENX_GRAPH_URL"].starts_with("http://127.0.0.1:"));
    let m: Manifest = serde_json::from_slice(&std::fs::read(&manifest).expect("manifest"))
        .expect("manifest json");
    assert_eq!(m.entities["azure_user"], 50);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let login = env["TENX_LOGIN_URL"].clone();
    let status = rt.block_on(async {
        client()
            .post(format!(
                "{login}/{}/oauth2/v2.0/token",
                env["TENX_TENANT_ID"]
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                env["TENX_CLIENT_ID"],
                urlencode(&env["TENX_CLIENT_SECRET"]),
                urlencode(GRAPH)
            ))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    child.kill().ok();
    child.wait().ok();
    assert_eq!(status.ok(), Some(200));

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_tenx"))
        .args(["fake-tenant", "--faults", "429=7"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("outside 0..1"));
}
