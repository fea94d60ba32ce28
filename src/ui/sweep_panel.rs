//! The strategy sweep in the window: GenInt's Figure 6 for the open model, class and components,
//! with the Explain pane's first classifier, as a background job; three curves, best marked.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use egui_plot::{Line, Plot, PlotPoints, Points};
use poll_promise::Promise;

use super::app::{DialogKind, StudioApp};
use crate::explain::sweep::{self, Knob, SweepConfig, SweepPoint};

/// A running sweep.
pub struct SweepJob {
    pub cancel: Arc<AtomicBool>,
    pub done: Arc<AtomicUsize>,
    pub total: usize,
    pub result: Promise<Result<Vec<SweepPoint>, String>>,
}

impl StudioApp {
    pub(super) fn sweep_ui(&mut self, ui: &mut egui::Ui) {
        egui::CollapsingHeader::new("Strategy sweep, log P(x|z)").default_open(false).show(ui, |ui| {
            ui.label("GenInt Fig. 6: truncation, top-k components and offset scale of the interventions, scored against real images of this class with Explain's first classifier.");
            ui.horizontal(|ui| {
                let dir = self.state.sweep_real.clone().unwrap_or_else(|| "(choose)".into());
                ui.label(format!("real images: {dir}"));
                if ui.button("Real images…").clicked() {
                    self.open_dialog(DialogKind::RealDir);
                }
            });
            ui.add(egui::DragValue::new(&mut self.state.sweep_per_setting).range(2..=5000).prefix("images per setting "));
            match &self.sweep {
                Some(job) => {
                    let f = job.done.load(Ordering::Relaxed) as f32 / job.total.max(1) as f32;
                    let mut cancel = false;
                    ui.horizontal(|ui| {
                        ui.add(egui::ProgressBar::new(f).show_percentage().desired_width(160.0));
                        cancel = ui.button("Cancel sweep").clicked();
                    });
                    if cancel {
                        job.cancel.store(true, Ordering::Relaxed);
                    }
                }
                None => {
                    let ready = self.components.is_some() && self.state.sweep_real.is_some();
                    if ui.add_enabled(ready, egui::Button::new("Run sweep")).clicked() {
                        self.start_sweep();
                    }
                }
            }
        });
    }

    pub(super) fn start_sweep(&mut self) {
        let (Some(comps), Some(real)) = (self.components.clone(), self.state.sweep_real.clone()) else { return };
        let model = self.state.model.clone();
        let classifier = self.state.explain.slots[0].classifier.clone();
        let class = self.state.class;
        let k0 = 60.min(comps.num_components());
        let cfg = SweepConfig {
            class,
            per_setting: self.state.sweep_per_setting,
            truncations: vec![0.125, 0.25, 0.5, 0.75, 1.0],
            top_ks: [1, 5, 10, 20, 40, 60, 80].into_iter().filter(|k| *k <= comps.num_components()).collect(),
            scales: vec![0.1, 0.25, 0.5, 0.75, 1.0, 1.3],
            base: (1.0, k0, 1.0),
            components_per_sample: 5,
            seed: 0,
            variant: crate::explain::bound::Variant::Nn,
        };
        let total = cfg.settings().len();
        let (cancel, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (c2, d2) = (cancel.clone(), done.clone());
        let result = Promise::spawn_thread("intervene-sweep", move || {
            let run = || -> anyhow::Result<Vec<SweepPoint>> {
                let device = candle_core::Device::Cpu;
                let m = crate::models::biggan::load::load(&model, &device)?;
                let clf = crate::models::classifier::open(&classifier, None, &device)?;
                let files = crate::cli::bound::real_images(std::path::Path::new(&real), class, clf.num_classes)?;
                let (q, _) = crate::cli::bound::features(&clf, &files)?;
                sweep::run(&m, &comps, &clf, &q, &cfg, &c2, &mut |d, _| d2.store(d, Ordering::Relaxed))
            };
            run().map_err(|e| format!("{e:#}"))
        });
        self.sweep = Some(SweepJob { cancel, done, total, result });
    }

    pub(super) fn poll_sweep(&mut self) {
        if let Some(job) = self.sweep.take_if(|j| j.result.ready().is_some()) {
            match job.result.block_and_take() {
                Ok(points) => {
                    self.sweep_points = Some(points);
                    self.status = Some("sweep done".into());
                }
                Err(e) if e == "cancelled" => self.status = Some("sweep cancelled".into()),
                Err(e) => self.report_error("sweep failed", e),
            }
        }
    }

    /// The curves, in a window, best point of each marked.
    pub(super) fn sweep_window(&mut self, ctx: &egui::Context) {
        let Some(points) = &self.sweep_points else { return };
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
                    let dir =
                        self.state.capture_dir.clone().map(PathBuf::from).unwrap_or_else(super::capture::default_dir);
                    let path = dir.join("sweep.csv");
                    let csv = sweep::to_csv(points);
                    self.status = Some(
                        match std::fs::create_dir_all(&dir)
                            .map_err(anyhow::Error::from)
                            .and_then(|()| crate::imageio::write_atomically(&path, |t| Ok(std::fs::write(t, &csv)?)))
                        {
                            Ok(()) => format!("wrote {}", path.display()),
                            Err(e) => format!("cannot write {}: {e:#}", path.display()),
                        },
                    );
                }
            },
        );
        if !open {
            self.sweep_points = None;
        }
    }
}
