//! Intune: managed devices and their agents; compliance policies, each
//! policy's device statuses and, for devices that fail, their per-device
//! policy states with the failing settings; configurations and their device
//! statuses; detected apps and the devices that have them; managed apps and
//! (beta, which alone has per-device install state) their device statuses.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::endpoints::Api;
use crate::fetch::Ctx;
use crate::http::HttpError;
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
    let devices = async {
        let r = ctx
            .http
            .get_pages(
                Api::Graph,
                "/v1.0/deviceManagement/managedDevices?$top=1000",
                |items| {
                    let mut b = Batch::default();
                    for v in &items {
                        ingest::managed_device(v, &mut b);
                    }
                    ctx.progress("managed devices", items.len(), false);
                    ctx.send(b);
                },
            )
            .await;
        ctx.finish("managed devices", r);
    };
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
    ctx.send(b);
}

async fn compliance(ctx: &Ctx) {
    let mut policies = Vec::new();
    let r = ctx
        .http
        .get_pages(
            Api::Graph,
            "/v1.0/deviceManagement/deviceCompliancePolicies",
            |items| {
                let mut b = Batch::default();
                for v in &items {
                    ingest::compliance_policy(v, &mut b);
                    if let Some(id) = text(v, "id") {
                        policies.push(id.to_string());
                    }
                }
                ctx.progress("compliance policies", items.len(), false);
                ctx.send(b);
            },
        )
        .await;
    ctx.finish("compliance policies", r);
    if policies.is_empty() {
        return;
    }
    let failing: Mutex<Vec<Failing>> = Mutex::new(Vec::new());
    let paths = super::per_item(&policies, |id| {
        format!("/deviceManagement/deviceCompliancePolicies/{id}/deviceStatuses")
    });
    let results = ctx
        .http
        .batch_pages("v1.0", &paths, |i, items| {
            let mut b = Batch::default();
            for v in &items {
                if let Some((device, state)) = ingest::device_status(
                    &policies[i],
                    EntityKind::IntuneCompliancePolicy,
                    v,
                    &mut b,
                ) {
                    if ingest::is_failing_state(&state) {
                        if let Ok(mut f) = failing.lock() {
                            f.push(Failing {
                                device,
                                policy: policies[i].clone(),
                                state,
                                row: crate::ingest::Json::to_value(v),
                            });
                        }
                    }
                }
            }
            ctx.progress("compliance device statuses", items.len(), false);
            ctx.send(b);
        })
        .await;
    ctx.finish("compliance device statuses", first_error(results));
    let failing = failing.into_inner().unwrap_or_default();
    findings(ctx, failing).await;
}

/// Reads the failing devices' policy states (20 devices a `$batch`) and
/// emits one finding per failing (device, policy) with its settings.
async fn findings(ctx: &Ctx, failing: Vec<Failing>) {
    let mut by_device: HashMap<&str, Vec<&Failing>> = HashMap::new();
    for f in &failing {
        by_device.entry(f.device.as_str()).or_default().push(f);
    }
    let mut devices: Vec<&str> = by_device.keys().copied().collect();
    devices.sort_unstable();
    let paths = super::per_item(
        &devices.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        |d| format!("/deviceManagement/managedDevices/{d}/deviceCompliancePolicyStates"),
    );
    let states: Mutex<HashMap<usize, Vec<Value>>> = Mutex::new(HashMap::new());
    let results = ctx
        .http
        .batch_pages("v1.0", &paths, |i, items| {
            // Only the states of the policies this device fails are read
            // further; the rest of its answer is left in place.
            let wanted = &by_device[devices[i]];
            let kept = items
                .iter()
                .filter(|r| {
                    let id = r.str("id");
                    wanted.iter().any(|f| Some(f.policy.as_str()) == id)
                })
                .map(crate::record::Record::to_value);
            if let Ok(mut s) = states.lock() {
                s.entry(i).or_default().extend(kept);
            }
        })
        .await;
    let states = states.into_inner().unwrap_or_default();
    let mut unknown = 0;
    let mut err = None;
    let mut b = Batch::default();
    for (i, result) in results.into_iter().enumerate() {
        if let Err(e) = result {
            unknown += by_device[devices[i]].len();
            err.get_or_insert(e);
        }
        let device_states = states.get(&i);
        for f in &by_device[devices[i]] {
            let state = device_states
                .and_then(|s| s.iter().find(|p| text(p, "id") == Some(f.policy.as_str())));
            ingest::finding(&f.device, &f.policy, &f.state, &f.row, state, &mut b);
        }
        if b.entities.len() >= 2000 {
            ctx.send(b.take());
        }
    }
    ctx.progress("noncompliance findings", failing.len(), false);
    ctx.send(b);
    if unknown > 0 {
        ctx.warn(format!(
            "noncompliance findings: the failing settings of {unknown} findings could not be read"
        ));
    }
    ctx.finish(
        "noncompliance findings",
        match err {
            Some(e) => Err(e),
            None => Ok(failing.len()),
        },
    );
}

async fn configurations(ctx: &Ctx) {
    let mut configs = Vec::new();
    let r = ctx
        .http
        .get_pages(
            Api::Graph,
            "/v1.0/deviceManagement/deviceConfigurations",
            |items| {
                let mut b = Batch::default();
                for v in &items {
                    ingest::configuration(v, &mut b);
                    if let Some(id) = text(v, "id") {
                        configs.push(id.to_string());
                    }
                }
                ctx.progress("device configurations", items.len(), false);
                ctx.send(b);
            },
        )
        .await;
    ctx.finish("device configurations", r);
    if configs.is_empty() {
        return;
    }
    let paths = super::per_item(&configs, |id| {
        format!("/deviceManagement/deviceConfigurations/{id}/deviceStatuses")
    });
    let results = ctx
        .http
        .batch_pages("v1.0", &paths, |i, items| {
            let mut b = Batch::default();
            for v in &items {
                ingest::device_status(
                    &configs[i],
                    EntityKind::IntuneDeviceConfiguration,
                    v,
                    &mut b,
                );
            }
            ctx.progress("configuration device statuses", items.len(), false);
            ctx.send(b);
        })
        .await;
    ctx.finish("configuration device statuses", first_error(results));
}

/// Detected apps and, per app, the devices that have it. Returns (id, name).
async fn detected_apps(ctx: &Ctx) -> Vec<(String, String)> {
    let mut apps = Vec::new();
    let r = ctx
        .http
        .get_pages(
            Api::Graph,
            "/v1.0/deviceManagement/detectedApps?$top=1000",
            |items| {
                let mut b = Batch::default();
                for v in &items {
                    if let Some(app) = ingest::detected_app(v, &mut b) {
                        apps.push(app);
                    }
                }
                ctx.progress("detected apps", items.len(), false);
                ctx.send(b);
            },
        )
        .await;
    ctx.finish("detected apps", r);
    if apps.is_empty() {
        return apps;
    }
    let ids: Vec<String> = apps.iter().map(|(id, _)| id.clone()).collect();
    let paths = super::per_item(&ids, |id| {
        format!("/deviceManagement/detectedApps/{id}/managedDevices?$select=id,deviceName")
    });
    let results = ctx
        .http
        .batch_pages("v1.0", &paths, |i, items| {
            let mut b = Batch::default();
            for v in &items {
                ingest::app_device(&ids[i], v, &mut b);
            }
            ctx.progress("devices per detected app", items.len(), false);
            ctx.send(b);
        })
        .await;
    ctx.finish("devices per detected app", first_error(results));
    apps
}

async fn managed_apps(ctx: &Ctx) -> Vec<(String, String)> {
    let mut apps = Vec::new();
    let r = ctx
        .http
        .get_pages(
            Api::Graph,
            "/v1.0/deviceAppManagement/mobileApps",
            |items| {
                let mut b = Batch::default();
                for v in &items {
                    if let Some(app) = ingest::mobile_app(v, &mut b) {
                        apps.push(app);
                    }
                }
                ctx.progress("managed apps", items.len(), false);
                ctx.send(b);
            },
        )
        .await;
    ctx.finish("managed apps", r);
    if apps.is_empty() {
        return apps;
    }
    let ids: Vec<String> = apps.iter().map(|(id, _)| id.clone()).collect();
    let paths = super::per_item(&ids, |id| {
        format!("/deviceAppManagement/mobileApps/{id}/deviceStatuses")
    });
    let results = ctx
        .http
        .batch_pages("beta", &paths, |i, items| {
            let mut b = Batch::default();
            for v in &items {
                ingest::mobile_app_status(&ids[i], v, &mut b);
            }
            ctx.progress("managed app install states", items.len(), false);
            ctx.send(b);
        })
        .await;
    ctx.finish("managed app install states", first_error(results));
    apps
}

pub fn first_error(results: Vec<Result<usize, HttpError>>) -> Result<usize, HttpError> {
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok(total)
}
