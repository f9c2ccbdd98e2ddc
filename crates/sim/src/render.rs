//! What the simulated services answer with: one function per record type,
//! following Microsoft's documented JSON field for field (Graph v1.0 and beta
//! resource types, Defender for Endpoint API, ARM and Resource Graph).
//!
//! Size: long because it has one function per record type, each following
//! Microsoft's documented fields.

use serde_json::{Value, json};

use super::names::{CITIES, SOFTWARE, VULN_PRODUCTS};
use super::tenant::*;

/// RFC 3339 in UTC, the way Graph writes `DateTimeOffset`.
pub fn ts(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

/// Defender writes seven fractional digits.
fn ts7(secs: i64) -> String {
    let base = ts(secs);
    let whole = base.trim_end_matches('Z');
    format!("{whole}.{:07}Z", secs.rem_euclid(9_999_991) % 10_000_000)
}

const NEVER: &str = "0001-01-01T00:00:00Z";
const GRACE_NONE: &str = "9999-12-31T23:59:59.9999999Z";

pub fn organization(t: &FakeTenant) -> Value {
    json!({
        "id": t.tenant_id,
        "deletedDateTime": null,
        "businessPhones": ["+1 425 555 0100"],
        "city": "Redmond",
        "country": null,
        "countryLetterCode": "US",
        "createdDateTime": ts(EPOCH - 2400 * 86_400),
        "displayName": t.org_name,
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": null,
        "onPremisesSyncEnabled": null,
        "postalCode": "98052",
        "preferredLanguage": "en",
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": "WA",
        "street": "1 Example Way",
        "technicalNotificationMails": [format!("it@{}", t.domain)],
        "tenantType": "AAD",
        "directorySizeQuota": {"used": t.users.len() + t.groups.len(), "total": 300000},
        "assignedPlans": [],
        "privacyProfile": null,
        "provisionedPlans": [],
        "verifiedDomains": [
            {"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": true, "isInitial": true, "name": t.domain, "type": "Managed"}
        ]
    })
}

pub fn user(t: &FakeTenant, i: usize) -> Value {
    let u = &t.users[i];
    let (city, country) = match u.city {
        Some(c) => (Some(CITIES[c].0), Some(CITIES[c].1)),
        None => (None, None),
    };
    let mut v = json!({
        "id": u.id,
        "businessPhones": [],
        "displayName": u.display,
        "givenName": u.given,
        "jobTitle": u.job,
        "mail": u.mail,
        "mobilePhone": u.mobile,
        "officeLocation": city,
        "preferredLanguage": if u.city.is_some() { Some("en-US") } else { None },
        "surname": u.surname,
        "userPrincipalName": u.upn,
        "accountEnabled": u.enabled,
        "createdDateTime": ts(u.created),
        "department": u.dept,
        "employeeId": u.employee_id,
        "city": city,
        "country": country,
        "usageLocation": country,
        "userType": "Member",
        "onPremisesSyncEnabled": null,
        "employeeHireDate": null,
    });
    // Directory extension attributes appear under their generated names.
    if let Some(cc) = &u.cost_center {
        v[format!("extension_{}_costCenter", t.client_id.replace('-', ""))] = json!(cc);
    }
    v
}

pub fn group(t: &FakeTenant, i: usize) -> Value {
    let g = &t.groups[i];
    json!({
        "id": g.id,
        "deletedDateTime": null,
        "classification": null,
        "createdDateTime": ts(g.created),
        "description": g.description,
        "displayName": g.name,
        "groupTypes": match (g.unified, g.dynamic) {
            (true, true) => json!(["Unified", "DynamicMembership"]),
            (true, false) => json!(["Unified"]),
            (false, true) => json!(["DynamicMembership"]),
            (false, false) => json!([]),
        },
        "mail": if g.unified { Some(format!("{}@{}", g.nickname, t.domain)) } else { None },
        "mailEnabled": g.unified,
        "mailNickname": g.nickname,
        "membershipRule": if g.dynamic { Some("(user.department -eq \"Sales\")") } else { None },
        "membershipRuleProcessingState": if g.dynamic { Some("On") } else { None },
        "onPremisesSyncEnabled": null,
        "securityEnabled": g.security,
        "securityIdentifier": format!("S-1-12-1-{}", g.id.len() * 7919),
        "visibility": if g.unified { Some("Private") } else { None },
        "renewedDateTime": ts(g.created),
        "isAssignableToRole": null,
    })
}

pub fn service_principal(t: &FakeTenant, i: usize) -> Value {
    let s = &t.service_principals[i];
    json!({
        "id": s.id,
        "deletedDateTime": null,
        "accountEnabled": s.enabled,
        "appDisplayName": s.name,
        "appId": s.app_id,
        "appOwnerOrganizationId": if s.first_party { "f8cdef31-a31e-4b4a-93e4-5f571e91255a".to_string() } else { t.tenant_id.clone() },
        "appRoleAssignmentRequired": false,
        "displayName": s.name,
        "homepage": null,
        "servicePrincipalNames": [s.app_id],
        "servicePrincipalType": if s.managed_identity { "ManagedIdentity" } else { "Application" },
        "signInAudience": if s.managed_identity { None } else { Some("AzureADMyOrg") },
        "tags": if s.managed_identity { json!([]) } else { json!(["WindowsAzureActiveDirectoryIntegratedApp"]) },
        "appRoles": [],
        "notes": null,
    })
}

/// A group member as `/groups/{id}/members` returns it: a directoryObject
/// with its `@odata.type`.
pub fn member(t: &FakeTenant, m: Member) -> Value {
    match m {
        Member::User(u) => {
            let mut v = user(t, u as usize);
            v["@odata.type"] = json!("#microsoft.graph.user");
            v
        }
        Member::Group(g) => {
            let mut v = group(t, g as usize);
            v["@odata.type"] = json!("#microsoft.graph.group");
            v
        }
        Member::ServicePrincipal(s) => {
            let mut v = service_principal(t, s as usize);
            v["@odata.type"] = json!("#microsoft.graph.servicePrincipal");
            v
        }
        Member::Contact(c) => {
            let c = &t.contacts[c as usize];
            json!({
                "@odata.type": "#microsoft.graph.orgContact",
                "id": c.id,
                "displayName": c.name,
                "mail": c.mail,
                "companyName": c.company,
                "givenName": null,
                "surname": null,
                "jobTitle": null,
                "proxyAddresses": [format!("SMTP:{}", c.mail)],
            })
        }
        Member::Device(d) => {
            let d = &t.aad_devices[d as usize];
            json!({
                "@odata.type": "#microsoft.graph.device",
                "id": d.id,
                "accountEnabled": true,
                "deviceId": d.device_id,
                "displayName": d.name,
                "operatingSystem": d.os,
                "operatingSystemVersion": d.os_version,
                "trustType": "AzureAd",
                "isCompliant": null,
                "isManaged": true,
                "approximateLastSignInDateTime": ts(EPOCH - 86_400),
            })
        }
    }
}

pub fn managed_device(t: &FakeTenant, i: usize) -> Value {
    let d = &t.devices[i];
    let (_, manufacturer, model, _, _) = MODELS[d.model as usize];
    let owner = d.user.map(|u| &t.users[u as usize]);
    json!({
        "id": d.id,
        "userId": owner.map(|u| u.id.clone()),
        "deviceName": d.name,
        "managedDeviceOwnerType": if d.personal { "personal" } else { "company" },
        "enrolledDateTime": ts(d.enrolled),
        "lastSyncDateTime": d.last_sync.map(ts).unwrap_or_else(|| NEVER.to_string()),
        "operatingSystem": d.platform.operating_system(),
        "complianceState": d.compliance,
        "jailBroken": match d.platform { Platform::Ios | Platform::Android => "False", _ => "Unknown" },
        "managementAgent": match d.platform { Platform::Windows | Platform::MacOs | Platform::Linux => "mdm", _ => "easMdm" },
        "osVersion": d.os_version,
        "easActivated": matches!(d.platform, Platform::Ios | Platform::Android),
        "easDeviceId": if matches!(d.platform, Platform::Ios | Platform::Android) { Some(d.serial.clone()) } else { None },
        "easActivationDateTime": NEVER,
        "azureADRegistered": true,
        "deviceEnrollmentType": match d.platform { Platform::Windows => "windowsAzureADJoin", Platform::MacOs | Platform::Ios => "appleBulkWithUser", _ => "userEnrollment" },
        "activationLockBypassCode": null,
        "emailAddress": owner.and_then(|u| u.mail.clone()),
        "azureADDeviceId": d.aad_device_id,
        "deviceRegistrationState": "registered",
        "deviceCategoryDisplayName": "Unknown",
        "isSupervised": d.platform == Platform::Ios && !d.personal,
        "exchangeLastSuccessfulSyncDateTime": NEVER,
        "exchangeAccessState": "none",
        "exchangeAccessStateReason": "none",
        "remoteAssistanceSessionUrl": null,
        "remoteAssistanceSessionErrorDetails": null,
        "isEncrypted": d.encrypted,
        "userPrincipalName": owner.map(|u| u.upn.clone()),
        "model": model,
        "manufacturer": manufacturer,
        "imei": d.imei,
        "complianceGracePeriodExpirationDateTime": d.grace_expiry.map(ts).unwrap_or_else(|| GRACE_NONE.to_string()),
        "serialNumber": d.serial,
        "phoneNumber": null,
        "androidSecurityPatchLevel": if d.platform == Platform::Android { Some("2024-09-01") } else { None },
        "userDisplayName": owner.map(|u| u.display.clone()),
        "configurationManagerClientEnabledFeatures": null,
        "wiFiMacAddress": d.wifi_mac,
        "deviceHealthAttestationState": null,
        "subscriberCarrier": "",
        "meid": d.imei,
        "totalStorageSpaceInBytes": 255_108_800_512u64,
        "freeStorageSpaceInBytes": 101_834_555_392u64,
        "managedDeviceName": format!("{}_{}", owner.map(|u| u.upn.split('@').next().unwrap_or("")).unwrap_or("userless"), d.platform.operating_system()),
        "partnerReportedThreatState": "unknown",
        "requireUserEnrollmentApproval": null,
        "managementCertificateExpirationDate": ts(d.enrolled + 365 * 86_400),
        "iccid": null,
        "udid": null,
        "notes": null,
        "ethernetMacAddress": null,
        "physicalMemoryInBytes": 0,
        "enrollmentProfileName": null,
        // Newer than the documented v1.0 shape; clients must ignore it.
        "joinType": if d.platform == Platform::Windows { "azureADJoined" } else { "unknown" },
    })
}

pub fn compliance_policy(t: &FakeTenant, i: usize) -> Value {
    let p = &t.compliance_policies[i];
    let mut v = json!({
        "@odata.type": p.odata_type,
        "id": p.id,
        "createdDateTime": ts(p.created),
        "description": format!("{} ({} settings)", p.name, p.settings.len()),
        "lastModifiedDateTime": ts(p.created + 30 * 86_400),
        "displayName": p.name,
        "version": p.version,
    });
    match p.platform {
        Platform::Windows => {
            v["passwordRequired"] = json!(true);
            v["osMinimumVersion"] = json!("10.0.22631");
            v["bitLockerEnabled"] = json!(true);
            v["secureBootEnabled"] = json!(true);
            v["defenderEnabled"] = json!(true);
            v["rtpEnabled"] = json!(true);
            v["tpmRequired"] = json!(true);
        }
        Platform::MacOs => {
            v["storageRequireEncryption"] = json!(true);
            v["firewallEnabled"] = json!(true);
            v["osMinimumVersion"] = json!("14.0");
            v["systemIntegrityProtectionEnabled"] = json!(true);
        }
        Platform::Ios => {
            v["passcodeRequired"] = json!(true);
            v["passcodeMinimumLength"] = json!(6);
            v["securityBlockJailbrokenDevices"] = json!(true);
            v["osMinimumVersion"] = json!("17.0");
        }
        _ => {
            v["securityBlockJailbrokenDevices"] = json!(true);
            v["storageRequireEncryption"] = json!(true);
            v["minAndroidSecurityPatchLevel"] = json!("2024-06-01");
        }
    }
    v
}

/// `/deviceCompliancePolicies/{id}/deviceStatuses`: the documented shape has
/// no device id; the real service writes `{userId}_{policyId}_{deviceId}`
/// into `id`, and clients rely on it.
pub fn device_status(t: &FakeTenant, device: usize, policy_id: &str, status: &str) -> Value {
    let d = &t.devices[device];
    let owner = d.user.map(|u| &t.users[u as usize]);
    let user_id = owner
        .map(|u| u.id.as_str())
        .unwrap_or("00000000-0000-0000-0000-000000000000");
    json!({
        "id": format!("{user_id}_{policy_id}_{}", d.id),
        "deviceDisplayName": d.name,
        "userName": owner.map(|u| u.display.clone()).unwrap_or_else(|| "System account".into()),
        "deviceModel": MODELS[d.model as usize].2,
        "platform": 0,
        "complianceGracePeriodExpirationDateTime": d.grace_expiry.map(ts).unwrap_or_else(|| GRACE_NONE.to_string()),
        "status": status,
        "lastReportedDateTime": d.last_sync.map(ts).unwrap_or_else(|| NEVER.to_string()),
        "userPrincipalName": owner.map(|u| u.upn.clone()).unwrap_or_else(|| "System account".into()),
    })
}

/// `/managedDevices/{id}/deviceCompliancePolicyStates`.
pub fn device_policy_state(t: &FakeTenant, device: usize, state: &PolicyState) -> Value {
    let d = &t.devices[device];
    let p = &t.compliance_policies[state.policy as usize];
    let owner = d.user.map(|u| &t.users[u as usize]);
    let setting_states: Vec<Value> = p
        .settings
        .iter()
        .enumerate()
        .map(|(si, (setting, name))| {
            let failing = state.failing.contains(&(si as u8));
            json!({
                "setting": setting,
                "settingName": name,
                "instanceDisplayName": null,
                "state": if failing { state.status.as_str() } else { "compliant" },
                "errorCode": if failing && state.status == PolicyStatus::Error { -2016281112i64 } else { 0 },
                "errorDescription": null,
                "userId": owner.map(|u| u.id.clone()),
                "userName": owner.map(|u| u.display.clone()),
                "userEmail": owner.and_then(|u| u.mail.clone()),
                "userPrincipalName": owner.map(|u| u.upn.clone()),
                "sources": [{"id": p.id, "displayName": p.name, "sourceType": "deviceConfiguration"}],
                "currentValue": if failing { Some("false") } else { None },
            })
        })
        .collect();
    json!({
        "id": p.id,
        "settingStates": setting_states,
        "displayName": p.name,
        "version": p.version,
        "platformType": match p.platform { Platform::Windows => "windows10AndLater", Platform::MacOs => "macOS", Platform::Ios => "iOS", Platform::Android => "androidWorkProfile", Platform::Linux => "all" },
        "state": state.status.as_str(),
        "settingCount": p.settings.len(),
    })
}

pub fn configuration(t: &FakeTenant, i: usize) -> Value {
    let c = &t.configurations[i];
    json!({
        "@odata.type": c.odata_type,
        "id": c.id,
        "lastModifiedDateTime": ts(c.created + 10 * 86_400),
        "createdDateTime": ts(c.created),
        "description": null,
        "displayName": c.name,
        "version": c.version,
    })
}

/// `/deviceConfigurations/{id}/deviceStatuses` (deviceConfigurationDeviceStatus).
pub fn configuration_status(t: &FakeTenant, device: usize, config_id: &str, status: &str) -> Value {
    device_status(t, device, config_id, status)
}

pub fn detected_app(t: &FakeTenant, i: usize) -> Value {
    let a = &t.detected_apps[i];
    let (name, publisher, _, _) = SOFTWARE[a.software as usize];
    json!({
        "id": a.id,
        "displayName": name,
        "version": a.version,
        "sizeInByte": 48_234_496 + (a.software as u64) * 1_048_576,
        "deviceCount": a.devices.len(),
        "publisher": publisher,
        "platform": a.platform,
    })
}

pub fn mobile_app(t: &FakeTenant, i: usize) -> Value {
    let a = &t.mobile_apps[i];
    json!({
        "@odata.type": a.odata_type,
        "id": a.id,
        "displayName": a.name,
        "description": format!("{} deployed by IT", a.name),
        "publisher": a.publisher,
        "largeIcon": null,
        "createdDateTime": ts(a.created),
        "lastModifiedDateTime": ts(a.created + 20 * 86_400),
        "isFeatured": false,
        "privacyInformationUrl": null,
        "informationUrl": null,
        "owner": "",
        "developer": "",
        "notes": "",
        "publishingState": "published",
    })
}

/// beta `/mobileApps/{id}/deviceStatuses` (mobileAppInstallStatus).
/// The columns of Intune's `getDeviceInstallStatusReport`, in the order it
/// answers them without `select`, with their `PropertyType`. The names are
/// those community clients read (and memdocs' DeviceInstallStatusByApp
/// list); the Int32 codes are this simulated tenant's own, as no page
/// documents them.
pub const INSTALL_STATUS_COLUMNS: [(&str, &str); 18] = [
    ("DeviceId", "String"),
    ("ApplicationId", "String"),
    ("UserId", "String"),
    ("DeviceName", "String"),
    ("UserPrincipalName", "String"),
    ("UserName", "String"),
    ("Platform", "String"),
    ("AppVersion", "String"),
    ("ErrorCode", "Int32"),
    ("InstallState", "Int32"),
    ("InstallStateDetail", "Int32"),
    ("LastModifiedDateTime", "DateTime"),
    ("AssignmentFilterIdsExist", "Boolean"),
    ("HexErrorCode", "String"),
    ("AppInstallState", "Int32"),
    ("AppInstallState_loc", "String"),
    ("AppInstallStateDetails", "Int32"),
    ("AppInstallStateDetails_loc", "String"),
];

/// A device's row of a managed app's install status report, every column
/// in `INSTALL_STATUS_COLUMNS` order.
pub fn install_status_row(t: &FakeTenant, app: usize, device: usize, state: &str) -> Vec<Value> {
    let d = &t.devices[device];
    let owner = d.user.map(|u| &t.users[u as usize]);
    let (code, words) = match state {
        "installed" => (1, "Installed"),
        "failed" => (2, "Failed"),
        "notInstalled" => (3, "Not installed"),
        "uninstallFailed" => (4, "Uninstall failed"),
        "pendingInstall" => (5, "Install Pending"),
        "notApplicable" => (6, "Not applicable"),
        _ => (99, "Unknown"),
    };
    let error: i64 = if state == "failed" { -2016330908 } else { 0 };
    vec![
        json!(d.id),
        json!(t.mobile_apps[app].id),
        json!(owner.map(|u| u.id.clone()).unwrap_or_default()),
        json!(d.name),
        json!(owner.map(|u| u.upn.clone()).unwrap_or_default()),
        json!(owner.map(|u| u.display.clone()).unwrap_or_default()),
        json!(d.platform.operating_system()),
        json!(if state == "installed" { "1.0.0" } else { "" }),
        json!(error),
        json!(code),
        json!(0),
        json!(d.last_sync.map(ts).unwrap_or_else(|| NEVER.to_string())),
        json!(false),
        json!(format!("0x{:X}", error as u32)),
        json!(code),
        json!(words),
        json!(0),
        json!("No additional details"),
    ]
}

pub fn machine(t: &FakeTenant, i: usize) -> Value {
    let m = &t.machines[i];
    json!({
        "id": m.id,
        "computerDnsName": m.host,
        "firstSeen": ts7(m.first_seen),
        "lastSeen": ts7(m.last_seen),
        "osPlatform": m.os_platform,
        "onboardingStatus": "Onboarded",
        "osProcessor": "x64",
        "version": m.version.split('.').take(2).collect::<Vec<_>>().join("."),
        "osBuild": m.version.split('.').nth(2).and_then(|b| b.parse::<u64>().ok()),
        "lastIpAddress": m.ip,
        "lastExternalIpAddress": "203.0.113.17",
        "healthStatus": m.health,
        "rbacGroupName": "UnassignedGroup",
        "rbacGroupId": 0,
        "riskScore": m.risk,
        "exposureLevel": m.exposure,
        "isAadJoined": m.aad_device_id.is_some(),
        "aadDeviceId": m.aad_device_id,
        "machineTags": if m.device.is_none() { json!(["server"]) } else { json!([]) },
        "defenderAvStatus": "Updated",
        "onboardingStatusReason": null,
        "osArchitecture": "64-bit",
        "managedBy": if m.device.is_some() { "Intune" } else { "MicrosoftDefenderForEndpoint" },
        "managedByStatus": "Success",
        "ipAddresses": [{"ipAddress": m.ip, "macAddress": "000D3A1B2C3D", "type": "Ethernet", "operationalStatus": "Up"}],
        "vmMetadata": null,
    })
}

pub fn vulnerability(t: &FakeTenant, cve: usize, exposed: usize) -> Value {
    let c = &t.cves[cve];
    json!({
        "id": c.id,
        "name": c.id,
        "description": c.description,
        "severity": c.severity,
        "cvssV3": c.cvss,
        "cvssVector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C",
        "exposedMachines": exposed,
        "publishedOn": ts(c.published),
        "updatedOn": ts(c.published + 20 * 86_400),
        "firstDetected": ts(c.published + 2 * 86_400),
        "publicExploit": c.public_exploit,
        "exploitVerified": false,
        "exploitInKit": false,
        "exploitTypes": [],
        "exploitUris": [],
        "cveSupportability": "Supported",
        "epss": null,
        "tags": [],
    })
}

/// One row of `/api/vulnerabilities/machinesVulnerabilities` for the CVE's
/// own product.
pub fn machine_vulnerability(t: &FakeTenant, machine: usize, cve: usize) -> Value {
    machine_vulnerability_product(t, machine, cve, t.cves[cve].product as usize)
}

/// One row of `/api/vulnerabilities/machinesVulnerabilities`: one per
/// (machine, software, CVE).
pub fn machine_vulnerability_product(
    t: &FakeTenant,
    machine: usize,
    cve: usize,
    product: usize,
) -> Value {
    let m = &t.machines[machine];
    let c = &t.cves[cve];
    let (vendor, product, version) = VULN_PRODUCTS[product];
    json!({
        "id": format!("{}-_-{}-_-{vendor}-_-{product}-_-{version}-_-", m.id, c.id),
        "cveId": c.id,
        "machineId": m.id,
        "fixingKbId": if vendor == "microsoft" { Some(format!("{}", 5_040_000 + cve)) } else { None },
        "productName": product,
        "productVendor": vendor,
        "productVersion": version,
        "severity": c.severity,
    })
}

/// `/api/machines/{id}/logonusers` (Defender user resource).
pub fn logon_user(t: &FakeTenant, machine: usize, li: usize) -> Value {
    let l = &t.logon_users[li];
    let m = &t.machines[machine];
    json!({
        "id": format!("{}\\{}", l.domain.to_lowercase(), l.account_name),
        "accountName": l.account_name,
        "accountDomain": l.domain,
        "accountSid": l.sid,
        "firstSeen": ts7(m.first_seen),
        "lastSeen": ts7(m.last_seen),
        "mostPrevalentMachineId": m.id,
        "leastPrevalentMachineId": m.id,
        "logonTypes": if l.user.is_some() { "Interactive" } else { "Network" },
        "logOnMachinesCount": 1,
        "isDomainAdmin": l.domain_admin,
        "isOnlyNetworkUser": l.user.is_none(),
    })
}

pub fn subscription(t: &FakeTenant, i: usize) -> Value {
    let s = &t.subscriptions[i];
    json!({
        "id": format!("/subscriptions/{}", s.id),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": s.id,
        "tenantId": t.tenant_id,
        "displayName": s.name,
        "state": s.state,
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "EnterpriseAgreement_2014-09-01", "spendingLimit": "Off"},
        "tags": null,
    })
}

pub fn resource_group(t: &FakeTenant, i: usize) -> Value {
    let g = &t.resource_groups[i];
    json!({
        "id": t.rg_id(i as u32),
        "name": g.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": g.location,
        "managedBy": null,
        "tags": if i % 3 == 0 { json!({"costCenter": "CC-204"}) } else { Value::Null },
        "properties": {"provisioningState": "Succeeded"},
    })
}

/// A resource as the ARM resource listing returns it (no `properties`).
pub fn resource(t: &FakeTenant, i: usize) -> Value {
    let r = &t.resources[i];
    let mut v = json!({
        "id": t.resource_id(r),
        "name": r.name,
        "type": r.arm_type,
        "location": r.location,
    });
    if let Some(k) = r.kind {
        v["kind"] = json!(k);
    }
    if let Some(s) = &r.sku {
        v["sku"] = s.clone();
    }
    if let Some(tags) = &r.tags {
        v["tags"] = tags.clone();
    }
    v
}

/// A row of the Resource Graph `Resources` table: the resource with its
/// `properties` and the projected helper columns.
pub fn resource_graph_row(t: &FakeTenant, i: usize) -> Value {
    let r = &t.resources[i];
    let g = &t.resource_groups[r.rg as usize];
    json!({
        "id": t.resource_id(r),
        "name": r.name,
        "type": r.arm_type.to_lowercase(),
        "tenantId": t.tenant_id,
        "kind": r.kind.unwrap_or(""),
        "location": r.location,
        "resourceGroup": g.name.to_lowercase(),
        "subscriptionId": t.subscriptions[r.sub as usize].id,
        "managedBy": "",
        "sku": r.sku.clone().unwrap_or(Value::Null),
        "plan": null,
        "properties": r.properties,
        "tags": r.tags.clone().unwrap_or(json!({})),
        "identity": null,
        "zones": null,
        "extendedLocation": null,
    })
}

pub fn role_definition(t: &FakeTenant, sub: usize, i: usize) -> Value {
    let d = &t.role_definitions[i];
    json!({
        "id": t.role_definition_id(sub, i),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": d.guid,
        "properties": {
            "roleName": d.name,
            "type": if d.custom { "CustomRole" } else { "BuiltInRole" },
            "description": d.description,
            "assignableScopes": if d.custom { json!([format!("/subscriptions/{}", t.subscriptions[sub].id)]) } else { json!(["/"]) },
            "permissions": [{"actions": d.actions, "notActions": [], "dataActions": [], "notDataActions": []}],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2024-04-16T18:26:34.3537322Z",
            "createdBy": null,
            "updatedBy": null,
        }
    })
}

/// A role assignment as a subscription's listing shows it.
pub fn role_assignment(t: &FakeTenant, sub: usize, a: &RoleAssignment) -> Value {
    // Inherited assignments name their definition under the first
    // subscription, so every listing agrees on one id.
    let def_sub = if a.inherited_everywhere { 0 } else { sub };
    json!({
        "id": format!("{}/providers/Microsoft.Authorization/roleAssignments/{}", a.scope, a.guid),
        "type": "Microsoft.Authorization/roleAssignments",
        "name": a.guid,
        "properties": {
            "roleDefinitionId": t.role_definition_id(def_sub, a.role as usize),
            "principalId": a.principal_id,
            "principalType": a.principal_type,
            "scope": a.scope,
            "condition": null,
            "conditionVersion": null,
            "createdOn": ts(a.created),
            "updatedOn": ts(a.created),
            "createdBy": null,
            "updatedBy": null,
            "delegatedManagedIdentityResourceId": null,
            "description": null,
        }
    })
}
