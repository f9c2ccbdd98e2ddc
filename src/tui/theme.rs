//! Colours as data: `assets/theme.toml` built in, the person's own
//! `theme.toml` merged over it, installed once when the explorer starts
//! (`install`); drawing reads it through the functions below. Glyphs and
//! kind tags stay here: they carry meaning without colour.

use std::sync::OnceLock;

use ratatui::style::{Color, Modifier, Style};

use crate::model::EntityKind;

/// The built-in colours.
pub const DEFAULT: &str = include_str!("../../assets/theme.toml");

/// Every named style and kind colour.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    styles: Vec<(&'static str, Style)>,
}

const STYLES: [&str; 13] = [
    "title",
    "category",
    "count",
    "relation",
    "dim",
    "key",
    "error",
    "ok",
    "marked",
    "matched",
    "highlight",
    "focused-border",
    "border",
];

const KINDS: [&str; 7] = [
    "user", "group", "device", "finding", "policy", "azure", "other",
];

impl Default for Theme {
    fn default() -> Theme {
        let mut t = Theme {
            styles: STYLES
                .iter()
                .chain(KINDS.iter())
                .map(|n| (*n, Style::new()))
                .collect(),
        };
        let problems = t.merge(DEFAULT, "assets/theme.toml");
        debug_assert!(problems.is_empty(), "{problems:?}");
        t
    }
}

impl Theme {
    /// The built-in colours with `user` (a theme.toml's text, named
    /// `origin` in what is reported) merged over them, style by style.
    /// Returns what could not be used: a file that is not TOML is ignored
    /// whole (its line named); an unknown style or colour is skipped.
    pub fn with_user(user: &str, origin: &str) -> (Theme, Vec<String>) {
        let mut t = Theme::default();
        let problems = t.merge(user, origin);
        (t, problems)
    }

    fn merge(&mut self, text: &str, origin: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let doc: toml::Table = match text.parse() {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{origin}: {}", super::keymap::toml_error(text, &e)));
                return problems;
            }
        };
        for (section, names) in [("styles", &STYLES[..]), ("kinds", &KINDS[..])] {
            let Some(table) = doc.get(section) else {
                continue;
            };
            let Some(table) = table.as_table() else {
                problems.push(format!("{origin}: {section} is not a [table]"));
                continue;
            };
            for (name, spec) in table {
                let Some(&known) = names.iter().find(|n| **n == name) else {
                    problems.push(format!(
                        "{origin}: [{section}] {name}: no such style ({})",
                        names.join(", ")
                    ));
                    continue;
                };
                match style(spec) {
                    Ok(s) => {
                        if let Some(slot) = self.styles.iter_mut().find(|(n, _)| *n == known) {
                            slot.1 = s;
                        }
                    }
                    Err(why) => problems.push(format!("{origin}: [{section}] {name}: {why}")),
                }
            }
        }
        for key in doc.keys() {
            if key != "styles" && key != "kinds" {
                problems.push(format!(
                    "{origin}: [{key}] is not a section (styles, kinds)"
                ));
            }
        }
        problems
    }

    fn get(&self, name: &str) -> Style {
        self.styles
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(Style::new, |(_, s)| *s)
    }
}

/// `{ fg = "cyan", bold = true }` as a style.
fn style(spec: &toml::Value) -> Result<Style, String> {
    let Some(t) = spec.as_table() else {
        return Err("a style is a table, e.g. { fg = \"cyan\", bold = true }".into());
    };
    let mut s = Style::new();
    for (field, value) in t {
        match field.as_str() {
            "fg" | "bg" => {
                let c = value
                    .as_str()
                    .and_then(color)
                    .ok_or_else(|| format!("{field} = {value} is not a colour"))?;
                s = if field == "fg" { s.fg(c) } else { s.bg(c) };
            }
            "bold" | "dim" | "italic" | "underlined" | "reversed" => {
                let on = value
                    .as_bool()
                    .ok_or_else(|| format!("{field} is true or false"))?;
                let m = match field.as_str() {
                    "bold" => Modifier::BOLD,
                    "dim" => Modifier::DIM,
                    "italic" => Modifier::ITALIC,
                    "underlined" => Modifier::UNDERLINED,
                    _ => Modifier::REVERSED,
                };
                s = if on {
                    s.add_modifier(m)
                } else {
                    s.remove_modifier(m)
                };
            }
            other => {
                return Err(format!(
                    "{other} is not a style field (fg, bg, bold, dim, italic, underlined, reversed)"
                ));
            }
        }
    }
    Ok(s)
}

fn color(s: &str) -> Option<Color> {
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() != 6 {
            return None;
        }
        let v = u32::from_str_radix(hex, 16).ok()?;
        return Some(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    }
    if let Ok(i) = s.parse::<u8>() {
        return Some(Color::Indexed(i));
    }
    Some(match s.to_ascii_lowercase().replace('_', "-").as_str() {
        "reset" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "dark-gray" | "dark-grey" => Color::DarkGray,
        "light-red" => Color::LightRed,
        "light-green" => Color::LightGreen,
        "light-yellow" => Color::LightYellow,
        "light-blue" => Color::LightBlue,
        "light-magenta" => Color::LightMagenta,
        "light-cyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return None,
    })
}

static THEME: OnceLock<Theme> = OnceLock::new();

/// Makes `theme` the explorer's colours; only the first call counts (the
/// explorer runs once a process).
pub fn install(theme: Theme) {
    let _ = THEME.set(theme);
}

fn current() -> &'static Theme {
    THEME.get_or_init(Theme::default)
}

pub fn title() -> Style {
    current().get("title")
}
pub fn category() -> Style {
    current().get("category")
}
pub fn count() -> Style {
    current().get("count")
}
pub fn relation() -> Style {
    current().get("relation")
}
pub fn dim() -> Style {
    current().get("dim")
}
pub fn key() -> Style {
    current().get("key")
}
pub fn error() -> Style {
    current().get("error")
}
pub fn ok() -> Style {
    current().get("ok")
}
/// The mark on a marked entity.
pub fn marked() -> Style {
    current().get("marked")
}
/// Characters a search matched.
pub fn matched() -> Style {
    current().get("matched")
}
pub fn highlight() -> Style {
    current().get("highlight")
}
pub fn focused_border() -> Style {
    current().get("focused-border")
}
pub fn border() -> Style {
    current().get("border")
}

/// A short tag per kind family, readable without colour.
pub fn kind_icon(kind: EntityKind) -> &'static str {
    use EntityKind as K;
    match kind {
        K::AzureAccount => "[tenant]",
        K::AzureUser | K::DefenderLogonUser => "[user]",
        K::AzureUserGroup => "[group]",
        K::AzureGroupMember => "[member]",
        K::AzureServicePrincipal => "[app]",
        k if k.is_device() => "[device]",
        K::IntuneHostAgent | K::DefenderMachine => "[agent]",
        K::IntuneCompliancePolicy | K::IntuneDeviceConfiguration => "[policy]",
        K::IntuneNoncomplianceFinding | K::DefenderVulnerability => "[finding]",
        K::IntuneDetectedApplication | K::IntuneManagedApplication => "[app]",
        K::Cve => "[cve]",
        K::AzureSubscription => "[sub]",
        K::AzureResourceGroup => "[rg]",
        K::AzureRoleAssignment | K::AzureRoleDefinition => "[role]",
        _ => "[res]",
    }
}

/// A kind's colour, by family (`[kinds]` in theme.toml).
pub fn kind_style(kind: EntityKind) -> Style {
    use EntityKind as K;
    let family = match kind {
        K::AzureUser | K::DefenderLogonUser | K::AzureGroupMember => "user",
        K::AzureUserGroup => "group",
        k if k.is_device() => "device",
        K::IntuneNoncomplianceFinding | K::DefenderVulnerability | K::Cve => "finding",
        K::IntuneCompliancePolicy | K::IntuneDeviceConfiguration => "policy",
        K::AzureSubscription | K::AzureResourceGroup => "azure",
        _ => "other",
    };
    current().get(family)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_theme_is_the_explorers_colours() {
        let t = Theme::default();
        assert_eq!(
            t.get("category"),
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
        );
        assert_eq!(
            t.get("matched"),
            Style::new()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        );
        assert_eq!(t.get("device"), Style::new().fg(Color::Blue));
        assert_eq!(
            t.get("highlight"),
            Style::new().add_modifier(Modifier::REVERSED)
        );
    }

    #[test]
    fn a_users_theme_replaces_styles_and_reports_what_it_cannot_use() {
        let (t, problems) = Theme::with_user(
            "[styles]\nkey = { fg = \"#ff8000\", bold = true }\nborder = { fg = \"240\" }\n[kinds]\ndevice = { fg = \"light-cyan\" }\n",
            "theme.toml",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            t.get("key"),
            Style::new()
                .fg(Color::Rgb(255, 128, 0))
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(t.get("border"), Style::new().fg(Color::Indexed(240)));
        assert_eq!(t.get("device"), Style::new().fg(Color::LightCyan));
        assert_eq!(
            t.get("error"),
            Theme::default().get("error"),
            "the rest stays"
        );

        let (t, problems) = Theme::with_user("[styles\nkey = 1", "theme.toml");
        assert_eq!(t, Theme::default());
        assert!(
            problems[0].starts_with("theme.toml: line 1"),
            "{problems:?}"
        );
        let (_, problems) = Theme::with_user(
            "[styles]\nkey = { fg = \"mauve\" }\nglow = { bold = true }\nok = \"green\"\n[colours]\n",
            "theme.toml",
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
