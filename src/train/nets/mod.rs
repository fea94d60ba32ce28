//! The trainable classifiers. Each mirrors an inference model of [`crate::models`] key for key,
//! so a trained state dict opens in the explanation tools unchanged (`classifier::open`).
//!
//! | arch | file | input |
//! |---|---|---|
//! | `mnist-cnn` | [`mnist_cnn`] | 32×32 RGB in [−1, 1] |
//! | `resnet18`, `resnet50` | [`resnet`] | ImageNet-normalised RGB, any size ≥ 32 |
//! | `mobilenet_v2` | [`mobilenet_v2`] | ImageNet-normalised RGB, any size ≥ 32 |

pub mod biggan_d;
pub mod biggan_g;
pub mod cgn_disc_conv;
pub mod cgn_mnist;
pub mod cvae;
pub mod init_ext;
pub mod layers;
pub mod mnist_cnn;
pub mod mobilenet_v2;
pub mod resnet;
pub mod sn;
pub mod vgg_gram;

use std::collections::HashMap;

use candle_core::{Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

pub use layers::{Builder, Params};

/// Architectures `intervene train classifier` can train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainArch {
    #[serde(rename = "mnist-cnn")]
    MnistCnn,
    #[serde(rename = "resnet18")]
    ResNet18,
    #[serde(rename = "resnet50")]
    ResNet50,
    #[serde(rename = "mobilenet_v2")]
    MobileNetV2,
}

// In its own scope: the macro's `Result` is std's, not candle's imported here.
mod names {
    crate::named_enum!(super::TrainArch, "architecture", {
        MnistCnn => "mnist-cnn",
        ResNet18 => "resnet18",
        ResNet50 => "resnet50",
        MobileNetV2 => "mobilenet_v2",
    });
}

impl TrainArch {
    pub fn name(self) -> &'static str {
        crate::named::Named::name(self)
    }

    /// The inference architecture that opens the trained weights.
    pub fn inference(self) -> crate::models::classifier::Arch {
        use crate::models::classifier::Arch;
        match self {
            Self::MnistCnn => Arch::MnistCnn,
            Self::ResNet18 => Arch::ResNet18,
            Self::ResNet50 => Arch::ResNet50,
            Self::MobileNetV2 => Arch::MobileNetV2,
        }
    }

    /// ImageNet-style architectures (RandomResizedCrop + flip, ImageNet normalisation).
    pub fn imagenet_style(self) -> bool {
        self != Self::MnistCnn
    }

    /// The default input side.
    pub fn default_size(self) -> usize {
        if self == Self::MnistCnn {
            32
        } else {
            224
        }
    }
}

/// Training or evaluation, and the seed of this step's dropout masks.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    pub train: bool,
    pub seed: u64,
}

impl Mode {
    pub fn eval() -> Self {
        Self { train: false, seed: 0 }
    }
}

/// Inverted dropout with a mask drawn from `seed` (deterministic, so a resumed run draws the
/// same masks).
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    let mut rng = crate::noise::Rng::new(seed);
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count()).map(|_| if (rng.uniform() as f32) < p { 0.0 } else { keep }).collect();
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
}

enum Body {
    MnistCnn(mnist_cnn::MnistCnn),
    ResNet(resnet::ResNet),
    MobileNetV2(mobilenet_v2::MobileNetV2),
}

/// A trainable classifier and its parameters.
pub struct Net {
    pub arch: TrainArch,
    pub num_classes: usize,
    body: Body,
    pub params: Params,
}

impl Net {
    fn build(arch: TrainArch, num_classes: usize, mut b: Builder) -> Result<Self> {
        let body = match arch {
            TrainArch::MnistCnn => Body::MnistCnn(mnist_cnn::MnistCnn::new(&mut b, num_classes)?),
            TrainArch::ResNet18 => Body::ResNet(resnet::ResNet::new(&mut b, [2, 2, 2, 2], false, num_classes)?),
            TrainArch::ResNet50 => Body::ResNet(resnet::ResNet::new(&mut b, [3, 4, 6, 3], true, num_classes)?),
            TrainArch::MobileNetV2 => Body::MobileNetV2(mobilenet_v2::MobileNetV2::new(&mut b, num_classes)?),
        };
        Ok(Self { arch, num_classes, body, params: Params { vars: b.vars, bns: b.bns } })
    }

    /// Fresh weights from `seed` (the architecture's own initialisation).
    pub fn init(arch: TrainArch, num_classes: usize, seed: u64, device: &Device) -> Result<Self> {
        Self::build(arch, num_classes, Builder::init(seed, device))
    }

    /// Weights from a state dict (all keys required).
    pub fn from_state(
        arch: TrainArch,
        num_classes: usize,
        map: &HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        Self::build(arch, num_classes, Builder::from_map(map, device))
    }

    /// Sets the dropout probability where the architecture has one (MobileNetV2).
    pub fn set_dropout(&mut self, p: f32) {
        if let Body::MobileNetV2(m) = &mut self.body {
            m.dropout = p;
        }
    }

    /// Logits (the MNIST CNN: log-probabilities, as the original) of a batch.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match &self.body {
            Body::MnistCnn(m) => m.forward(x, mode),
            Body::ResNet(m) => m.forward(x, mode),
            Body::MobileNetV2(m) => m.forward(x, mode),
        }
    }

    /// The trainable parameters by key.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.params.vars.clone()
    }
}
