//! Defender's logon users within the rate limit Microsoft documents.
//!
//! `GET /api/machines/{id}/logonusers` is one call per machine, allowed 100
//! times a minute and 1,500 times an hour per app. A tenant of 16,000
//! machines needs eleven hours of that allowance, so no single fetch can
//! read them all. A fetch reads the logon users of a budget of machines —
//! never-read machines first (riskiest, then most recently seen), then the
//! ones read longest ago — and carries every other machine's logon users
//! over from the previous snapshot with the time they were read. Each fetch
//! moves the oldest forward; `--logon-users all` reads every machine, paced
//! to the documented limits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::Entity;

/// How many machines' logon users one fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogonBudget {
    /// At most this many machines (0: carry every machine's over).
    Machines(usize),
    /// Every machine, paced to the documented limits however long it takes.
    All,
}

impl LogonBudget {
    /// One minute's allowance: a fetch that never waits for the limit.
    pub const DEFAULT: LogonBudget = LogonBudget::Machines(100);

    pub fn parse(s: &str) -> Result<LogonBudget, crate::base::setting::SettingError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(LogonBudget::All),
            "none" => Ok(LogonBudget::Machines(0)),
            n => n.parse().map(LogonBudget::Machines).map_err(|_| {
                crate::base::setting::SettingError(format!(
                    "a number of machines, all or none, not '{s}'"
                ))
            }),
        }
    }

    pub fn limit(self, machines: usize) -> usize {
        match self {
            LogonBudget::Machines(n) => n.min(machines),
            LogonBudget::All => machines,
        }
    }
}

impl Default for LogonBudget {
    fn default() -> Self {
        LogonBudget::DEFAULT
    }
}

/// How a fetch reads logon users.
#[derive(Debug, Clone, PartialEq)]
pub struct LogonPolicy {
    pub budget: LogonBudget,
    /// The limits tenx paces itself to: (calls, window). Documented:
    /// 100 a minute and 1,500 an hour.
    pub windows: Vec<(u32, Duration)>,
    /// The longest `Retry-After` worth waiting for within a budget. Longer,
    /// and the limit was spent elsewhere (another tool, a fetch a moment
    /// ago): the rest carries over to the next fetch.
    pub patience: Duration,
}

impl Default for LogonPolicy {
    fn default() -> Self {
        LogonPolicy {
            budget: LogonBudget::DEFAULT,
            windows: vec![
                (100, Duration::from_secs(60)),
                (1500, Duration::from_secs(3600)),
            ],
            patience: Duration::from_secs(5),
        }
    }
}

impl LogonPolicy {
    /// The default policy with this budget, pacing to the limits in
    /// `TENX_LOGON_USER_LIMITS` (`100/60s+1500/3600s`) where that is set:
    /// for a tenant whose limits differ from the documented ones, and for
    /// tests against a simulated tenant with scaled windows.
    pub fn with_budget(
        budget: LogonBudget,
    ) -> Result<LogonPolicy, crate::base::setting::SettingError> {
        let mut p = LogonPolicy {
            budget,
            ..Default::default()
        };
        if let Ok(spec) = std::env::var("TENX_LOGON_USER_LIMITS") {
            if !spec.trim().is_empty() {
                p.windows = parse_windows(&spec).map_err(|e| {
                    crate::base::setting::SettingError(format!("TENX_LOGON_USER_LIMITS: {e}"))
                })?;
            }
        }
        Ok(p)
    }
}

/// `100/60s+1500/3600s`: calls per window, each window in seconds.
pub fn parse_windows(
    spec: &str,
) -> Result<Vec<(u32, Duration)>, crate::base::setting::SettingError> {
    let mut out = Vec::new();
    for w in spec.split('+').map(str::trim) {
        let bad = || {
            crate::base::setting::SettingError(format!(
                "'{w}' is not calls/seconds (e.g. 100/60s+1500/3600s)"
            ))
        };
        let (n, secs) = w.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let secs: f64 = secs
            .trim()
            .trim_end_matches('s')
            .parse()
            .map_err(|_| bad())?;
        let window = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero() && n > 0);
        let Some(window) = window else {
            return Err(crate::base::setting::SettingError(format!(
                "'{w}' needs at least one call per positive window"
            )));
        };
        out.push((n, window));
    }
    Ok(out)
}

/// One machine's logon users as an earlier snapshot had them.
#[derive(Debug, Clone, PartialEq)]
pub struct CarriedMachine {
    /// When they were read, Unix seconds.
    pub read_at: i64,
    /// Keys into `LogonCarry::users`; empty when the machine had none.
    pub users: Vec<String>,
}

/// What the previous snapshot knew of logon users: per machine key, when
/// they were read and who they were.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogonCarry {
    pub machines: HashMap<String, CarriedMachine>,
    pub users: HashMap<String, Entity>,
}

impl LogonCarry {
    /// From a graph in memory (the explorer's loaded snapshot, tests).
    pub fn from_graph(g: &crate::model::TenantGraph) -> LogonCarry {
        use crate::model::{EntityKind, Verb};
        let mut carry = LogonCarry::default();
        for &m in g.of_kind(EntityKind::DefenderMachine) {
            let users: Vec<String> = g
                .outgoing(m)
                .iter()
                .filter(|e| e.verb == Verb::Has)
                .map(|e| g.entity(e.other))
                .filter(|u| u.kind == EntityKind::DefenderLogonUser)
                .map(|u| {
                    carry
                        .users
                        .entry(u.key.to_string())
                        .or_insert_with(|| u.clone());
                    u.key.to_string()
                })
                .collect();
            if let Some(read_at) = g.read_at(m) {
                carry.machines.insert(
                    g.entity(m).key.to_string(),
                    CarriedMachine { read_at, users },
                );
            }
        }
        carry
    }
}

/// A machine as the listing described it: what the order of reading needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineSeen {
    pub key: String,
    /// `riskScore`: High 3, Medium 2, Low 1, else 0.
    pub risk: u8,
    /// `lastSeen`, as Defender writes it (ISO 8601, UTC).
    pub last_seen: String,
}

impl MachineSeen {
    pub fn risk_of(score: Option<&str>) -> u8 {
        match score.map(str::to_ascii_lowercase).as_deref() {
            Some("high") => 3,
            Some("medium") => 2,
            Some("low") => 1,
            _ => 0,
        }
    }
}

/// The order in which machines' logon users are worth reading: never read
/// first (riskiest, then most recently seen), then read longest ago. The
/// first `budget.limit(n)` are read; the rest carry over.
pub fn reading_order(machines: &[MachineSeen], carry: &LogonCarry) -> Vec<usize> {
    // One key per machine, not per comparison: a large tenant has 100,000.
    // ISO 8601 in UTC compares as text to the second; None (never read)
    // sorts before any read time, and older times first.
    use std::cmp::Reverse;
    /// (read at, risk, last seen, key): None sorts first, the rest ascending.
    type Key<'a> = (Option<i64>, Reverse<u8>, Reverse<&'a str>, &'a str);
    let keys: Vec<Key> = machines
        .iter()
        .map(|m| {
            (
                carry.machines.get(&m.key).map(|c| c.read_at),
                Reverse(m.risk),
                Reverse(m.last_seen.get(..19).unwrap_or(&m.last_seen)),
                m.key.as_str(),
            )
        })
        .collect();
    let mut order: Vec<usize> = (0..machines.len()).collect();
    order.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]));
    order
}

/// Calls paced to fixed windows, as the service counts them. A window
/// restarts a little late (`1/20` of it), so a call near the edge never
/// lands in the service's old window.
#[derive(Debug)]
pub struct Pacer {
    windows: Vec<(u32, Duration)>,
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    /// Each window's start and the calls counted in it.
    windows: Vec<Option<(Instant, u32)>>,
    /// Nothing goes before this: the service said its limit is spent.
    held_until: Option<Instant>,
    /// How long holds have kept every call back in all (holds that overlap
    /// count once).
    held: Duration,
}

impl Pacer {
    pub fn new(windows: &[(u32, Duration)]) -> Pacer {
        Pacer {
            windows: windows.to_vec(),
            state: Mutex::new(PacerState {
                windows: vec![None; windows.len()],
                held_until: None,
                held: Duration::ZERO,
            }),
        }
    }

    /// The service refused a call for `wait` (429 and `Retry-After`):
    /// nothing goes until it is over, and the windows count afresh from
    /// then, as the service's do. `false`, and no hold, when that would keep
    /// calls back longer than `allowance` in all: a service that asks for
    /// more is an answer, not a delay (the client's `max_wait`).
    pub fn hold(&self, wait: Duration, allowance: Duration) -> bool {
        let now = Instant::now();
        let until = now + wait;
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let from = state.held_until.filter(|h| *h > now).unwrap_or(now);
        let more = until.saturating_duration_since(from);
        if state.held + more > allowance {
            return false;
        }
        state.held += more;
        if state.held_until.is_none_or(|h| h < until) {
            state.held_until = Some(until);
        }
        state.windows.iter_mut().for_each(|w| *w = None);
        true
    }

    /// How long until the next call may go (zero: now, and it is counted).
    pub fn try_take(&self) -> Duration {
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return Duration::ZERO;
        };
        if let Some(until) = state.held_until {
            if now < until {
                return until - now;
            }
            state.held_until = None;
        }
        let mut wait = Duration::ZERO;
        for (i, &(limit, window)) in self.windows.iter().enumerate() {
            let span = window + window / 20;
            if let Some((start, n)) = state.windows[i] {
                if now.duration_since(start) >= span {
                    state.windows[i] = None;
                } else if n >= limit {
                    wait = wait.max(span - now.duration_since(start));
                }
            }
        }
        if wait.is_zero() {
            for s in state.windows.iter_mut() {
                s.get_or_insert((now, 0)).1 += 1;
            }
        }
        wait
    }

    /// Waits for the next call's turn; `None` when that would take longer
    /// than `patience`, or once `stop` is set (checked at least every
    /// 250 ms while waiting).
    pub async fn take(
        &self,
        patience: Option<Duration>,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Option<Duration> {
        use std::sync::atomic::Ordering;
        let mut waited = Duration::ZERO;
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let wait = self.try_take();
            if wait.is_zero() {
                return Some(waited);
            }
            if patience.is_some_and(|p| waited + wait > p) {
                return None;
            }
            let step = wait.min(Duration::from_millis(250));
            tokio::time::sleep(step).await;
            waited += step;
        }
    }
}

/// "3 h", "2 days": how long ago, for notes and the details pane.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(key: &str, risk: u8, last_seen: &str) -> MachineSeen {
        MachineSeen {
            key: key.into(),
            risk,
            last_seen: last_seen.into(),
        }
    }

    #[test]
    fn a_refusal_holds_every_call_and_the_windows_count_afresh_after_it() {
        // A retry takes its turn like any call: after a 429, nothing goes
        // until the service's wait is over, and then a whole window's calls
        // may go again (the service's window restarted too).
        let p = Pacer::new(&[(3, Duration::from_secs(60))]);
        assert!(p.try_take().is_zero());
        assert!(p.hold(Duration::from_millis(40), Duration::from_secs(1)));
        let wait = p.try_take();
        assert!(
            wait > Duration::from_millis(20) && wait <= Duration::from_millis(40),
            "{wait:?}"
        );
        std::thread::sleep(Duration::from_millis(45));
        for _ in 0..3 {
            assert!(p.try_take().is_zero());
        }
        assert!(p.try_take() > Duration::from_secs(59));
    }

    #[test]
    fn holds_beyond_the_allowance_are_refused_and_overlaps_count_once() {
        // A service that asks for an endless wait must not hold a fetch
        // forever: past the allowance the refusal is the answer.
        let p = Pacer::new(&[(3, Duration::from_secs(60))]);
        assert!(!p.hold(Duration::from_secs(1_000_000), Duration::from_secs(300)));
        assert!(p.try_take().is_zero(), "a refused hold holds nothing");
        assert!(p.hold(Duration::from_secs(200), Duration::from_secs(300)));
        // Overlapping the first, it adds only its last 50 s.
        assert!(p.hold(Duration::from_secs(250), Duration::from_secs(300)));
        assert!(!p.hold(Duration::from_secs(400), Duration::from_secs(300)));
    }

    #[test]
    fn never_read_riskiest_and_latest_first_then_oldest_read() {
        let machines = vec![
            seen("old-read", 3, "2026-12-01T00:00:00Z"),
            seen("low-recent", 1, "2026-12-02T10:00:00.1234567Z"),
            seen("high-stale", 3, "2026-10-01T00:00:00Z"),
            seen("new-read", 3, "2026-12-02T00:00:00Z"),
            seen("low-older", 1, "2026-12-01T10:00:00Z"),
        ];
        let mut carry = LogonCarry::default();
        carry.machines.insert(
            "old-read".into(),
            CarriedMachine {
                read_at: 100,
                users: vec![],
            },
        );
        carry.machines.insert(
            "new-read".into(),
            CarriedMachine {
                read_at: 200,
                users: vec![],
            },
        );
        let order: Vec<&str> = reading_order(&machines, &carry)
            .into_iter()
            .map(|i| machines[i].key.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "high-stale",
                "low-recent",
                "low-older",
                "old-read",
                "new-read"
            ]
        );
    }

    #[test]
    fn budgets_parse_and_limit() {
        assert_eq!(LogonBudget::parse("all").unwrap(), LogonBudget::All);
        assert_eq!(
            LogonBudget::parse("none").unwrap(),
            LogonBudget::Machines(0)
        );
        assert_eq!(
            LogonBudget::parse(" 250 ").unwrap(),
            LogonBudget::Machines(250)
        );
        let e = LogonBudget::parse("lots").unwrap_err().to_string();
        assert!(e.contains("'lots'"), "{e}");
        assert_eq!(LogonBudget::DEFAULT.limit(16_000), 100);
        assert_eq!(LogonBudget::DEFAULT.limit(40), 40);
        assert_eq!(LogonBudget::All.limit(16_000), 16_000);
    }

    #[test]
    fn the_pacer_keeps_to_every_window() {
        let p = Pacer::new(&[
            (2, Duration::from_millis(200)),
            (3, Duration::from_secs(3600)),
        ]);
        assert!(p.try_take().is_zero());
        assert!(p.try_take().is_zero());
        let w = p.try_take();
        assert!(
            w > Duration::from_millis(150) && w <= Duration::from_millis(210),
            "{w:?}"
        );
        std::thread::sleep(w);
        assert!(p.try_take().is_zero(), "a new minute window");
        let w = p.try_take();
        assert!(w > Duration::from_secs(3500), "the hour is spent: {w:?}");
    }

    #[tokio::test]
    async fn taking_a_turn_waits_or_gives_up_beyond_patience() {
        use std::sync::atomic::AtomicBool;
        let go = AtomicBool::new(false);
        let p = Pacer::new(&[(1, Duration::from_millis(40))]);
        assert_eq!(p.take(None, &go).await, Some(Duration::ZERO));
        let waited = p.take(None, &go).await.expect("a turn");
        assert!(waited >= Duration::from_millis(35), "{waited:?}");
        assert_eq!(p.take(Some(Duration::from_millis(1)), &go).await, None);
        // A stop ends a long wait at once.
        let slow = Pacer::new(&[(1, Duration::from_secs(3600))]);
        assert!(slow.take(None, &go).await.is_some());
        let stop = AtomicBool::new(true);
        let t = std::time::Instant::now();
        assert_eq!(slow.take(None, &stop).await, None);
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn windows_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_windows("100/60s+1500/3600s").unwrap(),
            vec![
                (100, Duration::from_secs(60)),
                (1500, Duration::from_secs(3600))
            ]
        );
        assert_eq!(
            parse_windows("5/0.5").unwrap(),
            vec![(5, Duration::from_millis(500))]
        );
        let e = parse_windows("100").unwrap_err().to_string();
        assert!(e.contains("'100'"), "{e}");
        let e = parse_windows("0/1s").unwrap_err().to_string();
        assert!(e.contains("at least one call"), "{e}");
        assert!(parse_windows("1/-1s").is_err());
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(5), "5 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(3 * 3600), "3 h");
        assert_eq!(age(3 * 86_400), "3 days");
        assert_eq!(age(-4), "0 s");
    }
}
