//! Where `-o` may write: a regular file or a new path, never through a
//! link, into a FIFO, over a device or a directory; `-o -` is standard
//! output; a missing folder is named; no temporary file stays behind, not
//! even when a signal ends an export mid-write. The real binary on a real
//! snapshot.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::hostile::{self, tenx};
use common::tempdir;

fn err(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn tmp_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[cfg(unix)]
#[test]
fn links_fifos_and_directories_are_refused_untouched() {
    let data = tempdir("out-kinds");
    let data = data.path();
    hostile::snapshot(data);
    let out_dir = data.join("out");
    std::fs::create_dir(&out_dir).expect("dir");
    let victim = out_dir.join("victim.txt");
    std::fs::write(&victim, b"keep me").expect("write");
    std::os::unix::fs::symlink(&victim, out_dir.join("link.json")).expect("symlink");
    let fifo = out_dir.join("fifo.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    std::fs::create_dir(out_dir.join("dir.json")).expect("dir");
    for (name, kind) in [
        ("link.json", "a symbolic link"),
        ("fifo.json", "a FIFO"),
        ("dir.json", "a directory"),
    ] {
        let path = out_dir.join(name);
        let p = path.to_str().expect("path");
        for args in [
            &["export", "-o", p][..],
            &["export", "--format", "dot", "-o", p],
            &["triage", "--format", "md", "-o", p],
        ] {
            let e = err(&tenx(data, args));
            assert!(
                e.contains(p) && e.contains(kind) && e.contains("regular file or a new path"),
                "{args:?}: {e}"
            );
        }
    }
    // Nothing changed: the link is a link, its target kept, the FIFO a FIFO.
    let m = std::fs::symlink_metadata(out_dir.join("link.json")).expect("meta");
    assert!(m.file_type().is_symlink());
    assert_eq!(std::fs::read(&victim).expect("read"), b"keep me");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .expect("meta")
            .file_type()
            .is_fifo()
    );
    assert!(out_dir.join("dir.json").is_dir());
    assert!(tmp_files(&out_dir).is_empty(), "{:?}", names(&out_dir));
}

/// A device is refused before anything is opened (as root, tenx used to
/// rename its file over `/dev/null`).
#[cfg(unix)]
#[test]
fn a_device_is_refused() {
    use std::os::unix::fs::FileTypeExt;
    let data = tempdir("out-dev");
    let data = data.path();
    hostile::snapshot(data);
    for args in [
        &["export", "-o", "/dev/null"][..],
        &["triage", "-o", "/dev/null"],
    ] {
        let e = err(&tenx(data, args));
        assert!(
            e.contains("/dev/null") && e.contains("a character device"),
            "{e}"
        );
    }
    assert!(
        std::fs::symlink_metadata("/dev/null")
            .expect("meta")
            .file_type()
            .is_char_device()
    );
}

#[test]
fn a_missing_folder_is_named_and_dash_is_standard_output() {
    let data = tempdir("out-dash");
    let data = data.path();
    hostile::snapshot(data);
    let missing = data.join("no").join("such");
    let path = missing.join("x.json");
    let e = err(&tenx(data, &["export", "-o", path.to_str().expect("path")]));
    assert!(
        e.contains(&format!("the folder {} does not exist", missing.display())),
        "{e}"
    );
    assert!(!e.contains(".tmp"), "{e}");
    let e = err(&tenx(
        data,
        &[
            "triage",
            "--format",
            "csv",
            "-o",
            path.to_str().expect("path"),
        ],
    ));
    assert!(e.contains("does not exist"), "{e}");

    // `-o -`: standard output, for every format but CSV's two files.
    let out = tenx(data, &["export", "-o", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["entities"].as_array().map(Vec::len), Some(9));
    let out = tenx(data, &["triage", "--format", "md", "-o", "-"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("# Noncompliant devices"));
    assert!(!data.join("-").exists());
    let e = err(&tenx(data, &["export", "--format", "csv", "-o", "-"]));
    assert!(e.contains("two files"), "{e}");
    let e = err(&tenx(data, &["export", "--format", "csv"]));
    assert!(e.contains("two files"), "{e}");
}

/// CSV writes two files: when either cannot be written, neither is.
#[cfg(unix)]
#[test]
fn csv_checks_both_files_before_writing_either() {
    let data = tempdir("out-csv");
    let data = data.path();
    hostile::snapshot(data);
    let dir = data.join("out");
    std::fs::create_dir(&dir).expect("dir");
    std::os::unix::fs::symlink("/etc/hostname", dir.join("x-relationships.csv")).expect("link");
    let e = err(&tenx(
        data,
        &[
            "export",
            "--format",
            "csv",
            "-o",
            dir.join("x.csv").to_str().expect("path"),
        ],
    ));
    assert!(
        e.contains("x-relationships.csv") && e.contains("symbolic link"),
        "{e}"
    );
    assert_eq!(names(&dir), ["x-relationships.csv"]);
    let ok = tenx(
        data,
        &[
            "export",
            "--format",
            "csv",
            "-o",
            dir.join("y.csv").to_str().expect("path"),
        ],
    );
    assert!(ok.status.success());
    assert_eq!(
        names(&dir),
        [
            "x-relationships.csv",
            "y-entities.csv",
            "y-relationships.csv"
        ]
    );
}

/// A snapshot big enough that writing its export takes a while.
fn big_snapshot(data: &Path) {
    use serde_json::json;
    use tenx::model::{Entity, EntityKind, TenantGraph};
    let mut g = TenantGraph::new();
    let filler = "x".repeat(400);
    for i in 0..60_000 {
        let p = json!({"userPrincipalName": format!("user{i}@example.com"), "a": filler, "b": filler, "c": [filler, filler]});
        g.upsert(Entity::new(
            format!("u-{i}"),
            EntityKind::AzureUser,
            format!("u-{i}"),
            format!("User {i}"),
            p.as_object().expect("object"),
        ));
    }
    std::fs::create_dir_all(data).expect("dir");
    let mut s = tenx::store::Store::open(&data.join(hostile::STORE)).expect("store");
    s.save(
        hostile::TENANT_ID,
        "big",
        &g,
        &Default::default(),
        1,
        &json!({}),
    )
    .expect("save");
}

/// SIGTERM and SIGINT during a long export: the process ends as the signal
/// says and its temporary file goes with it.
#[cfg(unix)]
#[test]
fn a_signal_mid_export_leaves_no_temporary_file() {
    let data = tempdir("out-signal");
    let data = data.path();
    big_snapshot(data);
    let dir = data.join("out");
    std::fs::create_dir(&dir).expect("dir");
    for (signal, code) in [("TERM", 15), ("INT", 2)] {
        let target = dir.join("big.json");
        let mut child = hostile::command(data)
            .args(["export", "-o", target.to_str().expect("path")])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tenx export");
        // Wait for the temporary file, then signal at once.
        let start = Instant::now();
        while tmp_files(&dir).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no temporary file appeared"
            );
            assert!(
                child.try_wait().expect("wait").is_none(),
                "the export ended before it could be interrupted"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let st = child.wait().expect("ends");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(code), "{st:?}");
        assert!(tmp_files(&dir).is_empty(), "{:?}", names(&dir));
        assert!(!target.exists(), "a partial export was left");
    }
}
