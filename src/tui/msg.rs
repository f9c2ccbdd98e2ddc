//! What comes into the explorer and what goes out of it: `Action`s (what
//! the person asked for), `Msg`s (everything `App::handle` takes), `Done`
//! (background work that finished, with typed errors) and `Effect`s (work
//! `handle` asks the event loop to start).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::fetch::{FetchEvent, Source};
use crate::model::{EntityId, TenantGraph};
use crate::store::StoreError;
use crate::tui::modes::export::ExportJob;
use crate::tui::modes::search::SearchJob;
use crate::tui::modes::triage::{TriageData, TriageSave};

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
