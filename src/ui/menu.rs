//! The menu bar: models (folder, file, bundled, recent), components, captures, view toggles.

use super::app::StudioApp;
use super::command::{Command, DialogKind};

impl StudioApp {
    pub(super) fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open model folder…").clicked() {
                    self.send(Command::OpenDialog(DialogKind::ModelFolder));
                }
                if ui.button("Open weights file…").clicked() {
                    self.send(Command::OpenDialog(DialogKind::ModelFile));
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
                            self.state.cgn_mode = false;
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
                    self.send(Command::OpenDialog(DialogKind::Components));
                }
                ui.separator();
                if ui
                    .button("Capture frame")
                    .on_hover_text("image/grid PNG, z.npy and a JSON with the CLI command")
                    .clicked()
                {
                    self.send(Command::Capture);
                }
                if ui.button("Save window screenshot").clicked() {
                    self.send(Command::CaptureWindow);
                }
                if ui.button("Capture folder…").clicked() {
                    self.send(Command::OpenDialog(DialogKind::CaptureDir));
                }
            });
            ui.menu_button("View", |ui| {
                ui.checkbox(&mut self.state.show_perf, "Bottom panel (performance, jobs, log)");
            });
            if let Some(s) = &self.notes.status {
                ui.separator();
                ui.label(s);
            }
        });
    }
}
