//! Entra ID: organization, users, groups with their members, service
//! principals. Members are read through `$batch`, 20 groups a request, as
//! soon as each page of groups arrives.

use super::context::Ctx;
use crate::auth::endpoints::Api;
use crate::fetch::http::{HttpError, MAX_BATCH};
use crate::ingest::directory as ingest;

pub async fn run(ctx: &Ctx) {
    let users_path = format!("/v1.0/users?$top=999&$select={}", ingest::USER_FIELDS);
    let org = ctx.read(Api::Graph, "organization", "/v1.0/organization", |v, b| {
        ingest::organization(v, b)
    });
    let users = ctx.read(Api::Graph, "users", &users_path, |v, b| {
        ingest::user(v, &ctx.tenant, b)
    });
    let sps = ctx.read(
        Api::Graph,
        "service principals",
        "/v1.0/servicePrincipals?$top=999",
        |v, b| ingest::service_principal(v, &ctx.tenant, b),
    );
    // Groups feed member requests through a channel so members of the first
    // page are read while later pages of groups are still coming.
    let (gtx, grx) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
    // Set before the channel closes: the members of groups never listed
    // were not read.
    let groups_listed = std::sync::atomic::AtomicBool::new(false);
    let groups_listed = &groups_listed;
    let groups = async move {
        let r = ctx
            .http
            .get_pages(Api::Graph, "/v1.0/groups?$top=999", |items| {
                let mut ids = Vec::new();
                ctx.ingest("groups", &items, |v, b| {
                    ingest::group(v, &ctx.tenant, b);
                    if let Some(id) = crate::ingest::text(v, "id") {
                        ids.push(id.to_string());
                    }
                });
                let _ = gtx.send(ids);
            })
            .await;
        groups_listed.store(r.is_ok(), std::sync::atomic::Ordering::Release);
        ctx.finish("groups", r);
    };
    let members = async move {
        let mut grx = grx;
        let mut running = futures::stream::FuturesUnordered::new();
        let mut failures = Vec::new();
        loop {
            use futures::StreamExt;
            tokio::select! {
                ids = grx.recv() => match ids {
                    Some(ids) => {
                        for chunk in ids.chunks(MAX_BATCH) {
                            running.push(members_of(ctx, chunk.to_vec()));
                        }
                    }
                    None => break,
                },
                Some(r) = running.next(), if !running.is_empty() => {
                    if let Err(e) = r { failures.push(e) }
                }
            }
        }
        use futures::StreamExt;
        while let Some(r) = running.next().await {
            if let Err(e) = r {
                failures.push(e);
            }
        }
        let count: usize = failures.iter().map(|(_, n)| n).sum();
        match failures.into_iter().next() {
            Some((first, _)) => {
                ctx.finish("group members", Err(first));
                if count > 1 {
                    ctx.warn(format!("group members: {count} groups could not be read"));
                }
            }
            _ if !groups_listed.load(std::sync::atomic::Ordering::Acquire) => ctx.not_read(
                "group members",
                "the groups could not be listed (the members of those listed were read)",
            ),
            _ => ctx.finish("group members", Ok(0)),
        }
    };
    tokio::join!(org, users, sps, groups, members);
}

/// Members of up to 20 groups: one `$batch`, then next links.
/// On failure, the first error and how many of the groups failed.
async fn members_of(ctx: &Ctx, group_ids: Vec<String>) -> Result<(), (HttpError, usize)> {
    let results = ctx
        .read_each(
            "group members",
            &group_ids,
            |id| {
                format!(
                    "/groups/{id}/members?$top=999&$select=id,displayName,userPrincipalName,mail,deviceId,appId"
                )
            },
            |group, v, b| ingest::member(group, v, b),
        )
        .await;
    let mut first_err = None;
    let mut failed = 0;
    for r in results {
        if let Err(e) = r {
            failed += 1;
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err((e, failed)),
        None => Ok(()),
    }
}
