//! Learning-rate schedules, per epoch as PyTorch's `lr_scheduler`s stepped once per epoch:
//! - `StepLR(step_size, gamma)`: `lr·γ^⌊epoch/step⌋` (the CGN MNIST recipe is Adadelta lr 1.0
//!   with step 1, γ 0.7);
//! - `CosineAnnealingLR(T_max = epochs, eta_min)`: `η_min + (lr − η_min)(1 + cos(π·epoch/T))/2`;
//! - constant.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// ×`gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f64,
    },
    /// Cosine decay from the base rate to `min_lr` over `epochs`.
    Cosine {
        epochs: usize,
        min_lr: f64,
    },
}

impl Schedule {
    /// The learning rate of `epoch` (0-based) from the base rate.
    pub fn lr(&self, base: f64, epoch: usize) -> f64 {
        match *self {
            Self::Constant => base,
            Self::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Self::Cosine { epochs, min_lr } => {
                let t = epoch.min(epochs) as f64 / epochs.max(1) as f64;
                min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
        }
    }
}
