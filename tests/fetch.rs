//! The real fetch against the simulated tenant over loopback HTTP.

use std::sync::Arc;

use tenx::auth::{Auth, Credentials};
use tenx::endpoints::{Cloud, Endpoints, parse_base};
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
    let b = s.base_url();
    let mut e = Endpoints::for_cloud(Cloud::Public);
    e.login = parse_base("login", &format!("{b}/login")).expect("url");
    e.graph = parse_base("graph", &format!("{b}/graph")).expect("url");
    e.defender = parse_base("defender", &format!("{b}/defender")).expect("url");
    e.arm = parse_base("arm", &format!("{b}/arm")).expect("url");
    let creds = Credentials {
        tenant: s.tenant.tenant_id.clone(),
        client_id: s.tenant.client_id.clone(),
        secret: Secret::new(secret),
    };
    Arc::new(Http::new(Arc::new(Auth::new(creds, e)), opts).expect("http"))
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
