//! Export: the dialog that writes the marked entities and what surrounds
//! them to a file — its state, its keys, its view. The file is written off
//! the UI task (`Effect::Export`).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use crate::base::outfile::OutputError;
use crate::model::{EntityId, TenantGraph};
use crate::tui::app::{Action, App};
use crate::tui::theme;
use crate::tui::view::pane;

/// The fields of the export dialog, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportField {
    #[default]
    Depth,
    Follow,
    Direction,
    Properties,
    Format,
    File,
}

impl ExportField {
    pub const ALL: [ExportField; 6] = [
        ExportField::Depth,
        ExportField::Follow,
        ExportField::Direction,
        ExportField::Properties,
        ExportField::Format,
        ExportField::File,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ExportField::Depth => "Depth",
            ExportField::Follow => "Follow",
            ExportField::Direction => "Direction",
            ExportField::Properties => "Properties",
            ExportField::Format => "Format",
            ExportField::File => "File",
        }
    }

    /// The field below (`1`) or above (`-1`), staying within the dialog.
    fn step(self, delta: isize) -> ExportField {
        let i = Self::ALL.iter().position(|f| *f == self).unwrap_or(0);
        let j = i.saturating_add_signed(delta).min(Self::ALL.len() - 1);
        Self::ALL[j]
    }
}

/// The export dialog's state.
#[derive(Debug, Clone)]
pub struct ExportUi {
    pub seeds: Vec<EntityId>,
    pub depth: usize,
    /// Every verb, and whether it is followed.
    pub verbs: Vec<(crate::model::Verb, bool)>,
    pub verb_cursor: usize,
    pub direction: crate::export::Direction,
    pub properties: bool,
    pub format: crate::export::Format,
    pub path: String,
    pub field: ExportField,
    /// Entities and relationships the export will hold.
    pub preview: (usize, usize),
}

/// An export to write off the UI task.
pub struct ExportJob {
    pub graph: TenantGraph,
    pub selection: crate::export::Selection,
    pub properties: bool,
    pub format: crate::export::Format,
    pub path: std::path::PathBuf,
}

impl ExportJob {
    pub fn run(self) -> Result<String, OutputError> {
        crate::export::write_file(
            &self.graph,
            &self.selection,
            self.properties,
            self.format,
            &self.path,
        )
        .map(|files| {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            format!(
                "wrote {} entities and {} relationships to {}",
                self.selection.entities.len(),
                self.selection.relationships.len(),
                names.join(" and ")
            )
        })
    }
}

impl App {
    pub(in crate::tui) fn open_export(&mut self) {
        let seeds: Vec<EntityId> = if self.marked_ids.is_empty() {
            self.selected_entity().into_iter().collect()
        } else {
            let mut v: Vec<EntityId> = self.marked_ids.iter().copied().collect();
            v.sort_unstable();
            v
        };
        if seeds.is_empty() {
            self.set_message(
                "mark entities with Space (or put the cursor on one) to export",
                false,
            );
            return;
        }
        let tenant: String = self
            .graph()
            .of_kind(crate::model::EntityKind::AzureAccount)
            .first()
            .map(|&a| self.graph().entity(a).display_name.to_string())
            .unwrap_or_else(|| "tenant".into())
            .chars()
            .map(|c| {
                if c.is_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let stamp = self.now.format("%Y%m%d-%H%M");
        let mut ui = ExportUi {
            seeds,
            depth: 1,
            verbs: crate::model::Verb::ALL.iter().map(|v| (*v, true)).collect(),
            verb_cursor: 0,
            direction: crate::export::Direction::Both,
            properties: true,
            format: crate::export::Format::Json,
            path: format!("{tenant}-{stamp}.json"),
            field: ExportField::Depth,
            preview: (0, 0),
        };
        ui.preview = self.preview(&ui);
        self.modes.open(super::Mode::Export(ui));
    }

    pub(in crate::tui) fn selection_for(&self, ui: &ExportUi) -> crate::export::Selection {
        let verbs: Vec<crate::model::Verb> = ui
            .verbs
            .iter()
            .filter(|(_, on)| *on)
            .map(|(v, _)| *v)
            .collect();
        crate::export::Selection::around(
            self.graph(),
            &ui.seeds,
            ui.depth,
            Some(&verbs),
            ui.direction,
        )
    }

    pub(in crate::tui) fn preview(&self, ui: &ExportUi) -> (usize, usize) {
        let s = self.selection_for(ui);
        (s.entities.len(), s.relationships.len())
    }

    pub(in crate::tui) fn export_update(&mut self, action: Action) {
        use crate::export::{Direction, Format};
        let Some(super::Mode::Export(mut ui)) = self.modes.close() else {
            return;
        };
        let mut changed = false;
        use ExportField as F;
        match (action, ui.field) {
            (Action::Escape, _) => return,
            (Action::Quit, _) => {
                self.quit = true;
                return;
            }
            (Action::Up, _) => ui.field = ui.field.step(-1),
            (Action::Down | Action::CycleKind, _) => ui.field = ui.field.step(1),
            (Action::Left, F::Depth) => {
                ui.depth = ui.depth.saturating_sub(1);
                changed = true;
            }
            (Action::Right, F::Depth) => {
                ui.depth = (ui.depth + 1).min(3);
                changed = true;
            }
            (Action::Left, F::Follow) => ui.verb_cursor = ui.verb_cursor.saturating_sub(1),
            (Action::Right, F::Follow) => {
                ui.verb_cursor = (ui.verb_cursor + 1).min(ui.verbs.len() - 1)
            }
            (Action::Char(' '), F::Follow) => {
                ui.verbs[ui.verb_cursor].1 = !ui.verbs[ui.verb_cursor].1;
                changed = true;
            }
            (Action::Left | Action::Right | Action::Char(' '), F::Direction) => {
                let forward = !matches!(action, Action::Left);
                ui.direction = match (ui.direction, forward) {
                    (Direction::Both, true) | (Direction::In, false) => Direction::Out,
                    (Direction::Out, true) | (Direction::Both, false) => Direction::In,
                    _ => Direction::Both,
                };
                changed = true;
            }
            (Action::Left | Action::Right | Action::Char(' '), F::Properties) => {
                ui.properties = !ui.properties
            }
            (Action::Left | Action::Right | Action::Char(' '), F::Format) => {
                let i = Format::ALL
                    .iter()
                    .position(|f| *f == ui.format)
                    .unwrap_or(0);
                let n = Format::ALL.len();
                let next = if matches!(action, Action::Left) {
                    (i + n - 1) % n
                } else {
                    (i + 1) % n
                };
                let old_ext = ui.format.extension();
                ui.format = Format::ALL[next];
                if let Some(stem) = ui.path.strip_suffix(&format!(".{old_ext}")) {
                    ui.path = format!("{stem}.{}", ui.format.extension());
                }
            }
            (Action::Char(c), F::File) => ui.path.push(c),
            (Action::DeleteChar, F::File) => {
                ui.path.pop();
            }
            (Action::Enter, _) => {
                if ui.path.trim().is_empty() {
                    self.set_message("name the file to write", true);
                } else {
                    let (graph, selection) = self.selection_for(&ui).extract(self.graph());
                    self.export_job = Some(ExportJob {
                        graph,
                        selection,
                        properties: ui.properties,
                        format: ui.format,
                        path: std::path::PathBuf::from(ui.path.trim()),
                    });
                    self.set_message(format!("writing {}…", ui.path.trim()), false);
                    return;
                }
            }
            _ => {}
        }
        if changed {
            ui.preview = self.preview(&ui);
        }
        self.modes.open(super::Mode::Export(ui));
    }

    pub fn on_export_written(&mut self, result: Result<String, OutputError>) {
        match result {
            Ok(m) => self.set_message(m, false),
            Err(e) => self.set_message(format!("export failed: {e}"), true),
        }
    }
}

pub(in crate::tui) fn draw_export(f: &mut Frame, app: &App, area: Rect) {
    let Some(ui) = app.export() else { return };
    let gaps = app.gaps();
    let w = 76.min(area.width);
    let h = (14 + u16::from(!gaps.is_empty())).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    let g = app.graph();
    let seeds = match ui.seeds.as_slice() {
        [one] => g.entity(*one).display_name.to_string(),
        many => format!("{} marked entities", many.len()),
    };
    let verbs: Vec<Span> = ui
        .verbs
        .iter()
        .enumerate()
        .flat_map(|(i, (v, on))| {
            let style = if *on { theme::key() } else { theme::dim() };
            let style = if i == ui.verb_cursor && ui.field == ExportField::Follow {
                style.add_modifier(ratatui::style::Modifier::REVERSED)
            } else {
                style
            };
            [
                Span::styled(
                    if *on {
                        format!("{v}")
                    } else {
                        v.lower().to_string()
                    },
                    style,
                ),
                Span::raw(" "),
            ]
        })
        .collect();
    let value = |field: ExportField| -> Vec<Span<'static>> {
        match field {
            ExportField::Depth => vec![Span::raw(format!("‹ {} ›  hops from the seeds", ui.depth))],
            ExportField::Direction => vec![Span::raw(format!(
                "‹ {} ›",
                match ui.direction {
                    crate::export::Direction::Out => "outgoing",
                    crate::export::Direction::In => "incoming",
                    crate::export::Direction::Both => "both ways",
                }
            ))],
            ExportField::Properties => vec![Span::raw(if ui.properties {
                "‹ included ›"
            } else {
                "‹ left out ›"
            })],
            ExportField::Format => vec![Span::raw(format!("‹ {} ›", ui.format.name()))],
            ExportField::File => vec![Span::raw(ui.path.clone()), Span::styled("▏", theme::key())],
            ExportField::Follow => verbs.clone(),
        }
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled("Seeds      ", theme::dim()),
            Span::raw(seeds),
        ]),
        Line::from(""),
    ];
    for field in ExportField::ALL {
        let label = Span::styled(
            format!("{:<11}", field.label()),
            if field == ui.field {
                theme::highlight()
            } else {
                theme::key()
            },
        );
        let mut spans = vec![label];
        spans.extend(value(field));
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!(
            "{} entities and {} relationships will be written",
            ui.preview.0, ui.preview.1
        ),
        theme::title(),
    )));
    // What the export holds is what was read: sources not read now say so.
    if !gaps.is_empty() {
        let names: Vec<String> = gaps
            .iter()
            .map(|(s, w)| format!("{} {w}", s.name()))
            .collect();
        lines.push(Line::from(Span::styled(
            format!("⚠ {}", names.join(", ")),
            theme::error(),
        )));
    }
    lines.push(Line::from(Span::styled(
        "↑↓ field · ←→ change · Space toggle a verb · Enter write · Esc cancel",
        theme::dim(),
    )));
    f.render_widget(
        Paragraph::new(lines)
            .block(pane("Export", true))
            .wrap(Wrap { trim: false }),
        r,
    );
}
