//! What is wrong with the command line is said before anything else is
//! looked at: an unknown format, direction or grouping, a depth out of
//! range, a missing snapshot file, a profile that cannot be read.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::bin::{bare, run};
use common::tempdir;

/// tenx with an empty data and config directory: no profile at all.
fn tenx(home: &Path, args: &[&str]) -> Output {
    run(bare(home).args(args))
}

#[test]
fn bad_flag_values_are_reported_before_any_profile_is_looked_for() {
    let home = tempdir("flags");
    let home = home.path();
    let missing = home.join("missing.db");
    let m = missing.to_str().expect("path");
    for (args, says) in [
        (&["export", "--format", "xml"][..], "xml"),
        (&["export", "--direction", "sideways"], "sideways"),
        (&["export", "--depth", "9"], "9"),
        (&["export", "--follow", "LIKES"], "LIKES"),
        (&["export", "--snapshot", m], "no such file"),
        (&["search", "ava", "--snapshot", m], "no such file"),
        (&["search", "ava", "--kind", "planet"], "planet"),
        (&["triage", "--snapshot", m], "no such file"),
        (&["triage", "--format", "xml"], "xml"),
        (&["triage", "--group-by", "moon"], "moon"),
        (
            &["triage", "set", "d-1", "--status", "finished"],
            "finished",
        ),
        (&["fetch", "--sources", "directory,mail"], "mail"),
    ] {
        let out = tenx(home, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(says) && !err.contains("no profile"),
            "{args:?}: {err}"
        );
    }
    // The help lists the values and the depth's range.
    let help = String::from_utf8_lossy(&tenx(home, &["export", "--help"]).stdout).into_owned();
    for want in [
        "json, jsonl, dot, mermaid, csv, graphml",
        "out, in, both",
        "0–5",
    ] {
        assert!(help.contains(want), "export --help lacks {want}:\n{help}");
    }
    let help = String::from_utf8_lossy(&tenx(home, &["triage", "--help"]).stdout).into_owned();
    for want in ["table, csv, md, json", "policy, setting, owner, platform"] {
        assert!(help.contains(want), "triage --help lacks {want}:\n{help}");
    }
}

fn write_profile(home: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let dir = home.join("config").join("profiles");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_profile_that_cannot_be_read_says_why_and_where() {
    let home = tempdir("profile");
    let home = home.path();
    let path = write_profile(
        home,
        "broken",
        "tenant = \"contoso.example\"\nclient_id = [\n",
    );
    for args in [
        &["export"][..],
        &["fetch"],
        &["fetch", "--profile", "broken"],
        &["search", "x"],
    ] {
        let out = tenx(home, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&path.display().to_string())
                && err.contains("is not a valid profile")
                && err.contains("TOML parse error")
                && !err.contains("no profile yet"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_profile_with_no_source_is_an_error() {
    let home = tempdir("nosource");
    let home = home.path();
    let path = write_profile(
        home,
        "empty",
        "tenant = \"contoso.example\"\nclient_id = \"0f2f6a1e-1b7e-4c1e-9a55-5d1c0a3b9e21\"\ncloud = \"public\"\nsources = []\n",
    );
    for args in [&["fetch"][..], &["fetch", "--profile", "empty"]] {
        let out = run(bare(home).args(args).env("TENX_CLIENT_SECRET", "not-used"));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&path.display().to_string()) && err.contains("sources = []"),
            "{args:?}: {err}"
        );
    }
}
