//! The ground truth of a simulated tenant: how many entities and
//! relationships of each `_type` a correct client derives from what the
//! server answers. Written from the generator's facts, not from our ingest
//! code, so tests that compare the two mean something.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::tenant::{FakeTenant, Member, PolicyStatus};
use tenx_kinds::{EntityKind, Verb, relationship_type};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub entities: BTreeMap<String, usize>,
    pub relationships: BTreeMap<String, usize>,
    /// Managed device ids with at least one open noncompliance finding (of
    /// a compliance policy or a configuration).
    #[serde(rename = "noncompliantDevices")]
    pub noncompliant_devices: Vec<String>,
}

impl Manifest {
    fn entity(&mut self, kind: EntityKind, n: usize) {
        if n > 0 {
            *self
                .entities
                .entry(kind.type_name().to_string())
                .or_default() += n;
        }
    }
    fn rel(&mut self, from: EntityKind, verb: Verb, to: EntityKind, n: usize) {
        if n > 0 {
            *self
                .relationships
                .entry(relationship_type(from, verb, to))
                .or_default() += n;
        }
    }

    pub fn total_entities(&self) -> usize {
        self.entities.values().sum()
    }

    pub fn total_relationships(&self) -> usize {
        self.relationships.values().sum()
    }

    pub fn of(t: &FakeTenant) -> Manifest {
        use EntityKind as K;
        let mut m = Manifest::default();
        m.entity(K::AzureAccount, 1);
        m.entity(K::AzureUser, t.users.len());
        m.entity(K::AzureUserGroup, t.groups.len());
        m.entity(K::AzureServicePrincipal, t.service_principals.len());
        m.rel(K::AzureAccount, Verb::Has, K::AzureUser, t.users.len());
        m.rel(
            K::AzureAccount,
            Verb::Has,
            K::AzureUserGroup,
            t.groups.len(),
        );
        m.rel(
            K::AzureAccount,
            Verb::Has,
            K::AzureServicePrincipal,
            t.service_principals.len(),
        );

        let mut other_members = HashSet::new();
        for g in &t.groups {
            let distinct: HashSet<&Member> = g.members.iter().collect();
            for mem in distinct {
                let to = match mem {
                    Member::User(_) => K::AzureUser,
                    Member::Group(_) => K::AzureUserGroup,
                    Member::ServicePrincipal(_) => K::AzureServicePrincipal,
                    Member::Contact(_) | Member::Device(_) => {
                        other_members.insert(*mem);
                        K::AzureGroupMember
                    }
                };
                m.rel(K::AzureUserGroup, Verb::Has, to, 1);
            }
        }
        m.entity(K::AzureGroupMember, other_members.len());

        // Intune
        m.entity(K::IntuneHostAgent, t.devices.len());
        m.entity(K::IntuneCompliancePolicy, t.compliance_policies.len());
        m.entity(K::IntuneDeviceConfiguration, t.configurations.len());
        m.entity(K::IntuneDetectedApplication, t.detected_apps.len());
        m.entity(K::IntuneManagedApplication, t.mobile_apps.len());
        for d in &t.devices {
            let kind = d.kind();
            m.entity(kind, 1);
            m.rel(K::IntuneHostAgent, Verb::Manages, kind, 1);
            if d.user.is_some() {
                m.rel(K::AzureUser, Verb::Owns, kind, 1);
            }
            // A row of notApplicable or notAssigned is no assignment.
            let config_status = |st: &str| PolicyStatus::parse(st).unwrap_or(PolicyStatus::Unknown);
            m.rel(
                K::IntuneHostAgent,
                Verb::Assigned,
                K::IntuneCompliancePolicy,
                d.policy_states
                    .iter()
                    .filter(|s| s.status.is_assigned())
                    .count(),
            );
            m.rel(
                K::IntuneHostAgent,
                Verb::Assigned,
                K::IntuneDeviceConfiguration,
                d.config_states
                    .iter()
                    .filter(|(_, st)| config_status(st).is_assigned())
                    .count(),
            );
            // Noncompliant, error and conflict rows are findings, of
            // compliance policies and of configurations alike (seed 000:
            // both IDENTIFIED intune_noncompliance_finding).
            let findings = d
                .policy_states
                .iter()
                .filter(|s| s.status.is_finding())
                .count();
            let config_findings = d
                .config_states
                .iter()
                .filter(|(_, st)| config_status(st).is_finding())
                .count();
            m.entity(K::IntuneNoncomplianceFinding, findings + config_findings);
            m.rel(
                kind,
                Verb::Has,
                K::IntuneNoncomplianceFinding,
                findings + config_findings,
            );
            m.rel(
                K::IntuneCompliancePolicy,
                Verb::Identified,
                K::IntuneNoncomplianceFinding,
                findings,
            );
            m.rel(
                K::IntuneDeviceConfiguration,
                Verb::Identified,
                K::IntuneNoncomplianceFinding,
                config_findings,
            );
            if findings + config_findings > 0 {
                m.noncompliant_devices.push(d.id.clone());
            }
            m.rel(
                kind,
                Verb::Installed,
                K::IntuneDetectedApplication,
                d.apps.len(),
            );
            m.rel(
                kind,
                Verb::Assigned,
                K::IntuneManagedApplication,
                d.managed_apps.len(),
            );
        }
        m.noncompliant_devices.sort();
        for app in &t.mobile_apps {
            let same_name = t
                .detected_apps
                .iter()
                .filter(|d| super::names::SOFTWARE[d.software as usize].0 == app.name)
                .count();
            m.rel(
                K::IntuneManagedApplication,
                Verb::Manages,
                K::IntuneDetectedApplication,
                same_name,
            );
        }

        // Defender
        m.entity(K::DefenderMachine, t.machines.len());
        m.rel(
            K::AzureAccount,
            Verb::Has,
            K::DefenderMachine,
            t.machines.len(),
        );
        let mut cves = HashSet::new();
        let mut logons = HashSet::new();
        for machine in &t.machines {
            if let Some(d) = machine.device {
                m.rel(
                    K::DefenderMachine,
                    Verb::Manages,
                    t.devices[d as usize].kind(),
                    1,
                );
            }
            m.entity(K::DefenderVulnerability, machine.vulns.len());
            m.rel(
                K::DefenderMachine,
                Verb::Identified,
                K::DefenderVulnerability,
                machine.vulns.len(),
            );
            m.rel(
                K::DefenderVulnerability,
                Verb::Is,
                K::Cve,
                machine.vulns.len(),
            );
            cves.extend(machine.vulns.iter().copied());
            let distinct: HashSet<&u32> = machine.logons.iter().collect();
            m.rel(
                K::DefenderMachine,
                Verb::Has,
                K::DefenderLogonUser,
                distinct.len(),
            );
            logons.extend(distinct);
        }
        m.entity(K::Cve, cves.len());
        m.entity(K::DefenderLogonUser, logons.len());
        let matched = logons
            .iter()
            .filter(|&&&l| t.logon_users[l as usize].user.is_some())
            .count();
        m.rel(K::DefenderLogonUser, Verb::Is, K::AzureUser, matched);

        // Azure
        m.entity(K::AzureSubscription, t.subscriptions.len());
        m.rel(
            K::AzureAccount,
            Verb::Has,
            K::AzureSubscription,
            t.subscriptions.len(),
        );
        m.entity(K::AzureResourceGroup, t.resource_groups.len());
        m.rel(
            K::AzureSubscription,
            Verb::Has,
            K::AzureResourceGroup,
            t.resource_groups.len(),
        );
        let mut ids = std::collections::HashMap::new();
        let mut by_id = std::collections::HashMap::new();
        for (i, r) in t.resources.iter().enumerate() {
            let kind = EntityKind::for_arm_type(r.arm_type);
            let id = t.resource_id(r).to_lowercase();
            by_id.insert(id.clone(), i);
            ids.insert(id, kind);
            m.entity(kind, 1);
            m.rel(K::AzureResourceGroup, Verb::Has, kind, 1);
        }
        let id_list = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x["id"].as_str().map(str::to_lowercase))
                        .collect()
                })
                .unwrap_or_default()
        };
        for r in &t.resources {
            let p = &r.properties;
            match EntityKind::for_arm_type(r.arm_type) {
                K::AzureVnet => {
                    let n = id_list(&p["subnets"]).len();
                    m.entity(K::AzureSubnet, n);
                    m.rel(K::AzureVnet, Verb::Contains, K::AzureSubnet, n);
                }
                K::AzureVm => {
                    let nics = id_list(&p["networkProfile"]["networkInterfaces"]);
                    m.rel(K::AzureVm, Verb::Uses, K::AzureNic, nics.len());
                    if p["storageProfile"]["osDisk"]["managedDisk"]["id"].is_string() {
                        m.rel(K::AzureVm, Verb::Uses, K::AzureManagedDisk, 1);
                    }
                    // The VM's public IPs are those of its NICs.
                    for nic in nics {
                        if let Some(&ni) = by_id.get(&nic) {
                            for cfg in t.resources[ni].properties["ipConfigurations"]
                                .as_array()
                                .into_iter()
                                .flatten()
                            {
                                if cfg["properties"]["publicIPAddress"]["id"].is_string() {
                                    m.rel(K::AzureVm, Verb::Uses, K::AzurePublicIp, 1);
                                }
                            }
                        }
                    }
                }
                K::AzureSecurityGroup => {
                    m.rel(
                        K::AzureSecurityGroup,
                        Verb::Protects,
                        K::AzureNic,
                        id_list(&p["networkInterfaces"]).len(),
                    );
                    m.rel(
                        K::AzureSecurityGroup,
                        Verb::Protects,
                        K::AzureSubnet,
                        id_list(&p["subnets"]).len(),
                    );
                }
                _ => {}
            }
        }
        m.entity(
            K::AzureRoleDefinition,
            t.subscriptions.len() * t.role_definitions.len(),
        );
        m.entity(K::AzureRoleAssignment, t.role_assignments.len());
        let users: HashSet<&str> = t.users.iter().map(|u| u.id.as_str()).collect();
        let groups: HashSet<&str> = t.groups.iter().map(|g| g.id.as_str()).collect();
        let sps: HashSet<&str> = t.service_principals.iter().map(|s| s.id.as_str()).collect();
        for a in &t.role_assignments {
            m.rel(
                K::AzureRoleAssignment,
                Verb::Uses,
                K::AzureRoleDefinition,
                1,
            );
            let p = a.principal_id.as_str();
            let principal = if users.contains(p) {
                Some(K::AzureUser)
            } else if groups.contains(p) {
                Some(K::AzureUserGroup)
            } else if sps.contains(p) {
                Some(K::AzureServicePrincipal)
            } else {
                None
            };
            if let Some(k) = principal {
                m.rel(K::AzureRoleAssignment, Verb::Assigned, k, 1);
            }
            let scope = a.scope.to_lowercase();
            let scope_kind = if scope.starts_with("/providers/microsoft.management/") {
                None
            } else if !scope.contains("/resourcegroups/") {
                Some(K::AzureSubscription)
            } else if !scope.contains("/providers/") {
                Some(K::AzureResourceGroup)
            } else {
                ids.get(&scope).copied()
            };
            if let Some(k) = scope_kind {
                m.rel(K::AzureRoleAssignment, Verb::Allows, k, 1);
            }
        }
        m
    }
}
