//! `tenx export`: a snapshot, or the subgraph around chosen entities, as
//! JSON.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::export::{Direction, Selection, write_atomic, write_json};
use crate::model::TenantGraph;
use crate::store::Store;

pub struct ExportArgs {
    /// A snapshot id in the store, or a snapshot database file.
    pub snapshot: Option<String>,
    pub select: Vec<String>,
    pub depth: usize,
    pub output: Option<PathBuf>,
}

/// Opens the snapshot the arguments name: an id in the profile's store, or
/// the latest one of a database file.
pub fn open_snapshot(
    store_name: &str,
    snapshot: Option<&str>,
) -> anyhow::Result<(crate::store::SnapshotInfo, TenantGraph)> {
    let (store, id) = match snapshot {
        Some(s) if Path::new(s).is_file() => (Store::open(Path::new(s))?, None),
        Some(s) => {
            let id: i64 = s
                .parse()
                .with_context(|| format!("--snapshot '{s}' is neither a snapshot id nor a file"))?;
            (Store::for_profile(store_name)?, Some(id))
        }
        None => (Store::for_profile(store_name)?, None),
    };
    let id = match id {
        Some(id) => id,
        None => store.latest_id()?.with_context(|| {
            format!(
                "no snapshot in {} yet; run `tenx fetch` first",
                store.path().display()
            )
        })?,
    };
    store.load(id)
}

pub fn run(store_name: &str, args: ExportArgs) -> anyhow::Result<()> {
    let (_, graph) = open_snapshot(store_name, args.snapshot.as_deref())?;
    let sel = if args.select.is_empty() {
        Selection::all(&graph)
    } else {
        let mut seeds = Vec::new();
        for key in &args.select {
            match graph
                .id_of(key)
                .or_else(|| graph.id_of(&key.to_ascii_lowercase()))
            {
                Some(id) => seeds.push(id),
                None => bail!("--select {key}: no entity has this _key in the snapshot"),
            }
        }
        Selection::around(&graph, &seeds, args.depth, None, Direction::Both)
    };
    match &args.output {
        Some(path) => write_atomic(path, |w| write_json(&graph, &sel, true, w))?,
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            write_json(&graph, &sel, true, &mut w)?;
            w.flush()?;
        }
    }
    if let Some(p) = &args.output {
        eprintln!(
            "wrote {} entities and {} relationships to {}",
            sel.entities.len(),
            sel.relationships.len(),
            p.display()
        );
    }
    Ok(())
}
