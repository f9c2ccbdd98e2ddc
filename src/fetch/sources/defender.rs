//! Defender for Endpoint: machines (and, per machine, its logon users),
//! the CVE catalogue, and vulnerability findings from the bulk
//! `machinesVulnerabilities` listing — not one call per machine. Logon
//! users are one call per machine under a rate limit of their own: a budget
//! of machines is read, the rest carried over (see `crate::fetch::logons`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;

use super::context::Ctx;
use crate::auth::endpoints::Api;
use crate::fetch::http::HttpError;
use crate::fetch::logons::{LogonBudget, LogonCarry, MachineSeen, Pacer, age, reading_order};
use crate::ingest::{Batch, JoinHint, defender as ingest, text};
use crate::model::Verb;

pub async fn run(ctx: &Ctx) {
    // The previous snapshot's logon users load while the machines are
    // listed; the reading plan needs both.
    let carry = ctx
        .options
        .carry
        .clone()
        .map(|load| tokio::task::spawn_blocking(move || load()));
    let machines = async {
        let machines = ctx
            .list(
                Api::Defender,
                "machines",
                "/api/machines?$top=10000",
                |v, b| {
                    ingest::machine(v, &ctx.tenant, b);
                    let id = text(v, "id")?;
                    Some(MachineSeen {
                        key: id.to_string(),
                        risk: MachineSeen::risk_of(text(v, "riskScore")),
                        last_seen: text(v, "lastSeen").unwrap_or("").to_string(),
                    })
                },
            )
            .await;
        // A listing that broke off reads no logon users, but the machines it
        // did list keep theirs from the previous snapshot.
        let listed_whole = machines.whole();
        let listed = machines.items;
        let carry = match carry {
            None => LogonCarry::default(),
            Some(task) => match task.await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    ctx.warn(format!(
                        "logon users: the previous snapshot could not be read ({e:#}); none carried over"
                    ));
                    LogonCarry::default()
                }
                Err(e) => {
                    ctx.warn(format!(
                        "logon users: reading the previous snapshot stopped ({e})"
                    ));
                    LogonCarry::default()
                }
            },
        };
        if listed.is_empty() {
            if !listed_whole {
                ctx.not_read("logon users", "the machines could not be listed");
            }
            return;
        }
        let wanted = if listed_whole {
            ctx.options.logons.budget.limit(listed.len())
        } else {
            0
        };
        logon_users(ctx, &listed, &carry, wanted).await;
    };
    let cves = ctx.read(
        Api::Defender,
        "vulnerabilities",
        "/api/vulnerabilities?$top=8000",
        |v, b| ingest::cve(v, b),
    );
    let findings = ctx.read(
        Api::Defender,
        "machine vulnerabilities",
        "/api/vulnerabilities/machinesVulnerabilities?$top=10000",
        |v, b| ingest::machine_vulnerability(v, b),
    );
    tokio::join!(machines, cves, findings);
}

/// What became of one machine's logon users this fetch.
enum Read {
    Done,
    /// Not sent: the rate limit was spent (here or by an earlier answer).
    Spent,
    Failed(HttpError),
}

/// Reads the logon users of the first `wanted` machines in `reading_order`,
/// within the documented rate limit, and carries every other machine's over
/// from `carry` with the time they were read.
async fn logon_users(ctx: &Ctx, machines: &[MachineSeen], carry: &LogonCarry, wanted: usize) {
    let policy = &ctx.options.logons;
    let order = reading_order(machines, carry);
    // Within a budget a fetch never waits out a spent limit; reading every
    // machine waits as long as the limits ask.
    let patience = match policy.budget {
        LogonBudget::All => None,
        LogonBudget::Machines(_) => Some(policy.patience),
    };
    let pacer = Pacer::new(&policy.windows);
    let spent = AtomicBool::new(false);
    let spent_wait = Mutex::new(None::<Duration>);
    let now = chrono::Utc::now().timestamp();
    let limit = ctx.http.concurrency(Api::Defender).min(wanted.max(1));
    let read_one = |i: usize| {
        let (pacer, spent, spent_wait) = (&pacer, &spent, &spent_wait);
        async move {
            let m = &machines[i];
            let path = format!("/api/machines/{}/logonusers", m.key);
            let on_page = |items: Vec<crate::fetch::record::Record<'_>>| {
                ctx.ingest("logon users", &items, |v, b| {
                    ingest::logon_user(&m.key, v, b)
                })
            };
            let mut throttled = 0;
            loop {
                // Pacing is what the budget asked for: no patience applies,
                // but a limit found spent stops every wait.
                if pacer.take(None, spent).await.is_none() {
                    return (i, Read::Spent);
                }
                // A 429 comes back here rather than being retried inside the
                // client: its retry must take a turn from the pacer like any
                // call. Retried on its own, every call refused at once came
                // back together when the wait ended, past the pacer, and a
                // loaded machine (calls sent late land in the service's next
                // window) could see one refused ten times in a row.
                let r = ctx
                    .http
                    .get_pages_within(Api::Defender, &path, Some(Duration::ZERO), on_page)
                    .await;
                match r {
                    Ok(_) => {
                        ctx.send(
                            "logon users",
                            Batch {
                                read_at: vec![(m.key.clone(), now)],
                                ..Default::default()
                            },
                        );
                        return (i, Read::Done);
                    }
                    Err(HttpError::RateLimited {
                        retry_after,
                        endpoint,
                    }) => {
                        throttled += 1;
                        if patience.is_some_and(|p| retry_after > p) {
                            spent.store(true, Ordering::Relaxed);
                            if let Ok(mut w) = spent_wait.lock() {
                                w.get_or_insert(retry_after);
                            }
                            return (i, Read::Spent);
                        }
                        if throttled >= ctx.http.throttle_attempts() {
                            let attempts = throttled;
                            return (i, Read::Failed(HttpError::Throttled { endpoint, attempts }));
                        }
                        // Nothing goes until the service's window is over,
                        // within what the client waits in all.
                        if !pacer.hold(retry_after, ctx.http.max_wait()) {
                            return (
                                i,
                                Read::Failed(HttpError::RateLimited {
                                    endpoint,
                                    retry_after,
                                }),
                            );
                        }
                    }
                    Err(e) => return (i, Read::Failed(e)),
                }
            }
        }
    };
    let mut planned = order.iter().take(wanted).copied();
    // One call first: when the limit was spent elsewhere (a fetch a moment
    // ago, another tool), one 429 says so instead of a hundred.
    let mut read: Vec<(usize, Read)> = Vec::with_capacity(wanted);
    if let Some(first) = planned.next() {
        read.push(read_one(first).await);
    }
    let rest: Vec<(usize, Read)> = futures::stream::iter(planned)
        .map(read_one)
        .buffer_unordered(limit)
        .collect()
        .await;
    read.extend(rest);

    let mut fresh = vec![false; machines.len()];
    let mut failures = Vec::new();
    let mut refused = 0;
    for (i, r) in read {
        match r {
            Read::Done => fresh[i] = true,
            Read::Spent => refused += 1,
            Read::Failed(e) => failures.push(e),
        }
    }
    // Every machine not read now keeps what the previous snapshot knew.
    let mut carried_users = std::collections::HashSet::new();
    let (mut carried, mut never, mut oldest) = (0usize, 0usize, None::<i64>);
    for (i, m) in machines.iter().enumerate() {
        if fresh[i] {
            continue;
        }
        let Some(c) = carry.machines.get(&m.key) else {
            never += 1;
            continue;
        };
        carried += 1;
        oldest = Some(oldest.map_or(c.read_at, |o| o.min(c.read_at)));
        let mut b = Batch::default();
        for key in &c.users {
            let Some(u) = carry.users.get(key) else {
                continue;
            };
            if carried_users.insert(key.as_str()) {
                b.entities.push(u.clone());
                if let Some(account) = u
                    .prop("accountName")
                    .and_then(|a| a.as_str().map(str::to_ascii_lowercase))
                {
                    b.hints.push(JoinHint::LogonUser {
                        key: key.clone(),
                        account,
                    });
                }
            }
            b.rel(&m.key, Verb::Has, key);
        }
        b.read_at.push((m.key.clone(), c.read_at));
        // Gathered into events of 2,000 records by `send`.
        ctx.send("logon users carried over", b);
    }
    if !carried_users.is_empty() {
        ctx.progress("logon users carried over", carried_users.len(), false);
    }
    let read_now = fresh.iter().filter(|f| **f).count();
    if read_now < machines.len() {
        let mut note = format!(
            "logon users: {read_now} of {} machines read now",
            machines.len()
        );
        if carried > 0 {
            note += &format!(
                ", {carried} carried over from earlier snapshots (the oldest read {} ago)",
                age(now - oldest.unwrap_or(now))
            );
        }
        if never > 0 {
            note += &format!(", {never} not read yet");
        }
        note +=
            ". Defender allows 100 logon-user calls a minute and 1,500 an hour, one per machine";
        let spent_wait = spent_wait.lock().ok().and_then(|w| *w);
        if refused > 0 {
            note += &match spent_wait {
                Some(w) => format!(
                    "; the limit was spent after {read_now} calls this fetch (Defender asked to wait {} s)",
                    w.as_secs_f64().ceil()
                ),
                None => format!("; the limit was spent after {read_now} calls this fetch"),
            };
        }
        note += ". Each fetch reads never-read machines first, then those read longest ago (`tenx fetch --logon-users N|all`).";
        ctx.note(note);
    }
    let n = failures.len();
    match failures.into_iter().next() {
        Some(e) => {
            if n > 1 {
                ctx.warn(format!("logon users: {n} machines could not be read"));
            }
            ctx.finish("logon users", Err(e));
        }
        None => ctx.finish("logon users", Ok(0)),
    }
}
