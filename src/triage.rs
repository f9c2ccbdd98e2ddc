//! Noncompliant devices for triage: one row per device with an open
//! noncompliance finding (noncompliant, error, conflict, of a compliance
//! policy or a configuration; grace-period devices marked), with its owner, failing policies and settings, last check-in and
//! the exposure Defender sees. Pure functions of the graph; the person's
//! triage status and note per device come from the snapshot store.
//!
//! Size: long because rows, grouping, the summary and coverage are all
//! derived from the same graph walk; the view is `tui::modes::triage`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{EntityId, EntityKind, TenantGraph, Verb};

/// Where a person is with a device.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Default,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    #[default]
    New,
    Investigating,
    #[value(alias = "waiting")]
    WaitingForCheckIn,
    #[value(alias = "accepted")]
    AcceptedRisk,
    Resolved,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::New,
        Status::Investigating,
        Status::WaitingForCheckIn,
        Status::AcceptedRisk,
        Status::Resolved,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Investigating => "investigating",
            Status::WaitingForCheckIn => "waiting for check-in",
            Status::AcceptedRisk => "accepted risk",
            Status::Resolved => "resolved",
        }
    }

    /// A status as the command line takes it (`waiting-for-check-in`,
    /// `waiting`), or as its label reads (`waiting for check-in`).
    pub fn parse(s: &str) -> Result<Status, UnknownStatus> {
        let n = s.trim().replace(['_', ' '], "-");
        <Status as clap::ValueEnum>::from_str(&n, true).map_err(|_| UnknownStatus(s.to_string()))
    }

    pub fn next(self) -> Status {
        let i = Status::ALL.iter().position(|s| *s == self).unwrap_or(0);
        Status::ALL[(i + 1) % Status::ALL.len()]
    }
}

/// A status tenx does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown status '{0}' (new, investigating, waiting-for-check-in, accepted-risk, resolved)")]
pub struct UnknownStatus(String);

/// What a person recorded about a device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Note {
    pub status: Status,
    pub note: String,
    /// When it was last changed (RFC 3339).
    pub updated_at: String,
}

/// One device to triage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    #[serde(skip)]
    pub device: EntityId,
    pub key: String,
    pub name: String,
    pub platform: String,
    pub os_version: String,
    pub owner: String,
    pub owner_upn: String,
    /// `complianceState` as the API wrote it.
    pub state: String,
    pub grace_period: bool,
    pub policies: Vec<String>,
    pub settings: Vec<String>,
    pub last_check_in: Option<DateTime<Utc>>,
    pub risk_score: Option<String>,
    pub exposure_level: Option<String>,
    /// Open CVEs on the device's Defender machine: critical, high, medium,
    /// low. None when they are not known: Defender has no machine for the
    /// device, or its vulnerabilities were not read (`Coverage::blank`).
    pub cves: Option<[usize; 4]>,
    /// The person's status and note (new when none).
    pub status: Status,
    pub note: String,
    /// Marked resolved, but still noncompliant in a newer snapshot.
    pub reopened: bool,
    /// Was triaged, and is compliant now.
    pub compliant_now: bool,
}

impl Row {
    /// What Defender says of the device's risk: its risk score (the
    /// Defender for Endpoint API's), else its exposure level (all advanced
    /// hunting has); none when Defender does not know the device.
    pub fn risk(&self) -> Option<String> {
        self.risk_score.clone().or_else(|| {
            self.exposure_level
                .as_ref()
                .map(|e| format!("exposure {e}"))
        })
    }

    /// The CVE counts as a cell: `2C 1H 0M 3L`, or nothing when unknown.
    pub fn cve_counts(&self) -> String {
        self.cves
            .map(|c| format!("{}C {}H {}M {}L", c[0], c[1], c[2], c[3]))
            .unwrap_or_default()
    }

    /// What Defender says of the device, in words: its risk and CVE
    /// counts; "not read" where Defender's data was not read, so a blank
    /// never passes for a device Defender has nothing against; "—" when
    /// Defender (read) does not know the device.
    pub fn defender_words(&self, coverage: &Coverage) -> String {
        match (self.risk(), self.cves) {
            (Some(risk), Some(_)) => format!("{risk} {}", self.cve_counts()),
            (Some(risk), None) => format!("{risk}, CVEs not read"),
            (None, _) if !coverage.machines_known() => "not read".into(),
            (None, _) => "—".into(),
        }
    }
}

fn prop_str(g: &TenantGraph, id: EntityId, f: &str) -> String {
    g.entity(id)
        .prop(f)
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The rows: every device with an open finding, plus devices a person
/// triaged that are compliant now. `notes` by device key; `snapshot_time`
/// is when the data was read (a resolved note older than it, on a device
/// still failing, is reopened).
pub fn rows(
    g: &TenantGraph,
    notes: &HashMap<String, Note>,
    snapshot_time: Option<DateTime<Utc>>,
) -> Vec<Row> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for &f in g.of_kind(EntityKind::IntuneNoncomplianceFinding) {
        let Some(device) = g
            .incoming(f)
            .iter()
            .find(|e| e.verb == Verb::Has && g.entity(e.other).kind.is_device())
            .map(|e| e.other)
        else {
            continue;
        };
        if seen.insert(device) {
            out.push(row(g, device, notes, snapshot_time, false));
        }
    }
    // Triaged devices that are compliant now.
    for (key, n) in notes {
        if let Some(id) = g.id_of(key) {
            if g.entity(id).kind.is_device() && !seen.contains(&id) && n.status != Status::Resolved
            {
                out.push(row(g, id, notes, snapshot_time, true));
            }
        }
    }
    out.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then_with(|| a.key.cmp(&b.key))
    });
    out
}

fn row(
    g: &TenantGraph,
    device: EntityId,
    notes: &HashMap<String, Note>,
    snapshot_time: Option<DateTime<Utc>>,
    compliant_now: bool,
) -> Row {
    let e = g.entity(device);
    let mut policies = Vec::new();
    let mut settings = Vec::new();
    for edge in g.outgoing(device).iter().filter(|x| x.verb == Verb::Has) {
        let f = g.entity(edge.other);
        if f.kind != EntityKind::IntuneNoncomplianceFinding {
            continue;
        }
        let policy = g
            .incoming(edge.other)
            .iter()
            .find(|x| x.verb == Verb::Identified)
            .map(|x| g.entity(x.other).display_name.to_string());
        policies.push(policy.unwrap_or_else(|| prop_str(g, edge.other, "policyId")));
        if let Some(names) = f
            .prop("failingSettingNames")
            .and_then(|v| v.as_array().cloned())
        {
            settings.extend(names.iter().filter_map(|n| n.as_str().map(String::from)));
        }
    }
    policies.sort();
    policies.dedup();
    settings.sort();
    settings.dedup();
    let owner = g
        .incoming(device)
        .iter()
        .find(|x| x.verb == Verb::Owns)
        .map(|x| x.other);
    let machine = g
        .incoming(device)
        .iter()
        .find(|x| x.verb == Verb::Manages && g.entity(x.other).kind == EntityKind::DefenderMachine)
        .map(|x| x.other);
    let mut cves = machine.map(|_| [0usize; 4]);
    if let (Some(m), Some(cves)) = (machine, cves.as_mut()) {
        for v in g.outgoing(m).iter().filter(|x| x.verb == Verb::Identified) {
            let sev = prop_str(g, v.other, "severity").to_ascii_lowercase();
            let i = match sev.as_str() {
                "critical" => 0,
                "high" => 1,
                "medium" => 2,
                _ => 3,
            };
            cves[i] += 1;
        }
    }
    let state = prop_str(g, device, "complianceState");
    let last = crate::ingest::date(
        &serde_json::Value::Object(e.properties()),
        "lastSyncDateTime",
    );
    let note = notes.get(&*e.key).cloned().unwrap_or_default();
    let updated = DateTime::parse_from_rfc3339(&note.updated_at)
        .ok()
        .map(|d| d.with_timezone(&Utc));
    let reopened = !compliant_now
        && note.status == Status::Resolved
        && match (updated, snapshot_time) {
            (Some(u), Some(s)) => s > u,
            _ => false,
        };
    Row {
        device,
        key: e.key.to_string(),
        name: e.display_name.to_string(),
        platform: prop_str(g, device, "operatingSystem"),
        os_version: prop_str(g, device, "osVersion"),
        owner: owner
            .map(|o| g.entity(o).display_name.to_string())
            .unwrap_or_default(),
        owner_upn: owner
            .map(|o| prop_str(g, o, "userPrincipalName"))
            .unwrap_or_default(),
        grace_period: state.eq_ignore_ascii_case("inGracePeriod"),
        state: if compliant_now {
            "compliant".into()
        } else {
            state
        },
        policies,
        settings,
        last_check_in: last,
        risk_score: machine
            .map(|m| prop_str(g, m, "riskScore"))
            .filter(|s| !s.is_empty()),
        exposure_level: machine
            .map(|m| prop_str(g, m, "exposureLevel"))
            .filter(|s| !s.is_empty()),
        cves,
        status: note.status,
        note: note.note,
        reopened,
        compliant_now,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GroupBy {
    #[default]
    None,
    Policy,
    Setting,
    Owner,
    Platform,
}

impl GroupBy {
    pub fn label(self) -> &'static str {
        match self {
            GroupBy::None => "none",
            GroupBy::Policy => "policy",
            GroupBy::Setting => "setting",
            GroupBy::Owner => "owner",
            GroupBy::Platform => "platform",
        }
    }

    pub fn next(self) -> GroupBy {
        match self {
            GroupBy::None => GroupBy::Policy,
            GroupBy::Policy => GroupBy::Setting,
            GroupBy::Setting => GroupBy::Owner,
            GroupBy::Owner => GroupBy::Platform,
            GroupBy::Platform => GroupBy::None,
        }
    }
}

/// Rows grouped: (group label, row indexes), largest group first. A device
/// failing two policies is in both policy groups.
pub fn group(rows: &[Row], by: GroupBy) -> Vec<(String, Vec<usize>)> {
    let mut map: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let keys: Vec<String> = match by {
            GroupBy::None => vec![String::new()],
            GroupBy::Policy => r.policies.clone(),
            GroupBy::Setting => r.settings.clone(),
            GroupBy::Owner => vec![if r.owner.is_empty() {
                "(no owner)".into()
            } else {
                format!("{} <{}>", r.owner, r.owner_upn)
            }],
            GroupBy::Platform => vec![if r.platform.is_empty() {
                "(unknown)".into()
            } else {
                r.platform.clone()
            }],
        };
        let keys = if keys.is_empty() {
            vec!["(none recorded)".to_string()]
        } else {
            keys
        };
        for k in keys {
            map.entry(k).or_default().push(i);
        }
    }
    let mut groups: Vec<(String, Vec<usize>)> = map.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    groups
}

/// The picture at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub noncompliant: usize,
    pub devices: usize,
    pub by_policy: Vec<(String, usize)>,
    pub by_setting: Vec<(String, usize)>,
    /// Against the previous snapshot: devices that started and stopped failing.
    pub new_since_previous: Option<usize>,
    pub fixed_since_previous: Option<usize>,
    /// Why there is no comparison with the previous snapshot, when there
    /// is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_comparison: Option<String>,
    /// What the rows rest on: whether Intune's devices and findings were
    /// read, and Defender's machines.
    pub coverage: Coverage,
}

/// Intune's collections the rows and counts are made of: a device missing
/// from any of them would be missing from triage, or shown compliant.
pub const FINDING_COLLECTIONS: [&str; 6] = [
    "managed devices",
    "compliance policies",
    "compliance device statuses",
    "noncompliance findings",
    "device configurations",
    "configuration device statuses",
];

/// How the data of one source that triage draws on was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Reading {
    /// Read completely in this snapshot's fetch.
    Read,
    /// Not read by this snapshot's fetch; carried over from one that did.
    Carried {
        snapshot: i64,
        #[serde(rename = "readAt")]
        read_at: String,
    },
    /// Read in part: these collections were not read completely.
    Partial { missing: Vec<String> },
    /// Not in the snapshot at all.
    Missing,
}

/// What triage's conclusions rest on (see `Reading`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Intune's devices and noncompliance findings.
    pub intune: Reading,
    /// Defender's machines, for the risk and CVE columns.
    pub defender: Reading,
}

impl Default for Coverage {
    fn default() -> Self {
        Coverage {
            intune: Reading::Read,
            defender: Reading::Read,
        }
    }
}

impl Coverage {
    /// From a snapshot's source statuses. A collection that failed in a
    /// snapshot written before collections were named is found by the
    /// error line that names it.
    pub fn of(statuses: &BTreeMap<crate::fetch::Source, crate::fetch::SourceStatus>) -> Coverage {
        use crate::fetch::{Outcome, Source};
        let reading = |source: Source, wanted: &[&str]| match statuses.get(&source) {
            None => Reading::Missing,
            Some(s) if s.outcome == Outcome::Complete => Reading::Read,
            Some(s) => match (&s.carried, s.outcome) {
                (Some(c), _) => Reading::Carried {
                    snapshot: c.snapshot,
                    read_at: c.read_at.clone(),
                },
                (None, Outcome::Partial) => {
                    let named = |c: &str| {
                        s.incomplete.iter().any(|i| i == c)
                            || s.errors.iter().any(|e| e.starts_with(&format!("{c}:")))
                    };
                    let missing: Vec<String> = wanted
                        .iter()
                        .filter(|c| named(c))
                        .map(|c| c.to_string())
                        .collect();
                    // A partial source whose gaps are elsewhere is read
                    // as far as triage goes.
                    if missing.is_empty() && !(s.incomplete.is_empty() && s.errors.is_empty()) {
                        Reading::Read
                    } else if missing.is_empty() {
                        Reading::Partial {
                            missing: vec!["(unknown)".into()],
                        }
                    } else {
                        Reading::Partial { missing }
                    }
                }
                (None, _) => Reading::Missing,
            },
        };
        Coverage {
            intune: reading(Source::Intune, &FINDING_COLLECTIONS),
            defender: reading(Source::Defender, &["machines", "machine vulnerabilities"]),
        }
    }

    /// Whether every column rests on data this snapshot's fetch read
    /// completely: Intune's devices and findings, and Defender's machines
    /// and their vulnerabilities.
    pub fn complete(&self) -> bool {
        self.intune == Reading::Read && self.defender == Reading::Read
    }

    /// Whether Defender's machines are known (read now, carried over, or
    /// read though other collections were not).
    pub fn machines_known(&self) -> bool {
        self.defender_has("machines")
    }

    /// Whether the machines' vulnerabilities are known, so that a device
    /// without any has none.
    pub fn cves_known(&self) -> bool {
        self.defender_has("machines") && self.defender_has("machine vulnerabilities")
    }

    fn defender_has(&self, collection: &str) -> bool {
        match &self.defender {
            Reading::Read | Reading::Carried { .. } => true,
            Reading::Partial { missing } => {
                !missing.iter().any(|m| m == collection || m == "(unknown)")
            }
            Reading::Missing => false,
        }
    }

    /// Blanks what the rows would claim from data that was not read: the
    /// CVE counts when the vulnerabilities were not read (a device would
    /// otherwise show none).
    pub fn blank(&self, rows: &mut [Row]) {
        if !self.cves_known() {
            for r in rows {
                r.cves = None;
            }
        }
    }

    /// Whether Intune's findings are whole (read now or carried over): the
    /// least a snapshot must have to be compared with another.
    pub fn findings_whole(&self) -> bool {
        matches!(self.intune, Reading::Read | Reading::Carried { .. })
    }

    /// What a person must know before trusting the counts, one line each;
    /// none when everything was read.
    pub fn lines(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut out = Vec::new();
        let words = |what: &str, r: &Reading, consequence: &str| -> Option<String> {
            match r {
                Reading::Read => None,
                Reading::Carried { snapshot, read_at } => Some(format!(
                    "{what} not read by this fetch: {} ({consequence})",
                    crate::fetch::Carried {
                        snapshot: *snapshot,
                        read_at: read_at.clone()
                    }
                    .words(now)
                )),
                Reading::Partial { missing } => Some(format!(
                    "{what} read in part ({} not read completely): {consequence}",
                    missing.join(", ")
                )),
                Reading::Missing => Some(format!(
                    "{what} not read, and no earlier snapshot has it: {consequence}"
                )),
            }
        };
        out.extend(words(
            "Intune",
            &self.intune,
            match self.intune {
                Reading::Carried { .. } => "its devices and findings are as they were then",
                _ => "devices and findings not read are missing, and none is counted as fixed",
            },
        ));
        let defender = match &self.defender {
            Reading::Carried { .. } => "risk and CVEs are as they were then",
            _ if !self.machines_known() => {
                "no device's risk or CVEs are known, and the Defender column says not read"
            }
            _ => "CVE counts are not known and are left blank",
        };
        out.extend(words("Defender", &self.defender, defender));
        out
    }
}

/// Rows' summary. `previous` is the set of devices failing in the previous
/// snapshot, given only when both snapshots' findings can be compared
/// (`no_comparison` says why not, otherwise).
pub fn summary(
    g: &TenantGraph,
    rows: &[Row],
    previous: Option<&HashSet<String>>,
    coverage: Coverage,
    no_comparison: Option<String>,
) -> Summary {
    let failing: Vec<&Row> = rows.iter().filter(|r| !r.compliant_now).collect();
    let devices = EntityKind::ALL
        .iter()
        .filter(|k| k.is_device())
        .map(|k| g.of_kind(*k).len())
        .sum();
    let count = |f: &dyn Fn(&Row) -> Vec<String>| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for r in &failing {
            for k in f(r) {
                *m.entry(k).or_default() += 1;
            }
        }
        let mut v: Vec<(String, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    };
    let now: HashSet<&str> = failing.iter().map(|r| r.key.as_str()).collect();
    Summary {
        noncompliant: failing.len(),
        devices,
        by_policy: count(&|r| r.policies.clone()),
        by_setting: count(&|r| r.settings.clone()),
        new_since_previous: previous.map(|p| now.iter().filter(|k| !p.contains(**k)).count()),
        fixed_since_previous: previous
            .map(|p| p.iter().filter(|k| !now.contains(k.as_str())).count()),
        no_comparison: if previous.is_some() {
            None
        } else {
            no_comparison
        },
        coverage,
    }
}

/// Why two snapshots' findings cannot be compared, if they cannot: the
/// current one must have read Intune now, the previous one whole. "Fixed"
/// is never counted from findings that were not read.
pub fn comparable(current: &Coverage, previous: Option<&Coverage>) -> Result<(), String> {
    match (&current.intune, previous) {
        (_, None) => Err("no previous snapshot".into()),
        (Reading::Read, Some(p)) if p.findings_whole() => Ok(()),
        (Reading::Read, Some(_)) => {
            Err("not compared: the previous snapshot did not read Intune completely".into())
        }
        (Reading::Carried { .. }, _) => {
            Err("not compared: Intune was not read by this fetch".into())
        }
        _ => Err("not compared: Intune was not read completely by this fetch".into()),
    }
}

/// Device keys with an open finding, for comparing snapshots.
pub fn failing_keys(g: &TenantGraph) -> HashSet<String> {
    rows(g, &HashMap::new(), None)
        .into_iter()
        .map(|r| r.key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Entity, RelRecord};
    use serde_json::json;

    fn device(g: &mut TenantGraph, key: &str, state: &str) {
        let p = json!({"complianceState": state, "operatingSystem": "Windows"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        g.upsert(Entity::new(key, EntityKind::Laptop, key, key, &p));
    }

    #[test]
    fn triaged_devices_that_became_compliant_show_as_such_and_resolved_ones_drop_out() {
        let mut g = TenantGraph::new();
        device(&mut g, "d1", "noncompliant");
        device(&mut g, "d2", "compliant");
        device(&mut g, "d3", "compliant");
        let f = json!({"policyId": "p", "failingSettingNames": ["Require BitLocker"]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        g.upsert(Entity::new(
            "d1|p",
            EntityKind::IntuneNoncomplianceFinding,
            "d1|p",
            "P on d1",
            &f,
        ));
        g.relate(RelRecord::new("d1", Verb::Has, "d1|p"));
        let mut notes = HashMap::new();
        notes.insert(
            "d2".to_string(),
            Note {
                status: Status::Investigating,
                note: "fixed?".into(),
                updated_at: String::new(),
            },
        );
        notes.insert(
            "d3".to_string(),
            Note {
                status: Status::Resolved,
                note: String::new(),
                updated_at: String::new(),
            },
        );
        let r = rows(&g, &notes, None);
        let keys: Vec<(&str, bool)> = r
            .iter()
            .map(|x| (x.key.as_str(), x.compliant_now))
            .collect();
        assert_eq!(keys, [("d1", false), ("d2", true)]);
        assert_eq!(r[0].settings, ["Require BitLocker"]);
        assert_eq!(r[1].state, "compliant");
        let s = summary(
            &g,
            &r,
            Some(&HashSet::from(["d9".to_string()])),
            Coverage::default(),
            None,
        );
        assert_eq!(
            (
                s.noncompliant,
                s.devices,
                s.new_since_previous,
                s.fixed_since_previous
            ),
            (1, 3, Some(1), Some(1))
        );
        assert_eq!(
            Status::parse("Waiting for check-in").expect("status"),
            Status::WaitingForCheckIn
        );
        assert_eq!(Status::Resolved.next(), Status::New);
    }
}
