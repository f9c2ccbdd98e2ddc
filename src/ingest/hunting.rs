//! Defender for Endpoint read through Microsoft Graph security advanced
//! hunting: rows of `DeviceInfo`, `DeviceTvmSoftwareVulnerabilities`,
//! `DeviceTvmSoftwareVulnerabilitiesKB` and `DeviceLogonEvents` become the
//! same entities, keys and relationships the Defender for Endpoint API
//! gives (`ingest::defender`): a machine keyed by its device id, a finding
//! per (machine, CVE), a CVE by its id, a logon user by `domain\account`.
//! Properties take the Defender for Endpoint API's names where a column
//! means the same (`computerDnsName` from `DeviceName`, `exposureLevel`
//! from `ExposureLevel`, …), so the details pane, search and triage read
//! one vocabulary whichever API a snapshot came from; docs/FETCH.md's
//! table names the column behind each.

use std::borrow::Cow;

use serde_json::Value;

use super::{Batch, JoinHint, Json, text};
use crate::model::{EntityKind, Name, Props, PropsWriter, Verb};

/// Where each machine property comes from: (property, `DeviceInfo` column).
pub const MACHINE_FIELDS: [(&str, &str); 19] = [
    ("id", "DeviceId"),
    ("computerDnsName", "DeviceName"),
    ("osPlatform", "OSPlatform"),
    ("version", "OSVersion"),
    ("osBuild", "OSBuild"),
    ("osArchitecture", "OSArchitecture"),
    ("aadDeviceId", "AadDeviceId"),
    ("isAadJoined", "IsAzureADJoined"),
    ("joinType", "JoinType"),
    ("rbacGroupName", "MachineGroup"),
    ("exposureLevel", "ExposureLevel"),
    ("onboardingStatus", "OnboardingStatus"),
    ("healthStatus", "SensorHealthState"),
    ("lastSeen", "Timestamp"),
    ("lastExternalIpAddress", "PublicIP"),
    ("deviceType", "DeviceType"),
    ("model", "Model"),
    ("vendor", "Vendor"),
    ("agentVersion", "ClientVersion"),
];

/// Where each CVE property comes from: (property,
/// `DeviceTvmSoftwareVulnerabilitiesKB` column).
pub const CVE_FIELDS: [(&str, &str); 7] = [
    ("id", "CveId"),
    ("description", "VulnerabilityDescription"),
    ("severity", "VulnerabilitySeverityLevel"),
    ("cvssV3", "CvssScore"),
    ("publishedOn", "PublishedDate"),
    ("updatedOn", "LastModifiedTime"),
    ("publicExploit", "IsExploitAvailable"),
];

/// A column's value as compact JSON text.
fn compact<'a>(v: &'a impl Json, column: &str) -> Option<Cow<'a, str>> {
    let raw = v.raw_field(column)?;
    if raw.starts_with(['{', '[']) && raw.contains([' ', '\n', '\r', '\t']) {
        let value: Value = serde_json::from_str(&raw).ok()?;
        return Some(Cow::Owned(value.to_string()));
    }
    Some(raw)
}

/// The named columns that are present, under the API's property names.
fn renamed(v: &impl Json, fields: &[(&'static str, &str)]) -> Props {
    let mut out = PropsWriter::new();
    for (name, column) in fields {
        if let Some(value) = compact(v, column) {
            out.field(Name::Plain(name), value);
        }
    }
    out.finish()
}

/// A `dynamic` column's array: advanced hunting writes some as JSON arrays
/// and some as strings holding one (`LoggedOnUsers` is documented as a
/// string); both are read. `Err` says what the value was instead.
fn json_list(v: &impl Json, column: &str) -> Result<Option<Vec<Value>>, String> {
    let Some(raw) = v.raw_field(column) else {
        return Ok(None);
    };
    let value: Value = serde_json::from_str(&raw).map_err(|e| e.to_string())?;
    let value = match value {
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => serde_json::from_str(&s).map_err(|e| e.to_string())?,
        other => other,
    };
    match value {
        Value::Array(list) => Ok(Some(list)),
        Value::Null => Ok(None),
        other => Err(format!("not an array but {other}")),
    }
}

/// A `DeviceInfo` row (the latest per device): the machine, the tenant's
/// HAS, its join facts, and the users `LoggedOnUsers` names. Returns the
/// machine's key.
pub fn machine<'a>(v: &'a impl Json, tenant: &str, out: &mut Batch) -> Option<&'a str> {
    let Some(id) = text(v, "DeviceId") else {
        out.skip("machine", "a DeviceInfo row without DeviceId");
        return None;
    };
    let dns = text(v, "DeviceName");
    out.entity_props(
        id,
        EntityKind::DefenderMachine,
        id,
        dns.unwrap_or(id),
        renamed(v, &MACHINE_FIELDS),
    );
    out.rel(tenant, Verb::Has, id);
    out.hints.push(JoinHint::Machine {
        key: id.to_string(),
        aad_device_id: text(v, "AadDeviceId").map(str::to_ascii_lowercase),
        host: dns
            .map(|d| d.split('.').next().unwrap_or(d).to_ascii_lowercase())
            .unwrap_or_default(),
    });
    // `LoggedOnUsers`: the accounts signed in when the row was written.
    match json_list(v, "LoggedOnUsers") {
        Ok(users) => {
            for u in users.into_iter().flatten() {
                let field = |f: &str| u.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
                match (field("DomainName"), field("UserName")) {
                    (domain, Some(account)) => {
                        logon_user(id, domain.unwrap_or(""), account, field("Sid"), None, out)
                    }
                    _ => out.skip(
                        &format!("a logged-on user of machine {id}"),
                        "no UserName in LoggedOnUsers",
                    ),
                }
            }
        }
        Err(e) => out.skip(
            &format!("the logged-on users of machine {id}"),
            format!("LoggedOnUsers is not a JSON array ({e})"),
        ),
    }
    Some(id)
}

/// A logon user seen on a machine: keyed `domain\account` as the Defender
/// for Endpoint API keys them, and the machine HAS it.
fn logon_user(
    machine: &str,
    domain: &str,
    account: &str,
    sid: Option<&str>,
    last_seen: Option<&str>,
    out: &mut Batch,
) {
    let key = format!(
        "{}\\{}",
        domain.to_ascii_lowercase(),
        account.to_ascii_lowercase()
    );
    let name = if domain.is_empty() {
        account.to_string()
    } else {
        format!("{domain}\\{account}")
    };
    let mut p = serde_json::Map::new();
    p.insert("id".into(), Value::String(key.clone()));
    p.insert("accountName".into(), Value::String(account.to_string()));
    p.insert("accountDomain".into(), Value::String(domain.to_string()));
    if let Some(s) = sid {
        p.insert("accountSid".into(), Value::String(s.to_string()));
    }
    if let Some(t) = last_seen {
        p.insert("lastSeen".into(), Value::String(t.to_string()));
    }
    out.entity(&key, EntityKind::DefenderLogonUser, &key, &name, p);
    out.rel(machine, Verb::Has, &key);
    out.hints.push(JoinHint::LogonUser {
        key,
        account: account.to_ascii_lowercase(),
    });
}

/// A `DeviceLogonEvents` row summarised per (device, account): the account
/// signed in to the device in the last 30 days.
pub fn logon_event(v: &impl Json, out: &mut Batch) {
    let (Some(machine), Some(account)) = (text(v, "DeviceId"), text(v, "AccountName")) else {
        return out.skip("a logon event", "no DeviceId or AccountName");
    };
    logon_user(
        machine,
        text(v, "AccountDomain").unwrap_or(""),
        account,
        text(v, "AccountSid"),
        text(v, "Timestamp"),
        out,
    );
}

/// The first string of a `make_set` column.
fn first(list: &Option<Vec<Value>>) -> Option<String> {
    list.iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|s| !s.is_empty())
        .map(String::from)
}

/// A `DeviceTvmSoftwareVulnerabilities` row summarised per (device, CVE):
/// the finding, the machine IDENTIFIED it, and it IS the CVE. Returns the
/// CVE id and its severity.
pub fn vulnerability<'a>(v: &'a impl Json, out: &mut Batch) -> Option<(&'a str, Option<&'a str>)> {
    let (Some(machine), Some(cve)) = (text(v, "DeviceId"), text(v, "CveId")) else {
        out.skip("machine vulnerability", "no DeviceId or CveId");
        return None;
    };
    let mut lists = Vec::new();
    for column in [
        "SoftwareNames",
        "SoftwareVendors",
        "SoftwareVersions",
        "Updates",
    ] {
        match json_list(v, column) {
            Ok(list) => lists.push(list),
            Err(e) => {
                out.skip(
                    &format!("machine vulnerability {machine}|{cve}"),
                    format!("{column} is {e}"),
                );
                return None;
            }
        }
    }
    let key = super::defender::vulnerability_key(machine, cve);
    let product = first(&lists[0]);
    let mut p = serde_json::Map::new();
    p.insert("id".into(), Value::String(key.clone()));
    p.insert("cveId".into(), Value::String(cve.to_string()));
    p.insert("machineId".into(), Value::String(machine.to_string()));
    let severity = text(v, "VulnerabilitySeverityLevel");
    if let Some(s) = severity {
        p.insert("severity".into(), Value::String(s.to_string()));
    }
    for (name, list) in [
        "productName",
        "productVendor",
        "productVersion",
        "fixingKbId",
    ]
    .iter()
    .zip(&lists)
    {
        if let Some(s) = first(list) {
            p.insert(name.to_string(), Value::String(s));
        }
    }
    if let Some(names) = &lists[0] {
        p.insert("software".into(), Value::Array(names.clone()));
    }
    let name = match &product {
        Some(product) => format!("{cve} in {product}"),
        None => cve.to_string(),
    };
    out.entity(&key, EntityKind::DefenderVulnerability, &key, &name, p);
    out.rel(machine, Verb::Identified, &key);
    out.rel(&key, Verb::Is, cve);
    Some((cve, severity))
}

/// A CVE found on machines that the knowledge base has no row of: what
/// its findings say (`knowledgeBase: false` marks it).
pub fn cve_from_findings(id: &str, severity: Option<&str>, exposed: usize, out: &mut Batch) {
    let mut p = serde_json::Map::new();
    p.insert("id".into(), Value::String(id.to_string()));
    p.insert("name".into(), Value::String(id.to_string()));
    if let Some(s) = severity {
        p.insert("severity".into(), Value::String(s.to_string()));
    }
    p.insert("exposedMachines".into(), Value::from(exposed));
    p.insert("knowledgeBase".into(), Value::Bool(false));
    out.entity(id, EntityKind::Cve, id, id, p);
}

/// A `DeviceTvmSoftwareVulnerabilitiesKB` row: the CVE, with how many
/// machines it was found on (`exposedMachines`, as the Defender for
/// Endpoint API says it).
pub fn cve(v: &impl Json, exposed: usize, out: &mut Batch) {
    let Some(id) = text(v, "CveId") else {
        return out.skip("vulnerability", "a KB row without CveId");
    };
    let mut w = PropsWriter::new();
    for (name, column) in CVE_FIELDS {
        if let Some(value) = compact(v, column) {
            w.field(Name::Plain(name), value);
        }
    }
    w.field(
        Name::Plain("name"),
        Cow::Owned(Value::String(id.to_string()).to_string()),
    );
    w.field(
        Name::Plain("exposedMachines"),
        Cow::Owned(exposed.to_string()),
    );
    out.entity_props(id, EntityKind::Cve, id, id, w.finish());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(b: &Batch, key: &str) -> Value {
        let e = b
            .entities
            .iter()
            .find(|e| &*e.key == key)
            .unwrap_or_else(|| panic!("no {key}"));
        serde_json::from_str(&e.props_json()).expect("json")
    }

    #[test]
    fn a_device_info_row_is_the_machine_the_defender_api_gives_with_its_users() {
        let row = json!({
            "Timestamp": "2026-12-01T10:00:00.0000000Z",
            "DeviceId": "a1b2c3",
            "DeviceName": "laptop-0042.contoso.local",
            "OSPlatform": "Windows11",
            "OSVersion": "10.0",
            "OSBuild": 22631,
            "AadDeviceId": "AAD-42",
            "IsAzureADJoined": true,
            "ExposureLevel": "Medium",
            "SensorHealthState": "Active",
            "OnboardingStatus": "Onboarded",
            "MachineGroup": "Finance",
            "LoggedOnUsers": "[{\"UserName\":\"ava\",\"DomainName\":\"CONTOSO\",\"Sid\":\"S-1-5-21-1\"},{\"UserName\":\"svc\",\"DomainName\":\"\"}]",
        });
        let mut b = Batch::default();
        assert_eq!(machine(&row, "tenant", &mut b), Some("a1b2c3"));
        assert!(b.skipped.is_empty(), "{:?}", b.skipped);
        let m = props(&b, "a1b2c3");
        assert_eq!(m["computerDnsName"], "laptop-0042.contoso.local");
        assert_eq!(m["exposureLevel"], "Medium");
        assert_eq!(m["healthStatus"], "Active");
        assert_eq!(m["osBuild"], 22631);
        assert_eq!(m["lastSeen"], "2026-12-01T10:00:00.0000000Z");
        assert_eq!(props(&b, "contoso\\ava")["accountSid"], "S-1-5-21-1");
        assert!(b.entities.iter().any(|e| &*e.key == "\\svc"));
        assert!(b.hints.contains(&JoinHint::Machine {
            key: "a1b2c3".into(),
            aad_device_id: Some("aad-42".into()),
            host: "laptop-0042".into(),
        }));
        assert!(b.hints.contains(&JoinHint::LogonUser {
            key: "contoso\\ava".into(),
            account: "ava".into()
        }));
        let rels: Vec<String> = b.relationships.iter().map(|r| r.key()).collect();
        assert!(
            rels.contains(&"a1b2c3|HAS|contoso\\ava".to_string()),
            "{rels:?}"
        );
        // A broken LoggedOnUsers loses its users, not the machine, and says so.
        let mut b = Batch::default();
        machine(
            &json!({"DeviceId": "m2", "LoggedOnUsers": "[{"}),
            "t",
            &mut b,
        );
        assert_eq!(b.entities.len(), 1);
        assert_eq!(b.skipped.len(), 1);
        // A real JSON array is read as well as a string holding one.
        let mut b = Batch::default();
        machine(
            &json!({"DeviceId": "m3", "LoggedOnUsers": [{"UserName": "bo", "DomainName": "C"}]}),
            "t",
            &mut b,
        );
        assert!(
            b.entities.iter().any(|e| &*e.key == "c\\bo"),
            "{:?}",
            b.skipped
        );
        // So is a make_set column written as a string holding an array.
        let mut b = Batch::default();
        let row = json!({"DeviceId": "m3", "CveId": "CVE-1", "SoftwareNames": "[\"edge\"]"});
        assert!(vulnerability(&row, &mut b).is_some());
        assert_eq!(&*b.entities[0].display_name, "CVE-1 in edge");
    }

    #[test]
    fn vulnerability_rows_are_findings_keyed_as_the_defender_api_keys_them() {
        let row = json!({
            "DeviceId": "a1b2c3",
            "CveId": "CVE-2024-1",
            "VulnerabilitySeverityLevel": "High",
            "SoftwareNames": ["chrome", "edge"],
            "SoftwareVendors": ["google", "microsoft"],
            "SoftwareVersions": ["120.0", "119.0"],
            "Updates": ["", "KB5034441"],
        });
        let mut b = Batch::default();
        assert_eq!(
            vulnerability(&row, &mut b),
            Some(("CVE-2024-1", Some("High")))
        );
        let key = super::super::defender::vulnerability_key("a1b2c3", "CVE-2024-1");
        let p = props(&b, &key);
        assert_eq!(p["productName"], "chrome");
        assert_eq!(p["fixingKbId"], "KB5034441");
        assert_eq!(p["software"], json!(["chrome", "edge"]));
        assert_eq!(&*b.entities[0].display_name, "CVE-2024-1 in chrome");
        let mut b = Batch::default();
        cve(
            &json!({"CveId": "CVE-2024-1", "CvssScore": 8.8, "IsExploitAvailable": true, "VulnerabilitySeverityLevel": "High"}),
            3,
            &mut b,
        );
        let p = props(&b, "CVE-2024-1");
        assert_eq!(
            (
                p["cvssV3"].clone(),
                p["publicExploit"].clone(),
                p["exposedMachines"].clone()
            ),
            (json!(8.8), json!(true), json!(3))
        );
    }
}
