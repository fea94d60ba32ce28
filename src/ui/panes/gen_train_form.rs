//! The launcher's generator-training form: `intervene train biggan | cgn | cvae` on their
//! recipes, with the sizes a run is usually started with. The CLI offers every setting; the
//! form shows the equivalent command line.

use std::path::{Path, PathBuf};

use crate::data::variants::Variant;
use crate::train::biggan::BigGanSettings;
use crate::train::cgn::{CgnSettings, MaskSize, TextureFiles};
use crate::train::cgn_shape_init::ShapeInit;
use crate::train::cvae::CvaeSettings;
use crate::train::gan_data::DataSource;
use crate::ui::command::Command;
use crate::ui::job_requests::JobRequest;

/// Which generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GenKind {
    /// The small class-conditional BigGAN-deep.
    #[default]
    Biggan,
    /// The CGN study's MNIST CGN.
    Cgn,
    /// GenInt's colored-MNIST CVAE.
    Cvae,
}

impl GenKind {
    const ALL: [GenKind; 3] = [GenKind::Biggan, GenKind::Cgn, GenKind::Cvae];

    fn label(self) -> &'static str {
        match self {
            GenKind::Biggan => "BigGAN-deep",
            GenKind::Cgn => "CGN (MNIST)",
            GenKind::Cvae => "CVAE (GenInt)",
        }
    }
}

/// The CGN variants offered.
pub const CGN_VARIANTS: [&str; 4] = ["colored", "double-colored", "wildlife", "wildlife-v2"];

/// `intervene train biggan|cgn|cvae`'s usual settings.
#[derive(Debug, Clone)]
pub struct GenTrainForm {
    pub kind: GenKind,
    /// BigGAN's data: a data set name or a folder of class sub-folders.
    pub data: String,
    /// The CGN's MNIST variant.
    pub variant: String,
    /// Wildlife CGN: a folder of texture images (`--textures`; empty: procedural textures).
    pub textures: String,
    /// CGN: the optional mask-size term (`--mask-size LO,HI --mask-size-weight W`).
    pub mask_size: Option<MaskSize>,
    /// CGN: start the shape mechanism from this CGN (`--init-shape`; empty: the recipe's init).
    pub init_shape: String,
    /// CGN: keep that shape mechanism fixed (`--freeze-shape`).
    pub freeze_shape: bool,
    /// Generator steps (BigGAN, CGN).
    pub steps: u64,
    /// BigGAN's batch, channel width and GANSpace samples (0: no components).
    pub batch: usize,
    pub ch: usize,
    pub pca_samples: usize,
    /// The CVAE's epochs.
    pub epochs: usize,
    pub seed: u64,
    pub out: String,
    pub resume: bool,
}

impl Default for GenTrainForm {
    fn default() -> Self {
        Self {
            kind: GenKind::Biggan,
            data: "fashion-mnist".into(),
            variant: "double-colored".into(),
            textures: String::new(),
            mask_size: None,
            init_shape: String::new(),
            freeze_shape: false,
            steps: 2000,
            batch: 64,
            ch: 16,
            pca_samples: 20_000,
            epochs: 50,
            seed: 0,
            out: "trained-generator".into(),
            resume: true,
        }
    }
}

impl GenTrainForm {
    fn out(&self) -> Result<PathBuf, String> {
        let out = self.out.trim();
        if out.is_empty() {
            return Err("an output folder is needed".into());
        }
        Ok(PathBuf::from(out))
    }

    /// The job this form starts (one compute thread: the other core keeps the window responsive).
    pub fn request(&self) -> Result<JobRequest, String> {
        let out = self.out()?;
        let resume = self.resume;
        let err = |e: anyhow::Error| format!("{e:#}");
        match self.kind {
            GenKind::Biggan => {
                let data = DataSource::parse(self.data.trim()).map_err(err)?;
                let mut s = BigGanSettings::recipe(data);
                s.steps = self.steps.max(1);
                s.batch = self.batch.max(1);
                s.ch = self.ch;
                s.pca_samples = self.pca_samples;
                s.seed = self.seed;
                s.threads = 1;
                s.validate().map_err(err)?;
                Ok(JobRequest::TrainBiggan { settings: Box::new(s), out, resume })
            }
            GenKind::Cgn => {
                let mut s = CgnSettings::recipe(&self.variant).map_err(err)?;
                s.steps = self.steps.max(1);
                s.seed = self.seed;
                s.threads = 1;
                if let Some(dir) = self.cgn_textures() {
                    s.textures = Some(TextureFiles::open(Path::new(dir)).map_err(err)?.0);
                }
                s.mask_size = self.mask_size;
                if let Some(q) = self.cgn_init_shape() {
                    s.init_shape = Some(ShapeInit::open(q, self.freeze_shape).map_err(err)?);
                }
                s.validate().map_err(err)?;
                Ok(JobRequest::TrainCgn { settings: Box::new(s), out, resume })
            }
            GenKind::Cvae => {
                let s = CvaeSettings { epochs: self.epochs.max(1), seed: self.seed, threads: 1, ..Default::default() };
                s.validate().map_err(err)?;
                Ok(JobRequest::TrainCvae { settings: Box::new(s), out, resume })
            }
        }
    }

    /// Whether the CGN form's variant is drawn with textures (wildlife and its data versions).
    fn takes_textures(&self) -> bool {
        self.variant.parse::<Variant>().is_ok_and(Variant::is_wildlife)
    }

    /// The texture folder, when the CGN form's variant takes one and a folder is given.
    fn cgn_textures(&self) -> Option<&str> {
        let dir = self.textures.trim();
        (self.takes_textures() && !dir.is_empty()).then_some(dir)
    }

    /// The CGN whose shape mechanism starts the run, when one is given.
    fn cgn_init_shape(&self) -> Option<&str> {
        let q = self.init_shape.trim();
        (!q.is_empty()).then_some(q)
    }

    /// The CLI command that runs the same job.
    pub fn command_line(&self) -> String {
        let resume = if self.resume { " --resume" } else { "" };
        let out = super::or_placeholder(&self.out, "DIR");
        match self.kind {
            GenKind::Biggan => format!(
                "intervene train biggan --data {} --steps {} --batch {} --ch {} --pca-samples {} --seed {} --out {out}{resume}",
                super::or_placeholder(&self.data, "DATA"),
                self.steps,
                self.batch,
                self.ch,
                self.pca_samples,
                self.seed
            ),
            GenKind::Cgn => format!(
                "intervene train cgn --variant {} --steps {} --seed {}{}{}{} --out {out}{resume}",
                self.variant,
                self.steps,
                self.seed,
                self.cgn_textures().map(|d| format!(" --textures {d}")).unwrap_or_default(),
                self.mask_size
                    .map(|m| format!(" --mask-size {},{} --mask-size-weight {}", m.lo, m.hi, m.weight))
                    .unwrap_or_default(),
                self.cgn_init_shape()
                    .map(|q| format!(" --init-shape {q}{}", if self.freeze_shape { " --freeze-shape" } else { "" }))
                    .unwrap_or_default()
            ),
            GenKind::Cvae => format!("intervene train cvae --epochs {} --seed {} --out {out}{resume}", self.epochs, self.seed),
        }
    }

    /// The CGN's optional mask-size term: a checkbox, then its interval and weight.
    fn mask_size_row(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let mut on = self.mask_size.is_some();
            ui.checkbox(&mut on, "mask-size term")
                .on_hover_text("The authors' ImageNet MaskLoss, not in their MNIST recipe: a hinge on each mask's mean outside [lo, hi]");
            if on != self.mask_size.is_some() {
                self.mask_size = on.then_some(MaskSize::MNIST);
            }
            if let Some(m) = &mut self.mask_size {
                labelled(ui, "lo", egui::DragValue::new(&mut m.lo).range(0.0..=1.0).speed(0.01));
                labelled(ui, "hi", egui::DragValue::new(&mut m.hi).range(0.0..=1.0).speed(0.01));
                labelled(ui, "weight", egui::DragValue::new(&mut m.weight).range(0.0..=1000.0).speed(0.1));
            }
        });
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<Result<Command, String>> {
        ui.horizontal(|ui| {
            ui.label("Generator");
            for k in GenKind::ALL {
                ui.selectable_value(&mut self.kind, k, k.label());
            }
        });
        match self.kind {
            GenKind::Biggan => {
                ui.horizontal(|ui| {
                    labelled(
                        ui,
                        "Data",
                        egui::TextEdit::singleline(&mut self.data)
                            .hint_text("mnist, fashion-mnist, a variant, or class folders")
                            .desired_width(260.0),
                    );
                });
                ui.horizontal(|ui| {
                    labelled(ui, "steps", egui::DragValue::new(&mut self.steps).range(1..=1_000_000));
                    labelled(ui, "batch", egui::DragValue::new(&mut self.batch).range(1..=4096));
                    labelled(ui, "ch", egui::DragValue::new(&mut self.ch).range(4..=256).speed(4));
                    labelled(ui, "PCA samples", egui::DragValue::new(&mut self.pca_samples).range(0..=1_000_000));
                });
            }
            GenKind::Cgn => {
                ui.horizontal(|ui| {
                    ui.label("Variant");
                    for v in CGN_VARIANTS {
                        ui.selectable_value(&mut self.variant, v.to_string(), v);
                    }
                });
                ui.horizontal(|ui| {
                    labelled(ui, "steps", egui::DragValue::new(&mut self.steps).range(1..=1_000_000));
                });
                if self.takes_textures() {
                    ui.horizontal(|ui| {
                        labelled(
                            ui,
                            "Textures",
                            egui::TextEdit::singleline(&mut self.textures)
                                .hint_text("procedural; or a folder with object/ and background/ images")
                                .desired_width(300.0),
                        );
                    });
                }
                self.mask_size_row(ui);
                ui.horizontal(|ui| {
                    labelled(
                        ui,
                        "Shape from",
                        egui::TextEdit::singleline(&mut self.init_shape)
                            .hint_text("the recipe's init; or a CGN, e.g. cgn-double-colored")
                            .desired_width(260.0),
                    )
                    .on_hover_text("Start the mask mechanism from a CGN whose masks draw the digits (--init-shape)");
                    if self.cgn_init_shape().is_some() {
                        ui.checkbox(&mut self.freeze_shape, "freeze");
                    }
                });
            }
            GenKind::Cvae => {
                ui.horizontal(|ui| {
                    labelled(ui, "epochs", egui::DragValue::new(&mut self.epochs).range(1..=1000));
                });
            }
        }
        ui.horizontal(|ui| {
            labelled(ui, "seed", egui::DragValue::new(&mut self.seed));
            ui.checkbox(&mut self.resume, "resume");
            labelled(
                ui,
                "Output",
                egui::TextEdit::singleline(&mut self.out).hint_text("run folder").desired_width(220.0),
            );
        });
        ui.small(format!("Same as: {}", self.command_line()));
        ui.button("Start generator training").clicked().then(|| self.request().map(Command::Start))
    }
}

/// A label and its widget, the widget named by the label (accesskit, screen readers, kittest).
fn labelled(ui: &mut egui::Ui, label: &str, widget: impl egui::Widget) -> egui::Response {
    let l = ui.label(label);
    ui.add(widget).labelled_by(l.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildlife_cgn_form_passes_its_texture_folder_and_says_why_a_bad_one_fails() {
        let mut f = GenTrainForm { kind: GenKind::Cgn, variant: "wildlife".into(), ..Default::default() };
        assert!(!f.command_line().contains("--textures"));
        assert!(f.request().is_ok());
        f.textures = "/nonexistent/dtd".into();
        assert!(f.command_line().contains("--textures /nonexistent/dtd --out"));
        let e = f.request().unwrap_err();
        assert!(e.contains("--textures") && e.contains("no such folder"), "{e}");
        // Other variants have no textures: the field is not used.
        f.variant = "double-colored".into();
        assert!(!f.command_line().contains("--textures") && f.request().is_ok());
        // An empty output folder is named in the preview, not dropped.
        f.out = " ".into();
        assert!(f.command_line().contains("--out <DIR>"), "{}", f.command_line());
    }

    #[test]
    fn the_mask_size_term_reaches_the_settings_and_the_command_line() {
        let mut f = GenTrainForm { kind: GenKind::Cgn, variant: "colored".into(), ..Default::default() };
        assert!(!f.command_line().contains("--mask-size"));
        f.mask_size = Some(MaskSize { lo: 0.05, hi: 0.25, weight: 2.0 });
        assert!(f.command_line().contains("--mask-size 0.05,0.25 --mask-size-weight 2 --out"), "{}", f.command_line());
        let Ok(JobRequest::TrainCgn { settings, .. }) = f.request() else { panic!("not a CGN job") };
        assert_eq!(settings.mask_size, f.mask_size);
        f.mask_size = Some(MaskSize { lo: 0.3, hi: 0.1, weight: 2.0 });
        assert!(f.request().unwrap_err().contains("--mask-size"));
    }

    #[test]
    fn a_shape_source_reaches_the_settings_and_a_bad_one_says_why() {
        let mut f = GenTrainForm { kind: GenKind::Cgn, variant: "colored".into(), ..Default::default() };
        assert!(!f.command_line().contains("--init-shape"));
        f.init_shape = "cgn-double-colored".into();
        f.freeze_shape = true;
        assert!(
            f.command_line().contains("--init-shape cgn-double-colored --freeze-shape --out"),
            "{}",
            f.command_line()
        );
        let Ok(JobRequest::TrainCgn { settings, .. }) = f.request() else { panic!("not a CGN job") };
        let si = settings.init_shape.expect("a shape source");
        assert!(si.frozen && si.from.ends_with("cgn-double-colored/model.safetensors"), "{si:?}");
        f.init_shape = "/nonexistent/cgn.safetensors".into();
        assert!(f.request().unwrap_err().contains("--init-shape"));
        // A classifier is not a CGN.
        f.init_shape = "mnist-cnn-mnist".into();
        assert!(f.request().unwrap_err().contains("--init-shape"));
    }
}
