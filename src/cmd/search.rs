//! `tenx search`: the explorer's fuzzy search over the latest snapshot, for
//! scripts.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::json;

use crate::base::text::line;
use crate::search::{KIND_FILTERS, Query, SearchIndex, search_once, secondary};

pub struct SearchArgs {
    pub query: String,
    pub kind: Option<String>,
    pub limit: usize,
    pub json: bool,
    pub snapshot: Option<String>,
}

pub fn run(store_name: &str, args: SearchArgs) -> anyhow::Result<ExitCode> {
    if let Some(k) = &args.kind {
        if !KIND_FILTERS.iter().any(|(f, _)| f == k) {
            let names: Vec<&str> = KIND_FILTERS.iter().map(|(f, _)| *f).collect();
            bail!("--kind {k}: unknown kind (one of {})", names.join(", "));
        }
    }
    let (info, graph) = super::export::open_snapshot(store_name, args.snapshot.as_deref())?;
    // Not found may mean not read: what the snapshot lacks is said.
    let gaps = crate::fetch::gaps(&info.sources, chrono::Utc::now());
    let index = SearchIndex::build(&graph);
    let query = Query::parse(&args.query, args.kind.as_deref());
    let r = search_once(&index, &query, args.limit);
    if args.json {
        let hits: Vec<_> = r
            .hits
            .iter()
            .map(|h| {
                let e = graph.entity(h.id);
                json!({"_key": &*e.key, "_type": e.kind.type_name(), "displayName": &*e.display_name, "detail": secondary(&graph, h.id), "score": h.score})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"query": args.query, "total": r.total, "results": hits, "incomplete": gaps})
            )?
        );
    } else {
        for h in &r.hits {
            let e = graph.entity(h.id);
            // Names and details come from the tenant: no terminal sequences.
            println!(
                "{:<32} {:<40} {:<40} {}",
                e.kind.type_name(),
                line(&e.display_name),
                line(&secondary(&graph, h.id)),
                line(&e.key)
            );
        }
        eprintln!(
            "{} of {} match{}",
            r.hits.len(),
            r.total,
            if r.total == 1 { "" } else { "es" }
        );
        for g in &gaps {
            eprintln!(
                "note: the snapshot is incomplete: {}",
                crate::base::text::line(g)
            );
        }
    }
    Ok(if r.total > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
