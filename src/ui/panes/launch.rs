//! The Jobs pane's launcher: a form per long job the command line also offers (GenInt export,
//! transfer, classifier training, model download). Each form only collects plain values and
//! sends a [`JobRequest`]; the job checks them and fails visibly in the Jobs pane when one is
//! wrong, with the same message as the command line.

use std::path::PathBuf;

use crate::jobs::cvae_export::{self, Arm, Interventions, SetSpec};
use crate::jobs::genint_export::{self, Layout};
use crate::jobs::image_sink::ImageFormat;
use crate::ui::command::{Command, Commands, DialogKind};
use crate::ui::job_requests::JobRequest;

/// Which form is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Form {
    #[default]
    GenintExport,
    CvaeExport,
    Transfer,
    Train,
    TrainGenerator,
    Fetch,
}

impl Form {
    const ALL: [Form; 6] =
        [Form::GenintExport, Form::CvaeExport, Form::Transfer, Form::Train, Form::TrainGenerator, Form::Fetch];

    fn label(self) -> &'static str {
        match self {
            Form::GenintExport => "GenInt export",
            Form::CvaeExport => "CVAE sets",
            Form::Transfer => "Transfer (AdaIN)",
            Form::Train => "Train classifier",
            Form::TrainGenerator => "Train generator",
            Form::Fetch => "Get real weights",
        }
    }
}

/// `intervene export genint`'s settings.
#[derive(Debug, Clone)]
pub struct ExportForm {
    pub model: String,
    pub components: String,
    pub classes: String,
    pub per_class: usize,
    pub top_k: usize,
    pub scale: f64,
    pub truncation: f64,
    pub seed: u64,
    pub observational: bool,
    pub webdataset: bool,
    pub jpg: bool,
    pub out: String,
    pub resume: bool,
}

impl Default for ExportForm {
    fn default() -> Self {
        Self {
            model: String::new(),
            components: String::new(),
            classes: "all".into(),
            per_class: 100,
            top_k: 60,
            scale: 1.0,
            truncation: 1.0,
            seed: 0,
            observational: false,
            webdataset: false,
            jpg: false,
            out: "genint-export".into(),
            resume: true,
        }
    }
}

impl ExportForm {
    /// The request; `None` (with a message) when a required field is empty.
    pub fn request(&self) -> Result<genint_export::Request, String> {
        let (model, out) = (self.model.trim(), self.out.trim());
        if model.is_empty() || out.is_empty() {
            return Err("a model and an output folder are needed".into());
        }
        let comps = self.components.trim();
        if !self.observational && comps.is_empty() {
            return Err("interventions need a components file (.npz), or tick observational".into());
        }
        let components = (!comps.is_empty()).then(|| PathBuf::from(comps));
        let mut r = genint_export::Request::new(model, components, &self.classes, self.per_class.max(1), out.into());
        r.settings.top_k = self.top_k.max(1);
        r.settings.scale = self.scale;
        r.settings.truncation = self.truncation;
        r.settings.seed = self.seed;
        r.settings.observational = self.observational;
        r.settings.layout = if self.webdataset { Layout::WebDataset } else { Layout::ImageFolder };
        r.settings.format = if self.jpg { ImageFormat::Jpg } else { ImageFormat::Png };
        r.resume = self.resume;
        Ok(r)
    }

    /// The equivalent command line (shown under the form, so a run can move to a cluster).
    pub fn command_line(&self) -> String {
        let mut s = format!(
            "intervene export genint --model {} --classes {} --per-class {} --topk {} --scale {} --truncation {} --seed {} --out {}",
            super::or_placeholder(&self.model, "MODEL"),
            self.classes,
            self.per_class,
            self.top_k,
            self.scale,
            self.truncation,
            self.seed,
            super::or_placeholder(&self.out, "DIR")
        );
        if self.observational {
            s += " --observational";
        } else {
            s += &format!(" --components {}", super::or_placeholder(&self.components, "COMPONENTS.npz"));
        }
        if self.webdataset {
            s += " --layout webdataset";
        }
        if self.jpg {
            s += " --format jpg";
        }
        if self.resume {
            s += " --resume";
        }
        s
    }
}

/// `intervene export cvae`'s settings.
#[derive(Debug, Clone)]
pub struct CvaeForm {
    pub model: String,
    pub observational: bool,
    pub interventional: bool,
    pub per_class: usize,
    /// false: the paper's PCA interventions; true: the reference code's quantile grid.
    pub grid: bool,
    pub scale: f64,
    pub grid_width: usize,
    pub stretch: bool,
    pub seed: u64,
    pub out: String,
}

impl Default for CvaeForm {
    fn default() -> Self {
        Self {
            model: crate::bundled::default_name(crate::bundled::Kind::Cvae, ""),
            observational: true,
            interventional: true,
            per_class: 2000,
            grid: false,
            scale: 3.0,
            grid_width: cvae_export::REFERENCE_GRID_WIDTH,
            stretch: false,
            seed: 1,
            out: "cvae-sets".into(),
        }
    }
}

impl CvaeForm {
    pub fn request(&self) -> Result<cvae_export::Request, String> {
        let out = self.out.trim();
        if self.model.trim().is_empty() || out.is_empty() {
            return Err("a CVAE and an output folder are needed".into());
        }
        let model = cvae_export::resolve_model(&self.model).map_err(|e| format!("{e:#}"))?;
        let arms: Vec<Arm> = [(self.observational, Arm::Observational), (self.interventional, Arm::Interventional)]
            .into_iter()
            .filter_map(|(on, arm)| on.then_some(arm))
            .collect();
        if arms.is_empty() {
            return Err("tick observational, interventional or both".into());
        }
        let like = SetSpec {
            interventions: if self.grid { Interventions::Grid } else { Interventions::Pca },
            grid_width: self.grid_width.max(1),
            stretch: self.stretch,
            ..SetSpec::paper(Arm::Interventional, self.per_class.max(1), self.scale, self.seed)
        };
        Ok(cvae_export::Request::new(model, out.into(), &arms, &like))
    }

    /// The equivalent command line.
    pub fn command_line(&self) -> String {
        let arm = match (self.observational, self.interventional) {
            (true, false) => "observational",
            (false, true) => "interventional",
            _ => "both",
        };
        let mut s = format!(
            "intervene export cvae --model {} --arm {arm} --per-class {} --seed {} --out {}",
            super::or_placeholder(&self.model, "MODEL"),
            self.per_class,
            self.seed,
            super::or_placeholder(&self.out, "DIR")
        );
        if self.grid {
            s += &format!(" --interventions grid --grid-width {}", self.grid_width);
        } else {
            s += &format!(" --scale {}", self.scale);
        }
        if self.stretch {
            s += " --stretch";
        }
        s
    }
}

/// `intervene export transfer`'s settings.
#[derive(Debug, Clone)]
pub struct TransferForm {
    pub content: String,
    pub style: String,
    pub out: String,
    pub alpha: f32,
    pub size: u32,
    pub seed: u64,
    pub weights: String,
    pub resume: bool,
}

impl Default for TransferForm {
    fn default() -> Self {
        Self {
            content: String::new(),
            style: "genint-export".into(),
            out: "genint-transfer".into(),
            alpha: 1.0,
            size: crate::jobs::transfer::DEFAULT_SIZE,
            seed: 0,
            weights: crate::data::data_dir().join("weights").display().to_string(),
            resume: true,
        }
    }
}

impl TransferForm {
    pub fn request(&self) -> Result<crate::jobs::transfer::Request, String> {
        if [&self.content, &self.style, &self.out].iter().any(|s| s.trim().is_empty()) {
            return Err("content, style and output folders are needed".into());
        }
        Ok(crate::jobs::transfer::Request {
            content: self.content.trim().into(),
            style: self.style.trim().into(),
            out: self.out.trim().into(),
            alpha: self.alpha,
            size: self.size,
            seed: self.seed,
            format: ImageFormat::Png,
            weights: self.weights.trim().into(),
            shard: crate::jobs::Shard::default(),
            resume: self.resume,
        })
    }
}

/// `intervene fetch`'s settings.
#[derive(Debug, Clone)]
pub struct FetchForm {
    pub name: String,
    pub to: String,
    /// A mirror URL or folder; empty = `$INTERVENE_MIRROR` or the release location.
    pub from: String,
}

impl Default for FetchForm {
    fn default() -> Self {
        Self {
            name: crate::fetch::KNOWN[0].name.to_string(),
            to: crate::fetch::default_dir().display().to_string(),
            from: String::new(),
        }
    }
}

/// The launcher's forms and which one is open.
#[derive(Debug, Default)]
pub struct Launcher {
    pub form: Form,
    pub export: ExportForm,
    pub cvae: CvaeForm,
    pub transfer: TransferForm,
    pub train: super::train_form::TrainForm,
    pub generator: super::gen_train_form::GenTrainForm,
    pub fetch: FetchForm,
    /// Why the last Start was refused before a job was made.
    message: Option<String>,
}

/// A labelled path field.
fn path_row(ui: &mut egui::Ui, label: &str, value: &mut String, hint: &str) {
    ui.horizontal(|ui| {
        ui.label(label);
        ui.add(egui::TextEdit::singleline(value).hint_text(hint).desired_width(260.0));
    });
}

impl Launcher {
    /// Prefills the export form with what the steering pane has open.
    pub fn prepare_export(&mut self, model: &str, components: Option<&str>, class: usize) {
        self.form = Form::GenintExport;
        self.export.model = model.to_string();
        match components {
            Some(c) => {
                self.export.components = c.to_string();
                self.export.observational = false;
            }
            None => self.export.observational = true,
        }
        self.export.classes = class.to_string();
    }

    /// Opens the CVAE form on `model`.
    pub fn prepare_cvae(&mut self, model: &str) {
        self.form = Form::CvaeExport;
        self.cvae.model = model.to_string();
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, commands: &mut Commands) {
        ui.horizontal_wrapped(|ui| {
            ui.label("New job:");
            for f in Form::ALL {
                ui.selectable_value(&mut self.form, f, f.label());
            }
        });
        let request = match self.form {
            Form::GenintExport => self.export_ui(ui),
            Form::CvaeExport => self.cvae_ui(ui),
            Form::Transfer => self.transfer_ui(ui),
            Form::Train => self.train.ui(ui),
            Form::TrainGenerator => self.generator.ui(ui),
            Form::Fetch => self.fetch_ui(ui),
        };
        if let Some(m) = &self.message {
            ui.colored_label(ui.visuals().warn_fg_color, m);
        }
        match request {
            Some(Ok(c)) => {
                self.message = None;
                commands.push(c);
            }
            Some(Err(m)) => self.message = Some(m),
            None => {}
        }
    }

    fn export_ui(&mut self, ui: &mut egui::Ui) -> Option<Result<Command, String>> {
        let f = &mut self.export;
        path_row(ui, "Model", &mut f.model, "name or folder (the steering pane's model)");
        ui.add_enabled_ui(!f.observational, |ui| path_row(ui, "Components", &mut f.components, "C.npz"));
        ui.horizontal(|ui| {
            ui.label("Classes");
            ui.add(
                egui::TextEdit::singleline(&mut f.classes).hint_text("all, or 1,207,n02110185").desired_width(120.0),
            );
            ui.label("per class");
            ui.add(egui::DragValue::new(&mut f.per_class).range(1..=1_000_000));
        });
        ui.horizontal(|ui| {
            ui.label("top k");
            ui.add(egui::DragValue::new(&mut f.top_k).range(1..=10_000));
            ui.label("scale");
            ui.add(egui::DragValue::new(&mut f.scale).range(0.01..=10.0).speed(0.01));
            ui.label("truncation");
            ui.add(egui::DragValue::new(&mut f.truncation).range(0.02..=1.0).speed(0.01));
            ui.label("seed");
            ui.add(egui::DragValue::new(&mut f.seed));
        });
        ui.horizontal(|ui| {
            ui.checkbox(&mut f.observational, "observational (no intervention)");
            ui.checkbox(&mut f.webdataset, "WebDataset shards");
            ui.checkbox(&mut f.jpg, "JPEG");
            ui.checkbox(&mut f.resume, "resume");
        });
        path_row(ui, "Output", &mut f.out, "folder");
        ui.small(f.command_line());
        ui.button("Start export").clicked().then(|| f.request().map(|r| Command::Start(JobRequest::GenintExport(r))))
    }

    fn cvae_ui(&mut self, ui: &mut egui::Ui) -> Option<Result<Command, String>> {
        let f = &mut self.cvae;
        path_row(ui, "CVAE", &mut f.model, "bundled name or folder (intervene train cvae --out)");
        ui.horizontal(|ui| {
            ui.checkbox(&mut f.observational, "observational (z from the prior)");
            ui.checkbox(&mut f.interventional, "interventional");
            ui.label("per digit");
            ui.add(egui::DragValue::new(&mut f.per_class).range(1..=1_000_000));
            ui.label("seed");
            ui.add(egui::DragValue::new(&mut f.seed));
        });
        ui.horizontal(|ui| {
            ui.radio_value(&mut f.grid, false, "PCA (paper)");
            ui.add_enabled(
                !f.grid,
                egui::DragValue::new(&mut f.scale).range(0.01..=20.0).speed(0.05).prefix("± ").suffix(" sd"),
            );
            ui.radio_value(&mut f.grid, true, "quantile grid (reference code)");
            ui.add_enabled(f.grid, egui::DragValue::new(&mut f.grid_width).range(1..=1000).suffix("²"));
            ui.checkbox(&mut f.stretch, "min–max stretch");
        });
        path_row(ui, "Output", &mut f.out, "folder");
        ui.small(f.command_line());
        ui.button("Start CVAE sets").clicked().then(|| f.request().map(|r| Command::Start(JobRequest::CvaeExport(r))))
    }

    fn transfer_ui(&mut self, ui: &mut egui::Ui) -> Option<Result<Command, String>> {
        let f = &mut self.transfer;
        path_row(ui, "Content", &mut f.content, "real images (class folders)");
        path_row(ui, "Style", &mut f.style, "intervened images (a GenInt export)");
        path_row(ui, "Output", &mut f.out, "folder");
        path_row(ui, "Weights", &mut f.weights, "folder with vgg_normalized.pth and decoder.pth");
        ui.horizontal(|ui| {
            ui.label("alpha");
            ui.add(egui::DragValue::new(&mut f.alpha).range(0.0..=1.0).speed(0.01));
            ui.label("size");
            ui.add(egui::DragValue::new(&mut f.size).range(64..=1024));
            ui.label("seed");
            ui.add(egui::DragValue::new(&mut f.seed));
            ui.checkbox(&mut f.resume, "resume");
        });
        ui.button("Start transfer").clicked().then(|| f.request().map(|r| Command::Start(JobRequest::Transfer(r))))
    }

    fn fetch_ui(&mut self, ui: &mut egui::Ui) -> Option<Result<Command, String>> {
        let f = &mut self.fetch;
        let on_disk = crate::fetch::list(std::path::Path::new(f.to.trim()));
        let mut get = None;
        for s in &on_disk {
            ui.horizontal(|ui| {
                match &s.path {
                    Some(_) => ui.label(format!("{} (on disk)", s.model.name)),
                    None => ui.label(format!("{} (not on disk)", s.model.name)),
                }
                .on_hover_text(s.model.what);
                let label = if s.path.is_some() { "Open" } else { "Get" };
                if ui.button(format!("{label} {}", s.model.name)).clicked() {
                    get = Some((s.model.name.to_string(), s.path.clone()));
                }
            });
        }
        path_row(ui, "Into", &mut f.to, "folder (default: the Python package's cache)");
        path_row(ui, "From", &mut f.from, "mirror URL or folder (empty: $INTERVENE_MIRROR or the release)");
        let (name, path) = get?;
        f.name = name.clone();
        Some(Ok(match path {
            Some(dir) => Command::Open(DialogKind::ModelFolder, dir),
            None => Command::Start(JobRequest::Fetch {
                name,
                to: PathBuf::from(f.to.trim()),
                from: (!f.from.trim().is_empty()).then(|| f.from.trim().to_string()),
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_preview_names_an_empty_field_instead_of_dropping_it() {
        let mut f = ExportForm::default();
        let line = f.command_line();
        assert!(
            line.contains("--model <MODEL> --classes all") && line.contains("--components <COMPONENTS.npz>"),
            "{line}"
        );
        f.model = " biggan-deep-fashion-mnist-32 ".into();
        f.components = "c.npz".into();
        let line = f.command_line();
        assert!(
            line.contains("--model biggan-deep-fashion-mnist-32 --classes") && line.contains("--components c.npz"),
            "{line}"
        );
        let mut c = CvaeForm::default();
        c.model.clear();
        c.out = "  ".into();
        let line = c.command_line();
        assert!(line.contains("--model <MODEL> --arm both") && line.contains("--out <DIR> --scale 3"), "{line}");
    }
}
