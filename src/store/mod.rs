//! Snapshots on disk: every fetch saved to a SQLite database per profile in
//! the data directory, loaded back, listed, pruned; what a later fetch
//! carries over from them (`CarryPatch`, logon users); triage statuses.
//!
//! Each snapshot is written in one transaction, readable with `sqlite3`
//! (see the `relationship_view` view). Files are created 0600 and their
//! folder 0700. How databases are opened (read-only for reads, WAL, a busy
//! timeout, the integrity check) is in `access`.
//!
//! Size: long because saving, loading and carrying over read and write the
//! same schema's tables, kept beside it; how databases are opened is
//! `access`, errors are `error`.

mod access;
mod error;

pub use error::StoreError;

pub use access::BUSY_TIMEOUT;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use error::{Context, fail};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::fetch::{Carried, Outcome, Source, SourceStatus};
use crate::model::{Entity, EntityKind, TenantGraph, Verb};

/// 2: `read_times`, and `source_status.notes`.
/// 3: `source_status.skipped`, `incomplete`, `carried_from`,
/// `carried_read_at`; the outcome `not-asked`.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    label TEXT NOT NULL,
    entity_count INTEGER NOT NULL,
    relationship_count INTEGER NOT NULL,
    elapsed_ms INTEGER NOT NULL,
    metrics TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS source_status (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    outcome TEXT NOT NULL,
    errors TEXT NOT NULL,
    counts TEXT NOT NULL,
    elapsed_ms INTEGER NOT NULL,
    PRIMARY KEY (snapshot_id, source)
);
CREATE TABLE IF NOT EXISTS entities (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    eid INTEGER NOT NULL,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    props TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, eid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS relationships (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    from_eid INTEGER NOT NULL,
    verb TEXT NOT NULL,
    to_eid INTEGER NOT NULL
);
-- A snapshot's relationships, and a machine's logon users without a scan of
-- them all (`logon_carry`); written in this order, so it grows at its end.
CREATE INDEX IF NOT EXISTS relationships_from ON relationships(snapshot_id, from_eid);
CREATE TABLE IF NOT EXISTS read_times (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    eid INTEGER NOT NULL,
    read_at INTEGER NOT NULL,
    PRIMARY KEY (snapshot_id, eid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS triage (
    device_key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    note TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE VIEW IF NOT EXISTS relationship_view AS
    SELECT r.snapshot_id, f.key AS from_key, f.type AS from_type, r.verb, t.key AS to_key, t.type AS to_type
    FROM relationships r
    JOIN entities f ON f.snapshot_id = r.snapshot_id AND f.eid = r.from_eid
    JOIN entities t ON t.snapshot_id = r.snapshot_id AND t.eid = r.to_eid;
";

/// What a snapshot is, without its graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotInfo {
    pub id: i64,
    pub created_at: String,
    pub tenant_id: String,
    pub label: String,
    pub entity_count: usize,
    pub relationship_count: usize,
    pub elapsed_ms: u64,
    pub metrics: serde_json::Value,
    pub sources: BTreeMap<Source, SourceStatus>,
}

/// The sources a fetch did not read, as an earlier snapshot had them
/// (`Store::carry_patch`): read on a blocking thread, applied where the
/// graph is.
#[derive(Debug, Default)]
pub struct CarryPatch {
    pub entities: Vec<Entity>,
    pub relationships: Vec<(String, Verb, String)>,
    pub read_times: Vec<(String, i64)>,
    /// The sources carried over, and where their data was read.
    pub carried: Vec<(Source, Carried)>,
}

impl CarryPatch {
    /// Adds the carried sources to a graph and says so in their statuses.
    /// A relationship whose other end is not in the graph (gone since) is
    /// left out. Returns the sources carried over.
    pub fn apply(
        self,
        graph: &mut TenantGraph,
        statuses: &mut BTreeMap<Source, SourceStatus>,
    ) -> Vec<Source> {
        for e in self.entities {
            graph.upsert(e);
        }
        for (from, verb, to) in &self.relationships {
            if let (Some(f), Some(t)) = (graph.id_of(from), graph.id_of(to)) {
                graph.link(f, *verb, t);
            }
        }
        for (key, at) in &self.read_times {
            graph.set_read_at(key, *at);
        }
        let mut sources = Vec::new();
        for (source, from) in self.carried {
            statuses
                .entry(source)
                .or_insert_with(|| SourceStatus::not_asked(source))
                .carried = Some(from);
            sources.push(source);
        }
        sources
    }
}

/// A data directory set by the program itself (the demo's temporary one),
/// ahead of `TENX_DATA_DIR`.
static DATA_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes every store of this process live in `dir` (`tenx demo`'s
/// temporary store). Only the first call counts.
pub fn use_data_dir(dir: PathBuf) {
    let _ = DATA_DIR.set(dir);
}

/// The data directory: the one set with [`use_data_dir`], else
/// `TENX_DATA_DIR`, else the platform's (e.g. `~/.local/share/tenx`).
pub fn data_dir() -> Result<PathBuf, StoreError> {
    if let Some(d) = DATA_DIR.get() {
        return Ok(d.clone());
    }
    if let Ok(d) = std::env::var("TENX_DATA_DIR") {
        if !d.trim().is_empty() {
            return Ok(PathBuf::from(d));
        }
    }
    directories::ProjectDirs::from("", "", "tenx")
        .map(|p| p.data_dir().to_path_buf())
        .context("cannot find a home directory for the data; set TENX_DATA_DIR")
}

/// A file name for a profile's database: letters, digits, `-`, `_`, `.`.
pub fn db_name(profile: &str) -> String {
    let clean: String = profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.sqlite", clean.trim_start_matches('.'))
}

/// A folder for tenx's data: created 0700 when missing; an existing one
/// keeps its mode (a warning, once, when others can read it).
pub fn private_dir(dir: &Path) -> Result<(), StoreError> {
    access::private_dir(dir)
}

/// Loads the carry-over of a profile's latest snapshot when a fetch asks:
/// on a blocking thread, while the machines are listed.
pub fn carry_loader(store_name: String) -> crate::fetch::CarryLoader {
    std::sync::Arc::new(move || match Store::for_profile_read(&store_name)? {
        Some(s) => Ok(s.logon_carry()?),
        None => Ok(Default::default()),
    })
}

/// Today's schema in an empty database: what an older one is read through
/// (never written to it).
fn schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA).and_then(|_| migrate(conn))
}

/// Brings a database of an older schema up to this one. Tables are made by
/// `SCHEMA` (`IF NOT EXISTS`); columns added since are added here.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // `relationships_from` serves everything this index did.
    conn.execute_batch("DROP INDEX IF EXISTS relationships_by_snapshot")?;
    for (column, definition) in [
        ("notes", "TEXT NOT NULL DEFAULT '[]'"),
        ("skipped", "TEXT NOT NULL DEFAULT '{}'"),
        ("incomplete", "TEXT NOT NULL DEFAULT '[]'"),
        ("carried_from", "INTEGER"),
        ("carried_read_at", "TEXT"),
    ] {
        let has = conn
            .prepare("SELECT 1 FROM pragma_table_info('source_status') WHERE name = ?1")?
            .exists(params![column])?;
        if !has {
            conn.execute_batch(&format!(
                "ALTER TABLE source_status ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// The database of a profile in the data directory, to write to. Its
    /// integrity is checked first (`PRAGMA quick_check`); a damaged one is
    /// moved aside and a new one started, and the person told.
    pub fn for_profile(profile: &str) -> Result<Store, StoreError> {
        let dir = data_dir()?;
        private_dir(&dir)?;
        let path = dir.join(db_name(profile));
        let damage = match Store::open(&path) {
            Ok(s) => match access::quick_check(&s.conn) {
                Ok(()) => return Ok(s),
                Err(found) => found,
            },
            Err(e) if e.is_damage() => e.to_string(),
            Err(e) => return Err(e),
        };
        let aside = access::move_aside(&path)?;
        access::notice(&format!(
            "{} is damaged ({damage}); it was moved to {} and a new snapshot database started",
            path.display(),
            aside.display()
        ));
        Store::open(&path)
    }

    /// The database of a profile, to record triage statuses in: no
    /// integrity check first (one row in a small table; the check of a
    /// large store reads all of it, see `for_profile`).
    pub fn for_triage(profile: &str) -> Result<Store, StoreError> {
        let dir = data_dir()?;
        private_dir(&dir)?;
        Store::open(&dir.join(db_name(profile)))
    }

    /// The database of a profile, to read: `None` when there is none yet.
    /// Read-only: nothing is written, not even to upgrade it.
    pub fn for_profile_read(profile: &str) -> Result<Option<Store>, StoreError> {
        let path = data_dir()?.join(db_name(profile));
        if !path.exists() || access::is_empty_file(&path) {
            return Ok(None);
        }
        let conn = access::open_read_only(&path, access::Whose::Tenx, schema, SCHEMA_VERSION)?;
        Ok(Some(Store { conn, path }))
    }

    /// A snapshot database to read, never written to. A file that is not a
    /// tenx snapshot database is refused untouched; one of an older schema
    /// is read as it is.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = access::open_read_only(path, access::Whose::Named, schema, SCHEMA_VERSION)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// A snapshot database to write to, created (0600) when missing and
    /// brought up to this schema. A file that is not a tenx snapshot
    /// database is refused untouched.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Create it 0600 before SQLite does; its -wal and -shm take its mode.
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        match o.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create {}", path.display()));
            }
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("cannot open the snapshot database {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Checked before anything is written, WAL mode included.
        let version = access::tenx_version(&conn, path)?;
        if let Some(v) = version.filter(|v| *v > SCHEMA_VERSION) {
            fail!(
                Foreign,
                "{} was written by a newer tenx (schema {v}); upgrade tenx",
                path.display()
            );
        }
        access::configure_writer(&conn)
            .with_context(|| format!("cannot open the snapshot database {}", path.display()))?;
        if version != Some(SCHEMA_VERSION) {
            // One writer at a time creates or upgrades; the others then find
            // it done (every step is idempotent).
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)
                .with_context(|| format!("{} is not a tenx snapshot database", path.display()))?;
            migrate(&tx).with_context(|| {
                format!(
                    "cannot upgrade {} to schema {SCHEMA_VERSION}",
                    path.display()
                )
            })?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )?;
            tx.commit()?;
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves a graph and the sources' statuses as a new snapshot, in one
    /// transaction: all of it or nothing.
    pub fn save(
        &mut self,
        tenant_id: &str,
        label: &str,
        graph: &TenantGraph,
        statuses: &BTreeMap<Source, SourceStatus>,
        elapsed_ms: u64,
        metrics: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO snapshots (created_at, tenant_id, label, entity_count, relationship_count, elapsed_ms, metrics) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                tenant_id,
                label,
                graph.entity_count() as i64,
                graph.relationship_count() as i64,
                elapsed_ms as i64,
                metrics.to_string()
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut st = tx.prepare("INSERT INTO source_status (snapshot_id, source, outcome, errors, counts, elapsed_ms, notes, skipped, incomplete, carried_from, carried_read_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")?;
            for (source, s) in statuses {
                st.execute(params![
                    id,
                    source.name(),
                    s.outcome.name(),
                    serde_json::to_string(&s.errors)?,
                    serde_json::to_string(&s.counts)?,
                    s.elapsed_ms as i64,
                    serde_json::to_string(&s.notes)?,
                    serde_json::to_string(&s.skipped)?,
                    serde_json::to_string(&s.incomplete)?,
                    s.carried.as_ref().map(|c| c.snapshot),
                    s.carried.as_ref().map(|c| c.read_at.as_str()),
                ])?;
            }
            let mut rt = tx.prepare(
                "INSERT INTO read_times (snapshot_id, eid, read_at) VALUES (?1, ?2, ?3)",
            )?;
            for (eid, at) in graph.read_times() {
                rt.execute(params![id, eid as i64, at])?;
            }
            let mut ent = tx.prepare("INSERT INTO entities (snapshot_id, eid, key, type, id, display_name, props) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
            for (eid, e) in graph.entities() {
                ent.execute(params![
                    id,
                    eid as i64,
                    &*e.key,
                    e.kind.type_name(),
                    e.id(),
                    &*e.display_name,
                    &*e.props_json()
                ])?;
            }
            let mut rel = tx.prepare("INSERT INTO relationships (snapshot_id, from_eid, verb, to_eid) VALUES (?1, ?2, ?3, ?4)")?;
            for (f, v, t) in graph.relationships() {
                rel.execute(params![id, f as i64, v.class(), t as i64])?;
            }
        }
        tx.commit().context("cannot save the snapshot")?;
        Ok(id)
    }

    pub fn list(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM snapshots ORDER BY id DESC")?;
        let ids: Vec<i64> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        ids.into_iter().map(|id| self.info(id)).collect()
    }

    pub fn latest_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT MAX(id) FROM snapshots", [], |r| r.get(0))?)
    }

    pub fn info(&self, id: i64) -> Result<SnapshotInfo, StoreError> {
        let mut info = self
            .conn
            .query_row(
                "SELECT id, created_at, tenant_id, label, entity_count, relationship_count, elapsed_ms, metrics FROM snapshots WHERE id = ?1",
                params![id],
                |r| {
                    Ok(SnapshotInfo {
                        id: r.get(0)?,
                        created_at: r.get(1)?,
                        tenant_id: r.get(2)?,
                        label: r.get(3)?,
                        entity_count: r.get::<_, i64>(4)? as usize,
                        relationship_count: r.get::<_, i64>(5)? as usize,
                        elapsed_ms: r.get::<_, i64>(6)? as u64,
                        metrics: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                        sources: BTreeMap::new(),
                    })
                },
            )
            .optional()?
            .with_context(|| format!("no snapshot {id} in {}", self.path.display()))?;
        let mut st = self.conn.prepare("SELECT source, outcome, errors, counts, elapsed_ms, notes, skipped, incomplete, carried_from, carried_read_at FROM source_status WHERE snapshot_id = ?1")?;
        let rows = st.query_map(params![id], |r| {
            let source: String = r.get(0)?;
            let outcome: String = r.get(1)?;
            let text = |i: usize| r.get::<_, String>(i);
            Ok((
                source,
                SourceStatus {
                    source: Source::Directory,
                    // An outcome this tenx does not know is not one to trust.
                    outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Failed),
                    errors: serde_json::from_str(&text(2)?).unwrap_or_default(),
                    counts: serde_json::from_str(&text(3)?).unwrap_or_default(),
                    elapsed_ms: r.get::<_, i64>(4)?.max(0) as u64,
                    notes: serde_json::from_str(&text(5)?).unwrap_or_default(),
                    skipped: serde_json::from_str(&text(6)?).unwrap_or_default(),
                    incomplete: serde_json::from_str(&text(7)?).unwrap_or_default(),
                    carried: match (r.get::<_, Option<i64>>(8)?, r.get::<_, Option<String>>(9)?) {
                        (Some(snapshot), Some(read_at)) => Some(Carried { snapshot, read_at }),
                        _ => None,
                    },
                },
            ))
        })?;
        for row in rows {
            let (source, mut status) = row?;
            let Ok(source) = Source::parse(&source) else {
                continue;
            };
            status.source = source;
            info.sources.insert(source, status);
        }
        Ok(info)
    }

    /// Loads a snapshot back into the graph it was saved from.
    pub fn load(&self, id: i64) -> Result<(SnapshotInfo, TenantGraph), StoreError> {
        let info = self.info(id)?;
        let mut g = TenantGraph::new();
        let mut st = self.conn.prepare("SELECT eid, key, type, id, display_name, props FROM entities WHERE snapshot_id = ?1 ORDER BY eid")?;
        let mut rows = st.query(params![id])?;
        while let Some(r) = rows.next()? {
            let eid: i64 = r.get(0)?;
            let ty: String = r.get(2)?;
            let kind = EntityKind::from_type_name(&ty)
                .with_context(|| format!("snapshot {id}: unknown entity type '{ty}'"))?;
            let e = Entity::with_props_json(
                r.get::<_, String>(1)?,
                kind,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            );
            let got = g.upsert(e);
            if got as i64 != eid {
                fail!(
                    Damaged,
                    "snapshot {id} is damaged: entity ids are not contiguous at {eid}"
                );
            }
        }
        let mut st = self.conn.prepare("SELECT from_eid, verb, to_eid FROM relationships WHERE snapshot_id = ?1 ORDER BY rowid")?;
        let mut rows = st.query(params![id])?;
        let n = g.entity_count() as i64;
        while let Some(r) = rows.next()? {
            let (f, v, t): (i64, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let verb = Verb::from_class(&v)
                .with_context(|| format!("snapshot {id}: unknown verb '{v}'"))?;
            if !(0..n).contains(&f) || !(0..n).contains(&t) {
                fail!(
                    Damaged,
                    "snapshot {id} is damaged: a relationship names a missing entity"
                );
            }
            g.link(f as u32, verb, t as u32);
        }
        let mut st = self
            .conn
            .prepare("SELECT eid, read_at FROM read_times WHERE snapshot_id = ?1 ORDER BY eid")?;
        let mut rows = st.query(params![id])?;
        while let Some(r) = rows.next()? {
            let (eid, at): (i64, i64) = (r.get(0)?, r.get(1)?);
            if !(0..n).contains(&eid) {
                fail!(
                    Damaged,
                    "snapshot {id} is damaged: a read time names a missing entity"
                );
            }
            g.set_read_at_id(eid as u32, at);
        }
        Ok((info, g))
    }

    /// What completes a fetch with the sources it did not read: each source
    /// not asked or failed, whole — its entities, the relationships it
    /// made, its read times — from the latest snapshot that has it
    /// whole, with which snapshot read it and when. A partial source is kept
    /// as read: mixing in older data would bring back what was deleted
    /// since; what it lacks is named in its status.
    pub fn carry_patch(
        &self,
        statuses: &BTreeMap<Source, SourceStatus>,
    ) -> Result<CarryPatch, StoreError> {
        let mut patch = CarryPatch::default();
        for source in Source::ALL {
            let wanted = statuses
                .get(&source)
                .is_none_or(|s| matches!(s.outcome, Outcome::Failed | Outcome::NotAsked));
            if !wanted {
                continue;
            }
            if let Some((snapshot, from)) = self.whole(source)? {
                self.copy_source(snapshot, source, &mut patch)?;
                patch.carried.push((source, from));
            }
        }
        Ok(patch)
    }

    /// Records every source missing from `statuses` as not asked.
    pub fn mark_not_asked(statuses: &mut BTreeMap<Source, SourceStatus>) {
        for source in Source::ALL {
            statuses
                .entry(source)
                .or_insert_with(|| SourceStatus::not_asked(source));
        }
    }

    /// The latest snapshot that has a source whole, and where its data was
    /// read: that snapshot, or the one it was carried over from.
    fn whole(&self, source: Source) -> Result<Option<(i64, Carried)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT s.snapshot_id, s.carried_from, s.carried_read_at, n.created_at
                 FROM source_status s JOIN snapshots n ON n.id = s.snapshot_id
                 WHERE s.source = ?1 AND (s.outcome = 'complete' OR s.carried_from IS NOT NULL)
                 ORDER BY s.snapshot_id DESC LIMIT 1",
                params![source.name()],
                |r| {
                    let id: i64 = r.get(0)?;
                    let from = match (r.get::<_, Option<i64>>(1)?, r.get::<_, Option<String>>(2)?) {
                        (Some(snapshot), Some(read_at)) => Carried { snapshot, read_at },
                        _ => Carried {
                            snapshot: id,
                            read_at: r.get(3)?,
                        },
                    };
                    Ok((id, from))
                },
            )
            .optional()?)
    }

    /// Reads a source's part of a snapshot into a patch: the entities of
    /// the kinds it makes, the relationships it makes
    /// (`Source::carries_relationship`), and their read times.
    fn copy_source(
        &self,
        id: i64,
        source: Source,
        patch: &mut CarryPatch,
    ) -> Result<(), StoreError> {
        let list = EntityKind::ALL
            .iter()
            .filter(|k| Source::of_kind(**k) == source)
            .map(|k| format!("'{}'", k.type_name()))
            .collect::<Vec<_>>()
            .join(",");
        let mut st = self.conn.prepare(&format!(
            "SELECT key, type, id, display_name, props FROM entities
             WHERE snapshot_id = ?1 AND type IN ({list}) ORDER BY eid"
        ))?;
        let mut rows = st.query(params![id])?;
        while let Some(r) = rows.next()? {
            let ty: String = r.get(1)?;
            let kind = EntityKind::from_type_name(&ty)
                .with_context(|| format!("snapshot {id}: unknown entity type '{ty}'"))?;
            patch.entities.push(Entity::with_props_json(
                r.get::<_, String>(0)?,
                kind,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ));
        }
        let mut st = self.conn.prepare(&format!(
            "SELECT f.key, r.verb, t.key, f.type, t.type FROM relationships r
             JOIN entities f ON f.snapshot_id = r.snapshot_id AND f.eid = r.from_eid
             JOIN entities t ON t.snapshot_id = r.snapshot_id AND t.eid = r.to_eid
             WHERE r.snapshot_id = ?1 AND (f.type IN ({list}) OR t.type IN ({list}))"
        ))?;
        let mut rows = st.query(params![id])?;
        let kind = |ty: String| {
            EntityKind::from_type_name(&ty)
                .with_context(|| format!("snapshot {id}: unknown entity type '{ty}'"))
        };
        while let Some(r) = rows.next()? {
            // Only what this source made: a device's owner, read afresh
            // from Intune, is not brought back by carrying the directory.
            if !source.carries_relationship(kind(r.get(3)?)?, kind(r.get(4)?)?) {
                continue;
            }
            let verb: String = r.get(1)?;
            let verb = Verb::from_class(&verb)
                .with_context(|| format!("snapshot {id}: unknown verb '{verb}'"))?;
            patch.relationships.push((r.get(0)?, verb, r.get(2)?));
        }
        let mut st = self.conn.prepare(&format!(
            "SELECT e.key, t.read_at FROM read_times t
             JOIN entities e ON e.snapshot_id = t.snapshot_id AND e.eid = t.eid
             WHERE t.snapshot_id = ?1 AND e.type IN ({list})"
        ))?;
        let mut rows = st.query(params![id])?;
        while let Some(r) = rows.next()? {
            patch.read_times.push((r.get(0)?, r.get(1)?));
        }
        Ok(())
    }

    /// The latest snapshot's logon users per machine, with when they were
    /// read, without loading the snapshot: what a fetch carries over for the
    /// machines whose logon users it does not read. A snapshot saved before
    /// read times were kept counts as read when it was saved.
    pub fn logon_carry(&self) -> Result<crate::fetch::logons::LogonCarry, StoreError> {
        use crate::fetch::logons::{CarriedMachine, LogonCarry};
        let mut carry = LogonCarry::default();
        let Some(id) = self.latest_id()? else {
            return Ok(carry);
        };
        let saved_at = chrono::DateTime::parse_from_rfc3339(&self.info(id)?.created_at)
            .map(|t| t.timestamp())
            .unwrap_or(0);
        let mut st = self.conn.prepare(
            "SELECT e.key, t.read_at FROM read_times t
             JOIN entities e ON e.snapshot_id = t.snapshot_id AND e.eid = t.eid
             WHERE t.snapshot_id = ?1 AND e.type = 'microsoft_defender_machine'",
        )?;
        let rows = st.query_map(params![id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (machine, read_at) = row?;
            carry.machines.insert(
                machine,
                CarriedMachine {
                    read_at,
                    users: Vec::new(),
                },
            );
        }
        // Only a machine with a read time has logon users read, so those
        // machines' relationships are all that is looked at (`CROSS JOIN`
        // keeps that order): a few thousand index reads rather than every
        // relationship of the snapshot, which took longer than the rest of
        // the fetch's work on Defender. A snapshot saved before read times
        // were kept has none, and is searched through.
        let query = if carry.machines.is_empty() {
            "SELECT m.key, u.key, u.id, u.display_name, u.props FROM relationships r
             JOIN entities m ON m.snapshot_id = r.snapshot_id AND m.eid = r.from_eid
             JOIN entities u ON u.snapshot_id = r.snapshot_id AND u.eid = r.to_eid
             WHERE r.snapshot_id = ?1 AND r.verb = 'HAS'
               AND m.type = 'microsoft_defender_machine'
               AND u.type = 'microsoft_defender_logon_user'
             ORDER BY r.rowid"
        } else {
            "SELECT m.key, u.key, u.id, u.display_name, u.props FROM read_times t
             CROSS JOIN relationships r
               ON r.snapshot_id = t.snapshot_id AND r.from_eid = t.eid AND r.verb = 'HAS'
             JOIN entities m ON m.snapshot_id = t.snapshot_id AND m.eid = t.eid
             JOIN entities u ON u.snapshot_id = r.snapshot_id AND u.eid = r.to_eid
             WHERE t.snapshot_id = ?1
               AND m.type = 'microsoft_defender_machine'
               AND u.type = 'microsoft_defender_logon_user'
             ORDER BY r.rowid"
        };
        let mut st = self.conn.prepare(query)?;
        let mut rows = st.query(params![id])?;
        while let Some(r) = rows.next()? {
            let machine: String = r.get(0)?;
            let key: String = r.get(1)?;
            if !carry.users.contains_key(&key) {
                let e = Entity::with_props_json(
                    key.as_str(),
                    EntityKind::DefenderLogonUser,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                );
                carry.users.insert(key.clone(), e);
            }
            carry
                .machines
                .entry(machine)
                .or_insert(CarriedMachine {
                    read_at: saved_at,
                    users: Vec::new(),
                })
                .users
                .push(key);
        }
        Ok(carry)
    }

    /// Every device's triage status and note, by device key. They belong to
    /// the profile, not to a snapshot: they carry over from fetch to fetch.
    pub fn triage_notes(
        &self,
    ) -> Result<std::collections::HashMap<String, crate::triage::Note>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT device_key, status, note, updated_at FROM triage")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (key, status, note, updated_at) = row?;
            let status = crate::triage::Status::parse(&status).unwrap_or_default();
            out.insert(
                key,
                crate::triage::Note {
                    status,
                    note,
                    updated_at,
                },
            );
        }
        Ok(out)
    }

    pub fn set_triage(
        &mut self,
        device_key: &str,
        status: crate::triage::Status,
        note: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO triage (device_key, status, note, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(device_key) DO UPDATE SET status = excluded.status, note = excluded.note, updated_at = excluded.updated_at",
            params![device_key, status.label(), note, chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)],
        )?;
        Ok(())
    }

    /// Device keys with an open finding in a snapshot, read without loading it.
    pub fn failing_devices(
        &self,
        id: i64,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut st = self.conn.prepare("SELECT props FROM entities WHERE snapshot_id = ?1 AND type = 'intune_noncompliance_finding'")?;
        let rows = st.query_map(params![id], |r| r.get::<_, String>(0))?;
        let mut out = std::collections::HashSet::new();
        for p in rows {
            let v: serde_json::Value = serde_json::from_str(&p?).unwrap_or_default();
            if let Some(d) = v["deviceId"].as_str() {
                out.insert(d.to_string());
            }
        }
        Ok(out)
    }

    /// The snapshot before this one, if any.
    pub fn previous_id(&self, id: i64) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MAX(id) FROM snapshots WHERE id < ?1",
            params![id],
            |r| r.get(0),
        )?)
    }

    /// Deletes all but the newest `keep` snapshots.
    pub fn prune(&mut self, keep: usize) -> Result<usize, StoreError> {
        // Immediate: a read that turns into a write cannot wait for another
        // writer's lock in WAL mode; taking the lock first can.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cutoff: Option<i64> = tx
            .query_row(
                "SELECT id FROM snapshots ORDER BY id DESC LIMIT 1 OFFSET ?1",
                params![keep as i64],
                |r| r.get(0),
            )
            .optional()?;
        let mut removed = 0;
        if let Some(c) = cutoff {
            for table in ["relationships", "read_times", "entities", "source_status"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE snapshot_id <= ?1"),
                    params![c],
                )?;
            }
            removed = tx.execute("DELETE FROM snapshots WHERE id <= ?1", params![c])?;
        }
        tx.commit()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RelRecord;
    use serde_json::json;

    fn graph() -> TenantGraph {
        let mut g = TenantGraph::new();
        let p = json!({"a": "Åsa", "n": null})
            .as_object()
            .cloned()
            .unwrap_or_default();
        g.upsert(Entity::new("u1", EntityKind::AzureUser, "u1", "Åsa", &p));
        g.upsert(Entity::new("g1", EntityKind::AzureUserGroup, "g1", "G", &p));
        g.relate(RelRecord::new("g1", Verb::Has, "u1"));
        g.relate(RelRecord::new("g1", Verb::Has, "missing"));
        g
    }

    /// The directory read completely, one user, with these notes.
    fn directory_read(notes: &[&str]) -> BTreeMap<Source, SourceStatus> {
        BTreeMap::from([(
            Source::Directory,
            SourceStatus {
                source: Source::Directory,
                outcome: crate::fetch::Outcome::Complete,
                errors: vec![],
                counts: BTreeMap::from([("users".into(), 1)]),
                elapsed_ms: 5,
                notes: notes.iter().map(|n| n.to_string()).collect(),
                ..SourceStatus::not_asked(Source::Directory)
            },
        )])
    }

    /// A private directory removed when dropped.
    fn tmp(name: &str) -> tempfile::TempDir {
        let d = tempfile::Builder::new()
            .prefix(&format!("tenx-store-{name}-"))
            .tempdir()
            .expect("temp dir");
        // tenx no longer changes the mode of a folder it did not create.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700))
                .expect("private");
        }
        d
    }

    #[test]
    fn a_saved_snapshot_loads_back_identical_and_private() {
        let dir = tmp("roundtrip");
        let dir = dir.path();
        let path = dir.join(db_name("demo"));
        let mut s = Store::open(&path).expect("open");
        let g = graph();
        let statuses = directory_read(&["a note"]);
        let id = s
            .save("t1", "test", &g, &statuses, 12, &json!({"graph": 3}))
            .expect("save");
        assert_eq!(s.latest_id().expect("latest"), Some(id));
        let (info, back) = s.load(id).expect("load");
        assert_eq!(info.entity_count, 2);
        assert_eq!(info.sources[&Source::Directory].counts["users"], 1);
        let ents: Vec<_> = back.entities().map(|(i, e)| (i, e.clone())).collect();
        let orig: Vec<_> = g.entities().map(|(i, e)| (i, e.clone())).collect();
        assert_eq!(ents, orig);
        assert_eq!(
            back.relationships().collect::<Vec<_>>(),
            g.relationships().collect::<Vec<_>>()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                std::fs::metadata(dir).expect("meta").permissions().mode() & 0o777,
                0o700
            );
        }
        s.save("t1", "second", &g, &statuses, 1, &json!({}))
            .expect("save");
        s.save("t1", "third", &g, &statuses, 1, &json!({}))
            .expect("save");
        assert_eq!(s.prune(2).expect("prune"), 1);
        assert_eq!(s.list().expect("list").len(), 2);
    }

    #[test]
    fn a_database_of_schema_1_is_upgraded_in_place_and_keeps_its_snapshots() {
        let dir = tmp("upgrade");
        let dir = dir.path();
        let path = dir.join(db_name("old"));
        let g = graph();
        let statuses = directory_read(&[]);
        let id = {
            let mut s = Store::open(&path).expect("open");
            s.save("t1", "old", &g, &statuses, 1, &json!({}))
                .expect("save")
        };
        // What schema 1 had: no read times, no notes.
        let c = Connection::open(&path).expect("sqlite");
        c.execute_batch(
            "DROP TABLE read_times; ALTER TABLE source_status DROP COLUMN notes;
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .expect("downgrade");
        drop(c);
        let mut s = Store::open(&path).expect("an old database opens");
        let (info, back) = s.load(id).expect("its snapshot loads");
        assert_eq!(info.sources[&Source::Directory].notes, Vec::<String>::new());
        assert_eq!(back.entity_count(), g.entity_count());
        let mut noted = statuses.clone();
        noted.get_mut(&Source::Directory).expect("status").notes = vec!["n".into()];
        let id2 = s
            .save("t1", "new", &g, &noted, 1, &json!({}))
            .expect("saves with notes");
        assert_eq!(
            s.info(id2).expect("info").sources[&Source::Directory].notes,
            ["n"]
        );
    }

    #[test]
    fn logon_users_carry_over_with_their_read_time_or_the_snapshots() {
        let dir = tmp("carry");
        let dir = dir.path();
        let path = dir.join(db_name("c"));
        let mut g = TenantGraph::new();
        let p = serde_json::Map::new();
        for m in ["m1", "m2", "m3"] {
            g.upsert(Entity::new(m, EntityKind::DefenderMachine, m, m, &p));
        }
        let u = json!({"accountName": "ava"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        g.upsert(Entity::new(
            "u1",
            EntityKind::DefenderLogonUser,
            "u1",
            "A",
            &u,
        ));
        g.relate(RelRecord::new("m1", Verb::Has, "u1"));
        g.relate(RelRecord::new("m2", Verb::Has, "u1"));
        // A snapshot written by an older tenx has no read times at all: its
        // machines' users count as read when it was saved.
        let mut s = Store::open(&path).expect("open");
        assert_eq!(s.logon_carry().expect("empty"), Default::default());
        let old = s
            .save("t", "x", &g, &BTreeMap::new(), 1, &json!({}))
            .expect("save");
        let c = s.logon_carry().expect("carry");
        assert_eq!(c.machines.len(), 2);
        assert_eq!(c.machines["m1"].read_at, saved_at(&s, old));
        assert_eq!(c.machines["m2"].users, ["u1"]);
        assert_eq!(c.users["u1"].prop("accountName"), Some(json!("ava")));
        // Since, every machine whose users a snapshot holds has a read time
        // (read now, or carried with its first one), and only those
        // machines are looked at.
        g.set_read_at("m1", 1_000);
        g.set_read_at("m2", 1_500);
        g.set_read_at("m3", 2_000); // read, and had nobody
        s.save("t", "x", &g, &BTreeMap::new(), 1, &json!({}))
            .expect("save");
        let c = s.logon_carry().expect("carry");
        assert_eq!(c.machines.len(), 3);
        assert_eq!(c.machines["m1"].read_at, 1_000);
        assert_eq!(c.machines["m1"].users, ["u1"]);
        assert_eq!(c.machines["m2"].read_at, 1_500);
        assert_eq!(c.machines["m2"].users, ["u1"]);
        assert!(c.machines["m3"].users.is_empty());
        assert_eq!(c.users["u1"].prop("accountName"), Some(json!("ava")));
    }

    fn saved_at(s: &Store, id: i64) -> i64 {
        chrono::DateTime::parse_from_rfc3339(&s.info(id).expect("info").created_at)
            .expect("time")
            .timestamp()
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_with_its_name() {
        let dir = tmp("garbage");
        let dir = dir.path();
        let path = dir.join("x.sqlite");
        std::fs::write(&path, b"this is not sqlite at all, not even close............................................................").expect("write");
        let err = Store::open(&path).err().expect("refused");
        assert!(format!("{err:#}").contains("x.sqlite"), "{err:#}");
    }
}
