//! MobileNetV2 (Sandler et al., 2018, "MobileNetV2: Inverted Residuals and Linear
//! Bottlenecks"), torchvision layout (`torchvision/models/mobilenetv2.py`): `features.0..18`,
//! `classifier.1`. Eval-mode batch norm (eps 1e-5), ReLU6.
//!
//! The network is a list of named stages (`features.0` … `features.18`, then the pooled head),
//! so explanations can run the trunk to any stage and take gradients from there only.

use candle_core::{Module as _, ModuleT as _, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, Linear, VarBuilder};

/// conv → BN → optional ReLU6, as torchvision's `Conv2dNormActivation`.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    relu6: bool,
    /// BN folded into the convolution, for the no-gradient path ([`crate::ops::strided`]).
    fast_w: Vec<f32>,
    fast_b: Vec<f32>,
    k: usize,
    stride: usize,
    depthwise: bool,
}

impl ConvBn {
    /// `vb` holds `{conv}.weight` and `{bn}.*` under the given indices.
    fn new(
        vb_conv: VarBuilder,
        vb_bn: VarBuilder,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        relu6: bool,
    ) -> Result<Self> {
        let cfg = Conv2dConfig { padding: (k - 1) / 2, stride, groups, ..Default::default() };
        let conv = candle_nn::conv2d_no_bias(cin, cout, k, cfg, vb_conv)?;
        let bn = candle_nn::batch_norm(cout, candle_nn::BatchNormConfig { eps: 1e-5, ..Default::default() }, vb_bn)?;
        let (g, beta) =
            bn.weight_and_bias().ok_or_else(|| candle_core::Error::Msg("batch norm without affine".into()))?;
        let scale = (g / (bn.running_var() + bn.eps())?.sqrt()?)?;
        let fast_b = (beta - (bn.running_mean() * &scale)?)?.to_vec1::<f32>()?;
        let fast_w = conv.weight().broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?.flatten_all()?.to_vec1::<f32>()?;
        let depthwise = groups > 1;
        if depthwise && (groups != cin || cin != cout) {
            candle_core::bail!("only depthwise grouped convolutions are supported (groups {groups}, {cin} → {cout})");
        }
        Ok(Self { conv, bn, relu6, fast_w, fast_b, k, stride, depthwise })
    }

    /// conv → BN → ReLU6 on the no-gradient path, `residual` added before the activation.
    fn forward_fast(&self, x: &[f32], dims: [usize; 4], residual: Option<&[f32]>) -> Result<(Vec<f32>, [usize; 4])> {
        use crate::ops::strided::{conv, ConvSpec, Epilogue};
        let spec = ConvSpec {
            weight: &self.fast_w,
            bias: &self.fast_b,
            out_channels: self.fast_b.len(),
            kernel: self.k,
            stride: self.stride,
            padding: (self.k - 1) / 2,
            depthwise: self.depthwise,
        };
        conv(x, dims, &spec, residual, if self.relu6 { Epilogue::Relu6 } else { Epilogue::None })
            .map_err(candle_core::Error::wrap)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.bn.forward_t(&self.conv.forward(x)?, false)?;
        if self.relu6 {
            y.clamp(0f32, 6f32)
        } else {
            Ok(y)
        }
    }
}

/// One `features.i` entry.
#[derive(Debug, Clone)]
enum Feature {
    Conv(ConvBn),
    Inverted { layers: Vec<ConvBn>, residual: bool },
}

impl Feature {
    fn forward_fast(&self, x: &Tensor) -> Result<Tensor> {
        let (n0, n1, n2, n3) = x.dims4()?;
        let dims = [n0, n1, n2, n3];
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let (out, od) = match self {
            Feature::Conv(conv) => conv.forward_fast(&xv, dims, None)?,
            Feature::Inverted { layers, residual } => {
                let (mut h, mut hd) = (xv.clone(), dims);
                let last = layers.len() - 1;
                for (i, l) in layers.iter().enumerate() {
                    let res = if i == last && *residual { Some(xv.as_slice()) } else { None };
                    (h, hd) = l.forward_fast(&h, hd, res)?;
                }
                (h, hd)
            }
        };
        Tensor::from_vec(out, (od[0], od[1], od[2], od[3]), x.device())
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Feature::Conv(c) => c.forward(x),
            Feature::Inverted { layers, residual } => {
                let mut h = x.clone();
                for l in layers {
                    h = l.forward(&h)?;
                }
                if *residual {
                    h + x
                } else {
                    Ok(h)
                }
            }
        }
    }
}

/// MobileNetV2 with 1000 classes (or `num_classes`).
#[derive(Debug, Clone)]
pub struct MobileNetV2 {
    features: Vec<Feature>,
    classifier: Linear,
}

/// (expansion t, channels c, repeats n, first stride s), torchvision's table.
#[rustfmt::skip]
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
];

impl MobileNetV2 {
    pub fn new(vb: VarBuilder, num_classes: usize) -> Result<Self> {
        let f = vb.pp("features");
        let mut features =
            vec![Feature::Conv(ConvBn::new(f.pp("0").pp("0"), f.pp("0").pp("1"), 3, 32, 3, 2, 1, true)?)];
        let mut cin = 32;
        for (t, c, n, s) in SETTINGS {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let v = f.pp(features.len()).pp("conv");
                let hidden = cin * t;
                let mut layers = Vec::new();
                let mut idx = 0;
                if t != 1 {
                    layers.push(ConvBn::new(v.pp("0").pp("0"), v.pp("0").pp("1"), cin, hidden, 1, 1, 1, true)?);
                    idx = 1;
                }
                let dw = v.pp(idx);
                layers.push(ConvBn::new(dw.pp("0"), dw.pp("1"), hidden, hidden, 3, stride, hidden, true)?);
                layers.push(ConvBn::new(v.pp(idx + 1), v.pp(idx + 2), hidden, c, 1, 1, 1, false)?);
                features.push(Feature::Inverted { layers, residual: stride == 1 && cin == c });
                cin = c;
            }
        }
        let last = f.pp(features.len());
        features.push(Feature::Conv(ConvBn::new(last.pp("0"), last.pp("1"), cin, 1280, 1, 1, 1, true)?));
        let classifier = candle_nn::linear(1280, num_classes, vb.pp("classifier").pp("1"))?;
        Ok(Self { features, classifier })
    }
}

impl super::staged::Staged for MobileNetV2 {
    fn stage_names(&self) -> Vec<String> {
        (0..self.features.len()).map(|i| format!("features.{i}")).collect()
    }

    fn run_stage(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        match self.features.get(i) {
            Some(f) => f.forward(x),
            None => candle_core::bail!("MobileNetV2 has no stage {i}"),
        }
    }

    fn run_stage_nograd(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        match self.features.get(i) {
            Some(f) if x.device().is_cpu() => f.forward_fast(x),
            Some(f) => f.forward(x),
            None => candle_core::bail!("MobileNetV2 has no stage {i}"),
        }
    }

    fn pooled(&self, x: &Tensor) -> Result<Tensor> {
        x.mean((2, 3))
    }

    fn head(&self, pooled: &Tensor) -> Result<Tensor> {
        self.classifier.forward(pooled)
    }

    fn default_cam_stage(&self) -> usize {
        self.features.len() - 1
    }
}
