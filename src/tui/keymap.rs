//! Keys → actions, per mode, as data: `assets/keymap.toml` built in, the
//! person's own `keymap.toml` merged over it. Help is generated from the
//! merged map, so it always shows the keys that work.

use std::collections::HashMap;
use std::fmt::Write as _;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::Action;
use crate::triage::Status;

/// The built-in keys.
pub const DEFAULT: &str = include_str!("../../assets/keymap.toml");

/// Where keys go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The tree, details and relationship panes.
    Browse,
    /// The triage view; a key not bound here does what it does in browse.
    Triage,
    /// Typing into the search, a filter, a note or the export dialog:
    /// unbound characters are typed.
    Text,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Browse, Mode::Triage, Mode::Text];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Browse => "browse",
            Mode::Triage => "triage",
            Mode::Text => "text",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// Every action a key can be bound to: its name in keymap files, the
/// action, and what help says it does.
const ACTIONS: &[(&str, Action, &str)] = &[
    ("up", Action::Up, "move up"),
    ("down", Action::Down, "move down"),
    ("left", Action::Left, "close node / go to parent"),
    ("right", Action::Right, "open node"),
    ("page-up", Action::PageUp, "page up"),
    ("page-down", Action::PageDown, "page down"),
    ("home", Action::Home, "first"),
    ("end", Action::End, "last"),
    (
        "enter",
        Action::Enter,
        "open node; in relations: jump to entity",
    ),
    (
        "focus-next",
        Action::FocusNext,
        "next pane (tree, details, relations)",
    ),
    ("focus-prev", Action::FocusPrev, "previous pane"),
    ("back", Action::Back, "back in jump history"),
    ("forward", Action::Forward, "forward in jump history"),
    (
        "search",
        Action::OpenSearch,
        "search every entity (Tab filters by kind)",
    ),
    (
        "mark",
        Action::ToggleMark,
        "mark / unmark the entity (tree, relations, search)",
    ),
    ("clear-marks", Action::ClearMarks, "clear all marks"),
    (
        "export",
        Action::OpenExport,
        "export the marked entities (or the selection)",
    ),
    (
        "triage",
        Action::ToggleTriage,
        "triage view: noncompliant devices (and back)",
    ),
    ("refresh", Action::Refresh, "refresh from the tenant"),
    ("help", Action::ToggleHelp, "this help"),
    ("escape", Action::Escape, "close / cancel"),
    ("quit", Action::Quit, "quit"),
    ("status-new", Action::SetStatus(Status::New), "status: new"),
    (
        "status-investigating",
        Action::SetStatus(Status::Investigating),
        "status: investigating",
    ),
    (
        "status-waiting",
        Action::SetStatus(Status::WaitingForCheckIn),
        "status: waiting for check-in",
    ),
    (
        "status-accepted-risk",
        Action::SetStatus(Status::AcceptedRisk),
        "status: accepted risk",
    ),
    (
        "status-resolved",
        Action::SetStatus(Status::Resolved),
        "status: resolved",
    ),
    ("note", Action::EditNote, "edit the device's note"),
    ("sort-next", Action::SortNext, "sort by the next column"),
    ("sort-reverse", Action::SortReverse, "reverse the sort"),
    (
        "group-next",
        Action::GroupNext,
        "group by policy, setting, owner, platform",
    ),
    ("filter", Action::Filter, "filter by typing"),
    ("delete-char", Action::DeleteChar, "delete a character"),
    ("cycle-kind", Action::CycleKind, "next kind filter (search)"),
];

fn action_named(name: &str) -> Option<Action> {
    ACTIONS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, a, _)| *a)
}

/// A key as keymap files write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    code: KeyCode,
    ctrl: bool,
    alt: bool,
}

impl Key {
    fn parse(s: &str) -> Option<Key> {
        let (mut ctrl, mut alt) = (false, false);
        let mut rest = s;
        loop {
            if let Some(r) = rest.strip_prefix("Ctrl-").or(rest.strip_prefix("ctrl-")) {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("Alt-").or(rest.strip_prefix("alt-")) {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "Space" => KeyCode::Char(' '),
            "Enter" => KeyCode::Enter,
            "Esc" => KeyCode::Esc,
            "Tab" => KeyCode::Tab,
            "BackTab" => KeyCode::BackTab,
            "Backspace" => KeyCode::Backspace,
            "Delete" => KeyCode::Delete,
            "Up" => KeyCode::Up,
            "Down" => KeyCode::Down,
            "Left" => KeyCode::Left,
            "Right" => KeyCode::Right,
            "PageUp" => KeyCode::PageUp,
            "PageDown" => KeyCode::PageDown,
            "Home" => KeyCode::Home,
            "End" => KeyCode::End,
            f if f.len() > 1 && f.starts_with('F') => {
                let n: u8 = f[1..].parse().ok()?;
                if !(1..=12).contains(&n) {
                    return None;
                }
                KeyCode::F(n)
            }
            c => {
                let mut chars = c.chars();
                let (Some(ch), None) = (chars.next(), chars.next()) else {
                    return None;
                };
                if ch.is_control() || ch == ' ' {
                    return None;
                }
                // Ctrl with a letter arrives lower-case.
                KeyCode::Char(if ctrl { ch.to_ascii_lowercase() } else { ch })
            }
        };
        Some(Key { code, ctrl, alt })
    }

    fn of(event: KeyEvent) -> Key {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let code = match event.code {
            KeyCode::Char(c) if ctrl => KeyCode::Char(c.to_ascii_lowercase()),
            c => c,
        };
        Key {
            code,
            ctrl,
            alt: event.modifiers.contains(KeyModifiers::ALT),
        }
    }

    /// As help shows it: arrows as arrows, the rest as files write it.
    fn label(self) -> String {
        let mut s = String::new();
        if self.ctrl {
            s.push_str("Ctrl-");
        }
        if self.alt {
            s.push_str("Alt-");
        }
        match self.code {
            KeyCode::Char(' ') => s.push_str("Space"),
            // Ctrl-C, as keyboards and manuals write it.
            KeyCode::Char(c) if self.ctrl => s.push(c.to_ascii_uppercase()),
            KeyCode::Char(c) => s.push(c),
            KeyCode::Up => s.push('↑'),
            KeyCode::Down => s.push('↓'),
            KeyCode::Left => s.push('←'),
            KeyCode::Right => s.push('→'),
            KeyCode::PageUp => s.push_str("PgUp"),
            KeyCode::PageDown => s.push_str("PgDn"),
            KeyCode::F(n) => {
                let _ = write!(s, "F{n}");
            }
            other => {
                let _ = write!(s, "{other:?}");
            }
        }
        s
    }
}

/// One mode's bindings: action names, each with its keys.
#[derive(Debug, Clone, Default, PartialEq)]
struct Table {
    entries: Vec<(&'static str, Vec<Key>)>,
}

impl Table {
    /// Gives `action` exactly `keys`, taking them from any other action.
    fn bind(&mut self, action: &'static str, keys: Vec<Key>) {
        for (_, ks) in &mut self.entries {
            ks.retain(|k| !keys.contains(k));
        }
        match self.entries.iter_mut().find(|(a, _)| *a == action) {
            Some((_, ks)) => *ks = keys,
            None => self.entries.push((action, keys)),
        }
    }
}

/// The keys of every mode, merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    tables: HashMap<Mode, Table>,
    lookup: HashMap<(Mode, Key), Action>,
}

impl Default for Keymap {
    fn default() -> Keymap {
        let mut map = Keymap {
            tables: HashMap::new(),
            lookup: HashMap::new(),
        };
        let problems = map.merge(DEFAULT, "assets/keymap.toml");
        debug_assert!(problems.is_empty(), "{problems:?}");
        map
    }
}

impl Keymap {
    /// The built-in keys with `user` (the text of a keymap.toml, named
    /// `origin` in what is reported) merged over them. Returns what could
    /// not be used, one line each: a file that is not TOML is ignored
    /// whole (its line named); an unknown mode, action or key is skipped.
    pub fn with_user(user: &str, origin: &str) -> (Keymap, Vec<String>) {
        let mut map = Keymap::default();
        let problems = map.merge(user, origin);
        (map, problems)
    }

    fn merge(&mut self, text: &str, origin: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let doc: toml::Table = match text.parse() {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{origin}: {}", toml_error(text, &e)));
                return problems;
            }
        };
        for (mode_name, section) in &doc {
            let Some(mode) = Mode::parse(mode_name) else {
                problems.push(format!(
                    "{origin}: [{mode_name}] is not a mode (browse, triage, text)"
                ));
                continue;
            };
            let Some(section) = section.as_table() else {
                problems.push(format!("{origin}: {mode_name} is not a [table]"));
                continue;
            };
            for (action, keys) in section {
                let Some(&(name, ..)) = ACTIONS.iter().find(|(n, ..)| n == action) else {
                    problems.push(format!("{origin}: [{mode_name}] {action}: no such action"));
                    continue;
                };
                let Some(list) = keys.as_array() else {
                    problems.push(format!(
                        "{origin}: [{mode_name}] {action}: keys are a list, e.g. [\"k\", \"Up\"]"
                    ));
                    continue;
                };
                let mut parsed = Vec::new();
                for k in list {
                    match k.as_str().and_then(Key::parse) {
                        Some(key) => parsed.push(key),
                        None => problems.push(format!(
                            "{origin}: [{mode_name}] {action}: {k} is not a key"
                        )),
                    }
                }
                self.tables.entry(mode).or_default().bind(name, parsed);
            }
        }
        self.rebuild();
        problems
    }

    fn rebuild(&mut self) {
        self.lookup.clear();
        for (mode, table) in &self.tables {
            for (name, keys) in &table.entries {
                if let Some(action) = action_named(name) {
                    for k in keys {
                        self.lookup.insert((*mode, *k), action);
                    }
                }
            }
        }
    }

    /// What a key does in a mode: triage falls back to browse; in text an
    /// unbound character is typed.
    pub fn action(&self, mode: Mode, event: KeyEvent) -> Option<Action> {
        let key = Key::of(event);
        if let Some(a) = self.lookup.get(&(mode, key)) {
            return Some(*a);
        }
        match (mode, key.code) {
            (Mode::Triage, _) => self.lookup.get(&(Mode::Browse, key)).copied(),
            (Mode::Text, KeyCode::Char(c)) if !key.ctrl && !key.alt => Some(Action::Char(c)),
            _ => None,
        }
    }

    /// The first key of an action in a mode, as help shows it ("?" for
    /// help); "—" when it has none.
    pub fn keys_for(&self, mode: Mode, action: &str) -> String {
        self.tables
            .get(&mode)
            .and_then(|t| t.entries.iter().find(|(n, _)| *n == action))
            .and_then(|(_, keys)| keys.first())
            .map_or_else(|| "—".to_string(), |k| k.label())
    }

    /// Help for a mode: (keys, what they do), in the order of `ACTIONS`
    /// (moving first, quitting last); actions without a key are left out.
    pub fn help(&self, mode: Mode) -> Vec<(String, &'static str)> {
        let Some(table) = self.tables.get(&mode) else {
            return Vec::new();
        };
        ACTIONS
            .iter()
            .filter_map(|(name, _, what)| {
                let (_, keys) = table.entries.iter().find(|(n, _)| n == name)?;
                if keys.is_empty() {
                    return None;
                }
                let keys: Vec<String> = keys.iter().map(|k| k.label()).collect();
                Some((keys.join(" "), *what))
            })
            .collect()
    }
}

/// A TOML error as "line L, column C: what".
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let what = e.message();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn the_built_in_keys_are_what_the_explorer_always_had() {
        let k = Keymap::default();
        let b = |c| k.action(Mode::Browse, key(c));
        assert_eq!(b(KeyCode::Char('j')), Some(Action::Down));
        assert_eq!(b(KeyCode::Down), Some(Action::Down));
        assert_eq!(b(KeyCode::Char('G')), Some(Action::End));
        assert_eq!(b(KeyCode::Char(' ')), Some(Action::ToggleMark));
        assert_eq!(b(KeyCode::BackTab), Some(Action::FocusPrev));
        assert_eq!(
            k.action(
                Mode::Browse,
                KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
            ),
            Some(Action::Quit)
        );
        // Shift arrives with capitals; it changes nothing.
        assert_eq!(
            k.action(
                Mode::Browse,
                KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT)
            ),
            Some(Action::End)
        );
        let t = |c| k.action(Mode::Triage, key(c));
        assert_eq!(t(KeyCode::Char('g')), Some(Action::GroupNext));
        assert_eq!(
            t(KeyCode::Char('3')),
            Some(Action::SetStatus(Status::WaitingForCheckIn))
        );
        assert_eq!(t(KeyCode::Char('j')), Some(Action::Down), "browse's keys");
        let x = |c| k.action(Mode::Text, key(c));
        assert_eq!(x(KeyCode::Char('q')), Some(Action::Char('q')));
        assert_eq!(x(KeyCode::Backspace), Some(Action::DeleteChar));
        assert_eq!(
            k.action(
                Mode::Text,
                KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)
            ),
            Some(Action::DeleteChar)
        );
        assert_eq!(
            k.action(
                Mode::Text,
                KeyEvent::new(KeyCode::Char('z'), KeyModifiers::CONTROL)
            ),
            None,
            "a control character is never typed"
        );
    }

    #[test]
    fn a_users_keys_replace_an_actions_and_take_the_key_from_others() {
        let (k, problems) = Keymap::with_user(
            "[browse]\nquit = [\"Q\"]\ndown = [\"n\", \"j\"]\nup = [\"Ctrl-P\"]\n",
            "keymap.toml",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let b = |c| k.action(Mode::Browse, key(c));
        assert_eq!(b(KeyCode::Char('Q')), Some(Action::Quit));
        assert_eq!(
            b(KeyCode::Char('q')),
            None,
            "q was quit's, and quit is Q now"
        );
        assert_eq!(b(KeyCode::Char('n')), Some(Action::Down));
        assert_eq!(b(KeyCode::Char('k')), None, "up has only Ctrl-P");
        assert_eq!(
            k.action(
                Mode::Browse,
                KeyEvent::new(KeyCode::Char('p'), KeyModifiers::CONTROL)
            ),
            Some(Action::Up)
        );
        let help = k.help(Mode::Browse);
        assert!(help.contains(&("Q".to_string(), "quit")), "{help:?}");
        assert!(
            help.contains(&("Ctrl-P".to_string(), "move up")),
            "{help:?}"
        );
    }

    #[test]
    fn a_broken_file_is_reported_with_its_line_and_changes_nothing() {
        let (k, problems) = Keymap::with_user("[browse]\nquit = [\"Q\"\nup = 3\n", "my.toml");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("my.toml: line 3"), "{problems:?}");
        assert_eq!(k, Keymap::default());
        let (k, problems) = Keymap::with_user(
            "[browse]\nfly = [\"f\"]\nquit = [\"Hyper-q\", \"Q\"]\nup = \"k\"\n[sideways]\nx = []\n",
            "my.toml",
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("fly: no such action")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("\"Hyper-q\" is not a key"))
        );
        assert!(problems.iter().any(|p| p.contains("up: keys are a list")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("[sideways] is not a mode"))
        );
        assert_eq!(
            k.action(Mode::Browse, key(KeyCode::Char('Q'))),
            Some(Action::Quit),
            "what could be read is used"
        );
    }

    #[test]
    fn every_action_of_the_built_in_map_exists_and_every_key_parses() {
        let (_, problems) = Keymap::with_user(DEFAULT, "assets/keymap.toml");
        assert!(problems.is_empty(), "{problems:?}");
        for mode in Mode::ALL {
            assert!(!Keymap::default().help(mode).is_empty(), "{mode:?}");
        }
    }
}
