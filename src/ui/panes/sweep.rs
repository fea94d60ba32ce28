//! The strategy sweep: GenInt's Figure 6 for the open model, class and components, with the
//! Explain pane's first classifier, as a job; three curves with the best point of each marked.

use std::path::PathBuf;
use std::sync::Arc;

use egui_plot::{Line, Plot, PlotPoints, Points};

use super::{job_progress_ui, PaneCtx};
use crate::explain::sweep::{self, Knob, SweepConfig, SweepPoint, SweepResult};
use crate::jobs::{Board, Outcome};
use crate::steer::Components;
use crate::ui::command::{Command, Commands, DialogKind};
use crate::ui::job_requests::JobRequest;

/// The sweep pane.
#[derive(Default)]
pub struct SweepPane {
    job: Option<String>,
    points: Option<Vec<SweepPoint>>,
}

impl SweepPane {
    /// The points of the last finished sweep.
    pub fn points(&self) -> Option<&[SweepPoint]> {
        self.points.as_deref()
    }

    pub fn running(&self, board: &Board) -> bool {
        self.job.as_deref().is_some_and(|n| board.is_active(n))
    }

    pub fn logic(&mut self, board: &mut Board, commands: &mut Commands) {
        let Some(name) = self.job.clone().filter(|n| !board.is_active(n)) else { return };
        self.job = None;
        match board.take::<SweepResult>(&name) {
            Some(Outcome::Done(r)) => {
                self.points = Some(r.points);
                commands.status(format!("sweep done ({} real images)", r.real_images));
            }
            Some(Outcome::Cancelled) => commands.status("sweep cancelled"),
            Some(Outcome::Failed(e)) => commands.error("sweep failed", format!("{e:#}")),
            None => {}
        }
    }

    /// The sweep's section of the steering panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PaneCtx<'_>, components: Option<&Arc<Components>>) {
        egui::CollapsingHeader::new("Strategy sweep, log P(x|z)").default_open(false).show(ui, |ui| {
            ui.label("GenInt Fig. 6: truncation, top-k components and offset scale of the interventions, scored against real images of this class with Explain's first classifier.");
            ui.horizontal(|ui| {
                let dir = ctx.state.sweep_real.clone().unwrap_or_else(|| "(choose)".into());
                ui.label(format!("real images: {dir}"));
                if ui.button("Real images…").clicked() {
                    ctx.commands.push(Command::OpenDialog(DialogKind::RealDir));
                }
            });
            ui.add(egui::DragValue::new(&mut ctx.state.sweep_per_setting).range(2..=5000).prefix("images per setting "));
            if let Some(name) = self.job.clone().filter(|n| ctx.board.is_active(n)) {
                job_progress_ui(ui, ctx, &name, "Cancel sweep");
                return;
            }
            let ready = components.is_some() && ctx.state.sweep_real.is_some();
            if ui.add_enabled(ready, egui::Button::new("Run sweep")).clicked() {
                if let (Some(c), Some(real)) = (components, ctx.state.sweep_real.clone()) {
                    self.start(ctx, c.clone(), PathBuf::from(real));
                }
            }
        });
    }

    fn start(&mut self, ctx: &mut PaneCtx<'_>, components: Arc<Components>, real: PathBuf) {
        let nc = components.num_components();
        let cfg = SweepConfig {
            class: ctx.state.class,
            per_setting: ctx.state.sweep_per_setting,
            truncations: vec![0.125, 0.25, 0.5, 0.75, 1.0],
            top_ks: [1, 5, 10, 20, 40, 60, 80].into_iter().filter(|k| *k <= nc).collect(),
            scales: vec![0.1, 0.25, 0.5, 0.75, 1.0, 1.3],
            base: (1.0, 60.min(nc), 1.0),
            components_per_sample: 5,
            seed: 0,
            variant: crate::explain::bound::Variant::Nn,
        };
        let req = JobRequest::Sweep {
            model: ctx.state.model.clone(),
            components,
            classifier: ctx.state.explain.slots[0].classifier.clone(),
            real,
            cfg,
        };
        self.job = Some(req.name());
        ctx.commands.push(Command::Start(req));
    }

    /// The curves, in a window, best point of each marked.
    pub fn window(&mut self, ctx: &egui::Context, capture_dir: Option<&str>, commands: &mut Commands) {
        let Some(points) = &self.points else { return };
        let mut open = true;
        egui::Window::new("Intervention strategy: log P(x|z)").open(&mut open).default_size([760.0, 300.0]).show(
            ctx,
            |ui| {
                let best = sweep::best_per_knob(points);
                ui.horizontal(|ui| {
                    for (knob, name) in
                        [(Knob::Truncation, "truncation t"), (Knob::TopK, "top-k components"), (Knob::Scale, "scale s")]
                    {
                        let x = |p: &SweepPoint| match knob {
                            Knob::Truncation => p.truncation,
                            Knob::TopK => p.top_k as f64,
                            Knob::Scale => p.scale,
                        };
                        let curve: Vec<[f64; 2]> =
                            points.iter().filter(|p| p.knob == knob).map(|p| [x(p), p.estimate]).collect();
                        let marks: Vec<[f64; 2]> =
                            best.iter().filter(|p| p.knob == knob).map(|p| [x(p), p.estimate]).collect();
                        ui.vertical(|ui| {
                            ui.label(name);
                            Plot::new(name).width(240.0).height(200.0).allow_scroll(false).show(ui, |p| {
                                p.line(Line::new(name, PlotPoints::from(curve)));
                                p.points(Points::new("best", PlotPoints::from(marks)).radius(5.0));
                            });
                        });
                    }
                });
                for b in &best {
                    ui.label(format!(
                        "best {:?}: t={} k={} s={}: {:.4}",
                        b.knob, b.truncation, b.top_k, b.scale, b.estimate
                    ));
                }
                if ui.button("Save CSV").clicked() {
                    let dir = capture_dir.map(PathBuf::from).unwrap_or_else(crate::ui::capture::default_dir);
                    let path = dir.join("sweep.csv");
                    let csv = sweep::to_csv(points);
                    match std::fs::create_dir_all(&dir)
                        .map_err(anyhow::Error::from)
                        .and_then(|()| crate::imageio::write_atomically(&path, |t| Ok(std::fs::write(t, &csv)?)))
                    {
                        Ok(()) => commands.status(format!("wrote {}", path.display())),
                        Err(e) => commands.error(format!("cannot write {}", path.display()), format!("{e:#}")),
                    }
                }
            },
        );
        if !open {
            self.points = None;
        }
    }
}
