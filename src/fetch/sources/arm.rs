//! Azure Resource Manager: subscriptions; per subscription its resource
//! groups, role definitions and role assignments; every resource with its
//! properties through Azure Resource Graph.

use futures::StreamExt;

use super::context::Ctx;
use crate::auth::endpoints::Api;
use crate::ingest::{Batch, arm as ingest, text};

const API_RESOURCES: &str = "api-version=2021-04-01";
const API_AUTHZ: &str = "api-version=2022-04-01";
const API_SUBSCRIPTIONS: &str = "api-version=2022-12-01";

pub async fn run(ctx: &Ctx) {
    let mut subs: Vec<String> = Vec::new();
    let mut not_read: Vec<String> = Vec::new();
    let mut disabled: Vec<String> = Vec::new();
    let r = ctx
        .http
        .get_pages(
            Api::Arm,
            &format!("/subscriptions?{API_SUBSCRIPTIONS}"),
            |items| {
                ctx.ingest("subscriptions", &items, |v, b| {
                    ingest::subscription(&v.to_value(), &ctx.tenant, b);
                    let Some(id) = text(v, "subscriptionId") else {
                        return;
                    };
                    // A disabled subscription is read-only, and reads of it
                    // work (ARM refuses only writes, with
                    // ReadOnlyDisabledSubscription): it is read, and said.
                    // A deleted one has nothing left to read.
                    let name = text(v, "displayName").unwrap_or(id);
                    match text(v, "state") {
                        Some(state) if state.eq_ignore_ascii_case("deleted") => {
                            not_read.push(format!("{name} ({id})"));
                        }
                        Some(state) if state.eq_ignore_ascii_case("disabled") => {
                            disabled.push(format!("{name} ({id})"));
                            subs.push(id.to_string());
                        }
                        _ => subs.push(id.to_string()),
                    }
                })
            },
        )
        .await;
    let listed = matches!(r, Ok(n) if n > 0);
    let answered = r.is_ok();
    ctx.finish("subscriptions", r);
    if !disabled.is_empty() {
        ctx.note(format!(
            "disabled, so read-only (its resources may be stopped), and read as it is: {}",
            disabled.join(", ")
        ));
    }
    if !not_read.is_empty() {
        ctx.note(format!(
            "deleted, so not read (nothing of it is left to read): {}",
            not_read.join(", ")
        ));
    }
    if !answered {
        for c in [
            "resource groups",
            "role definitions",
            "role assignments",
            "resources",
        ] {
            ctx.not_read(c, "the subscriptions could not be listed");
        }
        return;
    }
    if !listed {
        if answered {
            // ARM answers an app without any role on a subscription with
            // an empty list, exactly as it answers a tenant without any.
            let note = "no subscription is visible to the app: ARM lists only the subscriptions an app has a role on; grant it the Reader role on the subscriptions (or the Tenant Root management group) if the tenant has any".to_string();
            ctx.warn(note);
        }
        return;
    }
    let per_sub = futures::stream::iter(subs.iter().cloned())
        .map(|sub| async move {
            let rgs = collection(ctx, "resource groups", format!("/subscriptions/{sub}/resourcegroups?{API_RESOURCES}"), ingest::resource_group);
            let defs = collection(ctx, "role definitions", format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions?{API_AUTHZ}"), ingest::role_definition);
            let assignments = collection(ctx, "role assignments", format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments?{API_AUTHZ}"), ingest::role_assignment);
            let (a, b, c) = tokio::join!(rgs, defs, assignments);
            for (what, r) in [a, b, c] {
                ctx.finish(what, r);
            }
        })
        .buffer_unordered(8)
        .for_each(|()| async {});
    let resources = async {
        // Resource Graph takes up to 1,000 subscriptions a query.
        let mut total = Ok(0);
        for chunk in subs.chunks(1000) {
            let r = ctx
                .http
                .resource_graph(chunk, "Resources", |items| {
                    ctx.ingest("resources", &items, |v, b| ingest::resource(v, b))
                })
                .await;
            if r.is_err() {
                total = r;
                break;
            }
        }
        ctx.finish("resources", total);
    };
    tokio::join!(per_sub, resources);
}

async fn collection(
    ctx: &Ctx,
    what: &'static str,
    path: String,
    f: fn(&serde_json::Value, &mut Batch),
) -> (&'static str, Result<usize, crate::fetch::http::HttpError>) {
    let r = ctx
        .http
        .get_pages(Api::Arm, &path, |items| {
            // ARM's records are few and nest what ingest reads.
            ctx.ingest(what, &items, |v, b| f(&v.to_value(), b))
        })
        .await;
    (what, r)
}
