//! Drawing: everything on screen comes from `App`. The only thing written
//! back is the tree widget's scroll cache and the pane areas for mouse hits.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};
use tui_tree_widget::Tree;

use super::app::{App, Areas, Focus, RelRow};
use super::{details, theme, tree};
use crate::fetch::Outcome;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

fn pane<'a>(title: &'a str, focused: bool) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(
            format!(" {title} "),
            if focused {
                theme::focused_border().add_modifier(ratatui::style::Modifier::BOLD)
            } else {
                theme::border()
            },
        ))
        .border_style(if focused {
            theme::focused_border()
        } else {
            theme::border()
        })
}

pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .split(area);
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(42), Constraint::Percentage(58)])
        .split(rows[0]);
    let right = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
        .split(cols[1]);
    app.areas = Areas {
        tree: cols[0],
        details: right[0],
        relations: right[1],
    };

    if app.triage.is_some() {
        app.areas = Areas {
            tree: rows[0],
            details: Rect::default(),
            relations: Rect::default(),
        };
        draw_triage(f, app, rows[0]);
    } else {
        draw_tree(f, app, cols[0]);
        draw_details(f, app, right[0]);
        draw_relations(f, app, right[1]);
    }
    draw_message(f, app, rows[1]);
    draw_status(f, app, rows[2]);
    if app.search.is_some() {
        draw_search(f, app, area);
    }
    if app.export.is_some() {
        draw_export(f, app, area);
    }
    if app.help {
        draw_help(f, app, area);
    }
}

fn draw_search(f: &mut Frame, app: &App, area: Rect) {
    let Some(ui) = &app.search else { return };
    let w = (area.width * 9 / 10).max(40).min(area.width);
    let h = (area.height * 8 / 10).max(8).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    // The kind the query filters by: a typed prefix, else the Tab choice.
    let kind = app
        .search_query()
        .and_then(|q| q.kind)
        .and_then(|k| {
            crate::search::KIND_FILTERS
                .iter()
                .find(|(f, _)| *f == k)
                .map(|(_, d)| *d)
        })
        .unwrap_or("everything");
    let block = pane("Search", true);
    let inner = block.inner(r);
    f.render_widget(block, r);
    let parts = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
        ])
        .split(inner);
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("> ", theme::key()),
            Span::raw(ui.input.clone()),
            Span::styled("▏", theme::key()),
        ])),
        parts[0],
    );
    let status = match (&ui.results, ui.pending, ui.input.is_empty()) {
        (_, _, true) => format!("in {kind} · type a name, UPN, device, serial, CVE, resource…"),
        (Some(r), false, _) => format!(
            "{} match{} in {kind}",
            r.total,
            if r.total == 1 { "" } else { "es" }
        ),
        (Some(r), true, _) => format!(
            "{} match{} in {kind} · searching…",
            r.total,
            if r.total == 1 { "" } else { "es" }
        ),
        (None, _, _) => format!("searching {kind}…"),
    };
    // Not found may mean not read: the sources that were not are named.
    let gaps = app.gaps();
    let mut status_line = vec![Span::styled(status, theme::dim())];
    if !gaps.is_empty() {
        let names: Vec<String> = gaps
            .iter()
            .map(|(s, w)| format!("{} {w}", s.name()))
            .collect();
        status_line.push(Span::styled(
            format!(" · {}", names.join(", ")),
            theme::error(),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(status_line)), parts[1]);
    let g = app.graph();
    let items: Vec<ListItem> = ui
        .results
        .as_ref()
        .map(|r| {
            r.hits
                .iter()
                .map(|h| {
                    let e = g.entity(h.id);
                    let mut spans = vec![Span::styled(
                        format!("{:<10}", theme::kind_icon(e.kind)),
                        theme::kind_style(e.kind),
                    )];
                    for (text, hit) in
                        crate::search::split_highlight(&e.display_name, &h.name_indices)
                    {
                        spans.push(if hit {
                            Span::styled(text, theme::matched())
                        } else {
                            Span::raw(text)
                        });
                    }
                    let second = crate::search::secondary(g, h.id);
                    if !second.is_empty() {
                        spans.push(Span::styled(format!("   {second}"), theme::dim()));
                    }
                    ListItem::new(Line::from(spans))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut state = ListState::default();
    if !items.is_empty() {
        state.select(Some(ui.cursor));
    }
    f.render_stateful_widget(
        List::new(items).highlight_style(theme::highlight()),
        parts[2],
        &mut state,
    );
    f.render_widget(Paragraph::new(Line::from(Span::styled("↑↓ choose · Space mark · Enter jump · Tab kind filter · Esc close · prefixes: user: group: dev: cve: rg: res: …", theme::dim()))), parts[3]);
}

fn draw_tree(f: &mut Frame, app: &mut App, area: Rect) {
    let items = app.items();
    let focused = app.focus == Focus::Tree;
    let title = if app.loading.is_some() {
        "Tenant (loading…)"
    } else {
        "Tenant"
    };
    match Tree::new(&items) {
        Ok(t) => {
            let t = t
                .block(pane(title, focused))
                .highlight_style(theme::highlight())
                .highlight_symbol("");
            f.render_stateful_widget(t, area, &mut app.tree);
        }
        Err(e) => f.render_widget(
            Paragraph::new(format!("cannot draw the tree: {e}")).block(pane(title, focused)),
            area,
        ),
    }
}

fn draw_details(f: &mut Frame, app: &App, area: Rect) {
    let focused = app.focus == Focus::Details;
    let on_root = app.tree.selected() == [tree::Node::Root];
    let lines: Vec<Line> = match (app.selected_entity(), &app.loading) {
        // On the tenant: what was read, then the tenant's own details.
        (Some(id), _) if on_root => {
            let mut l = summary(app);
            l.push(Line::from(""));
            l.extend(details::lines(app.graph(), id, app.now, app.tz));
            l
        }
        (Some(id), _) => details::lines(app.graph(), id, app.now, app.tz),
        (None, Some(msg)) => vec![Line::from(Span::styled(msg.clone(), theme::dim()))],
        (None, None) => summary(app),
    };
    let max = lines
        .len()
        .saturating_sub(area.height.saturating_sub(2) as usize) as u16;
    let p = Paragraph::new(lines)
        .block(pane("Details", focused))
        .wrap(Wrap { trim: false })
        .scroll((app.details_scroll.min(max), 0));
    f.render_widget(p, area);
}

/// What the details pane shows when the cursor is not on an entity.
fn summary(app: &App) -> Vec<Line<'static>> {
    let g = app.graph();
    let mut out = vec![Line::from(Span::styled(app.root_label(), theme::title()))];
    if g.entity_count() == 0 {
        out.push(Line::from(Span::styled(
            if app.fetching {
                "Reading the tenant…"
            } else {
                "No data yet. Press r to read the tenant."
            },
            theme::dim(),
        )));
        return out;
    }
    out.push(Line::from(Span::styled(
        format!("{} relationships", g.relationship_count()),
        theme::dim(),
    )));
    // Before the counts: what a person must know before trusting them.
    out.extend(what_was_read(app));
    out.push(Line::from(""));
    // Sorted by what a person reads, not by `_type`.
    let mut counts: Vec<(String, usize)> = g
        .entity_counts()
        .into_iter()
        .map(|(ty, n)| {
            (
                crate::model::EntityKind::from_type_name(&ty)
                    .map(|k| k.plural().to_string())
                    .unwrap_or(ty),
                n,
            )
        })
        .collect();
    counts.sort();
    for (label, n) in counts {
        out.push(Line::from(vec![
            Span::styled(format!("{n:>9}  "), theme::count()),
            Span::raw(label),
        ]));
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled(
        "→ or Enter opens a node · Tab switches panes · ? help",
        theme::dim(),
    )));
    out
}

/// Each source's failures, gaps and notes (what was carried over, and how
/// old): what a person must know before trusting the counts above.
fn what_was_read(app: &App) -> Vec<Line<'static>> {
    let statuses = &app.data.statuses;
    let plain = |s: &crate::fetch::SourceStatus| {
        s.outcome == Outcome::Complete && s.errors.is_empty() && s.notes.is_empty()
    };
    if statuses.values().all(plain) {
        return Vec::new();
    }
    let mut out = vec![
        Line::from(""),
        Line::from(Span::styled("What was read", theme::category())),
    ];
    for (source, st) in statuses {
        if plain(st) {
            continue;
        }
        let (mark, what, style) = match st.outcome {
            Outcome::Complete => ("✓", "", theme::ok()),
            Outcome::Partial => ("!", " (partial)", theme::error()),
            Outcome::Failed => ("✗", " (failed)", theme::error()),
            Outcome::NotAsked => ("–", " (not read)", theme::dim()),
        };
        out.push(Line::from(Span::styled(
            format!("{mark} {}{what}", source.title()),
            style,
        )));
        for e in &st.errors {
            out.push(Line::from(Span::styled(format!("  {e}"), theme::error())));
        }
        if !st.incomplete.is_empty() {
            out.push(Line::from(Span::styled(
                format!("  not read completely: {}", st.incomplete.join(", ")),
                theme::error(),
            )));
        }
        match &st.carried {
            Some(c) => out.push(Line::from(Span::raw(format!("  {}", c.words(app.now))))),
            None if matches!(st.outcome, Outcome::Failed | Outcome::NotAsked) => out.push(
                Line::from(Span::raw("  not in any snapshot: nothing of it is shown")),
            ),
            None => {}
        }
        for n in &st.notes {
            out.push(Line::from(Span::raw(format!("  {n}"))));
        }
    }
    out
}

fn draw_relations(f: &mut Frame, app: &App, area: Rect) {
    let focused = app.focus == Focus::Relations;
    let rows = app.rel_rows();
    let g = app.graph();
    let items: Vec<ListItem> = if rows.is_empty() {
        vec![ListItem::new(Line::from(Span::styled(
            if app.selected_entity().is_some() {
                "no relationships"
            } else {
                "select an entity to see its relationships"
            },
            theme::dim(),
        )))]
    } else {
        rows.iter()
            .map(|r| match r {
                RelRow::Header(h) => {
                    ListItem::new(Line::from(Span::styled(h.clone(), theme::relation())))
                }
                RelRow::Entity(id) => {
                    let mut line = tree::entity_line(g, *id);
                    line.spans.insert(
                        0,
                        if app.marked_ids.contains(id) {
                            Span::styled("● ", theme::marked())
                        } else {
                            Span::raw("  ")
                        },
                    );
                    ListItem::new(line)
                }
                RelRow::More(n) => ListItem::new(Line::from(Span::styled(
                    format!("  … {n} more (open the group in the tree)"),
                    theme::dim(),
                ))),
            })
            .collect()
    };
    let mut state = ListState::default();
    if focused && !rows.is_empty() {
        state.select(Some(app.rel_cursor.min(rows.len() - 1)));
    }
    let list = List::new(items)
        .block(pane("Relationships", focused))
        .highlight_style(theme::highlight());
    f.render_stateful_widget(list, area, &mut state);
}

fn draw_message(f: &mut Frame, app: &App, area: Rect) {
    use super::keymap::Mode;
    let line = match (&app.message, app.notices.first()) {
        (Some((m, true)), _) => Line::from(Span::styled(m.clone(), theme::error())),
        (_, Some(n)) => Line::from(Span::styled(
            format!(
                "{}{} · Esc hides",
                n,
                match app.notices.len() {
                    1 => String::new(),
                    more => format!(" (and {} more)", more - 1),
                }
            ),
            theme::error(),
        )),
        (Some((m, false)), None) => Line::from(Span::raw(m.clone())),
        (None, None) => Line::from(Span::styled(
            format!(
                "{} help · {} quit",
                app.keymap.keys_for(Mode::Browse, "help"),
                app.keymap.keys_for(Mode::Browse, "quit")
            ),
            theme::dim(),
        )),
    };
    f.render_widget(Paragraph::new(line), area);
}

fn draw_status(f: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![
        Span::styled(
            format!(" {} ", app.title),
            theme::title().add_modifier(ratatui::style::Modifier::REVERSED),
        ),
        Span::raw(" "),
    ];
    for (source, p) in &app.progress {
        let (mark, style) = match (&p.outcome, p.done) {
            (Some(Outcome::Complete), _) => ("✓".to_string(), theme::ok()),
            (Some(Outcome::Partial), _) => ("!".to_string(), theme::error()),
            (Some(Outcome::Failed), _) => ("✗".to_string(), theme::error()),
            (None, _) if app.fetching => (
                SPINNER[app.spinner % SPINNER.len()].to_string(),
                theme::key(),
            ),
            _ => ("·".to_string(), theme::dim()),
        };
        spans.push(Span::styled(format!("{} {mark} ", source.name()), style));
        let detail = if p.error.is_some() && p.done {
            String::new()
        } else if !p.collection.is_empty() && !p.done {
            format!("{} {} ", p.collection, p.count)
        } else {
            format!("{} ", p.count)
        };
        spans.push(Span::styled(detail, theme::dim()));
    }
    if !app.marks.is_empty() {
        spans.push(Span::styled(
            format!("● {} marked ", app.marks.len()),
            theme::marked(),
        ));
    }
    let age = match (app.fetching, app.data_time) {
        (true, _) => "reading…".to_string(),
        (false, Some(t)) => format!("data {}", details::age(t, app.now)),
        (false, None) => "no data".to_string(),
    };
    let left: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let pad = (area.width as usize).saturating_sub(left + age.chars().count() + 1);
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::styled(age, theme::dim()));
    f.render_widget(Paragraph::new(Line::from(spans)).style(Style::new()), area);
}

fn draw_export(f: &mut Frame, app: &App, area: Rect) {
    use super::app::EXPORT_FIELDS;
    let Some(ui) = &app.export else { return };
    let gaps = app.gaps();
    let w = 76.min(area.width);
    let h = (14 + u16::from(!gaps.is_empty())).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    let g = app.graph();
    let seeds = match ui.seeds.as_slice() {
        [one] => g.entity(*one).display_name.to_string(),
        many => format!("{} marked entities", many.len()),
    };
    let verbs: Vec<Span> = ui
        .verbs
        .iter()
        .enumerate()
        .flat_map(|(i, (v, on))| {
            let style = if *on { theme::key() } else { theme::dim() };
            let style = if i == ui.verb_cursor && EXPORT_FIELDS[ui.field] == "Follow" {
                style.add_modifier(ratatui::style::Modifier::REVERSED)
            } else {
                style
            };
            [
                Span::styled(
                    if *on {
                        format!("{v}")
                    } else {
                        v.lower().to_string()
                    },
                    style,
                ),
                Span::raw(" "),
            ]
        })
        .collect();
    let value = |name: &str| -> Vec<Span<'static>> {
        match name {
            "Depth" => vec![Span::raw(format!("‹ {} ›  hops from the seeds", ui.depth))],
            "Direction" => vec![Span::raw(format!(
                "‹ {} ›",
                match ui.direction {
                    crate::export::Direction::Out => "outgoing",
                    crate::export::Direction::In => "incoming",
                    crate::export::Direction::Both => "both ways",
                }
            ))],
            "Properties" => vec![Span::raw(if ui.properties {
                "‹ included ›"
            } else {
                "‹ left out ›"
            })],
            "Format" => vec![Span::raw(format!("‹ {} ›", ui.format.name()))],
            "File" => vec![Span::raw(ui.path.clone()), Span::styled("▏", theme::key())],
            _ => vec![],
        }
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled("Seeds      ", theme::dim()),
            Span::raw(seeds),
        ]),
        Line::from(""),
    ];
    for (i, name) in EXPORT_FIELDS.iter().enumerate() {
        let label = Span::styled(
            format!("{name:<11}"),
            if i == ui.field {
                theme::highlight()
            } else {
                theme::key()
            },
        );
        let mut spans = vec![label];
        if *name == "Follow" {
            spans.extend(verbs.clone());
        } else {
            spans.extend(value(name));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!(
            "{} entities and {} relationships will be written",
            ui.preview.0, ui.preview.1
        ),
        theme::title(),
    )));
    // What the export holds is what was read: sources not read now say so.
    if !gaps.is_empty() {
        let names: Vec<String> = gaps
            .iter()
            .map(|(s, w)| format!("{} {w}", s.name()))
            .collect();
        lines.push(Line::from(Span::styled(
            format!("⚠ {}", names.join(", ")),
            theme::error(),
        )));
    }
    lines.push(Line::from(Span::styled(
        "↑↓ field · ←→ change · Space toggle a verb · Enter write · Esc cancel",
        theme::dim(),
    )));
    f.render_widget(
        Paragraph::new(lines)
            .block(pane("Export", true))
            .wrap(Wrap { trim: false }),
        r,
    );
}

/// A bar of `n` out of `max` in `width` cells.
fn bar(n: usize, max: usize, width: usize) -> String {
    let filled = if max == 0 {
        0
    } else {
        (n * width).div_ceil(max).min(width)
    };
    format!("{}{}", "█".repeat(filled), " ".repeat(width - filled))
}

fn draw_triage(f: &mut Frame, app: &App, area: Rect) {
    use super::app::{TRIAGE_COLUMNS, TriageLine};
    use ratatui::widgets::{Cell, Row, Table, TableState};
    let Some(ui) = &app.triage else { return };
    // What the counts rest on, across the top, before anything drawn from
    // them: Intune or Defender not read, or read in part.
    let gaps: Vec<Line> = ui
        .summary
        .as_ref()
        .map(|s| s.coverage.lines(app.now))
        .unwrap_or_default()
        .into_iter()
        .map(|l| Line::from(Span::styled(format!("⚠ {l}"), theme::error())))
        .collect();
    let gap_rows = if gaps.is_empty() {
        0
    } else {
        // Each line wraps to the width; at most a third of the screen.
        let w = area.width.max(1) as usize;
        let rows: usize = gaps.iter().map(|l| l.width().div_ceil(w).max(1)).sum();
        (rows as u16).min(area.height / 3)
    };
    let outer = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(gap_rows), Constraint::Min(3)])
        .split(area);
    if gap_rows > 0 {
        f.render_widget(
            Paragraph::new(gaps).wrap(ratatui::widgets::Wrap { trim: false }),
            outer[0],
        );
    }
    let parts = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(9), Constraint::Min(3)])
        .split(outer[1]);
    // The picture at a glance.
    let head = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([
            Constraint::Percentage(30),
            Constraint::Percentage(35),
            Constraint::Percentage(35),
        ])
        .split(parts[0]);
    let mut left = vec![];
    if let Some(s) = &ui.summary {
        left.push(Line::from(vec![
            Span::styled(format!("{}", s.noncompliant), theme::error()),
            Span::raw(format!(" of {} devices noncompliant", s.devices)),
        ]));
        let pct = if s.devices == 0 {
            0.0
        } else {
            s.noncompliant as f64 * 100.0 / s.devices as f64
        };
        left.push(Line::from(Span::styled(
            format!("{pct:.1} % of the fleet"),
            theme::dim(),
        )));
        left.push(Line::from(""));
        match (s.new_since_previous, s.fixed_since_previous) {
            (Some(n), Some(x)) => {
                left.push(Line::from("Since the previous snapshot:"));
                left.push(Line::from(vec![
                    Span::styled(format!("  +{n}"), theme::error()),
                    Span::raw(" started failing"),
                ]));
                left.push(Line::from(vec![
                    Span::styled(format!("  −{x}"), theme::ok()),
                    Span::raw(" fixed"),
                ]));
            }
            _ => left.push(Line::from(Span::styled(
                s.no_comparison
                    .clone()
                    .unwrap_or_else(|| "no previous snapshot".into()),
                theme::dim(),
            ))),
        }
    }
    f.render_widget(Paragraph::new(left).block(pane("Triage", true)), head[0]);
    let mut chart = |title: &'static str, data: &[(String, usize)], r: Rect| {
        let max = data.first().map(|d| d.1).unwrap_or(0);
        let label_w = (r.width as usize).saturating_sub(16).clamp(8, 40);
        let lines: Vec<Line> = data
            .iter()
            .take(r.height.saturating_sub(2) as usize)
            .map(|(label, n)| {
                let l: String = label.chars().take(label_w).collect();
                Line::from(vec![
                    Span::raw(format!("{l:<label_w$} ")),
                    Span::styled(bar(*n, max, 8), theme::relation()),
                    Span::styled(format!(" {n}"), theme::count()),
                ])
            })
            .collect();
        f.render_widget(Paragraph::new(lines).block(pane(title, false)), r);
    };
    if let Some(s) = &ui.summary {
        chart("Devices per failing policy", &s.by_policy, head[1]);
        chart("Devices per failing setting", &s.by_setting, head[2]);
    }
    // The table.
    let lines = app.triage_lines();
    let header = Row::new(TRIAGE_COLUMNS.iter().enumerate().map(|(i, c)| {
        let mark = if i == ui.sort {
            if ui.descending { " ▼" } else { " ▲" }
        } else {
            ""
        };
        Cell::from(format!("{c}{mark}"))
    }))
    .style(theme::key());
    let rows: Vec<Row> = lines
        .iter()
        .map(|l| match l {
            // The label goes in the wide columns; the first says how many.
            TriageLine::Group(label, n) => Row::new(vec![
                Cell::from(Span::styled(
                    format!("▸ {n} device{}", if *n == 1 { "" } else { "s" }),
                    theme::category(),
                )),
                Cell::from(""),
                Cell::from(""),
                Cell::from(""),
                Cell::from(Span::styled(label.clone(), theme::category())),
            ]),
            TriageLine::Device(i) => {
                let r = &ui.rows[*i];
                let mark = if app.marked_ids.contains(&r.device) {
                    "● "
                } else {
                    ""
                };
                let mut state = r.state.clone();
                if r.grace_period {
                    state.push_str(" ⏳");
                }
                if r.reopened {
                    state.push_str(" (reopened)");
                }
                let state_style = if r.compliant_now {
                    theme::ok()
                } else if r.reopened {
                    theme::error()
                } else {
                    Style::new()
                };
                let last = r
                    .last_check_in
                    .map(|d| details::age(d, app.now))
                    .unwrap_or_else(|| "never".into());
                let defender = match &ui.summary {
                    Some(s) => r.defender_words(&s.coverage),
                    None => r.risk().unwrap_or_else(|| "—".into()),
                };
                Row::new(vec![
                    Cell::from(format!("{mark}{}", r.name)),
                    Cell::from(format!("{} {}", r.platform, r.os_version)),
                    Cell::from(if r.owner.is_empty() {
                        "—".to_string()
                    } else {
                        r.owner.clone()
                    }),
                    Cell::from(Span::styled(state, state_style)),
                    Cell::from(r.policies.join(", ")),
                    Cell::from(r.settings.join(", ")),
                    Cell::from(last),
                    Cell::from(defender),
                    Cell::from(if r.note.is_empty() {
                        r.status.label().to_string()
                    } else {
                        format!("{} ✎", r.status.label())
                    }),
                ])
            }
        })
        .collect();
    let widths = [
        Constraint::Length(14),
        Constraint::Length(11),
        Constraint::Length(14),
        Constraint::Length(13),
        Constraint::Fill(2),
        Constraint::Fill(3),
        Constraint::Length(11),
        Constraint::Length(11),
        Constraint::Length(11),
    ];
    let title = match (&ui.note, ui.filtering, ui.filter.is_empty()) {
        (Some(n), _, _) => format!("Note: {n}▏  (Enter saves, Esc cancels)"),
        (None, true, _) => format!("Filter: {}▏", ui.filter),
        (None, false, false) => format!(
            "{} shown · filter \"{}\" · group by {}",
            lines
                .iter()
                .filter(|l| matches!(l, TriageLine::Device(_)))
                .count(),
            ui.filter,
            ui.group.label()
        ),
        (None, false, true) => format!(
            "{} devices · group by {} · 1–5 status · n note · s/S sort · g group · f filter · Enter open",
            ui.rows.len(),
            ui.group.label()
        ),
    };
    let mut state = TableState::default();
    if !lines.is_empty() {
        state.select(Some(ui.cursor.min(lines.len() - 1)));
    }
    let table = Table::new(rows, widths)
        .header(header)
        .block(pane(&title, true))
        .row_highlight_style(theme::highlight())
        .column_spacing(1);
    f.render_stateful_widget(table, parts[1], &mut state);
}

fn draw_help(f: &mut Frame, app: &App, area: Rect) {
    use super::keymap::Mode;
    // The keys of the mode help was opened from, as the merged keymap has
    // them; triage also names the tree's keys it shares.
    let mode = if app.triage.is_some() {
        Mode::Triage
    } else {
        Mode::Browse
    };
    let bindings = app.keymap.help(mode);
    let w = 64.min(area.width.saturating_sub(2));
    let h = (bindings.len() as u16 + 6).min(area.height.saturating_sub(2));
    let r = Rect {
        x: area.x + (area.width.saturating_sub(w)) / 2,
        y: area.y + (area.height.saturating_sub(h)) / 2,
        width: w,
        height: h,
    };
    let title = match mode {
        Mode::Triage => "Keys in triage",
        _ => "Keys",
    };
    let mut lines = vec![
        Line::from(Span::styled(title, theme::category())),
        Line::from(""),
    ];
    let width = bindings
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 20);
    for (keys, what) in &bindings {
        lines.push(Line::from(vec![
            Span::styled(format!("{keys:<width$}  "), theme::key()),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        match mode {
            Mode::Triage => "Other keys as in the tree · ? or Esc closes",
            _ => "Mouse: wheel scrolls, click selects · ? or Esc closes",
        },
        theme::dim(),
    )));
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(pane("Help", true)), r);
}
