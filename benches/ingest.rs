//! Ingest benchmark: the CPU a fetch spends per record once the bytes have
//! arrived, stage by stage, on the simulated tenant's own pages (the same
//! JSON the services send). No network: this is what `cargo bench --bench
//! fetch` cannot separate from the simulated tenant's share of the cores.
//!
//!     cargo bench --bench ingest
//!     TENX_BENCH_USERS=100000 cargo bench --bench ingest
//!
//! Stages: `parse` (page bytes scanned, records read in place), `ingest`
//! (records to entities and relationships), `graph` (into the
//! `TenantGraph`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenx::fetch::record::{RawPage, Record};
use tenx::ingest::{Batch, defender, directory, intune};
use tenx::model::{EntityKind, TenantGraph};
use tenx_sim::{FakeParams, FakeTenant, render};

/// The allocator of the `tenx` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAGE: usize = 1000;

struct Collection {
    name: &'static str,
    pages: Vec<bytes::Bytes>,
    records: usize,
    ingest: fn(&Record<'_>, &mut Batch),
}

fn pages(records: Vec<Value>) -> (Vec<bytes::Bytes>, usize) {
    let n = records.len();
    let pages = records
        .chunks(PAGE)
        .map(|c| {
            serde_json::to_vec(&json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#x",
                "value": c,
            }))
            .expect("serializable")
            .into()
        })
        .collect();
    (pages, n)
}

fn collections(t: &FakeTenant) -> Vec<Collection> {
    let mut out = Vec::new();
    let mut add = |name, records: Vec<Value>, ingest| {
        let (pages, records) = pages(records);
        out.push(Collection {
            name,
            pages,
            records,
            ingest,
        });
    };
    add(
        "users",
        (0..t.users.len()).map(|i| render::user(t, i)).collect(),
        |v, b| directory::user(v, "tenant", b),
    );
    add(
        "managed devices",
        (0..t.devices.len())
            .map(|i| render::managed_device(t, i))
            .collect(),
        |v, b| intune::managed_device(v, b),
    );
    let policy = t
        .configurations
        .first()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    add(
        "configuration statuses",
        (0..t.devices.len())
            .map(|i| render::configuration_status(t, i, &policy, "compliant"))
            .collect(),
        |v, b| {
            let _ = intune::device_status("policy", EntityKind::IntuneDeviceConfiguration, v, b);
        },
    );
    add(
        "machines",
        (0..t.machines.len())
            .map(|i| render::machine(t, i))
            .collect(),
        |v, b| defender::machine(v, "tenant", b),
    );
    add(
        "machine vulnerabilities",
        t.machines
            .iter()
            .enumerate()
            .flat_map(|(m, mach)| {
                mach.vulns
                    .iter()
                    .map(move |&c| render::machine_vulnerability(t, m, c as usize))
            })
            .collect(),
        |v, b| defender::machine_vulnerability(v, b),
    );
    out
}

fn main() {
    // `cargo test` runs benches with --bench absent: build only.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let users = std::env::var("TENX_BENCH_USERS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(20_000);
    let tenant = FakeTenant::generate(FakeParams {
        users,
        ..Default::default()
    });
    let cols = collections(&tenant);
    drop(tenant);
    println!("users {users}, pages of {PAGE} records; ns per record (MB/s of JSON)");
    println!(
        "  {:<24} {:>8} {:>9} {:>16} {:>10} {:>10} {:>10}",
        "collection", "records", "bytes/rec", "parse", "ingest", "graph", "total"
    );
    let mut graph = TenantGraph::new();
    let (mut tp, mut ti, mut tg, mut bytes_all, mut recs_all) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        0usize,
        0usize,
    );
    for c in &cols {
        let bytes: usize = c.pages.iter().map(|p| p.len()).sum();
        let (mut parse, mut ingest, mut apply) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for page in &c.pages {
            let t0 = Instant::now();
            let page = RawPage::scan(page.clone()).expect("page parses");
            let items = page.records();
            let t1 = Instant::now();
            let mut batch = Batch::default();
            for v in &items {
                (c.ingest)(v, &mut batch);
            }
            drop(items);
            let t2 = Instant::now();
            graph.apply(batch.entities, &batch.relationships);
            let t3 = Instant::now();
            parse += t1 - t0;
            ingest += t2 - t1;
            apply += t3 - t2;
        }
        let per = |d: Duration| d.as_nanos() as f64 / c.records.max(1) as f64;
        println!(
            "  {:<24} {:>8} {:>9} {:>7.0} ({:>4.0}) {:>10.0} {:>10.0} {:>10.0}",
            c.name,
            c.records,
            bytes / c.records.max(1),
            per(parse),
            bytes as f64 / parse.as_secs_f64().max(1e-9) / 1e6,
            per(ingest),
            per(apply),
            per(parse + ingest + apply)
        );
        tp += parse;
        ti += ingest;
        tg += apply;
        bytes_all += bytes;
        recs_all += c.records;
    }
    println!(
        "  {:<24} {:>8} {:>9} {:>6.2}s ({:>4.0}) {:>9.2}s {:>9.2}s {:>9.2}s",
        "all",
        recs_all,
        bytes_all / recs_all.max(1),
        tp.as_secs_f64(),
        bytes_all as f64 / tp.as_secs_f64().max(1e-9) / 1e6,
        ti.as_secs_f64(),
        tg.as_secs_f64(),
        (tp + ti + tg).as_secs_f64()
    );
}
