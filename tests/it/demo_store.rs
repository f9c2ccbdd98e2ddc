//! `tenx demo` keeps its snapshots in a temporary store of its own, removed
//! when it ends: the person's data directory does not grow with every run.

use crate::common;

use std::path::Path;

use common::bin::{command, run};
use common::tempdir;

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_headless_demo_leaves_no_database_behind() {
    let data = tempdir("demo-data");
    let tmp = tempdir("demo-tmp");
    for _ in 0..2 {
        let out = run(command(data.path())
            .args(["demo", "--headless", "--users", "60", "--latency-ms", "0"])
            .env("TMPDIR", tmp.path()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The report names the snapshot it saved, in the temporary store.
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(report.contains("snapshot"), "{report}");
        let databases: Vec<String> = files_under(data.path())
            .into_iter()
            .filter(|f| f.contains(".sqlite"))
            .collect();
        assert!(
            databases.is_empty(),
            "the demo saved into the data directory: {databases:?}"
        );
        assert!(
            files_under(tmp.path()).is_empty(),
            "the demo's temporary store stayed: {:?}",
            files_under(tmp.path())
        );
    }
}
