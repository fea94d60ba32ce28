//! The menu bar and the generator controls (model, class, seed, truncation, grid).

use super::app::{DialogKind, StudioApp};
use super::state::StudioState;

impl StudioApp {
    pub(super) fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open model folder…").clicked() {
                    self.open_dialog(DialogKind::ModelFolder);
                }
                if ui.button("Open weights file…").clicked() {
                    self.open_dialog(DialogKind::ModelFile);
                }
                ui.menu_button("Bundled models", |ui| {
                    let mut names: Vec<String> = std::fs::read_dir(crate::bundled_models_dir())
                        .map(|d| {
                            d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
                        })
                        .unwrap_or_default();
                    names.retain(|n| n.starts_with("biggan"));
                    names.sort();
                    if names.is_empty() {
                        names.push(crate::DEFAULT_BIGGAN.to_string());
                    }
                    for m in names {
                        if ui.button(&m).clicked() {
                            self.state.model = m;
                        }
                    }
                });
                ui.menu_button("Recent models", |ui| {
                    if self.state.recent_models.is_empty() {
                        ui.label("(none yet)");
                    }
                    for m in self.state.recent_models.clone() {
                        if ui.button(&m).clicked() {
                            self.state.model = m;
                        }
                    }
                });
                if ui.button("Open components (.npz)…").clicked() {
                    self.open_dialog(DialogKind::Components);
                }
                ui.separator();
                if ui
                    .button("Capture frame")
                    .on_hover_text("image/grid PNG, z.npy and a JSON with the CLI command")
                    .clicked()
                {
                    self.capture();
                }
                if ui.button("Save window screenshot").clicked() {
                    self.capture_window(ui.ctx());
                }
                if ui.button("Capture folder…").clicked() {
                    self.open_dialog(DialogKind::CaptureDir);
                }
            });
            ui.menu_button("View", |ui| {
                ui.checkbox(&mut self.state.show_perf, "Performance pane");
            });
            if let Some(s) = &self.status {
                ui.separator();
                ui.label(s);
            }
        });
    }

    pub(super) fn controls_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Generator");
        ui.horizontal(|ui| {
            let l = ui.label("Model");
            ui.add(egui::TextEdit::singleline(&mut self.state.model).desired_width(150.0)).labelled_by(l.id);
            if ui.button("Open…").on_hover_text("open a BigGAN-deep folder (config.json + weights)").clicked() {
                self.open_dialog(DialogKind::ModelFolder);
            }
        });
        if let Some(i) = &self.info {
            ui.small(format!(
                "{}×{} · {} classes · {:.2} M params · {} latent slots",
                i.resolution,
                i.resolution,
                i.num_classes,
                i.parameters as f64 / 1e6,
                i.num_latents
            ));
        }
        ui.separator();
        self.class_ui(ui);
        ui.separator();
        ui.horizontal(|ui| {
            let l = ui.label("Seed");
            if ui.button("Prev").on_hover_text("previous seed").clicked() {
                self.state.seed = self.state.seed.saturating_sub(1);
            }
            ui.add(egui::DragValue::new(&mut self.state.seed)).labelled_by(l.id);
            if ui.button("Next").on_hover_text("next seed").clicked() {
                self.state.seed += 1;
            }
            if ui.button("Random").on_hover_text("a random seed").clicked() {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
                self.state.seed = (crate::ui::fnv1a(&t.to_le_bytes()) % 1_000_000) as u64;
            }
        });
        ui.add(egui::Slider::new(&mut self.state.truncation, 0.02..=1.0).text("Truncation"));
        ui.checkbox(&mut self.state.snap_truncation, "Snap truncation to the 0.02 grid");
        if self.state.snap_truncation {
            self.state.truncation = StudioState::snapped(self.state.truncation);
        }
        self.state.truncation = self.state.truncation.clamp(1e-3, 1.0);
        ui.add(egui::Slider::new(&mut self.state.batch, 1..=9).text("Grid (consecutive seeds)"));
        ui.separator();
        self.explain_controls_ui(ui);
    }

    fn class_ui(&mut self, ui: &mut egui::Ui) {
        let n = self.info.as_ref().map_or(1000, |i| i.num_classes);
        ui.horizontal(|ui| {
            ui.label("Class");
            if n == 1000 {
                let name = crate::classes::imagenet().get(self.state.class).map_or("?", |c| c.name());
                ui.strong(format!("{} {}", self.state.class, name));
            } else {
                ui.strong(format!("{}", self.state.class));
            }
        });
        ui.horizontal(|ui| {
            let l = ui.label("Search");
            ui.add(
                egui::TextEdit::singleline(&mut self.state.class_query)
                    .hint_text("name, wnid or index")
                    .id_salt("class search"),
            )
            .labelled_by(l.id);
        });
        egui::ScrollArea::vertical().id_salt("classes").max_height(160.0).show(ui, |ui| {
            if n == 1000 {
                for c in crate::classes::search(&self.state.class_query, 50) {
                    if ui.selectable_label(self.state.class == c.index, format!("{} {}", c.index, c.name())).clicked() {
                        self.state.class = c.index;
                    }
                }
            } else {
                let q = self.state.class_query.trim();
                for i in (0..n).filter(|i| q.is_empty() || i.to_string().starts_with(q)).take(200) {
                    if ui.selectable_label(self.state.class == i, format!("class {i}")).clicked() {
                        self.state.class = i;
                    }
                }
            }
        });
        if self.state.class >= n {
            self.state.class = n - 1;
        }
    }
}
