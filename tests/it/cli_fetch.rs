//! The `tenx` binary: fetch into a snapshot, export a subgraph, exit codes.

use crate::common;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::process::Output;

use common::bin::{against, bare, run};
use common::sim::{self, SCALED};
use common::{runtime, tempdir};
use serde_json::Value;
use tenx_sim::{Manifest, RunningTenant};

/// `tenx ARGS` against the simulated tenant, on a day the old Defender API
/// still works, pacing logon users to the scaled limits; with another
/// client secret when given one.
fn tenx(s: &RunningTenant, data: &Path, secret: Option<&str>, args: &[&str]) -> Output {
    let mut c = against(s, data);
    c.args(args)
        .env("TENX_LOGON_USER_LIMITS", SCALED)
        .env("TENX_TODAY", "2026-12-01");
    if let Some(sec) = secret {
        c.env("TENX_CLIENT_SECRET", sec);
    }
    run(&mut c)
}

/// A simulated tenant whose logon-user limits run at `SCALED`.
fn start(rt: &tokio::runtime::Runtime, users: usize, seed: u64, faults: &str) -> RunningTenant {
    rt.block_on(sim::start_scaled(users, seed, sim::faults(faults)))
}

/// `tenx fetch --json` with more arguments: it must succeed; its report.
fn fetch_json(s: &RunningTenant, data: &Path, args: &[&str]) -> Value {
    let mut all = vec!["fetch", "--json"];
    all.extend_from_slice(args);
    let out = tenx(s, data, None, &all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json report")
}

#[test]
fn fetch_saves_a_snapshot_and_export_selects_exactly_the_neighbourhood() {
    let rt = runtime();
    let s = start(&rt, 250, 21, "");
    let data = tempdir("fetch");
    let data = data.path();
    let v = fetch_json(&s, data, &["--logon-users", "all"]);
    let m = Manifest::of(&s.tenant);
    let entities: HashMap<String, usize> =
        serde_json::from_value(v["entities"].clone()).expect("counts");
    for (ty, n) in &m.entities {
        assert_eq!(entities.get(ty), Some(n), "{ty}");
    }
    assert!(v["snapshot"]["id"].as_i64().is_some());

    // The whole snapshot, then the neighbourhood of one user at depth 2.
    let all_path = data.join("all.json");
    let out = tenx(
        &s,
        data,
        None,
        &["export", "-o", all_path.to_str().expect("path")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value =
        serde_json::from_slice(&std::fs::read(&all_path).expect("export")).expect("json");
    let user = s.tenant.users[3].id.clone();
    let out = tenx(
        &s,
        data,
        None,
        &["export", "--select", &user, "--depth", "2"],
    );
    assert!(out.status.success());
    let sub: Value = serde_json::from_slice(&out.stdout).expect("json");

    // Breadth-first search over the full export's relationships, written
    // independently of tenx's own selection code.
    let mut adj: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in all["relationships"].as_array().expect("rels") {
        let (f, t) = (
            r["_fromEntityKey"].as_str().expect("from"),
            r["_toEntityKey"].as_str().expect("to"),
        );
        adj.entry(f).or_default().push(t);
        adj.entry(t).or_default().push(f);
    }
    let mut seen = BTreeSet::from([user.as_str()]);
    let mut q = VecDeque::from([(user.as_str(), 0)]);
    while let Some((k, d)) = q.pop_front() {
        if d == 2 {
            continue;
        }
        for n in adj.get(k).into_iter().flatten() {
            if seen.insert(n) {
                q.push_back((n, d + 1));
            }
        }
    }
    let got: BTreeSet<&str> = sub["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| e["_key"].as_str().expect("key"))
        .collect();
    assert_eq!(got, seen);
    assert!(got.len() > 3);
    for r in sub["relationships"].as_array().expect("rels") {
        assert!(
            got.contains(r["_fromEntityKey"].as_str().expect("from"))
                && got.contains(r["_toEntityKey"].as_str().expect("to"))
        );
    }
    // No secret in anything written.
    let secret = &s.tenant.client_secret;
    for entry in std::fs::read_dir(data).expect("dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}

#[test]
fn exit_codes_tell_complete_partial_and_nothing() {
    let rt = runtime();
    let s = start(&rt, 40, 22, "forbid=defender");
    let data = tempdir("codes");
    let data = data.path();
    let out = tenx(&s, data, None, &["fetch"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("defender   FAILED") && text.contains("ThreatHunting.Read.All"),
        "{text}"
    );
    // Through the old API, its own permissions are named.
    let out = tenx(&s, data, None, &["fetch", "--defender-api", "mde"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("defender   FAILED") && text.contains("Machine.Read.All"),
        "{text}"
    );
    // From 1 February 2027 the old API is not called: it says it is retired
    // and what to do, and nothing is sent to it.
    let mut c = against(&s, data);
    c.args(["fetch", "--defender-api", "mde", "--sources", "defender"])
        .env("TENX_TODAY", "2027-02-01");
    let before = s.request_count();
    let out = run(&mut c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("retired on 1 February 2027") && text.contains("ThreatHunting.Read.All"),
        "{text}"
    );
    assert_eq!(s.request_count(), before, "nothing sent");
    let out = tenx(&s, data, Some("wrong-secret"), &["fetch"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("AADSTS7000215") && !text.contains("wrong-secret"),
        "{text}"
    );
    let out = tenx(&s, data, None, &["fetch", "--sources", "arm,teams"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown source 'teams'"));
    let out = tenx(&s, data, None, &["fetch", "--logon-users", "lots"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--logon-users") && err.contains("'lots'"),
        "{err}"
    );
    // No profile, no credentials in the environment.
    let out = run(bare(&data.join("nobody")).arg("fetch"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no profile yet: run `tenx login` (or set TENX_TENANT_ID, TENX_CLIENT_ID and TENX_CLIENT_SECRET)"),
        "{err}"
    );
}

#[test]
fn search_finds_entities_in_the_latest_snapshot() {
    let rt = runtime();
    let s = start(&rt, 120, 23, "");
    let data = tempdir("search");
    let data = data.path();
    let out = tenx(&s, data, None, &["fetch"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = &s.tenant.users[5];
    let local = user.upn.split('@').next().expect("local");
    let out = tenx(
        &s,
        data,
        None,
        &["search", &format!("user:{local}"), "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["results"][0]["_key"], user.id.as_str());
    assert_eq!(v["results"][0]["_type"], "azure_user");
    let serial = &s.tenant.devices[3].serial;
    let out = tenx(
        &s,
        data,
        None,
        &["search", serial, "--kind", "dev", "--limit", "1"],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&s.tenant.devices[3].id));
    let out = tenx(&s, data, None, &["search", "qqqqzzzzxxxx"]);
    assert_eq!(out.status.code(), Some(2), "no match is exit 2");
    let out = tenx(&s, data, None, &["search", "x", "--kind", "printer"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'printer'") && err.contains("unknown kind"),
        "{err}"
    );
}

#[test]
fn logon_users_carry_over_from_fetch_to_fetch_until_all_are_read() {
    let rt = runtime();
    let s = start(&rt, 250, 22, "");
    let machines = s.tenant.machines.len();
    assert!(machines > 100 && machines <= 300, "{machines}");
    let m = Manifest::of(&s.tenant);
    let want = m.entities["microsoft_defender_logon_user"];
    let data = tempdir("carry");
    let data = data.path();
    let mut seen = Vec::new();
    // The old API's budget: 100 machines a fetch.
    for _ in 0..machines.div_ceil(100) {
        let v = fetch_json(&s, data, &["--defender-api", "mde"]);
        seen.push((
            v["entities"]["microsoft_defender_logon_user"]
                .as_u64()
                .unwrap_or(0) as usize,
            v["sources"]["defender"]["notes"].clone(),
        ));
    }
    // Each fetch adds the next 100 machines' logon users to those carried.
    for w in seen.windows(2) {
        assert!(w[1].0 >= w[0].0, "{seen:?}");
    }
    let first_note = seen[0].1[0].as_str().expect("a note");
    assert!(
        first_note.contains(&format!("100 of {machines} machines read now")),
        "{first_note}"
    );
    let (last, notes) = seen.last().expect("fetches");
    assert_eq!(
        *last, want,
        "every logon user after the last fetch: {seen:?}"
    );
    let note = notes[0].as_str().expect("a note");
    assert!(
        note.contains(&format!("{} carried over", machines - 100))
            && !note.contains("not read yet"),
        "{note}"
    );
    // The human report says the same.
    let out = tenx(
        &s,
        data,
        None,
        &["fetch", "--logon-users", "none", "--defender-api", "mde"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "note: logon users: 0 of {machines} machines read now, {machines} carried over"
        )),
        "{text}"
    );
    rt.block_on(s.stop());
}
