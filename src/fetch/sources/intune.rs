//! Intune: managed devices and their agents; compliance policies, each
//! policy's device statuses and, for devices that fail, their per-device
//! policy states with the failing settings; configurations and their device
//! statuses; detected apps and the devices that have them; managed apps and
//! the devices each is assigned to (from the Intune report of their
//! per-device install state, beta).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use super::collect::first_error;
use super::context::Ctx;
use crate::auth::endpoints::Api;
use crate::fetch::http::{HttpError, MAX_BATCH};
use crate::ingest::{Batch, intune as ingest, text};
use crate::model::{EntityKind, Verb};

/// A (device, policy) pair in a failing state, waiting for its settings.
struct Failing {
    device: String,
    policy: String,
    state: String,
    row: Value,
}

pub async fn run(ctx: &Ctx) {
    let devices = ctx.read(
        Api::Graph,
        "managed devices",
        "/v1.0/deviceManagement/managedDevices?$top=1000",
        |v, b| ingest::managed_device(v, b),
    );
    let detected = detected_apps(ctx);
    let managed = managed_apps(ctx);
    let (_, _, _, detected_names, managed_names) = tokio::join!(
        devices,
        configurations(ctx),
        compliance(ctx),
        detected,
        managed
    );
    // A managed app MANAGES the detected apps of the same name.
    let mut b = Batch::default();
    let mut by_name: HashMap<String, Vec<&String>> = HashMap::new();
    for (id, name) in &detected_names {
        by_name.entry(name.to_lowercase()).or_default().push(id);
    }
    for (app, name) in &managed_names {
        for d in by_name.get(&name.to_lowercase()).into_iter().flatten() {
            b.rel(app, Verb::Manages, d);
        }
    }
    ctx.send("managed apps", b);
}

async fn compliance(ctx: &Ctx) {
    let policies = ctx
        .list(
            Api::Graph,
            "compliance policies",
            "/v1.0/deviceManagement/deviceCompliancePolicies",
            |v, b| {
                ingest::compliance_policy(v, b);
                text(v, "id").map(String::from)
            },
        )
        .await;
    // Statuses and findings are read per policy.
    let per_policy = ["compliance device statuses", "noncompliance findings"];
    if !ctx.can_read_per_item(&policies, &per_policy) || policies.items.is_empty() {
        return;
    }
    // Failing rows go to `findings` as their pages arrive, so the failing
    // devices' policy states are read while later status pages still come.
    let (failing_tx, failing_rx) = tokio::sync::mpsc::unbounded_channel::<Failing>();
    let statuses = async move {
        ctx.each(
            &policies,
            "compliance device statuses",
            |id| {
                // What a finding keeps of its row, and no more.
                format!(
                    "/deviceManagement/deviceCompliancePolicies/{id}/deviceStatuses?$select=id,status,{}",
                    ingest::FINDING_ROW_FIELDS.join(",")
                )
            },
            |policy, v, b| {
                let Some((device, state)) =
                    ingest::device_status(policy, EntityKind::IntuneCompliancePolicy, v, b)
                else {
                    return;
                };
                if ingest::is_failing_state(state) {
                    let _ = failing_tx.send(Failing {
                        device: device.to_string(),
                        policy: policy.clone(),
                        state: state.to_ascii_lowercase(),
                        row: crate::ingest::Json::to_value(v),
                    });
                }
            },
        )
        .await;
        drop(failing_tx);
    };
    tokio::join!(statuses, findings(ctx, failing_rx));
}

/// A device's policy states as read: (policy id, what its findings need).
type PolicyStates = Vec<(String, ingest::PolicyState)>;

/// Reads failing devices' policy states (20 devices a `$batch`, sent as
/// soon as 20 are known) and emits one finding per failing (device, policy)
/// with its settings. A device failing several policies is read once.
async fn findings(ctx: &Ctx, mut failing: UnboundedReceiver<Failing>) {
    use futures::StreamExt;
    let mut queued: Vec<String> = Vec::new();
    let mut waiting: HashMap<String, Vec<Failing>> = HashMap::new();
    // A device's states once read; `None` when they could not be.
    let mut states: HashMap<String, Option<PolicyStates>> = HashMap::new();
    let mut running = futures::stream::FuturesUnordered::new();
    let (mut total, mut unknown, mut err) = (0usize, 0usize, None);
    let mut b = Batch::default();
    let mut open = true;
    let emit = |f: &Failing, known: Option<&PolicyStates>, b: &mut Batch| {
        let state = known
            .and_then(|s| s.iter().find(|(id, _)| *id == f.policy))
            .map(|(_, state)| state);
        ingest::finding(&f.device, &f.policy, &f.state, &f.row, state, b);
    };
    loop {
        while queued.len() >= MAX_BATCH || (!open && !queued.is_empty()) {
            let n = queued.len().min(MAX_BATCH);
            running.push(policy_states(ctx, queued.drain(..n).collect()));
        }
        tokio::select! {
            f = failing.recv(), if open => match f {
                Some(f) => {
                    total += 1;
                    if let Some(known) = states.get(&f.device) {
                        if known.is_none() {
                            unknown += 1;
                        }
                        emit(&f, known.as_ref(), &mut b);
                    } else {
                        // A device waits from its first failing pair until
                        // its states are read: the first pair asks for them.
                        let w = waiting.entry(f.device.clone()).or_default();
                        if w.is_empty() {
                            queued.push(f.device.clone());
                        }
                        w.push(f);
                    }
                }
                None => open = false,
            },
            Some(read) = running.next(), if !running.is_empty() => {
                for (device, result) in read {
                    let known = match result {
                        Ok(s) => Some(s),
                        Err(e) => {
                            err.get_or_insert(e);
                            None
                        }
                    };
                    for f in waiting.remove(&device).unwrap_or_default() {
                        if known.is_none() {
                            unknown += 1;
                        }
                        emit(&f, known.as_ref(), &mut b);
                    }
                    states.insert(device, known);
                }
                let n = b.entities.len();
                if n >= 2000 {
                    ctx.progress("noncompliance findings", n, false);
                    ctx.send("noncompliance findings", b.take());
                }
            }
            else => break,
        }
    }
    ctx.progress("noncompliance findings", b.entities.len(), false);
    ctx.send("noncompliance findings", b);
    if unknown > 0 {
        ctx.warn(format!(
            "noncompliance findings: the failing settings of {unknown} findings could not be read"
        ));
    }
    ctx.finish(
        "noncompliance findings",
        match err {
            Some(e) => Err(e),
            None => Ok(total),
        },
    );
}

/// The policy states of up to 20 devices, one `$batch`: each device's
/// states, or why they could not be read.
async fn policy_states(
    ctx: &Ctx,
    devices: Vec<String>,
) -> Vec<(String, Result<PolicyStates, HttpError>)> {
    let paths: Vec<String> = devices
        .iter()
        .map(|d| format!("/deviceManagement/managedDevices/{d}/deviceCompliancePolicyStates"))
        .collect();
    let read: Mutex<HashMap<usize, PolicyStates>> = Mutex::new(HashMap::new());
    let results = ctx
        .http
        .batch_pages("v1.0", &paths, |i, items| {
            let kept = items.iter().filter_map(ingest::PolicyState::read);
            if let Ok(mut m) = read.lock() {
                m.entry(i).or_default().extend(kept);
            }
        })
        .await;
    let mut read = read.into_inner().unwrap_or_default();
    devices
        .into_iter()
        .zip(results)
        .enumerate()
        .map(|(i, (d, r))| (d, r.map(|_| read.remove(&i).unwrap_or_default())))
        .collect()
}

/// Configurations and their device statuses. A configuration that fails
/// on a device (error, conflict) is a noncompliance finding the
/// configuration IDENTIFIED, as a failing compliance policy's is; its
/// failing settings are not read (that would be a request per device).
async fn configurations(ctx: &Ctx) {
    // (id, name) of each configuration.
    let configs = ctx
        .list(
            Api::Graph,
            "device configurations",
            "/v1.0/deviceManagement/deviceConfigurations",
            |v, b| {
                ingest::configuration(v, b);
                let id = text(v, "id")?;
                let name = text(v, "displayName").unwrap_or(id);
                Some((id.to_string(), name.to_string()))
            },
        )
        .await;
    ctx.each(
        &configs,
        "configuration device statuses",
        |(id, _)| {
            // Whether the device has the configuration, and what a finding
            // keeps of a failing row.
            format!(
                "/deviceManagement/deviceConfigurations/{id}/deviceStatuses?$select=id,status,{}",
                ingest::FINDING_ROW_FIELDS.join(",")
            )
        },
        |(id, name), v, b| {
            let Some((device, state)) =
                ingest::device_status(id, EntityKind::IntuneDeviceConfiguration, v, b)
            else {
                return;
            };
            if ingest::is_failing_state(state) {
                let row = crate::ingest::Json::to_value(v);
                ingest::configuration_finding(
                    device,
                    id,
                    name,
                    &state.to_ascii_lowercase(),
                    &row,
                    b,
                );
            }
        },
    )
    .await;
}

/// Detected apps and, per app, the devices that have it. Returns (id, name).
async fn detected_apps(ctx: &Ctx) -> Vec<(String, String)> {
    let apps = ctx
        .list(
            Api::Graph,
            "detected apps",
            "/v1.0/deviceManagement/detectedApps?$top=1000",
            |v, b| ingest::detected_app(v, b),
        )
        .await;
    ctx.each(
        &apps,
        "devices per detected app",
        |(id, _)| {
            format!("/deviceManagement/detectedApps/{id}/managedDevices?$select=id,deviceName")
        },
        |(id, _), v, b| ingest::app_device(id, v, b),
    )
    .await;
    apps.items
}

/// Managed apps and, per app, the devices it is assigned to, from the
/// Intune report of its per-device install state (Graph beta
/// `deviceManagement/reports/getDeviceInstallStatusReport`): the
/// `mobileApps/{id}/deviceStatuses` listing tenx read before was removed in
/// 2023 and answers 400 (see `report`). Returns (id, name).
async fn managed_apps(ctx: &Ctx) -> Vec<(String, String)> {
    use futures::StreamExt;
    let apps = ctx
        .list(
            Api::Graph,
            "managed apps",
            "/v1.0/deviceAppManagement/mobileApps",
            |v, b| ingest::mobile_app(v, b),
        )
        .await;
    const COLLECTION: &str = "managed app install states";
    if !ctx.can_read_per_item(&apps, &[COLLECTION]) || apps.items.is_empty() {
        return apps.items;
    }
    let ids: Vec<String> = apps.items.iter().map(|(id, _)| id.clone()).collect();
    let results: Vec<Result<usize, HttpError>> = futures::stream::iter(ids)
        .map(|id| async move {
            // Only which device has the app is kept.
            ctx.http
                .report_rows(
                    crate::fetch::report::IntuneReport::DeviceInstallStatus,
                    // An OData string literal doubles its quotes.
                    &format!("(ApplicationId eq '{}')", id.replace('\'', "''")),
                    &["DeviceId"],
                    |page| {
                        let mut b = Batch::default();
                        match page.column("DeviceId") {
                            Some(at) => {
                                for row in &page.rows {
                                    ingest::app_install_row(&id, row.get(at), &mut b);
                                }
                            }
                            None if page.rows.is_empty() => {}
                            None => {
                                for _ in &page.rows {
                                    b.skip(
                                        &format!("an install status row of managed app {id}"),
                                        "the report has no DeviceId column",
                                    );
                                }
                            }
                        }
                        ctx.progress(COLLECTION, page.rows.len(), false);
                        ctx.send(COLLECTION, b);
                    },
                )
                .await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    ctx.finish(COLLECTION, first_error(results));
    apps.items
}
