//! Intune: managed devices (typed by what they are), their agents,
//! compliance policies and noncompliance findings, configurations, detected
//! and managed apps.

use serde_json::{Map, Value, json};

use super::{Batch, JoinHint, Json, id_of, text};
use crate::model::{EntityKind, Verb};

/// The key of the Intune agent on a device.
pub fn agent_key(device_id: &str) -> String {
    format!("{device_id}|intune_host_agent")
}

/// The key of a noncompliance finding: `{deviceId}|{policyId}`.
pub fn finding_key(device_id: &str, policy_id: &str) -> String {
    format!("{device_id}|{policy_id}")
}

/// What a device is, from the v1.0 properties (`operatingSystem`, `model`):
/// v1.0 has no chassis type, so the model name decides, as an administrator
/// reading the device list would.
pub fn device_kind(operating_system: &str, model: &str) -> EntityKind {
    let os = operating_system.to_ascii_lowercase();
    let m = model.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if m == "virtual machine" || has(&["vmware virtual", "kvm", "hvm domu", "virtualbox"]) {
        return EntityKind::Server;
    }
    if os.contains("server") {
        return EntityKind::Server;
    }
    match os.as_str() {
        "ios" | "ipados" | "android" | "androidforwork" | "androidenterprise"
        | "windows mobile" => {
            if has(&["ipad", "tab", "tablet"]) {
                EntityKind::UserEndpoint
            } else {
                EntityKind::Smartphone
            }
        }
        "windows" | "macos" | "mac os x" | "linux" | "ubuntu" | "chrome os" | "chromeos" => {
            if has(&[
                "laptop",
                "notebook",
                "book",
                "latitude",
                "thinkpad",
                "xps",
                "elitebook",
                "probook",
                "zbook",
                "surface pro",
                "yoga",
                "spectre",
                "envy x360",
            ]) {
                EntityKind::Laptop
            } else if has(&[
                "workstation",
                "precision",
                "thinkstation",
                "mac pro",
                "mac studio",
                " z4",
                " z6",
                " z8",
            ]) || m.starts_with("z4")
            {
                EntityKind::Workstation
            } else if has(&[
                "desktop",
                "optiplex",
                "thinkcentre",
                "elitedesk",
                "prodesk",
                "imac",
                "mac mini",
                "tower",
                "all-in-one",
            ]) {
                EntityKind::Desktop
            } else {
                EntityKind::Computer
            }
        }
        _ => EntityKind::UserEndpoint,
    }
}

pub fn managed_device(v: &impl Json, out: &mut Batch) {
    let id = match id_of(v, "managed device") {
        Ok(id) => id,
        Err(e) => return out.skip("managed device", e),
    };
    let name = text(v, "deviceName")
        .or(text(v, "managedDeviceName"))
        .unwrap_or(id);
    let kind = device_kind(
        text(v, "operatingSystem").unwrap_or(""),
        text(v, "model").unwrap_or(""),
    );
    out.record(id, kind, id, name, v);
    let agent = agent_key(id);
    let agent_props = v.pick(&[
        "managementAgent",
        "complianceState",
        "lastSyncDateTime",
        "enrolledDateTime",
        "deviceEnrollmentType",
        "deviceRegistrationState",
    ]);
    out.entity_props(
        &agent,
        EntityKind::IntuneHostAgent,
        id,
        &format!("Intune agent on {name}"),
        agent_props,
    );
    out.rel(&agent, Verb::Manages, id);
    if let Some(user) = text(v, "userId") {
        out.rel(user, Verb::Owns, id);
    }
    out.hints.push(JoinHint::Device {
        key: id.to_string(),
        aad_device_id: text(v, "azureADDeviceId")
            .filter(|s| *s != "00000000-0000-0000-0000-000000000000")
            .map(str::to_ascii_lowercase),
        host: name.to_ascii_lowercase(),
    });
}

pub fn compliance_policy(v: &impl Json, out: &mut Batch) {
    let id = match id_of(v, "compliance policy") {
        Ok(id) => id,
        Err(e) => return out.skip("compliance policy", e),
    };
    out.record(
        id,
        EntityKind::IntuneCompliancePolicy,
        id,
        text(v, "displayName").unwrap_or(id),
        v,
    );
}

pub fn configuration(v: &impl Json, out: &mut Batch) {
    let id = match id_of(v, "device configuration") {
        Ok(id) => id,
        Err(e) => return out.skip("device configuration", e),
    };
    out.record(
        id,
        EntityKind::IntuneDeviceConfiguration,
        id,
        text(v, "displayName").unwrap_or(id),
        v,
    );
}

/// States that make a (device, policy) pair a finding. Both spellings of
/// noncompliant (`nonCompliant` in policy reports, `noncompliant` in
/// `complianceState`) compare equal after lower-casing.
pub fn is_failing_state(state: &str) -> bool {
    ["noncompliant", "error", "conflict"]
        .iter()
        .any(|failing| state.eq_ignore_ascii_case(failing))
}

/// What a noncompliance finding keeps of its policy's `deviceStatuses` row
/// (besides `id` and `status`, which every row is read for).
pub const FINDING_ROW_FIELDS: [&str; 5] = [
    "deviceDisplayName",
    "userPrincipalName",
    "userName",
    "lastReportedDateTime",
    "complianceGracePeriodExpirationDateTime",
];

/// One row of a policy's or configuration's `deviceStatuses`. The device id
/// is the last `_`-separated part of the row's `id`
/// (`{userId}_{policyId}_{deviceId}`). Links the device's agent to the
/// policy and returns (device id, state) for the caller to collect findings.
pub fn device_status<'a>(
    policy_id: &str,
    policy_kind: EntityKind,
    v: &'a impl Json,
    out: &mut Batch,
) -> Option<(&'a str, &'a str)> {
    let row_id = match id_of(v, "device status") {
        Ok(id) => id,
        Err(e) => {
            out.skip(&format!("a device status of {policy_id}"), e);
            return None;
        }
    };
    let Some((_, device_id)) = row_id.rsplit_once('_').filter(|(_, d)| !d.is_empty()) else {
        out.skip(
            &format!("device status {row_id} of {policy_id}"),
            "its id names no device",
        );
        return None;
    };
    // As written: most rows only link, and lower-casing each was a string
    // per row. Of the complianceStatus values, notApplicable and
    // notAssigned say the policy does not apply to the device: no
    // assignment. Unknown and remediated are assigned and not failing.
    let state = text(v, "status").unwrap_or("unknown");
    if state.eq_ignore_ascii_case("notApplicable") || state.eq_ignore_ascii_case("notAssigned") {
        return None;
    }
    debug_assert!(matches!(
        policy_kind,
        EntityKind::IntuneCompliancePolicy | EntityKind::IntuneDeviceConfiguration
    ));
    out.rel(&agent_key(device_id), Verb::Assigned, policy_id);
    Some((device_id, state))
}

/// What a finding needs of one entry of a device's
/// `deviceCompliancePolicyStates`: the policy's name and its failing
/// settings. Entries are reduced to this as they arrive, so a device's
/// states (several kilobytes, most of them passing settings) are neither
/// kept nor parsed again for each of its findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyState {
    pub display_name: Option<String>,
    /// The failing settings: `setting`, `settingName`, `state`,
    /// `currentValue` and `errorCode` of each.
    pub failing: Vec<Value>,
}

/// The fields of a setting state that a finding keeps; others are skipped
/// unread. Any JSON type is accepted for each, as the service may send.
#[derive(serde::Deserialize)]
struct SettingState<'a> {
    #[serde(borrow, default)]
    setting: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, rename = "settingName")]
    setting_name: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    state: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, rename = "currentValue")]
    current_value: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, rename = "errorCode")]
    error_code: Option<&'a serde_json::value::RawValue>,
}

const SETTING_FIELDS: [&str; 5] = [
    "setting",
    "settingName",
    "state",
    "currentValue",
    "errorCode",
];

impl PolicyState {
    /// An entry of a device's `deviceCompliancePolicyStates`, keyed by its
    /// policy id; `None` when it names no policy.
    pub fn read(v: &impl Json) -> Option<(String, PolicyState)> {
        let id = text(v, "id")?.to_string();
        let failing = v
            .raw_field("settingStates")
            .map(|raw| failing_settings(&raw))
            .unwrap_or_default();
        Some((
            id,
            PolicyState {
                display_name: text(v, "displayName").map(String::from),
                failing,
            },
        ))
    }
}

/// The failing entries of a `settingStates` array. The usual shape is read
/// field by field; anything else (a null, an entry that is not an object, a
/// repeated field) through a full parse, with the same result.
fn failing_settings(raw: &str) -> Vec<Value> {
    let value = |r: Option<&serde_json::value::RawValue>| {
        r.and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
            .unwrap_or(Value::Null)
    };
    if let Ok(states) = serde_json::from_str::<Vec<SettingState>>(raw) {
        // Most settings pass: only a failing one's fields become values.
        let failing = |s: &SettingState| {
            let Some(raw) = s.state else { return false };
            match serde_json::from_str::<&str>(raw.get()) {
                Ok(state) => is_failing_state(state.trim()),
                // Escaped, or not a string.
                Err(_) => matches!(value(s.state), Value::String(t) if is_failing_state(t.trim())),
            }
        };
        return states
            .into_iter()
            .filter(failing)
            .map(|s| {
                setting([
                    value(s.setting),
                    value(s.setting_name),
                    value(s.state),
                    value(s.current_value),
                    value(s.error_code),
                ])
            })
            .collect();
    }
    let Ok(Value::Array(states)) = serde_json::from_str::<Value>(raw) else {
        return Vec::new();
    };
    states
        .iter()
        .filter(|s| text(*s, "state").is_some_and(is_failing_state))
        .map(|s| setting(SETTING_FIELDS.map(|n| s.get(n).cloned().unwrap_or(Value::Null))))
        .collect()
}

/// A failing setting as a finding keeps it: `SETTING_FIELDS` and their
/// values, in that order.
fn setting(values: [Value; 5]) -> Value {
    Value::Object(
        SETTING_FIELDS
            .map(String::from)
            .into_iter()
            .zip(values)
            .collect(),
    )
}

/// A noncompliance finding for (device, policy) with the failing settings
/// from the device's `deviceCompliancePolicyStates` entry for that policy
/// (`None` when it could not be read).
pub fn finding(
    device_id: &str,
    policy_id: &str,
    state: &str,
    status_row: &Value,
    policy_state: Option<&PolicyState>,
    out: &mut Batch,
) {
    let key = finding_key(device_id, policy_id);
    let failing = policy_state.map(|p| p.failing.clone()).unwrap_or_default();
    let names: Vec<String> = failing
        .iter()
        .filter_map(|s| {
            text(s, "settingName")
                .or(text(s, "setting"))
                .map(String::from)
        })
        .collect();
    let policy_name = policy_state
        .and_then(|p| p.display_name.as_deref())
        .unwrap_or(policy_id);
    let device_name = text(status_row, "deviceDisplayName").unwrap_or(device_id);
    let mut p = Map::new();
    p.insert("deviceId".into(), json!(device_id));
    p.insert("policyId".into(), json!(policy_id));
    p.insert("state".into(), json!(state));
    p.insert("failingSettings".into(), Value::Array(failing));
    p.insert("failingSettingNames".into(), json!(names));
    p.insert("settingsKnown".into(), json!(policy_state.is_some()));
    for f in FINDING_ROW_FIELDS {
        if let Some(x) = status_row.get(f) {
            p.insert(f.into(), x.clone());
        }
    }
    let name = format!("{policy_name} on {device_name}");
    out.entity(&key, EntityKind::IntuneNoncomplianceFinding, &key, &name, p);
    out.rel(device_id, Verb::Has, &key);
    out.rel(policy_id, Verb::Identified, &key);
}

/// A noncompliance finding of a configuration that fails on a device
/// (`error`, `conflict`): keyed `{deviceId}|{configurationId}` like a
/// compliance policy's, IDENTIFIED by the configuration. Which settings
/// fail is not read (`settingsKnown` false).
pub fn configuration_finding(
    device_id: &str,
    config_id: &str,
    config_name: &str,
    state: &str,
    status_row: &Value,
    out: &mut Batch,
) {
    let key = finding_key(device_id, config_id);
    let device_name = text(status_row, "deviceDisplayName").unwrap_or(device_id);
    let mut p = Map::new();
    p.insert("deviceId".into(), json!(device_id));
    p.insert("policyId".into(), json!(config_id));
    p.insert("policyType".into(), json!("deviceConfiguration"));
    p.insert("state".into(), json!(state));
    p.insert("failingSettings".into(), json!([]));
    p.insert("failingSettingNames".into(), json!([]));
    p.insert("settingsKnown".into(), json!(false));
    for f in FINDING_ROW_FIELDS {
        if let Some(x) = status_row.get(f) {
            p.insert(f.into(), x.clone());
        }
    }
    let name = format!("{config_name} on {device_name}");
    out.entity(&key, EntityKind::IntuneNoncomplianceFinding, &key, &name, p);
    out.rel(device_id, Verb::Has, &key);
    out.rel(config_id, Verb::Identified, &key);
}

pub fn detected_app(v: &impl Json, out: &mut Batch) -> Option<(String, String)> {
    let id = match id_of(v, "detected app") {
        Ok(id) => id,
        Err(e) => {
            out.skip("detected app", e);
            return None;
        }
    };
    let name = text(v, "displayName").unwrap_or(id);
    let label = match text(v, "version") {
        Some(ver) => format!("{name} {ver}"),
        None => name.to_string(),
    };
    out.record(id, EntityKind::IntuneDetectedApplication, id, &label, v);
    Some((id.to_string(), name.to_string()))
}

/// A device listed under a detected app: the device INSTALLED the app.
pub fn app_device(app_id: &str, v: &impl Json, out: &mut Batch) {
    match id_of(v, "device of a detected app") {
        Ok(d) => out.rel(d, Verb::Installed, app_id),
        Err(e) => out.skip(&format!("a device of detected app {app_id}"), e),
    }
}

pub fn mobile_app(v: &impl Json, out: &mut Batch) -> Option<(String, String)> {
    let id = match id_of(v, "managed app") {
        Ok(id) => id,
        Err(e) => {
            out.skip("managed app", e);
            return None;
        }
    };
    let name = text(v, "displayName").unwrap_or(id);
    out.record(id, EntityKind::IntuneManagedApplication, id, name, v);
    Some((id.to_string(), name.to_string()))
}

/// A row of a managed app's device install status report
/// (`getDeviceInstallStatusReport`), given its `DeviceId` cell: the device
/// is ASSIGNED the app, whatever its install state. A row for a user
/// without a device has an empty `DeviceId` and is left out.
pub fn app_install_row(app_id: &str, device_id: Option<&Value>, out: &mut Batch) {
    match device_id {
        Some(Value::String(d)) if !d.trim().is_empty() => out.rel(d.trim(), Verb::Assigned, app_id),
        Some(Value::String(_)) | Some(Value::Null) => {}
        _ => out.skip(
            &format!("an install status row of managed app {app_id}"),
            "no DeviceId",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_typed_by_what_they_are() {
        use EntityKind::*;
        let cases = [
            ("Windows", "Latitude 7440", Laptop),
            ("Windows", "Surface Laptop 5", Laptop),
            ("Windows", "HP EliteBook 840 G10 Notebook PC", Laptop),
            ("Windows", "OptiPlex 7010", Desktop),
            ("Windows", "HP EliteDesk 800 G9 Desktop Mini PC", Desktop),
            ("Windows", "Precision 5860 Tower", Workstation),
            ("Windows", "HP Z4 G5 Workstation", Workstation),
            ("Windows", "Virtual Machine", Server),
            ("Windows", "", Computer),
            ("macOS", "MacBook Air (M2, 2022)", Laptop),
            ("macOS", "iMac (24-inch, 2023)", Desktop),
            ("macOS", "Mac Studio (2023)", Workstation),
            ("iOS", "iPhone 15", Smartphone),
            ("iOS", "iPad Air (5th generation)", UserEndpoint),
            ("Android", "Galaxy Tab S9", UserEndpoint),
            ("android", "SM-S911B", Smartphone),
            ("Linux", "ThinkPad T14 Gen 4", Laptop),
            ("Linux", "", Computer),
            ("Windows Server", "PowerEdge R750", Server),
            ("HoloLens", "HoloLens 2", UserEndpoint),
            ("", "", UserEndpoint),
        ];
        for (os, model, kind) in cases {
            assert_eq!(device_kind(os, model), kind, "{os} / {model}");
        }
    }

    #[test]
    fn a_device_brings_its_agent_its_owner_and_join_facts() {
        let mut b = Batch::default();
        managed_device(
            &json!({"id": "d1", "deviceName": "LAPTOP-AB12", "operatingSystem": "Windows", "model": "Latitude 7440", "userId": "u1", "azureADDeviceId": "AAD-1", "complianceState": "noncompliant", "lastSyncDateTime": "0001-01-01T00:00:00Z", "someNewField": [1, 2]}),
            &mut b,
        );
        assert_eq!(b.entities.len(), 2);
        assert_eq!(b.entities[0].kind, EntityKind::Laptop);
        assert_eq!(b.entities[1].kind, EntityKind::IntuneHostAgent);
        let rels: Vec<String> = b.relationships.iter().map(|r| r.key()).collect();
        assert_eq!(rels, ["d1|intune_host_agent|MANAGES|d1", "u1|OWNS|d1"]);
        assert_eq!(
            b.hints,
            vec![JoinHint::Device {
                key: "d1".into(),
                aad_device_id: Some("aad-1".into()),
                host: "laptop-ab12".into()
            }]
        );
        // A device without a user owns nothing.
        let mut b = Batch::default();
        managed_device(
            &json!({"id": "d2", "deviceName": "KIOSK", "userId": "", "azureADDeviceId": "00000000-0000-0000-0000-000000000000"}),
            &mut b,
        );
        assert_eq!(b.relationships.len(), 1);
        assert!(matches!(
            &b.hints[0],
            JoinHint::Device {
                aad_device_id: None,
                ..
            }
        ));
    }

    #[test]
    fn device_statuses_name_the_device_in_their_id_and_findings_carry_failing_settings() {
        let mut b = Batch::default();
        let row = json!({"id": "u1_p1_d1", "status": "nonCompliant", "deviceDisplayName": "LAPTOP-AB12", "userPrincipalName": "ava@x"});
        let got = device_status("p1", EntityKind::IntuneCompliancePolicy, &row, &mut b);
        assert_eq!(got, Some(("d1", "nonCompliant")));
        assert!(
            is_failing_state("nonCompliant")
                && is_failing_state("noncompliant")
                && is_failing_state("Conflict")
        );
        assert!(!is_failing_state("compliant") && !is_failing_state("inGracePeriod"));
        // Every complianceStatus value: which are findings, which assign.
        for (status, finding, assigned) in [
            ("unknown", false, true),
            ("notApplicable", false, false),
            ("compliant", false, true),
            ("remediated", false, true),
            ("nonCompliant", true, true),
            ("error", true, true),
            ("conflict", true, true),
            ("notAssigned", false, false),
        ] {
            assert_eq!(is_failing_state(status), finding, "{status}");
            let mut b = Batch::default();
            let row = json!({"id": "u_c1_d9", "status": status});
            let got = device_status("c1", EntityKind::IntuneDeviceConfiguration, &row, &mut b);
            assert_eq!(got.is_some(), assigned, "{status}");
            assert_eq!(b.relationships.len(), usize::from(assigned), "{status}");
        }
        assert_eq!(
            device_status(
                "p1",
                EntityKind::IntuneCompliancePolicy,
                &json!({"id": "x_p1_d2", "status": "notApplicable"}),
                &mut b
            ),
            None
        );
        let state = json!({"id": "p1", "displayName": "Windows baseline", "state": "nonCompliant", "settingStates": [
            {"setting": "Windows10CompliancePolicy.BitLockerEnabled", "settingName": "Require BitLocker", "state": "nonCompliant", "currentValue": "false"},
            {"setting": "Windows10CompliancePolicy.SecureBootEnabled", "settingName": "Secure Boot", "state": "compliant"},
            {"setting": "Windows10CompliancePolicy.TpmRequired", "settingName": null, "state": "error"}
        ]});
        let (policy, state) = PolicyState::read(&state).expect("names its policy");
        assert_eq!(policy, "p1");
        finding("d1", "p1", "noncompliant", &row, Some(&state), &mut b);
        let f = b.entities.last().expect("finding");
        assert_eq!(&*f.key, "d1|p1");
        assert_eq!(&*f.display_name, "Windows baseline on LAPTOP-AB12");
        assert_eq!(
            f.prop("failingSettingNames"),
            Some(json!([
                "Require BitLocker",
                "Windows10CompliancePolicy.TpmRequired"
            ]))
        );
        let rels: Vec<String> = b.relationships.iter().map(|r| r.key()).collect();
        assert!(rels.contains(&"d1|HAS|d1|p1".to_string()));
        assert!(rels.contains(&"p1|IDENTIFIED|d1|p1".to_string()));
        assert!(rels.contains(&"d1|intune_host_agent|ASSIGNED|p1".to_string()));
    }

    #[test]
    fn failing_settings_read_the_same_from_a_record_as_from_any_value() {
        let text = r#"{"id": "p1", "displayName": " Baseline ", "settingStates": [
            {"setting": "S.BitLocker", "settingName": "Require BitLocker", "state": "nonCompliant",
             "currentValue": "false", "errorCode": 0, "sources": [{"id": "p1"}], "userName": "Ava"},
            {"setting": "S.Tpm", "settingName": null, "state": " Error ", "errorCode": 65009},
            {"setting": "S.Boot", "state": "compliant", "currentValue": {"nested": [1, 2]}},
            {"setting": "S.Odd", "state": 3}
        ]}"#;
        let record = crate::fetch::record::Record::from_json(text).expect("record");
        let value: Value = serde_json::from_str(text).expect("value");
        let (_, from_record) = PolicyState::read(&record).expect("read");
        let (_, from_value) = PolicyState::read(&value).expect("read");
        assert_eq!(from_record, from_value);
        assert_eq!(from_record.display_name.as_deref(), Some("Baseline"));
        assert_eq!(
            from_record.failing,
            vec![
                json!({"setting": "S.BitLocker", "settingName": "Require BitLocker", "state": "nonCompliant", "currentValue": "false", "errorCode": 0}),
                json!({"setting": "S.Tpm", "settingName": null, "state": " Error ", "currentValue": null, "errorCode": 65009}),
            ]
        );
        // Shapes the field-by-field reading refuses go through a full parse.
        for odd in [
            r#"[{"state": "error", "state": "error", "setting": "S.Twice"}, 7]"#,
            r#"[null, {"setting": "S.Twice", "state": "error"}]"#,
        ] {
            assert_eq!(
                failing_settings(odd),
                vec![
                    json!({"setting": "S.Twice", "settingName": null, "state": "error", "currentValue": null, "errorCode": null})
                ],
                "{odd}"
            );
        }
        assert!(failing_settings("null").is_empty() && failing_settings("{}").is_empty());
        assert_eq!(PolicyState::read(&json!({"displayName": "no id"})), None);
    }
}
