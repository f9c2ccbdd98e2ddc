//! Entra ID: organization, users, groups, group members, service principals.

use super::{Batch, JoinHint, Json, id_of, text};
use crate::model::{EntityKind, Verb};

/// `$select` for `/users`: what the explorer, search and triage show.
pub const USER_FIELDS: &str = "id,displayName,givenName,surname,userPrincipalName,mail,jobTitle,department,officeLocation,city,country,usageLocation,accountEnabled,createdDateTime,userType,employeeId,mobilePhone,businessPhones,onPremisesSyncEnabled";

pub fn organization(v: &impl Json, out: &mut Batch) {
    let id = match id_of(v, "organization") {
        Ok(id) => id,
        Err(e) => return out.skip("organization", e),
    };
    let name = text(v, "displayName").unwrap_or(id);
    out.record(id, EntityKind::AzureAccount, id, name, v);
}

pub fn user(v: &impl Json, tenant: &str, out: &mut Batch) {
    let id = match id_of(v, "user") {
        Ok(id) => id,
        Err(e) => return out.skip("user", e),
    };
    let upn = text(v, "userPrincipalName");
    let name = text(v, "displayName").or(upn).unwrap_or(id);
    out.record(id, EntityKind::AzureUser, id, name, v);
    out.rel(tenant, Verb::Has, id);
    if let Some(upn) = upn {
        let local = upn.split('@').next().unwrap_or(upn).to_ascii_lowercase();
        out.hints.push(JoinHint::User {
            key: id.to_string(),
            upn_local: local,
        });
    }
}

pub fn group(v: &impl Json, tenant: &str, out: &mut Batch) {
    let id = match id_of(v, "group") {
        Ok(id) => id,
        Err(e) => return out.skip("group", e),
    };
    let name = text(v, "displayName")
        .or(text(v, "mailNickname"))
        .unwrap_or(id);
    out.record(id, EntityKind::AzureUserGroup, id, name, v);
    out.rel(tenant, Verb::Has, id);
}

pub fn service_principal(v: &impl Json, tenant: &str, out: &mut Batch) {
    let id = match id_of(v, "service principal") {
        Ok(id) => id,
        Err(e) => return out.skip("service principal", e),
    };
    let name = text(v, "displayName")
        .or(text(v, "appDisplayName"))
        .unwrap_or(id);
    out.record(id, EntityKind::AzureServicePrincipal, id, name, v);
    out.rel(tenant, Verb::Has, id);
}

/// One member of a group, by its `@odata.type`: users, groups and service
/// principals are linked to the entities their own listings create; anything
/// else (org contacts, devices, …) becomes an `azure_group_member`.
pub fn member(group_id: &str, v: &impl Json, out: &mut Batch) {
    let id = match id_of(v, "group member") {
        Ok(id) => id,
        Err(e) => return out.skip(&format!("a member of group {group_id}"), e),
    };
    let ty = text(v, "@odata.type").unwrap_or("").to_ascii_lowercase();
    match ty.trim_start_matches('#') {
        "microsoft.graph.user" | "microsoft.graph.group" | "microsoft.graph.serviceprincipal" => {}
        _ => {
            let name = text(v, "displayName").or(text(v, "mail")).unwrap_or(id);
            out.record(id, EntityKind::AzureGroupMember, id, name, v);
        }
    }
    out.rel(group_id, Verb::Has, id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_tolerate_nulls_unicode_and_extension_attributes() {
        let mut b = Batch::default();
        user(
            &json!({"id": "u1", "displayName": "李小龙", "givenName": null, "mail": null, "userPrincipalName": "Li.Xiaolong@contoso.onmicrosoft.com", "extension_abc_costCenter": "CC-1", "unknownField": {"x": 1}}),
            "t",
            &mut b,
        );
        assert_eq!(b.entities.len(), 1);
        assert_eq!(&*b.entities[0].display_name, "李小龙");
        assert!(
            b.entities[0]
                .props_json()
                .contains("extension_abc_costCenter")
        );
        assert_eq!(
            b.hints,
            vec![JoinHint::User {
                key: "u1".into(),
                upn_local: "li.xiaolong".into()
            }]
        );
        assert_eq!(b.relationships.get(0).expect("one").key(), "t|HAS|u1");
        user(&json!({"displayName": "no id"}), "t", &mut b);
        user(&json!("not an object"), "t", &mut b);
        assert_eq!(b.skipped.len(), 2);
        assert_eq!(b.entities.len(), 1);
    }

    #[test]
    fn members_by_odata_type() {
        let mut b = Batch::default();
        for m in [
            json!({"@odata.type": "#microsoft.graph.user", "id": "u"}),
            json!({"@odata.type": "#microsoft.graph.group", "id": "g2"}),
            json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": "sp"}),
            json!({"@odata.type": "#microsoft.graph.orgContact", "id": "c", "displayName": "Ext"}),
            json!({"@odata.type": "#microsoft.graph.device", "id": "d", "displayName": "LAPTOP-1"}),
        ] {
            member("g1", &m, &mut b);
        }
        assert_eq!(b.relationships.len(), 5);
        let kinds: Vec<_> = b.entities.iter().map(|e| (&*e.key, e.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("c", EntityKind::AzureGroupMember),
                ("d", EntityKind::AzureGroupMember)
            ]
        );
    }
}
