//! A missing source is not an empty source: a fetch that does not read a
//! source (not asked for, or refused) carries it over from the latest
//! snapshot that read it, says so with its age, and triage never counts a
//! device as fixed from findings that were not read.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use tenx::fake::{FakeParams, FakeTenant, Faults, Manifest, RunningTenant, ServerOptions, serve};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt")
}

/// The same tenant (seed 31) each time, with these faults.
fn start(rt: &tokio::runtime::Runtime, faults: &str) -> RunningTenant {
    let t = FakeTenant::generate(FakeParams {
        users: 200,
        seed: 31,
        ..Default::default()
    });
    let opts = ServerOptions {
        faults: Faults::parse(faults).expect("faults"),
        ..Default::default()
    };
    rt.block_on(serve(t, "127.0.0.1:0".parse().expect("addr"), opts))
        .expect("server")
}

fn tenx(s: &RunningTenant, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenx"))
        .args(args)
        .envs(s.env())
        .env("TENX_DATA_DIR", data)
        .env("TENX_CONFIG_DIR", data.join("config"))
        .env_remove("TENX_PROFILE")
        .output()
        .expect("tenx runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn counts(v: &Value) -> BTreeMap<String, usize> {
    serde_json::from_value(v["entities"].clone()).expect("counts")
}

#[test]
fn a_source_not_read_is_carried_over_with_its_age_and_triage_says_so() {
    let rt = runtime();
    let data = tempfile::tempdir().expect("temp dir");
    let data = data.path();
    let whole = start(&rt, "");
    let m = Manifest::of(&whole.tenant);
    let first = tenx(&whole, data, &["fetch", "--json"]);
    assert_eq!(first.status.code(), Some(0));
    let first_counts = counts(&json(&first));

    // Only two sources asked for: exit 0 (everything asked was read), and
    // the other two carried over whole from snapshot 1.
    let out = tenx(
        &whole,
        data,
        &["fetch", "--json", "--sources", "directory,arm"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(counts(&v), first_counts, "nothing vanished");
    for source in ["intune", "defender"] {
        let st = &v["sources"][source];
        assert_eq!(st["outcome"], "not-asked", "{st}");
        assert_eq!(st["carried"]["snapshot"], 1, "{st}");
    }
    assert!(
        v["missing"]
            .to_string()
            .contains("intune: not asked; carried over from snapshot 1, read"),
        "{}",
        v["missing"]
    );
    // Triage draws on the carried findings, says so, and counts nothing fixed.
    let out = tenx(&whole, data, &["triage", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "incomplete coverage is not exit 0"
    );
    let t = json(&out);
    assert_eq!(t["summary"]["coverage"]["intune"]["state"], "carried");
    assert_eq!(t["summary"]["fixed_since_previous"], Value::Null);
    assert!(
        t["summary"]["no_comparison"]
            .as_str()
            .is_some_and(|s| s.contains("Intune was not read by this fetch")),
        "{}",
        t["summary"]
    );
    assert_eq!(
        t["summary"]["noncompliant"].as_u64(),
        Some(m.noncompliant_devices.len() as u64),
        "the carried findings are the findings"
    );
    let table = tenx(&whole, data, &["triage"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("INCOMPLETE: Intune not read by this fetch: carried over from snapshot 1"),
        "{text}"
    );
    let csv = tenx(&whole, data, &["triage", "--format", "csv"]);
    assert_eq!(csv.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&csv.stderr).contains("incomplete: Intune not read"));

    // Intune refused (403): the source fails, is carried over from the
    // snapshot that read it (snapshot 1, not the carried copy in 2), and
    // triage does not say 42 were fixed.
    let refused = start(&rt, "forbid=intune");
    // (Logon users as the first fetch had them: none read now.)
    let out = tenx(
        &refused,
        data,
        &["fetch", "--json", "--logon-users", "none"],
    );
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["sources"]["intune"]["outcome"], "failed");
    assert_eq!(v["sources"]["intune"]["carried"]["snapshot"], 1);
    assert_eq!(counts(&v), first_counts);
    let t = json(&tenx(&refused, data, &["triage", "--format", "json"]));
    assert_eq!(
        t["summary"]["noncompliant"].as_u64(),
        Some(m.noncompliant_devices.len() as u64)
    );
    assert_eq!(t["summary"]["fixed_since_previous"], Value::Null);

    // Without carrying over, the snapshot says what it lacks; triage
    // says Intune is missing, and still counts nothing as fixed.
    let out = tenx(&refused, data, &["fetch", "--json", "--no-carry-over"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert!(v["sources"]["intune"]["carried"].is_null());
    assert!(!counts(&v).contains_key("intune_noncompliance_finding"));
    let out = tenx(&refused, data, &["triage"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 of 0 devices noncompliant"), "{text}");
    assert!(
        text.contains("INCOMPLETE: Intune not read, and no earlier snapshot has it"),
        "{text}"
    );
    assert!(!text.contains("were fixed"), "{text}");
    let md = String::from_utf8_lossy(&tenx(&refused, data, &["triage", "--format", "md"]).stdout)
        .to_string();
    assert!(md.contains("**Incomplete:** Intune not read"), "{md}");

    // A full fetch again: complete, and compared with a snapshot whose
    // findings were... not read (the one before): still not compared.
    let out = tenx(&whole, data, &["fetch", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let t = json(&tenx(&whole, data, &["triage", "--format", "json"]));
    assert_eq!(t["summary"]["coverage"]["intune"]["state"], "read");
    assert!(
        t["summary"]["no_comparison"]
            .as_str()
            .is_some_and(|s| s.contains("previous snapshot did not read Intune")),
        "{}",
        t["summary"]
    );
    // And once more: now compared, and nothing changed.
    tenx(&whole, data, &["fetch"]);
    let out = tenx(&whole, data, &["triage", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let t = json(&out);
    assert_eq!(t["summary"]["fixed_since_previous"], 0);
    assert_eq!(t["summary"]["new_since_previous"], 0);

    // Search and export say what the snapshot they read lacks.
    tenx(&refused, data, &["fetch", "--no-carry-over"]);
    let out = tenx(&refused, data, &["search", "laptop"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("note: the snapshot is incomplete: intune: failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tenx(&refused, data, &["search", "laptop", "--json"]);
    assert!(
        json(&out)["incomplete"]
            .to_string()
            .contains("intune: failed")
    );
    let file = data.join("x.json");
    let out = tenx(
        &refused,
        data,
        &["export", "-o", file.to_str().expect("path")],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("note: the snapshot is incomplete: intune")
    );
    for s in [whole, refused] {
        rt.block_on(s.stop());
    }
}
