//! The real fetch against the simulated tenant over loopback HTTP.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::sim::{
    self, SCALED, faults, quick, start as start_as_documented, start_scaled as start,
};
use tenx::fetch::http::HttpOptions;
use tenx::fetch::logons::{LogonBudget, LogonCarry, LogonPolicy, parse_windows};
use tenx::fetch::{FetchOptions, GraphBuilder, Outcome, Source, fetch_all, fetch_all_with};
use tenx_sim::{FakeParams, FakeTenant, Manifest, RunningTenant, ServerOptions};

/// A day the Defender for Endpoint API still works, whatever the calendar.
fn before_retirement() -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
}

/// Every machine's logon users, paced to the scaled limits.
fn every_logon() -> FetchOptions {
    budget(LogonBudget::All, None)
}

fn budget(budget: LogonBudget, carry: Option<LogonCarry>) -> FetchOptions {
    FetchOptions {
        logons: LogonPolicy {
            budget,
            windows: parse_windows(SCALED).expect("windows"),
            ..Default::default()
        },
        carry: carry.map(|c| -> tenx::fetch::CarryLoader { Arc::new(move || Ok(c.clone())) }),
        // The logon-user budget and carry-over are the old API's.
        defender: tenx::fetch::DefenderApi::Mde,
        today: before_retirement(),
        ..Default::default()
    }
}

/// A whole fetch: every source, every machine's logon users.
async fn fetch(s: &RunningTenant, opts: HttpOptions) -> GraphBuilder {
    let http = sim::http(s, opts);
    fetch_all_with(http, &Source::ALL, every_logon(), |_| {}).await
}

fn assert_matches_manifest(b: &GraphBuilder, m: &Manifest) {
    let got_e = b.graph.entity_counts();
    let got_r = b.graph.relationship_counts();
    let diff_e: Vec<String> = m
        .entities
        .iter()
        .filter(|(k, v)| got_e.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: want {v} got {:?}", got_e.get(k)))
        .chain(
            got_e
                .iter()
                .filter(|(k, _)| !m.entities.contains_key(*k))
                .map(|(k, v)| format!("{k}: unexpected {v}")),
        )
        .collect();
    let diff_r: Vec<String> = m
        .relationships
        .iter()
        .filter(|(k, v)| got_r.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: want {v} got {:?}", got_r.get(k)))
        .chain(
            got_r
                .iter()
                .filter(|(k, _)| !m.relationships.contains_key(*k))
                .map(|(k, v)| format!("{k}: unexpected {v}")),
        )
        .collect();
    assert!(
        diff_e.is_empty() && diff_r.is_empty(),
        "entities:\n{}\nrelationships:\n{}",
        diff_e.join("\n"),
        diff_r.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_finding_names_the_settings_its_device_fails() {
    // Devices failing several policies, and findings read while later
    // status pages still arrive, must each get their own policy's settings.
    let s = start(1500, 9, ServerOptions::default()).await;
    let b = fetch(&s, quick()).await;
    let t = &s.tenant;
    let mut checked = 0;
    let mut multi = 0;
    for d in &t.devices {
        let failing: Vec<_> = d
            .policy_states
            .iter()
            .filter(|p| p.status.is_finding())
            .collect();
        if failing.len() > 1 {
            multi += 1;
        }
        for st in failing {
            let p = &t.compliance_policies[st.policy as usize];
            let key = format!("{}|{}", d.id, p.id);
            let e = b
                .graph
                .by_key(&key)
                .unwrap_or_else(|| panic!("no finding {key}"));
            let mut want: Vec<String> = st
                .failing
                .iter()
                .map(|&i| p.settings[i as usize].1.to_string())
                .collect();
            want.sort();
            let mut got: Vec<String> = e
                .prop("failingSettingNames")
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            got.sort();
            assert_eq!(got, want, "{key}");
            assert_eq!(
                e.prop("settingsKnown"),
                Some(serde_json::json!(true)),
                "{key}"
            );
            checked += 1;
        }
    }
    assert!(
        checked > 100 && multi > 10,
        "{checked} findings, {multi} devices failing more than one policy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_matches_the_manifest_at_several_sizes_and_seeds() {
    for (users, seed) in [(60, 1), (300, 2), (1200, 3)] {
        let s = start(users, seed, ServerOptions::default()).await;
        let b = fetch(&s, quick()).await;
        for st in b.statuses.values() {
            assert_eq!(st.outcome, Outcome::Complete, "{st:?}");
        }
        assert_matches_manifest(&b, &Manifest::of(&s.tenant));
        // What stays unlinked is only what the tenant cannot resolve: role
        // assignments of deleted principals or at management-group scope.
        for r in b.graph.pending() {
            let from = b.graph.by_key(r.from()).map(|e| e.kind);
            assert_eq!(
                from,
                Some(tenx::model::EntityKind::AzureRoleAssignment),
                "unexpected pending {r:?}"
            );
            let to = r.to();
            let known_principal = s.tenant.users.iter().any(|u| u.id == to)
                || s.tenant.groups.iter().any(|g| g.id == to)
                || s.tenant.service_principals.iter().any(|p| p.id == to);
            assert!(!known_principal, "a live principal was not linked: {r:?}");
            assert!(
                r.verb != tenx::model::Verb::Allows || to.contains("managementgroups"),
                "{r:?}"
            );
        }
        s.stop().await;
    }
}

/// Every entity key and relationship key of a graph, for comparing two fetches.
fn fingerprint(
    b: &GraphBuilder,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    let g = &b.graph;
    let e = g
        .entities()
        .map(|(_, e)| format!("{}:{}", e.kind, e.key))
        .collect();
    let r = g
        .relationships()
        .map(|(f, v, t)| format!("{}|{}|{}", g.entity(f).key, v, g.entity(t).key))
        .collect();
    (e, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_unavailability_still_give_the_identical_graph() {
    let clean = start(400, 11, ServerOptions::default()).await;
    let reference = fetch(&clean, quick()).await;
    clean.stop().await;
    let s = start(400, 11, faults("429=0.10,503=0.05,retry-after=0.02")).await;
    let b = fetch(&s, quick()).await;
    for st in b.statuses.values() {
        assert_eq!(st.outcome, Outcome::Complete, "{st:?}");
    }
    let m = b.metrics.expect("metrics");
    assert!(m.throttled > 10, "the faults were exercised: {m:?}");
    assert_eq!(fingerprint(&b), fingerprint(&reference));
    assert_matches_manifest(&b, &Manifest::of(&s.tenant));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_source_fails_alone_with_the_permission_to_grant() {
    let s = start(200, 12, faults("forbid=defender")).await;
    let b = fetch(&s, quick()).await;
    let d = &b.statuses[&Source::Defender];
    assert_eq!(d.outcome, Outcome::Failed);
    let text = d.errors.join("\n");
    assert!(
        text.contains("Machine.Read.All") && text.contains("admin consent"),
        "{text}"
    );
    assert!(
        text.contains("GET /api/machines"),
        "names the endpoint: {text}"
    );
    for src in [Source::Directory, Source::Intune, Source::Arm] {
        assert_eq!(b.statuses[&src].outcome, Outcome::Complete, "{src:?}");
    }
    let m = Manifest::of(&s.tenant);
    let counts = b.graph.entity_counts();
    for ty in [
        "azure_user",
        "azure_user_group",
        "intune_host_agent",
        "intune_noncompliance_finding",
        "azure_subscription",
        "azure_vm",
    ] {
        assert_eq!(counts.get(ty), m.entities.get(ty), "{ty}");
    }
    assert!(!counts.contains_key("microsoft_defender_machine"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_page_names_its_endpoint_and_loses_nothing_else() {
    let s = start(
        200,
        13,
        faults("malformed-at=/graph/v1.0/servicePrincipals"),
    )
    .await;
    let b = fetch(&s, quick()).await;
    let dir = &b.statuses[&Source::Directory];
    assert_eq!(dir.outcome, Outcome::Partial);
    let text = dir.errors.join("\n");
    assert!(
        text.contains("GET /v1.0/servicePrincipals") && text.contains("could not be read"),
        "{text}"
    );
    let m = Manifest::of(&s.tenant);
    let counts = b.graph.entity_counts();
    for (ty, n) in &m.entities {
        if ty != "azure_service_principal" {
            assert_eq!(counts.get(ty), Some(n), "{ty}");
        }
    }
    let rels = b.graph.relationship_counts();
    for (ty, n) in &m.relationships {
        if !ty.contains("azure_service_principal") {
            assert_eq!(rels.get(ty), Some(n), "{ty}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_expire_mid_fetch_are_renewed() {
    // Slow enough that the fetch takes seconds however fast the build, so
    // tokens die under it. A renewed token lives 2 s: it crosses the
    // network twice (300 ms each way) before the service checks it, and on
    // a loaded machine the test's own threads wait their turn too — with
    // 1 s, a token renewed in time could die on the way, twice, and the
    // client rightly gave up ("refused a freshly issued token").
    let mut opts = faults("expire=2");
    opts.latency = std::time::Duration::from_millis(300);
    let s = start(1000, 14, opts).await;
    let b = fetch(&s, quick()).await;
    assert!(
        b.elapsed.expect("elapsed") > std::time::Duration::from_millis(2200),
        "the fetch outlived a token"
    );
    for st in b.statuses.values() {
        assert_eq!(st.outcome, Outcome::Complete, "{st:?}");
    }
    assert!(b.metrics.expect("metrics").token > 3, "tokens were renewed");
    assert_matches_manifest(&b, &Manifest::of(&s.tenant));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_log_shows_only_reads() {
    let dir = tempfile::Builder::new()
        .prefix("tenx-reqlog-")
        .tempdir()
        .expect("temp dir");
    let log = dir.path().join("requests.log");
    let s = start(
        150,
        15,
        ServerOptions {
            request_log: Some(log.clone()),
            ..Default::default()
        },
    )
    .await;
    fetch(&s, quick()).await;
    let text = std::fs::read_to_string(&log).expect("log");
    let mut posts = 0;
    let mut reports = 0;
    for line in text.lines() {
        let (method, rest) = line.split_once(' ').expect("METHOD PATH STATUS");
        let path = rest
            .split(' ')
            .next()
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("");
        match method {
            "GET" => {}
            "POST" => {
                posts += 1;
                let allowed = path.ends_with("/oauth2/v2.0/token")
                    || path == "/graph/v1.0/$batch"
                    || path == "/graph/beta/$batch"
                    || path == "/graph/beta/deviceManagement/reports/getDeviceInstallStatusReport"
                    || path == "/arm/providers/Microsoft.ResourceGraph/resources";
                assert!(allowed, "POST to {path}");
                reports += usize::from(path.ends_with("/getDeviceInstallStatusReport"));
            }
            other => panic!("method {other} sent: {line}"),
        }
        // Managed apps' install states come from the report: the removed
        // `mobileApps/{id}/deviceStatuses` is never asked for.
        assert!(
            !(path.contains("/mobileApps/") && path.ends_with("/deviceStatuses")),
            "{line}"
        );
    }
    assert!(posts > 0 && text.lines().count() > 50);
    assert!(
        reports >= s.tenant.mobile_apps.len(),
        "a report for each managed app: {reports}"
    );
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_every_source_with_guidance() {
    let s = start(30, 16, ServerOptions::default()).await;
    let http = sim::http_as(&s, &s.tenant.secret_id, quick());
    let b = fetch_all(http, &Source::ALL, |_| {}).await;
    for st in b.statuses.values() {
        assert_eq!(st.outcome, Outcome::Failed);
        let text = st.errors.join("\n");
        assert!(
            text.contains("AADSTS7000215") && text.contains("Value, not its Secret ID"),
            "{text}"
        );
        assert!(
            !text.contains(&s.tenant.secret_id),
            "the secret never appears"
        );
    }
    assert_eq!(b.graph.entity_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_fetch_loads_back_as_the_identical_graph() {
    let s = start(250, 17, ServerOptions::default()).await;
    let b = fetch(&s, quick()).await;
    let dir = tempfile::Builder::new()
        .prefix("tenx-roundtrip-")
        .tempdir()
        .expect("temp dir");
    let dir = dir.path();
    let mut store = tenx::store::Store::open(&dir.join("t.sqlite")).expect("store");
    let id = store
        .save(
            &s.tenant.tenant_id,
            "test",
            &b.graph,
            &b.statuses,
            1,
            &serde_json::json!({}),
        )
        .expect("save");
    let (info, g) = store.load(id).expect("load");
    assert_eq!(info.sources, b.statuses);
    assert_eq!(
        g.read_times(),
        b.graph.read_times(),
        "logon-user read times"
    );
    assert!(!g.read_times().is_empty());
    assert_eq!(
        store.logon_carry().expect("carry"),
        LogonCarry::from_graph(&b.graph),
        "what the store carries over is what the graph held"
    );
    let props_of = |g: &tenx::model::TenantGraph| {
        g.entities()
            .map(|(i, e)| (i, e.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        props_of(&g),
        props_of(&b.graph),
        "entities, ids and properties"
    );
    let mut a: Vec<_> = g.relationships().collect();
    let mut c: Vec<_> = b.graph.relationships().collect();
    a.sort();
    c.sort();
    assert_eq!(a, c, "relationships");
    s.stop().await;
}

fn machines_read(b: &GraphBuilder) -> Vec<String> {
    let g = &b.graph;
    let mut v: Vec<String> = g
        .of_kind(tenx::model::EntityKind::DefenderMachine)
        .iter()
        .filter(|&&i| g.read_at(i).is_some())
        .map(|&i| g.entity(i).key.to_string())
        .collect();
    v.sort();
    v
}

fn risk(g: &tenx::model::TenantGraph, i: u32) -> u8 {
    tenx::fetch::logons::MachineSeen::risk_of(
        g.entity(i)
            .prop("riskScore")
            .and_then(|v| v.as_str().map(String::from))
            .as_deref(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logon_users_beyond_the_budget_carry_over_until_every_machine_is_read() {
    let s = start(400, 18, ServerOptions::default()).await;
    let machines = s.tenant.machines.len();
    assert!(machines > 250, "{machines} machines");
    let fetch_with = |carry: Option<LogonCarry>| {
        let http = sim::http(&s, quick());
        async move {
            fetch_all_with(
                http,
                &Source::ALL,
                budget(LogonBudget::Machines(100), carry),
                |_| {},
            )
            .await
        }
    };

    // The first fetch reads the riskiest 100 and says what it did not read.
    let first = fetch_with(None).await;
    let d = &first.statuses[&Source::Defender];
    assert_eq!(d.outcome, Outcome::Complete, "{d:?}");
    assert_eq!(machines_read(&first).len(), 100);
    let note = d.notes.join("\n");
    assert!(
        note.contains(&format!("100 of {machines} machines read now"))
            && note.contains(&format!("{} not read yet", machines - 100)),
        "{note}"
    );
    let g = &first.graph;
    let kind = tenx::model::EntityKind::DefenderMachine;
    let risks = |read: bool| {
        g.of_kind(kind)
            .iter()
            .filter(move |&&i| g.read_at(i).is_some() == read)
            .map(|&i| risk(g, i))
    };
    let min_read = risks(true).min();
    let max_unread = risks(false).max();
    assert!(min_read >= max_unread, "riskiest first");

    // Carried over, a machine keeps the time it was read: age the first
    // fetch's times and see them come back unchanged.
    let mut carry = LogonCarry::from_graph(&first.graph);
    let long_ago = chrono::Utc::now().timestamp() - 3 * 86_400;
    for m in carry.machines.values_mut() {
        m.read_at = long_ago;
    }
    let second = fetch_with(Some(carry)).await;
    let g = &second.graph;
    let mut old = 0;
    for key in machines_read(&first) {
        let i = g.id_of(&key).expect("machine");
        assert_eq!(g.read_at(i), Some(long_ago), "{key} kept its read time");
        old += 1;
    }
    assert_eq!(old, 100);
    assert_eq!(machines_read(&second).len(), 200, "100 more");
    let note = second.statuses[&Source::Defender].notes.join("\n");
    assert!(
        note.contains("100 carried over") && note.contains("oldest read 3 days ago"),
        "{note}"
    );

    // Fetch after fetch, every machine gets read; the graph is then whole.
    let mut last = second;
    let mut fetches = 2;
    while machines_read(&last).len() < machines {
        let carry = LogonCarry::from_graph(&last.graph);
        last = fetch_with(Some(carry)).await;
        fetches += 1;
        assert!(fetches <= machines.div_ceil(100), "{fetches} fetches");
    }
    assert_eq!(fetches, machines.div_ceil(100));
    assert_matches_manifest(&last, &Manifest::of(&s.tenant));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_limit_ends_logon_users_at_once_and_carries_every_machine_over() {
    // Documented limits: a fetch right after another finds the minute's
    // 100 calls spent, and must not wait a minute for them.
    let s = start_as_documented(300, 19, ServerOptions::default()).await;
    let http = sim::http(&s, quick());
    let old_api = FetchOptions {
        defender: tenx::fetch::DefenderApi::Mde,
        today: before_retirement(),
        ..Default::default()
    };
    let first = fetch_all_with(http, &Source::ALL, old_api, |_| {}).await;
    assert_eq!(machines_read(&first).len(), 100);
    let carry = LogonCarry::from_graph(&first.graph);
    let options = FetchOptions {
        carry: Some(Arc::new(move || Ok(carry.clone()))),
        defender: tenx::fetch::DefenderApi::Mde,
        today: before_retirement(),
        ..Default::default()
    };
    let http = sim::http(&s, quick());
    let t = std::time::Instant::now();
    let second = fetch_all_with(http, &Source::ALL, options, |_| {}).await;
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "no wait for the limit: {:?}",
        t.elapsed()
    );
    let d = &second.statuses[&Source::Defender];
    assert_eq!(d.outcome, Outcome::Complete, "{d:?}");
    let note = d.notes.join("\n");
    assert!(
        note.contains("0 of") && note.contains("100 carried over"),
        "{note}"
    );
    assert!(
        note.contains("the limit was spent after 0 calls") && note.contains("asked to wait"),
        "{note}"
    );
    assert_eq!(
        second.metrics.expect("metrics").throttled,
        1,
        "one call found the limit spent, not a hundred"
    );
    let logons = |b: &GraphBuilder| {
        let g = &b.graph;
        let mut v: Vec<(String, String, Option<i64>)> = g
            .relationships()
            .filter(|(f, v, t)| {
                *v == tenx::model::Verb::Has
                    && g.entity(*t).kind == tenx::model::EntityKind::DefenderLogonUser
                    && g.entity(*f).kind == tenx::model::EntityKind::DefenderMachine
            })
            .map(|(f, _, t)| {
                (
                    g.entity(f).key.to_string(),
                    g.entity(t).key.to_string(),
                    g.read_at(f),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert!(!logons(&first).is_empty());
    assert_eq!(
        logons(&second),
        logons(&first),
        "every machine carried over"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_carry_every_field_tenx_selects_not_only_the_defaults() {
    // Graph answers a user's eleven default properties unless `$select`
    // names others; what the explorer, search and triage show of a user
    // must arrive because tenx asks for it.
    let s = start(80, 4, ServerOptions::default()).await;
    let http = sim::http(&s, quick());
    let b = fetch_all(http, &[Source::Directory], |_| {}).await;
    let users = b.graph.of_kind(tenx::model::EntityKind::AzureUser);
    assert_eq!(users.len(), s.tenant.users.len());
    let beyond_defaults = [
        "accountEnabled",
        "department",
        "userType",
        "createdDateTime",
        "usageLocation",
        "employeeId",
        "city",
        "country",
        "onPremisesSyncEnabled",
    ];
    for field in beyond_defaults {
        assert!(
            tenx::ingest::directory::USER_FIELDS
                .split(',')
                .any(|f| f == field),
            "{field} is selected"
        );
    }
    for &u in users {
        let e = b.graph.entity(u);
        for field in beyond_defaults {
            assert!(e.prop(field).is_some(), "{} lacks {field}", e.key);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_documented_limits_a_fetch_is_never_throttled_and_paces_to_what_the_services_say()
{
    use std::time::{Duration, Instant};
    // The documented limits (Graph's identity bucket, Intune's areas, ARM's
    // read buckets, Resource Graph's quota): a whole fetch stays within
    // them, and the quota headers of answers far from a limit cost no time.
    let plain = start(400, 21, ServerOptions::default()).await;
    let t = Instant::now();
    fetch(&plain, quick()).await;
    let unthrottled = t.elapsed();
    plain.stop().await;
    let dir = tempfile::Builder::new()
        .prefix("tenx-limits-")
        .tempdir()
        .expect("temp dir");
    let log = dir.path().join("requests.log");
    let s = start(
        400,
        21,
        ServerOptions {
            throttle: Some(tenx_sim::ThrottleSpec::documented()),
            request_log: Some(log.clone()),
            ..Default::default()
        },
    )
    .await;
    let t = Instant::now();
    let b = fetch(&s, quick()).await;
    let documented = t.elapsed();
    for st in b.statuses.values() {
        assert_eq!(st.outcome, Outcome::Complete, "{st:?}");
    }
    assert_matches_manifest(&b, &Manifest::of(&s.tenant));
    // No 429 from any service limit. (Defender's logon users keep their
    // own scaled per-endpoint limits in these tests, paced by `logons`.)
    let refused: Vec<String> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .filter(|l| l.ends_with(" 429") && !l.contains("/logonusers"))
        .map(String::from)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert!(
        documented < unthrottled * 2 + Duration::from_secs(1),
        "{documented:?} against {unthrottled:?}"
    );
    s.stop().await;

    // Resource Graph's quota scaled to 2 queries a second and thousands of
    // resources: tenx waits for each reset its answers announce instead of
    // running into 429s (which, from Resource Graph, carry no Retry-After).
    let t = FakeTenant::generate(FakeParams {
        users: 150,
        seed: 22,
        resources: Some(4500),
        ..Default::default()
    });
    let s = sim::serve(
        t,
        ServerOptions {
            throttle: Some(tenx_sim::ThrottleSpec::parse("resourcegraph=2/1s").expect("spec")),
            ..Default::default()
        },
    )
    .await;
    let http = sim::http(&s, quick());
    let t = Instant::now();
    let b = fetch_all(http, &[Source::Arm], |_| {}).await;
    let st = &b.statuses[&Source::Arm];
    assert_eq!(st.outcome, Outcome::Complete, "{st:?}");
    let m = b.metrics.expect("metrics");
    assert_eq!(m.throttled, 0, "{m:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "five pages at two a second: {:?}",
        t.elapsed()
    );
    let resources: usize = b
        .graph
        .relationship_counts()
        .iter()
        .filter(|(k, _)| k.starts_with("azure_resource_group_has_"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(resources, s.tenant.resources.len());
}

/// Keys of every entity, by `_type`, and every relationship as
/// `from|VERB|to`.
fn shape(b: &GraphBuilder) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let g = &b.graph;
    let mut entities: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, e) in g.entities() {
        entities
            .entry(e.kind.type_name().to_string())
            .or_default()
            .insert(e.key.to_string());
    }
    let rels = g
        .relationships()
        .map(|(f, v, t)| format!("{}|{}|{}", g.entity(f).key, v.class(), g.entity(t).key))
        .collect();
    (entities, rels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defender_reads_the_same_graph_through_either_api() {
    for (users, seed) in [(300, 3), (1500, 4)] {
        let s = start(users, seed, ServerOptions::default()).await;
        let m = Manifest::of(&s.tenant);
        let http = sim::http(&s, quick());
        let old = fetch_all_with(http, &Source::ALL, every_logon(), |_| {}).await;
        let http = sim::http(&s, quick());
        let new = fetch_all_with(http, &Source::ALL, FetchOptions::default(), |_| {}).await;
        for b in [&old, &new] {
            assert_eq!(
                b.statuses[&Source::Defender].outcome,
                Outcome::Complete,
                "{:?}",
                b.statuses[&Source::Defender]
            );
        }
        assert_matches_manifest(&old, &m);
        assert_matches_manifest(&new, &m);
        let (old_e, old_r) = shape(&old);
        let (new_e, new_r) = shape(&new);
        for (ty, keys) in &old_e {
            assert_eq!(new_e.get(ty), Some(keys), "{ty} differs at {users} users");
        }
        assert_eq!(old_e.len(), new_e.len());
        let only_old: Vec<&String> = old_r.difference(&new_r).take(5).collect();
        let only_new: Vec<&String> = new_r.difference(&old_r).take(5).collect();
        assert!(
            only_old.is_empty() && only_new.is_empty(),
            "relationships differ at {users} users: old only {only_old:?}, new only {only_new:?}"
        );
        // Every machine's logon users in one fetch, each machine read now.
        assert_eq!(machines_read(&new).len(), s.tenant.machines.len());
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advanced_hunting_never_keeps_a_result_the_row_cap_cut() {
    // Results cut at 400 rows, and several times that many vulnerability
    // rows: each table is read in partitions below the cap.
    let options = ServerOptions {
        // (and calls 60 times the documented rate, so splitting is quick)
        hunting: tenx_sim::HuntingLimits::parse("rows=400,calls=45/1s").expect("limits"),
        ..ServerOptions::default()
    };
    let s = start(700, 8, options).await;
    let rows = s.tenant.machine_vulnerability_rows().len();
    assert!(rows > 4 * 400, "{rows} vulnerability rows");
    let m = Manifest::of(&s.tenant);
    let hunting = |target: Option<usize>| FetchOptions {
        hunting: tenx::fetch::HuntingPolicy {
            row_cap: 400,
            target,
            calls: vec![(45, std::time::Duration::from_secs(1))],
        },
        ..Default::default()
    };
    let http = sim::http(&s, quick());
    let b = fetch_all_with(http, &[Source::Defender], hunting(None), |_| {}).await;
    let defender = |b: &GraphBuilder| {
        let mut c = b.graph.entity_counts();
        c.retain(|ty, _| ty.starts_with("microsoft_defender") || ty == "cve");
        c
    };
    let want: BTreeMap<String, usize> = m
        .entities
        .iter()
        .filter(|(ty, _)| ty.starts_with("microsoft_defender") || *ty == "cve")
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    assert_eq!(defender(&b), want);
    let stats = s.hunting_stats();
    assert_eq!(stats.truncated, 0, "planned below the cap: {stats:?}");
    // Planned past the cap, every result comes back cut: each is thrown
    // away and read again in halves, and nothing is lost.
    let http = sim::http(&s, quick());
    let b = fetch_all_with(http, &[Source::Defender], hunting(Some(5_000)), |_| {}).await;
    assert_eq!(b.statuses[&Source::Defender].outcome, Outcome::Complete);
    assert_eq!(defender(&b), want);
    let after = s.hunting_stats();
    assert!(after.truncated > 0, "results were cut: {after:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cve_the_knowledge_base_lacks_is_kept_from_its_findings_and_named() {
    // Advanced hunting finds CVEs on machines that its knowledge base has
    // no row for yet: each is still a CVE of the graph, linked to the
    // machines it was found on, with the severity the findings give, and
    // the source says which.
    let s = start(200, 8, faults("kb-missing=3")).await;
    let m = Manifest::of(&s.tenant);
    let http = sim::http(&s, quick());
    let b = fetch_all_with(http, &[Source::Defender], FetchOptions::default(), |_| {}).await;
    let st = &b.statuses[&Source::Defender];
    assert_eq!(st.outcome, Outcome::Complete, "{st:?}");
    assert_eq!(
        b.graph.entity_counts().get("cve"),
        m.entities.get("cve"),
        "every CVE found is in the graph"
    );
    let note = st
        .notes
        .iter()
        .find(|n| n.contains("no row in the knowledge base"))
        .unwrap_or_else(|| panic!("a note names the CVEs: {:?}", st.notes));
    assert!(note.starts_with("vulnerabilities: 3 CVEs"), "{note}");
    let stubs: Vec<_> = b
        .graph
        .entities()
        .filter(|(_, e)| e.prop("knowledgeBase") == Some(serde_json::Value::Bool(false)))
        .map(|(_, e)| e)
        .collect();
    assert_eq!(stubs.len(), 3);
    for e in stubs {
        assert!(note.contains(&*e.key), "{note} names {}", e.key);
        assert!(e.prop("severity").is_some(), "{:?}", e.key);
        let exposed = e.prop("exposedMachines").and_then(|v| v.as_u64());
        assert!(exposed.is_some_and(|n| n > 0), "{:?}: {exposed:?}", e.key);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advanced_hunting_reads_a_tenant_past_the_real_row_cap_whole() {
    // The documented limits, unscaled: results of at most 100,000 rows, 45
    // calls a minute. A tenant with several times that many (machine,
    // CVE) rows is read whole, and no kept result was cut.
    let t = FakeTenant::generate(FakeParams {
        users: 2_000,
        devices: Some(120_000),
        seed: 5,
        ..Default::default()
    });
    let rows = t.machine_vulnerability_rows().len();
    assert!(rows > 3 * 100_000, "{rows} vulnerability rows");
    let m = Manifest::of(&t);
    let s = sim::serve(t, ServerOptions::default()).await;
    let http = sim::http(&s, quick());
    let b = fetch_all_with(http, &[Source::Defender], FetchOptions::default(), |_| {}).await;
    assert_eq!(b.statuses[&Source::Defender].outcome, Outcome::Complete);
    let mut got = b.graph.entity_counts();
    got.retain(|ty, _| ty.starts_with("microsoft_defender") || ty == "cve");
    let want: BTreeMap<String, usize> = m
        .entities
        .iter()
        .filter(|(ty, _)| ty.starts_with("microsoft_defender") || *ty == "cve")
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    assert_eq!(got, want);
    let stats = s.hunting_stats();
    assert_eq!(stats.truncated, 0, "{stats:?}");
    s.stop().await;
}
