//! Defender for Endpoint through Microsoft Graph security advanced hunting
//! (`POST /v1.0/security/runHuntingQuery`, `ThreatHunting.Read.All`): the
//! Defender for Endpoint API retires on 1 February 2027 (MC1220762).
//!
//! Advanced hunting's documented limits shape every query: a result holds
//! at most 100,000 rows (and 50 MB), a tenant may make at least 45 calls a
//! minute, and the data covers 30 days. A big tenant has millions of
//! (device, software, CVE) rows, so each table is read in partitions of its
//! devices: a first query counts the rows per hash bucket of `DeviceId`
//! (`hash(DeviceId, 4096)`), and consecutive buckets are grouped into
//! ranges of at most half the row cap. A result that comes back with as
//! many rows as the cap was cut (the service says nothing), and one refused
//! for its size is too big: either is split in two and read again, never
//! kept. Calls are paced to the call quota; a throttled call waits as the
//! service asks, within the collection's allowance.
//!
//! Logon users come for every machine in one pass: from `DeviceInfo`'s
//! `LoggedOnUsers`, and from `DeviceLogonEvents`' successful logons.

use std::collections::{HashMap, VecDeque};

use super::context::Ctx;
use crate::fetch::http::{HttpError, Waited};
use crate::fetch::logons::Pacer;
use crate::fetch::record::{RawPage, Record};
use crate::ingest::{Batch, hunting as ingest};

/// Hash buckets of `DeviceId`: 4,096 buckets hold 100,000 rows each only
/// past 400 million rows. Fewer under a smaller row cap, so that the count
/// of rows per bucket always fits in one result.
const BUCKETS: u32 = 4096;

/// CVE ids per knowledge-base query (`where CveId in (…)`).
const CVES_PER_QUERY: usize = 1000;

/// The `DeviceInfo` columns read (the README says which property each
/// fills).
const DEVICE_COLUMNS: &str = "Timestamp, DeviceId, DeviceName, OSPlatform, OSVersion, OSBuild, OSArchitecture, AadDeviceId, IsAzureADJoined, JoinType, MachineGroup, ExposureLevel, OnboardingStatus, SensorHealthState, LoggedOnUsers, PublicIP, DeviceType, Model, Vendor, ClientVersion";

/// The partitioning key of a table: its rows' device, in `buckets` buckets.
fn bucket(buckets: u32) -> String {
    format!("hash(DeviceId, {buckets})")
}

/// Buckets `from..=to`, as a `where` clause.
fn in_range(buckets: u32, from: u32, to: u32) -> String {
    let b = bucket(buckets);
    format!("| where {b} >= {from} and {b} <= {to}")
}

/// A table read in partitions: how to count its rows per bucket, and the
/// query of one range of buckets (given the number of buckets).
struct Table {
    collection: &'static str,
    count: fn(u32) -> String,
    read: fn(u32, u32, u32) -> String,
}

fn machines() -> Table {
    Table {
        collection: "machines",
        count: |n| {
            format!(
                "DeviceInfo | where Timestamp > ago(30d) | distinct DeviceId | summarize Rows = count() by Part = {}",
                bucket(n)
            )
        },
        read: |n, from, to| {
            format!(
                "DeviceInfo | where Timestamp > ago(30d) {} | summarize arg_max(Timestamp, *) by DeviceId | project {DEVICE_COLUMNS}",
                in_range(n, from, to)
            )
        },
    }
}

fn vulnerabilities() -> Table {
    Table {
        collection: "machine vulnerabilities",
        count: |n| {
            format!(
                "DeviceTvmSoftwareVulnerabilities | summarize Rows = count() by Part = {}",
                bucket(n)
            )
        },
        // One row per (device, CVE), whatever software carries it.
        read: |n, from, to| {
            format!(
                "DeviceTvmSoftwareVulnerabilities {} | summarize SoftwareNames = make_set(SoftwareName), SoftwareVendors = make_set(SoftwareVendor), SoftwareVersions = make_set(SoftwareVersion), Updates = make_set(RecommendedSecurityUpdateId) by DeviceId, CveId, VulnerabilitySeverityLevel",
                in_range(n, from, to)
            )
        },
    }
}

fn logons() -> Table {
    Table {
        collection: "logon users",
        // Per (device, account) as tenx keys logon users: an account
        // without a SID is still one of its own.
        count: |n| {
            format!(
                "DeviceLogonEvents | where Timestamp > ago(30d) and ActionType == \"LogonSuccess\" | distinct DeviceId, AccountDomain, AccountName | summarize Rows = count() by Part = {}",
                bucket(n)
            )
        },
        read: |n, from, to| {
            format!(
                "DeviceLogonEvents | where Timestamp > ago(30d) and ActionType == \"LogonSuccess\" {} | summarize arg_max(Timestamp, AccountSid) by DeviceId, AccountDomain, AccountName",
                in_range(n, from, to)
            )
        },
    }
}

/// What one source's hunting shares: the call pacing and the row cap.
struct Hunter<'a> {
    ctx: &'a Ctx,
    pacer: Pacer,
    row_cap: usize,
    /// Rows planned per partition.
    target: usize,
    /// Hash buckets of `DeviceId` (`BUCKETS`, or a quarter of a smaller
    /// row cap).
    buckets: u32,
}

/// How the endpoint is named in waits and errors.
const ENDPOINT: &str = "POST /v1.0/security/runHuntingQuery";

impl Hunter<'_> {
    /// One query, paced to the call quota; a wait for the quota is told
    /// while it lasts (it is the quota, not a refusal: no allowance is
    /// taken).
    async fn query(&self, kql: &str, waited: &Waited) -> Result<RawPage, HttpError> {
        loop {
            let wait = self.pacer.try_take();
            if wait.is_zero() {
                break;
            }
            self.ctx
                .http
                .tell_wait(ENDPOINT, wait, "advanced hunting's quota of calls a minute");
            tokio::time::sleep(wait).await;
        }
        self.ctx.http.hunt(kql, waited).await
    }

    /// Ranges of consecutive buckets holding at most `target` rows each (a
    /// bucket over it alone), from the table's count per bucket; together
    /// they cover every bucket.
    async fn plan(&self, t: &Table, waited: &Waited) -> Result<Vec<(u32, u32)>, HttpError> {
        let counts = self.query(&(t.count)(self.buckets), waited).await?;
        if counts.len() >= self.row_cap {
            return Err(HttpError::Cut {
                endpoint: ENDPOINT.into(),
                what: format!("{}: the count of rows per bucket was cut", t.collection),
            });
        }
        let mut rows = vec![0usize; self.buckets as usize];
        for r in counts.records() {
            let number = |f: &str| {
                r.raw_field(f)
                    .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
            };
            if let (Some(part), Some(n)) = (number("Part"), number("Rows")) {
                if let Some(slot) = rows.get_mut(part as usize) {
                    *slot = slot.saturating_add(usize::try_from(n).unwrap_or(usize::MAX));
                }
            }
        }
        // Ranges cover every bucket, empty ones too: a device may have
        // arrived since the count.
        let target = self.target.max(1);
        let mut ranges = Vec::new();
        let (mut start, mut sum) = (0u32, 0usize);
        for (b, &n) in rows.iter().enumerate() {
            let b = b as u32;
            if sum > 0 && sum.saturating_add(n) > target {
                ranges.push((start, b - 1));
                start = b;
                sum = 0;
            }
            sum = sum.saturating_add(n);
        }
        ranges.push((start, self.buckets - 1));
        Ok(ranges)
    }

    /// Reads a table range by range, handing each result's rows to
    /// `on_rows`. A result as long as the row cap was cut, and one refused
    /// for its size or its time is too big: the range is split and read
    /// again; a single bucket that is still too big fails the collection.
    async fn read(&self, t: &Table, mut on_rows: impl FnMut(&RawPage)) -> Result<usize, HttpError> {
        let waited = Waited::default();
        let mut todo: VecDeque<(u32, u32)> = self.plan(t, &waited).await?.into();
        let mut total = 0;
        while let Some((from, to)) = todo.pop_front() {
            let kql = (t.read)(self.buckets, from, to);
            let too_big = match self.query(&kql, &waited).await {
                Ok(page) if page.len() < self.row_cap => {
                    total += page.len();
                    on_rows(&page);
                    continue;
                }
                Ok(page) => format!("{} rows, as many as a result may hold", page.len()),
                Err(HttpError::Status {
                    status: 400,
                    message,
                    ..
                }) if too_much(&message) => message,
                Err(e) => return Err(e),
            };
            if from == to {
                return Err(HttpError::Cut {
                    endpoint: ENDPOINT.into(),
                    what: format!(
                        "{}: one bucket of devices ({from} of {}) is still too big to read ({too_big})",
                        t.collection, self.buckets
                    ),
                });
            }
            tracing::debug!(collection = t.collection, from, to, %too_big, "a hunting result was cut: split");
            let mid = from + (to - from) / 2;
            todo.push_front((mid + 1, to));
            todo.push_front((from, mid));
        }
        Ok(total)
    }

    /// Reads a table into its collection, each row through `ingest`
    /// (counted and sent to the graph, `Ctx::ingest`), then the
    /// collection's outcome kept: whether it was read whole.
    async fn collect(&self, t: &Table, mut ingest: impl FnMut(&Record<'_>, &mut Batch)) -> bool {
        let r = self
            .read(t, |page| {
                self.ctx.ingest(t.collection, &page.records(), &mut ingest)
            })
            .await;
        let read = r.is_ok();
        self.ctx.finish(t.collection, r);
        read
    }
}

/// A refusal that a smaller query avoids: the result's size, or the time
/// one query may run.
fn too_much(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("result size") || m.contains("timeout")
}

pub async fn run(ctx: &Ctx) {
    let policy = &ctx.options.hunting;
    let h = Hunter {
        ctx,
        pacer: Pacer::new(&policy.calls),
        row_cap: policy.row_cap,
        target: policy.target.unwrap_or(policy.row_cap / 2),
        buckets: BUCKETS.min((policy.row_cap / 4).max(2) as u32),
    };
    let machines = async {
        let mut seen = Vec::new();
        let read = h
            .collect(&machines(), |v, b| {
                if let Some(id) = ingest::machine(v, &ctx.tenant, b) {
                    seen.push(id.to_string());
                }
            })
            .await;
        read.then_some(seen)
    };
    let logons = async { h.collect(&logons(), |v, b| ingest::logon_event(v, b)).await };
    // The CVEs are those found on machines: read once the findings are.
    let findings = async {
        let mut exposed: HashMap<String, Exposure> = HashMap::new();
        let read = h
            .collect(&vulnerabilities(), |v, b| {
                if let Some((cve, severity)) = ingest::vulnerability(v, b) {
                    let e = exposed.entry(cve.to_string()).or_default();
                    e.machines += 1;
                    if e.severity.is_none() {
                        e.severity = severity.map(String::from);
                    }
                }
            })
            .await;
        if read {
            let r = cves(&h, &exposed).await;
            ctx.finish("vulnerabilities", r);
        } else {
            ctx.not_read(
                "vulnerabilities",
                "the machines' vulnerabilities could not be read",
            );
        }
    };
    let (machines, logons, ()) = tokio::join!(machines, logons, findings);
    // Every machine's logon users were read in this one pass, if both
    // halves of them were.
    if let (Some(machines), true) = (machines, logons) {
        let now = chrono::Utc::now().timestamp();
        ctx.send(
            "logon users",
            crate::ingest::Batch {
                read_at: machines.into_iter().map(|m| (m, now)).collect(),
                ..Default::default()
            },
        );
    }
}

/// A CVE as the findings know it: on how many machines, and how severe.
#[derive(Debug, Default)]
struct Exposure {
    machines: usize,
    severity: Option<String>,
}

/// The knowledge base's rows of the CVEs found, in queries of at most a
/// thousand ids (and fewer than the row cap, so a cut answer shows). A CVE
/// found on machines but missing from the knowledge base is kept with what
/// its findings say, and the source's notes say how many.
async fn cves(h: &Hunter<'_>, exposed: &HashMap<String, Exposure>) -> Result<usize, HttpError> {
    let mut ids: Vec<&String> = exposed.keys().collect();
    ids.sort();
    let waited = Waited::default();
    let per_query = CVES_PER_QUERY.min(h.row_cap.saturating_sub(1)).max(1);
    let mut found = std::collections::HashSet::new();
    for chunk in ids.chunks(per_query) {
        let list = chunk
            .iter()
            .map(|id| serde_json::Value::String(id.to_string()).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let kql = format!(
            "DeviceTvmSoftwareVulnerabilitiesKB | where CveId in ({list}) | project CveId, CvssScore, IsExploitAvailable, VulnerabilitySeverityLevel, PublishedDate, LastModifiedTime, VulnerabilityDescription"
        );
        let page = h.query(&kql, &waited).await?;
        if page.len() >= h.row_cap {
            return Err(HttpError::Cut {
                endpoint: ENDPOINT.into(),
                what: format!(
                    "vulnerabilities: {} rows for {} CVEs, as many as a result may hold",
                    page.len(),
                    chunk.len()
                ),
            });
        }
        h.ctx.ingest("vulnerabilities", &page.records(), |v, b| {
            let id = crate::ingest::text(v, "CveId");
            if let Some(id) = id {
                found.insert(id.to_string());
            }
            let n = id.and_then(|id| exposed.get(id)).map_or(0, |e| e.machines);
            ingest::cve(v, n, b)
        });
    }
    let missing: Vec<&String> = ids
        .iter()
        .copied()
        .filter(|id| !found.contains(id.as_str()))
        .collect();
    if !missing.is_empty() {
        let mut b = crate::ingest::Batch::default();
        for id in &missing {
            let e = &exposed[*id];
            ingest::cve_from_findings(id, e.severity.as_deref(), e.machines, &mut b);
        }
        h.ctx.send("vulnerabilities", b);
        let shown: Vec<&str> = missing.iter().take(5).map(|s| s.as_str()).collect();
        h.ctx.note(format!(
            "vulnerabilities: {} CVE{} found on machines {} no row in the knowledge base (DeviceTvmSoftwareVulnerabilitiesKB), so {} only what the findings say: {}{}",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            if missing.len() == 1 { "has" } else { "have" },
            if missing.len() == 1 { "it has" } else { "they have" },
            shown.join(", "),
            if missing.len() > shown.len() { ", …" } else { "" }
        ));
    }
    Ok(found.len() + missing.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_partition_by_device_and_name_documented_columns() {
        let t = machines();
        assert!((t.count)(BUCKETS).starts_with("DeviceInfo | where Timestamp > ago(30d)"));
        let q = (t.read)(BUCKETS, 3, 17);
        assert!(
            q.contains("| where hash(DeviceId, 4096) >= 3 and hash(DeviceId, 4096) <= 17"),
            "{q}"
        );
        assert!(
            q.contains("summarize arg_max(Timestamp, *) by DeviceId"),
            "{q}"
        );
        for column in ingest::MACHINE_FIELDS.iter().map(|(_, c)| c) {
            assert!(DEVICE_COLUMNS.contains(column), "{column} is not read");
        }
        assert!(DEVICE_COLUMNS.contains("LoggedOnUsers"));
        let v = (vulnerabilities().read)(BUCKETS, 0, 4095);
        assert!(
            v.contains("by DeviceId, CveId, VulnerabilitySeverityLevel"),
            "{v}"
        );
    }
}
