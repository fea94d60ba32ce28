//! Everything a classifier training run is, as plain data: what `intervene train classifier`
//! parses, what the window's Jobs pane fills in, and what `config.json` records.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::augment::Transform;
use super::nets::TrainArch;
use super::optim::OptimizerKind;
use super::schedule::Schedule;

/// An extra stream of the GenInt objective: its folder, its loss weight λ and its batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    pub dir: PathBuf,
    pub lambda: f64,
    pub batch: usize,
}

/// Where the network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda,
}

crate::named_enum!(DeviceChoice, "device", { Cpu => "cpu", Cuda => "cuda" });

/// A classifier training run. `L = CE(x) + λ1·CE(x_int) + λ2·CE(x_itr)`, the three batches
/// concatenated into one forward pass (shared batch-norm statistics, as GenInt's training script does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub arch: TrainArch,
    /// The original data (`ImageFolder`); defines the classes and the epoch.
    pub data: PathBuf,
    /// Intervened images (GenInt's x_int), weighted by λ1.
    pub intervened: Option<Extra>,
    /// Transferred images (GenInt's x_itr), weighted by λ2.
    pub transferred: Option<Extra>,
    /// Folders evaluated after every epoch (top-1, top-5, per class).
    pub eval: Vec<PathBuf>,
    pub epochs: usize,
    /// Batch of original images per step.
    pub batch: usize,
    pub optimizer: OptimizerKind,
    /// Base learning rate (the schedule scales it per epoch).
    pub lr: f64,
    pub schedule: Schedule,
    /// Training transform (augmentation); evaluation uses its deterministic counterpart.
    pub transform: Transform,
    /// Dropout before the classifier (MobileNetV2; torchvision 0.2).
    pub dropout: f32,
    pub seed: u64,
    pub device: DeviceChoice,
    /// Compute threads (0: all cores). Results do not depend on it.
    pub threads: usize,
}

impl TrainSettings {
    /// The recipe an architecture is trained with by default:
    /// - `mnist-cnn`: the CGN paper's (`mnists/train_classifier.py`): Adadelta lr 1.0, ×0.7 per epoch, 10
    ///   epochs, batch 64, no augmentation;
    /// - ImageNet architectures: torchvision's reference recipe scaled to the batch: SGD momentum
    ///   0.9, weight decay 1e-4, lr 0.1·batch/256, cosine decay, RandomResizedCrop(224) + flip.
    pub fn recipe(arch: TrainArch, data: PathBuf) -> Self {
        let base = Self {
            arch,
            data,
            intervened: None,
            transferred: None,
            eval: Vec::new(),
            epochs: 10,
            batch: 64,
            optimizer: OptimizerKind::adadelta(),
            lr: 1.0,
            schedule: Schedule::Step { every: 1, gamma: 0.7 },
            transform: Transform::Mnist { size: 32, flip: false },
            dropout: 0.0,
            seed: 0,
            device: DeviceChoice::Cpu,
            threads: 1,
        };
        if arch == TrainArch::MnistCnn {
            return base;
        }
        Self {
            epochs: 30,
            batch: 64,
            optimizer: OptimizerKind::sgd(),
            lr: 0.1 * 64.0 / 256.0,
            schedule: Schedule::Cosine { epochs: 30, min_lr: 0.0 },
            transform: Transform::ImagenetTrain { size: 224, min_scale: 0.08 },
            dropout: if arch == TrainArch::MobileNetV2 { 0.2 } else { 0.0 },
            ..base
        }
    }

    /// Range checks (the command line checks the same at parse time).
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if self.epochs == 0 {
            bail!("epochs must be at least 1");
        }
        if self.batch == 0 {
            bail!("batch must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("lr must be a positive number, got {}", self.lr);
        }
        for (name, e) in [("intervened", &self.intervened), ("transferred", &self.transferred)] {
            if let Some(e) = e {
                if e.batch == 0 {
                    bail!("the {name} batch must be at least 1");
                }
                if !(e.lambda.is_finite() && e.lambda >= 0.0) {
                    bail!("the {name} λ must be ≥ 0, got {}", e.lambda);
                }
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("dropout must lie in [0, 1), got {}", self.dropout);
        }
        if self.transform.size() < 16 {
            bail!("input size must be at least 16, got {}", self.transform.size());
        }
        if self.arch == TrainArch::MnistCnn && self.transform.size() != 32 {
            bail!(
                "the MNIST CNN takes 32×32 inputs (its AvgPool(7) expects an 8×8 map), got size {}",
                self.transform.size()
            );
        }
        Ok(())
    }

    /// Settings that must not change when a run is resumed (everything that shapes the numbers;
    /// epochs, evaluation folders, device and threads may change).
    pub fn resume_key(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            for k in ["epochs", "eval", "device", "threads"] {
                o.remove(k);
            }
            // The cosine schedule's length is the epoch count: that one must match.
            if let Schedule::Cosine { .. } = self.schedule {
                o.insert("epochs".into(), self.epochs.into());
            }
        }
        v
    }
}
