//! A tenant written by an attacker: names and properties holding terminal
//! escape sequences, spreadsheet formulas, and secrets nested in ARM
//! properties the way Azure returns them. Shared by the tests of what tenx
//! prints, writes and shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use tenx::model::{Entity, EntityKind, RelRecord, TenantGraph, Verb};

/// Clear screen, an OSC 52 clipboard write, an OSC 0 title, an 8-bit CSI,
/// a bell, DEL and a carriage return.
pub const ESCAPES: &str =
    "\x1b[2J\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]0;pwned\x1b\\\u{9b}31m\u{9d}0;t\x07\x7f\r";

/// Every secret below contains this, so a test can look for it anywhere.
pub const SECRET: &str = "Hunter2";

pub const TENANT_ID: &str = "hostile";
/// The store name `TENX_TENANT_ID=hostile` reads.
pub const STORE: &str = "tenant-hostile.sqlite";

pub const USER: &str = "u-1";
pub const DEVICE: &str = "d-1";
pub const DEVICE2: &str = "d-2";
pub const VM: &str =
    "/subscriptions/s-1/resourcegroups/rg-1/providers/microsoft.compute/virtualmachines/vm-1";
pub const WEB_APP: &str =
    "/subscriptions/s-1/resourcegroups/rg-1/providers/microsoft.web/sites/app-1";

/// The name both devices share (so `triage set NAME` is ambiguous).
pub fn device_name() -> String {
    format!("=HYPERLINK(\"http://evil.example/\",\"open\")LAPTOP{ESCAPES}")
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A VM's properties as Resource Graph returns them, with its admin
/// password (Azure never returns it; a template or a proxy might).
pub fn vm_properties() -> Value {
    json!({
        "type": "microsoft.compute/virtualmachines",
        "location": "westeurope",
        "tags": {"owner": format!("@ops{ESCAPES}")},
        "properties": {
            "vmId": "0b1c",
            "osProfile": {
                "computerName": "vm-1",
                "adminUsername": "azureuser",
                "adminPassword": format!("{SECRET}!VmAdmin"),
                "secrets": [{"sourceVault": {"id": "/x"}}],
                "linuxConfiguration": {"ssh": {"publicKeys": [{"path": "/home/azureuser/.ssh/authorized_keys", "keyData": "ssh-rsa AAAA"}]}}
            },
            "networkProfile": {"networkInterfaces": [{"id": "/nic-1"}]}
        }
    })
}

/// A web app's properties with connection strings and settings carrying
/// credentials.
pub fn web_app_properties() -> Value {
    json!({
        "type": "microsoft.web/sites",
        "location": "westeurope",
        "properties": {
            "defaultHostName": "app-1.azurewebsites.net",
            "siteConfig": {
                "connectionStrings": [
                    {"name": "db", "type": "SQLAzure", "connectionString": format!("Server=tcp:db-1.database.windows.net,1433;Initial Catalog=app;User ID=app;Password={SECRET}!Conn;Encrypt=True;")},
                    {"name": "cache", "type": "Custom", "connectionString": format!("redis-1.redis.cache.windows.net:6380,password={SECRET}Redis=,ssl=True")}
                ],
                "appSettings": [
                    {"name": "STORAGE", "value": format!("DefaultEndpointsProtocol=https;AccountName=st1;AccountKey={SECRET}AccountKey==;EndpointSuffix=core.windows.net")},
                    {"name": "BUS", "value": format!("Endpoint=sb://bus-1.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={SECRET}Sak=")},
                    {"name": "EXPORT_URL", "value": format!("https://st1.blob.core.windows.net/exports?sv=2022-11-02&sr=c&sp=r&sig={SECRET}Sig%3D")},
                    {"name": "DB_PASSWORD", "value": format!("{SECRET}Setting")},
                    {"name": "REGION", "value": "westeurope"}
                ]
            }
        }
    })
}

/// The hostile tenant's graph.
pub fn graph() -> TenantGraph {
    let mut g = TenantGraph::new();
    g.upsert(Entity::new(
        TENANT_ID,
        EntityKind::AzureAccount,
        TENANT_ID,
        format!("Contoso{ESCAPES}"),
        &Map::new(),
    ));
    g.upsert(Entity::new(
        USER,
        EntityKind::AzureUser,
        USER,
        format!("Ava{ESCAPES}"),
        &obj(json!({
            "userPrincipalName": format!("+ava{ESCAPES}@contoso.example"),
            "jobTitle": "-2+3",
            "department": "@SUM(A1:A9)",
            "officeLocation": "\tOslo",
            "passwordProfile": {"password": format!("{SECRET}Profile")},
        })),
    ));
    for key in [DEVICE, DEVICE2] {
        g.upsert(Entity::new(
            format!("{key}{ESCAPES}"),
            EntityKind::Laptop,
            key,
            device_name(),
            &obj(json!({
                "deviceName": device_name(),
                "operatingSystem": format!("Windows{ESCAPES}"),
                "osVersion": "-10.0",
                "complianceState": "noncompliant",
                "serialNumber": format!("@SER{ESCAPES}"),
                "lastSyncDateTime": "2026-10-30T08:00:00Z",
            })),
        ));
    }
    g.upsert(Entity::new(
        "p-1",
        EntityKind::IntuneCompliancePolicy,
        "p-1",
        format!("=1+1 policy{ESCAPES}"),
        &Map::new(),
    ));
    for (i, key) in [DEVICE, DEVICE2].iter().enumerate() {
        let finding = format!("f-{i}");
        g.upsert(Entity::new(
            finding.as_str(),
            EntityKind::IntuneNoncomplianceFinding,
            finding.as_str(),
            "finding",
            &obj(json!({
                "state": "noncompliant",
                "deviceId": key,
                "failingSettingNames": [format!("-setting{ESCAPES}")],
            })),
        ));
        g.relate(RelRecord::new(
            format!("{key}{ESCAPES}"),
            Verb::Has,
            &finding,
        ));
        g.relate(RelRecord::new("p-1", Verb::Identified, &finding));
        g.relate(RelRecord::new(USER, Verb::Owns, format!("{key}{ESCAPES}")));
    }
    g.upsert(Entity::new(
        VM,
        EntityKind::AzureVm,
        VM,
        format!("vm-1{ESCAPES}\u{FFFE}"),
        &obj(vm_properties()),
    ));
    g.upsert(Entity::new(
        WEB_APP,
        EntityKind::AzureWebApp,
        WEB_APP,
        "app-1 | [x] {y} #quot; \"q\" <b> `c` \\ end",
        &obj(web_app_properties()),
    ));
    g.relate(RelRecord::new(USER, Verb::Owns, VM));
    g.relate(RelRecord::new(VM, Verb::Uses, WEB_APP));
    g
}

/// Saves the hostile graph as a snapshot in `data` (the store
/// `TENX_TENANT_ID=hostile` reads); its path.
pub fn snapshot(data: &Path) -> PathBuf {
    std::fs::create_dir_all(data).expect("data dir");
    let path = data.join(STORE);
    let mut s = tenx::store::Store::open(&path).expect("store");
    // Every source read completely: what is tested is the text, not gaps.
    let statuses: BTreeMap<_, _> = tenx::fetch::Source::ALL
        .into_iter()
        .map(|source| {
            let status = tenx::fetch::SourceStatus {
                outcome: tenx::fetch::Outcome::Complete,
                ..tenx::fetch::SourceStatus::not_asked(source)
            };
            (source, status)
        })
        .collect();
    s.save(TENANT_ID, "hostile", &graph(), &statuses, 1, &json!({}))
        .expect("save");
    path
}

/// The binary with its data and config in `data`, reading the hostile
/// tenant's store.
pub fn command(data: &Path) -> std::process::Command {
    let mut c = super::bin::command(data);
    c.env("TENX_TENANT_ID", TENANT_ID);
    c
}

/// `tenx ARGS` on the hostile tenant's store in `data`.
pub fn tenx(data: &Path, args: &[&str]) -> std::process::Output {
    super::bin::run(command(data).args(args))
}

/// The bytes that start or end a terminal control sequence, or move the
/// cursor back over a line: ESC, BEL, CR, DEL, and C1 CSI/OSC/DCS/ST in
/// UTF-8.
pub fn terminal_controls(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.char_indices()
        .filter(|(_, c)| {
            let n = *c as u32;
            (n < 0x20 && *c != '\n' && *c != '\t') || (0x7f..=0x9f).contains(&n)
        })
        .map(|(i, c)| {
            let from = text[..i].chars().rev().take(20).collect::<Vec<_>>();
            let from: String = from.into_iter().rev().collect();
            format!("{:?} after {from:?}", c)
        })
        .collect()
}
