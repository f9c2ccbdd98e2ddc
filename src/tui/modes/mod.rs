//! The explorer's modes, one module each owning its state, its keys and its
//! view: browse (the tree and its panes), search, triage, export, help.

pub mod browse;
pub mod export;
pub mod help;
pub mod search;
pub mod triage;

use export::ExportUi;
use search::SearchUi;
use triage::TriageUi;

/// A mode open over browsing. Each holds its own state.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The table of noncompliant devices, in place of the tree.
    Triage(TriageUi),
    /// The search overlay.
    Search(SearchUi),
    /// The export dialog.
    Export(ExportUi),
    /// The keys of the mode underneath.
    Help,
}

/// The modes open over browsing, bottom to top. The top one takes the keys;
/// the view draws the lowest screen (browse, or triage in its place) and
/// every overlay above it in order. Browsing is the empty stack.
#[derive(Debug, Clone, Default)]
pub struct Modes(Vec<Mode>);

impl Modes {
    /// The mode that takes the keys (`None`: browsing).
    pub fn top(&self) -> Option<&Mode> {
        self.0.last()
    }

    /// Bottom to top.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Mode> {
        self.0.iter()
    }

    pub fn open(&mut self, mode: Mode) {
        self.0.push(mode);
    }

    /// Closes the top mode.
    pub fn close(&mut self) -> Option<Mode> {
        self.0.pop()
    }

    pub fn help(&self) -> bool {
        matches!(self.top(), Some(Mode::Help))
    }

    pub fn triage(&self) -> Option<&TriageUi> {
        self.0.iter().find_map(|m| match m {
            Mode::Triage(t) => Some(t),
            _ => None,
        })
    }

    pub fn triage_mut(&mut self) -> Option<&mut TriageUi> {
        self.0.iter_mut().find_map(|m| match m {
            Mode::Triage(t) => Some(t),
            _ => None,
        })
    }

    pub fn search(&self) -> Option<&SearchUi> {
        self.0.iter().find_map(|m| match m {
            Mode::Search(s) => Some(s),
            _ => None,
        })
    }

    pub fn search_mut(&mut self) -> Option<&mut SearchUi> {
        self.0.iter_mut().find_map(|m| match m {
            Mode::Search(s) => Some(s),
            _ => None,
        })
    }

    pub fn export(&self) -> Option<&ExportUi> {
        self.0.iter().find_map(|m| match m {
            Mode::Export(e) => Some(e),
            _ => None,
        })
    }

    pub fn export_mut(&mut self) -> Option<&mut ExportUi> {
        self.0.iter_mut().find_map(|m| match m {
            Mode::Export(e) => Some(e),
            _ => None,
        })
    }

    /// Closes the triage view and every mode above it; its state.
    pub fn take_triage(&mut self) -> Option<TriageUi> {
        let i = self.0.iter().position(|m| matches!(m, Mode::Triage(_)))?;
        match self.0.drain(i..).next() {
            Some(Mode::Triage(t)) => Some(t),
            _ => None,
        }
    }

    /// Closes the search overlay (and anything above it).
    pub fn close_search(&mut self) {
        if let Some(i) = self.0.iter().position(|m| matches!(m, Mode::Search(_))) {
            self.0.truncate(i);
        }
    }

    /// Closes the export dialog (and anything above it).
    pub fn close_export(&mut self) {
        if let Some(i) = self.0.iter().position(|m| matches!(m, Mode::Export(_))) {
            self.0.truncate(i);
        }
    }
}
