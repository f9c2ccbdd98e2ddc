//! `tenx triage`: the noncompliant devices of the latest snapshot with their
//! triage status and note, as a table, CSV, Markdown or JSON; and
//! `tenx triage set` to record a status.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::base::text::{csv_cell, line};
use crate::store::Store;
use crate::triage::{Coverage, GroupBy, Row, Status, Summary, comparable, group, rows, summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    #[value(name = "md", alias = "markdown")]
    Markdown,
    Json,
}

pub struct ReportArgs {
    pub format: ReportFormat,
    pub output: crate::base::outfile::Output,
    pub group_by: GroupBy,
    pub snapshot: Option<String>,
}

/// The rows and summary of a snapshot, with the profile's triage notes.
pub fn load(
    store_name: &str,
    snapshot: Option<&str>,
) -> anyhow::Result<(Vec<Row>, Summary, String)> {
    // Read-only: a report never writes to the database it reads.
    let (store, id) = super::export::open_store(store_name, snapshot)?;
    let (info, graph) = store.load(id)?;
    let notes = store.triage_notes()?;
    let when = chrono::DateTime::parse_from_rfc3339(&info.created_at)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc));
    let mut r = rows(&graph, &notes, when);
    let coverage = Coverage::of(&info.sources);
    coverage.blank(&mut r);
    let previous = match store.previous_id(id)? {
        Some(p) => Some((p, Coverage::of(&store.info(p)?.sources))),
        None => None,
    };
    // "Fixed" is only counted between snapshots whose findings were read.
    let (previous, no_comparison) = match comparable(&coverage, previous.as_ref().map(|p| &p.1)) {
        Ok(()) => match previous {
            Some((p, _)) => (Some(store.failing_devices(p)?), None),
            None => (None, None),
        },
        Err(why) => (None, Some(why)),
    };
    let s = summary(&graph, &r, previous.as_ref(), coverage, no_comparison);
    let tenant = graph
        .of_kind(crate::model::EntityKind::AzureAccount)
        .first()
        .map(|&a| graph.entity(a).display_name.to_string())
        .unwrap_or_default();
    Ok((
        r,
        s,
        format!("{tenant} · snapshot {id} of {}", info.created_at),
    ))
}

fn state(r: &Row) -> String {
    let mut s = r.state.clone();
    if r.reopened {
        s.push_str(" (reopened)");
    }
    s
}

fn last(r: &Row) -> String {
    r.last_check_in
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "never".into())
}

pub fn run(store_name: &str, args: ReportArgs) -> anyhow::Result<ExitCode> {
    if let Some(p) = args.output.file() {
        crate::base::outfile::check_target(p)?;
    }
    let (rows, summary, title) = load(store_name, args.snapshot.as_deref())?;
    // What the counts rest on: a line in the table and Markdown, a field in
    // JSON; CSV has no place for it, so stderr and the exit status tell.
    let coverage = summary.coverage.lines(chrono::Utc::now());
    let mut buf: Vec<u8> = Vec::new();
    match args.format {
        ReportFormat::Json => {
            let groups: Vec<serde_json::Value> = group(&rows, args.group_by)
                .into_iter()
                .map(|(label, idx)| serde_json::json!({"group": label, "devices": idx.len(), "keys": idx.iter().map(|&i| rows[i].key.clone()).collect::<Vec<_>>()}))
                .collect();
            serde_json::to_writer_pretty(
                &mut buf,
                &serde_json::json!({"title": title, "summary": summary, "groupBy": args.group_by.label(), "groups": groups, "devices": rows}),
            )?;
            buf.push(b'\n');
        }
        ReportFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut buf);
            w.write_record([
                "group",
                "device",
                "key",
                "platform",
                "osVersion",
                "owner",
                "ownerUpn",
                "complianceState",
                "gracePeriod",
                "reopened",
                "failingPolicies",
                "failingSettings",
                "lastCheckIn",
                "riskScore",
                "exposureLevel",
                "criticalCves",
                "highCves",
                "mediumCves",
                "lowCves",
                "status",
                "note",
            ])?;
            for (label, idx) in group(&rows, args.group_by) {
                for i in idx {
                    let r = &rows[i];
                    let cells = [
                        label.clone(),
                        r.name.clone(),
                        r.key.clone(),
                        r.platform.clone(),
                        r.os_version.clone(),
                        r.owner.clone(),
                        r.owner_upn.clone(),
                        r.state.clone(),
                        r.grace_period.to_string(),
                        r.reopened.to_string(),
                        r.policies.join("; "),
                        r.settings.join("; "),
                        r.last_check_in.map(|d| d.to_rfc3339()).unwrap_or_default(),
                        r.risk_score.clone().unwrap_or_default(),
                        r.exposure_level.clone().unwrap_or_default(),
                        // Blank, not 0, when the counts are not known.
                        count(r, 0),
                        count(r, 1),
                        count(r, 2),
                        count(r, 3),
                        r.status.label().to_string(),
                        r.note.clone(),
                    ];
                    // No cell a spreadsheet would run as a formula.
                    w.write_record(cells.iter().map(|c| csv_cell(c).into_owned()))?;
                }
            }
            w.flush()?;
        }
        ReportFormat::Markdown => {
            writeln!(buf, "# Noncompliant devices\n\n{}\n", md(&title))?;
            writeln!(
                buf,
                "**{}** of {} devices are noncompliant.",
                summary.noncompliant, summary.devices
            )?;
            for gap in &coverage {
                writeln!(buf, "\n> **Incomplete:** {}", md(gap))?;
            }
            match (summary.new_since_previous, summary.fixed_since_previous) {
                (Some(n), Some(f)) => writeln!(
                    buf,
                    "\nSince the previous snapshot: {n} started failing, {f} were fixed."
                )?,
                _ => {
                    if let Some(why) = &summary.no_comparison {
                        writeln!(buf, "\nSince the previous snapshot: {}.", md(why))?;
                    }
                }
            }
            writeln!(
                buf,
                "\n## Failing policies\n\n| policy | devices |\n| --- | ---: |"
            )?;
            for (p, n) in &summary.by_policy {
                writeln!(buf, "| {} | {n} |", md(p))?;
            }
            writeln!(
                buf,
                "\n## Failing settings\n\n| setting | devices |\n| --- | ---: |"
            )?;
            for (p, n) in &summary.by_setting {
                writeln!(buf, "| {} | {n} |", md(p))?;
            }
            for (label, idx) in group(&rows, args.group_by) {
                if args.group_by == GroupBy::None {
                    writeln!(buf, "\n## Devices\n")?;
                } else {
                    writeln!(
                        buf,
                        "\n## {} ({} device{})\n",
                        md(&label),
                        idx.len(),
                        if idx.len() == 1 { "" } else { "s" }
                    )?;
                }
                writeln!(
                    buf,
                    "| device | platform | owner | state | failing settings | last check-in | Defender | status | note |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
                )?;
                for i in idx {
                    let r = &rows[i];
                    let owner = if r.owner.is_empty() {
                        String::new()
                    } else {
                        format!("{} ({})", r.owner, r.owner_upn)
                    };
                    let defender = r.defender_words(&summary.coverage);
                    writeln!(
                        buf,
                        "| {} | {} {} | {} | {} | {} | {} | {} | {} | {} |",
                        md(&r.name),
                        md(&r.platform),
                        md(&r.os_version),
                        md(&owner),
                        md(&state(r)),
                        md(&r.settings.join(", ")),
                        last(r),
                        md(&defender),
                        r.status.label(),
                        md(&r.note)
                    )?;
                }
            }
        }
        ReportFormat::Table => {
            writeln!(
                buf,
                "{}\n{} of {} devices noncompliant",
                line(&title),
                summary.noncompliant,
                summary.devices
            )?;
            match (summary.new_since_previous, summary.fixed_since_previous) {
                (Some(n), Some(f)) => writeln!(
                    buf,
                    "since the previous snapshot: {n} started failing, {f} were fixed"
                )?,
                _ => {
                    if let Some(why) = &summary.no_comparison {
                        writeln!(buf, "since the previous snapshot: {why}")?;
                    }
                }
            }
            for gap in &coverage {
                writeln!(buf, "INCOMPLETE: {}", line(gap))?;
            }
            writeln!(buf)?;
            for (label, idx) in group(&rows, args.group_by) {
                if args.group_by != GroupBy::None {
                    writeln!(buf, "== {} ({})", line(&label), idx.len())?;
                }
                writeln!(
                    buf,
                    "{:<18} {:<16} {:<26} {:<22} {:<40} {:<16} {:<22} STATUS",
                    "DEVICE",
                    "PLATFORM",
                    "OWNER",
                    "STATE",
                    "FAILING SETTINGS",
                    "LAST CHECK-IN",
                    "DEFENDER"
                )?;
                for i in idx {
                    let r = &rows[i];
                    let defender = r.defender_words(&summary.coverage);
                    writeln!(
                        buf,
                        "{:<18} {:<16} {:<26} {:<22} {:<40} {:<16} {:<22} {}",
                        cut(&r.name, 18),
                        cut(&format!("{} {}", r.platform, r.os_version), 16),
                        cut(&r.owner, 26),
                        cut(&state(r), 22),
                        cut(&r.settings.join(", "), 40),
                        last(r),
                        cut(&defender, 22),
                        r.status.label()
                    )?;
                }
            }
        }
    }
    crate::base::outfile::write_output(&args.output, &buf)?;
    if let Some(p) = args.output.file() {
        eprintln!("wrote {} devices to {}", rows.len(), p.display());
    }
    if summary.coverage.complete() {
        return Ok(ExitCode::SUCCESS);
    }
    // CSV has no place for it, and a file is not what a person reads now.
    if args.format == ReportFormat::Csv || args.output.file().is_some() {
        for gap in &coverage {
            eprintln!("tenx triage: incomplete: {}", line(gap));
        }
    }
    Ok(ExitCode::from(2))
}

/// One CVE count of a row as a CSV cell: blank when not known.
fn count(r: &Row, i: usize) -> String {
    r.cves.map(|c| c[i].to_string()).unwrap_or_default()
}

/// A table cell: one line without control characters, at most `n` wide.
fn cut(s: &str, n: usize) -> String {
    let s = line(s);
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Text in a Markdown table cell: one line without control characters.
fn md(s: &str) -> String {
    line(s).replace('|', "\\|")
}

/// `tenx triage set DEVICE --status S [--note TEXT]`: DEVICE is a device key
/// or its exact name.
pub fn set(
    store_name: &str,
    device: &str,
    status: Status,
    note: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let mut store = Store::for_triage(store_name)?;
    let id = store.latest_id()?.with_context(|| {
        format!(
            "no snapshot in {} yet; run `tenx fetch` first",
            store.path().display()
        )
    })?;
    let (_, graph) = store.load(id)?;
    let key = match graph.id_of(device) {
        Some(i) if graph.entity(i).kind.is_device() => device.to_string(),
        _ => {
            let matches: Vec<&str> = graph
                .entities()
                .filter(|(_, e)| e.kind.is_device() && e.display_name.eq_ignore_ascii_case(device))
                .map(|(_, e)| &*e.key)
                .collect();
            match matches.as_slice() {
                [one] => one.to_string(),
                [] => bail!("no device '{device}' in the latest snapshot"),
                many => bail!(
                    "'{device}' names {} devices; use a key: {}",
                    many.len(),
                    many.join(", ")
                ),
            }
        }
    };
    let note = match note {
        Some(n) => n.to_string(),
        None => store
            .triage_notes()?
            .get(&key)
            .map(|n| n.note.clone())
            .unwrap_or_default(),
    };
    store.set_triage(&key, status, &note)?;
    println!("{}: {}", line(&key), status.label());
    Ok(ExitCode::SUCCESS)
}
