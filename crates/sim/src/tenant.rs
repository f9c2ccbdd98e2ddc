//! The deterministic generator of a coherent tenant: who exists, what they
//! own, what fails, what is exposed. The shapes Microsoft's APIs answer with
//! are in `render.rs`; this file only decides the facts.
//!
//! Size: one generator, long because its draws must stay in one fixed order
//! (a tenant for a seed is the same in every version); split, that order
//! would be spread over modules. The device models table is most of the
//! rest.

use serde_json::{Value, json};

use super::names::*;
use super::rng::Rng;
use tenx_kinds::EntityKind;

/// What to generate. `users` scales everything; the rest overrides a size.
#[derive(Debug, Clone)]
pub struct FakeParams {
    pub seed: u64,
    pub users: usize,
    pub groups: Option<usize>,
    pub devices: Option<usize>,
    pub service_principals: Option<usize>,
    pub subscriptions: Option<usize>,
    pub resources: Option<usize>,
}

impl Default for FakeParams {
    fn default() -> Self {
        FakeParams {
            seed: 1,
            users: 200,
            groups: None,
            devices: None,
            service_principals: None,
            subscriptions: None,
            resources: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Windows,
    MacOs,
    Ios,
    Android,
    Linux,
}

impl Platform {
    pub fn operating_system(self) -> &'static str {
        match self {
            Platform::Windows => "Windows",
            Platform::MacOs => "macOS",
            Platform::Ios => "iOS",
            Platform::Android => "Android",
            Platform::Linux => "Linux",
        }
    }
    fn software_bit(self) -> u8 {
        match self {
            Platform::Windows => 1,
            Platform::MacOs => 2,
            Platform::Ios => 4,
            Platform::Android => 8,
            Platform::Linux => 16,
        }
    }
    pub fn has_defender(self) -> bool {
        matches!(self, Platform::Windows | Platform::MacOs | Platform::Linux)
    }
}

/// Device models: (platform, manufacturer, model, the kind a correct client
/// derives from them, weight).
pub const MODELS: &[(Platform, &str, &str, EntityKind, u32)] = &[
    (
        Platform::Windows,
        "Microsoft Corporation",
        "Surface Laptop 5",
        EntityKind::Laptop,
        12,
    ),
    (
        Platform::Windows,
        "Dell Inc.",
        "Latitude 7440",
        EntityKind::Laptop,
        14,
    ),
    (
        Platform::Windows,
        "LENOVO",
        "ThinkPad X1 Carbon Gen 11",
        EntityKind::Laptop,
        10,
    ),
    (
        Platform::Windows,
        "HP",
        "HP EliteBook 840 G10 Notebook PC",
        EntityKind::Laptop,
        10,
    ),
    (
        Platform::Windows,
        "Dell Inc.",
        "OptiPlex 7010",
        EntityKind::Desktop,
        6,
    ),
    (
        Platform::Windows,
        "LENOVO",
        "ThinkCentre M70q Gen 4",
        EntityKind::Desktop,
        4,
    ),
    (
        Platform::Windows,
        "HP",
        "HP EliteDesk 800 G9 Desktop Mini PC",
        EntityKind::Desktop,
        3,
    ),
    (
        Platform::Windows,
        "Dell Inc.",
        "Precision 5860 Tower",
        EntityKind::Workstation,
        2,
    ),
    (
        Platform::Windows,
        "HP",
        "HP Z4 G5 Workstation",
        EntityKind::Workstation,
        1,
    ),
    (
        Platform::Windows,
        "Microsoft Corporation",
        "Virtual Machine",
        EntityKind::Server,
        3,
    ),
    (Platform::Windows, "", "", EntityKind::Computer, 1),
    (
        Platform::MacOs,
        "Apple",
        "MacBook Pro (14-inch, 2023)",
        EntityKind::Laptop,
        8,
    ),
    (
        Platform::MacOs,
        "Apple",
        "MacBook Air (M2, 2022)",
        EntityKind::Laptop,
        6,
    ),
    (
        Platform::MacOs,
        "Apple",
        "iMac (24-inch, 2023)",
        EntityKind::Desktop,
        2,
    ),
    (
        Platform::MacOs,
        "Apple",
        "Mac mini (2023)",
        EntityKind::Desktop,
        1,
    ),
    (
        Platform::MacOs,
        "Apple",
        "Mac Studio (2023)",
        EntityKind::Workstation,
        1,
    ),
    (
        Platform::Ios,
        "Apple",
        "iPhone 15",
        EntityKind::Smartphone,
        10,
    ),
    (
        Platform::Ios,
        "Apple",
        "iPhone 14 Pro",
        EntityKind::Smartphone,
        6,
    ),
    (
        Platform::Ios,
        "Apple",
        "iPad Air (5th generation)",
        EntityKind::UserEndpoint,
        2,
    ),
    (
        Platform::Android,
        "samsung",
        "SM-S911B",
        EntityKind::Smartphone,
        6,
    ),
    (
        Platform::Android,
        "Google",
        "Pixel 8",
        EntityKind::Smartphone,
        5,
    ),
    (
        Platform::Android,
        "samsung",
        "Galaxy Tab S9",
        EntityKind::UserEndpoint,
        1,
    ),
    (
        Platform::Linux,
        "Dell Inc.",
        "XPS 13 9315",
        EntityKind::Laptop,
        2,
    ),
    (
        Platform::Linux,
        "LENOVO",
        "ThinkPad T14 Gen 4",
        EntityKind::Laptop,
        1,
    ),
    (
        Platform::Linux,
        "QEMU",
        "Virtual Machine",
        EntityKind::Server,
        1,
    ),
    (Platform::Linux, "System76", "", EntityKind::Computer, 1),
];

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub display: String,
    pub given: Option<String>,
    pub surname: Option<String>,
    pub upn: String,
    pub mail: Option<String>,
    pub job: Option<&'static str>,
    pub dept: Option<&'static str>,
    pub city: Option<usize>,
    pub enabled: bool,
    pub created: i64,
    pub mobile: Option<String>,
    pub employee_id: Option<String>,
    pub cost_center: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Member {
    User(u32),
    Group(u32),
    ServicePrincipal(u32),
    Contact(u32),
    Device(u32),
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub nickname: String,
    pub unified: bool,
    pub security: bool,
    pub dynamic: bool,
    pub created: i64,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub managed_identity: bool,
    pub enabled: bool,
    pub first_party: bool,
}

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub mail: String,
    pub company: Option<String>,
}

/// A device object in Entra ID (what device group members are).
#[derive(Debug, Clone)]
pub struct AadDevice {
    pub id: String,
    pub device_id: String,
    pub name: String,
    pub os: &'static str,
    pub os_version: String,
}

/// Graph's `complianceStatus` enum, the `status` of a compliance policy's
/// or a configuration's device status rows (deviceComplianceDeviceStatus,
/// deviceConfigurationDeviceStatus): unknown, notApplicable, compliant,
/// remediated, nonCompliant, error, conflict, notAssigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyStatus {
    Unknown,
    NotApplicable,
    Compliant,
    Remediated,
    NonCompliant,
    Error,
    Conflict,
    NotAssigned,
}

impl PolicyStatus {
    /// The `complianceStatus` spelling (deviceStatuses, policy states).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyStatus::Unknown => "unknown",
            PolicyStatus::NotApplicable => "notApplicable",
            PolicyStatus::Compliant => "compliant",
            PolicyStatus::Remediated => "remediated",
            PolicyStatus::NonCompliant => "nonCompliant",
            PolicyStatus::Error => "error",
            PolicyStatus::Conflict => "conflict",
            PolicyStatus::NotAssigned => "notAssigned",
        }
    }

    pub fn parse(s: &str) -> Option<PolicyStatus> {
        use PolicyStatus::*;
        [
            Unknown,
            NotApplicable,
            Compliant,
            Remediated,
            NonCompliant,
            Error,
            Conflict,
            NotAssigned,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// Noncompliant, error and conflict: an open noncompliance finding.
    /// Remediated was failing and is fixed; unknown has not reported.
    pub fn is_finding(self) -> bool {
        matches!(
            self,
            PolicyStatus::NonCompliant | PolicyStatus::Error | PolicyStatus::Conflict
        )
    }

    /// Whether the policy or configuration applies to the device: not for
    /// notApplicable (another platform, say) or notAssigned.
    pub fn is_assigned(self) -> bool {
        !matches!(
            self,
            PolicyStatus::NotApplicable | PolicyStatus::NotAssigned
        )
    }
}

#[derive(Debug, Clone)]
pub struct PolicyState {
    pub policy: u16,
    pub status: PolicyStatus,
    /// Indexes into the policy's settings.
    pub failing: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct ManagedDevice {
    pub id: String,
    pub name: String,
    pub user: Option<u32>,
    pub platform: Platform,
    pub model: u16,
    pub os_version: String,
    pub serial: String,
    pub aad_device_id: String,
    /// The `complianceState` spelling of managedDevice.
    pub compliance: &'static str,
    pub enrolled: i64,
    /// None: never synced (the API writes 0001-01-01).
    pub last_sync: Option<i64>,
    pub grace_expiry: Option<i64>,
    pub encrypted: bool,
    pub personal: bool,
    pub wifi_mac: String,
    pub imei: Option<String>,
    pub policy_states: Vec<PolicyState>,
    pub config_states: Vec<(u16, &'static str)>,
    pub apps: Vec<u16>,
    pub managed_apps: Vec<(u16, &'static str)>,
}

impl ManagedDevice {
    pub fn kind(&self) -> EntityKind {
        MODELS[self.model as usize].3
    }
}

#[derive(Debug, Clone)]
pub struct CompliancePolicy {
    pub id: String,
    pub name: String,
    pub odata_type: &'static str,
    pub platform: Platform,
    pub settings: &'static [(&'static str, &'static str)],
    pub created: i64,
    pub version: u32,
}

#[derive(Debug, Clone)]
pub struct Configuration {
    pub id: String,
    pub name: String,
    pub odata_type: &'static str,
    pub platform: Platform,
    pub created: i64,
    pub version: u32,
}

#[derive(Debug, Clone)]
pub struct DetectedApp {
    pub id: String,
    pub software: u16,
    pub version: &'static str,
    pub platform: &'static str,
    pub devices: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct MobileApp {
    pub id: String,
    pub name: &'static str,
    pub publisher: &'static str,
    pub odata_type: &'static str,
    pub created: i64,
    /// Devices it is installed on or pending for (index, installState).
    pub device_statuses: Vec<(u32, &'static str)>,
}

#[derive(Debug, Clone)]
pub struct Cve {
    pub id: String,
    pub severity: &'static str,
    pub cvss: f64,
    pub published: i64,
    pub description: String,
    pub public_exploit: bool,
    pub product: u8,
}

#[derive(Debug, Clone)]
pub struct LogonUser {
    pub account_name: String,
    pub domain: String,
    pub sid: String,
    pub user: Option<u32>,
    pub domain_admin: bool,
}

#[derive(Debug, Clone)]
pub struct Machine {
    pub id: String,
    pub device: Option<u32>,
    pub host: String,
    pub os_platform: &'static str,
    pub version: String,
    pub aad_device_id: Option<String>,
    pub risk: &'static str,
    pub exposure: String,
    pub health: &'static str,
    pub first_seen: i64,
    pub last_seen: i64,
    pub ip: String,
    pub vulns: Vec<u32>,
    /// A second vulnerable product for some of `vulns`: (CVE, index in
    /// `VULN_PRODUCTS`). Defender lists one row per (machine, software,
    /// CVE), so these pairs have two rows in both APIs.
    pub second_products: Vec<(u32, u8)>,
    pub logons: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub name: String,
    pub state: &'static str,
}

#[derive(Debug, Clone)]
pub struct ResourceGroup {
    pub sub: u16,
    pub name: String,
    pub location: &'static str,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub sub: u16,
    pub rg: u32,
    pub arm_type: &'static str,
    pub name: String,
    pub location: &'static str,
    pub kind: Option<&'static str>,
    pub sku: Option<Value>,
    pub tags: Option<Value>,
    pub properties: Value,
}

#[derive(Debug, Clone)]
pub struct RoleDefinition {
    pub guid: String,
    pub name: String,
    pub description: String,
    pub custom: bool,
    pub actions: &'static [&'static str],
}

#[derive(Debug, Clone)]
pub struct RoleAssignment {
    pub guid: String,
    pub scope: String,
    pub principal_id: String,
    pub principal_type: &'static str,
    pub role: u16,
    pub created: i64,
    /// Listed under every subscription (inherited from the tenant root group).
    pub inherited_everywhere: bool,
    /// The subscription whose listing shows it, when not inherited.
    pub sub: u16,
}

/// A whole simulated tenant.
#[derive(Debug, Clone)]
pub struct FakeTenant {
    pub params: FakeParams,
    pub tenant_id: String,
    pub domain: String,
    pub org_name: String,
    pub client_id: String,
    pub client_secret: String,
    /// The id of the client secret (what people paste by mistake).
    pub secret_id: String,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub service_principals: Vec<ServicePrincipal>,
    pub contacts: Vec<Contact>,
    pub aad_devices: Vec<AadDevice>,
    pub devices: Vec<ManagedDevice>,
    pub compliance_policies: Vec<CompliancePolicy>,
    pub configurations: Vec<Configuration>,
    pub detected_apps: Vec<DetectedApp>,
    pub mobile_apps: Vec<MobileApp>,
    pub cves: Vec<Cve>,
    pub logon_users: Vec<LogonUser>,
    pub machines: Vec<Machine>,
    pub subscriptions: Vec<Subscription>,
    pub resource_groups: Vec<ResourceGroup>,
    pub resources: Vec<Resource>,
    pub role_definitions: Vec<RoleDefinition>,
    pub role_assignments: Vec<RoleAssignment>,
}

/// 2026-11-01T00:00:00Z: "now" for generated timestamps, so that a seed
/// always gives the same bytes.
pub const EPOCH: i64 = 1_793_491_200;
const DAY: i64 = 86_400;

pub const LOCATIONS: &[&str] = &[
    "westeurope",
    "northeurope",
    "eastus",
    "eastus2",
    "uksouth",
    "swedencentral",
    "japaneast",
];

const WIN_SETTINGS: &[(&str, &str)] = &[
    (
        "Windows10CompliancePolicy.BitLockerEnabled",
        "Require BitLocker",
    ),
    (
        "Windows10CompliancePolicy.SecureBootEnabled",
        "Require Secure Boot to be enabled on the device",
    ),
    (
        "Windows10CompliancePolicy.OsMinimumVersion",
        "Minimum OS version",
    ),
    (
        "Windows10CompliancePolicy.DefenderEnabled",
        "Microsoft Defender Antimalware",
    ),
    (
        "Windows10CompliancePolicy.RtpEnabled",
        "Real-time protection",
    ),
    (
        "Windows10CompliancePolicy.PasswordRequired",
        "Require a password to unlock mobile devices",
    ),
    ("Windows10CompliancePolicy.FirewallEnabled", "Firewall"),
    (
        "Windows10CompliancePolicy.TpmRequired",
        "Trusted Platform Module (TPM)",
    ),
];
const MAC_SETTINGS: &[(&str, &str)] = &[
    (
        "MacOSCompliancePolicy.StorageRequireEncryption",
        "Require encryption of data storage on device",
    ),
    (
        "MacOSCompliancePolicy.OsMinimumVersion",
        "Minimum OS version",
    ),
    ("MacOSCompliancePolicy.FirewallEnabled", "Firewall"),
    (
        "MacOSCompliancePolicy.SystemIntegrityProtectionEnabled",
        "Require system integrity protection",
    ),
    (
        "MacOSCompliancePolicy.PasswordRequired",
        "Require a password to unlock devices",
    ),
];
const IOS_SETTINGS: &[(&str, &str)] = &[
    (
        "IosCompliancePolicy.PasscodeRequired",
        "Require a password to unlock mobile devices",
    ),
    (
        "IosCompliancePolicy.SecurityBlockJailbrokenDevices",
        "Jailbroken devices",
    ),
    ("IosCompliancePolicy.OsMinimumVersion", "Minimum OS version"),
    (
        "IosCompliancePolicy.PasscodeMinimumLength",
        "Minimum password length",
    ),
];
const ANDROID_SETTINGS: &[(&str, &str)] = &[
    (
        "AndroidWorkProfileCompliancePolicy.SecurityBlockJailbrokenDevices",
        "Rooted devices",
    ),
    (
        "AndroidWorkProfileCompliancePolicy.StorageRequireEncryption",
        "Require encryption of data storage on device",
    ),
    (
        "AndroidWorkProfileCompliancePolicy.OsMinimumVersion",
        "Minimum OS version",
    ),
    (
        "AndroidWorkProfileCompliancePolicy.MinAndroidSecurityPatchLevel",
        "Minimum security patch level",
    ),
    (
        "AndroidWorkProfileCompliancePolicy.PasswordRequired",
        "Require a password to unlock mobile devices",
    ),
];

/// (name, @odata.type, platform, settings)
type PolicySpec = (
    &'static str,
    &'static str,
    Platform,
    &'static [(&'static str, &'static str)],
);

pub const BUILTIN_ROLES: &[(&str, &str, &str, &[&str])] = &[
    (
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        &["*"],
    ),
    (
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
        &["*"],
    ),
    (
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        &["*/read"],
    ),
    (
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "User Access Administrator",
        "Lets you manage user access to Azure resources.",
        &["*/read", "Microsoft.Authorization/*"],
    ),
    (
        "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
        "Virtual Machine Contributor",
        "Create and manage virtual machines.",
        &["Microsoft.Compute/virtualMachines/*"],
    ),
    (
        "4d97b98b-1d4f-4787-a291-c67834d212e7",
        "Network Contributor",
        "Lets you manage networks, but not access to them.",
        &["Microsoft.Network/*"],
    ),
    (
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "Storage Blob Data Reader",
        "Read and list Azure Storage containers and blobs.",
        &["Microsoft.Storage/storageAccounts/blobServices/containers/read"],
    ),
    (
        "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets User",
        "Read secret contents.",
        &["Microsoft.KeyVault/vaults/secrets/getSecret/action"],
    ),
    (
        "39bc4728-0917-49c7-9d2c-d95423bc2eb4",
        "Security Reader",
        "View permissions for Microsoft Defender for Cloud.",
        &["Microsoft.Security/*/read"],
    ),
    (
        "43d0d8ad-25c7-4714-9337-8ba259a9fe05",
        "Monitoring Reader",
        "Can read all monitoring data.",
        &["*/read"],
    ),
];

impl FakeTenant {
    pub fn generate(params: FakeParams) -> FakeTenant {
        let root = Rng::new(params.seed);
        let mut r = root.fork(1);
        let org_words = [
            "Contoso",
            "Fabrikam",
            "Northwind",
            "Tailspin",
            "Woodgrove",
            "Litware",
            "Adatum",
            "Proseware",
        ];
        let org = *r.pick(&org_words);
        let org_name = format!(
            "{org} {}",
            r.pick(&["Ltd", "Inc.", "GmbH", "AB", "Group", "Holdings"])
        );
        let domain = format!("{}.onmicrosoft.com", org.to_lowercase());
        let mut t = FakeTenant {
            tenant_id: r.guid(),
            client_id: r.guid(),
            client_secret: format!("{}~{}", r.hex(3), r.hex(36)),
            secret_id: r.guid(),
            domain,
            org_name,
            params: params.clone(),
            users: vec![],
            groups: vec![],
            service_principals: vec![],
            contacts: vec![],
            aad_devices: vec![],
            devices: vec![],
            compliance_policies: vec![],
            configurations: vec![],
            detected_apps: vec![],
            mobile_apps: vec![],
            cves: vec![],
            logon_users: vec![],
            machines: vec![],
            subscriptions: vec![],
            resource_groups: vec![],
            resources: vec![],
            role_definitions: vec![],
            role_assignments: vec![],
        };
        t.gen_users(&mut root.fork(2));
        t.gen_service_principals(&mut root.fork(3));
        t.gen_policies(&mut root.fork(4));
        t.gen_devices(&mut root.fork(5));
        t.gen_groups(&mut root.fork(6));
        t.gen_apps(&mut root.fork(7));
        t.gen_defender(&mut root.fork(8));
        t.gen_azure(&mut root.fork(9));
        t.gen_second_products(&mut root.fork(10));
        t.gen_other_statuses(&mut root.fork(11));
        t
    }

    /// A second product with the same CVE on about one in seven (machine,
    /// CVE) pairs (Chrome and Edge share Chromium's CVEs). Its own stream,
    /// so the rest of the tenant is what it was for the same seed.
    fn gen_second_products(&mut self, r: &mut Rng) {
        let n = VULN_PRODUCTS.len();
        let cves = &self.cves;
        for m in &mut self.machines {
            for &c in &m.vulns {
                if r.chance(0.15) {
                    let own = cves[c as usize].product as usize;
                    let other = (own + 1 + r.below(n - 1)) % n;
                    m.second_products.push((c, other as u8));
                }
            }
        }
    }

    /// The rows of Defender's (machine, software, CVE) listing, in order:
    /// (machine, CVE, product).
    pub fn machine_vulnerability_rows(&self) -> Vec<(u32, u32, u8)> {
        let mut out = Vec::new();
        for (mi, m) in self.machines.iter().enumerate() {
            for &c in &m.vulns {
                out.push((mi as u32, c, self.cves[c as usize].product));
                for &(sc, p) in &m.second_products {
                    if sc == c {
                        out.push((mi as u32, c, p));
                    }
                }
            }
        }
        out
    }

    /// Status rows besides compliant and failing: a share of the passing
    /// (device, policy) and (device, configuration) pairs reports unknown,
    /// notApplicable, notAssigned or remediated, and some configurations
    /// conflict. A stream of its own, so the rest of a seed's tenant is
    /// what it was before these existed.
    fn gen_other_statuses(&mut self, r: &mut Rng) {
        use PolicyStatus::*;
        let other = |r: &mut Rng, with_conflict: bool| -> Option<PolicyStatus> {
            let roll = r.unit();
            let picks = [
                (0.015, Unknown),
                (0.030, NotApplicable),
                (0.040, NotAssigned),
                (0.060, Remediated),
                (0.070, Conflict),
            ];
            picks
                .iter()
                .find(|(p, s)| roll < *p && (with_conflict || *s != Conflict))
                .map(|(_, s)| *s)
        };
        for d in &mut self.devices {
            for st in &mut d.policy_states {
                if st.status == Compliant {
                    if let Some(s) = other(r, false) {
                        st.status = s;
                    }
                }
            }
            for (_, st) in &mut d.config_states {
                if *st == Compliant.as_str() {
                    if let Some(s) = other(r, true) {
                        *st = s.as_str();
                    }
                }
            }
        }
    }

    fn gen_users(&mut self, r: &mut Rng) {
        let n = self.params.users;
        let mut used = std::collections::HashSet::new();
        for i in 0..n {
            let (display, given, surname, mut ascii) = if r.chance(0.04) {
                let (d, s, g, a) = *r.pick(EAST_ASIAN_NAMES);
                (
                    d.to_string(),
                    Some(g.to_string()),
                    Some(s.to_string()),
                    a.to_string(),
                )
            } else {
                let (f, fa) = *r.pick(FIRST_NAMES);
                let (l, la) = *r.pick(LAST_NAMES);
                (
                    format!("{f} {l}"),
                    Some(f.to_string()),
                    Some(l.to_string()),
                    format!("{fa}.{la}"),
                )
            };
            if !used.insert(ascii.clone()) {
                ascii = format!("{ascii}{i}");
                used.insert(ascii.clone());
            }
            let upn = format!("{ascii}@{}", self.domain);
            let created = EPOCH - (r.range(30, 3000) as i64) * DAY - r.below(86_400) as i64;
            let service_account = i % 97 == 13;
            self.users.push(User {
                id: r.guid(),
                display: if service_account {
                    format!("svc-{}", ascii.replace('.', "-"))
                } else {
                    display
                },
                given: if service_account || r.chance(0.02) {
                    None
                } else {
                    given
                },
                surname: if service_account { None } else { surname },
                mail: if r.chance(0.93) {
                    Some(upn.clone())
                } else {
                    None
                },
                upn,
                job: if r.chance(0.85) {
                    Some(*r.pick(JOB_TITLES))
                } else {
                    None
                },
                dept: if r.chance(0.9) {
                    Some(*r.pick(DEPARTMENTS))
                } else {
                    None
                },
                city: if r.chance(0.8) {
                    Some(r.below(CITIES.len()))
                } else {
                    None
                },
                enabled: !r.chance(0.06),
                created,
                mobile: if r.chance(0.4) {
                    Some(format!("+1 425 555 {:04}", r.below(10_000)))
                } else {
                    None
                },
                employee_id: if r.chance(0.7) {
                    Some(format!("E{:06}", 100_000 + i))
                } else {
                    None
                },
                cost_center: if r.chance(0.3) {
                    Some(format!("CC-{}", r.range(100, 999)))
                } else {
                    None
                },
            });
        }
    }

    fn gen_service_principals(&mut self, r: &mut Rng) {
        let n = self
            .params
            .service_principals
            .unwrap_or((self.params.users / 50).max(6));
        for i in 0..n {
            let managed = i % 5 == 4;
            let base = SERVICE_APPS[i % SERVICE_APPS.len()];
            let name = if managed {
                format!(
                    "mi-{}-{}",
                    base.to_lowercase().replace(' ', "-"),
                    i / SERVICE_APPS.len()
                )
            } else if i < SERVICE_APPS.len() {
                base.to_string()
            } else {
                format!("{base} ({})", i / SERVICE_APPS.len() + 1)
            };
            self.service_principals.push(ServicePrincipal {
                id: r.guid(),
                app_id: r.guid(),
                name,
                managed_identity: managed,
                enabled: !r.chance(0.05),
                first_party: !managed && r.chance(0.2),
            });
        }
        for i in 0..(self.params.users / 200).max(2) {
            let (f, fa) = *r.pick(FIRST_NAMES);
            let (l, la) = *r.pick(LAST_NAMES);
            self.contacts.push(Contact {
                id: r.guid(),
                name: format!("{f} {l} (external)"),
                mail: format!("{fa}.{la}{i}@partner.example"),
                company: if r.chance(0.7) {
                    Some(
                        r.pick(&["Partner Co", "Vendor AB", "Agency GmbH"])
                            .to_string(),
                    )
                } else {
                    None
                },
            });
        }
    }

    fn gen_policies(&mut self, r: &mut Rng) {
        let specs: &[PolicySpec] = &[
            (
                "Windows 11 - Security baseline",
                "#microsoft.graph.windows10CompliancePolicy",
                Platform::Windows,
                WIN_SETTINGS,
            ),
            (
                "Windows - Defender required",
                "#microsoft.graph.windows10CompliancePolicy",
                Platform::Windows,
                &WIN_SETTINGS[3..7],
            ),
            (
                "macOS - Baseline",
                "#microsoft.graph.macOSCompliancePolicy",
                Platform::MacOs,
                MAC_SETTINGS,
            ),
            (
                "iOS - Corporate devices",
                "#microsoft.graph.iosCompliancePolicy",
                Platform::Ios,
                IOS_SETTINGS,
            ),
            (
                "Android Enterprise - Work profile",
                "#microsoft.graph.androidWorkProfileCompliancePolicy",
                Platform::Android,
                ANDROID_SETTINGS,
            ),
            (
                "Android - Minimum patch level",
                "#microsoft.graph.androidWorkProfileCompliancePolicy",
                Platform::Android,
                &ANDROID_SETTINGS[2..4],
            ),
        ];
        for (name, ty, platform, settings) in specs {
            self.compliance_policies.push(CompliancePolicy {
                id: r.guid(),
                name: name.to_string(),
                odata_type: ty,
                platform: *platform,
                settings,
                created: EPOCH - r.range(100, 900) as i64 * DAY,
                version: r.range(1, 12) as u32,
            });
        }
        let configs: &[(&str, &str, Platform)] = &[
            (
                "Windows - Device restrictions",
                "#microsoft.graph.windows10GeneralConfiguration",
                Platform::Windows,
            ),
            (
                "Windows - Endpoint protection",
                "#microsoft.graph.windows10EndpointProtectionConfiguration",
                Platform::Windows,
            ),
            (
                "Windows Update ring - Broad",
                "#microsoft.graph.windowsUpdateForBusinessConfiguration",
                Platform::Windows,
            ),
            (
                "macOS - Restrictions",
                "#microsoft.graph.macOSGeneralDeviceConfiguration",
                Platform::MacOs,
            ),
            (
                "iOS - Restrictions",
                "#microsoft.graph.iosGeneralDeviceConfiguration",
                Platform::Ios,
            ),
            (
                "iOS - Wi-Fi Corp",
                "#microsoft.graph.iosWiFiConfiguration",
                Platform::Ios,
            ),
            (
                "Android - Work profile restrictions",
                "#microsoft.graph.androidWorkProfileGeneralDeviceConfiguration",
                Platform::Android,
            ),
            (
                "Windows - Wi-Fi Corp",
                "#microsoft.graph.windowsWifiConfiguration",
                Platform::Windows,
            ),
        ];
        for (name, ty, platform) in configs {
            self.configurations.push(Configuration {
                id: r.guid(),
                name: name.to_string(),
                odata_type: ty,
                platform: *platform,
                created: EPOCH - r.range(100, 900) as i64 * DAY,
                version: r.range(1, 9) as u32,
            });
        }
    }

    fn gen_devices(&mut self, r: &mut Rng) {
        let n = self.params.devices.unwrap_or(self.params.users * 6 / 5);
        let total_weight: u32 = MODELS.iter().map(|m| m.4).sum();
        let platform_weight =
            |p: Platform| -> u32 { MODELS.iter().filter(|m| m.0 == p).map(|m| m.4).sum() };
        let _ = platform_weight;
        let mut names_used = std::collections::HashSet::new();
        for i in 0..n {
            let mut w = r.below(total_weight as usize) as u32;
            let mut model = 0;
            for (mi, m) in MODELS.iter().enumerate() {
                if w < m.4 {
                    model = mi;
                    break;
                }
                w -= m.4;
            }
            let (platform, _, model_name, kind, _) = MODELS[model];
            // Kiosks, shared and server devices have no primary user.
            let user = if kind == EntityKind::Server || self.users.is_empty() || r.chance(0.05) {
                None
            } else {
                Some(r.below(self.users.len()) as u32)
            };
            let prefix = match (platform, kind) {
                (_, EntityKind::Server) => "SRV",
                (Platform::Windows, EntityKind::Laptop) => "LAPTOP",
                (Platform::Windows, _) => "DESKTOP",
                (Platform::MacOs, _) => "MAC",
                (Platform::Ios, _) if model_name.starts_with("iPad") => "iPad",
                (Platform::Ios, _) => "iPhone",
                (Platform::Android, _) => "Android",
                (Platform::Linux, _) => "linux",
            };
            let mut name = format!("{prefix}-{}", r.hex(6).to_uppercase());
            if !names_used.insert(name.clone()) {
                name = format!("{name}-{i}");
            }
            let os_version = match platform {
                Platform::Windows if kind == EntityKind::Server => "10.0.20348.2762".to_string(),
                Platform::Windows => r
                    .pick(&[
                        "10.0.22631.4317",
                        "10.0.22631.4460",
                        "10.0.26100.2314",
                        "10.0.19045.5011",
                    ])
                    .to_string(),
                Platform::MacOs => r.pick(&["14.6.1", "15.0.1", "15.1", "13.7"]).to_string(),
                Platform::Ios => r.pick(&["17.7", "18.0.1", "18.1"]).to_string(),
                Platform::Android => r.pick(&["13", "14", "15"]).to_string(),
                Platform::Linux => r.pick(&["22.04", "24.04", "9.4"]).to_string(),
            };
            let policies: Vec<u16> = (0..self.compliance_policies.len())
                .filter(|&p| self.compliance_policies[p].platform == platform)
                .map(|p| p as u16)
                .collect();
            let mut policy_states: Vec<PolicyState> = policies
                .iter()
                .map(|&p| PolicyState {
                    policy: p,
                    status: PolicyStatus::Compliant,
                    failing: vec![],
                })
                .collect();
            let mut compliance = if policies.is_empty() {
                "unknown"
            } else {
                "compliant"
            };
            let mut grace_expiry = None;
            // About 15% of all devices fail one or more policies.
            if !policies.is_empty() && r.chance(0.15 * 1.25) {
                let failing_policies = if policy_states.len() > 1 && r.chance(0.3) {
                    2
                } else {
                    1
                };
                let start = r.below(policy_states.len());
                let roll = r.unit();
                let status = if roll < 0.07 {
                    PolicyStatus::Error
                } else if roll < 0.11 {
                    PolicyStatus::Conflict
                } else {
                    PolicyStatus::NonCompliant
                };
                for k in 0..failing_policies {
                    let idx = (start + k) % policy_states.len();
                    let st = &mut policy_states[idx];
                    let nsettings = self.compliance_policies[st.policy as usize].settings.len();
                    let count = r.range(1, 3.min(nsettings));
                    let first = r.skewed(nsettings);
                    st.failing = (0..count)
                        .map(|j| ((first + j) % nsettings) as u8)
                        .collect();
                    st.status = if k == 0 {
                        status
                    } else {
                        PolicyStatus::NonCompliant
                    };
                }
                compliance = match status {
                    PolicyStatus::Error => "error",
                    PolicyStatus::Conflict => "conflict",
                    _ if r.chance(0.2) => {
                        grace_expiry = Some(EPOCH + r.range(1, 7) as i64 * DAY);
                        "inGracePeriod"
                    }
                    _ => "noncompliant",
                };
            }
            let config_states = self
                .configurations
                .iter()
                .enumerate()
                .filter(|(_, c)| c.platform == platform)
                .map(|(ci, _)| {
                    (
                        ci as u16,
                        if r.chance(0.04) { "error" } else { "compliant" },
                    )
                })
                .collect();
            let enrolled = EPOCH - r.range(2, 1000) as i64 * DAY;
            let last_sync = if r.chance(0.01) {
                None
            } else {
                Some(EPOCH - r.below(30 * 86_400) as i64)
            };
            self.devices.push(ManagedDevice {
                id: r.guid(),
                name,
                user,
                platform,
                model: model as u16,
                os_version,
                serial: r.hex(10).to_uppercase(),
                aad_device_id: r.guid(),
                compliance,
                enrolled,
                last_sync,
                grace_expiry,
                encrypted: r.chance(0.9),
                personal: matches!(platform, Platform::Ios | Platform::Android) && r.chance(0.3),
                wifi_mac: r.hex(12).to_uppercase(),
                imei: if matches!(platform, Platform::Ios | Platform::Android) {
                    Some(format!("35{:013}", r.below(10_000_000_000_000)))
                } else {
                    None
                },
                policy_states,
                config_states,
                apps: vec![],
                managed_apps: vec![],
            });
        }
        // Entra device objects for a share of devices: they appear as members
        // of device groups.
        for (i, d) in self.devices.iter().enumerate() {
            if i % 8 == 0 {
                self.aad_devices.push(AadDevice {
                    id: r.guid(),
                    device_id: d.aad_device_id.clone(),
                    name: d.name.clone(),
                    os: d.platform.operating_system(),
                    os_version: d.os_version.clone(),
                });
            }
        }
    }

    fn gen_groups(&mut self, r: &mut Rng) {
        let n = self
            .params
            .groups
            .unwrap_or((self.params.users / 25).max(4));
        let users = self.users.len();
        for i in 0..n {
            let topic = GROUP_TOPICS[i % GROUP_TOPICS.len()];
            let name = if i < GROUP_TOPICS.len() {
                topic.to_string()
            } else {
                format!("{topic} {}", i / GROUP_TOPICS.len() + 1)
            };
            let unified = r.chance(0.35);
            let dynamic = r.chance(0.1);
            let mut members = Vec::new();
            if users > 0 {
                let size = if i == 0 {
                    users.min(5000)
                } else {
                    1 + r.skewed(60.min(users)) + r.below(8)
                };
                let start = r.below(users);
                let step = 1 + r.below(7);
                let mut seen = std::collections::HashSet::new();
                for k in 0..size.min(users) {
                    let u = ((start + k * step) % users) as u32;
                    if seen.insert(u) {
                        members.push(Member::User(u));
                    }
                }
            }
            self.groups.push(Group {
                id: r.guid(),
                nickname: name
                    .to_lowercase()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect(),
                description: if r.chance(0.6) {
                    Some(format!("Members of {name}"))
                } else {
                    None
                },
                name,
                unified,
                security: !unified || r.chance(0.2),
                dynamic,
                created: EPOCH - r.range(10, 2000) as i64 * DAY,
                members,
            });
        }
        // Nested groups: a group only ever contains groups created after it,
        // so nesting has no cycles.
        for i in 0..n {
            if i + 1 < n && r.chance(0.3) {
                let child = r.range(i + 1, n - 1) as u32;
                self.groups[i].members.push(Member::Group(child));
            }
        }
        for (si, _) in self.service_principals.iter().enumerate() {
            if si % 3 == 0 {
                let g = r.below(n);
                self.groups[g]
                    .members
                    .push(Member::ServicePrincipal(si as u32));
            }
        }
        for ci in 0..self.contacts.len() {
            let g = r.below(n);
            self.groups[g].members.push(Member::Contact(ci as u32));
        }
        // Device groups hold every Entra device object.
        let device_groups = (n / 10).max(1);
        for di in 0..self.aad_devices.len() {
            let g = n - 1 - (di % device_groups);
            self.groups[g].members.push(Member::Device(di as u32));
        }
    }

    fn gen_apps(&mut self, r: &mut Rng) {
        let platforms = [
            ("windows", Platform::Windows),
            ("macOS", Platform::MacOs),
            ("ios", Platform::Ios),
            ("androidOSP", Platform::Android),
            ("linux", Platform::Linux),
        ];
        let mut index = std::collections::HashMap::new();
        for (si, (_, _, versions, mask)) in SOFTWARE.iter().enumerate() {
            for v in versions.iter() {
                for (pname, p) in platforms {
                    if mask & p.software_bit() != 0 {
                        index.insert((si, *v, pname), self.detected_apps.len());
                        self.detected_apps.push(DetectedApp {
                            id: format!("{}{}", r.hex(44), "0000"),
                            software: si as u16,
                            version: v,
                            platform: pname,
                            devices: vec![],
                        });
                    }
                }
            }
        }
        let managed: &[(&str, &str, &str)] = &[
            (
                "Microsoft Teams",
                "Microsoft Corporation",
                "#microsoft.graph.win32LobApp",
            ),
            (
                "Google Chrome",
                "Google LLC",
                "#microsoft.graph.win32LobApp",
            ),
            (
                "Zoom Workplace",
                "Zoom Video Communications, Inc.",
                "#microsoft.graph.macOSDmgApp",
            ),
            ("Slack", "Slack Technologies", "#microsoft.graph.winGetApp"),
            (
                "Outlook",
                "Microsoft Corporation",
                "#microsoft.graph.iosStoreApp",
            ),
            (
                "Authenticator",
                "Microsoft Corporation",
                "#microsoft.graph.managedAndroidStoreApp",
            ),
            (
                "Company Portal",
                "Microsoft Corporation",
                "#microsoft.graph.winGetApp",
            ),
            (
                "Microsoft 365 Apps for enterprise",
                "Microsoft Corporation",
                "#microsoft.graph.officeSuiteApp",
            ),
            (
                "Contoso Expenses",
                "Contoso IT",
                "#microsoft.graph.windowsMobileMSI",
            ),
            ("Field Service", "Contoso IT", "#microsoft.graph.iosLobApp"),
            (
                "Visual Studio Code",
                "Microsoft Corporation",
                "#microsoft.graph.winGetApp",
            ),
            (
                "Microsoft Edge",
                "Microsoft Corporation",
                "#microsoft.graph.windowsMicrosoftEdgeApp",
            ),
        ];
        for (name, publisher, ty) in managed {
            self.mobile_apps.push(MobileApp {
                id: r.guid(),
                name,
                publisher,
                odata_type: ty,
                created: EPOCH - r.range(30, 700) as i64 * DAY,
                device_statuses: vec![],
            });
        }
        for di in 0..self.devices.len() {
            let platform = self.devices[di].platform;
            let pname = platforms
                .iter()
                .find(|(_, p)| *p == platform)
                .map(|(n, _)| *n)
                .unwrap_or("windows");
            let count = r.range(2, 6);
            let mut apps = Vec::new();
            for _ in 0..count {
                let si = r.skewed(SOFTWARE.len());
                let (_, _, versions, mask) = SOFTWARE[si];
                if mask & platform.software_bit() == 0 {
                    continue;
                }
                let v = *r.pick(versions);
                if let Some(&ai) = index.get(&(si, v, pname)) {
                    if !apps.contains(&(ai as u16)) {
                        apps.push(ai as u16);
                        self.detected_apps[ai].devices.push(di as u32);
                    }
                }
            }
            self.devices[di].apps = apps;
            if r.chance(0.6) {
                let ma = r.below(self.mobile_apps.len());
                let state = *r.pick(&[
                    "installed",
                    "installed",
                    "installed",
                    "failed",
                    "notInstalled",
                    "pendingInstall",
                ]);
                self.devices[di].managed_apps.push((ma as u16, state));
                self.mobile_apps[ma]
                    .device_statuses
                    .push((di as u32, state));
            }
        }
    }

    fn gen_defender(&mut self, r: &mut Rng) {
        let ncve = (40 + self.params.users / 25).min(3000);
        let mut years = [2021, 2022, 2023, 2024, 2024, 2025, 2025, 2026]
            .iter()
            .cycle();
        let mut used = std::collections::HashSet::new();
        for _ in 0..ncve {
            let year = *years.next().unwrap_or(&2025);
            let mut id = format!("CVE-{year}-{}", r.range(1000, 52000));
            while !used.insert(id.clone()) {
                id = format!("CVE-{year}-{}", r.range(1000, 52000));
            }
            let cvss = (r.range(20, 100) as f64) / 10.0;
            let severity = if cvss >= 9.0 {
                "Critical"
            } else if cvss >= 7.0 {
                "High"
            } else if cvss >= 4.0 {
                "Medium"
            } else {
                "Low"
            };
            let product = r.below(VULN_PRODUCTS.len()) as u8;
            self.cves.push(Cve {
                description: format!(
                    "{} vulnerability in {}",
                    r.pick(CVE_WORDS),
                    VULN_PRODUCTS[product as usize].1
                ),
                id,
                severity,
                cvss,
                published: EPOCH - r.range(5, 1500) as i64 * DAY,
                public_exploit: r.chance(0.15),
                product,
            });
        }
        let domain_short = self
            .domain
            .split('.')
            .next()
            .unwrap_or("corp")
            .to_uppercase();
        let mut logon_index: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        let local_admin = self.logon_users.len() as u32;
        self.logon_users.push(LogonUser {
            account_name: "administrator".into(),
            domain: "WORKGROUP".into(),
            sid: format!("S-1-5-21-{}-500", r.range(1_000_000, 9_999_999)),
            user: None,
            domain_admin: false,
        });
        let mut add_machine = |t: &mut FakeTenant, r: &mut Rng, device: Option<u32>| {
            let (host, os_platform, version, aad, owner) = match device {
                Some(di) => {
                    let d = &t.devices[di as usize];
                    let os = match (d.platform, d.kind()) {
                        (Platform::Windows, EntityKind::Server) => "WindowsServer2022",
                        (Platform::Windows, _) if d.os_version.starts_with("10.0.19") => {
                            "Windows10"
                        }
                        (Platform::Windows, _) => "Windows11",
                        (Platform::MacOs, _) => "macOS",
                        _ => "Linux",
                    };
                    // Most machines carry the Entra device id; some only the host name.
                    let aad = if r.chance(0.93) {
                        Some(d.aad_device_id.clone())
                    } else {
                        None
                    };
                    let host = if d.platform == Platform::Windows && r.chance(0.5) {
                        format!(
                            "{}.{}",
                            d.name.to_lowercase(),
                            t.domain.replace(".onmicrosoft.com", ".local")
                        )
                    } else {
                        d.name.to_lowercase()
                    };
                    (host, os, d.os_version.clone(), aad, d.user)
                }
                None => (
                    format!("srv-{}", r.hex(5)),
                    *r.pick(&["WindowsServer2019", "WindowsServer2022", "Linux"]),
                    "10.0.17763.6414".to_string(),
                    None,
                    None,
                ),
            };
            let nv = if r.chance(0.2) { 0 } else { r.range(1, 8) };
            let mut vulns = Vec::new();
            for _ in 0..nv {
                let c = r.skewed(t.cves.len()) as u32;
                if !vulns.contains(&c) {
                    vulns.push(c);
                }
            }
            let mut logons = Vec::new();
            if let Some(u) = owner {
                let li = *logon_index.entry(u).or_insert_with(|| {
                    let user = &t.users[u as usize];
                    t.logon_users.push(LogonUser {
                        account_name: user.upn.split('@').next().unwrap_or("").to_string(),
                        domain: domain_short.clone(),
                        sid: format!(
                            "S-1-12-1-{}-{}",
                            r.range(1_000_000_000, 4_000_000_000),
                            r.range(1_000_000, 9_999_999)
                        ),
                        user: Some(u),
                        domain_admin: false,
                    });
                    (t.logon_users.len() - 1) as u32
                });
                logons.push(li);
            }
            if r.chance(0.15) {
                logons.push(local_admin);
            }
            let risk = *r.pick(&[
                "None",
                "Informational",
                "Low",
                "Medium",
                "High",
                "Low",
                "Medium",
            ]);
            let exposure = r
                .pick(&["Low", "Medium", "High", "Medium", "None"])
                .to_string();
            let exposure = if r.chance(0.05) {
                exposure.to_lowercase()
            } else {
                exposure
            };
            let last_seen = EPOCH - r.below(14 * 86_400) as i64;
            t.machines.push(Machine {
                id: r.hex(40),
                device,
                host,
                os_platform,
                version,
                aad_device_id: aad,
                risk,
                exposure,
                health: if r.chance(0.9) { "Active" } else { "Inactive" },
                first_seen: last_seen - r.range(10, 900) as i64 * DAY,
                last_seen,
                ip: format!("10.{}.{}.{}", r.below(255), r.below(255), r.range(1, 254)),
                vulns,
                second_products: Vec::new(),
                logons,
            });
        };
        for di in 0..self.devices.len() {
            if self.devices[di].platform.has_defender() && r.chance(0.9) {
                add_machine(self, r, Some(di as u32));
            }
        }
        // Servers onboarded to Defender without Intune.
        for _ in 0..(self.params.users / 40).max(1) {
            add_machine(self, r, None);
        }
    }

    fn gen_azure(&mut self, r: &mut Rng) {
        let nsubs = self
            .params
            .subscriptions
            .unwrap_or((2 + self.params.users / 10_000).min(8));
        let sub_names = [
            "Production",
            "Development",
            "Shared Services",
            "Sandbox",
            "Data Platform",
            "Identity",
            "Connectivity",
            "Management",
        ];
        for i in 0..nsubs {
            self.subscriptions.push(Subscription {
                id: r.guid(),
                name: if i < sub_names.len() {
                    sub_names[i].to_string()
                } else {
                    format!("Workload {i}")
                },
                state: if i == nsubs - 1 && nsubs > 2 {
                    "Disabled"
                } else {
                    "Enabled"
                },
            });
        }
        let rgs_per_sub = (3 + self.params.users / 2000).min(60);
        let rg_words = [
            "app", "data", "net", "shared", "web", "ml", "identity", "monitor", "backup", "iot",
        ];
        for s in 0..nsubs {
            for k in 0..rgs_per_sub {
                let location = *r.pick(LOCATIONS);
                self.resource_groups.push(ResourceGroup {
                    sub: s as u16,
                    name: format!("rg-{}-{}-{k:02}", rg_words[k % rg_words.len()], location),
                    location,
                });
            }
        }
        let nres = self
            .params
            .resources
            .unwrap_or((self.params.users / 5).max(30));
        // Resources come in small deployments: a VM with its NIC, disk, public
        // IP and NSG; a VNet with subnets; plus single PaaS resources.
        let mut made = 0;
        let mut serial = 0usize;
        while made < nres && !self.resource_groups.is_empty() {
            let rg = r.below(self.resource_groups.len()) as u32;
            let (sub, location) = {
                let g = &self.resource_groups[rg as usize];
                (g.sub, g.location)
            };
            serial += 1;
            let roll = r.below(10);
            if roll < 4 {
                made += self.gen_vm_deployment(r, sub, rg, location, serial);
            } else if roll < 5 {
                made += self.gen_vnet(r, sub, rg, location, serial);
            } else {
                let singles: &[(&str, &str, Option<&str>)] = &[
                    ("Microsoft.Storage/storageAccounts", "st", Some("StorageV2")),
                    ("Microsoft.KeyVault/vaults", "kv", None),
                    ("Microsoft.Sql/servers", "sql", Some("v12.0")),
                    ("Microsoft.Web/sites", "app", Some("app,linux")),
                    ("Microsoft.Web/sites", "func", Some("functionapp")),
                    ("Microsoft.Web/serverFarms", "asp", Some("linux")),
                    ("Microsoft.ContainerService/managedClusters", "aks", None),
                    ("Microsoft.ContainerRegistry/registries", "cr", None),
                    (
                        "Microsoft.DocumentDB/databaseAccounts",
                        "cosmos",
                        Some("GlobalDocumentDB"),
                    ),
                    ("Microsoft.Cache/Redis", "redis", None),
                    ("Microsoft.DBforPostgreSQL/flexibleServers", "psql", None),
                    ("Microsoft.Network/loadBalancers", "lb", None),
                    ("Microsoft.Network/privateDnsZones", "", None),
                    ("Microsoft.ServiceBus/namespaces", "sb", None),
                    ("Microsoft.Insights/components", "appi", Some("web")),
                    ("Microsoft.OperationalInsights/workspaces", "log", None),
                    ("Microsoft.Automation/automationAccounts", "aa", None),
                    ("Microsoft.Logic/workflows", "logic", None),
                ];
                let (ty, prefix, kind) = *r.pick(singles);
                let name = if ty == "Microsoft.Network/privateDnsZones" {
                    format!("privatelink{serial}.database.windows.net")
                } else if ty == "Microsoft.Storage/storageAccounts" {
                    format!("{prefix}{}{serial}", r.hex(6))
                } else {
                    format!("{prefix}-{}-{serial:04}", r.pick(&rg_words))
                };

                let properties = match ty {
                    "Microsoft.Storage/storageAccounts" => {
                        json!({"supportsHttpsTrafficOnly": r.chance(0.9), "minimumTlsVersion": r.pick(&["TLS1_2", "TLS1_0"]), "allowBlobPublicAccess": r.chance(0.2), "provisioningState": "Succeeded", "encryption": {"keySource": "Microsoft.Storage"}})
                    }
                    "Microsoft.KeyVault/vaults" => {
                        json!({"tenantId": self.tenant_id, "enableSoftDelete": true, "enableRbacAuthorization": r.chance(0.6), "enablePurgeProtection": r.chance(0.5), "vaultUri": format!("https://{name}.vault.azure.net/"), "sku": {"family": "A", "name": "standard"}})
                    }
                    "Microsoft.Sql/servers" => {
                        json!({"administratorLogin": "sqladmin", "version": "12.0", "state": "Ready", "fullyQualifiedDomainName": format!("{name}.database.windows.net"), "publicNetworkAccess": r.pick(&["Enabled", "Disabled"]), "minimalTlsVersion": "1.2"})
                    }
                    _ => json!({"provisioningState": "Succeeded"}),
                };
                let tags = if r.chance(0.6) {
                    Some(
                        json!({"env": r.pick(&["prod", "dev", "test"]), "owner": r.pick(&["platform", "data", "web"]) }),
                    )
                } else {
                    None
                };
                self.resources.push(Resource {
                    sub,
                    rg,
                    arm_type: ty,
                    name: name.clone(),
                    location,
                    kind,
                    sku: None,
                    tags,
                    properties,
                });
                made += 1;
                if ty == "Microsoft.Sql/servers" && r.chance(0.7) {
                    self.resources.push(Resource {
                        sub, rg, arm_type: "Microsoft.Sql/servers/databases", name: format!("{name}/db{serial}"), location,
                        kind: Some("v12.0,user"), sku: Some(json!({"name": "GP_S_Gen5", "tier": "GeneralPurpose", "family": "Gen5", "capacity": 2})), tags: None,
                        properties: json!({"status": "Online", "collation": "SQL_Latin1_General_CP1_CI_AS"}),
                    });
                    made += 1;
                }
            }
        }
        for (guid, name, description, actions) in BUILTIN_ROLES {
            self.role_definitions.push(RoleDefinition {
                guid: guid.to_string(),
                name: name.to_string(),
                description: description.to_string(),
                custom: false,
                actions,
            });
        }
        self.role_definitions.push(RoleDefinition {
            guid: r.guid(),
            name: "tenx Reader (custom)".into(),
            description: "Reader plus policy state queries".into(),
            custom: true,
            actions: &[
                "*/read",
                "Microsoft.PolicyInsights/policyStates/queryResults/action",
            ],
        });
        self.gen_role_assignments(r);
    }

    fn arm_rg_id(&self, rg: u32) -> String {
        let g = &self.resource_groups[rg as usize];
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.subscriptions[g.sub as usize].id, g.name
        )
    }

    pub fn resource_id(&self, res: &Resource) -> String {
        let base = self.arm_rg_id(res.rg);
        match res.arm_type.split_once('/') {
            Some((ns, rest)) => {
                // Nested types: Microsoft.Sql/servers/databases + name server/db.
                let segs: Vec<&str> = rest.split('/').collect();
                let names: Vec<&str> = res.name.split('/').collect();
                let mut path = format!("{base}/providers/{ns}");
                for (i, s) in segs.iter().enumerate() {
                    path.push_str(&format!("/{s}/{}", names.get(i).copied().unwrap_or("")));
                }
                path
            }
            None => format!("{base}/providers/{}/{}", res.arm_type, res.name),
        }
    }

    pub fn rg_id(&self, rg: u32) -> String {
        self.arm_rg_id(rg)
    }

    fn gen_vm_deployment(
        &mut self,
        r: &mut Rng,
        sub: u16,
        rg: u32,
        location: &'static str,
        serial: usize,
    ) -> usize {
        let base = format!(
            "vm-{}-{serial:04}",
            r.pick(&["web", "app", "sql", "build", "jump", "dc"])
        );
        let rgid = self.arm_rg_id(rg);
        let nic_id = format!("{rgid}/providers/Microsoft.Network/networkInterfaces/{base}-nic");
        let disk_id = format!(
            "{rgid}/providers/Microsoft.Compute/disks/{base}_OsDisk_1_{}",
            r.hex(32)
        );
        let pip_id = format!("{rgid}/providers/Microsoft.Network/publicIPAddresses/{base}-ip");
        let nsg_id = format!("{rgid}/providers/Microsoft.Network/networkSecurityGroups/{base}-nsg");
        let with_pip = r.chance(0.4);
        let windows = r.chance(0.6);
        let mut n = 0;
        let mut push = |t: &mut FakeTenant,
                        ty: &'static str,
                        name: String,
                        props: Value,
                        sku: Option<Value>| {
            t.resources.push(Resource {
                sub,
                rg,
                arm_type: ty,
                name,
                location,
                kind: None,
                sku,
                tags: None,
                properties: props,
            });
            n += 1;
        };
        push(
            self,
            "Microsoft.Compute/virtualMachines",
            base.clone(),
            json!({
                "vmId": r.guid(),
                "hardwareProfile": {"vmSize": r.pick(&["Standard_D2s_v5", "Standard_B2ms", "Standard_E4s_v5"])},
                "storageProfile": {
                    "imageReference": if windows { json!({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter-azure-edition", "version": "latest"}) } else { json!({"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2", "version": "latest"}) },
                    "osDisk": {"osType": if windows { "Windows" } else { "Linux" }, "name": disk_id.rsplit('/').next(), "createOption": "FromImage", "managedDisk": {"id": disk_id, "storageAccountType": "Premium_LRS"}},
                    "dataDisks": []
                },
                "osProfile": {"computerName": base, "adminUsername": "azureuser"},
                "networkProfile": {"networkInterfaces": [{"id": nic_id}]},
                "provisioningState": "Succeeded"
            }),
            None,
        );
        let mut ipconf = json!({"name": "ipconfig1", "properties": {"privateIPAddress": format!("10.{}.{}.{}", r.below(255), r.below(255), r.range(4, 250)), "privateIPAllocationMethod": "Dynamic"}});
        if with_pip {
            ipconf["properties"]["publicIPAddress"] = json!({"id": pip_id});
        }
        push(
            self,
            "Microsoft.Network/networkInterfaces",
            format!("{base}-nic"),
            json!({
                "ipConfigurations": [ipconf],
                "networkSecurityGroup": {"id": nsg_id},
                "virtualMachine": {"id": format!("{rgid}/providers/Microsoft.Compute/virtualMachines/{base}")},
                "provisioningState": "Succeeded"
            }),
            None,
        );
        push(
            self,
            "Microsoft.Compute/disks",
            disk_id.rsplit('/').next().unwrap_or("disk").to_string(),
            json!({
                "diskSizeGB": r.pick(&[64, 128, 256]), "diskState": "Attached", "osType": if windows { "Windows" } else { "Linux" },
                "encryption": {"type": "EncryptionAtRestWithPlatformKey"}, "provisioningState": "Succeeded"
            }),
            Some(json!({"name": "Premium_LRS", "tier": "Premium"})),
        );
        if with_pip {
            push(
                self,
                "Microsoft.Network/publicIPAddresses",
                format!("{base}-ip"),
                json!({
                    "ipAddress": format!("20.{}.{}.{}", r.below(255), r.below(255), r.range(1, 254)), "publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4",
                    "ipConfiguration": {"id": format!("{nic_id}/ipConfigurations/ipconfig1")}
                }),
                Some(json!({"name": "Standard", "tier": "Regional"})),
            );
        }
        push(
            self,
            "Microsoft.Network/networkSecurityGroups",
            format!("{base}-nsg"),
            json!({
                "securityRules": [{"name": if windows { "RDP" } else { "SSH" }, "properties": {"access": "Allow", "direction": "Inbound", "priority": 300, "protocol": "TCP", "destinationPortRange": if windows { "3389" } else { "22" }, "sourceAddressPrefix": if r.chance(0.3) { "*" } else { "10.0.0.0/8" }}}],
                "networkInterfaces": [{"id": nic_id}],
                "provisioningState": "Succeeded"
            }),
            None,
        );
        n
    }

    fn gen_vnet(
        &mut self,
        r: &mut Rng,
        sub: u16,
        rg: u32,
        location: &'static str,
        serial: usize,
    ) -> usize {
        let rgid = self.arm_rg_id(rg);
        let name = format!("vnet-{}-{serial:04}", location);
        let vnet_id = format!("{rgid}/providers/Microsoft.Network/virtualNetworks/{name}");
        let nsg_name = format!("nsg-{name}-default");
        let nsg_id = format!("{rgid}/providers/Microsoft.Network/networkSecurityGroups/{nsg_name}");
        let nsubnets = r.range(1, 4);
        let octet = r.below(255);
        let subnets: Vec<Value> = (0..nsubnets)
            .map(|k| {
                let sname = ["default", "app", "data", "AzureBastionSubnet"][k];
                let mut s = json!({"name": sname, "id": format!("{vnet_id}/subnets/{sname}"), "properties": {"addressPrefix": format!("10.{octet}.{k}.0/24"), "provisioningState": "Succeeded"}});
                if k == 0 {
                    s["properties"]["networkSecurityGroup"] = json!({"id": nsg_id});
                }
                s
            })
            .collect();
        self.resources.push(Resource {
            sub, rg, arm_type: "Microsoft.Network/virtualNetworks", name: name.clone(), location, kind: None, sku: None, tags: None,
            properties: json!({"addressSpace": {"addressPrefixes": [format!("10.{octet}.0.0/16")]}, "subnets": subnets, "enableDdosProtection": false, "provisioningState": "Succeeded"}),
        });
        self.resources.push(Resource {
            sub, rg, arm_type: "Microsoft.Network/networkSecurityGroups", name: nsg_name, location, kind: None, sku: None, tags: None,
            properties: json!({"securityRules": [], "subnets": [{"id": format!("{vnet_id}/subnets/default")}], "provisioningState": "Succeeded"}),
        });
        2
    }

    fn gen_role_assignments(&mut self, r: &mut Rng) {
        let nsubs = self.subscriptions.len();
        if nsubs == 0 {
            return;
        }
        let n = (self.params.users / 40).max(8);
        let nroles = self.role_definitions.len();
        let mut rgs_of: Vec<Vec<u32>> = vec![Vec::new(); nsubs];
        for (g, rg) in self.resource_groups.iter().enumerate() {
            rgs_of[rg.sub as usize].push(g as u32);
        }
        let mut res_of: Vec<Vec<usize>> = vec![Vec::new(); nsubs];
        for (x, res) in self.resources.iter().enumerate() {
            res_of[res.sub as usize].push(x);
        }
        for i in 0..n {
            let (principal_id, principal_type) = match i % 10 {
                0..=4 if !self.users.is_empty() => {
                    (self.users[r.below(self.users.len())].id.clone(), "User")
                }
                5..=6 if !self.groups.is_empty() => {
                    (self.groups[r.below(self.groups.len())].id.clone(), "Group")
                }
                7..=8 if !self.service_principals.is_empty() => (
                    self.service_principals[r.below(self.service_principals.len())]
                        .id
                        .clone(),
                    "ServicePrincipal",
                ),
                // A principal deleted from the directory: the assignment stays.
                _ => (r.guid(), "User"),
            };
            let inherited = i % 25 == 0;
            let sub = r.below(nsubs) as u16;
            let scope = if inherited {
                format!(
                    "/providers/Microsoft.Management/managementGroups/{}",
                    self.tenant_id
                )
            } else {
                match r.below(10) {
                    0..=3 => format!("/subscriptions/{}", self.subscriptions[sub as usize].id),
                    4..=7 => {
                        let rgs = &rgs_of[sub as usize];
                        if rgs.is_empty() {
                            format!("/subscriptions/{}", self.subscriptions[sub as usize].id)
                        } else {
                            self.arm_rg_id(*r.pick(rgs))
                        }
                    }
                    _ => {
                        let res = &res_of[sub as usize];
                        if res.is_empty() {
                            format!("/subscriptions/{}", self.subscriptions[sub as usize].id)
                        } else {
                            self.resource_id(&self.resources[*r.pick(res)])
                        }
                    }
                }
            };
            self.role_assignments.push(RoleAssignment {
                guid: r.guid(),
                scope,
                principal_id,
                principal_type,
                role: r.skewed(nroles) as u16,
                created: EPOCH - r.range(1, 900) as i64 * DAY,
                inherited_everywhere: inherited,
                sub,
            });
        }
    }

    /// The role assignments a listing of subscription `sub` shows: those at or
    /// below it, and those inherited from above.
    pub fn assignments_in_sub(&self, sub: usize) -> Vec<&RoleAssignment> {
        self.role_assignments
            .iter()
            .filter(|a| a.inherited_everywhere || a.sub as usize == sub)
            .collect()
    }

    /// The role definition id as a subscription's listing writes it.
    pub fn role_definition_id(&self, sub: usize, role: usize) -> String {
        format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{}",
            self.subscriptions[sub].id, self.role_definitions[role].guid
        )
    }

    pub fn group_index(&self, id: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> FakeTenant {
        FakeTenant::generate(FakeParams {
            users: 500,
            ..Default::default()
        })
    }

    #[test]
    fn same_seed_same_tenant() {
        let a = small();
        let b = small();
        assert_eq!(a.tenant_id, b.tenant_id);
        assert_eq!(a.users.len(), b.users.len());
        assert_eq!(a.devices[7].id, b.devices[7].id);
        assert_eq!(a.machines.len(), b.machines.len());
        let c = FakeTenant::generate(FakeParams {
            users: 500,
            seed: 2,
            ..Default::default()
        });
        assert_ne!(a.tenant_id, c.tenant_id);
    }

    #[test]
    fn proportions_are_realistic() {
        let t = small();
        assert_eq!(t.devices.len(), 600);
        let noncompliant = t
            .devices
            .iter()
            .filter(|d| d.policy_states.iter().any(|s| s.status.is_finding()))
            .count();
        let share = noncompliant as f64 / t.devices.len() as f64;
        assert!((0.08..0.25).contains(&share), "noncompliant share {share}");
        assert!(t.devices.iter().any(|d| d.user.is_none()));
        assert!(t.users.iter().any(|u| !u.display.is_ascii()));
        let with_machine = t.machines.iter().filter(|m| m.device.is_some()).count();
        let defender_capable = t
            .devices
            .iter()
            .filter(|d| d.platform.has_defender())
            .count();
        assert!(with_machine as f64 > defender_capable as f64 * 0.8);
        for kind in [
            EntityKind::Laptop,
            EntityKind::Desktop,
            EntityKind::Server,
            EntityKind::Smartphone,
        ] {
            assert!(t.devices.iter().any(|d| d.kind() == kind), "{kind}");
        }
        assert!(
            t.groups
                .iter()
                .any(|g| g.members.iter().any(|m| matches!(m, Member::Group(_))))
        );
        assert!(
            t.groups
                .iter()
                .any(|g| g.members.iter().any(|m| matches!(m, Member::Device(_))))
        );
        assert!(
            t.role_assignments
                .iter()
                .any(|a| a.principal_type == "Group")
        );
        assert!(
            t.resources
                .iter()
                .any(|r| EntityKind::for_arm_type(r.arm_type) == EntityKind::AzureResource)
        );
    }

    #[test]
    fn status_rows_carry_every_compliance_status() {
        // Compliance policies' rows and configurations' rows both report
        // every value of the complianceStatus enum (configurations no
        // nonCompliant: their failures are error and conflict).
        let t = small();
        let policy: std::collections::HashSet<&str> = t
            .devices
            .iter()
            .flat_map(|d| d.policy_states.iter().map(|s| s.status.as_str()))
            .collect();
        let config: std::collections::HashSet<&str> = t
            .devices
            .iter()
            .flat_map(|d| d.config_states.iter().map(|(_, s)| *s))
            .collect();
        for s in [
            "unknown",
            "notApplicable",
            "compliant",
            "remediated",
            "error",
            "conflict",
            "notAssigned",
        ] {
            assert!(policy.contains(s), "policy rows lack {s}");
            assert!(config.contains(s), "configuration rows lack {s}");
        }
        assert!(policy.contains("nonCompliant"));
        let m = crate::Manifest::of(&t);
        assert!(
            m.relationships
                .get("intune_device_configuration_identified_intune_noncompliance_finding")
                .is_some_and(|&n| n > 0),
            "{:?}",
            m.relationships
        );
    }

    #[test]
    fn overrides_win() {
        let t = FakeTenant::generate(FakeParams {
            users: 50,
            devices: Some(10),
            groups: Some(3),
            ..Default::default()
        });
        assert_eq!(t.devices.len(), 10);
        assert_eq!(t.groups.len(), 3);
    }
}
