//! The advanced hunting tables of the simulated tenant — `DeviceInfo`,
//! `DeviceTvmSoftwareVulnerabilities`, `DeviceTvmSoftwareVulnerabilitiesKB`
//! and `DeviceLogonEvents` — generated row by row from the same facts the
//! Defender for Endpoint API renders (`render::machine`,
//! `machine_vulnerability_product`, `vulnerability`, `logon_user`), so a
//! client reads the same machines, findings, CVEs and logon users
//! whichever API it uses. Columns follow the schema pages on
//! learn.microsoft.com (`defender-xdr/advanced-hunting-<table>-table`);
//! docs/SIMULATED-TENANT.md says which fact fills which column.
//!
//! Nothing is stored per row: a row is (machine, index) or (machine,
//! CVE, product) and each column is computed when a query reads it.
//!
//! Time: the generator's facts are dated around `EPOCH` (its "now").
//! Events (`DeviceInfo` reports, logons) are moved forward by whole days
//! so that `EPOCH` falls on the day the server started, keeping each
//! event's age; a device last seen 3 days before `EPOCH` in the Defender
//! API was last reported 3 days ago here. Dates that are not events (a
//! CVE's publication) are not moved.
//!
//! Size: long because four tables' columns are each computed when read, from
//! the same facts; one file keeps the columns beside the schema they follow.

use std::sync::Arc;

use super::kql::value::TICKS_PER_SEC;
use super::kql::{Column, RowAccess, Table, Text, Type, Value};
use super::names::VULN_PRODUCTS;
use super::tenant::{EPOCH, FakeTenant, MODELS};
use tenx_kinds::EntityKind;

const DAY: i64 = 86_400;

/// Seconds added to event times for a server started at `now`: whole
/// days that bring `EPOCH` to that day.
pub fn shift_for(now: i64) -> i64 {
    (now - EPOCH).div_euclid(DAY) * DAY
}

/// splitmix64 of a few numbers: the per-row choices, fixed for a seed.
fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(c.wrapping_mul(0x94D0_49BB_1331_11EB))
        .wrapping_add(0x5DEE_CE66_D1CE_4E5B);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a machine's rows share, computed once.
struct MachineFacts {
    os_version: String,
    os_build: Option<i64>,
    revision: String,
    older_revision: String,
    device_type: &'static str,
    model: &'static str,
    vendor: &'static str,
    join_type: &'static str,
    client_version: &'static str,
    manual_tags: &'static str,
    /// `LoggedOnUsers` of the latest report: every logon user of the
    /// machine.
    logged_on: String,
    /// Of older reports: the first of them, or none.
    logged_on_older: String,
    /// Reports in `DeviceInfo` (the latest first).
    reports: u8,
    /// An older report on Windows 10 before the upgrade to Windows 11.
    upgraded: bool,
    initiating: &'static Initiating,
}

/// The process that records a logon on each platform.
struct Initiating {
    file: &'static str,
    folder: &'static str,
    account_domain: &'static str,
    account_name: &'static str,
    account_sid: &'static str,
    company: &'static str,
    product: &'static str,
    description: &'static str,
    sha1: &'static str,
    md5: &'static str,
    size: i64,
}

const LSASS: Initiating = Initiating {
    file: "lsass.exe",
    folder: "c:\\windows\\system32\\lsass.exe",
    account_domain: "nt authority",
    account_name: "system",
    account_sid: "S-1-5-18",
    company: "Microsoft Corporation",
    product: "Microsoft® Windows® Operating System",
    description: "Local Security Authority Process",
    sha1: "1a7a7e1a2c1c5a1d4d4c2a5e0b1f0f3e6a1e2c9d",
    md5: "3a6b9e5b0d1f1c2e4c7f9a8b6d5e4c3b",
    size: 85_432,
};
const LOGINWINDOW: Initiating = Initiating {
    file: "loginwindow",
    folder: "/System/Library/CoreServices/loginwindow.app/Contents/MacOS/loginwindow",
    account_domain: "",
    account_name: "root",
    account_sid: "",
    company: "Apple Inc.",
    product: "macOS",
    description: "",
    sha1: "9c1e5a2f7b3d4e6a8c0b1d2e3f4a5b6c7d8e9f0a",
    md5: "5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e",
    size: 1_310_720,
};
const SSHD: Initiating = Initiating {
    file: "sshd",
    folder: "/usr/sbin/sshd",
    account_domain: "",
    account_name: "root",
    account_sid: "",
    company: "",
    product: "",
    description: "",
    sha1: "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
    md5: "7d6c5b4a39281706f5e4d3c2b1a09f8e",
    size: 921_984,
};

/// The tables of one tenant: everything the rows share.
pub struct Hunting {
    /// Seconds added to an event's time (`EPOCH` becomes the start day).
    pub shift: i64,
    seed: u64,
    machines: Vec<MachineFacts>,
    /// (machine, CVE, product), as Defender's bulk listing has them.
    tvm_rows: Vec<(u32, u32, u8)>,
    /// Per CVE: `AffectedSoftware`.
    affected: Vec<Arc<serde_json::Value>>,
    /// Per CVE: `RecommendedSecurityUpdate` of a Microsoft product.
    update_names: Vec<String>,
    update_ids: Vec<String>,
    empty_tags: Arc<serde_json::Value>,
    /// Per CVE: left out of the knowledge base (`kb-missing=`), as a
    /// CVE Defender has just published can be.
    kb_missing: Vec<bool>,
    device_info: Vec<Column>,
    tvm: Vec<Column>,
    kb: Vec<Column>,
    logons: Vec<Column>,
}

fn cols(list: &[(&str, Type)]) -> Vec<Column> {
    list.iter().map(|(n, t)| Column::new(n, *t)).collect()
}

/// `[{"UserName": …, "DomainName": …, "Sid": …}]`, the element names of
/// `LoggedOnUsers` as queries read them (`LoggedOnUsers[0].UserName`,
/// `.DomainName`, `.Sid`).
fn logged_on_json(t: &FakeTenant, users: &[u32]) -> String {
    let list: Vec<serde_json::Value> = users
        .iter()
        .map(|&l| {
            let u = &t.logon_users[l as usize];
            serde_json::json!({"UserName": u.account_name, "DomainName": u.domain, "Sid": u.sid})
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Hunting {
    /// The tables of `t` as seen by a server started at `now` (Unix
    /// seconds).
    pub fn new(t: &FakeTenant, now: i64) -> Hunting {
        let shift = shift_for(now);
        let seed = t.params.seed;
        let machines = t
            .machines
            .iter()
            .enumerate()
            .map(|(mi, m)| {
                let parts: Vec<&str> = m.version.split('.').collect();
                let revision = parts.get(3).copied().unwrap_or("").to_string();
                let older_revision = revision
                    .parse::<i64>()
                    .map(|r| (r - 143).max(1).to_string())
                    .unwrap_or_default();
                let device = m.device.map(|d| &t.devices[d as usize]);
                let server = device.is_none_or(|d| d.kind() == EntityKind::Server);
                let (vendor, model) = match device {
                    Some(d) => {
                        let (_, vendor, model, _, _) = MODELS[d.model as usize];
                        (vendor, model)
                    }
                    None => ("Microsoft Corporation", "Virtual Machine"),
                };
                let windows = m.os_platform.starts_with("Windows");
                let r = mix(seed, mi as u64, 1);
                MachineFacts {
                    os_version: parts.iter().take(2).copied().collect::<Vec<_>>().join("."),
                    os_build: parts.get(2).and_then(|b| b.parse().ok()),
                    revision,
                    older_revision,
                    device_type: if server { "Server" } else { "Workstation" },
                    model,
                    vendor,
                    join_type: match (m.aad_device_id.is_some(), windows) {
                        (true, _) => "AAD Joined",
                        (false, true) => "Domain Joined",
                        (false, false) => "",
                    },
                    client_version: match m.os_platform {
                        "macOS" => "101.24092.0004",
                        "Linux" => "101.24082.0004",
                        _ => "10.8760.26100.3624",
                    },
                    manual_tags: if m.device.is_none() {
                        "[\"server\"]"
                    } else {
                        "[]"
                    },
                    logged_on: logged_on_json(t, &m.logons),
                    logged_on_older: logged_on_json(t, &m.logons[..m.logons.len().min(1)]),
                    reports: 3 + (r % 4) as u8,
                    upgraded: m.os_platform == "Windows11" && (r >> 8) % 3 == 0,
                    initiating: match m.os_platform {
                        "macOS" => &LOGINWINDOW,
                        "Linux" => &SSHD,
                        _ => &LSASS,
                    },
                }
            })
            .collect();
        let tvm_rows = t.machine_vulnerability_rows();
        let mut products: Vec<Vec<u8>> = t.cves.iter().map(|c| vec![c.product]).collect();
        for &(_, c, p) in &tvm_rows {
            let list = &mut products[c as usize];
            if !list.contains(&p) {
                list.push(p);
            }
        }
        let affected = products
            .iter()
            .map(|list| {
                Arc::new(serde_json::Value::Array(
                    list.iter()
                        .map(|&p| {
                            let (vendor, name, _) = VULN_PRODUCTS[p as usize];
                            serde_json::Value::String(format!("{vendor} {name}"))
                        })
                        .collect(),
                ))
            })
            .collect();
        let update_names = t
            .cves
            .iter()
            .map(|c| {
                let d = chrono::DateTime::from_timestamp(c.published, 0).unwrap_or_default();
                use chrono::Datelike;
                format!(
                    "{} {} Security Updates",
                    MONTHS[d.month0() as usize],
                    d.year()
                )
            })
            .collect();
        // As the Defender API's `fixingKbId`.
        let update_ids = (0..t.cves.len())
            .map(|c| format!("{}", 5_040_000 + c))
            .collect();
        use Type::*;
        Hunting {
            shift,
            seed,
            machines,
            tvm_rows,
            affected,
            update_names,
            update_ids,
            empty_tags: Arc::new(serde_json::json!([])),
            kb_missing: Vec::new(),
            device_info: cols(&[
                ("Timestamp", DateTime),
                ("DeviceId", String),
                ("DeviceName", String),
                ("ClientVersion", String),
                ("PublicIP", String),
                ("OSArchitecture", String),
                ("OSPlatform", String),
                ("OSBuild", Long),
                ("IsAzureADJoined", Bool),
                ("JoinType", String),
                ("AadDeviceId", String),
                ("LoggedOnUsers", String),
                ("RegistryDeviceTag", String),
                ("OSVersion", String),
                ("MachineGroup", String),
                ("ReportId", Long),
                ("OnboardingStatus", String),
                ("AdditionalFields", String),
                ("DeviceCategory", String),
                ("DeviceType", String),
                ("DeviceSubtype", String),
                ("Model", String),
                ("Vendor", String),
                ("OSDistribution", String),
                ("OSVersionInfo", String),
                ("MergedDeviceIds", String),
                ("MergedToDeviceId", String),
                ("IsInternetFacing", Bool),
                ("SensorHealthState", String),
                ("IsExcluded", Bool),
                ("ExclusionReason", String),
                ("ExposureLevel", String),
                ("AssetValue", String),
                ("DeviceManualTags", String),
                ("DeviceDynamicTags", String),
                ("ConnectivityType", String),
                ("HostDeviceId", String),
                ("AzureResourceId", String),
                ("AwsResourceName", String),
                ("GcpFullResourceName", String),
                ("HardwareUuid", String),
                ("CloudPlatforms", String),
                ("AzureVmId", String),
                ("AzureVmSubscriptionId", String),
                ("IsTransient", Bool),
                ("OsBuildRevision", String),
                ("MitigationStatus", String),
                ("Site", String),
                ("DiscoverySources", String),
                ("DeviceRoles", String),
                ("DlpInfo", String),
            ]),
            tvm: cols(&[
                ("DeviceId", String),
                ("DeviceName", String),
                ("OSPlatform", String),
                ("OSVersion", String),
                ("OSArchitecture", String),
                ("SoftwareVendor", String),
                ("SoftwareName", String),
                ("SoftwareVersion", String),
                ("CveId", String),
                ("VulnerabilitySeverityLevel", String),
                ("RecommendedSecurityUpdate", String),
                ("RecommendedSecurityUpdateId", String),
                ("CveTags", Dynamic),
            ]),
            // `CvssScore` is a string on the schema page, but queries in
            // the wild compare it with numbers (`where CvssScore >= 8.0`),
            // which only a real column allows: it is a real here.
            kb: cols(&[
                ("CveId", String),
                ("CvssScore", Real),
                ("IsExploitAvailable", Bool),
                ("VulnerabilitySeverityLevel", String),
                ("LastModifiedTime", DateTime),
                ("PublishedDate", DateTime),
                ("VulnerabilityDescription", String),
                ("AffectedSoftware", Dynamic),
            ]),
            logons: cols(&[
                ("Timestamp", DateTime),
                ("DeviceId", String),
                ("DeviceName", String),
                ("ActionType", String),
                ("LogonType", String),
                ("AccountDomain", String),
                ("AccountName", String),
                ("AccountSid", String),
                ("Protocol", String),
                ("FailureReason", String),
                ("IsLocalAdmin", Bool),
                ("LogonId", Long),
                ("RemoteDeviceName", String),
                ("RemoteIP", String),
                ("RemoteIPType", String),
                ("RemotePort", Int),
                ("InitiatingProcessAccountDomain", String),
                ("InitiatingProcessAccountName", String),
                ("InitiatingProcessAccountSid", String),
                ("InitiatingProcessAccountUpn", String),
                ("InitiatingProcessAccountObjectId", String),
                ("InitiatingProcessIntegrityLevel", String),
                ("InitiatingProcessTokenElevation", String),
                ("InitiatingProcessSHA1", String),
                ("InitiatingProcessSHA256", String),
                ("InitiatingProcessMD5", String),
                ("InitiatingProcessFileName", String),
                ("InitiatingProcessFileSize", Long),
                ("InitiatingProcessVersionInfoCompanyName", String),
                ("InitiatingProcessVersionInfoProductName", String),
                ("InitiatingProcessVersionInfoProductVersion", String),
                ("InitiatingProcessVersionInfoInternalFileName", String),
                ("InitiatingProcessVersionInfoOriginalFileName", String),
                ("InitiatingProcessVersionInfoFileDescription", String),
                ("InitiatingProcessId", Long),
                ("InitiatingProcessCommandLine", String),
                ("InitiatingProcessCreationTime", DateTime),
                ("InitiatingProcessFolderPath", String),
                ("InitiatingProcessParentId", Long),
                ("InitiatingProcessParentFileName", String),
                ("InitiatingProcessParentCreationTime", DateTime),
                ("ReportId", Long),
                ("AppGuardContainerId", String),
                ("AdditionalFields", String),
                ("InitiatingProcessSessionId", Long),
                ("IsInitiatingProcessRemoteSession", Bool),
                ("InitiatingProcessRemoteSessionDeviceName", String),
                ("InitiatingProcessRemoteSessionIP", String),
                ("InitiatingProcessUniqueId", String),
            ]),
        }
    }

    /// Leaves the first `n` CVEs that machines have (in the order of the
    /// findings) out of `DeviceTvmSoftwareVulnerabilitiesKB`.
    pub fn without_kb_rows(mut self, t: &FakeTenant, n: usize) -> Hunting {
        self.kb_missing = vec![false; t.cves.len()];
        let mut left = n;
        for &(_, c, _) in &self.tvm_rows {
            if left == 0 {
                break;
            }
            if let Some(m) = self.kb_missing.get_mut(c as usize) {
                if !*m {
                    *m = true;
                    left -= 1;
                }
            }
        }
        self
    }

    /// The four tables over `t`.
    pub fn tables<'a>(&'a self, t: &'a FakeTenant) -> [Box<dyn Table<'a> + 'a>; 4] {
        [
            Box::new(DeviceInfo { t, h: self }),
            Box::new(Tvm { t, h: self }),
            Box::new(Kb { t, h: self }),
            Box::new(LogonEvents { t, h: self }),
        ]
    }

    /// An event time: the generator's seconds, moved to the server's days,
    /// in ticks with a fraction (the service writes seven digits).
    fn ticks(&self, secs: i64, salt: u64) -> i64 {
        (secs + self.shift) * TICKS_PER_SEC + (salt % TICKS_PER_SEC as u64) as i64
    }

    /// The age of a report or event before `EPOCH`, kept out of the two
    /// days before the 30-day retention edge, so that whether a row is
    /// visible does not depend on the hour a test runs.
    fn clear_of_edge(age: i64) -> i64 {
        if (28 * DAY..30 * DAY).contains(&age) {
            age + 3 * DAY
        } else {
            age
        }
    }

    /// When report `r` of machine `m` was recorded (generator seconds).
    fn report_time(&self, t: &FakeTenant, m: usize, r: usize) -> i64 {
        let last = t.machines[m].last_seen;
        if r == 0 {
            return last;
        }
        let x = mix(self.seed, m as u64, 100 + r as u64);
        let back = r as i64 * 5 * DAY + (x % 3) as i64 * DAY + (x >> 8) as i64 % 3600;
        EPOCH - Self::clear_of_edge(EPOCH - last + back)
    }
}

// ---- DeviceInfo --------------------------------------------------------

struct DeviceInfo<'a> {
    t: &'a FakeTenant,
    h: &'a Hunting,
}

struct DeviceInfoRow<'a> {
    t: &'a FakeTenant,
    h: &'a Hunting,
    m: usize,
    r: usize,
}

impl<'a> Table<'a> for DeviceInfo<'a> {
    fn name(&self) -> &str {
        "DeviceInfo"
    }
    fn columns(&self) -> &[Column] {
        &self.h.device_info
    }
    fn scan(&self, visit: &mut dyn FnMut(&dyn RowAccess<'a>) -> bool) {
        for (m, f) in self.h.machines.iter().enumerate() {
            for r in 0..f.reports as usize {
                let row = DeviceInfoRow {
                    t: self.t,
                    h: self.h,
                    m,
                    r,
                };
                if !visit(&row) {
                    return;
                }
            }
        }
    }
}

impl<'a> RowAccess<'a> for DeviceInfoRow<'a> {
    fn cell(&self, col: usize) -> Value<'a> {
        let (t, h, m, r) = (self.t, self.h, self.m, self.r);
        let mach = &t.machines[m];
        let f = &h.machines[m];
        let older = r > 0;
        let x = mix(h.seed, m as u64, 200 + r as u64);
        // The oldest report of an upgraded machine is from Windows 10.
        let before_upgrade = f.upgraded && r + 1 == f.reports as usize;
        let s = Value::str;
        match col {
            0 => Value::DateTime(h.ticks(h.report_time(t, m, r), x)),
            1 => s(&mach.id),
            2 => s(&mach.host),
            3 => s(f.client_version),
            4 => s("203.0.113.17"),
            5 => s("64-bit"),
            6 => s(if before_upgrade {
                "Windows10"
            } else {
                mach.os_platform
            }),
            7 => match (before_upgrade, f.os_build) {
                (true, _) => Value::Long(19045),
                (false, Some(b)) => Value::Long(b),
                (false, None) => Value::Null,
            },
            8 => Value::Bool(mach.aad_device_id.is_some()),
            9 => s(f.join_type),
            10 => s(mach.aad_device_id.as_deref().unwrap_or("")),
            11 => s(if older && x % 2 == 0 {
                &f.logged_on_older
            } else {
                &f.logged_on
            }),
            13 => s(&f.os_version),
            14 => s("UnassignedGroup"),
            15 => Value::Long(((m as i64) << 4) + r as i64 + 1_000),
            16 => s("Onboarded"),
            18 => s("Endpoint"),
            19 => s(f.device_type),
            21 => s(f.model),
            22 => s(f.vendor),
            23 => s(if mach.os_platform == "Linux" {
                "Ubuntu"
            } else {
                ""
            }),
            27 | 29 | 44 => Value::Bool(false),
            28 => s(if older { "Active" } else { mach.health }),
            31 => {
                if older && (x >> 4) % 3 == 0 {
                    s(["Low", "Medium", "High"][(x >> 8) as usize % 3])
                } else {
                    s(&mach.exposure)
                }
            }
            32 => s("Normal"),
            33 => s(f.manual_tags),
            34 => s("[]"),
            35 => s("Standard"),
            45 => s(if before_upgrade {
                "5011"
            } else if older {
                &f.older_revision
            } else {
                &f.revision
            }),
            _ => Value::empty(),
        }
    }
}

// ---- DeviceTvmSoftwareVulnerabilities ----------------------------------

struct Tvm<'a> {
    t: &'a FakeTenant,
    h: &'a Hunting,
}

struct TvmRow<'a> {
    t: &'a FakeTenant,
    h: &'a Hunting,
    m: usize,
    c: usize,
    p: usize,
}

impl<'a> Table<'a> for Tvm<'a> {
    fn name(&self) -> &str {
        "DeviceTvmSoftwareVulnerabilities"
    }
    fn columns(&self) -> &[Column] {
        &self.h.tvm
    }
    fn scan(&self, visit: &mut dyn FnMut(&dyn RowAccess<'a>) -> bool) {
        for &(m, c, p) in &self.h.tvm_rows {
            let row = TvmRow {
                t: self.t,
                h: self.h,
                m: m as usize,
                c: c as usize,
                p: p as usize,
            };
            if !visit(&row) {
                return;
            }
        }
    }
}

impl<'a> RowAccess<'a> for TvmRow<'a> {
    fn cell(&self, col: usize) -> Value<'a> {
        let (t, h) = (self.t, self.h);
        let mach = &t.machines[self.m];
        let cve = &t.cves[self.c];
        let (vendor, name, version) = VULN_PRODUCTS[self.p];
        let microsoft = vendor == "microsoft";
        match col {
            0 => Value::str(&mach.id),
            1 => Value::str(&mach.host),
            2 => Value::str(mach.os_platform),
            3 => Value::str(&h.machines[self.m].os_version),
            4 => Value::str("x64"),
            5 => Value::str(vendor),
            6 => Value::str(name),
            7 => Value::str(version),
            8 => Value::str(&cve.id),
            9 => Value::str(cve.severity),
            10 => {
                if microsoft {
                    Value::str(&h.update_names[self.c])
                } else {
                    Value::Str(Text::A(format!("Update {name} to a later version").into()))
                }
            }
            11 => Value::str(if microsoft { &h.update_ids[self.c] } else { "" }),
            12 => Value::Dynamic(h.empty_tags.clone()),
            _ => Value::Null,
        }
    }
}

// ---- DeviceTvmSoftwareVulnerabilitiesKB --------------------------------

struct Kb<'a> {
    t: &'a FakeTenant,
    h: &'a Hunting,
}

struct KbRow<'a> {
    t: &'a FakeTenant,
    h: &'a Hunting,
    c: usize,
}

impl<'a> Table<'a> for Kb<'a> {
    fn name(&self) -> &str {
        "DeviceTvmSoftwareVulnerabilitiesKB"
    }
    fn columns(&self) -> &[Column] {
        &self.h.kb
    }
    fn scan(&self, visit: &mut dyn FnMut(&dyn RowAccess<'a>) -> bool) {
        for c in 0..self.t.cves.len() {
            if self.h.kb_missing.get(c).copied().unwrap_or(false) {
                continue;
            }
            if !visit(&KbRow {
                t: self.t,
                h: self.h,
                c,
            }) {
                return;
            }
        }
    }
}

impl<'a> RowAccess<'a> for KbRow<'a> {
    fn cell(&self, col: usize) -> Value<'a> {
        let cve = &self.t.cves[self.c];
        match col {
            0 => Value::str(&cve.id),
            1 => Value::Real(cve.cvss),
            2 => Value::Bool(cve.public_exploit),
            3 => Value::str(cve.severity),
            // The Defender API's `updatedOn` and `publishedOn`.
            4 => Value::DateTime((cve.published + 20 * DAY) * TICKS_PER_SEC),
            5 => Value::DateTime(cve.published * TICKS_PER_SEC),
            6 => Value::str(&cve.description),
            7 => Value::Dynamic(self.h.affected[self.c].clone()),
            _ => Value::Null,
        }
    }
}

// ---- DeviceLogonEvents -------------------------------------------------

struct LogonEvents<'a> {
    t: &'a FakeTenant,
    h: &'a Hunting,
}

#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Success,
    Failed,
}

struct LogonRow<'a> {
    t: &'a FakeTenant,
    h: &'a Hunting,
    m: usize,
    /// Index in the machine's `logons`.
    pos: usize,
    /// Event number of this (machine, account).
    k: usize,
    outcome: Outcome,
    /// Generator seconds.
    at: i64,
}

/// The events of one (machine, account): how many successes within the
/// last 30 days, failures, and events older than 30 days (which the
/// service no longer returns).
fn logon_plan(seed: u64, m: usize, pos: usize) -> (usize, usize, usize) {
    let x = mix(seed, m as u64, 500 + pos as u64);
    (
        3 + (x % 5) as usize,
        ((x >> 8) % 3) as usize,
        1 + ((x >> 16) % 2) as usize,
    )
}

impl<'a> Table<'a> for LogonEvents<'a> {
    fn name(&self) -> &str {
        "DeviceLogonEvents"
    }
    fn columns(&self) -> &[Column] {
        &self.h.logons
    }
    fn scan(&self, visit: &mut dyn FnMut(&dyn RowAccess<'a>) -> bool) {
        let (t, h) = (self.t, self.h);
        for (m, mach) in t.machines.iter().enumerate() {
            let last = mach.last_seen;
            // Events stay within 27 days before `EPOCH` (or beyond 30).
            let room = (27 * DAY - (EPOCH - last)).max(DAY);
            for pos in 0..mach.logons.len() {
                let (ok, failed, old) = logon_plan(h.seed, m, pos);
                for k in 0..ok + failed + old {
                    let x = mix(h.seed, ((m as u64) << 8) | pos as u64, k as u64);
                    let (outcome, at) = if k == 0 {
                        // The latest logon is when Defender last saw the
                        // machine (the logon user's `lastSeen`).
                        (Outcome::Success, last - (x % 3600) as i64)
                    } else if k < ok + failed {
                        let back = DAY + (x % room as u64) as i64;
                        let o = if k < ok {
                            Outcome::Success
                        } else {
                            Outcome::Failed
                        };
                        (o, last - back)
                    } else {
                        let age = 31 * DAY + (x % (29 * DAY as u64)) as i64;
                        (Outcome::Success, EPOCH - Hunting::clear_of_edge(age))
                    };
                    let row = LogonRow {
                        t,
                        h,
                        m,
                        pos,
                        k,
                        outcome,
                        at,
                    };
                    if !visit(&row) {
                        return;
                    }
                }
            }
        }
    }
}

impl<'a> RowAccess<'a> for LogonRow<'a> {
    fn cell(&self, col: usize) -> Value<'a> {
        let (t, h) = (self.t, self.h);
        let mach = &t.machines[self.m];
        let f = &h.machines[self.m];
        let li = mach.logons[self.pos] as usize;
        let user = &t.logon_users[li];
        let network = user.user.is_none();
        let ip = &f.initiating;
        let x = mix(
            h.seed,
            ((self.m as u64) << 8) | self.pos as u64,
            self.k as u64,
        );
        let s = Value::str;
        match col {
            0 => Value::DateTime(h.ticks(self.at, x >> 3)),
            1 => s(&mach.id),
            2 => s(&mach.host),
            3 => s(match self.outcome {
                Outcome::Success => "LogonSuccess",
                Outcome::Failed => "LogonFailed",
            }),
            4 => s(if network { "Network" } else { "Interactive" }),
            5 => s(&user.domain),
            6 => s(&user.account_name),
            7 => s(&user.sid),
            8 => s(if network { "NTLM" } else { "Negotiate" }),
            9 => s(if self.outcome == Outcome::Failed {
                "InvalidUserNameOrPassword"
            } else {
                ""
            }),
            10 => Value::Bool(network),
            11 => Value::Long((x >> 20) as i64 & 0xFF_FFFF),
            13 => {
                if network {
                    Value::Str(Text::A(
                        format!("10.{}.{}.{}", x % 255, (x >> 8) % 255, 1 + (x >> 16) % 253).into(),
                    ))
                } else {
                    s("")
                }
            }
            14 => s(if network { "Private" } else { "" }),
            15 => {
                if network {
                    Value::Int(49_152 + (x % 16_000) as i32)
                } else {
                    Value::Null
                }
            }
            16 => s(ip.account_domain),
            17 => s(ip.account_name),
            18 => s(ip.account_sid),
            21 => s(if ip.account_sid.is_empty() {
                ""
            } else {
                "System"
            }),
            22 => s(if ip.account_sid.is_empty() {
                ""
            } else {
                "TokenElevationTypeDefault"
            }),
            23 => s(ip.sha1),
            25 => s(ip.md5),
            26 => s(ip.file),
            27 => Value::Long(ip.size),
            28 => s(ip.company),
            29 => s(ip.product),
            33 => s(ip.description),
            34 => Value::Long(700 + (self.m as i64 % 500)),
            35 => s(ip.file),
            36 => Value::DateTime(h.ticks(mach.last_seen - 20 * DAY, x)),
            37 => s(ip.folder),
            38 => Value::Long(600 + (self.m as i64 % 100)),
            39 => s(if ip.account_sid.is_empty() {
                "launchd"
            } else {
                "wininit.exe"
            }),
            40 => Value::DateTime(h.ticks(mach.last_seen - 20 * DAY - 5, x)),
            41 => Value::Long(((self.m as i64) << 10) + ((self.pos as i64) << 5) + self.k as i64),
            43 => s("{}"),
            44 => Value::Long(0),
            45 => Value::Bool(false),
            _ => Value::empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kql::value::TICKS_PER_DAY;
    use crate::tenant::FakeParams;

    fn tenant() -> FakeTenant {
        FakeTenant::generate(FakeParams {
            users: 150,
            seed: 11,
            ..Default::default()
        })
    }

    fn scan_all<'a>(table: &dyn Table<'a>) -> Vec<Vec<Value<'a>>> {
        let n = table.columns().len();
        let mut out = Vec::new();
        table.scan(&mut |r| {
            out.push((0..n).map(|i| r.cell(i)).collect());
            true
        });
        out
    }

    fn ticks(v: &Value) -> i64 {
        match v {
            Value::DateTime(t) => *t,
            other => panic!("not a datetime: {other:?}"),
        }
    }

    #[test]
    fn the_latest_report_comes_first_and_is_the_machines_last_seen() {
        let t = tenant();
        let h = Hunting::new(&t, EPOCH + 40 * DAY + 3600);
        assert_eq!(h.shift, 40 * DAY);
        let tables = h.tables(&t);
        let rows = scan_all(tables[0].as_ref());
        assert_eq!(rows[0].len(), 51);
        let mut by_machine: std::collections::HashMap<String, Vec<i64>> = Default::default();
        for r in &rows {
            by_machine
                .entry(r[1].to_text())
                .or_default()
                .push(ticks(&r[0]));
        }
        assert_eq!(by_machine.len(), t.machines.len());
        for m in &t.machines {
            let times = &by_machine[&m.id];
            assert!((3..=6).contains(&times.len()));
            assert_eq!(times[0] / TICKS_PER_SEC, m.last_seen + h.shift);
            assert!(
                times[1..].iter().all(|&x| x < times[0]),
                "older reports are older"
            );
        }
    }

    #[test]
    fn no_event_sits_near_the_retention_edge() {
        let t = tenant();
        let h = Hunting::new(&t, EPOCH);
        let now = EPOCH * TICKS_PER_SEC;
        let tables = h.tables(&t);
        let edge = (28 * TICKS_PER_DAY)..(30 * TICKS_PER_DAY);
        let mut old = 0;
        for table in [&tables[0], &tables[3]] {
            for r in scan_all(table.as_ref()) {
                let age = now - ticks(&r[0]);
                assert!(!edge.contains(&age), "{age}");
                assert!(age >= 0, "no event in the future");
                if age >= 30 * TICKS_PER_DAY {
                    old += 1;
                }
            }
        }
        assert!(old > 0, "some rows are older than 30 days");
    }

    #[test]
    fn every_table_has_the_documented_columns() {
        let t = tenant();
        let h = Hunting::new(&t, EPOCH);
        let tables = h.tables(&t);
        let names: Vec<&str> = tables.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            [
                "DeviceInfo",
                "DeviceTvmSoftwareVulnerabilities",
                "DeviceTvmSoftwareVulnerabilitiesKB",
                "DeviceLogonEvents"
            ]
        );
        let has = |i: usize, c: &str| tables[i].columns().iter().any(|x| x.name == c);
        for c in [
            "LoggedOnUsers",
            "ExposureLevel",
            "MachineGroup",
            "OnboardingStatus",
            "SensorHealthState",
            "DeviceManualTags",
            "DeviceDynamicTags",
            "RegistryDeviceTag",
            "AadDeviceId",
            "JoinType",
            "Model",
            "Vendor",
            "DeviceCategory",
        ] {
            assert!(has(0, c), "{c}");
        }
        assert!(has(1, "RecommendedSecurityUpdateId") && has(1, "CveTags"));
        assert!(!has(1, "Timestamp"), "a snapshot table, no Timestamp");
        assert!(has(2, "CvssScore") && !has(2, "CvssVector"));
        assert!(has(3, "IsLocalAdmin") && has(3, "AccountSid"));
        // Every cell of every column can be read.
        for table in &tables {
            let n = table.columns().len();
            table.scan(&mut |r| {
                for i in 0..n {
                    let _ = r.cell(i);
                }
                false
            });
        }
        assert_eq!(scan_all(tables[2].as_ref()).len(), t.cves.len());
        assert_eq!(
            scan_all(tables[1].as_ref()).len(),
            t.machine_vulnerability_rows().len()
        );
    }
}
