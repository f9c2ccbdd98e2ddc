//! Defender for Endpoint: machines, vulnerability findings per (machine,
//! CVE), CVEs, logon users.

use super::{Batch, JoinHint, Json, id_of, text};
use crate::model::{EntityKind, Props, Verb};

pub fn vulnerability_key(machine_id: &str, cve_id: &str) -> String {
    format!("{machine_id}|{cve_id}")
}

pub fn machine(v: &impl Json, tenant: &str, out: &mut Batch) {
    let id = match id_of(v, "machine") {
        Ok(id) => id,
        Err(e) => return out.skip("machine", e),
    };
    let dns = text(v, "computerDnsName");
    out.record(id, EntityKind::DefenderMachine, id, dns.unwrap_or(id), v);
    out.rel(tenant, Verb::Has, id);
    out.hints.push(JoinHint::Machine {
        key: id.to_string(),
        aad_device_id: text(v, "aadDeviceId").map(str::to_ascii_lowercase),
        // The host name is the first label of the DNS name.
        host: dns
            .map(|d| d.split('.').next().unwrap_or(d).to_ascii_lowercase())
            .unwrap_or_default(),
    });
}

pub fn cve(v: &impl Json, out: &mut Batch) {
    let id = match id_of(v, "vulnerability") {
        Ok(id) => id,
        Err(e) => return out.skip("vulnerability", e),
    };
    out.record(id, EntityKind::Cve, id, text(v, "name").unwrap_or(id), v);
}

/// One row of `machinesVulnerabilities`. Rows of the same (machine, CVE) for
/// different products merge into one finding.
pub fn machine_vulnerability(v: &impl Json, out: &mut Batch) {
    let (Some(machine), Some(cve)) = (text(v, "machineId"), text(v, "cveId")) else {
        return out.skip("machine vulnerability", "no machineId or cveId");
    };
    let key = vulnerability_key(machine, cve);
    let p = v.pick(&[
        "id",
        "cveId",
        "machineId",
        "severity",
        "productName",
        "productVendor",
        "productVersion",
        "fixingKbId",
    ]);
    let product = text(v, "productName").unwrap_or("");
    let name = if product.is_empty() {
        cve.to_string()
    } else {
        format!("{cve} in {product}")
    };
    out.entity_props(&key, EntityKind::DefenderVulnerability, &key, &name, p);
    out.rel(machine, Verb::Identified, &key);
    out.rel(&key, Verb::Is, cve);
}

pub fn logon_user(machine_id: &str, v: &impl Json, out: &mut Batch) {
    let account = text(v, "accountName");
    let domain = text(v, "accountDomain");
    let key = match (text(v, "id"), account) {
        (Some(id), _) => id.to_ascii_lowercase(),
        (None, Some(a)) => format!(
            "{}\\{}",
            domain.unwrap_or("").to_ascii_lowercase(),
            a.to_ascii_lowercase()
        ),
        (None, None) => {
            return out.skip(
                &format!("a logon user of machine {machine_id}"),
                "no id or accountName",
            );
        }
    };
    let name = match (domain, account) {
        (Some(d), Some(a)) => format!("{d}\\{a}"),
        _ => key.clone(),
    };
    // Per-machine facts do not belong on a user seen on many machines; the
    // id is the key, written first.
    let rest = v.props_without(&[
        "id",
        "mostPrevalentMachineId",
        "leastPrevalentMachineId",
        "firstSeen",
        "lastSeen",
        "logOnMachinesCount",
    ]);
    let id = serde_json::to_string(&key).unwrap_or_else(|_| "\"\"".into());
    let rest = rest.to_json();
    let p = match rest.strip_prefix('{') {
        Some("}") | None => format!("{{\"id\":{id}}}"),
        Some(fields) => format!("{{\"id\":{id},{fields}"),
    };
    out.entity_props(
        &key,
        EntityKind::DefenderLogonUser,
        &key,
        &name,
        Props::json(p),
    );
    out.rel(machine_id, Verb::Has, &key);
    if let Some(a) = account {
        out.hints.push(JoinHint::LogonUser {
            key,
            account: a.to_ascii_lowercase(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn machines_give_join_facts_from_dns_names() {
        let mut b = Batch::default();
        machine(
            &json!({"id": "m1", "computerDnsName": "LAPTOP-AB12.contoso.local", "aadDeviceId": "AAD-1", "riskScore": "High", "exposureLevel": "medium"}),
            "t",
            &mut b,
        );
        assert_eq!(
            b.hints,
            vec![JoinHint::Machine {
                key: "m1".into(),
                aad_device_id: Some("aad-1".into()),
                host: "laptop-ab12".into()
            }]
        );
        machine(
            &json!({"id": "m2", "computerDnsName": null, "aadDeviceId": null}),
            "t",
            &mut b,
        );
        assert_eq!(&*b.entities[1].display_name, "m2");
    }

    #[test]
    fn vulnerability_rows_become_findings_linked_to_machine_and_cve() {
        let mut b = Batch::default();
        machine_vulnerability(
            &json!({"id": "m1-_-CVE-2024-1-_-google-_-chrome-_-1-_-", "cveId": "CVE-2024-1", "machineId": "m1", "productName": "chrome", "severity": "High", "fixingKbId": null}),
            &mut b,
        );
        machine_vulnerability(&json!({"cveId": "CVE-2024-2"}), &mut b);
        assert_eq!(b.entities.len(), 1);
        assert_eq!(&*b.entities[0].key, "m1|CVE-2024-1");
        let rels: Vec<String> = b.relationships.iter().map(|r| r.key()).collect();
        assert_eq!(
            rels,
            ["m1|IDENTIFIED|m1|CVE-2024-1", "m1|CVE-2024-1|IS|CVE-2024-1"]
        );
        assert_eq!(b.skipped.len(), 1);
    }

    #[test]
    fn logon_users_are_shared_across_machines() {
        let mut b = Batch::default();
        let u = json!({"id": "contoso\\ava.dubois", "accountName": "Ava.Dubois", "accountDomain": "CONTOSO", "mostPrevalentMachineId": "m1"});
        logon_user("m1", &u, &mut b);
        logon_user("m2", &u, &mut b);
        assert_eq!(b.entities[0].key, b.entities[1].key);
        assert!(b.entities[0].prop("mostPrevalentMachineId").is_none());
        // Read in place, the record gives the same user as its parsed tree.
        let text = u.to_string();
        let r = crate::fetch::record::Record::from_json(&text).expect("json");
        logon_user("m3", &r, &mut b);
        assert_eq!(b.entities[2].properties(), b.entities[0].properties());
        assert_eq!(b.entities[2].display_name, b.entities[0].display_name);
        assert_eq!(
            b.entities[2].prop("id"),
            Some(json!("contoso\\ava.dubois")),
            "the key is the id"
        );
        assert_eq!(
            b.hints[0],
            JoinHint::LogonUser {
                key: "contoso\\ava.dubois".into(),
                account: "ava.dubois".into()
            }
        );
    }
}
