//! Browse: the tree, the details pane and the relationships pane, walked
//! with keys and the mouse — the keys and views of the explorer's first
//! screen.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};
use tui_tree_widget::Tree;

use crate::fetch::Outcome;
use crate::model::EntityId;
use crate::tui::app::{Action, App, Focus, RelRow};
use crate::tui::tree::Node;
use crate::tui::view::pane;
use crate::tui::{details, theme, tree};

impl App {
    pub(in crate::tui) fn page(&self, area: ratatui::layout::Rect) -> usize {
        (area.height.saturating_sub(2) as usize).max(1)
    }

    /// Moves the tree cursor by `delta` visible rows (clamped).
    pub(in crate::tui) fn move_tree(&mut self, delta: isize) {
        let rows = self.visible();
        if rows.is_empty() {
            return;
        }
        let cur = rows
            .iter()
            .position(|r| r.as_slice() == self.tree.selected())
            .unwrap_or(0) as isize;
        let next = (cur + delta).clamp(0, rows.len() as isize - 1) as usize;
        self.select(rows[next].clone());
    }

    pub(in crate::tui) fn select(&mut self, path: Vec<Node>) {
        if self.tree.select(path) {
            self.details_scroll = 0;
            self.rel_cursor = 0;
        }
    }

    pub(in crate::tui) fn has_children(&self, path: &[Node]) -> bool {
        let items = self.items();
        let mut level: &[tui_tree_widget::TreeItem<'static, Node>] = &items;
        let mut found = None;
        for n in path {
            let Some(i) = level.iter().find(|i| i.identifier() == n) else {
                return false;
            };
            level = i.children();
            found = Some(i);
        }
        found.is_some_and(|i| !i.children().is_empty())
    }

    pub fn toggle_mark(&mut self, id: EntityId) {
        let key = self.graph().entity(id).key.to_string();
        let name = self.graph().entity(id).display_name.to_string();
        if self.marks.remove(&key) {
            self.marked_ids.remove(&id);
            self.set_message(
                format!("unmarked {name} ({} marked)", self.marks.len()),
                false,
            );
        } else {
            self.marks.insert(key);
            self.marked_ids.insert(id);
            self.set_message(
                format!("marked {name} ({} marked)", self.marks.len()),
                false,
            );
        }
    }

    /// Moves the cursor to an entity, opening the tree down to it; the move
    /// enters the jump history.
    pub fn jump(&mut self, target: EntityId) {
        if let Some(cur) = self.selected_entity() {
            if self.history.is_empty() {
                self.history.push(cur);
                self.history_pos = 0;
            } else if self.history.get(self.history_pos) != Some(&cur) {
                self.history.truncate(self.history_pos + 1);
                self.history.push(cur);
                self.history_pos = self.history.len() - 1;
            }
        }
        if self.reveal(target) {
            self.history.truncate(self.history_pos + 1);
            if self.history.last() != Some(&target) {
                self.history.push(target);
            }
            self.history_pos = self.history.len() - 1;
            self.focus = Focus::Tree;
        }
    }

    pub(in crate::tui) fn history_step(&mut self, delta: isize) {
        if delta < 0 && self.from_triage && self.history_pos == 0 {
            // The walk began in the triage view: Back returns there.
            self.from_triage = false;
            self.open_triage();
            return;
        }
        let next = self.history_pos as isize + delta;
        if next < 0 || next as usize >= self.history.len() {
            self.set_message(
                if delta < 0 {
                    "no earlier entity in the jump history"
                } else {
                    "no later entity in the jump history"
                },
                false,
            );
            return;
        }
        self.history_pos = next as usize;
        let target = self.history[self.history_pos];
        self.reveal(target);
    }

    /// Opens the tree down to an entity's place and selects it.
    pub fn reveal(&mut self, id: EntityId) -> bool {
        let g = &self.data.graph;
        let Some(path) = self.index.path_to(g, id) else {
            let name = g
                .get(id)
                .map(|e| e.display_name.to_string())
                .unwrap_or_default();
            self.set_message(format!("{name} has no place in the tree"), true);
            return false;
        };
        for i in 1..path.len() {
            self.tree.open(path[..i].to_vec());
        }
        if path.len() == 1 {
            self.tree.open(path.clone());
        }
        self.select(path);
        let name = self.graph().entity(id).display_name.to_string();
        self.set_message(format!("→ {name}"), false);
        true
    }

    pub(in crate::tui) fn pane_at(&self, x: u16, y: u16) -> Option<Focus> {
        let p = ratatui::layout::Position { x, y };
        if self.areas.tree.contains(p) {
            Some(Focus::Tree)
        } else if self.areas.details.contains(p) {
            Some(Focus::Details)
        } else if self.areas.relations.contains(p) {
            Some(Focus::Relations)
        } else {
            None
        }
    }

    pub(in crate::tui) fn click(&mut self, x: u16, y: u16) {
        match self.pane_at(x, y) {
            Some(Focus::Tree) => {
                self.focus = Focus::Tree;
                // Rows start one below the border; the widget keeps the offset.
                let row = y.saturating_sub(self.areas.tree.y + 1) as usize + self.tree.get_offset();
                let rows = self.visible();
                if let Some(path) = rows.get(row).cloned() {
                    if path.as_slice() == self.tree.selected() {
                        self.tree.toggle(path);
                    } else {
                        self.select(path);
                    }
                }
            }
            Some(Focus::Relations) => {
                self.focus = Focus::Relations;
                let row = y.saturating_sub(self.areas.relations.y + 1) as usize;
                let offset = self
                    .rel_cursor
                    .saturating_sub(self.page(self.areas.relations).saturating_sub(1));
                let idx = offset + row;
                if idx < self.rel_rows().len() {
                    self.rel_cursor = idx;
                }
            }
            Some(Focus::Details) => self.focus = Focus::Details,
            None => {}
        }
    }

    pub(in crate::tui) fn tree_nav(&mut self, action: Action) {
        match action {
            Action::Up => self.move_tree(-1),
            Action::Down => self.move_tree(1),
            Action::PageUp => self.move_tree(-(self.page(self.areas.tree) as isize)),
            Action::PageDown => self.move_tree(self.page(self.areas.tree) as isize),
            Action::Home => self.move_tree(isize::MIN / 2),
            Action::End => self.move_tree(isize::MAX / 2),
            Action::Right => {
                let sel = self.tree.selected().to_vec();
                if self.has_children(&sel) {
                    if !self.tree.opened().contains(&sel) {
                        self.tree.open(sel);
                    } else {
                        self.move_tree(1);
                    }
                }
            }
            Action::Left => {
                let sel = self.tree.selected().to_vec();
                if self.tree.opened().contains(&sel) {
                    self.tree.close(&sel);
                } else if sel.len() > 1 {
                    self.select(sel[..sel.len() - 1].to_vec());
                }
            }
            Action::Enter => {
                let sel = self.tree.selected().to_vec();
                if self.has_children(&sel) {
                    self.tree.toggle(sel);
                }
            }
            _ => {}
        }
    }

    pub(in crate::tui) fn details_nav(&mut self, action: Action) {
        let page = self.page(self.areas.details) as u16;
        self.details_scroll = match action {
            Action::Up => self.details_scroll.saturating_sub(1),
            Action::Down => self.details_scroll.saturating_add(1),
            Action::PageUp => self.details_scroll.saturating_sub(page),
            Action::PageDown => self.details_scroll.saturating_add(page),
            Action::Home => 0,
            Action::End => u16::MAX / 2,
            _ => self.details_scroll,
        };
    }

    pub(in crate::tui) fn relations_nav(&mut self, action: Action) {
        let rows = self.rel_rows();
        if rows.is_empty() {
            return;
        }
        let last = rows.len() - 1;
        let page = self.page(self.areas.relations);
        self.rel_cursor = match action {
            Action::Up => self.rel_cursor.saturating_sub(1),
            Action::Down => (self.rel_cursor + 1).min(last),
            Action::PageUp => self.rel_cursor.saturating_sub(page),
            Action::PageDown => (self.rel_cursor + page).min(last),
            Action::Home => 0,
            Action::End => last,
            Action::Enter | Action::Right => {
                match rows.get(self.rel_cursor) {
                    Some(RelRow::Entity(id)) => self.jump(*id),
                    Some(RelRow::More(n)) => self.set_message(
                        format!(
                            "{n} more: open the relationship group in the tree to see them all"
                        ),
                        false,
                    ),
                    _ => {}
                }
                return;
            }
            _ => self.rel_cursor,
        }
        .min(last);
    }
}

pub(in crate::tui) fn draw_tree(f: &mut Frame, app: &mut App, area: Rect) {
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

pub(in crate::tui) fn draw_details(f: &mut Frame, app: &App, area: Rect) {
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
pub(in crate::tui) fn summary(app: &App) -> Vec<Line<'static>> {
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
pub(in crate::tui) fn what_was_read(app: &App) -> Vec<Line<'static>> {
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

pub(in crate::tui) fn draw_relations(f: &mut Frame, app: &App, area: Rect) {
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
