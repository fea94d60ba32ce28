//! The CGN paper's MNIST classifier for training (reference:
//! autonomousvision/counterfactual_generative_networks, `mnists/models/classifier.py`):
//! BN(3) → Conv5×5 3→32 p2 → ReLU → MaxPool(3, s2, p1) → Conv3×3 32→32 →
//! ReLU → Conv3×3 s2 32→64 → ReLU → Conv3×3 64→64 → ReLU → AvgPool(7) → Linear(64→10) →
//! LogSoftmax. Keys `model.{0,1,4,6,8}.*`, `cls.0.*` as the authors', so the weights open in
//! [`crate::models::mnist_cnn`] unchanged. PyTorch's default initialisation.

use candle_core::{Result, Tensor};

use super::layers::{BatchNorm, Builder, Conv, Init, Linear};
use super::Mode;
use crate::train::ops::{self, ConvCfg, Pool};

pub struct MnistCnn {
    bn: BatchNorm,
    convs: [Conv; 4],
    cls: Linear,
}

impl MnistCnn {
    pub fn new(b: &mut Builder, num_classes: usize) -> Result<Self> {
        b.scope("model", |m| {
            let bn = m.scope(0, |s| s.batch_norm(3))?;
            let mut conv = |i: usize, cin: usize, cout: usize, k: usize, stride: usize| {
                m.scope(i, |s| {
                    s.conv(cin, cout, k, ConvCfg::new(stride, k / 2), true, Init::torch_default(cin * k * k))
                })
            };
            let convs = [conv(1, 3, 32, 5, 1)?, conv(4, 32, 32, 3, 1)?, conv(6, 32, 64, 3, 2)?, conv(8, 64, 64, 3, 1)?];
            Ok((bn, convs))
        })
        .and_then(|(bn, convs)| {
            let cls = b.scope("cls", |c| {
                c.scope(0, |l| l.linear(64, num_classes, Init::torch_default(64), Init::torch_default(64)))
            })?;
            Ok(Self { bn, convs, cls })
        })
    }

    /// `(b, 3, 32, 32)` in [−1, 1] → log-probabilities `(b, classes)`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let h = self.bn.forward(x, mode.train, false)?;
        let h = ops::relu(&self.convs[0].forward(&h)?)?;
        let h = ops::max_pool2d(&h, Pool { k: 3, stride: 2, padding: 1 })?;
        let h = ops::relu(&self.convs[1].forward(&h)?)?;
        let h = ops::relu(&self.convs[2].forward(&h)?)?;
        let h = ops::relu(&self.convs[3].forward(&h)?)?;
        // AvgPool2d(7) of the 8×8 map: its top-left 7×7 window (the original's quirk).
        let h = ops::avg_pool2d(&h, Pool { k: 7, stride: 7, padding: 0 })?.flatten_from(1)?;
        candle_nn::ops::log_softmax(&self.cls.forward(&h)?, 1)
    }
}
