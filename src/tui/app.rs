//! The explorer's state and the one place it changes: `App::handle(Msg) ->
//! Vec<Effect>`. Keys, fetch events, finished background work, signals and
//! frames all arrive as `Msg`; loading, searching, exporting and saving
//! leave as `Effect`s the event loop starts, their results coming back as
//! `Msg::Done`. Nothing else writes this state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tui_tree_widget::TreeState;

use crate::fetch::{FetchEvent, GraphBuilder, Outcome, Source};
use crate::model::{EntityId, TenantGraph};
use crate::store::StoreError;

use super::tree::{Builder, Node, RelCache, RelGroup, TreeIndex};

pub use super::modes::export::{ExportField, ExportJob, ExportUi};
pub use super::modes::search::{SEARCH_LIMIT, SearchJob, SearchUi};
pub use super::modes::triage::{TriageColumn, TriageData, TriageLine, TriageSave, TriageUi};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    FocusNext,
    FocusPrev,
    Back,
    Forward,
    Refresh,
    ToggleHelp,
    Escape,
    Quit,
    /// Mouse wheel over the pane under (column, row).
    ScrollUp(u16, u16),
    ScrollDown(u16, u16),
    /// Mouse click at (column, row).
    Click(u16, u16),
    /// Jump to an entity (from the relations pane, search, triage…).
    Jump(EntityId),
    /// Open the search overlay.
    OpenSearch,
    /// A character typed into the search.
    Char(char),
    /// Delete the last character of the search.
    DeleteChar,
    /// Next kind filter in the search.
    CycleKind,
    /// Mark or unmark the entity under the cursor (tree, relations, search).
    ToggleMark,
    /// Clear every mark.
    ClearMarks,
    /// Open the export dialog for the marked entities (or the selection).
    OpenExport,
    /// Open or close the triage view.
    ToggleTriage,
    /// In triage: the next sort column (and reverse with `reverse`).
    SortNext,
    SortReverse,
    /// In triage: the next grouping.
    GroupNext,
    /// In triage: set the status of the device under the cursor.
    SetStatus(crate::triage::Status),
    /// In triage: edit the note of the device under the cursor.
    EditNote,
    /// In triage: type to filter.
    Filter,
}

/// Everything that changes the explorer's state comes in as one of these,
/// through `App::handle`; the event loop only turns terminal events,
/// fetch events, finished work and signals into messages, and runs the
/// effects `handle` returns.
pub enum Msg {
    /// What the person asked for (a key through the keymap, the mouse).
    Action(Action),
    /// A running fetch's event.
    Fetch(FetchEvent),
    /// Background work that finished.
    Done(Done),
    /// The explorer starts: whether to load the latest snapshot and to
    /// read the tenant, and whether there is a store to load from and save
    /// to.
    Start {
        load_snapshot: bool,
        fetch_now: bool,
        store: bool,
    },
    /// A signal ends the explorer (the terminal is restored first).
    Signal,
    /// Before a frame: the clock, and newly arrived entities filed.
    Frame(DateTime<Utc>),
    /// A tenth of a second passed: the spinner turns while a fetch runs.
    Tick,
}

/// Background work that finished, as the event loop reports it back.
pub enum Done {
    /// The latest snapshot (none when the store has none).
    Loaded(Result<Option<Box<(crate::store::SnapshotInfo, TenantGraph)>>, StoreError>),
    /// The triage statuses and the previous snapshot's failing devices.
    Triage(Result<TriageData, StoreError>),
    /// A search's results, by generation.
    Searched(u64, Option<crate::search::Results>),
    /// An export written (what to say), or why not.
    Exported(Result<String, crate::base::outfile::OutputError>),
    /// A triage status that could not be written.
    TriageNotSaved(StoreError),
    /// What completes the fetch just done, from earlier snapshots.
    Carried(Result<crate::store::CarryPatch, StoreError>),
    /// The snapshot saved (its id), or why not.
    Saved(Result<i64, StoreError>),
}

/// Work the event loop starts on the app's behalf; what it gives comes back
/// as a `Msg::Done`.
pub enum Effect {
    LoadSnapshot,
    /// `from_snapshot`: the data on screen is the latest snapshot, so the
    /// previous one is the one before it.
    LoadTriage {
        from_snapshot: bool,
    },
    /// Read the tenant (the plan's sources); `App::start_fetch` was called.
    Fetch,
    Search(SearchJob),
    Export(Box<ExportJob>),
    SaveTriage(TriageSave),
    /// Read what completes these statuses from the store.
    ReadCarry(BTreeMap<Source, crate::fetch::SourceStatus>),
    SaveSnapshot(Box<SnapshotToSave>),
}

/// A snapshot to write: the data on screen once the fetch is complete.
pub struct SnapshotToSave {
    pub graph: TenantGraph,
    pub statuses: BTreeMap<Source, crate::fetch::SourceStatus>,
    pub elapsed_ms: u64,
    pub metrics: serde_json::Value,
}

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

    pub(super) fn page(&self, area: ratatui::layout::Rect) -> usize {
        (area.height.saturating_sub(2) as usize).max(1)
    }

    /// Moves the tree cursor by `delta` visible rows (clamped).
    pub(super) fn move_tree(&mut self, delta: isize) {
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

    pub(super) fn select(&mut self, path: Vec<Node>) {
        if self.tree.select(path) {
            self.details_scroll = 0;
            self.rel_cursor = 0;
        }
    }

    pub(super) fn has_children(&self, path: &[Node]) -> bool {
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

    pub(super) fn history_step(&mut self, delta: isize) {
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

    // ---- background work ----------------------------------------------

    /// A fetch is starting. With data on screen it fills a second graph that
    /// replaces the first when complete; without, the tree fills live.
    pub fn start_fetch(&mut self, sources: &[Source]) {
        self.fetching = true;
        self.progress = sources
            .iter()
            .map(|s| (*s, SourceProgress::default()))
            .collect();
        if self.graph().entity_count() > 0 {
            self.incoming = Some(GraphBuilder::new());
            self.set_message("refreshing from the tenant…", false);
        }
    }

    /// Applies one fetch event; returns true when the fetch is done.
    pub fn on_fetch(&mut self, ev: FetchEvent) -> bool {
        match &ev {
            FetchEvent::Progress {
                source,
                collection,
                count,
                done,
            } => {
                let p = self.progress.entry(*source).or_default();
                p.collection = collection.to_string();
                p.count = p.count.max(*count);
                if *done {
                    p.collection.clear();
                }
                return false;
            }
            FetchEvent::SourceDone { source, status } => {
                let p = self.progress.entry(*source).or_default();
                p.done = true;
                p.outcome = Some(status.outcome);
                p.count = status.counts.values().sum();
                if let Some(first) = status.errors.first() {
                    p.error = Some(first.clone());
                    self.set_message(format!("{}: {first}", source.name()), true);
                }
            }
            _ => {}
        }
        let done = matches!(ev, FetchEvent::Done { .. });
        match self.incoming.as_mut() {
            Some(b) => {
                b.apply(ev);
            }
            None => {
                self.data.apply(ev);
            }
        }
        if done {
            self.fetching = false;
            match self.incoming.take() {
                // A refresh that read nothing keeps what is shown.
                Some(fresh) if !fresh.read_any() => {
                    let why = fresh
                        .statuses
                        .values()
                        .find_map(|s| s.errors.first().cloned())
                        .unwrap_or_else(|| "no source could be read".into());
                    self.refresh_failed = true;
                    self.set_message(
                        format!("refresh failed, still showing the earlier data: {why}"),
                        true,
                    );
                    return done;
                }
                Some(fresh) => {
                    self.data_time = Some(self.now);
                    self.swap_in(fresh);
                }
                None => self.data_time = Some(self.now),
            }
            self.refresh_failed = !self.data.read_any();
            self.index.update(&self.data.graph);
            self.index.sort_all(&self.data.graph);
            let failed: Vec<&str> = self
                .progress
                .iter()
                .filter(|(_, p)| p.error.is_some())
                .map(|(s, _)| s.name())
                .collect();
            if failed.is_empty() {
                self.set_message(
                    format!(
                        "read {} entities and {} relationships",
                        self.graph().entity_count(),
                        self.graph().relationship_count()
                    ),
                    false,
                );
            }
        }
        done
    }

    /// The statuses of the fetch just done, for `Store::carry_patch`; none
    /// when it read nothing (the data on screen stays as it was).
    pub fn carry_wanted(&self) -> Option<BTreeMap<Source, crate::fetch::SourceStatus>> {
        if self.refresh_failed {
            return None;
        }
        let mut statuses = self.data.statuses.clone();
        crate::store::Store::mark_not_asked(&mut statuses);
        Some(statuses)
    }

    /// Adds the sources the fetch did not read, carried over from an
    /// earlier snapshot, to the data on screen.
    pub fn apply_carry(&mut self, patch: crate::store::CarryPatch) {
        crate::store::Store::mark_not_asked(&mut self.data.statuses);
        let carried = patch.apply(&mut self.data.graph, &mut self.data.statuses);
        if carried.is_empty() {
            return;
        }
        self.index.update(&self.data.graph);
        self.index.sort_all(&self.data.graph);
        self.search_index.update(&self.data.graph);
        self.rels = RelCache::default();
        let names: Vec<&str> = carried.iter().map(|s| s.name()).collect();
        self.set_message(
            format!(
                "not read now, carried over from an earlier snapshot: {}",
                names.join(", ")
            ),
            false,
        );
    }

    /// Files newly arrived entities into the tree and the search index
    /// (once per frame); an open search runs again over the grown index.
    pub fn sync(&mut self) {
        self.index.update(&self.data.graph);
        let before = self.search_index.len();
        self.search_index.update(&self.data.graph);
        if self.search_index.len() != before
            && self
                .modes
                .search()
                .is_some_and(|s| !s.pending && !s.input.is_empty())
        {
            self.request_search(false);
        }
    }

    /// Replaces the graph, keeping the cursor on the same entity by key.
    pub(super) fn swap_in(&mut self, fresh: GraphBuilder) {
        let keep = self
            .selected_entity()
            .map(|id| self.graph().entity(id).key.to_string());
        self.data = fresh;
        self.index = TreeIndex::new();
        self.index.update(&self.data.graph);
        self.index.sort_all(&self.data.graph);
        self.search_index = crate::search::SearchIndex::build(&self.data.graph);
        self.marked_ids = self
            .marks
            .iter()
            .filter_map(|k| self.data.graph.id_of(k))
            .collect();
        let opened_top = self.tree.opened().contains(&vec![Node::Root]);
        self.tree = TreeState::default();
        if opened_top {
            self.tree.open(vec![Node::Root]);
        }
        self.tree.select(vec![Node::Root]);
        self.history.clear();
        self.history_pos = 0;
        if let Some(id) = keep.and_then(|k| self.graph().id_of(&k)) {
            self.reveal(id);
        }
    }

    /// A snapshot loaded from disk becomes the data on screen. A fetch that
    /// was filling the screen live goes on filling a second graph, which
    /// replaces the snapshot when complete.
    pub fn load_snapshot(
        &mut self,
        graph: TenantGraph,
        created: Option<DateTime<Utc>>,
        statuses: BTreeMap<Source, crate::fetch::SourceStatus>,
    ) {
        if self.fetching && self.incoming.is_none() {
            let live = std::mem::replace(&mut self.data, GraphBuilder::new());
            self.incoming = Some(live);
        }
        let mut b = GraphBuilder::new();
        b.graph = graph;
        b.statuses = statuses;
        self.swap_in(b);
        self.data_time = created;
        self.loading = None;
    }
}
