//! Help: the keys of the mode underneath, generated from the merged keymap.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use crate::tui::app::App;
use crate::tui::theme;
use crate::tui::view::pane;

pub(in crate::tui) fn draw_help(f: &mut Frame, app: &App, area: Rect) {
    use crate::tui::keymap::Mode;
    // The keys of the mode help was opened from, as the merged keymap has
    // them; triage also names the tree's keys it shares.
    let mode = if app.triage().is_some() {
        Mode::Triage
    } else {
        Mode::Browse
    };
    let bindings = app.keymap.help(mode);
    let w = 64.min(area.width.saturating_sub(2));
    let h = (bindings.len() as u16 + 6).min(area.height.saturating_sub(2));
    let r = Rect {
        x: area.x + (area.width.saturating_sub(w)) / 2,
        y: area.y + (area.height.saturating_sub(h)) / 2,
        width: w,
        height: h,
    };
    let title = match mode {
        Mode::Triage => "Keys in triage",
        _ => "Keys",
    };
    let mut lines = vec![
        Line::from(Span::styled(title, theme::category())),
        Line::from(""),
    ];
    let width = bindings
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 20);
    for (keys, what) in &bindings {
        lines.push(Line::from(vec![
            Span::styled(format!("{keys:<width$}  "), theme::key()),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        match mode {
            Mode::Triage => "Other keys as in the tree · ? or Esc closes",
            _ => "Mouse: wheel scrolls, click selects · ? or Esc closes",
        },
        theme::dim(),
    )));
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(pane("Help", true)), r);
}
