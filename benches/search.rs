//! Search benchmark: 1,000,000 entities with realistic names (people with
//! their UPNs, devices with serials and owners, Azure resources with their
//! resource groups, CVEs), queries typed one keystroke at a time the way the
//! explorer searches (each keystroke narrows the previous matches; deleting
//! starts over). Prints keystroke-to-results p50/p99 and the index's memory
//! per entity.
//!
//!     cargo bench --bench search
//!     TENX_BENCH_ENTITIES=200000 cargo bench --bench search

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use serde_json::json;
use tenx::model::{Entity, EntityKind, TenantGraph};
use tenx::search::{Query, Results, SearchIndex, search};

const FIRST: &[&str] = &[
    "Ava", "Liam", "Åsa", "Zoë", "José", "Øyvind", "Siobhán", "Noah", "Emma", "Mateo", "Chloé",
    "Jürgen", "Ngozi", "Priya", "Arjun", "Mei", "Hiroshi", "Yuki", "Olga", "Dmitri", "Fatima",
    "Omar", "Lucía", "Björn",
];
const LAST: &[&str] = &[
    "Dubois",
    "Smith",
    "Lindqvist",
    "García",
    "Müller",
    "O'Brien",
    "Nakamura",
    "Okafor",
    "Kowalski",
    "Novák",
    "Haugen",
    "Rossi",
    "Patel",
    "Singh",
    "Wang",
    "Kim",
    "Ivanova",
    "Fernández",
    "Johansson",
    "Mensah",
];

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'Å' | 'Ø' => 'o',
            'å' => 'a',
            'ä' | 'á' => 'a',
            'é' | 'è' => 'e',
            'ë' => 'e',
            'í' => 'i',
            'ö' | 'ø' | 'ó' => 'o',
            'ü' | 'ú' => 'u',
            '\'' => 'x',
            c => c,
        })
        .collect::<String>()
        .to_lowercase()
}

fn graph(n: usize) -> TenantGraph {
    let mut g = TenantGraph::new();
    let mut x: u64 = 0x9E37_79B9;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..n {
        let r = rnd();
        let first = FIRST[(r % FIRST.len() as u64) as usize];
        let last = LAST[((r >> 8) % LAST.len() as u64) as usize];
        let upn = format!(
            "{}.{}{}@contoso.onmicrosoft.com",
            ascii(first),
            ascii(last),
            i % 97
        );
        let (kind, name, props) = match i % 10 {
            0..=3 => (
                EntityKind::AzureUser,
                format!("{first} {last}"),
                json!({"userPrincipalName": upn}),
            ),
            4..=6 => (
                EntityKind::Laptop,
                format!("LAPTOP-{:06X}", r & 0xFF_FFFF),
                json!({"serialNumber": format!("{:010X}", r >> 20), "userPrincipalName": upn, "operatingSystem": "Windows"}),
            ),
            7..=8 => (
                EntityKind::AzureVm,
                format!(
                    "vm-{}-{:04}",
                    ["web", "app", "sql", "build"][(r % 4) as usize],
                    i % 10_000
                ),
                json!({"type": "Microsoft.Compute/virtualMachines"}),
            ),
            _ => (
                EntityKind::Cve,
                format!("CVE-20{}-{}", 20 + r % 6, 1000 + (r >> 4) % 50_000),
                json!({"severity": "High"}),
            ),
        };
        let key = if kind == EntityKind::AzureVm {
            format!(
                "/subscriptions/s/resourcegroups/rg-{}-{:02}/providers/microsoft.compute/virtualmachines/{name}",
                ["web", "data"][(r % 2) as usize],
                r % 50
            )
        } else {
            format!("k{i}")
        };
        let p = props.as_object().cloned().unwrap_or_default();
        g.upsert(Entity::new(key, kind, format!("id{i}"), name, &p));
    }
    g
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = std::env::var("TENX_BENCH_ENTITIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let t = Instant::now();
    let g = graph(n);
    let built = Instant::now();
    let index = SearchIndex::build(&g);
    println!(
        "{n} entities: graph {:.1} s, index {:.1} s, index memory {:.0} bytes per entity",
        (built - t).as_secs_f64(),
        built.elapsed().as_secs_f64(),
        index.heap_bytes() as f64 / n as f64
    );
    let queries = [
        "ava dub",
        "lindqvist",
        "laptop-4a",
        "cve-2024-3",
        "vm-web-00",
        "asa.lind",
        "zoë",
        "xyzq",
    ];
    let cancel = AtomicU64::new(0);
    let mut times: Vec<Duration> = Vec::new();
    let mut first_keys: Vec<Duration> = Vec::new();
    for q in queries {
        let mut prev: Option<Results> = None;
        let mut typed = String::new();
        for c in q.chars() {
            typed.push(c);
            let query = Query::parse(&typed, None);
            let t = Instant::now();
            let r = search(&index, &query, 100, prev.as_ref(), &cancel, 0).expect("not cancelled");
            let d = t.elapsed();
            times.push(d);
            if typed.chars().count() == 1 {
                first_keys.push(d);
            }
            prev = Some(r);
        }
        println!("  {q:<12} → {} matches", prev.map(|r| r.total).unwrap_or(0));
    }
    let pct = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
    };
    println!(
        "  keystroke to results: p50 {:.1} ms · p99 {:.1} ms · max {:.1} ms ({} keystrokes)",
        pct(&mut times, 0.5),
        pct(&mut times, 0.99),
        pct(&mut times, 1.0),
        times.len()
    );
    println!(
        "  first keystroke (a full pass): p50 {:.1} ms · max {:.1} ms",
        pct(&mut first_keys, 0.5),
        pct(&mut first_keys, 1.0)
    );
}
