//! What a hostile tenant or service can make tenx print or write: terminal
//! escape sequences on the terminal, formulas in CSV, secrets in exports.
//! The real binary on a real snapshot file; outputs read back by real
//! readers (serde_json, the csv crate, roxmltree, Graphviz's `dot`).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::bin::ok;
use common::hostile::{self, ESCAPES, SECRET, tenx, terminal_controls};
use common::tempdir;
use serde_json::Value;

fn assert_clean(what: &str, bytes: &[u8]) {
    let found = terminal_controls(bytes);
    assert!(
        found.is_empty(),
        "{what} carries terminal control characters: {found:?}"
    );
}

#[test]
fn search_triage_and_graph_exports_print_no_terminal_sequences() {
    let data = tempdir("leaks-term");
    let data = data.path();
    hostile::snapshot(data);
    for args in [
        &["search", "Ava"][..],
        &["search", "LAPTOP"],
        &["search", "vm-1"],
        &["triage"],
        &["triage", "--format", "table", "--group-by", "policy"],
        &["triage", "--format", "table", "--group-by", "setting"],
        &["triage", "--format", "md"],
        &["triage", "--format", "md", "--group-by", "owner"],
        &["export", "--format", "dot"],
        &["export", "--format", "mermaid"],
        &["export", "--format", "graphml"],
    ] {
        let out = tenx(data, args);
        ok(&out);
        assert_clean(&format!("tenx {args:?} stdout"), &out.stdout);
        assert_clean(&format!("tenx {args:?} stderr"), &out.stderr);
    }
    // What was cut still shows where it was.
    let out = tenx(data, &["search", "Ava"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Ava�[2J�]52;c;"), "{text}");
}

#[test]
fn json_outputs_escape_control_characters_and_keep_the_text() {
    let data = tempdir("leaks-json");
    let data = data.path();
    hostile::snapshot(data);
    for args in [
        &["search", "Ava", "--json"][..],
        &["triage", "--format", "json"],
        &["export", "--format", "json"],
        &["export", "--format", "jsonl"],
    ] {
        let out = tenx(data, args);
        ok(&out);
        assert!(
            !out.stdout.iter().any(|b| matches!(b, 0x1b | 0x07 | b'\r')),
            "tenx {args:?}: a raw C0 control in JSON"
        );
    }
    let out = tenx(data, &["search", "Ava", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["results"][0]["displayName"], format!("Ava{ESCAPES}"));
}

#[test]
fn a_tenants_text_in_an_error_line_is_stripped() {
    let data = tempdir("leaks-err");
    let data = data.path();
    hostile::snapshot(data);
    // Two devices share the name: the error lists their keys, which the
    // tenant wrote.
    let out = tenx(
        data,
        &[
            "triage",
            "set",
            &hostile::device_name(),
            "--status",
            "resolved",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("names 2 devices"), "{err}");
    assert_clean("the error line", &out.stderr);
}

/// A sign-in service that answers every request with an error whose text
/// carries escape sequences.
fn hostile_login_service() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 8192];
            let _ = c.read(&mut buf);
            let body = serde_json::json!({
                "error": format!("invalid_request{ESCAPES}"),
                "error_description": format!("bad{ESCAPES}"),
            })
            .to_string();
            let _ = write!(
                c,
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn login_prints_a_services_message_without_its_escape_sequences() {
    let data = tempdir("leaks-login");
    let data = data.path();
    let port = hostile_login_service();
    let base = format!("http://127.0.0.1:{port}");
    let mut c = common::bin::command(data);
    c.args([
        "login",
        "--profile",
        "h",
        "--tenant",
        "6b1610bf-438d-4902-b6b8-9d694d657b29",
        "--client-id",
        "0f2f6a1e-1b7e-4c1e-9a55-5d1c0a3b9e21",
        "--sources",
        "directory,arm",
        "--secret-stdin",
        "--login-url",
        &format!("{base}/login"),
        "--graph-url",
        &format!("{base}/graph"),
        "--defender-url",
        &format!("{base}/defender"),
        "--arm-url",
        &format!("{base}/arm"),
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("tenx login");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"not-the-secret\n")
        .expect("secret");
    let out = child.wait_with_output().expect("login ends");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("invalid_request") && text.contains("nothing was saved"),
        "{text}"
    );
    assert_clean("login's stdout", &out.stdout);
    assert_clean("login's stderr", &out.stderr);
}

fn export_to(data: &Path, format: &str, file: &str, extra: &[&str]) -> Vec<u8> {
    let path = data.join(file);
    let mut args = vec![
        "export",
        "--format",
        format,
        "-o",
        path.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    ok(&tenx(data, &args));
    std::fs::read(&path).expect("the export")
}

#[test]
fn dot_is_escaped_for_graphviz_and_renders() {
    let data = tempdir("leaks-dot");
    let data = data.path();
    hostile::snapshot(data);
    let dot = export_to(data, "dot", "g.dot", &[]);
    assert_clean("the dot file", &dot);
    let text = String::from_utf8_lossy(&dot);
    // Every label is one quoted string that ends where it should.
    for l in text.lines().filter(|l| l.contains("label=")) {
        assert!(l.trim_end().ends_with("];"), "{l}");
    }
    assert!(
        text.contains(r#"app-1 | [x] {y} #quot; \"q\" <b> `c` \\ end"#),
        "{text}"
    );
    match Command::new("dot")
        .arg("-Tplain")
        .arg(data.join("g.dot"))
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "dot rejected the file: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let plain = String::from_utf8_lossy(&out.stdout);
            let nodes = plain.lines().filter(|l| l.starts_with("node ")).count();
            let edges = plain.lines().filter(|l| l.starts_with("edge ")).count();
            assert_eq!((nodes, edges), (9, 8), "{plain}");
        }
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "graphviz is missing in CI; .ci/run must install it"
            );
            eprintln!("skipping the dot rendering check: graphviz is not installed");
        }
    }
}

#[test]
fn mermaid_labels_cannot_break_out_of_their_node() {
    let data = tempdir("leaks-mermaid");
    let data = data.path();
    hostile::snapshot(data);
    let mmd = export_to(data, "mermaid", "g.mmd", &[]);
    assert_clean("the mermaid file", &mmd);
    let text = String::from_utf8_lossy(&mmd);
    let mut nodes = 0;
    for l in text.lines().skip(1) {
        let l = l.trim();
        if l.contains("-->") {
            continue;
        }
        // n<id>["label"] with nothing in the label that Mermaid reads as
        // syntax: quotes, brackets, braces, pipes, backticks, raw `#`
        // (other than an entity code), `<` other than our <br/>.
        let inner = l
            .strip_prefix('n')
            .and_then(|r| r.split_once("[\""))
            .and_then(|(_, r)| r.strip_suffix("\"]"))
            .unwrap_or_else(|| panic!("not a node line: {l}"));
        let inner = inner.replace("<br/><small>", "").replace("</small>", "");
        assert!(
            !inner.contains(['"', '[', ']', '{', '}', '|', '`', '<', '>', '\n']),
            "{inner}"
        );
        for (i, _) in inner.match_indices('#') {
            let code = inner[i + 1..].split(';').next().unwrap_or("");
            assert!(
                code.chars().all(|c| c.is_ascii_digit()) || ["quot", "lt", "gt"].contains(&code),
                "a bare # in {inner}"
            );
        }
        nodes += 1;
    }
    assert_eq!(nodes, 9, "{text}");
    assert!(text.contains("app-1 #124; #91;x#93; #123;y#125; #35;quot#59; #quot;q#quot; #lt;b#gt; #96;c#96; \\ end"), "{text}");
}

#[test]
fn graphml_is_well_formed_xml_without_forbidden_characters() {
    let data = tempdir("leaks-graphml");
    let data = data.path();
    hostile::snapshot(data);
    let xml = export_to(data, "graphml", "g.graphml", &[]);
    assert_clean("the graphml file", &xml);
    let text = String::from_utf8(xml).expect("utf-8");
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let labels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("data") && n.attribute("key") == Some("d0"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        labels.contains(&"vm-1[2J]52;c;ZWNobyBwd25lZA==]0;pwned\\31m0;t\r"),
        "{labels:?}"
    );
    assert!(!text.contains('\u{FFFE}'));
}

/// Every CSV tenx writes, read back with the csv crate: no cell starts with
/// what a spreadsheet runs as a formula.
#[test]
fn csv_cells_are_never_formulas() {
    let data = tempdir("leaks-csv");
    let data = data.path();
    hostile::snapshot(data);
    let out = tenx(
        data,
        &[
            "export",
            "--format",
            "csv",
            "-o",
            data.join("g.csv").to_str().expect("path"),
        ],
    );
    ok(&out);
    let triage = tenx(data, &["triage", "--format", "csv"]);
    ok(&triage);
    std::fs::write(data.join("triage.csv"), &triage.stdout).expect("write");
    let mut seen = Vec::new();
    for file in ["g-entities.csv", "g-relationships.csv", "triage.csv"] {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(data.join(file))
            .expect("csv");
        let mut rows = 0;
        for rec in r.records() {
            let rec = rec.expect("a valid CSV record");
            for cell in rec.iter() {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']),
                    "{file}: a formula cell {cell:?}"
                );
                seen.push(cell.to_string());
            }
            rows += 1;
        }
        assert!(rows > 1, "{file}");
        assert_clean(file, &std::fs::read(data.join(file)).expect("read"));
    }
    for want in [
        "'=HYPERLINK(\"http://evil.example/\",\"open\")LAPTOP�[2J�]52;c;ZWNobyBwd25lZA==��]0;pwned�\\�31m�0;t��␤",
        "'=1+1 policy�[2J�]52;c;ZWNobyBwd25lZA==��]0;pwned�\\�31m�0;t��␤",
        "'-10.0",
    ] {
        assert!(seen.iter().any(|c| c == want), "no cell {want:?}");
    }
}

/// Secrets nested in ARM properties, in every format.
#[test]
fn no_format_exports_a_secret_at_any_depth() {
    let data = tempdir("leaks-secrets");
    let data = data.path();
    hostile::snapshot(data);
    for (format, file) in [
        ("json", "s.json"),
        ("jsonl", "s.jsonl"),
        ("graphml", "s.graphml"),
        ("dot", "s.dot"),
        ("mermaid", "s.mmd"),
    ] {
        let bytes = export_to(data, format, file, &[]);
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET), "{format}: {text}");
    }
    ok(&tenx(
        data,
        &[
            "export",
            "--format",
            "csv",
            "-o",
            data.join("s.csv").to_str().expect("path"),
        ],
    ));
    for f in ["s-entities.csv", "s-relationships.csv"] {
        let text = std::fs::read_to_string(data.join(f)).expect("csv");
        assert!(!text.contains(SECRET), "{f}: {text}");
    }
    // To standard output too, and what is not secret stays.
    let out = tenx(data, &["export", "--select", hostile::VM, "--depth", "1"]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(SECRET), "{text}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let vm = v["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .find(|e| e["_key"] == hostile::VM)
        .expect("the vm");
    let os = &vm["properties"]["osProfile"];
    assert_eq!(os["adminUsername"], "azureuser");
    assert!(os.get("adminPassword").is_none(), "{os}");
    assert_eq!(
        os["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"],
        "ssh-rsa AAAA"
    );
    let app = v["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .find(|e| e["_key"] == hostile::WEB_APP)
        .expect("the web app");
    let site = &app["properties"]["siteConfig"];
    assert_eq!(
        site["connectionStrings"][0]["connectionString"],
        "(redacted)"
    );
    assert_eq!(site["connectionStrings"][0]["name"], "db");
    assert_eq!(site["appSettings"][4]["value"], "westeurope");
    assert_eq!(site["appSettings"][3]["value"], "(redacted)");
    assert_eq!(
        app["properties"]["defaultHostName"],
        "app-1.azurewebsites.net"
    );
}
