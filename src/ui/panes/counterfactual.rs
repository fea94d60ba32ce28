//! The counterfactual (CGN) pane: class pickers with lock and per-mechanism interpolation, seed,
//! mask shaping (re-composited on the GPU, no network run), the four views, the interpolation
//! sheet and the counterfactual export — both as jobs on the board.

use std::path::PathBuf;

use eframe::egui_wgpu;

use super::{job_progress_ui, paint_texture, PaneCtx};
use crate::composite::View;
use crate::counterfactual::{CgnRendered, CgnRenderer, CgnRequest, MECHANISMS};
use crate::jobs::{Board, Outcome};
use crate::ui::command::{Command, Commands, DialogKind};
use crate::ui::gpu_compose::ComposeCallback;
use crate::ui::job_requests::JobRequest;
use crate::ui::worker::Worker;
use crate::ui::StudioState;

/// The CGN render's error prefix (a later frame clears only this error).
const CGN_RENDER_FAILED: &str = "CGN render failed";

/// The counterfactual pane.
pub struct CounterfactualPane {
    worker: Option<Worker<CgnRequest, CgnRendered>>,
    last_request: Option<CgnRequest>,
    shown_id: u64,
    shown: Option<CgnRendered>,
    /// Bumped with every new set of parts (the GPU re-uploads its textures then).
    version: u64,
    cpu_textures: Vec<egui::TextureHandle>,
    /// Where each view was drawn last frame (mask, foreground, background, composite).
    pub view_rects: [egui::Rect; 4],
    export_job: Option<String>,
    sheet_job: Option<String>,
}

impl CounterfactualPane {
    pub fn new(ctx: &egui::Context, commands: &mut Commands) -> Self {
        let mut renderer = CgnRenderer::default();
        let repaint = ctx.clone();
        let worker =
            match Worker::spawn("intervene-cgn", move |req| renderer.render(req), move || repaint.request_repaint()) {
                Ok(w) => Some(w),
                Err(e) => {
                    commands.error("cannot start the CGN render thread", e);
                    None
                }
            };
        Self {
            worker,
            last_request: None,
            shown_id: 0,
            shown: None,
            version: 0,
            cpu_textures: Vec::new(),
            view_rects: [egui::Rect::NOTHING; 4],
            export_job: None,
            sheet_job: None,
        }
    }

    /// The parts on screen.
    pub fn shown(&self) -> Option<&CgnRendered> {
        self.shown.as_ref()
    }

    pub fn busy(&self, board: &Board) -> bool {
        self.worker.as_ref().is_some_and(|w| w.busy(self.shown_id))
            || [&self.export_job, &self.sheet_job].iter().any(|j| j.as_deref().is_some_and(|n| board.is_active(n)))
    }

    /// Whether the export runs.
    pub fn export_running(&self, board: &Board) -> bool {
        self.export_job.as_deref().is_some_and(|n| board.is_active(n))
    }

    pub fn request(state: &StudioState) -> CgnRequest {
        let c = &state.cgn;
        let mut classes = c.classes;
        if c.lock {
            classes[1] = classes[0];
            classes[2] = classes[0];
        }
        CgnRequest { model: c.model.clone(), classes, seed: c.seed, truncation: c.truncation }
    }

    pub fn logic(&mut self, state: &StudioState, board: &mut Board, commands: &mut Commands) -> Option<f64> {
        self.cpu_textures.clear();
        let mut render_ms = None;
        if let Some(done) = self.worker.as_ref().and_then(|w| w.poll()) {
            self.shown_id = done.id;
            render_ms = Some(done.elapsed.as_secs_f64() * 1e3);
            match done.result {
                Ok(r) => {
                    self.version += 1;
                    self.shown = Some(r);
                    commands.push(Command::ClearError { what: CGN_RENDER_FAILED });
                }
                Err(e) => commands.error(CGN_RENDER_FAILED, format!("{e:#}")),
            }
        }
        if let Some(name) = self.export_job.clone().filter(|n| !board.is_active(n)) {
            self.export_job = None;
            match board.take::<String>(&name) {
                Some(Outcome::Done(msg)) => commands.status(msg),
                Some(Outcome::Cancelled) => commands.status("export cancelled; starting it again resumes it"),
                Some(Outcome::Failed(e)) => commands.error("export failed", format!("{e:#}")),
                None => {}
            }
        }
        if let Some(name) = self.sheet_job.clone().filter(|n| !board.is_active(n)) {
            self.sheet_job = None;
            match board.take::<PathBuf>(&name) {
                Some(Outcome::Done(p)) => commands.status(format!("saved {}", p.display())),
                Some(Outcome::Cancelled) => {}
                Some(Outcome::Failed(e)) => commands.error("sheet failed", format!("{e:#}")),
                None => {}
            }
        }
        let req = Self::request(state);
        if self.last_request.as_ref() != Some(&req) {
            if let Some(w) = &mut self.worker {
                w.request(req.clone());
            }
            self.last_request = Some(req);
        }
        render_ms
    }

    /// The left panel: model, classes, seed, mask shaping.
    pub fn controls_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PaneCtx<'_>) {
        let c = &mut ctx.state.cgn;
        ui.heading("Counterfactual (CGN)");
        ui.horizontal(|ui| {
            let l = ui.label("CGN");
            ui.add(egui::TextEdit::singleline(&mut c.model).desired_width(170.0)).labelled_by(l.id);
            if ui.button("Open…").on_hover_text("open a CGN checkpoint (MNIST or ImageNet)").clicked() {
                ctx.commands.push(Command::OpenDialog(DialogKind::CgnModel));
            }
        });
        if let Some(r) = &self.shown {
            ui.small(format!("{} · {} classes · {}×{}", r.kind, r.num_classes, r.parts.width, r.parts.height));
            if let Some(m) = &r.masks {
                masks_ui(ui, m, c.classes[0].class);
            }
        }
        let n = self.shown.as_ref().map_or(10, |r| r.num_classes);
        ui.checkbox(&mut c.lock, "Lock to one class (the shape's)");
        ui.separator();
        for (k, name) in MECHANISMS.iter().enumerate() {
            if c.lock && k > 0 {
                continue;
            }
            let m = &mut c.classes[k];
            ui.label(format!("{name} class"));
            ui.horizontal(|ui| {
                ui.add(egui::DragValue::new(&mut m.class).range(0..=n - 1).prefix(format!("{name} ")));
                ui.label("to");
                ui.add(egui::DragValue::new(&mut m.other).range(0..=n - 1).prefix("to "));
            });
            ui.add(egui::Slider::new(&mut m.alpha, 0.0..=1.0).text(format!("{name} interpolation")));
            if n == 1000 {
                let names = |i: usize| crate::classes::imagenet().get(i).map_or("?", |c| c.name()).to_string();
                ui.small(format!("{} to {}", names(m.class), names(m.other)));
            }
        }
        ui.separator();
        ui.horizontal(|ui| {
            let l = ui.label("Seed");
            if ui.button("Prev seed").clicked() {
                c.seed = c.seed.saturating_sub(1);
            }
            ui.add(egui::DragValue::new(&mut c.seed)).labelled_by(l.id);
            if ui.button("Next seed").clicked() {
                c.seed += 1;
            }
        });
        if self.shown.as_ref().is_some_and(|r| r.kind == "ImageNet CGN") {
            ui.add(egui::Slider::new(&mut c.truncation, 0.02..=1.0).text("Truncation"));
        }
        ui.separator();
        ui.label("Mask (re-composited on the GPU, no network run)");
        ui.add(egui::Slider::new(&mut c.mask.softness, 0.01..=1.0).text("Mask softness"));
        ui.add(egui::Slider::new(&mut c.mask.threshold, 0.0..=1.0).text("Mask threshold"));
        if ui.button("Neutral mask").clicked() {
            c.mask = Default::default();
        }
    }

    /// The right panel: export and interpolation sheet.
    pub fn jobs_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PaneCtx<'_>) {
        ui.heading("Export");
        let c = &mut ctx.state.cgn;
        ui.add(egui::DragValue::new(&mut c.export_n).range(1..=100_000_000).prefix("images "));
        ui.add(egui::DragValue::new(&mut c.export_k).range(1..=1000).prefix("counterfactuals per shape "));
        let dir = c
            .export_dir
            .clone()
            .unwrap_or_else(|| crate::ui::capture::default_dir().join("cgn-export").display().to_string());
        ui.horizontal(|ui| {
            ui.small(format!("to {dir}"));
            if ui.small_button("Folder…").clicked() {
                ctx.commands.push(Command::OpenDialog(DialogKind::CgnExportDir));
            }
        });
        let running = self.export_job.as_deref().is_some_and(|n| ctx.board.is_active(n));
        if running {
            if let Some(name) = self.export_job.clone() {
                job_progress_ui(ui, ctx, &name, "Cancel export");
            }
        } else if ui
            .button("Export counterfactuals")
            .on_hover_text("authors' procedure; resumes if the folder holds the same export")
            .clicked()
        {
            let settings = crate::jobs::cgn_export::Settings {
                model: c.model.clone(),
                n: c.export_n,
                cf_per_shape: c.export_k,
                seed: c.seed,
                layout: crate::jobs::cgn_export::Layout::Cgn,
                truncation: c.truncation,
                format_version: 1,
            };
            let req = JobRequest::CgnExport { settings, out: PathBuf::from(&dir) };
            self.export_job = Some(req.name());
            ctx.commands.push(Command::Start(req));
        }
        ui.separator();
        ui.heading("Interpolation sheet");
        ui.label("Rows: shape, texture, background, each from its class to its 'to' class.");
        let sheet_running = self.sheet_job.as_deref().is_some_and(|n| ctx.board.is_active(n));
        if sheet_running {
            ui.spinner();
        } else if ui.button("Save interpolation sheet").clicked() {
            let request = Self::request(ctx.state);
            let dir = ctx.state.capture_dir.clone().map(PathBuf::from).unwrap_or_else(crate::ui::capture::default_dir);
            let out = dir.join(format!("cgn-sheet-seed{}.png", request.seed));
            let req = JobRequest::CgnSheet { request, shape: ctx.state.cgn.mask, out };
            self.sheet_job = Some(req.name());
            ctx.commands.push(Command::Start(req));
        }
    }

    /// The four views; composited on the GPU when wgpu is available, else from the CPU path.
    pub fn views_ui(&mut self, ui: &mut egui::Ui, ctx: &PaneCtx<'_>) {
        let Some(r) = &self.shown else {
            ui.spinner();
            return;
        };
        let views = [
            (View::Mask, "mask"),
            (View::Foreground, "foreground"),
            (View::Background, "background"),
            (View::Composite, "composite"),
        ];
        let mask = ctx.state.cgn.mask;
        let side = ((ui.available_width() - 40.0) / 2.0).min((ui.available_height() - 60.0) / 2.0).max(64.0);
        egui::Grid::new("cgn views").show(ui, |ui| {
            for (i, (view, name)) in views.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.label(*name);
                    let (rect, _) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
                    self.view_rects[*view as usize] = rect;
                    if ctx.gpu {
                        let cb =
                            ComposeCallback { parts: r.parts.clone(), version: self.version, shape: mask, view: *view };
                        ui.painter().add(egui_wgpu::Callback::new_paint_callback(rect, cb));
                    } else {
                        let img = r.parts.render(*view, mask);
                        let color = egui::ColorImage::from_rgb([img.width, img.height], &img.pixels);
                        let tex = ui.ctx().load_texture(format!("cgn-{name}"), color, egui::TextureOptions::NEAREST);
                        paint_texture(ui, &tex, rect);
                        self.cpu_textures.push(tex);
                    }
                });
                if i % 2 == 1 {
                    ui.end_row();
                }
            }
        });
    }
}

/// The recorded mask check of the open CGN, and a warning when the shape class's mask is
/// inverted or does not draw the digit (its counterfactuals then swap the wrong parts, or carry
/// little of the class's shape).
fn masks_ui(ui: &mut egui::Ui, m: &crate::train::mask_check::MaskReport, shape_class: usize) {
    use crate::train::mask_check::Orientation;
    ui.small(format!("Masks: {}", m.summary())).on_hover_text(
        "The mask check recorded with this CGN (intervene quality masks): per class, the mask's mean on the \
         4-pixel frame MNIST leaves empty (inverted = the background mechanism draws the digit, the CGN \
         study's faulty masks, its §4.1), and the shape score: the share of the class's masks an MNIST \
         digit classifier reads as the class (the authors' CGNs score 78-90 %).",
    );
    let Some(c) = m.classes.get(shape_class) else { return };
    let warning = if c.orientation == Orientation::Inverted {
        Some(format!("Class {shape_class}'s mask is inverted in this CGN: its counterfactuals swap the wrong parts."))
    } else {
        c.shape.filter(|&s| s < crate::train::mask_check::SHAPE_BELOW).map(|s| {
            format!(
                "Class {shape_class}'s mask reads as a {shape_class} only {:.0} % of the time: its counterfactuals carry little of the digit's shape.",
                100.0 * s
            )
        })
    };
    if let Some(w) = warning {
        ui.colored_label(ui.visuals().warn_fg_color, w);
    }
}
