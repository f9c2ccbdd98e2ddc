//! Triage: the table of noncompliant devices, sorted, grouped and filtered,
//! with a status and note per device — its state, its keys, its view.
//! Statuses are saved off the UI task (`Effect::SaveTriage`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{Action, App};
use crate::tui::view::pane;
use crate::tui::{details, theme};

/// Columns of the triage table, left to right; each is a sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TriageColumn {
    #[default]
    Device,
    Platform,
    Owner,
    State,
    FailingPolicies,
    FailingSettings,
    LastCheckIn,
    Defender,
    Status,
}

impl TriageColumn {
    pub const ALL: [TriageColumn; 9] = [
        TriageColumn::Device,
        TriageColumn::Platform,
        TriageColumn::Owner,
        TriageColumn::State,
        TriageColumn::FailingPolicies,
        TriageColumn::FailingSettings,
        TriageColumn::LastCheckIn,
        TriageColumn::Defender,
        TriageColumn::Status,
    ];

    pub fn title(self) -> &'static str {
        match self {
            TriageColumn::Device => "Device",
            TriageColumn::Platform => "Platform",
            TriageColumn::Owner => "Owner",
            TriageColumn::State => "State",
            TriageColumn::FailingPolicies => "Failing policies",
            TriageColumn::FailingSettings => "Failing settings",
            TriageColumn::LastCheckIn => "Last check-in",
            TriageColumn::Defender => "Defender",
            TriageColumn::Status => "Status",
        }
    }

    /// The next column to the right, round to the first.
    pub fn next(self) -> TriageColumn {
        let i = Self::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// A row's key for this column. Ascending order is: names A–Z, most
    /// failing settings first, oldest check-in first (none before any),
    /// most critical then high, medium and low CVEs first (unread counts
    /// after every read one), statuses in their workflow's order.
    fn key(self, r: &crate::triage::Row) -> SortKey {
        use std::cmp::Reverse;
        match self {
            TriageColumn::Device => SortKey::Text(r.name.to_lowercase()),
            TriageColumn::Platform => {
                SortKey::Text(format!("{} {}", r.platform, r.os_version).to_lowercase())
            }
            TriageColumn::Owner => SortKey::Text(r.owner.to_lowercase()),
            TriageColumn::State => SortKey::Text(r.state.to_lowercase()),
            TriageColumn::FailingPolicies => SortKey::Text(r.policies.join(",").to_lowercase()),
            TriageColumn::FailingSettings => SortKey::Settings(
                Reverse(r.settings.len()),
                r.settings.join(",").to_lowercase(),
            ),
            TriageColumn::LastCheckIn => SortKey::Time(r.last_check_in),
            TriageColumn::Defender => SortKey::Cves(
                r.cves
                    .map(|c| c.map(Reverse))
                    .map_or((true, [Reverse(0); 4]), |c| (false, c)),
            ),
            TriageColumn::Status => SortKey::Status(r.status),
        }
    }
}

/// What the triage table sorts by: one kind per column, so a column's rows
/// compare by what they hold, not by a padded string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Text(String),
    Settings(std::cmp::Reverse<usize>, String),
    Time(Option<chrono::DateTime<chrono::Utc>>),
    /// Unread first-flag (`true` sorts last), then each severity's count,
    /// most first.
    Cves((bool, [std::cmp::Reverse<usize>; 4])),
    Status(crate::triage::Status),
}

/// Profile data the triage view needs from the store.
#[derive(Debug, Clone, Default)]
pub struct TriageData {
    pub notes: std::collections::HashMap<String, crate::triage::Note>,
    /// Devices failing in the snapshot before the data on screen.
    pub previous_failing: Option<std::collections::HashSet<String>>,
    /// What that snapshot read: "fixed" is counted only against one whose
    /// findings are whole.
    pub previous_coverage: Option<crate::triage::Coverage>,
}

/// The triage view's state.
#[derive(Debug, Clone, Default)]
pub struct TriageUi {
    pub rows: Vec<crate::triage::Row>,
    pub summary: Option<crate::triage::Summary>,
    pub filter: String,
    pub filtering: bool,
    /// The note being edited, if any.
    pub note: Option<String>,
    pub sort: TriageColumn,
    pub descending: bool,
    pub group: crate::triage::GroupBy,
    pub cursor: usize,
}

/// A triage status to save off the UI task.
pub struct TriageSave {
    pub key: String,
    pub status: crate::triage::Status,
    pub note: String,
}

/// A line of the triage table: a group header or a device row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriageLine {
    Group(String, usize),
    Device(usize),
}

impl App {
    /// Opens the triage view on the data on screen.
    pub fn open_triage(&mut self) {
        let mut rows = crate::triage::rows(self.graph(), &self.triage_data.notes, self.data_time);
        let coverage = crate::triage::Coverage::of(&self.data.statuses);
        coverage.blank(&mut rows);
        let previous = &self.triage_data;
        let (previous, no_comparison) =
            match crate::triage::comparable(&coverage, previous.previous_coverage.as_ref()) {
                Ok(()) => (previous.previous_failing.as_ref(), None),
                Err(why) => (None, Some(why)),
            };
        let summary =
            crate::triage::summary(self.graph(), &rows, previous, coverage, no_comparison);
        let keep = self
            .modes
            .take_triage()
            .or_else(|| self.triage_last.take())
            .unwrap_or_default();
        self.modes.open(super::Mode::Triage(TriageUi {
            rows,
            summary: Some(summary),
            note: None,
            filtering: false,
            cursor: 0,
            ..keep
        }));
    }

    /// The rows shown, in order: filtered, sorted, grouped.
    pub fn triage_lines(&self) -> Vec<TriageLine> {
        let Some(ui) = self.modes.triage() else {
            return vec![];
        };
        let pat = nucleo_matcher::pattern::Pattern::new(
            &ui.filter,
            nucleo_matcher::pattern::CaseMatching::Smart,
            nucleo_matcher::pattern::Normalization::Smart,
            nucleo_matcher::pattern::AtomKind::Fuzzy,
        );
        let mut m = nucleo_matcher::Matcher::new(nucleo_matcher::Config::DEFAULT);
        let mut buf = Vec::new();
        let mut idx: Vec<usize> = (0..ui.rows.len())
            .filter(|&i| {
                if ui.filter.is_empty() {
                    return true;
                }
                let r = &ui.rows[i];
                let hay = format!(
                    "{} {} {} {} {} {}",
                    r.name,
                    r.owner,
                    r.owner_upn,
                    r.platform,
                    r.policies.join(" "),
                    r.settings.join(" ")
                );
                pat.score(nucleo_matcher::Utf32Str::new(&hay, &mut buf), &mut m)
                    .is_some()
            })
            .collect();
        let key = |r: &crate::triage::Row| ui.sort.key(r);
        idx.sort_by_cached_key(|&i| (key(&ui.rows[i]), ui.rows[i].key.clone()));
        if ui.descending {
            idx.reverse();
        }
        if ui.group == crate::triage::GroupBy::None {
            return idx.into_iter().map(TriageLine::Device).collect();
        }
        let subset: Vec<crate::triage::Row> = idx.iter().map(|&i| ui.rows[i].clone()).collect();
        let mut out = Vec::new();
        for (label, members) in crate::triage::group(&subset, ui.group) {
            out.push(TriageLine::Group(label, members.len()));
            out.extend(members.into_iter().map(|j| TriageLine::Device(idx[j])));
        }
        out
    }

    pub(in crate::tui) fn triage_row_at_cursor(&self) -> Option<usize> {
        let ui = self.modes.triage()?;
        match self.triage_lines().get(ui.cursor) {
            Some(TriageLine::Device(i)) => Some(*i),
            _ => None,
        }
    }

    pub(in crate::tui) fn triage_update(&mut self, action: Action) {
        let lines = self.triage_lines().len();
        let page = self.page(self.areas.tree).max(1);
        let row = self.triage_row_at_cursor();
        let Some(ui) = self.modes.triage_mut() else {
            return;
        };
        // Text entry: the note being edited, or the filter.
        if let Some(note) = ui.note.as_mut() {
            match action {
                Action::Char(c) => note.push(c),
                Action::DeleteChar => {
                    note.pop();
                }
                Action::Escape => ui.note = None,
                // Ctrl-C ends tenx from any input, as everywhere else.
                Action::Quit => self.quit = true,
                Action::Enter => {
                    let text = ui.note.take().unwrap_or_default();
                    if let Some(i) = row {
                        let status = ui.rows[i].status;
                        self.save_triage(i, status, text);
                    }
                }
                _ => {}
            }
            return;
        }
        if ui.filtering {
            match action {
                Action::Char(c) => ui.filter.push(c),
                Action::DeleteChar => {
                    ui.filter.pop();
                }
                Action::Escape | Action::Enter | Action::Down | Action::Up => ui.filtering = false,
                Action::Quit => self.quit = true,
                _ => {}
            }
            ui.cursor = 0;
            return;
        }
        match action {
            Action::ToggleTriage | Action::Escape => self.triage_last = self.modes.take_triage(),
            Action::Quit => self.quit = true,
            Action::Up => ui.cursor = ui.cursor.saturating_sub(1),
            Action::Down => ui.cursor = (ui.cursor + 1).min(lines.saturating_sub(1)),
            Action::PageUp => ui.cursor = ui.cursor.saturating_sub(page),
            Action::PageDown => ui.cursor = (ui.cursor + page).min(lines.saturating_sub(1)),
            Action::Home => ui.cursor = 0,
            Action::End => ui.cursor = lines.saturating_sub(1),
            Action::SortNext => ui.sort = ui.sort.next(),
            Action::SortReverse => ui.descending = !ui.descending,
            Action::GroupNext => {
                ui.group = ui.group.next();
                ui.cursor = 0;
            }
            Action::Filter | Action::OpenSearch => ui.filtering = true,
            Action::EditNote => {
                if let Some(i) = row {
                    ui.note = Some(ui.rows[i].note.clone());
                }
            }
            Action::SetStatus(st) => {
                if let Some(i) = row {
                    let note = ui.rows[i].note.clone();
                    self.save_triage(i, st, note);
                }
            }
            Action::ToggleMark => {
                if let Some(i) = row {
                    let id = ui.rows[i].device;
                    self.toggle_mark(id);
                }
            }
            Action::Enter => {
                if let Some(i) = row {
                    let id = ui.rows[i].device;
                    self.triage_last = self.modes.take_triage();
                    self.history.clear();
                    self.history_pos = 0;
                    self.from_triage = true;
                    if self.reveal(id) {
                        self.history = vec![id];
                        self.history_pos = 0;
                    }
                }
            }
            Action::OpenExport => self.open_export(),
            Action::ToggleHelp => self.modes.open(super::Mode::Help),
            _ => {}
        }
    }

    pub(in crate::tui) fn save_triage(
        &mut self,
        row: usize,
        status: crate::triage::Status,
        note: String,
    ) {
        let Some(ui) = self.modes.triage_mut() else {
            return;
        };
        let r = &mut ui.rows[row];
        r.status = status;
        r.note = note.clone();
        r.reopened = false;
        let key = r.key.clone();
        let name = r.name.clone();
        self.triage_data.notes.insert(
            key.clone(),
            crate::triage::Note {
                status,
                note: note.clone(),
                updated_at: chrono::Utc::now().to_rfc3339(),
            },
        );
        self.triage_saves.push(TriageSave { key, status, note });
        self.set_message(format!("{name}: {}", status.label()), false);
    }
}

/// A bar of `n` out of `max` in `width` cells.
pub(in crate::tui) fn bar(n: usize, max: usize, width: usize) -> String {
    let filled = if max == 0 {
        0
    } else {
        (n * width).div_ceil(max).min(width)
    };
    format!("{}{}", "█".repeat(filled), " ".repeat(width - filled))
}

pub(in crate::tui) fn draw_triage(f: &mut Frame, app: &App, area: Rect) {
    use ratatui::widgets::{Cell, Row, Table, TableState};
    let Some(ui) = app.triage() else { return };
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
    let header = Row::new(TriageColumn::ALL.iter().map(|&c| {
        let mark = if c == ui.sort {
            if ui.descending { " ▼" } else { " ▲" }
        } else {
            ""
        };
        Cell::from(format!("{}{mark}", c.title()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, cves: Option<[usize; 4]>, settings: usize) -> crate::triage::Row {
        crate::triage::Row {
            device: crate::model::EntityId::default(),
            key: name.into(),
            name: name.into(),
            platform: String::new(),
            os_version: String::new(),
            owner: String::new(),
            owner_upn: String::new(),
            state: String::new(),
            grace_period: false,
            policies: vec![],
            settings: (0..settings).map(|i| format!("setting {i}")).collect(),
            last_check_in: None,
            risk_score: None,
            exposure_level: None,
            cves,
            status: crate::triage::Status::New,
            note: String::new(),
            reopened: false,
            compliant_now: false,
        }
    }

    fn order(column: TriageColumn, rows: &[crate::triage::Row]) -> Vec<String> {
        let mut v: Vec<&crate::triage::Row> = rows.iter().collect();
        v.sort_by_cached_key(|r| column.key(r));
        v.into_iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn cves_sort_by_severity_not_by_a_sum_that_lets_highs_outweigh_a_critical() {
        // The padded-string key summed critical×1000 + high×100 + …: twelve
        // highs outweighed one critical, eleven mediums one high.
        let rows = [
            row("twelve-highs", Some([0, 12, 0, 0]), 0),
            row("one-critical", Some([1, 0, 0, 0]), 0),
            row("unread", None, 0),
            row("eleven-mediums", Some([0, 0, 11, 0]), 0),
            row("one-high", Some([0, 1, 0, 0]), 0),
        ];
        assert_eq!(
            order(TriageColumn::Defender, &rows),
            [
                "one-critical",
                "twelve-highs",
                "one-high",
                "eleven-mediums",
                "unread"
            ]
        );
    }

    #[test]
    fn more_failing_settings_sort_first_past_a_thousand() {
        let rows = [
            row("two", None, 2),
            row("many", None, 1200),
            row("none", None, 0),
        ];
        assert_eq!(
            order(TriageColumn::FailingSettings, &rows),
            ["many", "two", "none"]
        );
    }
}
