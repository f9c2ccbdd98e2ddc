//! How snapshot databases are opened: read-only for reading, WAL and a busy
//! timeout for writing, a tenx database or nothing, an integrity check
//! before a save, and folders tenx owns.
//!
//! - **Readers never write.** `Store::open_read_only` opens with
//!   `SQLITE_OPEN_READ_ONLY`: no table is created, no pragma that writes is
//!   run, a file that is not a tenx snapshot is refused untouched. A
//!   database of an older schema is read through TEMP shims (see
//!   [`shim_older_schema`]), which live in the connection, not the file.
//! - **Writers queue.** Every connection waits up to [`BUSY_TIMEOUT`] for
//!   another's lock instead of failing, and writers put the database in WAL
//!   mode, where readers do not wait for a writer at all.
//! - **A damaged store is kept aside**: before a save, `PRAGMA quick_check`;
//!   a store that fails it is renamed `<name>.corrupt-<time>` (with its
//!   `-wal` and `-shm`) and a new one started, and the person is told.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Context, StoreError, fail};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// How long a connection waits for another's lock. Four fetches saving
/// into one store queue one behind another (a 100,000-user save takes
/// 7–11 s); none is lost to "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(600);

/// Something a person must know about their data: on stderr (unless the
/// explorer owns the terminal, `crate::base::terminal`) and in the log.
pub fn notice(text: &str) {
    tracing::warn!("{text}");
    if !crate::base::terminal::owned() {
        eprintln!("tenx: {text}");
    }
}

/// The schema version a database says it has; `None` for an empty
/// database. A database with tables but no `meta` table holding a schema
/// version is not a tenx snapshot: refused, and nothing is written to it.
pub fn tenx_version(conn: &Connection, path: &Path) -> Result<Option<i64>, StoreError> {
    let not_tenx = || format!("{} is not a tenx snapshot database", path.display());
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .with_context(not_tenx)?;
    if tables == 0 {
        return Ok(None);
    }
    let has_meta = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")?
        .exists([])?;
    let version: Option<String> = if has_meta {
        conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .with_context(not_tenx)?
    } else {
        None
    };
    match version.and_then(|v| v.trim().parse::<i64>().ok()) {
        Some(v) => Ok(Some(v)),
        None => fail!(
            Foreign,
            "{}: it has no tenx schema version; tenx leaves it untouched",
            not_tenx()
        ),
    }
}

/// A writer's settings: wait for locks, WAL (readers never wait for a
/// writer), a WAL file cut back after checkpoints.
pub fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "the snapshot database stays out of WAL mode");
    }
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864;",
    )
}

/// Who a database file belongs to, for reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// A profile's store in tenx's data directory. A fetch may be saving
    /// into it: read through SQLite's locks (in WAL mode that may leave
    /// empty `-wal` and `-shm` files beside it, 0600 like the database).
    Tenx,
    /// A file named with `--snapshot`: read without creating anything
    /// beside it when no writer has it open.
    Named,
}

/// What the first bytes of a file say: not SQLite, a SQLite database in
/// rollback mode, or one in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Empty,
    NotSqlite,
    Rollback,
    Wal,
}

fn header(path: &Path) -> Result<Header, StoreError> {
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = [0u8; 20];
    let mut n = 0;
    while n < h.len() {
        match f.read(&mut h[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        }
    }
    Ok(match n {
        0 => Header::Empty,
        20 if &h[..16] == b"SQLite format 3\0" => {
            if h[18] == 2 && h[19] == 2 {
                Header::Wal
            } else {
                Header::Rollback
            }
        }
        _ => Header::NotSqlite,
    })
}

/// Whether a profile's store file exists but holds nothing yet (a writer
/// created it and stopped before its first table).
pub fn is_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
}

/// A read-only connection to a tenx snapshot database.
pub fn open_read_only(
    path: &Path,
    whose: Whose,
    schema: impl Fn(&Connection) -> rusqlite::Result<()>,
    current: i64,
) -> Result<Connection, StoreError> {
    if !path.is_file() {
        fail!(
            Missing,
            "{} does not exist or is not a file",
            path.display()
        );
    }
    let not_tenx = |why: &str| format!("{} is not a tenx snapshot database: {why}", path.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match header(path)? {
        Header::Empty => fail!(Foreign, "{}", not_tenx("it is empty")),
        Header::NotSqlite => fail!(Foreign, "{}", not_tenx("it is not an SQLite database")),
        // No writer has it open (no -wal): read it as a file that does not
        // change, so SQLite creates no -wal or -shm beside it.
        Header::Wal
            if whose == Whose::Named
                && !PathBuf::from(format!("{}-wal", path.display())).exists() =>
        {
            let abs = std::fs::canonicalize(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let uri = url::Url::from_file_path(&abs)
                .map_err(|()| StoreError::Failed(format!("cannot read {}", path.display())))?;
            Connection::open_with_flags(
                format!("{uri}?immutable=1"),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )
        }
        _ => Connection::open_with_flags(path, flags),
    }
    .with_context(|| format!("cannot open the snapshot database {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    match tenx_version(&conn, path)? {
        None => fail!(Foreign, "{}", not_tenx("it has no tables")),
        Some(v) if v > current => fail!(
            Foreign,
            "{} was written by a newer tenx (schema {v}); upgrade tenx",
            path.display()
        ),
        Some(v) if v < current => shim_older_schema(&conn, schema).with_context(|| {
            format!(
                "cannot read {} (schema {v}); run `tenx fetch` once to upgrade it",
                path.display()
            )
        })?,
        Some(_) => {}
    }
    Ok(conn)
}

/// Makes a database of an older schema readable by today's queries without
/// writing to it: a table the file lacks is an empty TEMP table, and a
/// table that lacks columns is shadowed by a TEMP view of it that adds them
/// with their default values. TEMP objects live in the connection;
/// unqualified names find them first. `schema` builds today's schema (in
/// an empty in-memory database, to compare with).
pub fn shim_older_schema(
    conn: &Connection,
    schema: impl Fn(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let model = Connection::open_in_memory()?;
    schema(&model)?;
    let mut tables = model.prepare(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    let tables: Vec<(String, String)> = tables
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, sql) in tables {
        let exists = conn
            .prepare("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?1")?
            .exists([&name])?;
        if !exists {
            let temp = sql.replacen("CREATE TABLE", "CREATE TEMP TABLE", 1);
            conn.execute_batch(&temp)?;
            continue;
        }
        let columns =
            |c: &Connection, db: &str| -> rusqlite::Result<Vec<(String, Option<String>)>> {
                let mut st = c.prepare(&format!(
                    "SELECT name, dflt_value FROM {db}.pragma_table_info(?1) ORDER BY cid"
                ))?;
                st.query_map([&name], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            };
        let have: Vec<String> = columns(conn, "main")?.into_iter().map(|c| c.0).collect();
        let want = columns(&model, "main")?;
        if want.iter().all(|(c, _)| have.contains(c)) {
            continue;
        }
        let list: Vec<String> = want
            .iter()
            .map(|(c, default)| {
                if have.contains(c) {
                    format!("\"{c}\"")
                } else {
                    format!("{} AS \"{c}\"", default.as_deref().unwrap_or("NULL"))
                }
            })
            .collect();
        conn.execute_batch(&format!(
            "CREATE TEMP VIEW \"{name}\" AS SELECT {} FROM main.\"{name}\"",
            list.join(", ")
        ))?;
    }
    Ok(())
}

/// `PRAGMA quick_check`: `Ok` or what it found.
pub fn quick_check(conn: &Connection) -> Result<(), String> {
    let mut st = conn
        .prepare("PRAGMA quick_check(20)")
        .map_err(|e| e.to_string())?;
    let rows: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| e.to_string())?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(rows.join("; "))
    }
}

/// Renames a damaged database and its `-wal` and `-shm` to
/// `<name>.corrupt-<UTC time>` (`-wal`, `-shm`); returns the new name.
pub fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    let mut n = 1;
    while aside.exists() {
        aside = PathBuf::from(format!("{}.corrupt-{stamp}-{n}", path.display()));
        n += 1;
    }
    std::fs::rename(path, &aside).with_context(|| {
        format!(
            "{} is damaged and cannot be moved aside to {}",
            path.display(),
            aside.display()
        )
    })?;
    for suffix in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if from.exists() {
            let _ = std::fs::rename(&from, format!("{}{suffix}", aside.display()));
        }
    }
    Ok(aside)
}

/// Folders whose openness was already warned about.
static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A folder tenx keeps private data in: created 0700 (with any missing
/// parents) when it does not exist; an existing folder's mode is never
/// changed — a folder others can read or write is warned about, once.
pub fn private_dir(dir: &Path) -> Result<(), StoreError> {
    if !dir.is_dir() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
            if !warned.iter().any(|d| d == dir) {
                warned.push(dir.to_path_buf());
                let who = if mode & 0o022 != 0 {
                    "writable"
                } else {
                    "readable"
                };
                notice(&format!(
                    "{} is {who} by other users (mode {:o}); tenx keeps tenant data there. Make it private with: chmod 700 {}",
                    dir.display(),
                    mode & 0o7777,
                    dir.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Store, db_name};
    use super::*;
    use std::collections::BTreeMap;

    fn tmp(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("tenx-access-{name}-"))
            .tempdir()
            .expect("temp dir")
    }

    /// A file's bytes and modification time, and the names beside it.
    fn fingerprint(path: &Path) -> (u64, usize, std::time::SystemTime, Vec<String>) {
        let dir = path.parent().expect("dir");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let bytes = std::fs::read(path).expect("read");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&bytes, &mut h);
        (
            std::hash::Hasher::finish(&h),
            bytes.len(),
            std::fs::metadata(path)
                .expect("meta")
                .modified()
                .expect("mtime"),
            names,
        )
    }

    fn graph() -> crate::model::TenantGraph {
        use crate::model::{Entity, EntityKind, RelRecord, Verb};
        let mut g = crate::model::TenantGraph::new();
        let p = serde_json::Map::new();
        g.upsert(Entity::new(
            "m1",
            EntityKind::DefenderMachine,
            "m1",
            "M",
            &p,
        ));
        g.upsert(Entity::new(
            "u1",
            EntityKind::DefenderLogonUser,
            "u1",
            "U",
            &p,
        ));
        g.relate(RelRecord::new("m1", Verb::Has, "u1"));
        g
    }

    #[test]
    fn a_file_that_is_not_a_tenx_snapshot_is_refused_untouched() {
        let d = tmp("foreign");
        let foreign = d.path().join("other.db");
        {
            let c = Connection::open(&foreign).expect("sqlite");
            c.execute_batch("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ava');")
                .expect("a foreign database");
        }
        let garbage = d.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a; 8192]).expect("write");
        for path in [&foreign, &garbage] {
            let before = fingerprint(path);
            std::thread::sleep(Duration::from_millis(20));
            let e = format!(
                "{:#}",
                Store::open_read_only(path).err().expect("refused to read")
            );
            assert!(e.contains("not a tenx snapshot database"), "{e}");
            assert!(e.contains(&path.display().to_string()), "{e}");
            let e = format!("{:#}", Store::open(path).err().expect("refused to write"));
            assert!(e.contains("not a tenx snapshot database"), "{e}");
            assert_eq!(fingerprint(path), before, "{} was changed", path.display());
        }
        let c = Connection::open(&foreign).expect("sqlite");
        let tables: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .expect("count");
        assert_eq!(tables, 1, "no tenx table was added");
    }

    #[test]
    fn an_older_schema_is_read_as_it_is_without_writing() {
        let d = tmp("old");
        let path = d.path().join(db_name("old"));
        let mut g = graph();
        g.set_read_at("m1", 1_000);
        let id = {
            let mut s = Store::open(&path).expect("open");
            s.save("t", "old", &g, &BTreeMap::new(), 1, &serde_json::json!({}))
                .expect("save")
        };
        // What schema 1 had: no read times, no notes.
        {
            let c = Connection::open(&path).expect("sqlite");
            c.execute_batch(
                "DROP TABLE read_times; ALTER TABLE source_status DROP COLUMN notes;
                 UPDATE meta SET value = '1' WHERE key = 'schema_version';
                 PRAGMA journal_mode = DELETE;",
            )
            .expect("downgrade");
        }
        let before = fingerprint(&path);
        std::thread::sleep(Duration::from_millis(20));
        let s = Store::open_read_only(&path).expect("an old database opens to read");
        assert_eq!(s.latest_id().expect("latest"), Some(id));
        let (info, back) = s.load(id).expect("its snapshot loads");
        assert_eq!(back.entity_count(), 2);
        assert!(info.sources.is_empty());
        let carry = s.logon_carry().expect("the carry-over reads");
        assert_eq!(carry.machines["m1"].users, ["u1"]);
        assert!(s.triage_notes().expect("notes").is_empty());
        drop(s);
        assert_eq!(fingerprint(&path), before, "reading wrote to the file");
        let c = Connection::open(&path).expect("sqlite");
        let v: String = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .expect("version");
        assert_eq!(v, "1");
    }

    #[cfg(unix)]
    #[test]
    fn a_writer_uses_wal_and_every_file_stays_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmp("wal");
        let path = d.path().join(db_name("w"));
        let mut s = Store::open(&path).expect("open");
        s.save(
            "t",
            "x",
            &graph(),
            &BTreeMap::new(),
            1,
            &serde_json::json!({}),
        )
        .expect("save");
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            let m = std::fs::metadata(&p).expect("exists while open");
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", p.display());
        }
        // A reader alongside the writer's open transaction answers at once.
        s.conn
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO triage VALUES ('d', 'new', '', '');")
            .expect("a long write");
        let start = std::time::Instant::now();
        let r = Store::open_read_only(&path).expect("read");
        assert_eq!(r.list().expect("list").len(), 1);
        assert!(start.elapsed() < Duration::from_secs(1));
        s.conn.execute_batch("ROLLBACK").expect("rollback");
    }

    #[test]
    fn damage_is_found_and_the_file_moved_aside_with_its_journals() {
        let d = tmp("damage");
        let path = d.path().join("x.sqlite");
        {
            let mut s = Store::open(&path).expect("open");
            let mut g = crate::model::TenantGraph::new();
            for i in 0..3000 {
                g.upsert(crate::model::Entity::new(
                    format!("k{i}"),
                    crate::model::EntityKind::AzureUser,
                    format!("k{i}"),
                    format!("user {i} with a name long enough to fill pages"),
                    &serde_json::Map::new(),
                ));
            }
            s.save("t", "x", &g, &BTreeMap::new(), 1, &serde_json::json!({}))
                .expect("save");
            assert_eq!(quick_check(&s.conn), Ok(()));
        }
        damage_interior_pages(&path);
        let c = Connection::open(&path).expect("sqlite");
        let found = quick_check(&c).expect_err("damage found");
        assert!(!found.is_empty());
        drop(c);
        std::fs::write(format!("{}-wal", path.display()), b"w").expect("wal");
        let aside = move_aside(&path).expect("moved");
        assert!(!path.exists());
        assert!(aside.display().to_string().contains("x.sqlite.corrupt-"));
        assert!(PathBuf::from(format!("{}-wal", aside.display())).exists());
    }

    /// Overwrites pages in the middle of a database with garbage.
    pub(crate) fn damage_interior_pages(path: &Path) {
        use std::io::{Seek, SeekFrom, Write};
        let len = std::fs::metadata(path).expect("meta").len();
        let page = 4096;
        let pages = len / page;
        assert!(pages > 8, "{pages} pages");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open");
        for p in [pages / 2, pages / 2 + 1, pages - 2] {
            f.seek(SeekFrom::Start(p * page)).expect("seek");
            f.write_all(&vec![0xAB; page as usize]).expect("garbage");
        }
        f.sync_all().expect("sync");
    }

    #[cfg(unix)]
    #[test]
    fn tenx_creates_its_folders_private_and_leaves_others_alone() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmp("dirs");
        let shared = d.path().join("shared");
        std::fs::create_dir(&shared).expect("dir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        private_dir(&shared).expect("an existing folder");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o7777;
        assert_eq!(mode(&shared), 0o1777, "an existing folder keeps its mode");
        let new = shared.join("a").join("b");
        private_dir(&new).expect("created");
        assert_eq!(mode(&new), 0o700);
        assert_eq!(mode(&shared.join("a")), 0o700);
        assert!(WARNED.lock().expect("warned").iter().any(|w| w == &shared));
    }
}
