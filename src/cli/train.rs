//! `intervene train`: training jobs. `train classifier` trains an image classifier with
//! GenInt's objective on image folders (the engine is [`crate::train`]); later `train cgn`,
//! `train biggan`, `train cvae` join this group.

use std::path::PathBuf;

use crate::train::augment::Transform;
use crate::train::nets::TrainArch;
use crate::train::optim::OptimizerKind;
use crate::train::schedule::Schedule;
use crate::train::{Extra, TrainSettings};

const CLASSIFIER_HELP: &str = "\
Trains a classifier on image folders (DIR/<class>/*.png|jpg; classes named by index, wnid or name) \
with GenInt's objective L = CE(x) + λ1·CE(x_int) + λ2·CE(x_itr): the original, intervened and \
transferred batches go through one forward pass (shared batch-norm statistics).

Defaults follow the architecture: mnist-cnn uses the CGN paper's recipe (Adadelta lr 1.0, ×0.7 per \
epoch, 10 epochs, batch 64, no augmentation, 32×32 in [−1, 1]); resnet18/resnet50/mobilenet_v2 use \
torchvision's (SGD momentum 0.9, weight decay 1e-4, lr 0.1·batch/256, cosine decay, \
RandomResizedCrop + flip, ImageNet normalisation).

The output folder holds config.json (every setting and the seed), model.safetensors (PyTorch key \
names: `intervene cam/eval --classifier DIR` and the Explain pane open the folder itself), \
checkpoint.safetensors (written every epoch and on Ctrl-C) and metrics.jsonl. --resume continues \
a stopped run exactly (same weights as an uninterrupted run). Runs are deterministic on the CPU \
for a seed.";

/// Training jobs.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub what: TrainWhat,
}

/// What to train.
#[derive(clap::Subcommand, Debug)]
pub enum TrainWhat {
    /// Train an image classifier (MNIST CNN, ResNet-18/50, MobileNetV2) with GenInt's objective.
    #[command(long_about = CLASSIFIER_HELP)]
    Classifier(ClassifierArgs),
    /// Train a small class-conditional BigGAN-deep (32×32, hub layout, standing statistics, components).
    Biggan(super::train_gan::BigganArgs),
    /// Train the MNIST CGN on a variant with the authors' recipe (VGG-19 Gram loss; authors' key layout).
    Cgn(super::train_gan::CgnArgs),
    /// Train GenInt's colored-MNIST CVAE and write observational and interventional sets.
    Cvae(super::train_gan::CvaeArgs),
}

/// Optimisers on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerArg {
    /// SGD with momentum (PyTorch semantics; --momentum, --weight-decay).
    Sgd,
    /// Adam (PyTorch semantics; L2 --weight-decay).
    Adam,
    /// Adadelta (rho 0.9, eps 1e-6).
    Adadelta,
}

/// Learning-rate schedules on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleArg {
    /// ×--gamma every --step-every epochs (StepLR).
    Step,
    /// Cosine decay to 0 over the epochs (CosineAnnealingLR).
    Cosine,
    /// The same rate throughout.
    Constant,
}

/// Augmentation on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AugmentArg {
    /// None (mnist-cnn's default).
    None,
    /// Random horizontal flips only.
    Flip,
    /// RandomResizedCrop(scale 0.08–1) + flip (the ImageNet architectures' default).
    CropFlip,
}

fn unit_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' must lie in [0, 1)")),
    }
}

/// `intervene train classifier`.
#[derive(clap::Args, Debug)]
pub struct ClassifierArgs {
    /// Architecture to train.
    #[arg(long, value_name = "ARCH", value_parser = super::values::named::<TrainArch>())]
    pub arch: TrainArch,
    /// Original training images: DIR/<class>/*.png|jpg (defines the classes and the epoch).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Intervened images (GenInt's x_int), same classes as --data.
    #[arg(long, value_name = "DIR", requires = "lambda1")]
    pub intervened: Option<PathBuf>,
    /// Loss weight λ1 of the intervened batch.
    #[arg(long, value_name = "L1", value_parser = super::values::non_negative, requires = "intervened")]
    pub lambda1: Option<f64>,
    /// Intervened images per step [default: a quarter of --batch, at least 1].
    #[arg(long, value_name = "B2", value_parser = super::values::positive, requires = "intervened")]
    pub batch2: Option<usize>,
    /// Transferred images (GenInt's x_itr), same classes as --data.
    #[arg(long, value_name = "DIR", requires = "lambda2")]
    pub transferred: Option<PathBuf>,
    /// Loss weight λ2 of the transferred batch.
    #[arg(long, value_name = "L2", value_parser = super::values::non_negative, requires = "transferred")]
    pub lambda2: Option<f64>,
    /// Transferred images per step [default: a quarter of --batch, at least 1].
    #[arg(long, value_name = "B3", value_parser = super::values::positive, requires = "transferred")]
    pub batch3: Option<usize>,
    /// Epochs over --data [default: 10 for mnist-cnn, 30 otherwise].
    #[arg(long, value_name = "E", value_parser = super::values::positive)]
    pub epochs: Option<usize>,
    /// Original images per step [default: 64].
    #[arg(long, value_name = "B", value_parser = super::values::positive)]
    pub batch: Option<usize>,
    /// Optimiser [default: adadelta for mnist-cnn, sgd otherwise].
    #[arg(long, value_enum, value_name = "NAME")]
    pub optimizer: Option<OptimizerArg>,
    /// Base learning rate [default: 1.0 Adadelta, 1e-3 Adam, 0.1·batch/256 SGD].
    #[arg(long, value_name = "LR", value_parser = super::values::positive_f64)]
    pub lr: Option<f64>,
    /// SGD momentum [default: 0.9].
    #[arg(long, value_name = "M", value_parser = unit_f64)]
    pub momentum: Option<f64>,
    /// L2 weight decay [default: 1e-4 SGD, 0 otherwise].
    #[arg(long, value_name = "WD", value_parser = super::values::non_negative)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule [default: step (×0.7 per epoch) for mnist-cnn, cosine otherwise].
    #[arg(long, value_enum, value_name = "NAME")]
    pub schedule: Option<ScheduleArg>,
    /// Epochs between decays of the step schedule [default: 1].
    #[arg(long, value_name = "N", value_parser = super::values::positive)]
    pub step_every: Option<usize>,
    /// Decay factor of the step schedule [default: 0.7].
    #[arg(long, value_name = "G", value_parser = super::values::positive_f64)]
    pub gamma: Option<f64>,
    /// Input side for the ImageNet architectures [default: 224; mnist-cnn is always 32].
    #[arg(long, value_name = "PX", value_parser = clap::value_parser!(u32).range(16..=1024))]
    pub size: Option<u32>,
    /// Augmentation [default: none for mnist-cnn, crop-flip otherwise].
    #[arg(long, value_enum, value_name = "KIND")]
    pub augment: Option<AugmentArg>,
    /// Folder evaluated after every epoch (repeatable): top-1, top-5, per class.
    #[arg(long, value_name = "DIR")]
    pub eval: Vec<PathBuf>,
    /// Output folder (config.json, model.safetensors, checkpoint.safetensors, metrics.jsonl).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint (bit-identical to not stopping).
    #[arg(long)]
    pub resume: bool,
    /// Seed of the initial weights, data order, augmentation and dropout.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Where to compute.
    #[arg(long, value_name = "DEV", default_value = "cpu", value_parser = super::values::named::<crate::train::DeviceChoice>())]
    pub device: crate::train::DeviceChoice,
    /// Compute threads (0: all cores); one leaves the other cores to the window or the loader.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
}

impl ClassifierArgs {
    /// The run's settings: the architecture's recipe with the given flags on top.
    pub fn settings(&self) -> anyhow::Result<TrainSettings> {
        let mut s = TrainSettings::recipe(self.arch, self.data.clone());
        if let Some(b) = self.batch {
            s.batch = b;
            if self.arch != TrainArch::MnistCnn {
                s.lr = 0.1 * b as f64 / 256.0;
            }
        }
        if let Some(e) = self.epochs {
            s.epochs = e;
        }
        if let Some(o) = self.optimizer {
            let wd = self.weight_decay;
            s.optimizer = match o {
                OptimizerArg::Sgd => {
                    OptimizerKind::Sgd { momentum: self.momentum.unwrap_or(0.9), weight_decay: wd.unwrap_or(1e-4) }
                }
                OptimizerArg::Adam => {
                    OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: wd.unwrap_or(0.0) }
                }
                OptimizerArg::Adadelta => {
                    OptimizerKind::Adadelta { rho: 0.9, eps: 1e-6, weight_decay: wd.unwrap_or(0.0) }
                }
            };
            s.lr = match o {
                OptimizerArg::Sgd => 0.1 * s.batch as f64 / 256.0,
                OptimizerArg::Adam => 1e-3,
                OptimizerArg::Adadelta => 1.0,
            };
        } else {
            match &mut s.optimizer {
                OptimizerKind::Sgd { momentum, weight_decay } => {
                    *momentum = self.momentum.unwrap_or(*momentum);
                    *weight_decay = self.weight_decay.unwrap_or(*weight_decay);
                }
                OptimizerKind::Adam { weight_decay, .. } | OptimizerKind::Adadelta { weight_decay, .. } => {
                    *weight_decay = self.weight_decay.unwrap_or(*weight_decay);
                }
            }
        }
        if self.momentum.is_some() && !matches!(s.optimizer, OptimizerKind::Sgd { .. }) {
            anyhow::bail!("--momentum applies to --optimizer sgd only");
        }
        if let Some(lr) = self.lr {
            s.lr = lr;
        }
        let every = self.step_every.unwrap_or(1);
        let gamma = self.gamma.unwrap_or(0.7);
        s.schedule = match self.schedule {
            Some(ScheduleArg::Step) => Schedule::Step { every, gamma },
            Some(ScheduleArg::Cosine) => Schedule::Cosine { epochs: s.epochs, min_lr: 0.0 },
            Some(ScheduleArg::Constant) => Schedule::Constant,
            None => match s.schedule {
                Schedule::Cosine { .. } => Schedule::Cosine { epochs: s.epochs, min_lr: 0.0 },
                Schedule::Step { .. } => Schedule::Step { every, gamma },
                other => other,
            },
        };
        if (self.step_every.is_some() || self.gamma.is_some()) && !matches!(s.schedule, Schedule::Step { .. }) {
            anyhow::bail!("--step-every and --gamma apply to --schedule step only");
        }
        if self.arch == TrainArch::MnistCnn {
            if self.size.is_some_and(|v| v != 32) {
                anyhow::bail!("--size: mnist-cnn takes 32×32 inputs");
            }
            s.transform = Transform::Mnist { size: 32, flip: self.augment == Some(AugmentArg::Flip) };
            if self.augment == Some(AugmentArg::CropFlip) {
                anyhow::bail!("--augment crop-flip is for the ImageNet architectures; mnist-cnn takes none or flip");
            }
        } else {
            let size = self.size.map_or(224, |v| v as usize);
            s.transform = match self.augment.unwrap_or(AugmentArg::CropFlip) {
                AugmentArg::CropFlip => Transform::ImagenetTrain { size, min_scale: 0.08 },
                // Without crops: the evaluation crop (a flip needs a random draw, none does not).
                AugmentArg::None | AugmentArg::Flip => Transform::ImagenetEval { size },
            };
            if self.augment == Some(AugmentArg::Flip) {
                anyhow::bail!("--augment flip is for mnist-cnn; the ImageNet architectures take crop-flip or none");
            }
        }
        let quarter = (s.batch / 4).max(1);
        s.intervened = self.intervened.clone().map(|dir| Extra {
            dir,
            lambda: self.lambda1.unwrap_or(0.0),
            batch: self.batch2.unwrap_or(quarter),
        });
        s.transferred = self.transferred.clone().map(|dir| Extra {
            dir,
            lambda: self.lambda2.unwrap_or(0.0),
            batch: self.batch3.unwrap_or(quarter),
        });
        s.eval = self.eval.clone();
        s.seed = self.seed;
        s.device = self.device;
        s.threads = self.threads;
        s.validate()?;
        Ok(s)
    }
}

pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    match a.what {
        TrainWhat::Classifier(c) => classifier(c),
        TrainWhat::Biggan(b) => super::train_gan::biggan(b),
        TrainWhat::Cgn(c) => super::train_gan::cgn(c),
        TrainWhat::Cvae(c) => super::train_gan::cvae(c),
    }
}

/// Sizes candle's own worker pool (its elementwise ops run there, not on rayon) to the job's
/// threads, unless the environment already does. Must run before the first candle op.
pub(crate) fn limit_candle_threads(threads: usize) {
    if threads > 0 && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY-relevant only in the 2024 edition: called on the main thread before any candle
        // worker starts.
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    }
}

fn classifier(a: ClassifierArgs) -> anyhow::Result<()> {
    limit_candle_threads(a.threads);
    let settings = a.settings()?;
    let out = a.out.clone();
    let summary = super::job::run("steps", |control| {
        crate::train::train_classifier(&settings, &out, a.resume, &Default::default(), control)
    })?;
    let mut line = format!(
        "trained {} for {} steps in {:.1} s → {}",
        settings.arch,
        summary.steps,
        summary.seconds,
        summary.out.display()
    );
    if let Some(e) = &summary.last_epoch {
        for r in &e.eval {
            line += &format!("\n  {}", r.summary());
        }
    }
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::cli::Cli;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("intervene").chain(args.iter().copied()))
    }

    #[test]
    fn bad_values_fail_at_parse_time() {
        let base = ["train", "classifier", "--arch", "mnist-cnn", "--data", "d", "--out", "o"];
        assert!(parse(&base).is_ok());
        for bad in [
            ["--lr", "0"],
            ["--lr", "nan"],
            ["--batch", "0"],
            ["--epochs", "x"],
            ["--momentum", "1.5"],
            ["--size", "8"],
        ] {
            let args: Vec<&str> = base.iter().chain(bad.iter()).copied().collect();
            let e = parse(&args).expect_err(&format!("{bad:?} must be rejected"));
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
        }
        // λ without its folder, and an unknown architecture.
        let args: Vec<&str> = base.iter().chain(["--lambda1", "0.1"].iter()).copied().collect();
        assert!(parse(&args).is_err());
        assert!(parse(&["train", "classifier", "--arch", "vgg", "--data", "d", "--out", "o"]).is_err());
    }

    #[test]
    fn recipe_defaults_and_overrides() {
        let Ok(Cli { command: Some(crate::cli::Command::Train(t)), .. }) = parse(&[
            "train",
            "classifier",
            "--arch",
            "resnet18",
            "--data",
            "d",
            "--out",
            "o",
            "--batch",
            "32",
            "--size",
            "64",
            "--intervened",
            "i",
            "--lambda1",
            "0.05",
        ]) else {
            panic!("parse")
        };
        let super::TrainWhat::Classifier(c) = t.what else { panic!("classifier") };
        let s = c.settings().unwrap();
        assert!((s.lr - 0.1 * 32.0 / 256.0).abs() < 1e-12);
        assert_eq!(s.transform.size(), 64);
        assert_eq!(s.intervened.as_ref().unwrap().batch, 8);
        assert!(matches!(s.optimizer, crate::train::optim::OptimizerKind::Sgd { .. }));
    }
}
