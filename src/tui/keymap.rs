//! Keys → actions, and the help overlay generated from the same table.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::Action;

/// (keys as shown in help, what it does, the action)
pub const BINDINGS: &[(&str, &str, Action)] = &[
    ("↑ k", "move up", Action::Up),
    ("↓ j", "move down", Action::Down),
    ("← h", "close node / go to parent", Action::Left),
    ("→ l", "open node", Action::Right),
    ("PgUp PgDn", "page up / down", Action::PageUp),
    ("Home End", "first / last", Action::Home),
    (
        "Enter",
        "open node; in relations: jump to entity",
        Action::Enter,
    ),
    (
        "Tab",
        "next pane (tree, details, relations)",
        Action::FocusNext,
    ),
    ("Backspace [", "back in jump history", Action::Back),
    ("]", "forward in jump history", Action::Forward),
    (
        "/",
        "search every entity (Tab filters by kind)",
        Action::OpenSearch,
    ),
    (
        "Space",
        "mark / unmark the entity (tree, relations, search)",
        Action::ToggleMark,
    ),
    ("c", "clear all marks", Action::ClearMarks),
    (
        "x",
        "export the marked entities (or the selection)",
        Action::OpenExport,
    ),
    (
        "t",
        "triage view: noncompliant devices",
        Action::ToggleTriage,
    ),
    ("r", "refresh from the tenant", Action::Refresh),
    ("?", "this help", Action::ToggleHelp),
    ("q Ctrl-C", "quit", Action::Quit),
];

/// Keys while the search overlay is open: text goes into the query.
pub fn search_action_for(key: KeyEvent) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            KeyCode::Char('c') => Some(Action::Quit),
            KeyCode::Char('u') => Some(Action::DeleteChar),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char(c) => Action::Char(c),
        KeyCode::Backspace => Action::DeleteChar,
        KeyCode::Tab => Action::CycleKind,
        KeyCode::Left => Action::Left,
        KeyCode::Right => Action::Right,
        KeyCode::Up => Action::Up,
        KeyCode::Down => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Enter => Action::Enter,
        KeyCode::Esc => Action::Escape,
        _ => return None,
    })
}

pub fn action_for(key: KeyEvent) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            KeyCode::Char('c') => Some(Action::Quit),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Left | KeyCode::Char('h') => Action::Left,
        KeyCode::Right | KeyCode::Char('l') => Action::Right,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Home,
        KeyCode::End | KeyCode::Char('G') => Action::End,
        KeyCode::Enter => Action::Enter,
        KeyCode::Tab => Action::FocusNext,
        KeyCode::BackTab => Action::FocusPrev,
        KeyCode::Backspace | KeyCode::Char('[') => Action::Back,
        KeyCode::Char(']') => Action::Forward,
        KeyCode::Char('r') => Action::Refresh,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('/') => Action::OpenSearch,
        KeyCode::Char(' ') => Action::ToggleMark,
        KeyCode::Char('c') => Action::ClearMarks,
        KeyCode::Char('x') => Action::OpenExport,
        KeyCode::Char('t') => Action::ToggleTriage,
        KeyCode::Esc => Action::Escape,
        KeyCode::Char('q') => Action::Quit,
        _ => return None,
    })
}

/// Keys in the triage view (status keys 1–5, sort, group, filter, note).
pub const TRIAGE_BINDINGS: &[(&str, &str)] = &[
    ("↑↓ PgUp PgDn", "move"),
    (
        "Enter",
        "open the device in the explorer (Backspace returns)",
    ),
    (
        "1–5",
        "status: new, investigating, waiting for check-in, accepted risk, resolved",
    ),
    ("n", "edit the note"),
    ("s / S", "sort by the next column / reverse"),
    ("g", "group by policy, setting, owner, platform"),
    ("f or /", "filter by typing"),
    ("Space", "mark the device (for export)"),
    ("t Esc", "back to the tree"),
];

pub fn triage_action_for(key: KeyEvent) -> Option<Action> {
    use crate::triage::Status;
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return (key.code == KeyCode::Char('c')).then_some(Action::Quit);
    }
    Some(match key.code {
        KeyCode::Char('1') => Action::SetStatus(Status::New),
        KeyCode::Char('2') => Action::SetStatus(Status::Investigating),
        KeyCode::Char('3') => Action::SetStatus(Status::WaitingForCheckIn),
        KeyCode::Char('4') => Action::SetStatus(Status::AcceptedRisk),
        KeyCode::Char('5') => Action::SetStatus(Status::Resolved),
        KeyCode::Char('n') => Action::EditNote,
        KeyCode::Char('s') => Action::SortNext,
        KeyCode::Char('S') => Action::SortReverse,
        KeyCode::Char('g') => Action::GroupNext,
        KeyCode::Char('f') | KeyCode::Char('/') => Action::Filter,
        KeyCode::Char('t') => Action::ToggleTriage,
        _ => return action_for(key),
    })
}
