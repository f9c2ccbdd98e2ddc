//! The house's plan, checked: each top-level module of `src/` may use only
//! modules of the layers below its own (read from its `crate::` paths,
//! outside comments and test modules), so dependencies point one way and
//! no two modules need each other. Only the commands may use the simulated
//! tenant.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first. A module may use the modules of the layers before its
/// own, never its own layer's or a later one's.
const LAYERS: &[&[&str]] = &[
    // Foundations: the graph, text and files, endpoints, the page scanner.
    &[
        "model",
        "text",
        "terminal",
        "secret",
        "outfile",
        "redact",
        "scan",
        "endpoints",
        "gate",
        "report",
    ],
    // What requests are, tokens, records, secrets in the keyring.
    &["alloc", "secrets", "auth", "record", "outgoing", "logons"],
    // Pacing, ingest: records become entities.
    &["pace", "ingest"],
    // The HTTP client.
    &["http"],
    // What each source reads, and the context it reads through.
    &["sources"],
    // Orchestration: sources into one graph.
    &["fetch"],
    // Features on the graph.
    &["search", "export", "triage"],
    // Snapshots, profiles.
    &["store"],
    &["config"],
    // The simulated tenant: used by the commands only.
    &["fake"],
    // The explorer.
    &["tui"],
    // Commands, last.
    &["cmd"],
];

/// The module a file belongs to: `src/fetch.rs` → fetch,
/// `src/sources/arm.rs` → sources.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The `crate::x` modules a file uses, outside comments and its test
/// module (tests may reach anywhere).
fn uses(text: &str) -> BTreeSet<String> {
    let code = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let line = line.split(" //").next().unwrap_or(line);
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            walk(&p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
}

#[test]
fn dependencies_point_down_the_layers_and_nothing_but_commands_uses_the_simulated_tenant() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let rank: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.iter().map(move |m| (*m, i)))
        .collect();
    let mut problems = Vec::new();
    for f in &files {
        let module = module_of(&src, f);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&mine) = rank.get(module.as_str()) else {
            problems.push(format!(
                "{}: module '{module}' is in no layer (tests/layers.rs)",
                f.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(f).expect("read");
        for used in uses(&text) {
            if used == module {
                continue;
            }
            match rank.get(used.as_str()) {
                None => problems.push(format!(
                    "{}: uses '{used}', which is in no layer",
                    f.display()
                )),
                Some(&theirs) if theirs >= mine => problems.push(format!(
                    "{}: {module} (layer {mine}) uses {used} (layer {theirs}): dependencies must point down",
                    f.display()
                )),
                Some(_) => {}
            }
            if used == "fake" && module != "cmd" {
                problems.push(format!(
                    "{}: only the commands may use the simulated tenant",
                    f.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_sees_uses_and_skips_comments_and_tests() {
    let text = "use crate::http::Http;\n// crate::tui is only named here\nlet x = crate::model::EntityKind::Cve; // crate::cmd\n#[cfg(test)]\nmod tests { use crate::fake::X; }\n";
    let got: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(got, ["http", "model"]);
}
