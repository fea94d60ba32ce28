//! The CGN paper's MNIST classifier (Sauer & Geiger, 2021; reference:
//! autonomousvision/counterfactual_generative_networks, `mnists/models/classifier.py`), used for
//! every MNIST table: `model` = BN(3) → Conv5×5 3→32 p2 → ReLU → MaxPool(3, s2, p1) → Conv3×3
//! 32→32 p1 → ReLU → Conv3×3 s2 32→64 p1 → ReLU → Conv3×3 64→64 p1 → ReLU → AvgPool(7) →
//! flatten; `cls` = Linear(64→10) → LogSoftmax.
//!
//! Quirk kept on purpose: at 32×32 inputs the last feature map is 8×8, and `AvgPool2d(7)` (stride
//! 7, no padding) averages only its top-left 7×7 window. The output is log-probabilities, which is
//! what a CAM's target logit is taken from (the model's own output).
//!
//! Stages are the `model.i` entries (`model.8` = last conv, the default CAM layer).

use candle_core::{Module as _, ModuleT as _, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, Linear, VarBuilder};

#[derive(Debug, Clone)]
enum Stage {
    Bn(BatchNorm),
    Conv(Conv2d),
    Relu,
    MaxPool,
}

/// The MNIST CNN.
#[derive(Debug, Clone)]
pub struct MnistCnn {
    stages: Vec<Stage>,
    cls: Linear,
}

impl MnistCnn {
    pub fn new(vb: VarBuilder, num_classes: usize) -> Result<Self> {
        let m = vb.pp("model");
        let conv = |i: usize, cin, cout, k, stride| {
            candle_nn::conv2d(cin, cout, k, Conv2dConfig { padding: k / 2, stride, ..Default::default() }, m.pp(i))
        };
        let bn = candle_nn::batch_norm(3, candle_nn::BatchNormConfig { eps: 1e-5, ..Default::default() }, m.pp(0))?;
        let stages = vec![
            Stage::Bn(bn),
            Stage::Conv(conv(1, 3, 32, 5, 1)?),
            Stage::Relu,
            Stage::MaxPool,
            Stage::Conv(conv(4, 32, 32, 3, 1)?),
            Stage::Relu,
            Stage::Conv(conv(6, 32, 64, 3, 2)?),
            Stage::Relu,
            Stage::Conv(conv(8, 64, 64, 3, 1)?),
            Stage::Relu,
        ];
        Ok(Self { stages, cls: candle_nn::linear(64, num_classes, vb.pp("cls").pp(0))? })
    }

    /// Whether a checkpoint has this model's keys.
    pub fn matches(keys: &dyn Fn(&str) -> bool) -> bool {
        keys("model.0.running_mean") && keys("model.8.weight") && keys("cls.0.weight")
    }
}

impl super::staged::Staged for MnistCnn {
    fn stage_names(&self) -> Vec<String> {
        (0..self.stages.len()).map(|i| format!("model.{i}")).collect()
    }

    fn run_stage(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        match self.stages.get(i) {
            Some(Stage::Bn(b)) => b.forward_t(x, false),
            Some(Stage::Conv(c)) => c.forward(x),
            Some(Stage::Relu) => x.relu(),
            // MaxPool(3, 2, 1) after a ReLU: edge padding never wins over the window's own values.
            Some(Stage::MaxPool) => x.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?.max_pool2d_with_stride(3, 2),
            None => candle_core::bail!("the MNIST CNN has {} stages, asked for {i}", self.stages.len()),
        }
    }

    /// `AvgPool2d(7)` then flatten: the top-left 7×7 window of the 8×8 map.
    fn pooled(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool2d(7)?.flatten_from(1)
    }

    fn head(&self, pooled: &Tensor) -> Result<Tensor> {
        candle_nn::ops::log_softmax(&self.cls.forward(pooled)?, 1)
    }

    fn default_cam_stage(&self) -> usize {
        8
    }
}
