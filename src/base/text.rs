//! Text that came from the network, made safe to print on a terminal.
//!
//! A tenant's names, properties and a service's error messages are written
//! by whoever controls the tenant or the service. Printed raw, an `ESC [ 2 J`
//! clears the screen, an OSC 52 sequence writes the clipboard, an OSC 0
//! sequence sets the window title. Every such sequence starts with a control
//! character: ESC (0x1b), CSI (U+009B), OSC (U+009D), DCS (U+0090), or needs
//! one to end (BEL, ST). So:
//!
//! - **C0 controls** (U+0000–U+001F), **DEL** (U+007F) and **C1 controls**
//!   (U+0080–U+009F) are each replaced by U+FFFD `�`, a visible mark that
//!   something was there, never passed through.
//! - In one-line contexts ([`line`]: table cells, names): a tab becomes a
//!   space, a line break (`\n`, `\r`, U+2028, U+2029, U+0085) becomes `␤`
//!   (U+2424), so a value never starts a new row or overwrites its own.
//! - In multi-line contexts ([`text`]: error messages): `\n` and `\t` are
//!   kept; `\r` (which lets a later part overwrite the start of the line)
//!   becomes `␤`.
//!
//! JSON output needs none of this: serde writes every control character as
//! `\u00XX`.

use std::borrow::Cow;

/// The mark for a line break inside a one-line value.
pub const NEWLINE_MARK: char = '\u{2424}';
/// The mark for a control character that was removed.
pub const CONTROL_MARK: char = '\u{FFFD}';

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// A character that may start or end a terminal control sequence.
pub fn is_control(c: char) -> bool {
    let n = c as u32;
    n < 0x20 || (0x7f..=0x9f).contains(&n)
}

fn clean(s: &str, keep: impl Fn(char) -> Option<char>) -> Cow<'_, str> {
    let needs = |c: char| is_control(c) || is_line_break(c);
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs(c) {
            out.push(c);
        } else if let Some(r) = keep(c) {
            out.push(r);
        } else if is_line_break(c) {
            out.push(NEWLINE_MARK);
        } else {
            out.push(CONTROL_MARK);
        }
    }
    Cow::Owned(out)
}

/// One line of terminal text: controls replaced, tabs as spaces, line
/// breaks as `␤`.
pub fn line(s: &str) -> Cow<'_, str> {
    clean(s, |c| (c == '\t').then_some(' '))
}

/// Terminal text that may span lines (an error message): `\n` and `\t`
/// kept, every other control replaced, `\r` as `␤`.
pub fn text(s: &str) -> Cow<'_, str> {
    clean(s, |c| matches!(c, '\n' | '\t').then_some(c))
}

/// A CSV cell that a spreadsheet will not run, and a terminal will not
/// obey. A cell starting with `=`, `+`, `-`, `@`, a tab, a carriage return
/// or a line feed is a formula to Excel, LibreOffice and Google Sheets
/// (OWASP, "CSV Injection"): it gets a leading `'`, which they show as
/// text. Control characters go as in [`text`].
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let starts_formula = |t: &str| t.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']);
    if starts_formula(s) {
        return Cow::Owned(format!("'{}", text(s)));
    }
    text(s)
}

/// True when nothing in `s` can start a terminal control sequence.
pub fn is_terminal_safe(s: &str) -> bool {
    !s.chars().any(|c| is_control(c) && c != '\n' && c != '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str =
        "a\x1b[2Jb\x1b]52;c;ZXZpbA==\x07c\x1b]0;pwned\x1b\\d\u{9b}31me\u{9d}f\x7f\r\ng\th";

    #[test]
    fn nothing_that_starts_a_sequence_survives() {
        for out in [line(HOSTILE), text(HOSTILE)] {
            assert!(is_terminal_safe(&out), "{out:?}");
            assert!(
                !out.contains(['\x1b', '\x07', '\u{9b}', '\u{9d}', '\x7f', '\r']),
                "{out:?}"
            );
        }
        assert_eq!(
            line(HOSTILE),
            "a�[2Jb�]52;c;ZXZpbA==�c�]0;pwned�\\d�31me�f�␤␤g h"
        );
        assert_eq!(
            text(HOSTILE),
            "a�[2Jb�]52;c;ZXZpbA==�c�]0;pwned�\\d�31me�f�␤\ng\th"
        );
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for (s, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'␤=1"),
            ("a=1", "a=1"),
            ("", ""),
            ("Ava\x1b[2J", "Ava�[2J"),
        ] {
            assert_eq!(csv_cell(s), want, "{s:?}");
        }
    }

    #[test]
    fn ordinary_text_is_borrowed_untouched() {
        for s in ["Åsa Öberg", "LAPTOP-4AEC · Windows 11", "", "日本語 ✓"] {
            assert!(matches!(line(s), Cow::Borrowed(b) if b == s));
            assert!(matches!(text(s), Cow::Borrowed(b) if b == s));
        }
        assert_eq!(line("a\u{2028}b"), "a␤b");
    }
}
