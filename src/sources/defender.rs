//! Defender for Endpoint: machines (and, per machine, its logon users),
//! the CVE catalogue, and vulnerability findings from the bulk
//! `machinesVulnerabilities` listing — not one call per machine.

use futures::StreamExt;

use crate::endpoints::Api;
use crate::fetch::Ctx;
use crate::ingest::{Batch, defender as ingest, text};

pub async fn run(ctx: &Ctx) {
    // Logon users are one request per machine; they start as soon as a page
    // of machines arrives.
    let (mtx, mut mrx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let machines = async move {
        let r = ctx
            .http
            .get_pages(Api::Defender, "/api/machines?$top=10000", |items| {
                let mut b = Batch::default();
                for v in &items {
                    ingest::machine(v, &ctx.tenant, &mut b);
                    if let Some(id) = text(v, "id") {
                        let _ = mtx.send(id.to_string());
                    }
                }
                ctx.progress("machines", items.len(), false);
                ctx.send(b);
            })
            .await;
        ctx.finish("machines", r);
    };
    let logons = async {
        let ids = futures::stream::poll_fn(|cx| mrx.poll_recv(cx));
        let limit = ctx.http.concurrency(Api::Defender);
        let mut failures = Vec::new();
        let mut results = ids
            .map(|id| async move {
                let path = format!("/api/machines/{id}/logonusers");
                ctx.http
                    .get_pages(Api::Defender, &path, |items| {
                        let mut b = Batch::default();
                        for v in &items {
                            ingest::logon_user(&id, v, &mut b);
                        }
                        ctx.progress("logon users", items.len(), false);
                        ctx.send(b);
                    })
                    .await
            })
            .buffer_unordered(limit);
        while let Some(r) = results.next().await {
            if let Err(e) = r {
                failures.push(e);
            }
        }
        let n = failures.len();
        match failures.into_iter().next() {
            Some(e) => {
                if n > 1 {
                    ctx.warn(format!("logon users: {n} machines could not be read"));
                }
                ctx.finish("logon users", Err(e));
            }
            None => ctx.finish("logon users", Ok(0)),
        }
    };
    let cves = async {
        let r = ctx
            .http
            .get_pages(Api::Defender, "/api/vulnerabilities?$top=8000", |items| {
                let mut b = Batch::default();
                for v in &items {
                    ingest::cve(v, &mut b);
                }
                ctx.progress("vulnerabilities", items.len(), false);
                ctx.send(b);
            })
            .await;
        ctx.finish("vulnerabilities", r);
    };
    let findings = async {
        let r = ctx
            .http
            .get_pages(
                Api::Defender,
                "/api/vulnerabilities/machinesVulnerabilities?$top=10000",
                |items| {
                    let mut b = Batch::default();
                    for v in &items {
                        ingest::machine_vulnerability(v, &mut b);
                    }
                    ctx.progress("machine vulnerabilities", items.len(), false);
                    ctx.send(b);
                },
            )
            .await;
        ctx.finish("machine vulnerabilities", r);
    };
    tokio::join!(machines, logons, cves, findings);
}
