//! MobileNetV2 for training, torchvision layout (`torchvision/models/mobilenetv2.py`:
//! `features.0..18`, `classifier.1`; Dropout(0.2) before the classifier), so the weights open in
//! [`crate::models::mobilenet_v2`] unchanged. torchvision's initialisation: convolutions
//! `kaiming_normal_(fan_out)`, batch norms 1/0, the classifier `N(0, 0.01)` with zero bias.

use candle_core::{Result, Tensor};

use super::layers::{BatchNorm, Builder, Conv, Init, Linear};
use super::Mode;
use crate::train::ops::{self, ConvCfg};

/// conv → BN → optional ReLU6.
struct ConvBn {
    conv: Conv,
    bn: BatchNorm,
    relu6: bool,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(
        b: &mut Builder,
        conv: &str,
        bn: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        dw: bool,
        relu6: bool,
    ) -> Result<Self> {
        let cfg = ConvCfg { stride, padding: (k - 1) / 2, depthwise: dw };
        let c = b.scope(conv, |s| s.conv(cin, cout, k, cfg, false, Init::kaiming_fan_out(cout * k * k)))?;
        let n = b.scope(bn, |s| s.batch_norm(cout))?;
        Ok(Self { conv: c, bn: n, relu6 })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let act = if self.relu6 { ops::BnAct::Relu } else { ops::BnAct::Identity };
        let y = self.bn.forward_conv(&self.conv, x, train, act)?;
        if self.relu6 {
            // ReLU already applied by the fused batch norm; the cap at 6 remains.
            y.minimum(6f32)
        } else {
            Ok(y)
        }
    }
}

enum Feature {
    Conv(ConvBn),
    Inverted { layers: Vec<ConvBn>, residual: bool },
}

/// (expansion t, channels c, repeats n, first stride s), torchvision's table.
#[rustfmt::skip]
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
];

pub struct MobileNetV2 {
    features: Vec<Feature>,
    classifier: Linear,
    /// Dropout probability before the classifier (torchvision: 0.2).
    pub dropout: f32,
}

impl MobileNetV2 {
    pub fn new(b: &mut Builder, num_classes: usize) -> Result<Self> {
        b.scope("features", |f| {
            let mut features = vec![Feature::Conv(f.scope(0, |s| ConvBn::new(s, "0", "1", 3, 32, 3, 2, false, true))?)];
            let mut cin = 32;
            for (t, c, n, s) in SETTINGS {
                for i in 0..n {
                    let stride = if i == 0 { s } else { 1 };
                    let hidden = cin * t;
                    let idx = features.len();
                    let layers = f.scope(idx, |v| {
                        v.scope("conv", |v| {
                            let mut layers = Vec::new();
                            let mut j = 0;
                            if t != 1 {
                                layers
                                    .push(v.scope("0", |e| ConvBn::new(e, "0", "1", cin, hidden, 1, 1, false, true))?);
                                j = 1;
                            }
                            layers
                                .push(v.scope(j, |d| ConvBn::new(d, "0", "1", hidden, hidden, 3, stride, true, true))?);
                            let (pc, pb) = ((j + 1).to_string(), (j + 2).to_string());
                            layers.push(ConvBn::new(v, &pc, &pb, hidden, c, 1, 1, false, false)?);
                            Ok(layers)
                        })
                    })?;
                    features.push(Feature::Inverted { layers, residual: stride == 1 && cin == c });
                    cin = c;
                }
            }
            let idx = features.len();
            features.push(Feature::Conv(f.scope(idx, |s| ConvBn::new(s, "0", "1", cin, 1280, 1, 1, false, true))?));
            Ok(features)
        })
        .and_then(|features| {
            let classifier = b.scope("classifier", |c| {
                c.scope(1, |l| l.linear(1280, num_classes, Init::Normal(0.01), Init::Const(0.0)))
            })?;
            Ok(Self { features, classifier, dropout: 0.2 })
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut h = x.clone();
        for f in &self.features {
            h = match f {
                Feature::Conv(c) => c.forward(&h, mode.train)?,
                Feature::Inverted { layers, residual } => {
                    let mut y = h.clone();
                    for l in layers {
                        y = l.forward(&y, mode.train)?;
                    }
                    if *residual {
                        (y + &h)?
                    } else {
                        y
                    }
                }
            };
        }
        let pooled = h.mean((2, 3))?;
        let pooled =
            if mode.train && self.dropout > 0.0 { super::dropout(&pooled, self.dropout, mode.seed)? } else { pooled };
        self.classifier.forward(&pooled)
    }
}
