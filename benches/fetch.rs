//! Fetch benchmark: the real `tenx fetch` against `tenx fake-tenant` (two
//! processes on loopback) at 20 ms latency per request. Prints wall time,
//! requests, peak memory of the fetching process, the lower bound that the
//! request chains allow, and what a sequential client would need.
//!
//!     cargo bench --bench fetch                 # 20,000 and 100,000 users
//!     TENX_BENCH_USERS=5000 cargo bench --bench fetch
//!
//! The simulated tenant keeps its answers (`--cache-responses`) and a first,
//! unmeasured fetch fills that cache: the measured fetch shares the two
//! cores with a server that only sends bytes, as it would with Microsoft's.
//! Its CPU in the measured window is printed too, and the CPU floor: the
//! wall time the two processes' CPU alone needs on this machine's cores.
//! The fetch is measured until its graph is complete.
//!
//! The measured fetch runs three times (`TENX_BENCH_RUNS`), each into an
//! empty store; the median run is reported, with the range of the three.
//!
//! The lower bound is (1 token + the longest chain of requests that must
//! follow each other) × latency. The sequential client is one that pages
//! every collection and calls per group, per policy, per device, and runs
//! advanced hunting's queries, one request after another: its request
//! count × latency.
//!
//! Defender is read through advanced hunting (the default): every
//! machine's logon users in one fetch. The Defender part alone is then
//! measured through each API (`--sources defender --defender-api graph|mde`):
//! its time and its calls. The old API reads 100 machines' logon users a
//! fetch; the simulated tenant runs without that endpoint's limit here
//! (`--rate-limits none`), since the measured fetches repeat the calls
//! within the minute.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use tenx_sim::{FakeParams, FakeTenant};

const LATENCY_MS: u64 = 20;

fn pages(n: usize, per_page: usize) -> usize {
    n.div_ceil(per_page).max(1)
}

/// Requests that must follow one another, per chain; the longest is the
/// critical path.
fn chains(t: &FakeTenant) -> Vec<(&'static str, usize)> {
    let max_members = t.groups.iter().map(|g| g.members.len()).max().unwrap_or(0);
    let mut per_policy = vec![0usize; t.compliance_policies.len()];
    let mut per_config = vec![0usize; t.configurations.len()];
    for d in &t.devices {
        for s in &d.policy_states {
            per_policy[s.policy as usize] += 1;
        }
        for (c, _) in &d.config_states {
            per_config[*c as usize] += 1;
        }
    }
    let max_app = t
        .detected_apps
        .iter()
        .map(|a| a.devices.len())
        .max()
        .unwrap_or(0);
    let max_mobile = t
        .mobile_apps
        .iter()
        .map(|a| a.device_statuses.len())
        .max()
        .unwrap_or(0);
    let vulns: usize = t.machine_vulnerability_rows().len();
    let max_rgs = t
        .subscriptions
        .iter()
        .enumerate()
        .map(|(s, _)| {
            t.resource_groups
                .iter()
                .filter(|g| g.sub as usize == s)
                .count()
        })
        .max()
        .unwrap_or(0);
    vec![
        ("users", pages(t.users.len(), 999)),
        (
            "groups → members",
            pages(t.groups.len(), 999) + pages(max_members, 999),
        ),
        ("service principals", pages(t.service_principals.len(), 999)),
        ("managed devices", pages(t.devices.len(), 1000)),
        (
            "policies → statuses → device states",
            1 + pages(per_policy.iter().copied().max().unwrap_or(0), 1000) + 1,
        ),
        (
            "configurations → statuses",
            1 + pages(per_config.iter().copied().max().unwrap_or(0), 1000),
        ),
        (
            "detected apps → devices",
            pages(t.detected_apps.len(), 1000) + pages(max_app, 1000),
        ),
        ("managed apps → install states", 1 + pages(max_mobile, 1000)),
        // Advanced hunting (the default Defender API): each table counted,
        // then read a range of at most half the row cap at a time; the
        // CVEs after the findings, a thousand a query.
        (
            "hunting: machines",
            1 + pages(t.machines.len(), HUNTING_TARGET),
        ),
        (
            "hunting: findings → CVEs",
            1 + pages(vulns, HUNTING_TARGET) + pages(exposed_cves(t), 1000),
        ),
        (
            "hunting: logon users",
            1 + pages(logon_pairs(t), HUNTING_TARGET),
        ),
        ("subscriptions → resource groups", 1 + pages(max_rgs, 1000)),
        ("resources (Resource Graph)", pages(t.resources.len(), 1000)),
    ]
}

/// Rows a partition of an advanced hunting table holds (half the cap).
const HUNTING_TARGET: usize = 50_000;

/// CVEs found on at least one machine.
fn exposed_cves(t: &FakeTenant) -> usize {
    let mut seen = std::collections::HashSet::new();
    for m in &t.machines {
        seen.extend(m.vulns.iter().copied());
    }
    seen.len()
}

/// (machine, account) pairs with a logon.
fn logon_pairs(t: &FakeTenant) -> usize {
    t.machines.iter().map(|m| m.logons.len()).sum()
}

/// Requests of a client that sends one request at a time and no `$batch`.
fn sequential_requests(t: &FakeTenant) -> usize {
    let mut n = 3; // tokens
    n += pages(t.users.len(), 999)
        + pages(t.groups.len(), 999)
        + pages(t.service_principals.len(), 999)
        + 1;
    n += t
        .groups
        .iter()
        .map(|g| pages(g.members.len(), 999))
        .sum::<usize>();
    n += pages(t.devices.len(), 1000);
    let mut per_policy = vec![0usize; t.compliance_policies.len()];
    let mut per_config = vec![0usize; t.configurations.len()];
    let mut failing = 0;
    for d in &t.devices {
        for s in &d.policy_states {
            per_policy[s.policy as usize] += 1;
        }
        for (c, _) in &d.config_states {
            per_config[*c as usize] += 1;
        }
        failing += usize::from(d.policy_states.iter().any(|s| s.status.is_finding()));
    }
    n += 1 + per_policy.iter().map(|&c| pages(c, 1000)).sum::<usize>() + failing;
    n += 1 + per_config.iter().map(|&c| pages(c, 1000)).sum::<usize>();
    n += pages(t.detected_apps.len(), 1000)
        + t.detected_apps
            .iter()
            .map(|a| pages(a.devices.len(), 1000))
            .sum::<usize>();
    n += 1 + t
        .mobile_apps
        .iter()
        .map(|a| pages(a.device_statuses.len(), 1000))
        .sum::<usize>();
    // Advanced hunting: three counts, the partitions, the CVEs.
    let vulns: usize = t.machine_vulnerability_rows().len();
    n += 3
        + pages(t.machines.len(), HUNTING_TARGET)
        + pages(vulns, HUNTING_TARGET)
        + pages(logon_pairs(t), HUNTING_TARGET)
        + pages(exposed_cves(t), 1000);
    n += 1 + t.subscriptions.len() * 3 + pages(t.resources.len(), 1000);
    n
}

fn run(users: usize) {
    let tenant = FakeTenant::generate(FakeParams {
        users,
        ..Default::default()
    });
    let chains = chains(&tenant);
    let (crit_name, crit) = chains
        .iter()
        .max_by_key(|(_, n)| *n)
        .copied()
        .unwrap_or(("none", 0));
    let lower_ms = (1 + crit) as u64 * LATENCY_MS;
    let sequential = sequential_requests(&tenant);
    drop(tenant);

    let exe = env!("CARGO_BIN_EXE_tenx");
    let mut server = Command::new(exe)
        .args([
            "fake-tenant",
            "--users",
            &users.to_string(),
            "--latency-ms",
            &LATENCY_MS.to_string(),
            "--cache-responses",
            "--rate-limits",
            "none",
            // Advanced hunting allows 45 calls a minute per tenant; one
            // fetch makes 10–20, but the benchmark's five fetches within the
            // minute would wait out the quota, which is not the fetch's
            // time.
            "--hunting-limits",
            "calls=100000/60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fake tenant starts");
    let stdout = server.stdout.take().expect("stdout");
    let env: Vec<(String, String)> = BufReader::new(stdout)
        .lines()
        .take(7)
        .map(|l| l.expect("line"))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let data = std::env::temp_dir().join(format!("tenx-bench-{}", std::process::id()));
    let warm_data = data.with_extension("warm");
    let fetch = |dir: &std::path::Path| {
        Command::new(exe)
            .args(["fetch", "--json", "--keep", "1"])
            .envs(env.iter().cloned())
            .env("TENX_DATA_DIR", dir)
            .output()
            .expect("fetch runs")
    };
    // A first fetch fills the simulated tenant's response cache: the
    // measured one then shares the cores with answering requests only, as
    // a client of the real services would. It saves elsewhere, so the
    // measured save starts from an empty database as a first fetch does.
    let warm = fetch(&warm_data);
    let _ = std::fs::remove_dir_all(&warm_data);
    assert!(
        warm.status.success(),
        "warm-up fetch failed: {}",
        String::from_utf8_lossy(&warm.stderr)
    );
    // The measured fetch runs several times, each into an empty store, and
    // the median is reported with the range: one run on these shared
    // machines can land anywhere within a third either way.
    let runs: usize = std::env::var("TENX_BENCH_RUNS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let mut measured = Vec::new();
    for run in 0..runs {
        let dir = data.with_extension(format!("run{run}"));
        let server_cpu_before = proc_cpu_ms(server.id());
        let start = Instant::now();
        let out = fetch(&dir);
        let wall = start.elapsed();
        let server_cpu = proc_cpu_ms(server.id())
            .zip(server_cpu_before)
            .map(|(a, b)| a - b);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("fetch failed: {}", String::from_utf8_lossy(&out.stderr)));
        measured.push((
            v["elapsedMs"].as_u64().unwrap_or(0),
            wall,
            v,
            server_cpu,
            dir,
        ));
    }
    measured.sort_by_key(|m| m.0);
    let range = (measured[0].0, measured[runs - 1].0);
    let (_, wall, v, server_cpu, data) = measured.swap_remove(runs / 2);
    // The steady state: the same store again, logon users carried over.
    let again = fetch(&data);
    // Defender alone, through each API: its time and calls.
    let defender_by_api: Vec<(&str, serde_json::Value)> = ["graph", "mde"]
        .into_iter()
        .map(|api| {
            let dir = data.with_extension(format!("defender-{api}"));
            let out = Command::new(exe)
                .args([
                    "fetch",
                    "--json",
                    "--sources",
                    "defender",
                    "--defender-api",
                    api,
                ])
                .envs(env.iter().cloned())
                // The old API is measured on a day it still works.
                .env("TENX_TODAY", "2026-12-01")
                .env("TENX_DATA_DIR", &dir)
                .output()
                .expect("fetch runs");
            let _ = std::fs::remove_dir_all(&dir);
            let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
                panic!(
                    "defender fetch ({api}) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            (api, v)
        })
        .collect();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data);
    for (.., dir) in &measured {
        let _ = std::fs::remove_dir_all(dir);
    }
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap_or_else(|_| {
        panic!(
            "repeat fetch failed: {}",
            String::from_utf8_lossy(&again.stderr)
        )
    });
    let fetch_ms = v["elapsedMs"].as_u64().unwrap_or(0);
    let requests = &v["requests"];
    let total_requests = ["graph", "defender", "arm", "token"]
        .iter()
        .map(|k| requests[k].as_u64().unwrap_or(0))
        .sum::<u64>();
    let peak = v["peakRssBytes"].as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let entities: u64 = v["entities"]
        .as_object()
        .map(|m| m.values().filter_map(|x| x.as_u64()).sum())
        .unwrap_or(0);
    let seq_ms = sequential as u64 * LATENCY_MS;
    println!("users {users}: {entities} entities");
    println!(
        "  fetch            {:>8.2} s  (median of {runs}: {:.2}–{:.2} s; {:.2} s with saving the snapshot)",
        fetch_ms as f64 / 1000.0,
        range.0 as f64 / 1000.0,
        range.1 as f64 / 1000.0,
        wall.as_secs_f64()
    );
    println!(
        "  requests         {:>8}    ({} inner requests in $batch)",
        total_requests, requests["batched"]
    );
    println!("  peak memory      {:>8.0} MiB", peak);
    let logon_note = |v: &serde_json::Value| {
        v["sources"]["defender"]["notes"][0]
            .as_str()
            .and_then(|n| n.split(". ").next())
            .unwrap_or("")
            .trim_start_matches("logon users: ")
            .to_string()
    };
    println!(
        "  again            {:>8.2} s  (the next fetch into the same store; {:.0} MiB)",
        again["elapsedMs"].as_u64().unwrap_or(0) as f64 / 1000.0,
        again["peakRssBytes"].as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0)
    );
    let sources: Vec<String> = v["sources"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, s)| {
                    format!(
                        "{k} {:.2} s",
                        s["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!("  sources done at  {}", sources.join(", "));
    for (api, d) in &defender_by_api {
        let st = &d["sources"]["defender"];
        let calls = match *api {
            "graph" => d["requests"]["graph"].as_u64().unwrap_or(0),
            _ => d["requests"]["defender"].as_u64().unwrap_or(0),
        };
        let machines = d["entities"]["microsoft_defender_machine"]
            .as_u64()
            .unwrap_or(0);
        let read = match *api {
            "graph" => format!("logon users of all {machines} machines"),
            _ => logon_note(d),
        };
        println!(
            "  defender ({api:<5})  {:>7.2} s  ({} calls, {}; {})",
            st["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
            calls,
            st["outcome"].as_str().unwrap_or("?"),
            read
        );
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let client_cpu = v["cpuMs"].as_u64();
    if let (Some(c), Some(s)) = (client_cpu, server_cpu) {
        println!(
            "  CPU              {:>8.2} s  fetch + {:.2} s simulated tenant, on {cores} cores",
            c as f64 / 1000.0,
            s as f64 / 1000.0,
        );
        // What the two processes' CPU alone needs of the wall clock here.
        println!(
            "  CPU floor        {:>8.2} s  ((fetch + simulated tenant CPU) / {cores} cores)",
            (c + s) as f64 / 1000.0 / cores as f64
        );
    }
    println!(
        "  lower bound      {:>8.2} s  (1 token + {crit} requests of '{crit_name}' × {LATENCY_MS} ms)",
        lower_ms as f64 / 1000.0
    );
    println!(
        "  vs lower bound   {:>8.2} ×  ({:.2}–{:.2} ×)",
        fetch_ms as f64 / lower_ms as f64,
        range.0 as f64 / lower_ms as f64,
        range.1 as f64 / lower_ms as f64
    );
    println!(
        "  sequential       {:>8.1} s  ({sequential} requests × {LATENCY_MS} ms)",
        seq_ms as f64 / 1000.0
    );
    println!(
        "  vs sequential    {:>8.1} × faster",
        seq_ms as f64 / fetch_ms.max(1) as f64
    );
}

/// CPU time of another process in ms (Linux).
fn proc_cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) * 10)
}

fn main() {
    // `cargo test` runs benches with --bench absent: build only.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let sizes: Vec<usize> = match std::env::var("TENX_BENCH_USERS") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => vec![20_000, 100_000],
    };
    for users in sizes {
        run(users);
    }
}
