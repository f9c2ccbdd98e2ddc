//! Search: the overlay that finds any entity by name, key or property as
//! the person types — its state, its keys, its view. The search itself runs
//! off the UI task (`Effect::Search`); a newer input cancels an older one.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, ListState, Paragraph};

use crate::tui::app::{Action, App};
use crate::tui::theme;
use crate::tui::view::pane;

/// The search overlay's state.
#[derive(Debug, Clone, Default)]
pub struct SearchUi {
    pub input: String,
    /// Index into `search::KIND_FILTERS` chosen with Tab.
    pub kind: Option<usize>,
    pub results: Option<crate::search::Results>,
    pub cursor: usize,
    /// The generation of the newest search asked for.
    pub generation: u64,
    /// Whether results for the newest input are still on their way.
    pub pending: bool,
    /// The arrows moved into the results: Space marks the row.
    pub in_results: bool,
}

/// A search to run off the UI task.
pub struct SearchJob {
    index: crate::search::SearchIndex,
    query: crate::search::Query,
    previous: Option<crate::search::Results>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub generation: u64,
}

/// Rows of search results shown.
pub const SEARCH_LIMIT: usize = 200;

impl SearchJob {
    pub fn run(self) -> (u64, Option<crate::search::Results>) {
        let r = crate::search::search(
            &self.index,
            &self.query,
            SEARCH_LIMIT,
            self.previous.as_ref(),
            &self.cancel,
            self.generation,
        );
        (self.generation, r)
    }
}

impl App {
    pub(in crate::tui) fn search_update(&mut self, action: Action) {
        let page = self.page(self.areas.tree).max(1);
        let Some(ui) = self.modes.search_mut() else {
            return;
        };
        let shown = ui.results.as_ref().map(|r| r.hits.len()).unwrap_or(0);
        match action {
            Action::Escape => self.modes.close_search(),
            Action::Quit => self.quit = true,
            Action::Char(c) => {
                ui.input.push(c);
                ui.in_results = false;
                self.request_search(true);
            }
            Action::DeleteChar => {
                ui.input.pop();
                self.request_search(false);
            }
            Action::CycleKind => {
                ui.kind = match ui.kind {
                    None => Some(0),
                    Some(k) if k + 1 < crate::search::KIND_FILTERS.len() => Some(k + 1),
                    Some(_) => None,
                };
                self.request_search(false);
            }
            Action::Up => {
                ui.in_results = ui.cursor > 0;
                ui.cursor = ui.cursor.saturating_sub(1);
            }
            Action::Down => {
                ui.in_results = true;
                ui.cursor = (ui.cursor + 1).min(shown.saturating_sub(1));
            }
            Action::PageUp => ui.cursor = ui.cursor.saturating_sub(page),
            Action::PageDown => {
                ui.in_results = true;
                ui.cursor = (ui.cursor + page).min(shown.saturating_sub(1));
            }
            Action::Home => ui.cursor = 0,
            Action::End => ui.cursor = shown.saturating_sub(1),
            Action::Enter => {
                let hit = ui
                    .results
                    .as_ref()
                    .and_then(|r| r.hits.get(ui.cursor))
                    .map(|h| h.id);
                if let Some(id) = hit {
                    self.modes.close_search();
                    self.jump(id);
                }
            }
            _ => {}
        }
    }

    /// The query the overlay's input and kind filter make.
    pub fn search_query(&self) -> Option<crate::search::Query> {
        let ui = self.modes.search()?;
        let chosen = ui.kind.map(|k| crate::search::KIND_FILTERS[k].0);
        Some(crate::search::Query::parse(&ui.input, chosen))
    }

    /// Asks for a search of the current input; `narrow` when the input only
    /// grew, so the previous matches are the only candidates. A newer request
    /// cancels an older one still running.
    pub(in crate::tui) fn request_search(&mut self, narrow: bool) {
        let Some(query) = self.search_query() else {
            return;
        };
        let Some(ui) = self.modes.search_mut() else {
            return;
        };
        ui.generation += 1;
        ui.pending = true;
        ui.cursor = 0;
        self.search_cancel
            .store(ui.generation, std::sync::atomic::Ordering::Relaxed);
        if query.text.is_empty() {
            ui.results = None;
            ui.pending = false;
            self.search_job = None;
            return;
        }
        let previous = if narrow { ui.results.clone() } else { None };
        self.search_job = Some(SearchJob {
            index: self.search_index.clone(),
            query,
            previous,
            cancel: self.search_cancel.clone(),
            generation: ui.generation,
        });
    }

    /// Results of a search; those of an outdated input are dropped.
    pub fn on_search_results(&mut self, generation: u64, results: Option<crate::search::Results>) {
        if let (Some(ui), Some(r)) = (self.modes.search_mut(), results) {
            if ui.generation == generation {
                ui.cursor = ui.cursor.min(r.hits.len().saturating_sub(1));
                ui.results = Some(r);
                ui.pending = false;
            }
        }
    }
}

pub(in crate::tui) fn draw_search(f: &mut Frame, app: &App, area: Rect) {
    let Some(ui) = app.search() else { return };
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
