//! Azure Resource Manager: subscriptions; per subscription its resource
//! groups, role definitions and role assignments; every resource with its
//! properties through Azure Resource Graph.

use futures::StreamExt;

use crate::endpoints::Api;
use crate::fetch::Ctx;
use crate::ingest::{Batch, arm as ingest, text};

const API_RESOURCES: &str = "api-version=2021-04-01";
const API_AUTHZ: &str = "api-version=2022-04-01";
const API_SUBSCRIPTIONS: &str = "api-version=2022-12-01";

pub async fn run(ctx: &Ctx) {
    let mut subs: Vec<String> = Vec::new();
    let r = ctx
        .http
        .get_pages(
            Api::Arm,
            &format!("/subscriptions?{API_SUBSCRIPTIONS}"),
            |items| {
                let mut b = Batch::default();
                for v in &items {
                    ingest::subscription(&v.to_value(), &ctx.tenant, &mut b);
                    // Disabled subscriptions are listed but cannot be read.
                    let enabled =
                        text(v, "state").is_none_or(|s| !s.eq_ignore_ascii_case("disabled"));
                    if let (Some(id), true) = (text(v, "subscriptionId"), enabled) {
                        subs.push(id.to_string());
                    }
                }
                ctx.progress("subscriptions", items.len(), false);
                ctx.send(b);
            },
        )
        .await;
    let listed = matches!(r, Ok(n) if n > 0);
    ctx.finish("subscriptions", r);
    if !listed {
        ctx.warn("subscriptions: none visible; grant the app the Reader role on the subscriptions (or the Tenant Root management group)".into());
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
                    let mut b = Batch::default();
                    for v in &items {
                        ingest::resource(v, &mut b);
                    }
                    ctx.progress("resources", items.len(), false);
                    ctx.send(b);
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
) -> (&'static str, Result<usize, crate::http::HttpError>) {
    let r = ctx
        .http
        .get_pages(Api::Arm, &path, |items| {
            let mut b = Batch::default();
            // ARM's records are few and nest what ingest reads.
            for v in &items {
                f(&v.to_value(), &mut b);
            }
            ctx.progress(what, items.len(), false);
            ctx.send(b);
        })
        .await;
    (what, r)
}
