//! Azure Resource Manager: subscriptions; per subscription its resource
//! groups, role definitions and role assignments; every resource with its
//! properties through Azure Resource Graph.

use futures::StreamExt;

use super::context::Ctx;
use crate::auth::endpoints::Api;
use crate::ingest::{arm as ingest, text};

const API_RESOURCES: &str = "api-version=2021-04-01";
const API_AUTHZ: &str = "api-version=2022-04-01";
const API_SUBSCRIPTIONS: &str = "api-version=2022-12-01";

pub async fn run(ctx: &Ctx) {
    let mut deleted: Vec<String> = Vec::new();
    let mut disabled: Vec<String> = Vec::new();
    let path = format!("/subscriptions?{API_SUBSCRIPTIONS}");
    // The subscriptions to read: all but the deleted.
    let subs = ctx
        .list(Api::Arm, "subscriptions", &path, |v, b| {
            ingest::subscription(&v.to_value(), &ctx.tenant, b);
            let id = text(v, "subscriptionId")?;
            // A disabled subscription is read-only, and reads of it work
            // (ARM refuses only writes, with ReadOnlyDisabledSubscription):
            // it is read, and said. A deleted one has nothing left to read.
            let name = text(v, "displayName").unwrap_or(id);
            match text(v, "state") {
                Some(state) if state.eq_ignore_ascii_case("deleted") => {
                    deleted.push(format!("{name} ({id})"));
                    None
                }
                Some(state) if state.eq_ignore_ascii_case("disabled") => {
                    disabled.push(format!("{name} ({id})"));
                    Some(id.to_string())
                }
                _ => Some(id.to_string()),
            }
        })
        .await;
    if !disabled.is_empty() {
        ctx.note(format!(
            "disabled, so read-only (its resources may be stopped), and read as it is: {}",
            disabled.join(", ")
        ));
    }
    if !deleted.is_empty() {
        ctx.note(format!(
            "deleted, so not read (nothing of it is left to read): {}",
            deleted.join(", ")
        ));
    }
    let per_subscription = [
        "resource groups",
        "role definitions",
        "role assignments",
        "resources",
    ];
    if !ctx.can_read_per_item(&subs, &per_subscription) {
        return;
    }
    if subs.read == Some(0) {
        // ARM answers an app without any role on a subscription with an
        // empty list, exactly as it answers a tenant without any.
        let note = "no subscription is visible to the app: ARM lists only the subscriptions an app has a role on; grant it the Reader role on the subscriptions (or the Tenant Root management group) if the tenant has any".to_string();
        ctx.warn(note);
        return;
    }
    let subs = subs.items;
    let per_sub = futures::stream::iter(subs.iter().cloned())
        .map(|sub| async move {
            let rgs = format!("/subscriptions/{sub}/resourcegroups?{API_RESOURCES}");
            let authz = format!("/subscriptions/{sub}/providers/Microsoft.Authorization");
            let defs = format!("{authz}/roleDefinitions?{API_AUTHZ}");
            let assignments = format!("{authz}/roleAssignments?{API_AUTHZ}");
            // ARM's records are few and nest what ingest reads.
            tokio::join!(
                ctx.read(Api::Arm, "resource groups", &rgs, |v, b| {
                    ingest::resource_group(&v.to_value(), b)
                }),
                ctx.read(Api::Arm, "role definitions", &defs, |v, b| {
                    ingest::role_definition(&v.to_value(), b)
                }),
                ctx.read(Api::Arm, "role assignments", &assignments, |v, b| {
                    ingest::role_assignment(&v.to_value(), b)
                }),
            );
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
