//! Drawing: everything on screen comes from `App`. The only thing written
//! back is the tree widget's scroll cache and the pane areas for mouse hits.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::app::{App, Areas};
use super::modes::Mode;
use super::modes::browse::{draw_details, draw_relations, draw_tree};
use super::modes::export::draw_export;
use super::modes::help::draw_help;
use super::modes::search::draw_search;
use super::modes::triage::draw_triage;
use super::{details, theme};
use crate::fetch::Outcome;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub(in crate::tui) fn pane<'a>(title: &'a str, focused: bool) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(
            format!(" {title} "),
            if focused {
                theme::focused_border().add_modifier(ratatui::style::Modifier::BOLD)
            } else {
                theme::border()
            },
        ))
        .border_style(if focused {
            theme::focused_border()
        } else {
            theme::border()
        })
}

pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .split(area);
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(42), Constraint::Percentage(58)])
        .split(rows[0]);
    let right = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
        .split(cols[1]);
    app.areas = Areas {
        tree: cols[0],
        details: right[0],
        relations: right[1],
    };

    if app.triage().is_some() {
        app.areas = Areas {
            tree: rows[0],
            details: Rect::default(),
            relations: Rect::default(),
        };
        draw_triage(f, app, rows[0]);
    } else {
        draw_tree(f, app, cols[0]);
        draw_details(f, app, right[0]);
        draw_relations(f, app, right[1]);
    }
    draw_message(f, app, rows[1]);
    draw_status(f, app, rows[2]);
    for mode in app.modes.iter() {
        match mode {
            Mode::Search(_) => draw_search(f, app, area),
            Mode::Export(_) => draw_export(f, app, area),
            Mode::Help => draw_help(f, app, area),
            Mode::Triage(_) => {}
        }
    }
}

fn draw_message(f: &mut Frame, app: &App, area: Rect) {
    use super::keymap::Mode;
    let line = match (&app.message, app.notices.first()) {
        (Some((m, true)), _) => Line::from(Span::styled(m.clone(), theme::error())),
        (_, Some(n)) => Line::from(Span::styled(
            format!(
                "{}{} · Esc hides",
                n,
                match app.notices.len() {
                    1 => String::new(),
                    more => format!(" (and {} more)", more - 1),
                }
            ),
            theme::error(),
        )),
        (Some((m, false)), None) => Line::from(Span::raw(m.clone())),
        (None, None) => Line::from(Span::styled(
            format!(
                "{} help · {} quit",
                app.keymap.keys_for(Mode::Browse, "help"),
                app.keymap.keys_for(Mode::Browse, "quit")
            ),
            theme::dim(),
        )),
    };
    f.render_widget(Paragraph::new(line), area);
}

fn draw_status(f: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![
        Span::styled(
            format!(" {} ", app.title),
            theme::title().add_modifier(ratatui::style::Modifier::REVERSED),
        ),
        Span::raw(" "),
    ];
    for (source, p) in &app.progress {
        let (mark, style) = match (&p.outcome, p.done) {
            (Some(Outcome::Complete), _) => ("✓".to_string(), theme::ok()),
            (Some(Outcome::Partial), _) => ("!".to_string(), theme::error()),
            (Some(Outcome::Failed), _) => ("✗".to_string(), theme::error()),
            (None, _) if app.fetching => (
                SPINNER[app.spinner % SPINNER.len()].to_string(),
                theme::key(),
            ),
            _ => ("·".to_string(), theme::dim()),
        };
        spans.push(Span::styled(format!("{} {mark} ", source.name()), style));
        let detail = if p.error.is_some() && p.done {
            String::new()
        } else if !p.collection.is_empty() && !p.done {
            format!("{} {} ", p.collection, p.count)
        } else {
            format!("{} ", p.count)
        };
        spans.push(Span::styled(detail, theme::dim()));
    }
    if !app.marks.is_empty() {
        spans.push(Span::styled(
            format!("● {} marked ", app.marks.len()),
            theme::marked(),
        ));
    }
    let age = match (app.fetching, app.data_time) {
        (true, _) => "reading…".to_string(),
        (false, Some(t)) => format!("data {}", details::age(t, app.now)),
        (false, None) => "no data".to_string(),
    };
    let left: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let pad = (area.width as usize).saturating_sub(left + age.chars().count() + 1);
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::styled(age, theme::dim()));
    f.render_widget(Paragraph::new(Line::from(spans)).style(Style::new()), area);
}
