//! The menu bar: models (folder, file, bundled, recent), components, captures, view toggles.

use super::app::StudioApp;
use super::command::{Command, DialogKind};

impl StudioApp {
    /// Every model of `models/index.json`, by kind; one click opens it where it belongs.
    fn bundled_menu_ui(&mut self, ui: &mut egui::Ui) {
        use crate::bundled::{index, Kind};
        let idx = index();
        if idx.is_empty() {
            ui.label("(models/index.json is missing)");
        }
        for (kind, heading) in [
            (Kind::Biggan, "Generators (BigGAN-deep)"),
            (Kind::Cgn, "Counterfactual generators (CGN)"),
            (Kind::Cvae, "Conditional VAEs"),
            (Kind::Classifier, "Classifiers (Explain)"),
        ] {
            let of_kind: Vec<_> = idx.iter().filter(|e| e.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            ui.label(egui::RichText::new(heading).strong());
            for e in of_kind {
                let label = if e.testing { format!("{} (test)", e.name) } else { e.name.clone() };
                if ui.button(label).on_hover_text(format!("{} · {}", e.summary, e.dataset)).clicked() {
                    self.open_bundled(e);
                    ui.close();
                }
            }
        }
    }

    /// Opens a bundled model: generators in their mode with their components and matching
    /// classifier, classifiers in the Explain pane.
    pub fn open_bundled(&mut self, e: &crate::bundled::Entry) {
        use crate::bundled::Kind;
        match e.kind {
            Kind::Biggan => {
                self.state.open_bundled_biggan(e);
                if let Some(p) = e.components_path() {
                    self.send(Command::Open(DialogKind::Components, p));
                }
            }
            Kind::Cgn => self.state.open_bundled_cgn(e),
            Kind::Classifier => {
                self.state.explain.enabled = true;
                self.state.explain.slots[0].classifier = e.name.clone();
            }
            // A CVAE has no live view: it opens the Jobs pane's form that writes its sets.
            Kind::Cvae => self.send(Command::PrepareCvaeExport { model: e.name.clone() }),
        }
    }

    /// The models `intervene fetch` knows: open those on disk, get the others as a job (the
    /// studio opens each when its download is verified).
    fn fetch_menu_ui(&mut self, ui: &mut egui::Ui) {
        let dir = crate::fetch::default_dir();
        ui.label(format!("in {}", dir.display()));
        for s in crate::fetch::list(&dir) {
            let name = s.model.name;
            let clicked = match &s.path {
                Some(p) => ui.button(format!("Open {name}")).on_hover_text(p.display().to_string()).clicked(),
                None => ui
                    .button(format!("Get {name}"))
                    .on_hover_text(format!("{} (not on disk; downloads in the Jobs pane)", s.model.what))
                    .clicked(),
            };
            if clicked {
                match s.path {
                    Some(p) => self.send(Command::Open(DialogKind::ModelFolder, p)),
                    None => {
                        self.state.show_perf = true;
                        self.state.bottom_tab = super::app::BottomTab::Jobs;
                        self.send(Command::Start(super::job_requests::JobRequest::Fetch {
                            name: name.to_string(),
                            to: dir.clone(),
                            from: None,
                        }));
                    }
                }
                ui.close();
            }
        }
    }

    pub(super) fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open model folder…").clicked() {
                    self.send(Command::OpenDialog(DialogKind::ModelFolder));
                }
                if ui.button("Open weights file…").clicked() {
                    self.send(Command::OpenDialog(DialogKind::ModelFile));
                }
                ui.menu_button("Bundled models", |ui| self.bundled_menu_ui(ui));
                ui.menu_button("Real weights (download)", |ui| self.fetch_menu_ui(ui));
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
