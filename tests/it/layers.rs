//! The house's plan, checked: each top-level module of `src/` may use only
//! modules of the layers below its own (read from its `crate::` paths,
//! outside comments and test modules), so dependencies point one way and
//! no two modules need each other. Only the commands may use the simulated
//! tenant (`crates/sim`), which itself uses nothing of the product.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first. A module may use the modules of the layers before its
/// own, never its own layer's or a later one's.
const LAYERS: &[&[&str]] = &[
    // Foundations: the graph, text and files, endpoints, the page scanner.
    &[
        "model",
        "base",
        "base::text",
        "base::terminal",
        "base::outfile",
        "base::redact",
        "base::setting",
        "auth::secret",
        "auth::endpoints",
        "fetch::scan",
        "fetch::gate",
        "fetch::report",
    ],
    // Tokens, the keyring, records, what requests are, logon-user pacing.
    &[
        "base::alloc",
        "auth::secrets",
        "auth",
        "fetch::record",
        "fetch::outgoing",
        "fetch::logons",
    ],
    // Pacing, ingest: records become entities.
    &["fetch::pace", "ingest"],
    // The HTTP client.
    &["fetch::http"],
    // What each source reads, and the context it reads through.
    &["fetch::sources"],
    // Orchestration: sources into one graph.
    &["fetch"],
    // Features on the graph.
    &["search", "export", "triage"],
    // Snapshots, profiles.
    &["store"],
    &["config"],
    // The explorer.
    &["tui"],
    // Commands, last.
    &["cmd"],
];

/// The layered module a path names: the longest of `LAYERS`' names it
/// starts with (`fetch::sources::arm::read` → `fetch::sources`), or its
/// first part when none.
fn layered<'a>(path: &'a str, known: &BTreeMap<&str, usize>) -> &'a str {
    let mut best = path.split("::").next().unwrap_or(path);
    let mut end = 0;
    for (i, _) in path
        .match_indices("::")
        .chain(std::iter::once((path.len(), "")))
    {
        if known.contains_key(&path[..i]) {
            end = i;
        }
    }
    if end > 0 {
        best = &path[..end];
    }
    best
}

/// The module path a file is: `src/fetch/sources/arm.rs` →
/// `fetch::sources::arm`, `src/fetch/mod.rs` → `fetch`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|c| c != "mod")
        .collect();
    parts.join("::")
}

/// The `crate::x` modules a file uses, outside comments and its test
/// module (tests may reach anywhere).
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code_lines(text) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let name = name.trim_end_matches(':').to_string();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// A file's lines of code: outside comments and its test module.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    let code = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    code.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
        .map(|l| l.split(" //").next().unwrap_or(l))
}

/// Whether a file's code (not its tests) uses the simulated tenant's crate.
fn uses_the_simulated_tenant(text: &str) -> bool {
    code_lines(text).any(|l| l.contains("tenx_sim"))
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
        let path = module_of(&src, f);
        if path == "lib" || path == "main" {
            continue;
        }
        let module = layered(&path, &rank).to_string();
        let Some(&mine) = rank.get(module.as_str()) else {
            problems.push(format!(
                "{}: module '{module}' is in no layer (tests/layers.rs)",
                f.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(f).expect("read");
        for used in uses(&text) {
            let used = layered(&used, &rank).to_string();
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
        }
        if uses_the_simulated_tenant(&text) && module != "cmd" {
            problems.push(format!(
                "{}: only the commands may use the simulated tenant (tenx-sim)",
                f.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_sees_uses_and_skips_comments_and_tests() {
    let text = "use crate::fetch::http::Http;\n// crate::tui is only named here\nlet x = crate::model::EntityKind::Cve; // crate::cmd\n#[cfg(test)]\nmod tests { use tenx_sim::X; }\n";
    let got: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(got, ["fetch::http::Http", "model::EntityKind::Cve"]);
    let rank: BTreeMap<&str, usize> = [("fetch", 0), ("fetch::sources", 1)].into();
    assert_eq!(
        layered("fetch::sources::arm::read", &rank),
        "fetch::sources"
    );
    assert_eq!(layered("fetch::Source", &rank), "fetch");
    assert_eq!(layered("tui::app::App", &rank), "tui");
    assert!(!uses_the_simulated_tenant(text));
    assert!(uses_the_simulated_tenant("use tenx_sim::FakeTenant;\n"));
}

#[test]
fn the_simulated_tenant_depends_on_nothing_of_the_product_but_its_names() {
    // Its own crate: tenx-sim may use tenx-kinds (the data model's names),
    // never the product, so the product's code outside `tenx demo` and
    // `tenx fake-tenant` carries no web server.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/sim/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read crates/sim/Cargo.toml");
    let deps: toml::Table = toml::from_str::<toml::Table>(&text).expect("toml")["dependencies"]
        .as_table()
        .expect("dependencies")
        .clone();
    let ours: Vec<&String> = deps.keys().filter(|k| k.starts_with("tenx")).collect();
    assert_eq!(ours, ["tenx-kinds"]);
}

/// The most lines of code (before its test module) a module may have
/// without saying why at its top.
const LONG: usize = 600;

/// Lines of code before a file's test module.
fn code_length(text: &str) -> usize {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .count()
}

/// Whether a file's module comment says why it is long (`//! Size: …`).
fn says_why_it_is_long(text: &str) -> bool {
    text.lines()
        .take_while(|l| l.starts_with("//!") || l.starts_with("#!"))
        .any(|l| {
            l.trim_start_matches("//!")
                .trim_start()
                .starts_with("Size:")
        })
}

#[test]
fn no_module_is_long_without_saying_why_at_its_top() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "crates/sim/src", "crates/kinds/src"] {
        walk(&root.join(dir), &mut files);
    }
    let mut long = Vec::new();
    for f in &files {
        // A file of tests is as long as what it tests needs.
        if f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read");
        let n = code_length(&text);
        if n > LONG && !says_why_it_is_long(&text) {
            long.push(format!("{} ({n} lines)", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "over {LONG} lines of code without a `//! Size: …` line at the top saying why:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_counts_code_and_reads_the_reason() {
    let text =
        "//! A module.\n//!\n//! Size: long because.\nfn a() {}\n#[cfg(test)]\nmod tests {}\n";
    assert_eq!(code_length(text), 4);
    assert!(says_why_it_is_long(text));
    assert!(!says_why_it_is_long(
        "//! A module.\nfn a() {}\n// Size: no\n"
    ));
}
