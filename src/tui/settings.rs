//! The person's own keys and colours: `keymap.toml` and `theme.toml` in the
//! config directory, each merged over the built-in one. A file that is
//! missing is no problem; one that cannot be used is reported, never a
//! crash.

use std::path::{Path, PathBuf};

use super::keymap::Keymap;
use super::theme::Theme;

/// Where the person's files go.
pub fn keymap_path() -> Result<PathBuf, crate::config::ProfileError> {
    Ok(crate::config::config_dir()?.join("keymap.toml"))
}

pub fn theme_path() -> Result<PathBuf, crate::config::ProfileError> {
    Ok(crate::config::config_dir()?.join("theme.toml"))
}

/// The merged keys and colours, and what could not be used (one line
/// each, naming the file).
pub fn load() -> (Keymap, Theme, Vec<String>) {
    let mut problems = Vec::new();
    let keymap = match read(keymap_path(), &mut problems) {
        Some((text, path)) => {
            let (k, p) = Keymap::with_user(&text, &path.display().to_string());
            problems.extend(p);
            k
        }
        None => Keymap::default(),
    };
    let theme = match read(theme_path(), &mut problems) {
        Some((text, path)) => {
            let (t, p) = Theme::with_user(&text, &path.display().to_string());
            problems.extend(p);
            t
        }
        None => Theme::default(),
    };
    (keymap, theme, problems)
}

/// A file's text; nothing when it is not there.
fn read(
    path: Result<PathBuf, crate::config::ProfileError>,
    problems: &mut Vec<String>,
) -> Option<(String, PathBuf)> {
    let path = match path {
        Ok(p) => p,
        Err(e) => {
            problems.push(format!("{e:#}"));
            return None;
        }
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Some((text, path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            problems.push(format!("{}: {e}", shown(&path)));
            None
        }
    }
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}
