//! The real fetch against the simulated tenant over loopback HTTP.

use std::sync::Arc;

use tenx::auth::{Auth, Credentials};
use tenx::fake::{FakeParams, FakeTenant, Faults, Manifest, RunningTenant, ServerOptions, serve};
use tenx::fetch::{GraphBuilder, Outcome, Source, fetch_all};
use tenx::http::{Http, HttpOptions};
use tenx::secret::Secret;

async fn start(users: usize, seed: u64, options: ServerOptions) -> RunningTenant {
    let t = FakeTenant::generate(FakeParams {
        users,
        seed,
        ..Default::default()
    });
    serve(t, "127.0.0.1:0".parse().expect("addr"), options)
        .await
        .expect("server")
}

fn http_for(s: &RunningTenant, secret: &str, opts: HttpOptions) -> Arc<Http> {
    let creds = Credentials {
        secret: Secret::new(secret),
        ..s.credentials()
    };
    Arc::new(
        Http::new(
            Arc::new(Auth::new(creds, s.endpoints().expect("endpoints"))),
            opts,
        )
        .expect("http"),
    )
}

fn quick() -> HttpOptions {
    HttpOptions {
        backoff: std::time::Duration::from_millis(5),
        ..Default::default()
    }
}

async fn fetch(s: &RunningTenant, opts: HttpOptions) -> GraphBuilder {
    let http = http_for(s, &s.tenant.client_secret, opts);
    fetch_all(http, &Source::ALL, |_| {}).await
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
            let from = b.graph.by_key(&r.from).map(|e| e.kind);
            assert_eq!(
                from,
                Some(tenx::model::EntityKind::AzureRoleAssignment),
                "unexpected pending {r:?}"
            );
            let to = &*r.to;
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

fn faults(spec: &str) -> ServerOptions {
    ServerOptions {
        faults: Faults::parse(spec).expect("faults"),
        ..Default::default()
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
        text.contains("GET /v1.0/servicePrincipals") && text.contains("not valid JSON"),
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
    // tokens die under it.
    let mut opts = faults("expire=1");
    opts.latency = std::time::Duration::from_millis(300);
    let s = start(1000, 14, opts).await;
    let b = fetch(&s, quick()).await;
    assert!(
        b.elapsed.expect("elapsed") > std::time::Duration::from_millis(1100),
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
    let log = std::env::temp_dir().join(format!("tenx-reqlog-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
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
                    || path == "/arm/providers/Microsoft.ResourceGraph/resources";
                assert!(allowed, "POST to {path}");
            }
            other => panic!("method {other} sent: {line}"),
        }
    }
    assert!(posts > 0 && text.lines().count() > 50);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_every_source_with_guidance() {
    let s = start(30, 16, ServerOptions::default()).await;
    let http = http_for(&s, &s.tenant.secret_id, quick());
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
    let dir = std::env::temp_dir().join(format!("tenx-roundtrip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
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
    let _ = std::fs::remove_dir_all(&dir);
    s.stop().await;
}
