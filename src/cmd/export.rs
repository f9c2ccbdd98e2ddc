//! `tenx export`: a snapshot, or the subgraph around chosen entities, as
//! JSON.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

use crate::base::outfile::Output;
use crate::export::{Direction, Format, Selection, write_file, write_json};
use crate::model::TenantGraph;
use crate::model::Verb;
use crate::store::Store;

pub struct ExportArgs {
    /// A snapshot id in the store, or a snapshot database file.
    pub snapshot: Option<String>,
    pub select: Vec<String>,
    /// Fuzzy queries; each selects its best match (all with `all_matches`).
    pub query: Vec<String>,
    pub all_matches: bool,
    pub depth: usize,
    /// Verbs to follow (all when empty).
    pub follow: Vec<Verb>,
    pub direction: Direction,
    pub format: Format,
    pub properties: bool,
    /// A file, or standard output.
    pub output: Output,
}

/// `HAS,OWNS` → verbs.
pub fn parse_verbs(s: &str) -> anyhow::Result<Vec<Verb>> {
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            Verb::from_class(v).with_context(|| {
                let all: Vec<&str> = Verb::ALL.iter().map(|v| v.class()).collect();
                format!("unknown verb '{v}' ({})", all.join(", "))
            })
        })
        .collect()
}

/// The store the arguments name, opened read-only: a snapshot database
/// file, or the profile's store (with the snapshot id given, if any).
pub fn open_store(store_name: &str, snapshot: Option<&str>) -> anyhow::Result<(Store, i64)> {
    let (store, id) = match snapshot {
        Some(s) if Path::new(s).is_file() => (Store::open_read_only(Path::new(s))?, None),
        Some(s) => {
            let id: i64 = s
                .parse()
                .with_context(|| format!("--snapshot '{s}' is neither a snapshot id nor a file"))?;
            (profile_store(store_name)?, Some(id))
        }
        None => (profile_store(store_name)?, None),
    };
    let id = match id {
        Some(id) => id,
        None => match store.latest_id()? {
            Some(id) => id,
            None => bail!(
                "no snapshot in {} yet; run `tenx fetch` first",
                store.path().display()
            ),
        },
    };
    Ok((store, id))
}

/// A profile's store, read-only; an error saying to fetch when there is none.
fn profile_store(store_name: &str) -> anyhow::Result<Store> {
    match Store::for_profile_read(store_name)? {
        Some(s) => Ok(s),
        None => bail!(
            "no snapshot for '{store_name}' yet; run `tenx fetch` first (looked in {})",
            crate::store::data_dir()?.display()
        ),
    }
}

/// Opens the snapshot the arguments name: an id in the profile's store, or
/// the latest one of a database file. Read-only.
pub fn open_snapshot(
    store_name: &str,
    snapshot: Option<&str>,
) -> anyhow::Result<(crate::store::SnapshotInfo, TenantGraph)> {
    let (store, id) = open_store(store_name, snapshot)?;
    Ok(store.load(id)?)
}

/// CSV is two files: they cannot both go to standard output.
pub const CSV_NEEDS_FILES: &str = "--format csv writes two files (NAME-entities.csv and NAME-relationships.csv): name them with -o NAME.csv, not standard output";

pub fn run(store_name: &str, args: ExportArgs) -> anyhow::Result<()> {
    // Before any work: what cannot be written is said at once.
    match (&args.output, args.format) {
        (Output::Stdout, Format::Csv) => bail!(CSV_NEEDS_FILES),
        (Output::File(p), _) => crate::base::outfile::check_target(p)?,
        _ => {}
    }
    let (info, graph) = open_snapshot(store_name, args.snapshot.as_deref())?;
    for g in crate::fetch::gaps(&info.sources, chrono::Utc::now()) {
        eprintln!(
            "note: the snapshot is incomplete: {}",
            crate::base::text::text(&g)
        );
    }
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
    if !args.query.is_empty() {
        let index = crate::search::SearchIndex::build(&graph);
        for q in &args.query {
            let r = crate::search::search_once(
                &index,
                &crate::search::Query::parse(q, None),
                if args.all_matches { usize::MAX } else { 1 },
            );
            if r.hits.is_empty() {
                bail!("--query {q}: nothing matches");
            }
            seeds.extend(r.hits.iter().map(|h| h.id));
        }
    }
    let sel = if seeds.is_empty() {
        Selection::all(&graph)
    } else {
        let verbs = (!args.follow.is_empty()).then_some(args.follow.as_slice());
        Selection::around(&graph, &seeds, args.depth, verbs, args.direction)
    };
    match &args.output {
        Output::File(path) => {
            let files = write_file(&graph, &sel, args.properties, args.format, path)?;
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            eprintln!(
                "wrote {} entities and {} relationships to {}",
                sel.entities.len(),
                sel.relationships.len(),
                names.join(" and ")
            );
        }
        Output::Stdout => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            match args.format {
                Format::Json => write_json(&graph, &sel, args.properties, &mut w)?,
                Format::Jsonl => crate::export::write_jsonl(&graph, &sel, args.properties, &mut w)?,
                Format::Dot => crate::export::write_dot(&graph, &sel, &mut w)?,
                Format::Mermaid => crate::export::write_mermaid(&graph, &sel, &mut w)?,
                Format::Graphml => {
                    crate::export::write_graphml(&graph, &sel, args.properties, &mut w)?
                }
                Format::Csv => bail!(CSV_NEEDS_FILES),
            }
            w.flush()?;
        }
    }
    Ok(())
}
