//! Panels of the counterfactual mode: class pickers, seed, mask shaping, the four views, the
//! interpolation sheet and the export job.

use std::path::PathBuf;

use eframe::egui_wgpu;

use super::app::StudioApp;
use super::cgn_mode::{interpolation_sheet, CgnRenderer, CgnRequest, ExportJob, MECHANISMS};
use super::gpu_compose::ComposeCallback;
use crate::composite::View;

impl StudioApp {
    pub(super) fn cgn_request(&self) -> CgnRequest {
        let c = &self.state.cgn;
        let mut classes = c.classes;
        if c.lock {
            classes[1] = classes[0];
            classes[2] = classes[0];
        }
        CgnRequest { model: c.model.clone(), classes, seed: c.seed, truncation: c.truncation }
    }

    pub(super) fn cgn_controls_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Counterfactual (CGN)");
        ui.horizontal(|ui| {
            let l = ui.label("CGN");
            ui.add(egui::TextEdit::singleline(&mut self.state.cgn.model).desired_width(170.0)).labelled_by(l.id);
        });
        if let Some(r) = &self.cgn_shown {
            ui.small(format!("{} · {} classes · {}×{}", r.kind, r.num_classes, r.parts.width, r.parts.height));
        }
        let n = self.cgn_shown.as_ref().map_or(10, |r| r.num_classes);
        ui.checkbox(&mut self.state.cgn.lock, "Lock to one class (the shape's)");
        ui.separator();
        for (k, name) in MECHANISMS.iter().enumerate() {
            if self.state.cgn.lock && k > 0 {
                continue;
            }
            let c = &mut self.state.cgn.classes[k];
            ui.label(format!("{name} class"));
            ui.horizontal(|ui| {
                ui.add(egui::DragValue::new(&mut c.class).range(0..=n - 1).prefix(format!("{name} ")));
                ui.label("to");
                ui.add(egui::DragValue::new(&mut c.other).range(0..=n - 1).prefix("to "));
            });
            ui.add(egui::Slider::new(&mut c.alpha, 0.0..=1.0).text(format!("{name} interpolation")));
            if n == 1000 {
                let names = |i: usize| crate::classes::imagenet().get(i).map_or("?", |c| c.name()).to_string();
                ui.small(format!("{} to {}", names(c.class), names(c.other)));
            }
        }
        ui.separator();
        ui.horizontal(|ui| {
            let l = ui.label("Seed");
            if ui.button("Prev seed").clicked() {
                self.state.cgn.seed = self.state.cgn.seed.saturating_sub(1);
            }
            ui.add(egui::DragValue::new(&mut self.state.cgn.seed)).labelled_by(l.id);
            if ui.button("Next seed").clicked() {
                self.state.cgn.seed += 1;
            }
        });
        if self.cgn_shown.as_ref().is_some_and(|r| r.kind == "ImageNet CGN") {
            ui.add(egui::Slider::new(&mut self.state.cgn.truncation, 0.02..=1.0).text("Truncation"));
        }
        ui.separator();
        ui.label("Mask (re-composited on the GPU, no network run)");
        ui.add(egui::Slider::new(&mut self.state.cgn.mask.softness, 0.01..=1.0).text("Mask softness"));
        ui.add(egui::Slider::new(&mut self.state.cgn.mask.threshold, 0.0..=1.0).text("Mask threshold"));
        if ui.button("Neutral mask").clicked() {
            self.state.cgn.mask = Default::default();
        }
    }

    pub(super) fn cgn_jobs_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Export");
        ui.add(egui::DragValue::new(&mut self.state.cgn.export_n).range(1..=100_000_000).prefix("images "));
        ui.add(egui::DragValue::new(&mut self.state.cgn.export_k).range(1..=1000).prefix("counterfactuals per shape "));
        let dir = self
            .state
            .cgn
            .export_dir
            .clone()
            .unwrap_or_else(|| super::capture::default_dir().join("cgn-export").display().to_string());
        ui.small(format!("to {dir}"));
        match &self.export_job {
            None => {
                if ui
                    .button("Export counterfactuals")
                    .on_hover_text("authors' procedure; resumes if the folder holds the same export")
                    .clicked()
                {
                    let c = &self.state.cgn;
                    self.export_job = Some(ExportJob::start(
                        c.model.clone(),
                        c.export_n,
                        c.export_k,
                        c.seed,
                        c.truncation,
                        PathBuf::from(&dir),
                    ));
                }
            }
            Some(job) => {
                let mut cancel = false;
                ui.horizontal(|ui| {
                    ui.add(egui::ProgressBar::new(job.control.fraction()).show_percentage().desired_width(160.0));
                    cancel = ui.button("Cancel export").clicked();
                });
                ui.small(format!("{:.1} images/s", job.control.rate()));
                if cancel {
                    job.control.cancel();
                }
            }
        }
        ui.separator();
        ui.heading("Interpolation sheet");
        ui.label("Rows: shape, texture, background, each from its class to its 'to' class.");
        if self.sheet.is_none() && ui.button("Save interpolation sheet").clicked() {
            let req = self.cgn_request();
            let shape = self.state.cgn.mask;
            let dir = self.state.capture_dir.clone().map(PathBuf::from).unwrap_or_else(super::capture::default_dir);
            let out = dir.join(format!("cgn-sheet-seed{}.png", req.seed));
            self.sheet = Some(poll_promise::Promise::spawn_thread("intervene-sheet", move || {
                let mut r = CgnRenderer::default();
                interpolation_sheet(&mut r, &req, shape, 8, &out).map(|()| out).map_err(|e| format!("{e:#}"))
            }));
        }
        if self.sheet.is_some() {
            ui.spinner();
        }
    }

    pub(super) fn poll_cgn_jobs(&mut self) {
        if let Some(job) = self.export_job.take_if(|j| j.result.ready().is_some()) {
            match job.result.block_and_take() {
                Ok(msg) => self.status = Some(msg),
                Err(e) => self.report_error("export failed", e),
            }
        }
        if let Some(p) = self.sheet.take_if(|p| p.ready().is_some()) {
            match p.block_and_take() {
                Ok(path) => self.status = Some(format!("saved {}", path.display())),
                Err(e) => self.report_error("sheet failed", e),
            }
        }
    }

    /// The four views; composited on the GPU when wgpu is available, else from the CPU path.
    pub(super) fn cgn_views_ui(&mut self, ui: &mut egui::Ui) {
        let Some(r) = &self.cgn_shown else {
            ui.spinner();
            return;
        };
        let views = [
            (View::Mask, "mask"),
            (View::Foreground, "foreground"),
            (View::Background, "background"),
            (View::Composite, "composite"),
        ];
        let side = ((ui.available_width() - 40.0) / 2.0).min((ui.available_height() - 60.0) / 2.0).max(64.0);
        egui::Grid::new("cgn views").show(ui, |ui| {
            for (i, (view, name)) in views.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.label(*name);
                    let (rect, _) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
                    self.cgn_view_rects[*view as usize] = rect;
                    if self.gpu_compose {
                        let cb = ComposeCallback {
                            parts: r.parts.clone(),
                            version: self.cgn_version,
                            shape: self.state.cgn.mask,
                            view: *view,
                        };
                        ui.painter().add(egui_wgpu::Callback::new_paint_callback(rect, cb));
                    } else {
                        let img = r.parts.render(*view, self.state.cgn.mask);
                        let color = egui::ColorImage::from_rgb([img.width, img.height], &img.pixels);
                        let tex = ui.ctx().load_texture(format!("cgn-{name}"), color, egui::TextureOptions::NEAREST);
                        ui.painter().image(
                            tex.id(),
                            rect,
                            egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                            egui::Color32::WHITE,
                        );
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
