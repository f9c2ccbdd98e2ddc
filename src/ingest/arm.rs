//! Azure Resource Manager: subscriptions, resource groups, resources (typed
//! by ARM type), role assignments and definitions, and the relationships a
//! resource's properties imply.

use serde_json::Value;

use super::{Batch, Json, id_of, text};
use crate::model::{EntityKind, Verb};

/// ARM ids are case-insensitive; keys are their lower-case form.
pub fn arm_key(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

/// `/subscriptions/{id}` of an ARM id.
fn subscription_of(id: &str) -> Option<String> {
    let lower = arm_key(id);
    let rest = lower.strip_prefix("/subscriptions/")?;
    let sub = rest.split('/').next()?;
    Some(format!("/subscriptions/{sub}"))
}

/// `/subscriptions/{id}/resourcegroups/{name}` of an ARM id.
fn resource_group_of(id: &str) -> Option<String> {
    let lower = arm_key(id);
    let parts: Vec<&str> = lower.split('/').collect();
    // ["", "subscriptions", sub, "resourcegroups", rg, ...]
    if parts.len() >= 5 && parts[1] == "subscriptions" && parts[3] == "resourcegroups" {
        Some(parts[..5].join("/"))
    } else {
        None
    }
}

pub fn subscription(v: &Value, tenant: &str, out: &mut Batch) {
    let id = match id_of(v, "subscription") {
        Ok(id) => id,
        Err(e) => return out.skip("subscription", e),
    };
    let key = arm_key(id);
    out.record(
        &key,
        EntityKind::AzureSubscription,
        id,
        text(v, "displayName").unwrap_or(id),
        v,
    );
    out.rel(tenant, Verb::Has, &key);
}

pub fn resource_group(v: &Value, out: &mut Batch) {
    let id = match id_of(v, "resource group") {
        Ok(id) => id,
        Err(e) => return out.skip("resource group", e),
    };
    let key = arm_key(id);
    out.record(
        &key,
        EntityKind::AzureResourceGroup,
        id,
        text(v, "name").unwrap_or(id),
        v,
    );
    match subscription_of(id) {
        Some(sub) => out.rel(&sub, Verb::Has, &key),
        None => out.skip(
            &format!("the subscription link of {id}"),
            "not a subscription-scoped id",
        ),
    }
}

fn ids(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| text(x, "id")).collect())
        .unwrap_or_default()
}

/// A resource from the ARM listing or a Resource Graph row. With
/// `properties` (Resource Graph) it also yields the relationships those
/// imply: VM → NIC, disk, public IP; VNet → subnets; NSG → NICs, subnets.
pub fn resource(v: &impl Json, out: &mut Batch) {
    let id = match id_of(v, "resource") {
        Ok(id) => id,
        Err(e) => return out.skip("resource", e),
    };
    let ty = text(v, "type").unwrap_or("");
    let kind = EntityKind::for_arm_type(ty);
    let key = arm_key(id);
    out.record(&key, kind, id, text(v, "name").unwrap_or(id), v);
    if let Some(rg) = resource_group_of(id) {
        out.rel(&rg, Verb::Has, &key);
    }
    // Only the kinds that link through their properties read them whole.
    let linked = matches!(
        kind,
        EntityKind::AzureVm
            | EntityKind::AzureNic
            | EntityKind::AzureVnet
            | EntityKind::AzureSecurityGroup
    );
    let properties: Value = match v.raw_field("properties") {
        Some(text) if linked => serde_json::from_str(&text).unwrap_or_default(),
        _ => Value::Null,
    };
    let p = &properties;
    match kind {
        EntityKind::AzureVm => {
            for nic in ids(&p["networkProfile"]["networkInterfaces"]) {
                out.rel(&key, Verb::Uses, &arm_key(nic));
            }
            if let Some(disk) = text(&p["storageProfile"]["osDisk"]["managedDisk"], "id") {
                out.rel(&key, Verb::Uses, &arm_key(disk));
            }
            for d in p["storageProfile"]["dataDisks"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(disk) = text(&d["managedDisk"], "id") {
                    out.rel(&key, Verb::Uses, &arm_key(disk));
                }
            }
        }
        EntityKind::AzureNic => {
            // The NIC names its VM and public IPs: the VM uses those IPs.
            if let Some(vm) = text(&p["virtualMachine"], "id") {
                for cfg in p["ipConfigurations"].as_array().into_iter().flatten() {
                    if let Some(pip) = text(&cfg["properties"]["publicIPAddress"], "id") {
                        out.rel(&arm_key(vm), Verb::Uses, &arm_key(pip));
                    }
                }
            }
            if let Some(nsg) = text(&p["networkSecurityGroup"], "id") {
                out.rel(&arm_key(nsg), Verb::Protects, &key);
            }
        }
        EntityKind::AzureVnet => {
            for s in p["subnets"].as_array().into_iter().flatten() {
                let Some(sid) = text(s, "id") else { continue };
                let skey = arm_key(sid);
                out.record(
                    &skey,
                    EntityKind::AzureSubnet,
                    sid,
                    text(s, "name").unwrap_or(sid),
                    s,
                );
                out.rel(&key, Verb::Contains, &skey);
                if let Some(nsg) = text(&s["properties"]["networkSecurityGroup"], "id") {
                    out.rel(&arm_key(nsg), Verb::Protects, &skey);
                }
            }
        }
        EntityKind::AzureSecurityGroup => {
            for nic in ids(&p["networkInterfaces"]) {
                out.rel(&key, Verb::Protects, &arm_key(nic));
            }
            for s in ids(&p["subnets"]) {
                out.rel(&key, Verb::Protects, &arm_key(s));
            }
        }
        _ => {}
    }
}

pub fn role_definition(v: &Value, out: &mut Batch) {
    let id = match id_of(v, "role definition") {
        Ok(id) => id,
        Err(e) => return out.skip("role definition", e),
    };
    let key = arm_key(id);
    let name = text(&v["properties"], "roleName")
        .or(text(v, "name"))
        .unwrap_or(id);
    out.record(&key, EntityKind::AzureRoleDefinition, id, name, v);
}

/// A role assignment: ALLOWS its scope, ASSIGNED its principal (whose key is
/// the directory object id), USES its role definition. A principal that no
/// longer exists leaves the ASSIGNED link dangling, not an error.
pub fn role_assignment(v: &Value, out: &mut Batch) {
    let id = match id_of(v, "role assignment") {
        Ok(id) => id,
        Err(e) => return out.skip("role assignment", e),
    };
    let key = arm_key(id);
    let p = &v["properties"];
    let principal_type = text(p, "principalType").unwrap_or("Principal");
    let scope = text(p, "scope");
    let scope_name = scope
        .map(|s| s.rsplit('/').next().unwrap_or(s))
        .filter(|s| !s.is_empty())
        .unwrap_or("/");
    let name = format!("{principal_type} at {scope_name}");
    out.record(&key, EntityKind::AzureRoleAssignment, id, &name, v);
    if let Some(s) = scope {
        out.rel(&key, Verb::Allows, &arm_key(s));
    }
    if let Some(pid) = text(p, "principalId") {
        out.rel(&key, Verb::Assigned, pid);
    }
    if let Some(def) = text(p, "roleDefinitionId") {
        out.rel(&key, Verb::Uses, &arm_key(def));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resources_are_typed_keyed_lower_case_and_linked_to_their_group() {
        let mut b = Batch::default();
        resource(
            &json!({"id": "/subscriptions/S1/resourceGroups/RG-App/providers/Microsoft.Compute/virtualMachines/vm1", "name": "vm1", "type": "microsoft.compute/virtualmachines",
            "properties": {"networkProfile": {"networkInterfaces": [{"id": "/subscriptions/S1/resourceGroups/RG-App/providers/Microsoft.Network/networkInterfaces/nic1"}]},
                           "storageProfile": {"osDisk": {"managedDisk": {"id": "/subscriptions/S1/resourceGroups/RG-App/providers/Microsoft.Compute/disks/d1"}}, "dataDisks": null}}}),
            &mut b,
        );
        assert_eq!(b.entities[0].kind, EntityKind::AzureVm);
        assert_eq!(
            &*b.entities[0].key,
            "/subscriptions/s1/resourcegroups/rg-app/providers/microsoft.compute/virtualmachines/vm1"
        );
        let rels: Vec<String> = b
            .relationships
            .iter()
            .map(|r| format!("{} {}", r.verb, r.to.rsplit('/').next().unwrap_or("")))
            .collect();
        assert_eq!(rels, ["HAS vm1", "USES nic1", "USES d1"]);
        assert_eq!(
            b.relationships.get(0).expect("one").from,
            "/subscriptions/s1/resourcegroups/rg-app"
        );
        let mut b = Batch::default();
        resource(
            &json!({"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Foo/bars/x", "type": "Microsoft.Foo/bars"}),
            &mut b,
        );
        assert_eq!(b.entities[0].kind, EntityKind::AzureResource);
    }

    #[test]
    fn vnets_bring_their_subnets() {
        let mut b = Batch::default();
        resource(
            &json!({"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v", "type": "Microsoft.Network/virtualNetworks",
            "properties": {"subnets": [{"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/default", "name": "default", "properties": {"networkSecurityGroup": {"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/networkSecurityGroups/n"}}}]}}),
            &mut b,
        );
        assert_eq!(b.entities.len(), 2);
        assert_eq!(b.entities[1].kind, EntityKind::AzureSubnet);
        assert!(b.relationships.iter().any(|r| r.verb == Verb::Contains));
        assert!(b.relationships.iter().any(|r| r.verb == Verb::Protects));
    }

    #[test]
    fn resource_graph_rows_read_in_place_give_what_values_give() {
        use crate::fetch::record::RawPage;
        // The simulated tenant's Resource Graph answer, as a fetch reads it.
        let t = tenx_sim::FakeTenant::generate(tenx_sim::FakeParams {
            users: 300,
            ..Default::default()
        });
        let rows: Vec<Value> = (0..t.resources.len())
            .map(|i| tenx_sim::render::resource(&t, i))
            .collect();
        assert!(rows.len() > 50);
        let body = json!({"totalRecords": rows.len(), "count": rows.len(), "data": rows, "$skipToken": "next"});
        let page =
            RawPage::scan_resource_graph(bytes::Bytes::from(body.to_string())).expect("scans");
        assert_eq!(page.next.as_deref(), Some("next"));
        let records = page.records();
        assert_eq!(records.len(), rows.len());
        for (record, row) in records.iter().zip(&rows) {
            let (mut in_place, mut from_value) = (Batch::default(), Batch::default());
            resource(record, &mut in_place);
            resource(row, &mut from_value);
            assert_eq!(in_place.relationships, from_value.relationships);
            assert_eq!(in_place.entities.len(), from_value.entities.len());
            for (a, b) in in_place.entities.iter().zip(&from_value.entities) {
                assert_eq!(
                    (&a.key, a.kind, &a.display_name),
                    (&b.key, b.kind, &b.display_name)
                );
                assert_eq!(a.properties(), b.properties(), "{}", a.key);
            }
        }
    }

    #[test]
    fn role_assignments_link_scope_principal_and_definition() {
        let mut b = Batch::default();
        role_assignment(
            &json!({"id": "/subscriptions/S/providers/Microsoft.Authorization/roleAssignments/a1", "name": "a1",
            "properties": {"scope": "/subscriptions/S", "principalId": "p1", "principalType": "User", "roleDefinitionId": "/subscriptions/S/providers/Microsoft.Authorization/roleDefinitions/R"}}),
            &mut b,
        );
        let rels: Vec<String> = b
            .relationships
            .iter()
            .map(|r| format!("{} {}", r.verb, r.to))
            .collect();
        assert_eq!(
            rels,
            [
                "ALLOWS /subscriptions/s",
                "ASSIGNED p1",
                "USES /subscriptions/s/providers/microsoft.authorization/roledefinitions/r"
            ]
        );
        assert_eq!(&*b.entities[0].display_name, "User at S");
    }
}
