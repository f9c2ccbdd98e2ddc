//! A missing source is not an empty source: a fetch that does not read a
//! source (not asked for, or refused) carries it over from the latest
//! snapshot that read it, says so with its age, and triage never counts a
//! device as fixed from findings that were not read.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use common::bin::{against, json, run, store_in, tenx};
use common::{runtime, sim};
use serde_json::Value;
use tenx_sim::{FakeTenant, Manifest, RunningTenant};

/// The same tenant (seed 31) each time, with these faults.
fn start(rt: &tokio::runtime::Runtime, faults: &str) -> RunningTenant {
    rt.block_on(sim::start(200, 31, sim::faults(faults)))
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

/// `tenx` with the old Defender API chosen (its findings are a path of
/// their own, so they alone can fail).
fn tenx_mde(s: &RunningTenant, data: &Path, args: &[&str]) -> Output {
    run(against(s, data)
        .args(args)
        .env("TENX_DEFENDER_API", "mde")
        .env("TENX_TODAY", "2026-12-01"))
}

#[test]
fn triage_never_shows_a_cve_count_or_risk_it_did_not_read() {
    let rt = runtime();
    let data = tempfile::tempdir().expect("temp dir");
    let data = data.path();
    // A whole fetch: every noncompliant device Defender knows has counts.
    let whole = start(&rt, "");
    assert_eq!(tenx_mde(&whole, data, &["fetch"]).status.code(), Some(0));
    let out = tenx_mde(&whole, data, &["triage", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let t = json(&out);
    let devices = t["devices"].as_array().expect("devices").clone();
    let with_machine: Vec<&Value> = devices
        .iter()
        .filter(|d| !d["risk_score"].is_null())
        .collect();
    assert!(!with_machine.is_empty());
    assert!(with_machine.iter().all(|d| d["cves"].is_array()), "{t}");

    // The machines' findings fail: no device may show 0 CVEs.
    let broken = start(
        &rt,
        "malformed-at=/defender/api/vulnerabilities/machinesVulnerabilities",
    );
    let out = tenx_mde(&broken, data, &["fetch", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["sources"]["defender"]["outcome"], "partial");
    let out = tenx_mde(&broken, data, &["triage", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "a Defender gap is not exit 0");
    let t = json(&out);
    assert_eq!(t["summary"]["coverage"]["defender"]["state"], "partial");
    for d in t["devices"].as_array().expect("devices") {
        assert!(d["cves"].is_null(), "counts that were not read: {d}");
    }
    let csv = tenx_mde(&broken, data, &["triage", "--format", "csv"]);
    assert_eq!(csv.status.code(), Some(2));
    let text = String::from_utf8_lossy(&csv.stdout).to_string();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let critical = header
        .iter()
        .position(|h| *h == "criticalCves")
        .expect("criticalCves");
    let risk = header.iter().position(|h| *h == "riskScore").expect("risk");
    let mut rows = 0;
    for l in lines {
        let cells: Vec<&str> = l.split(',').collect();
        if cells.len() != header.len() {
            continue; // a cell with a comma: not this test's business
        }
        rows += 1;
        assert_eq!(cells[critical..critical + 4], ["", "", "", ""], "{l}");
        let _ = cells[risk];
    }
    assert!(rows > 0);
    let err = String::from_utf8_lossy(&csv.stderr);
    assert!(
        err.contains("incomplete: Defender read in part (machine vulnerabilities not read completely): CVE counts are not known"),
        "{err}"
    );
    let table = String::from_utf8_lossy(&tenx_mde(&broken, data, &["triage"]).stdout).to_string();
    assert!(table.contains("CVEs not read"), "{table}");
    assert!(
        table.contains("INCOMPLETE: Defender read in part"),
        "{table}"
    );

    // Defender refused and not carried over: every Defender cell says
    // "not read", none is blank as for a device Defender does not know.
    let refused = start(&rt, "forbid=defender");
    let out = tenx_mde(&refused, data, &["fetch", "--no-carry-over"]);
    assert_eq!(out.status.code(), Some(2));
    let out = tenx_mde(&refused, data, &["triage"]);
    assert_eq!(out.status.code(), Some(2));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        table.contains("INCOMPLETE: Defender not read, and no earlier snapshot has it: no device's risk or CVEs are known"),
        "{table}"
    );
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("DEVICE"))
        .skip(1)
        .collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|l| l.contains("not read")), "{table}");

    // Defender not asked for at all: carried over from the snapshot that
    // read it, and triage says its columns are as they were then.
    let out = tenx_mde(&whole, data, &["fetch", "--sources", "directory,intune"]);
    assert_eq!(out.status.code(), Some(0));
    let out = tenx_mde(&whole, data, &["triage"]);
    assert_eq!(out.status.code(), Some(2));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        table.contains("INCOMPLETE: Defender not read by this fetch: carried over from snapshot 1"),
        "{table}"
    );
}

#[test]
fn a_carried_source_brings_back_only_the_relationships_it_made() {
    // A device changed hands between two fetches, and the directory could
    // not be read the second time: the directory is carried over, but the
    // device's owner is what Intune says now, not what the old snapshot
    // said beside it.
    let rt = runtime();
    let data = tempfile::tempdir().expect("temp dir");
    let data = data.path();
    let t1 = sim::tenant(200, 31);
    let d = t1
        .devices
        .iter()
        .position(|d| d.user.is_some())
        .expect("an owned device");
    let before = t1.devices[d].user.expect("owner");
    let after = (before + 1) % t1.users.len() as u32;
    let mut t2 = t1.clone();
    t2.devices[d].user = Some(after);
    let device = t1.devices[d].id.clone();
    let (old_owner, new_owner) = (
        t1.users[before as usize].id.clone(),
        t1.users[after as usize].id.clone(),
    );
    let serve_with = |t: FakeTenant, faults: &str| rt.block_on(sim::serve(t, sim::faults(faults)));
    let first = serve_with(t1, "");
    assert_eq!(tenx(&first, data, &["fetch"]).status.code(), Some(0));
    let second = serve_with(t2, "forbid=directory");
    let out = tenx(&second, data, &["fetch", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["sources"]["directory"]["carried"]["snapshot"], 1, "{v}");

    let db = store_in(data);
    let store = tenx::store::Store::open_read_only(&db).expect("store");
    let (_, g) = store
        .load(store.latest_id().expect("id").expect("a snapshot"))
        .expect("load");
    let id = g.id_of(&device).expect("the device");
    let owners: Vec<String> = g
        .incoming(id)
        .iter()
        .filter(|x| x.verb == tenx::model::Verb::Owns)
        .map(|x| g.entity(x.other).key.to_string())
        .collect();
    assert_eq!(owners, vec![new_owner], "not also {old_owner}");
    // The directory's own relationships came with it: the owner is in
    // the tenant and in its groups as before.
    let user = g.id_of(&old_owner).expect("the old owner is still a user");
    assert!(
        g.incoming(user)
            .iter()
            .any(|x| x.verb == tenx::model::Verb::Has),
        "carried with the directory"
    );
}

#[test]
fn a_source_that_failed_part_way_keeps_what_it_read_and_names_what_it_did_not() {
    // Every ARM listing loops back on its last page: the subscriptions
    // were read before the loop showed, nothing after them could be. The
    // source is partial — what it read is kept as read, not replaced by an
    // older snapshot's copy — and each collection it could not start is
    // named, not an empty list.
    let rt = runtime();
    let data = tempfile::tempdir().expect("temp dir");
    let data = data.path();
    let whole = start(&rt, "");
    let m = Manifest::of(&whole.tenant);
    assert_eq!(tenx(&whole, data, &["fetch"]).status.code(), Some(0));
    let looping = start(&rt, "loop-next=/arm/subscriptions");
    let out = tenx(&looping, data, &["fetch", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    let arm = &v["sources"]["arm"];
    assert_eq!(arm["outcome"], "partial", "{arm}");
    assert!(arm["carried"].is_null(), "{arm}");
    assert_eq!(
        counts(&v).get("azure_subscription"),
        m.entities.get("azure_subscription"),
        "the subscriptions read are kept"
    );
    assert!(!counts(&v).contains_key("azure_resource_group"), "{v}");
    let errors = arm["errors"].to_string();
    for c in [
        "resource groups",
        "role definitions",
        "role assignments",
        "resources",
    ] {
        assert!(
            errors.contains(&format!(
                "{c}: not read, because the subscriptions could not be listed"
            )),
            "{c}: {errors}"
        );
        assert!(arm["incomplete"].to_string().contains(c), "{arm}");
    }
}

#[test]
fn group_members_are_not_read_when_the_groups_could_not_be_listed() {
    let rt = runtime();
    let data = tempfile::tempdir().expect("temp dir");
    let data = data.path();
    let s = start(&rt, "malformed-at=/graph/v1.0/groups");
    let out = tenx(&s, data, &["fetch", "--json", "--no-carry-over"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    let dir = &v["sources"]["directory"];
    assert_eq!(dir["outcome"], "partial");
    assert!(
        dir["incomplete"].to_string().contains("group members"),
        "members of groups never listed were not read: {dir}"
    );
    assert!(
        dir["errors"]
            .to_string()
            .contains("group members: not read, because the groups could not be listed"),
        "{dir}"
    );
}

#[test]
fn a_fetch_whose_carry_over_fails_still_saves_what_it_read() {
    // The older snapshot the directory would be carried from is damaged
    // (an entity type this tenx does not know): the fetch warns, saves
    // what it read, and says the directory is missing.
    let rt = runtime();
    let data = tempfile::tempdir().expect("temp dir");
    let data = data.path();
    let whole = start(&rt, "");
    assert_eq!(tenx(&whole, data, &["fetch"]).status.code(), Some(0));
    let db = store_in(data);
    let c = rusqlite::Connection::open(&db).expect("open");
    c.execute(
        "UPDATE entities SET type = 'azure_user_from_the_future' WHERE type = 'azure_user'",
        [],
    )
    .expect("damage");
    drop(c);
    let refused = start(&rt, "forbid=directory");
    let out = tenx(&refused, data, &["fetch", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing carried over from earlier snapshots")
            && err.contains("azure_user_from_the_future"),
        "{err}"
    );
    let v = json(&out);
    assert_eq!(v["snapshot"]["id"], 2, "saved: {v}");
    assert!(v["sources"]["directory"]["carried"].is_null());
    assert!(
        v["sources"]["directory"]["notes"]
            .to_string()
            .contains("not carried over from an earlier snapshot"),
        "{v}"
    );
    assert!(counts(&v).contains_key("intune_managed_application"));
}

#[test]
fn relationships_to_entities_not_read_are_counted_not_dropped_in_silence() {
    let rt = runtime();
    let data = tempfile::tempdir().expect("temp dir");
    let data = data.path();
    let whole = start(&rt, "");
    let v = json(&tenx(&whole, data, &["fetch", "--json"]));
    // A whole fetch: only the role assignments made at a management group
    // (a scope tenx does not read) point outside the graph.
    let whole_count = v["unresolvedRelationships"]["count"].clone();
    let examples = v["unresolvedRelationships"]["examples"]
        .as_array()
        .expect("examples")
        .clone();
    assert!(
        examples
            .iter()
            .all(|e| e.as_str().is_some_and(|e| e.contains("managementgroups"))),
        "{examples:?}"
    );
    // Without the directory, every device's owner is a user no source
    // gave: counted, with examples, in JSON and in the report.
    let refused = start(&rt, "forbid=directory");
    let v = json(&tenx(
        &refused,
        data,
        &["fetch", "--json", "--no-carry-over"],
    ));
    let u = &v["unresolvedRelationships"];
    assert!(u["count"].as_u64().is_some_and(|n| n > 0), "{u}");
    assert!(u["examples"].to_string().contains("|OWNS|"), "{u}");
    let out = tenx(&refused, data, &["fetch", "--no-carry-over"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("relationships name an entity no source gave"),
        "{text}"
    );
    // Carried over, the directory gives them their ends again.
    let v = json(&tenx(&refused, data, &["fetch", "--json"]));
    assert_eq!(
        v["unresolvedRelationships"]["count"], whole_count,
        "{}",
        v["unresolvedRelationships"]
    );
}
