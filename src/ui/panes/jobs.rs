//! The Jobs pane: every background job of the window — queued, running and finished — with
//! progress, rate, ETA and cancel, and for the selected job its log and its metric curves.

use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::PaneCtx;
use crate::jobs::{Entry, Phase};
use crate::ui::command::Command;

/// The Jobs pane.
#[derive(Default)]
pub struct JobsPane {
    /// The job whose log and curves are shown.
    selected: Option<String>,
    /// The forms that start exports, transfers, training and downloads.
    pub launcher: super::launch::Launcher,
    /// Whether the launcher is unfolded.
    pub launcher_open: bool,
    /// The selected training job's latest sample sheet.
    pub preview: super::job_preview::SheetPreview,
}

fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl JobsPane {
    /// Selects a job (its log and curves are shown).
    pub fn select(&mut self, name: &str) {
        self.selected = Some(name.to_string());
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PaneCtx<'_>) {
        let header = egui::CollapsingHeader::new("Start a job (export, transfer, training, download)")
            .id_salt("job launcher")
            .open(self.launcher_open.then_some(true))
            .show(ui, |ui| self.launcher.ui(ui, ctx.commands));
        self.launcher_open = !header.fully_closed();
        ui.separator();
        let entries = ctx.board.entries();
        ui.horizontal(|ui| {
            let active = entries.iter().filter(|e| e.phase.is_active()).count();
            let n = entries.len();
            ui.label(format!("{n} job{}, {active} queued or running", if n == 1 { "" } else { "s" }));
            if ui.button("Clear finished").clicked() {
                ctx.commands.push(Command::ClearFinishedJobs);
            }
        });
        if entries.is_empty() {
            ui.label("No jobs yet. PCA, sweeps, exports and training appear here while they run.");
            return;
        }
        if self.selected.as_deref().is_none_or(|s| ctx.board.get(s).is_none()) {
            self.selected = entries.last().map(|e| e.spec.name.clone());
        }
        ui.columns(2, |cols| {
            egui::ScrollArea::vertical().id_salt("job list").show(&mut cols[0], |ui| {
                for e in entries.iter().rev() {
                    self.entry_ui(ui, e, ctx.commands);
                    ui.separator();
                }
            });
            if let Some(e) = self.selected.as_deref().and_then(|s| ctx.board.get(s)) {
                detail_ui(&mut cols[1], e, ctx.commands);
                if let (Some(dir), "train") = (&e.spec.output, e.spec.kind) {
                    self.preview.ui(&mut cols[1], dir);
                }
            }
        });
    }

    fn entry_ui(&mut self, ui: &mut egui::Ui, e: &Entry, commands: &mut crate::ui::command::Commands) {
        let p = e.control.progress();
        ui.horizontal(|ui| {
            if e.phase.is_active() && ui.button(format!("Cancel {}", e.spec.name)).clicked() {
                commands.push(Command::Cancel(e.spec.name.clone()));
            }
            let selected = self.selected.as_deref() == Some(e.spec.name.as_str());
            if ui.selectable_label(selected, &e.spec.name).on_hover_text(e.spec.kind).clicked() {
                self.selected = Some(e.spec.name.clone());
            }
        });
        ui.horizontal(|ui| {
            let bar = egui::ProgressBar::new(p.fraction()).desired_width(180.0);
            let bar = if p.total > 0 { bar.text(format!("{}/{} {}", p.done, p.total, e.spec.unit)) } else { bar };
            ui.add(bar);
            let mut facts = vec![e.phase.to_string(), duration(e.elapsed())];
            if e.phase == Phase::Running && p.computed > 0 {
                facts.push(format!("{:.1} {}/s", p.rate_per_sec(), e.spec.unit));
                if let Some(eta) = p.eta() {
                    facts.push(format!("ETA {}", duration(eta)));
                }
            }
            ui.small(facts.join(" · "));
        });
        let status = e.control.status();
        if !status.is_empty() && e.phase.is_active() {
            ui.small(status);
        }
    }
}

/// What a finished job's output can be opened in.
fn actions_ui(ui: &mut egui::Ui, e: &Entry, commands: &mut crate::ui::command::Commands) {
    use crate::ui::command::DialogKind;
    let Some(out) = &e.spec.output else { return };
    ui.horizontal_wrapped(|ui| {
        if ui.button("Open folder").on_hover_text(out.display().to_string()).clicked() {
            commands.push(Command::Reveal(out.clone()));
        }
        match e.spec.kind {
            "export" | "transfer" => {
                let sweep = ui.button("Use in the sweep").on_hover_text("the strategy sweep's real-image folder");
                if sweep.clicked() {
                    commands.push(Command::Open(DialogKind::RealDir, out.clone()));
                }
            }
            "train" => {
                for (k, label) in [(0, "Open in Explain (left)"), (1, "Open in Explain (right)")] {
                    if ui.button(label).on_hover_text("heatmaps of the trained classifier").clicked() {
                        commands.push(Command::OpenClassifier(k, out.clone()));
                    }
                }
            }
            "fetch" => {
                let open = ui.button("Open model");
                if open.clicked() {
                    commands.push(Command::Open(DialogKind::ModelFolder, out.clone()));
                }
            }
            _ => {}
        }
    });
}

/// The selected job's curves and log.
fn detail_ui(ui: &mut egui::Ui, e: &Entry, commands: &mut crate::ui::command::Commands) {
    ui.strong(&e.spec.name);
    if let Phase::Failed(m) = &e.phase {
        ui.colored_label(ui.visuals().error_fg_color, m);
    }
    if e.phase == Phase::Done {
        actions_ui(ui, e, commands);
    }
    let has_metrics = e.control.with_metrics(|m| !m.is_empty());
    if has_metrics {
        Plot::new(format!("metrics {}", e.spec.name)).legend(Legend::default()).height(150.0).allow_scroll(false).show(
            ui,
            |p| {
                e.control.with_metrics(|m| {
                    for (name, pts) in m {
                        p.line(Line::new(name.clone(), PlotPoints::from(pts.clone())));
                    }
                });
            },
        );
    }
    if let Some(b) = e.control.bars() {
        bars_ui(ui, &e.spec.name, &b);
    }
    let log = e.control.log_lines();
    egui::CollapsingHeader::new(format!("Log ({})", log.len()))
        .id_salt(("job log", &e.spec.name))
        .default_open(true)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().max_height(120.0).stick_to_bottom(true).show(ui, |ui| {
                for l in log.iter().rev().take(200).rev() {
                    ui.monospace(l);
                }
            });
        });
}

/// A job's labelled values as a bar chart (per-class accuracy of a training run).
fn bars_ui(ui: &mut egui::Ui, job: &str, b: &crate::jobs::Bars) {
    use egui_plot::{Bar, BarChart};
    ui.label(&b.title);
    let bars: Vec<Bar> = b.values.iter().enumerate().map(|(i, (name, v))| Bar::new(i as f64, *v).name(name)).collect();
    let labels: Vec<String> = b.values.iter().map(|(n, _)| n.clone()).collect();
    Plot::new(format!("bars {job}"))
        .height(110.0)
        .allow_scroll(false)
        .include_y(0.0)
        .include_y(1.0)
        .x_axis_formatter(move |m, _| {
            let i = m.value.round();
            if (m.value - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .show(ui, |p| p.bar_chart(BarChart::new(b.title.clone(), bars)));
}
