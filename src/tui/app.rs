//! The explorer's state and the one place it changes: `App::handle(Msg) ->
//! Vec<Effect>`. Keys, fetch events, finished background work, signals and
//! frames all arrive as `Msg`; loading, searching, exporting and saving
//! leave as `Effect`s the event loop starts, their results coming back as
//! `Msg::Done`. Nothing else writes this state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tui_tree_widget::TreeState;

use crate::fetch::{GraphBuilder, Outcome, Source};
use crate::model::{EntityId, TenantGraph};

use super::tree::{Builder, Node, RelCache, RelGroup, TreeIndex};

pub use super::modes::export::{ExportField, ExportJob, ExportUi};
pub use super::modes::search::{SEARCH_LIMIT, SearchJob, SearchUi};
pub use super::modes::triage::{TriageColumn, TriageData, TriageLine, TriageSave, TriageUi};
pub use super::msg::{Action, Done, Effect, Msg, SnapshotToSave};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    #[default]
    Tree,
    Details,
    Relations,
}

/// What the status bar shows for a source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceProgress {
    pub collection: String,
    pub count: usize,
    pub done: bool,
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
}

/// A row of the relations pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelRow {
    Header(String),
    Entity(EntityId),
    More(usize),
}

/// Members listed per relationship group in the pane; the tree has them all.
pub const PANE_GROUP_LIMIT: usize = 50;

/// Screen areas from the last layout, for mouse hits and paging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Areas {
    pub tree: ratatui::layout::Rect,
    pub details: ratatui::layout::Rect,
    pub relations: ratatui::layout::Rect,
}

pub struct App {
    pub data: GraphBuilder,
    pub index: TreeIndex,
    pub tree: TreeState<Node>,
    pub focus: Focus,
    pub details_scroll: u16,
    pub rel_cursor: usize,
    pub(super) history: Vec<EntityId>,
    pub(super) history_pos: usize,
    /// The message line: text, and whether it is an error.
    pub message: Option<(String, bool)>,
    pub progress: BTreeMap<Source, SourceProgress>,
    pub fetching: bool,
    /// A refresh's graph while it fills; swapped in when complete.
    pub incoming: Option<GraphBuilder>,
    pub title: String,
    /// When the data on screen was read from the tenant.
    pub data_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    /// The time zone dates are shown in (the machine's; fixed in tests).
    pub tz: chrono::FixedOffset,
    pub quit: bool,
    /// The last fetch read nothing (the data shown, if any, is older).
    pub refresh_failed: bool,
    pub spinner: usize,
    pub areas: Areas,
    pub loading: Option<String>,
    pub(super) rels: RelCache,
    /// The modes open over browsing (search, triage, export, help).
    pub modes: super::modes::Modes,
    pub search_index: crate::search::SearchIndex,
    pub(super) search_cancel: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub(super) search_job: Option<SearchJob>,
    /// Marked entities, by key so marks survive a refresh.
    pub marks: std::collections::BTreeSet<String>,
    pub marked_ids: std::collections::HashSet<EntityId>,
    pub(super) export_job: Option<ExportJob>,
    pub triage_data: TriageData,
    pub(super) triage_saves: Vec<TriageSave>,
    /// A jump from the triage view: Back returns to it.
    pub(super) from_triage: bool,
    /// The triage view's sort, grouping and filter, kept while it is closed.
    pub(super) triage_last: Option<TriageUi>,
    /// Keys per mode: the built-in map with the person's merged over it.
    pub keymap: super::keymap::Keymap,
    /// What the person must see until they dismiss it (Esc): a keymap or
    /// theme that could not be used.
    pub notices: Vec<String>,
    /// Whether there is a tenant to read and a store to save to.
    pub store: bool,
    /// The sources a refresh reads (shown in the status bar as they come).
    pub sources: Vec<Source>,
    /// A fetch's carry-over being read, and snapshots being written: what
    /// quitting waits for.
    pub carry_pending: bool,
    pub saves_pending: usize,
    /// Effects asked for while handling a message, returned by `handle`.
    pub(super) effects: Vec<Effect>,
}

impl App {
    /// Which of the keymap's modes a key goes to now.
    pub fn key_mode(&self) -> super::keymap::Mode {
        use super::keymap::Mode;
        use super::modes::Mode as Open;
        // Help shows the keys of the mode underneath.
        match self.modes.iter().rev().find(|m| !matches!(m, Open::Help)) {
            Some(Open::Search(_) | Open::Export(_)) => Mode::Text,
            Some(Open::Triage(t)) if t.filtering || t.note.is_some() => Mode::Text,
            Some(Open::Triage(_)) => Mode::Triage,
            Some(Open::Help) | None => Mode::Browse,
        }
    }

    /// The search overlay, when open.
    pub fn search(&self) -> Option<&SearchUi> {
        self.modes.search()
    }

    /// The export dialog, when open.
    pub fn export(&self) -> Option<&ExportUi> {
        self.modes.export()
    }

    /// The triage view, when open.
    pub fn triage(&self) -> Option<&TriageUi> {
        self.modes.triage()
    }

    /// Whether help is shown.
    pub fn help(&self) -> bool {
        self.modes.help()
    }

    pub fn new(title: impl Into<String>, now: DateTime<Utc>) -> App {
        let mut tree = TreeState::default();
        tree.open(vec![Node::Root]);
        tree.select(vec![Node::Root]);
        App {
            data: GraphBuilder::new(),
            index: TreeIndex::new(),
            tree,
            focus: Focus::Tree,
            details_scroll: 0,
            rel_cursor: 0,
            history: Vec::new(),
            history_pos: 0,
            message: None,
            progress: BTreeMap::new(),
            fetching: false,
            incoming: None,
            title: title.into(),
            data_time: None,
            now,
            tz: *chrono::Local::now().offset(),
            quit: false,
            refresh_failed: false,
            spinner: 0,
            areas: Areas::default(),
            loading: None,
            rels: RelCache::default(),
            modes: Default::default(),
            search_index: crate::search::SearchIndex::new(),
            search_cancel: Default::default(),
            search_job: None,
            marks: Default::default(),
            marked_ids: Default::default(),
            export_job: None,
            triage_data: TriageData::default(),
            triage_saves: Vec::new(),
            from_triage: false,
            triage_last: None,
            keymap: Default::default(),
            notices: Vec::new(),
            store: false,
            sources: Source::ALL.to_vec(),
            carry_pending: false,
            saves_pending: 0,
            effects: Vec::new(),
        }
    }

    pub fn graph(&self) -> &TenantGraph {
        &self.data.graph
    }

    /// The tenant's name for the tree's root.
    pub fn root_label(&self) -> String {
        let g = self.graph();
        match g.of_kind(crate::model::EntityKind::AzureAccount).first() {
            Some(&a) => format!(
                "{} ({} entities)",
                g.entity(a).display_name,
                g.entity_count()
            ),
            None if g.entity_count() > 0 => format!("Tenant ({} entities)", g.entity_count()),
            None => "Tenant".into(),
        }
    }

    /// Per source whose data on screen is not a complete read of the last
    /// fetch, a few words for the tree's counts.
    pub fn gaps(&self) -> BTreeMap<Source, String> {
        let mut out = BTreeMap::new();
        for (source, st) in &self.data.statuses {
            let words = match (&st.carried, st.outcome) {
                (_, Outcome::Complete) => continue,
                (Some(c), _) => {
                    let age = chrono::DateTime::parse_from_rfc3339(&c.read_at)
                        .map(|t| {
                            crate::fetch::logons::age(
                                (self.now - t.with_timezone(&chrono::Utc)).num_seconds(),
                            )
                        })
                        .unwrap_or_else(|_| "?".into());
                    format!("carried over, {age} old")
                }
                (None, Outcome::Partial) => "partial".to_string(),
                (None, _) => "not read".to_string(),
            };
            out.insert(*source, words);
        }
        out
    }

    /// The tree's items for the current state (what is rendered).
    pub fn items(&self) -> Vec<tui_tree_widget::TreeItem<'static, Node>> {
        Builder {
            g: self.graph(),
            index: &self.index,
            opened: self.tree.opened(),
            root_label: self.root_label(),
            rels: &self.rels,
            marked: &self.marked_ids,
            gaps: &self.gaps(),
        }
        .build()
    }

    /// Identifiers of the visible rows, top to bottom.
    pub fn visible(&self) -> Vec<Vec<Node>> {
        let items = self.items();
        self.tree
            .flatten(&items)
            .into_iter()
            .map(|f| f.identifier)
            .collect()
    }

    /// The entity under the tree's cursor, if the cursor is on one.
    pub fn selected_entity(&self) -> Option<EntityId> {
        match self.tree.selected().last() {
            Some(Node::Entity(e)) => Some(*e),
            // The root stands for the tenant itself.
            Some(Node::Root) => self
                .graph()
                .of_kind(crate::model::EntityKind::AzureAccount)
                .first()
                .copied(),
            _ => None,
        }
    }

    /// Rows of the relations pane for the selected entity.
    pub fn rel_rows(&self) -> Vec<RelRow> {
        let Some(id) = self.selected_entity() else {
            return vec![];
        };
        let mut rows = Vec::new();
        for g in self.rels.get(self.graph(), id).iter() {
            rows.push(RelRow::Header(g.label()));
            rows.extend(
                g.members
                    .iter()
                    .take(PANE_GROUP_LIMIT)
                    .map(|&m| RelRow::Entity(m)),
            );
            if g.members.len() > PANE_GROUP_LIMIT {
                rows.push(RelRow::More(g.members.len() - PANE_GROUP_LIMIT));
            }
        }
        rows
    }

    pub fn rel_groups(&self) -> Vec<RelGroup> {
        self.selected_entity()
            .map(|id| self.rels.get(self.graph(), id).to_vec())
            .unwrap_or_default()
    }

    pub fn history(&self) -> (&[EntityId], usize) {
        (&self.history, self.history_pos)
    }

    pub(super) fn set_message(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some((text.into(), error));
    }

    /// The one place the explorer's state changes: a message in, the
    /// effects to run out.
    pub fn handle(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Action(a) => self.act(a),
            Msg::Fetch(ev) => {
                if self.on_fetch(ev) && self.store {
                    if let Some(statuses) = self.carry_wanted() {
                        self.carry_pending = true;
                        self.effects.push(Effect::ReadCarry(statuses));
                    }
                }
            }
            Msg::Done(d) => self.on_done(d),
            Msg::Start {
                load_snapshot,
                fetch_now,
                store,
            } => {
                self.store = store;
                if store {
                    if load_snapshot {
                        self.loading = Some("loading the latest snapshot…".into());
                        self.effects.push(Effect::LoadSnapshot);
                    }
                    self.effects.push(Effect::LoadTriage {
                        from_snapshot: load_snapshot,
                    });
                }
                if fetch_now {
                    self.refresh();
                }
            }
            Msg::Signal => self.quit = true,
            Msg::Frame(now) => {
                self.sync();
                self.now = now;
            }
            Msg::Tick => {
                if self.fetching {
                    self.spinner = self.spinner.wrapping_add(1);
                }
            }
        }
        self.drain_effects()
    }

    /// What a person's action changes, and the effects it asks for.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        self.handle(Msg::Action(action))
    }

    /// Whether quitting must wait: the fetch's carry-over or a snapshot is
    /// still being written.
    pub fn busy(&self) -> bool {
        self.carry_pending || self.saves_pending > 0
    }

    pub(super) fn drain_effects(&mut self) -> Vec<Effect> {
        let mut out = std::mem::take(&mut self.effects);
        if let Some(job) = self.search_job.take() {
            out.push(Effect::Search(job));
        }
        if let Some(job) = self.export_job.take() {
            out.push(Effect::Export(Box::new(job)));
        }
        out.extend(
            std::mem::take(&mut self.triage_saves)
                .into_iter()
                .map(Effect::SaveTriage),
        );
        out
    }

    /// Starts reading the tenant, when there is one.
    pub(super) fn refresh(&mut self) {
        if !self.store {
            self.message = None;
            return;
        }
        let sources = self.sources.clone();
        self.start_fetch(&sources);
        self.effects.push(Effect::Fetch);
    }

    pub(super) fn on_done(&mut self, done: Done) {
        match done {
            Done::Loaded(Ok(Some(loaded))) => {
                let (info, graph) = *loaded;
                let created = chrono::DateTime::parse_from_rfc3339(&info.created_at)
                    .ok()
                    .map(|d| d.with_timezone(&chrono::Utc));
                self.load_snapshot(graph, created, info.sources);
            }
            Done::Loaded(Ok(None)) => self.loading = None,
            Done::Loaded(Err(e)) => {
                self.loading = None;
                self.set_message(format!("cannot load the snapshot: {e}"), true);
            }
            Done::Triage(Ok(data)) => self.triage_data = data,
            Done::Triage(Err(e)) => {
                self.set_message(format!("cannot read triage statuses: {e}"), true)
            }
            Done::Searched(generation, results) => self.on_search_results(generation, results),
            Done::Exported(result) => self.on_export_written(result),
            Done::TriageNotSaved(e) => {
                self.set_message(format!("cannot save the triage status: {e}"), true)
            }
            Done::Carried(r) => {
                self.carry_pending = false;
                match r {
                    Ok(patch) => self.apply_carry(patch),
                    Err(e) => self.set_message(
                        format!("cannot read the earlier snapshot to complete this one: {e}"),
                        true,
                    ),
                }
                if self.store && !self.refresh_failed {
                    self.saves_pending += 1;
                    self.effects
                        .push(Effect::SaveSnapshot(Box::new(SnapshotToSave {
                            graph: self.data.graph.clone(),
                            statuses: self.data.statuses.clone(),
                            elapsed_ms: self
                                .data
                                .elapsed
                                .map(|e| e.as_millis() as u64)
                                .unwrap_or(0),
                            metrics: serde_json::to_value(self.data.metrics.unwrap_or_default())
                                .unwrap_or_default(),
                        })));
                }
            }
            Done::Saved(r) => {
                self.saves_pending = self.saves_pending.saturating_sub(1);
                match r {
                    Ok(id) => {
                        if self.message.as_ref().is_none_or(|m| !m.1) {
                            self.set_message(format!("saved snapshot {id}"), false);
                        }
                    }
                    Err(e) => self.set_message(format!("cannot save the snapshot: {e}"), true),
                }
            }
        }
    }

    pub(super) fn act(&mut self, action: Action) {
        use super::modes::Mode;
        match self.modes.top() {
            Some(Mode::Export(_)) => return self.export_update(action),
            Some(Mode::Search(_)) => return self.search_update(action),
            Some(Mode::Triage(_)) => return self.triage_update(action),
            Some(Mode::Help) => {
                if matches!(action, Action::ToggleHelp | Action::Escape | Action::Quit) {
                    self.modes.close();
                }
                return;
            }
            None => {}
        }
        match action {
            Action::Quit => self.quit = true,
            Action::ToggleHelp => self.modes.open(super::modes::Mode::Help),
            Action::Escape => {
                // The message first, then what stays until dismissed.
                if self.message.take().is_none() {
                    self.notices.clear();
                }
            }
            Action::Refresh => {
                if self.fetching {
                    self.set_message("a fetch is already running", false);
                } else {
                    self.refresh();
                }
            }
            Action::FocusNext => {
                self.focus = match self.focus {
                    Focus::Tree => Focus::Details,
                    Focus::Details => Focus::Relations,
                    Focus::Relations => Focus::Tree,
                }
            }
            Action::FocusPrev => {
                self.focus = match self.focus {
                    Focus::Tree => Focus::Relations,
                    Focus::Details => Focus::Tree,
                    Focus::Relations => Focus::Details,
                }
            }
            Action::Back => self.history_step(-1),
            Action::Forward => self.history_step(1),
            Action::Jump(id) => self.jump(id),
            Action::OpenSearch => {
                self.modes
                    .open(super::modes::Mode::Search(SearchUi::default()));
                self.request_search(false);
            }
            Action::Char(_) | Action::DeleteChar | Action::CycleKind => {}
            Action::ToggleMark => {
                let target = match self.focus {
                    Focus::Relations => match self.rel_rows().get(self.rel_cursor) {
                        Some(RelRow::Entity(id)) => Some(*id),
                        _ => None,
                    },
                    _ => self.selected_entity(),
                };
                match target {
                    Some(id) => self.toggle_mark(id),
                    None => self.set_message("put the cursor on an entity to mark it", false),
                }
            }
            Action::ClearMarks => {
                let n = self.marks.len();
                self.marks.clear();
                self.marked_ids.clear();
                self.set_message(
                    format!("cleared {n} mark{}", if n == 1 { "" } else { "s" }),
                    false,
                );
            }
            Action::OpenExport => self.open_export(),
            Action::ToggleTriage => self.open_triage(),
            Action::ScrollUp(x, y) | Action::ScrollDown(x, y) => {
                let down = matches!(action, Action::ScrollDown(..));
                let pane = self.pane_at(x, y);
                let saved = self.focus;
                if let Some(p) = pane {
                    self.focus = p;
                    for _ in 0..3 {
                        self.update(if down { Action::Down } else { Action::Up });
                    }
                    self.focus = saved;
                }
            }
            Action::Click(x, y) => self.click(x, y),
            nav => match self.focus {
                Focus::Tree => self.tree_nav(nav),
                Focus::Details => self.details_nav(nav),
                Focus::Relations => self.relations_nav(nav),
            },
        }
    }

    // ---- background work ----------------------------------------------
}
