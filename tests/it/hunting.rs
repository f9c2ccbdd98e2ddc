//! Advanced hunting on the simulated tenant, over real HTTP on loopback:
//! `POST /graph/v1.0/security/runHuntingQuery` answers KQL with what the
//! simulated Defender for Endpoint API says of the same tenant, and with
//! the documented shape, errors and limits.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use common::sim::start;
use common::wire::{DEFENDER, GRAPH, client, token, walk};
use serde_json::{Value, json};
use tenx_sim::{Faults, HuntingLimits, Manifest, RateLimits, RunningTenant, ServerOptions};

fn options(limits: &str) -> ServerOptions {
    ServerOptions {
        rate_limits: RateLimits::none(),
        hunting: HuntingLimits::parse(limits).expect("limits"),
        ..Default::default()
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
    fn rows(&self) -> Vec<Value> {
        assert_eq!(self.status, 200, "{}", self.text);
        self.json()["results"].as_array().expect("results").clone()
    }
    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

async fn post(s: &RunningTenant, tok: &str, body: Value) -> Answer {
    let r = client()
        .post(format!(
            "{}/graph/v1.0/security/runHuntingQuery",
            s.base_url()
        ))
        .bearer_auth(tok)
        .json(&body)
        .send()
        .await
        .expect("request");
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap_or_default(),
    }
}

async fn hunt(s: &RunningTenant, tok: &str, query: &str) -> Vec<Value> {
    post(s, tok, json!({ "Query": query })).await.rows()
}

async fn count(s: &RunningTenant, tok: &str, query: &str) -> i64 {
    let rows = hunt(s, tok, &format!("{query} | count")).await;
    rows[0]["Count"].as_i64().expect("Count")
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// Unix seconds of an ISO time with or without a fraction.
fn secs(v: &Value) -> i64 {
    let t = v.as_str().expect("a time");
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .timestamp()
}

#[tokio::test]
async fn device_info_says_what_the_machines_endpoint_says() {
    let srv = start(240, 3, options("")).await;
    let g = token(&srv, GRAPH).await;
    let d = token(&srv, DEFENDER).await;
    let b = srv.base_url();
    let machines = walk(&format!("{b}/defender/api/machines"), &d).await;
    assert_eq!(machines.len(), srv.tenant.machines.len());

    // Several reports per device: a client must take the latest.
    let all = count(&srv, &g, "DeviceInfo").await;
    assert!(all > machines.len() as i64 * 2, "{all} reports");
    let latest = hunt(
        &srv,
        &g,
        "DeviceInfo | where Timestamp > ago(30d) | summarize arg_max(Timestamp, *) by DeviceId | project DeviceId, DeviceName, AadDeviceId, IsAzureADJoined, OSPlatform, OSVersion, OSBuild, OSArchitecture, ExposureLevel, SensorHealthState, OnboardingStatus, MachineGroup, PublicIP, DeviceManualTags, LoggedOnUsers, Timestamp",
    )
    .await;
    assert_eq!(latest.len(), machines.len());
    let by_id: HashMap<String, &Value> = latest.iter().map(|r| (s(&r["DeviceId"]), r)).collect();
    let shift = srv.hunting_shift();
    let mut logon_checked = 0;
    for m in &machines {
        let r = by_id[&s(&m["id"])];
        assert_eq!(r["DeviceName"], m["computerDnsName"]);
        assert_eq!(s(&r["AadDeviceId"]), s(&m["aadDeviceId"]));
        assert_eq!(r["IsAzureADJoined"], m["isAadJoined"]);
        assert_eq!(r["OSPlatform"], m["osPlatform"]);
        assert_eq!(r["OSVersion"], m["version"]);
        assert_eq!(r["OSBuild"], m["osBuild"]);
        assert_eq!(r["OSArchitecture"], m["osArchitecture"]);
        assert_eq!(r["ExposureLevel"], m["exposureLevel"]);
        assert_eq!(r["SensorHealthState"], m["healthStatus"]);
        assert_eq!(r["OnboardingStatus"], m["onboardingStatus"]);
        assert_eq!(r["MachineGroup"], m["rbacGroupName"]);
        assert_eq!(r["PublicIP"], m["lastExternalIpAddress"]);
        let tags: Value = serde_json::from_str(&s(&r["DeviceManualTags"])).expect("tags");
        assert_eq!(tags, m["machineTags"]);
        assert_eq!(secs(&r["Timestamp"]), secs(&m["lastSeen"]) + shift);
        // LoggedOnUsers: the accounts of the logon users endpoint.
        if logon_checked < 25 {
            logon_checked += 1;
            let id = s(&m["id"]);
            let users = walk(&format!("{b}/defender/api/machines/{id}/logonusers"), &d).await;
            let from_mde: BTreeSet<(String, String, String)> = users
                .iter()
                .map(|u| {
                    (
                        s(&u["accountName"]),
                        s(&u["accountDomain"]),
                        s(&u["accountSid"]),
                    )
                })
                .collect();
            let listed: Value = serde_json::from_str(&s(&r["LoggedOnUsers"])).expect("JSON array");
            let from_hunting: BTreeSet<(String, String, String)> = listed
                .as_array()
                .expect("array")
                .iter()
                .map(|u| (s(&u["UserName"]), s(&u["DomainName"]), s(&u["Sid"])))
                .collect();
            assert_eq!(from_hunting, from_mde, "{id}");
        }
    }
    assert_eq!(
        count(
            &srv,
            &g,
            "DeviceInfo | summarize arg_max(Timestamp, *) by DeviceId"
        )
        .await,
        machines.len() as i64
    );
    // Older reports differ: the latest must be chosen, not any.
    let changed = count(
        &srv,
        &g,
        "DeviceInfo | summarize Platforms = dcount(OSPlatform), Exposures = dcount(ExposureLevel), Revisions = dcount(OsBuildRevision) by DeviceId | where Platforms > 1 or Exposures > 1 or Revisions > 1",
    )
    .await;
    assert!(changed > 0);
    srv.stop().await;
}

#[tokio::test]
async fn vulnerability_rows_are_the_bulk_listings_rows() {
    let srv = start(300, 5, options("")).await;
    let g = token(&srv, GRAPH).await;
    let d = token(&srv, DEFENDER).await;
    let b = srv.base_url();
    let manifest = Manifest::of(&srv.tenant);
    let mde = walk(
        &format!("{b}/defender/api/vulnerabilities/machinesVulnerabilities"),
        &d,
    )
    .await;
    let rows = hunt(
        &srv,
        &g,
        "DeviceTvmSoftwareVulnerabilities | project DeviceId, DeviceName, CveId, SoftwareVendor, SoftwareName, SoftwareVersion, VulnerabilitySeverityLevel, RecommendedSecurityUpdateId",
    )
    .await;
    let key = |m: &str, c: &str, v: &str, p: &str, ver: &str, sev: &str, kb: &str| {
        format!("{m}|{c}|{v}|{p}|{ver}|{sev}|{kb}")
    };
    let from_mde: BTreeSet<String> = mde
        .iter()
        .map(|r| {
            key(
                &s(&r["machineId"]),
                &s(&r["cveId"]),
                &s(&r["productVendor"]),
                &s(&r["productName"]),
                &s(&r["productVersion"]),
                &s(&r["severity"]),
                &s(&r["fixingKbId"]),
            )
        })
        .collect();
    let from_hunting: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            key(
                &s(&r["DeviceId"]),
                &s(&r["CveId"]),
                &s(&r["SoftwareVendor"]),
                &s(&r["SoftwareName"]),
                &s(&r["SoftwareVersion"]),
                &s(&r["VulnerabilitySeverityLevel"]),
                &s(&r["RecommendedSecurityUpdateId"]),
            )
        })
        .collect();
    assert_eq!(rows.len(), mde.len());
    assert_eq!(from_hunting, from_mde);
    // A finding is a (device, CVE) pair; some pairs have two products.
    let findings = manifest.entities["microsoft_defender_vulnerability"] as i64;
    assert_eq!(
        count(
            &srv,
            &g,
            "DeviceTvmSoftwareVulnerabilities | summarize by DeviceId, CveId"
        )
        .await,
        findings
    );
    assert!((rows.len() as i64) > findings);
    let grouped = hunt(
        &srv,
        &g,
        "DeviceTvmSoftwareVulnerabilities | where hash(DeviceId, 4) in (0, 2) | summarize Software = make_set(strcat(SoftwareVendor, \" \", SoftwareName, \" \", SoftwareVersion)), Updates = make_set(RecommendedSecurityUpdateId) by DeviceId, CveId, VulnerabilitySeverityLevel",
    )
    .await;
    assert!(
        grouped
            .iter()
            .any(|r| r["Software"].as_array().is_some_and(|a| a.len() == 2))
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_kb_has_every_cve_and_agrees_with_the_vulnerabilities_endpoint() {
    let srv = start(200, 9, options("")).await;
    let g = token(&srv, GRAPH).await;
    let d = token(&srv, DEFENDER).await;
    let b = srv.base_url();
    assert_eq!(
        count(&srv, &g, "DeviceTvmSoftwareVulnerabilitiesKB").await,
        srv.tenant.cves.len() as i64
    );
    let exposed = walk(&format!("{b}/defender/api/vulnerabilities"), &d).await;
    let ids: Vec<String> = exposed
        .iter()
        .take(30)
        .map(|v| format!("\"{}\"", s(&v["id"])))
        .collect();
    let kb = hunt(
        &srv,
        &g,
        &format!(
            "DeviceTvmSoftwareVulnerabilitiesKB | where CveId in ({}) | project CveId, CvssScore, IsExploitAvailable, VulnerabilitySeverityLevel, PublishedDate, LastModifiedTime, VulnerabilityDescription, AffectedSoftware",
            ids.join(", ")
        ),
    )
    .await;
    assert_eq!(kb.len(), ids.len());
    let by_id: HashMap<String, &Value> = kb.iter().map(|r| (s(&r["CveId"]), r)).collect();
    for v in exposed.iter().take(30) {
        let r = by_id[&s(&v["id"])];
        assert_eq!(r["CvssScore"].as_f64(), v["cvssV3"].as_f64());
        assert_eq!(r["IsExploitAvailable"], v["publicExploit"]);
        assert_eq!(r["VulnerabilitySeverityLevel"], v["severity"]);
        assert_eq!(r["VulnerabilityDescription"], v["description"]);
        assert_eq!(secs(&r["PublishedDate"]), secs(&v["publishedOn"]));
        assert_eq!(secs(&r["LastModifiedTime"]), secs(&v["updatedOn"]));
        assert!(
            r["AffectedSoftware"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn logon_events_give_every_machines_logon_users_within_30_days() {
    let srv = start(220, 4, options("")).await;
    let g = token(&srv, GRAPH).await;
    let t = &srv.tenant;
    let latest = hunt(
        &srv,
        &g,
        "DeviceLogonEvents | where Timestamp > ago(30d) and ActionType == \"LogonSuccess\" | summarize arg_max(Timestamp, AccountDomain, AccountName) by DeviceId, AccountSid",
    )
    .await;
    let got: BTreeSet<(String, String, String, String)> = latest
        .iter()
        .map(|r| {
            (
                s(&r["DeviceId"]),
                s(&r["AccountSid"]),
                s(&r["AccountDomain"]),
                s(&r["AccountName"]),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String, String)> = t
        .machines
        .iter()
        .flat_map(|m| {
            m.logons.iter().map(|&l| {
                let u = &t.logon_users[l as usize];
                (
                    m.id.clone(),
                    u.sid.clone(),
                    u.domain.clone(),
                    u.account_name.clone(),
                )
            })
        })
        .collect();
    assert_eq!(got, want);
    // The latest logon is when Defender last saw the machine.
    let shift = srv.hunting_shift();
    let last_seen: HashMap<&str, i64> = t
        .machines
        .iter()
        .map(|m| (m.id.as_str(), m.last_seen))
        .collect();
    for r in &latest {
        let seen = last_seen[s(&r["DeviceId"]).as_str()] + shift;
        let at = secs(&r["Timestamp"]);
        assert!(at <= seen && at > seen - 3600, "{r}");
    }
    // Failures exist; nothing older than 30 days comes back, whatever
    // Timespan asks.
    assert!(
        count(
            &srv,
            &g,
            "DeviceLogonEvents | where ActionType == 'LogonFailed'"
        )
        .await
            > 0
    );
    assert_eq!(
        count(&srv, &g, "DeviceLogonEvents | where Timestamp < ago(30d)").await,
        0
    );
    let default = count(&srv, &g, "DeviceLogonEvents").await;
    let long = post(
        &srv,
        &g,
        json!({"Query": "DeviceLogonEvents | count", "Timespan": "P90D"}),
    )
    .await;
    assert_eq!(long.rows()[0]["Count"].as_i64(), Some(default));
    let short = post(
        &srv,
        &g,
        json!({"Query": "DeviceLogonEvents | count", "Timespan": "P2D"}),
    )
    .await;
    assert!(short.rows()[0]["Count"].as_i64().unwrap_or(0) < default);
    // Every LoggedOnUsers account is an account that logged on.
    let info = hunt(
        &srv,
        &g,
        "DeviceInfo | summarize arg_max(Timestamp, LoggedOnUsers) by DeviceId",
    )
    .await;
    let mut listed = 0;
    for r in info {
        let users: Value = serde_json::from_str(&s(&r["LoggedOnUsers"])).expect("array");
        for u in users.as_array().expect("array") {
            listed += 1;
            assert!(
                got.iter()
                    .any(|(d, sid, _, _)| *d == s(&r["DeviceId"]) && *sid == s(&u["Sid"]))
            );
        }
    }
    assert_eq!(listed, want.len());
    srv.stop().await;
}

#[tokio::test]
async fn hash_partitions_are_disjoint_and_cover_every_machine() {
    let srv = start(260, 8, options("")).await;
    let g = token(&srv, GRAPH).await;
    let n = 8;
    let parts = hunt(
        &srv,
        &g,
        &format!("DeviceInfo | where Timestamp > ago(30d) | summarize arg_max(Timestamp, DeviceId) by DeviceId | summarize Rows = count() by Part = hash(DeviceId, {n})"),
    )
    .await;
    let sizes: BTreeMap<i64, i64> = parts
        .iter()
        .map(|r| {
            (
                r["Part"].as_i64().expect("Part"),
                r["Rows"].as_i64().expect("Rows"),
            )
        })
        .collect();
    assert!(sizes.keys().all(|k| (0..n).contains(k)));
    let mut seen = HashSet::new();
    for k in 0..n {
        let rows = hunt(
            &srv,
            &g,
            &format!("DeviceInfo | summarize arg_max(Timestamp, *) by DeviceId | where hash(DeviceId, {n}) == {k} | project DeviceId"),
        )
        .await;
        assert_eq!(
            rows.len() as i64,
            sizes.get(&k).copied().unwrap_or(0),
            "part {k}"
        );
        for r in rows {
            assert!(seen.insert(s(&r["DeviceId"])), "a device in two partitions");
        }
    }
    let all: HashSet<String> = srv.tenant.machines.iter().map(|m| m.id.clone()).collect();
    assert_eq!(seen, all);
    srv.stop().await;
}

#[tokio::test]
async fn the_answer_has_the_documented_shape() {
    let srv = start(120, 2, options("")).await;
    let g = token(&srv, GRAPH).await;
    let a = post(
        &srv,
        &g,
        json!({"Query": "DeviceInfo | project Timestamp, DeviceName, OSBuild, IsAzureADJoined, LoggedOnUsers | take 3"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.headers["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("application/json"))
    );
    let v = a.json();
    let keys: BTreeSet<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["@odata.context", "schema", "results"])
    );
    assert_eq!(
        v["@odata.context"],
        format!(
            "{}/graph/v1.0/$metadata#microsoft.graph.security.huntingQueryResults",
            srv.base_url()
        )
    );
    assert_eq!(
        v["schema"],
        json!([
            {"Name": "Timestamp", "Type": "DateTime"},
            {"Name": "DeviceName", "Type": "String"},
            {"Name": "OSBuild", "Type": "Int64"},
            {"Name": "IsAzureADJoined", "Type": "Boolean"},
            {"Name": "LoggedOnUsers", "Type": "String"},
        ])
    );
    let rows = v["results"].as_array().expect("results");
    assert_eq!(rows.len(), 3);
    let ts = s(&rows[0]["Timestamp"]);
    assert_eq!(ts.len(), "2024-03-26T09:39:50.7688641Z".len(), "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    // The beta docs write `query`; the beta path answers too.
    let lower = post(
        &srv,
        &g,
        json!({"query": "DeviceInfo | take 1 | project DeviceId"}),
    )
    .await;
    assert_eq!(lower.rows().len(), 1);
    let r = client()
        .post(format!("{}/graph/beta/security/runHuntingQuery", srv.base_url()))
        .bearer_auth(&g)
        .json(&json!({"Query": "DeviceTvmSoftwareVulnerabilitiesKB | take 1 | project CveId, CvssScore, CveTags = dynamic([])"}))
        .send()
        .await
        .expect("beta");
    let v: Value = r.json().await.expect("json");
    assert!(s(&v["@odata.context"]).contains("/graph/beta/$metadata#"));
    assert_eq!(
        v["schema"][1],
        json!({"Name": "CvssScore", "Type": "Double"})
    );
    assert_eq!(v["schema"][2], json!({"Name": "CveTags", "Type": "Object"}));
    srv.stop().await;
}

#[tokio::test]
async fn a_result_over_the_row_limit_is_cut_silently() {
    let srv = start(200, 6, options("rows=50")).await;
    let g = token(&srv, GRAPH).await;
    let total = count(&srv, &g, "DeviceTvmSoftwareVulnerabilities").await;
    assert!(total > 50);
    let a = post(
        &srv,
        &g,
        json!({"Query": "DeviceTvmSoftwareVulnerabilities"}),
    )
    .await;
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v["results"].as_array().map(Vec::len), Some(50));
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(3),
        "nothing says it was cut"
    );
    // The first rows, in the table's order.
    let first = hunt(&srv, &g, "DeviceTvmSoftwareVulnerabilities | take 50").await;
    assert_eq!(v["results"].as_array(), Some(&first));
    // Below the limit nothing changes.
    assert_eq!(
        hunt(&srv, &g, "DeviceTvmSoftwareVulnerabilities | take 49")
            .await
            .len(),
        49
    );
    // The server knows what it cut (for tests of clients).
    let st = srv.hunting_stats();
    assert_eq!(st.truncated, 1, "{st:?}");
    assert_eq!(st.answered, 4);
    srv.stop().await;
}

#[tokio::test]
async fn a_result_over_the_size_limit_is_a_400() {
    let srv = start(150, 6, options("bytes=20KB")).await;
    let g = token(&srv, GRAPH).await;
    let a = post(&srv, &g, json!({"Query": "DeviceInfo"})).await;
    assert_eq!(a.status, 400, "{}", a.text);
    let v = a.json();
    assert_eq!(v["error"]["code"], "BadRequest");
    assert_eq!(
        a.message(),
        "Query execution has exceeded the allowed result size. Optimize your query by limiting the number of results and try again."
    );
    assert!(v["error"]["innerError"]["request-id"].is_string());
    assert_eq!(
        hunt(&srv, &g, "DeviceInfo | project DeviceId | take 20")
            .await
            .len(),
        20
    );
    assert_eq!(srv.hunting_stats().refused, 1);
    srv.stop().await;
}

#[tokio::test]
async fn the_calls_quota_answers_429_naming_it() {
    let srv = start(60, 1, options("calls=3/2s")).await;
    let g = token(&srv, GRAPH).await;
    for _ in 0..3 {
        assert_eq!(
            post(&srv, &g, json!({"Query": "DeviceInfo | count"}))
                .await
                .status,
            200
        );
    }
    let a = post(&srv, &g, json!({"Query": "DeviceInfo | count"})).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.json()["error"]["code"], "TooManyRequests");
    assert_eq!(
        a.message(),
        "API calls quota exceeded! maximum allowed 3 per 00:00:02"
    );
    let wait: u64 = a.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        post(&srv, &g, json!({"Query": "DeviceInfo | count"}))
            .await
            .status,
        200
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_cached_answer_still_counts_against_the_quotas() {
    let srv = start(
        60,
        1,
        ServerOptions {
            cache_responses: true,
            ..options("calls=2/30s")
        },
    )
    .await;
    let g = token(&srv, GRAPH).await;
    let first = post(&srv, &g, json!({"Query": "DeviceInfo | take 3"})).await;
    let again = post(&srv, &g, json!({"Query": "DeviceInfo | take 3"})).await;
    assert_eq!(first.text, again.text);
    assert_eq!(
        post(&srv, &g, json!({"Query": "DeviceInfo | take 3"}))
            .await
            .status,
        429
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_cpu_quota_blocks_until_the_cycle_ends() {
    // Each row read costs 1 ms; 50 ms of CPU per 2 s.
    let srv = start(120, 1, options("cpu=0.05/2s,row-cost=1ms,timeout=60s")).await;
    let g = token(&srv, GRAPH).await;
    // A cheap query runs; one that reads every report spends the quota
    // (it still completes: queries are blocked once the tenant is at 100 %).
    assert_eq!(
        post(&srv, &g, json!({"Query": "DeviceInfo | take 5"}))
            .await
            .status,
        200
    );
    assert_eq!(
        post(&srv, &g, json!({"Query": "DeviceInfo | count"}))
            .await
            .status,
        200
    );
    let a = post(&srv, &g, json!({"Query": "DeviceInfo | take 1"})).await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert!(
        a.message().starts_with("You have exceeded processing resources allocated to this tenant. You can run queries again in 00:00:0"),
        "{}",
        a.message()
    );
    assert!(a.headers.contains_key("retry-after"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        post(&srv, &g, json!({"Query": "DeviceInfo | take 1"}))
            .await
            .status,
        200
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_query_over_the_time_limit_is_a_400() {
    let srv = start(120, 1, options("row-cost=1ms,timeout=0.05s")).await;
    let g = token(&srv, GRAPH).await;
    let a = post(
        &srv,
        &g,
        json!({"Query": "DeviceInfo | summarize count() by OSPlatform"}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.message(), "Query exceeded the timeout period.");
    assert_eq!(hunt(&srv, &g, "DeviceInfo | take 10").await.len(), 10);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_tables_columns_and_operators_are_400s_that_name_them() {
    let srv = start(60, 1, options("")).await;
    let g = token(&srv, GRAPH).await;
    let cases = [
        (
            "DeviceEvents | where Timestamp > ago(1d)",
            "'where' operator: Failed to resolve table or column expression named 'DeviceEvents'. Fix semantic errors in your query.",
        ),
        (
            "DeviceTvmSoftwareVulnerabilitiesKB | project CveId, CvssVector",
            "'project' operator: Failed to resolve scalar expression named 'CvssVector'. Fix semantic errors in your query.",
        ),
        (
            "DeviceInfo | where frobnicate(DeviceId)",
            "'where' operator: Unknown function: 'frobnicate'. Fix semantic errors in your query.",
        ),
        (
            "DeviceInfo | summarise count()",
            "Query could not be parsed at 'summarise' on line [1,14]",
        ),
        (
            "DeviceInfo\n| where DeviceName == 'a' |",
            "Query could not be parsed at '<EOF>' on line [2,28]",
        ),
    ];
    for (q, msg) in cases {
        let a = post(&srv, &g, json!({ "Query": q })).await;
        assert_eq!(a.status, 400, "{q}");
        assert_eq!(a.json()["error"]["code"], "BadRequest");
        assert_eq!(a.message(), msg, "{q}");
    }
    let a = post(
        &srv,
        &g,
        json!({"Query": "DeviceInfo | join (DeviceLogonEvents) on DeviceId"}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(
        a.message()
            .starts_with("'join' operator: the simulated tenant does not run")
    );
    let a = post(&srv, &g, json!({"Timespan": "P1D"})).await;
    assert_eq!(a.status, 400);
    assert!(a.message().contains("'Query'"));
    let a = post(
        &srv,
        &g,
        json!({"Query": "DeviceInfo", "Timespan": "last week"}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(a.message().starts_with("Invalid Timespan 'last week'"));
    srv.stop().await;
}

#[tokio::test]
async fn the_permission_batch_and_method_are_checked() {
    let srv = start(
        60,
        1,
        ServerOptions {
            faults: Faults::parse("missing-role=ThreatHunting.Read.All").expect("faults"),
            ..options("")
        },
    )
    .await;
    let g = token(&srv, GRAPH).await;
    let a = post(&srv, &g, json!({"Query": "DeviceInfo | take 1"})).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.json()["error"]["code"], "Forbidden");
    assert!(a.message().starts_with(
        "Missing application roles. API required roles: ThreatHunting.Read.All, application roles: Directory.Read.All,"
    ));
    srv.stop().await;

    let srv = start(60, 1, options("")).await;
    let g = token(&srv, GRAPH).await;
    let b = srv.base_url();
    let r = client()
        .post(format!("{b}/graph/v1.0/$batch"))
        .bearer_auth(&g)
        .json(&json!({"requests": [
            {"id": "1", "method": "POST", "url": "/security/runHuntingQuery", "body": {"Query": "DeviceInfo | take 1"}, "headers": {"Content-Type": "application/json"}},
            {"id": "2", "method": "GET", "url": "/organization"}
        ]}))
        .send()
        .await
        .expect("batch");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["responses"][0]["status"], 400);
    assert!(s(&v["responses"][0]["body"]["error"]["message"]).contains("inside a JSON batch"));
    assert_eq!(v["responses"][1]["status"], 200);
    let r = client()
        .get(format!("{b}/graph/v1.0/security/runHuntingQuery"))
        .bearer_auth(&g)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 405);
    // The Defender audience's token is not a Graph token.
    let d = token(&srv, DEFENDER).await;
    assert_eq!(
        post(&srv, &d, json!({"Query": "DeviceInfo"})).await.status,
        401
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_global_faults_apply_to_hunting_too() {
    let srv = start(
        60,
        1,
        ServerOptions {
            faults: Faults::parse("malformed-at=/graph/v1.0/security/runHuntingQuery")
                .expect("faults"),
            ..options("")
        },
    )
    .await;
    let g = token(&srv, GRAPH).await;
    let a = post(&srv, &g, json!({"Query": "DeviceInfo | take 5"})).await;
    assert_eq!(a.status, 200);
    assert!(serde_json::from_str::<Value>(&a.text).is_err(), "cut JSON");
    srv.stop().await;

    let srv = start(
        60,
        1,
        ServerOptions {
            faults: Faults::parse("429=1").expect("faults"),
            ..options("")
        },
    )
    .await;
    let g = token(&srv, GRAPH).await;
    let a = post(&srv, &g, json!({"Query": "DeviceInfo | take 5"})).await;
    assert_eq!(a.status, 429);
    assert!(a.headers.contains_key("retry-after"));
    srv.stop().await;
}
