//! The launcher's training form: `intervene train classifier` with the GenInt objective
//! (original + λ1·intervened + λ2·transferred), on the architecture's default recipe.

use std::path::PathBuf;

use crate::train::nets::TrainArch;
use crate::train::{Extra, TrainSettings};
use crate::ui::command::Command;
use crate::ui::job_requests::JobRequest;

/// One optional extra stream of the objective.
#[derive(Debug, Clone)]
pub struct ExtraForm {
    pub on: bool,
    pub dir: String,
    pub lambda: f64,
    pub batch: usize,
}

impl Default for ExtraForm {
    fn default() -> Self {
        Self { on: false, dir: String::new(), lambda: 1.0, batch: 64 }
    }
}

impl ExtraForm {
    fn extra(&self) -> Option<Extra> {
        (self.on && !self.dir.trim().is_empty()).then(|| Extra {
            dir: PathBuf::from(self.dir.trim()),
            lambda: self.lambda,
            batch: self.batch.max(1),
        })
    }

    fn ui(&mut self, ui: &mut egui::Ui, label: &str, lambda: &str) {
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.on, label);
            ui.add_enabled_ui(self.on, |ui| {
                ui.add(egui::TextEdit::singleline(&mut self.dir).hint_text("class folders").desired_width(170.0));
                ui.label(lambda);
                ui.add(egui::DragValue::new(&mut self.lambda).range(0.0..=100.0).speed(0.05));
                ui.label("batch");
                ui.add(egui::DragValue::new(&mut self.batch).range(1..=4096));
            });
        });
    }
}

/// `intervene train classifier`'s settings.
#[derive(Debug, Clone)]
pub struct TrainForm {
    pub arch: TrainArch,
    pub data: String,
    pub intervened: ExtraForm,
    pub transferred: ExtraForm,
    pub eval: String,
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
    pub out: String,
    pub resume: bool,
}

impl Default for TrainForm {
    fn default() -> Self {
        Self {
            arch: TrainArch::MnistCnn,
            data: String::new(),
            intervened: ExtraForm::default(),
            transferred: ExtraForm::default(),
            eval: String::new(),
            epochs: 10,
            batch: 64,
            seed: 0,
            out: "trained-classifier".into(),
            resume: true,
        }
    }
}

impl TrainForm {
    /// The settings: the architecture's recipe with this form's data, objective and sizes.
    pub fn settings(&self) -> Result<TrainSettings, String> {
        if self.data.trim().is_empty() || self.out.trim().is_empty() {
            return Err("training data and an output folder are needed".into());
        }
        let mut s = TrainSettings::recipe(self.arch, PathBuf::from(self.data.trim()));
        s.intervened = self.intervened.extra();
        s.transferred = self.transferred.extra();
        s.eval = self.eval.split(',').map(str::trim).filter(|e| !e.is_empty()).map(PathBuf::from).collect();
        s.epochs = self.epochs.max(1);
        s.batch = self.batch.max(1);
        s.seed = self.seed;
        // One compute thread: the other core keeps the window and its renderers responsive.
        s.threads = 1;
        s.validate().map_err(|e| format!("{e:#}"))?;
        Ok(s)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<Result<Command, String>> {
        ui.horizontal(|ui| {
            ui.label("Architecture");
            for a in [TrainArch::MnistCnn, TrainArch::ResNet18, TrainArch::ResNet50, TrainArch::MobileNetV2] {
                ui.selectable_value(&mut self.arch, a, a.to_string());
            }
        });
        ui.horizontal(|ui| {
            ui.label("Data");
            ui.add(
                egui::TextEdit::singleline(&mut self.data)
                    .hint_text("original images, class folders")
                    .desired_width(260.0),
            );
        });
        self.intervened.ui(ui, "intervened", "λ1");
        self.transferred.ui(ui, "transferred", "λ2");
        ui.horizontal(|ui| {
            ui.label("Evaluate on");
            ui.add(
                egui::TextEdit::singleline(&mut self.eval)
                    .hint_text("test folders, comma-separated")
                    .desired_width(230.0),
            );
        });
        ui.horizontal(|ui| {
            ui.label("epochs");
            ui.add(egui::DragValue::new(&mut self.epochs).range(1..=1000));
            ui.label("batch");
            ui.add(egui::DragValue::new(&mut self.batch).range(1..=4096));
            ui.label("seed");
            ui.add(egui::DragValue::new(&mut self.seed));
            ui.checkbox(&mut self.resume, "resume");
        });
        ui.horizontal(|ui| {
            ui.label("Output");
            ui.add(egui::TextEdit::singleline(&mut self.out).hint_text("run folder").desired_width(260.0));
        });
        ui.small("The architecture's recipe (the CGN paper's for the MNIST CNN: Adadelta 1.0, ×0.7 per epoch); the CLI offers every setting.");
        ui.button("Start training").clicked().then(|| {
            self.settings().map(|s| {
                Command::Start(JobRequest::TrainClassifier {
                    settings: Box::new(s),
                    out: PathBuf::from(self.out.trim()),
                    resume: self.resume,
                })
            })
        })
    }
}
