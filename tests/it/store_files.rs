//! The snapshot databases as files: reading never writes, a foreign file is
//! refused untouched, an older schema still reads, concurrent fetches all
//! land, readers do not wait for a writer, a damaged store is kept aside,
//! and the data folder's mode is the person's. The real binary against a
//! simulated tenant on loopback, and real SQLite files.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use common::bin::{ok, run};
use common::{hostile, runtime, sim};
use rusqlite::Connection;
use tenx_sim::{RunningTenant, ServerOptions};

fn start(rt: &tokio::runtime::Runtime, users: usize) -> RunningTenant {
    let opts = ServerOptions {
        rate_limits: tenx_sim::RateLimits::parse("none").expect("limits"),
        ..Default::default()
    };
    rt.block_on(sim::start(users, 77, opts))
}

/// The binary with its data in `data`, for the tenant `store-test` or the
/// simulated tenant.
fn command(s: Option<&RunningTenant>, data: &Path, args: &[&str]) -> Command {
    let mut c = common::bin::command(data);
    c.args(args).env("TENX_TENANT_ID", "store-test");
    if let Some(s) = s {
        c.envs(s.env());
    }
    c
}

fn tenx(s: Option<&RunningTenant>, data: &Path, args: &[&str]) -> Output {
    run(&mut command(s, data, args))
}

/// The store `tenx fetch` writes for the tenant of `TENX_TENANT_ID`.
fn store_of(s: &RunningTenant, data: &Path) -> PathBuf {
    let tenant = s
        .env()
        .into_iter()
        .find(|(k, _)| *k == "TENX_TENANT_ID")
        .map(|(_, v)| v)
        .expect("the tenant id");
    data.join(tenx::store::db_name(&format!(
        "tenant-{}",
        tenant.to_ascii_lowercase()
    )))
}

/// A file's content hash and length, modification time, and the names
/// beside it.
fn fingerprint(path: &Path) -> (u64, usize, SystemTime, Vec<String>) {
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

#[test]
fn a_foreign_sqlite_file_is_refused_untouched() {
    let data = common::tempdir("store-foreign");
    let data = data.path();
    let files = common::tempdir("store-foreign-files");
    let other = files.path().join("other.db");
    {
        let c = Connection::open(&other).expect("sqlite");
        c.execute_batch(
            "CREATE TABLE invoices (id INTEGER, total REAL); INSERT INTO invoices VALUES (1, 9.5);",
        )
        .expect("a database of something else");
    }
    // One in WAL mode too, and one that is not SQLite at all.
    let wal = files.path().join("wal.db");
    {
        let c = Connection::open(&wal).expect("sqlite");
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE notes (text TEXT);")
            .expect("a WAL database");
    }
    let text = files.path().join("notes.txt");
    std::fs::write(&text, "SQLite is not in this file\n".repeat(20)).expect("write");
    for other in [&other, &wal, &text] {
        let before = fingerprint(other);
        std::thread::sleep(Duration::from_millis(20));
        let o = other.to_str().expect("path");
        for args in [
            &["export", "--snapshot", o][..],
            &["search", "x", "--snapshot", o],
            &["triage", "--snapshot", o],
        ] {
            let out = tenx(None, data, args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("not a tenx snapshot database") && err.contains(o),
                "{args:?}: {err}"
            );
        }
        assert_eq!(fingerprint(other), before, "{o} or its folder was changed");
    }
}

/// A snapshot database named with --snapshot (WAL mode, as tenx writes
/// them) is read without a byte or a file changing beside it.
#[test]
fn reading_a_named_snapshot_creates_nothing_beside_it() {
    let data = common::tempdir("store-named");
    let data = data.path();
    let path = hostile::snapshot(data);
    let files = common::tempdir("store-named-files");
    let named = files.path().join("copy.sqlite");
    std::fs::rename(&path, &named).expect("rename");
    let before = fingerprint(&named);
    std::thread::sleep(Duration::from_millis(20));
    let n = named.to_str().expect("path");
    for args in [
        &["export", "--snapshot", n][..],
        &["search", "Ava", "--snapshot", n],
        &["triage", "--format", "json", "--snapshot", n],
    ] {
        ok(&tenx(None, data, args));
    }
    assert_eq!(
        fingerprint(&named),
        before,
        "reading changed the file or its folder"
    );
}

#[test]
fn a_snapshot_of_an_older_schema_is_read_without_being_changed() {
    let data = common::tempdir("store-old");
    let data = data.path();
    let path = hostile::snapshot(data);
    {
        let c = Connection::open(&path).expect("sqlite");
        c.execute_batch(
            "DROP TABLE read_times; ALTER TABLE source_status DROP COLUMN notes;
             UPDATE meta SET value = '1' WHERE key = 'schema_version';
             PRAGMA journal_mode = DELETE;",
        )
        .expect("schema 1");
    }
    let files = common::tempdir("store-old-files");
    let old = files.path().join("old.sqlite");
    std::fs::rename(&path, &old).expect("rename");
    let before = fingerprint(&old);
    std::thread::sleep(Duration::from_millis(20));
    let o = old.to_str().expect("path");
    for args in [
        &["export", "--snapshot", o][..],
        &["search", "Ava", "--snapshot", o],
        &["triage", "--format", "json", "--snapshot", o],
    ] {
        ok(&tenx(None, data, args));
    }
    assert_eq!(fingerprint(&old), before, "reading changed the file");
}

/// Four fetches at once into one store, while another writer holds the
/// store for longer than SQLite's usual 5 s wait (a large save takes
/// 7–11 s): every fetch waits its turn and saves; none is lost.
#[test]
fn four_concurrent_fetches_all_land() {
    let rt = runtime();
    let s = start(&rt, 300);
    let data = common::tempdir("store-concurrent");
    let data = data.path();
    ok(&tenx(Some(&s), data, &["fetch"]));
    let path = store_of(&s, data);
    let holder = Connection::open(&path).expect("sqlite");
    holder
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO triage VALUES ('held', 'new', '', '');")
        .expect("a long write");
    let children: Vec<_> = (0..4)
        .map(|_| {
            command(Some(&s), data, &["fetch", "--json"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("tenx fetch")
        })
        .collect();
    // Well past SQLite's usual 5 s after every fetch has asked to save.
    std::thread::sleep(Duration::from_secs(14));
    holder.execute_batch("ROLLBACK").expect("rollback");
    drop(holder);
    for c in children {
        let out = c.wait_with_output().expect("fetch ends");
        ok(&out);
    }
    let c = Connection::open(&path).expect("sqlite");
    let n: i64 = c
        .query_row("SELECT count(*) FROM snapshots", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 5, "every fetch saved its snapshot");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(c);
    rt.block_on(s.stop());
}

#[test]
fn readers_do_not_wait_for_a_writer() {
    let rt = runtime();
    let s = start(&rt, 100);
    let data = common::tempdir("store-readers");
    let data = data.path();
    ok(&tenx(Some(&s), data, &["fetch"]));
    let c = Connection::open(store_of(&s, data)).expect("sqlite");
    // A writer holds a long transaction; readers answer at once.
    c.execute_batch("BEGIN EXCLUSIVE; INSERT INTO triage VALUES ('held', 'new', '', '');")
        .expect("a long write");
    for args in [
        &["search", "a"][..],
        &["export", "--format", "jsonl"],
        &["triage", "--format", "json"],
    ] {
        let start = Instant::now();
        let out = tenx(Some(&s), data, args);
        ok(&out);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "tenx {args:?} waited {:?} for the writer",
            start.elapsed()
        );
    }
    c.execute_batch("ROLLBACK").expect("rollback");
    drop(c);
    rt.block_on(s.stop());
}

#[cfg(unix)]
#[test]
fn the_data_folders_mode_is_left_alone_and_a_new_one_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let rt = runtime();
    let s = start(&rt, 40);
    let root = common::tempdir("store-mode");
    let shared = root.path().join("shared");
    std::fs::create_dir(&shared).expect("dir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let out = tenx(Some(&s), &shared, &["fetch"]);
    ok(&out);
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(
        mode(&shared),
        0o1777,
        "tenx changed a folder it did not create"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("writable by other users").count(),
        1,
        "one warning: {err}"
    );
    assert!(err.contains(&shared.display().to_string()), "{err}");
    let fresh = root.path().join("new").join("data");
    ok(&tenx(Some(&s), &fresh, &["fetch"]));
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&root.path().join("new")), 0o700);
    rt.block_on(s.stop());
}

/// Overwrites pages in the middle of a database with garbage.
fn damage_interior_pages(path: &Path) {
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

#[test]
fn a_damaged_store_is_kept_aside_and_a_new_one_started() {
    let rt = runtime();
    let s = start(&rt, 200);
    let data = common::tempdir("store-damaged");
    let data = data.path();
    ok(&tenx(Some(&s), data, &["fetch"]));
    let path = store_of(&s, data);
    assert!(
        !PathBuf::from(format!("{}-wal", path.display())).exists(),
        "the WAL is folded in when the last connection closes"
    );
    damage_interior_pages(&path);
    let damaged = std::fs::read(&path).expect("read");
    let out = tenx(Some(&s), data, &["fetch"]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is damaged") && err.contains("moved to"),
        "{err}"
    );
    let aside: Vec<PathBuf> = std::fs::read_dir(data)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.display().to_string().contains(".sqlite.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).expect("aside"),
        damaged,
        "kept as it was"
    );
    let c = Connection::open(&path).expect("sqlite");
    let check: String = c
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let n: i64 = c
        .query_row("SELECT count(*) FROM snapshots", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 1);
    let log = std::fs::read_to_string(data.join("tenx.log")).unwrap_or_default();
    assert!(log.contains("is damaged"), "the log says so too");
    rt.block_on(s.stop());
}
