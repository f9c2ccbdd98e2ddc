//! Triage on fixed-seed simulated tenants: the rows are exactly the devices
//! with open findings, groups add up, statuses survive fetches and restarts,
//! a resolved device that still fails comes back flagged, and the reports
//! parse.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use common::bin::tenx;
use common::{runtime, sim, tempdir};
use serde_json::Value;
use tenx_sim::{Manifest, RunningTenant, ServerOptions};

fn report(s: &RunningTenant, data: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["triage", "--format", "json"];
    args.extend_from_slice(extra);
    let out = tenx(s, data, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json report")
}

fn start(rt: &tokio::runtime::Runtime, users: usize, seed: u64) -> RunningTenant {
    rt.block_on(sim::start(users, seed, ServerOptions::default()))
}

#[test]
fn rows_are_the_devices_with_open_findings_and_groups_add_up() {
    let rt = runtime();
    for (users, seed) in [(150, 51), (400, 52)] {
        let s = start(&rt, users, seed);
        let data = tempdir(&format!("rows-{seed}"));
        let data = data.path();
        assert!(tenx(&s, data, &["fetch"]).status.success());
        let m = Manifest::of(&s.tenant);
        let v = report(&s, data, &[]);
        let keys: BTreeSet<String> = v["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d["key"].as_str().expect("key").to_string())
            .collect();
        let want: BTreeSet<String> = m.noncompliant_devices.iter().cloned().collect();
        assert_eq!(keys, want);
        assert_eq!(v["summary"]["noncompliant"], want.len());
        assert_eq!(v["summary"]["devices"], s.tenant.devices.len());
        // Grace-period, error and conflict devices are there and marked.
        let states: BTreeSet<String> = v["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d["state"].as_str().unwrap_or("").to_string())
            .collect();
        assert!(states.contains("noncompliant"));
        let grace = v["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .filter(|d| d["grace_period"] == true)
            .count();
        assert_eq!(
            grace,
            s.tenant
                .devices
                .iter()
                .filter(
                    |d| d.compliance == "inGracePeriod" && m.noncompliant_devices.contains(&d.id)
                )
                .count()
        );
        // Grouped by platform or owner, every device is in one group; by
        // policy, every failing (device, policy) pair is.
        for by in ["platform", "owner"] {
            let g = report(&s, data, &["--group-by", by]);
            let sum: u64 = g["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .map(|x| x["devices"].as_u64().unwrap_or(0))
                .sum();
            assert_eq!(sum as usize, want.len(), "{by}");
        }
        let g = report(&s, data, &["--group-by", "policy"]);
        let sum: u64 = g["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|x| x["devices"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(sum as usize, m.entities["intune_noncompliance_finding"]);
        let per_policy: u64 = g["summary"]["by_policy"]
            .as_array()
            .expect("by policy")
            .iter()
            .map(|p| p[1].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(per_policy, sum);
    }
}

#[test]
fn statuses_survive_fetches_and_restarts_and_resolved_devices_that_still_fail_reopen() {
    let rt = runtime();
    let s = start(&rt, 150, 53);
    let data = tempdir("status");
    let data = data.path();
    assert!(tenx(&s, data, &["fetch"]).status.success());
    let first = &Manifest::of(&s.tenant).noncompliant_devices;
    let (a, b) = (first[0].clone(), first[1].clone());
    let out = tenx(
        &s,
        data,
        &[
            "triage",
            "set",
            &a,
            "--status",
            "investigating",
            "--note",
            "owner on leave; \"call back\", Monday",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tenx(&s, data, &["triage", "set", &b, "--status", "resolved"])
            .status
            .success()
    );
    let out = tenx(&s, data, &["triage", "set", &a, "--status", "bogus"]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("invalid value 'bogus' for '--status")
            && String::from_utf8_lossy(&out.stderr).contains("waiting-for-check-in")
    );
    // Each command is a fresh process (a restart); a new fetch is a new snapshot.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(tenx(&s, data, &["fetch"]).status.success());
    let v = report(&s, data, &[]);
    let row = |k: &str| {
        v["devices"]
            .as_array()
            .and_then(|d| d.iter().find(|r| r["key"] == k))
            .cloned()
            .expect("row")
    };
    assert_eq!(row(&a)["status"], "investigating");
    assert_eq!(row(&a)["note"], "owner on leave; \"call back\", Monday");
    assert_eq!(row(&a)["reopened"], false);
    assert_eq!(row(&b)["status"], "resolved");
    assert_eq!(
        row(&b)["reopened"],
        true,
        "resolved, yet still noncompliant in a newer snapshot"
    );
    assert_eq!(v["summary"]["new_since_previous"], 0);
    assert_eq!(v["summary"]["fixed_since_previous"], 0);

    // CSV parses with a standard reader, quoting and all.
    let out = tenx(
        &s,
        data,
        &["triage", "--format", "csv", "--group-by", "setting"],
    );
    let mut rd = csv::Reader::from_reader(out.stdout.as_slice());
    let headers = rd.headers().expect("headers").clone();
    let note_col = headers
        .iter()
        .position(|h| h == "note")
        .expect("note column");
    let notes: Vec<String> = rd
        .records()
        .map(|r| r.expect("a row")[note_col].to_string())
        .collect();
    assert!(notes.contains(&"owner on leave; \"call back\", Monday".to_string()));
    // Markdown is a readable report.
    let path = data.join("report.md");
    let out = tenx(
        &s,
        data,
        &[
            "triage",
            "--format",
            "md",
            "--group-by",
            "policy",
            "-o",
            path.to_str().expect("path"),
        ],
    );
    assert!(out.status.success());
    let md = std::fs::read_to_string(&path).expect("report");
    assert!(
        md.starts_with("# Noncompliant devices")
            && md.contains("## Failing policies")
            && md.contains("| device | platform |")
    );
}
