//! The fault matrix: the real `tenx fetch` against the simulated tenant with
//! every `--faults` knob and the hostile answers real services and broken
//! proxies give. For each, the fetch either matches the manifest exactly and
//! exits 0, or exits non-zero naming what is missing — never exit 0 with
//! less than the manifest, never a panic, never a wait without end.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::bin::{against, run};
use common::runtime;
use common::sim::{self, SCALED};
use serde_json::Value;
use tenx_sim::{FakeParams, FakeTenant, Faults, Manifest, RunningTenant, ServerOptions};

fn start(rt: &tokio::runtime::Runtime, faults: &str) -> RunningTenant {
    start_slow(rt, faults, 0, "")
}

/// `start`, with this much latency per request (tokens that expire need a
/// fetch that lasts) and these advanced hunting limits.
fn start_slow(
    rt: &tokio::runtime::Runtime,
    faults: &str,
    latency_ms: u64,
    hunting: &str,
) -> RunningTenant {
    let t = FakeTenant::generate(FakeParams {
        users: 150,
        seed: 77,
        // Three subscriptions: the last is disabled, and read.
        subscriptions: Some(3),
        ..Default::default()
    });
    let opts = sim::scaled(ServerOptions {
        latency: Duration::from_millis(latency_ms),
        hunting: tenx_sim::HuntingLimits::parse(hunting).expect("hunting limits"),
        faults: Faults::parse(faults).expect("faults"),
        ..Default::default()
    });
    rt.block_on(sim::serve(t, opts))
}

/// `tenx fetch --json` through one Defender API, keeping to these advanced
/// hunting limits.
fn fetch(s: &RunningTenant, data: &Path, api: &str, hunting: &str) -> Output {
    run(against(s, data)
        .args([
            "fetch",
            "--json",
            "--logon-users",
            "all",
            "--defender-api",
            api,
        ])
        .env("TENX_HUNTING_LIMITS", hunting)
        .env("TENX_LOGON_USER_LIMITS", SCALED))
}

/// What a case must end with.
enum Expect {
    /// Exit 0, and exactly the manifest.
    Whole,
    /// Exit non-zero, naming each of these (collections or sources).
    Missing(&'static [&'static str]),
    /// Exit 0 and exactly the manifest of what the app can see: every
    /// source but ARM, and ARM's note saying why it sees nothing.
    NoArm,
}

/// ARM's entity types: every `azure_*` type but the directory's.
fn is_arm(ty: &str) -> bool {
    let entra = [
        "azure_account",
        "azure_user",
        "azure_user_group",
        "azure_group_member",
        "azure_service_principal",
    ];
    ty.starts_with("azure_") && !entra.contains(&ty)
}

fn counts(v: &Value, what: &str) -> BTreeMap<String, usize> {
    serde_json::from_value(v[what].clone()).expect("counts")
}

#[test]
fn every_fault_ends_whole_or_names_what_is_missing() {
    // Defender's faults are the old API's and the new one's: each runs
    // through the API it concerns; the rest through the default (graph).
    // (spec, API, advanced hunting limits of both sides, expected)
    let mde: &[(&str, Expect)] = &[
        (
            "malformed-at=/defender/api/machines",
            Expect::Missing(&["machines"]),
        ),
        (
            "loop-next=/defender/api/machines",
            Expect::Missing(&["machines"]),
        ),
        (
            "missing-role=Machine.Read.All",
            Expect::Missing(&["machines"]),
        ),
        ("429=0.05,503=0.05", Expect::Whole),
    ];
    let hunting: &[(&str, &str, Expect)] = &[
        // Results cut at 100 rows: read in smaller ranges, nothing lost.
        ("", "rows=100", Expect::Whole),
        // Two calls a second: paced, never refused for it.
        ("", "calls=2/1s", Expect::Whole),
        (
            "malformed-at=/graph/v1.0/security/runHuntingQuery",
            "",
            Expect::Missing(&["machines"]),
        ),
        (
            "missing-role=ThreatHunting.Read.All",
            "",
            Expect::Missing(&["ThreatHunting.Read.All"]),
        ),
    ];
    let cases: &[(&str, Expect)] = &[
        ("", Expect::Whole),
        ("429=0.05,503=0.05,500=0.05", Expect::Whole),
        ("drop=0.03,malformed=0.03", Expect::Whole),
        ("429=0.05,retry-after=date", Expect::Whole),
        ("429=0.05,retry-after=none", Expect::Whole),
        ("expire=1", Expect::Whole),
        ("batch-body=base64", Expect::Whole),
        ("batch-body=null:0.1", Expect::Whole),
        (
            "batch-body=null",
            Expect::Missing(&["group members", "compliance device statuses"]),
        ),
        ("batch-body=error", Expect::Missing(&["group members"])),
        ("batch-body=value-null", Expect::Missing(&["group members"])),
        (
            "malformed-at=/graph/v1.0/groups/",
            Expect::Missing(&["group members"]),
        ),
        ("loop-next=/graph/v1.0/users", Expect::Missing(&["users"])),
        (
            "loop-next=/arm/providers/Microsoft.ResourceGraph/resources",
            Expect::Missing(&["resources"]),
        ),
        ("token-expires-in=18446744073709551615", Expect::Whole),
        ("null-records=0.05", Expect::Missing(&["could not be kept"])),
        ("deep-nesting=150", Expect::Missing(&["subscriptions"])),
        ("big-number=-1e999999", Expect::Whole),
        ("big-page=300", Expect::Missing(&["users"])),
        (
            "429=0.05,retry-after=999999",
            Expect::Missing(&["asks to wait 999999 s"]),
        ),
        ("forbid=intune", Expect::Missing(&["intune"])),
        ("arm-no-reader", Expect::NoArm),
    ];
    let runs = cases
        .iter()
        .map(|(spec, e)| (*spec, "graph", "", e))
        .chain(mde.iter().map(|(spec, e)| (*spec, "mde", "", e)))
        .chain(hunting.iter().map(|(spec, h, e)| (*spec, "graph", *h, e)));
    let rt = runtime();
    let mut failures = Vec::new();
    for (spec, api, limits, expect) in runs {
        // Tokens that die after a second need a fetch of several seconds.
        let latency = if spec.starts_with("expire") { 300 } else { 0 };
        let s = start_slow(&rt, spec, latency, limits);
        let m = Manifest::of(&s.tenant);
        let data = tempfile::tempdir().expect("temp dir");
        let began = Instant::now();
        let out = fetch(&s, data.path(), api, limits);
        let took = began.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let code = out.status.code();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let said = format!("{}\n{}", v["missing"], v["sources"]);
        let mut problems = Vec::new();
        if code.is_none() || stderr.contains("panicked") {
            problems.push(format!("ended abnormally ({:?}): {stderr}", out.status));
        }
        if took > Duration::from_secs(90) {
            problems.push(format!("took {took:?}"));
        }
        let (entities, rels) = (counts(&v, "entities"), counts(&v, "relationships"));
        let whole = |want_e: &BTreeMap<String, usize>, want_r: &BTreeMap<String, usize>| {
            let mut diff = Vec::new();
            for (ty, n) in want_e {
                if entities.get(ty) != Some(n) {
                    diff.push(format!("{ty}: want {n}, got {:?}", entities.get(ty)));
                }
            }
            for (ty, n) in want_r {
                if rels.get(ty) != Some(n) {
                    diff.push(format!("{ty}: want {n}, got {:?}", rels.get(ty)));
                }
            }
            for ty in entities.keys().filter(|t| !want_e.contains_key(*t)) {
                diff.push(format!("{ty}: not in the manifest"));
            }
            diff
        };
        match expect {
            Expect::Whole => {
                if code != Some(0) {
                    problems.push(format!("exit {code:?}: {said}"));
                }
                problems.extend(whole(&m.entities, &m.relationships));
            }
            Expect::NoArm => {
                if code != Some(0) {
                    problems.push(format!("exit {code:?}: {said}"));
                }
                let keep = |m: &BTreeMap<String, usize>| -> BTreeMap<String, usize> {
                    m.iter()
                        .filter(|(t, _)| !is_arm(t) && !t.contains("_has_azure_subscription"))
                        .map(|(t, n)| (t.clone(), *n))
                        .collect()
                };
                let want_r = keep(&m.relationships)
                    .into_iter()
                    .filter(|(t, _)| !t.contains("azure_role") && !t.contains("azure_resource"))
                    .collect();
                problems.extend(whole(&keep(&m.entities), &want_r));
                if !v["sources"]["arm"]["notes"]
                    .to_string()
                    .contains("no subscription is visible")
                {
                    problems.push(format!(
                        "no note says why ARM is empty: {}",
                        v["sources"]["arm"]
                    ));
                }
            }
            Expect::Missing(names) => {
                if code == Some(0) {
                    problems.push(format!("exit 0 with: {said}"));
                }
                if v["complete"] != Value::Bool(false) {
                    problems.push(format!("complete is {}", v["complete"]));
                }
                if v["missing"].as_array().is_none_or(|a| a.is_empty()) {
                    problems.push("nothing said missing".into());
                }
                for n in *names {
                    if !said.contains(n) {
                        problems.push(format!("'{n}' not named: {said}"));
                    }
                }
            }
        }
        let case = format!("--faults {spec} --defender-api {api} --hunting-limits {limits}");
        eprintln!("{case:<80} exit {code:?} in {:.1} s", took.as_secs_f64());
        if !problems.is_empty() {
            failures.push(format!("{case}:\n  {}", problems.join("\n  ")));
        }
        rt.block_on(s.stop());
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
#[cfg(unix)]
fn an_allocation_that_fails_ends_with_a_message_not_an_abort() {
    // 60 MB of address space: enough to start, not to fetch. The runtime's
    // own handler aborts (SIGABRT, a core dump where they are on).
    let rt = runtime();
    let s = start(&rt, "");
    let data = tempfile::tempdir().expect("temp dir");
    let mut c = Command::new("sh");
    c.args([
        "-c",
        "ulimit -v 60000 && exec \"$0\" fetch --logon-users none",
    ])
    .arg(env!("CARGO_BIN_EXE_tenx"))
    .env("TENX_DATA_DIR", data.path())
    .env("TENX_CONFIG_DIR", data.path().join("config"))
    .env_remove("TENX_PROFILE")
    .envs(s.env());
    let out = c.output().expect("sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {stderr}", out.status);
    assert!(
        stderr.contains("tenx: out of memory: an allocation of"),
        "{stderr}"
    );
    rt.block_on(s.stop());
}
