//! ResNet-18/34/50 (He et al., 2016, "Deep Residual Learning for Image Recognition"),
//! torchvision layout (`torchvision/models/resnet.py`): `conv1`, `bn1`, `layer1..4.{i}`
//! (BasicBlock `conv1/bn1/conv2/bn2`, Bottleneck adds `conv3/bn3`; the stride sits on the 3×3
//! conv, torchvision's "v1.5"), `downsample.0/1`, `fc`. Eval-mode batch norm (eps 1e-5).
//!
//! Stages are the stem (`maxpool`: conv1 → bn1 → ReLU → maxpool 3×3/2) and one per block
//! (`layer4.1`), so a CAM can target any block; `layer4` names the last block of layer4, as
//! pytorch-grad-cam's `layer4[-1]`. The trunk can also be read from a `Sequential` of the
//! children (`backbone.0` = conv1, `backbone.1` = bn1, `backbone.4..7` = layer1..4), the layout
//! of the CGN classifier ensemble ([`super::cgn_ensemble`]).

use candle_core::{Module as _, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};

/// Depth and width of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Blocks per layer.
    pub blocks: [usize; 4],
    /// Bottleneck blocks (ResNet-50) instead of basic blocks.
    pub bottleneck: bool,
    pub num_classes: usize,
}

impl ResNetConfig {
    pub fn resnet18() -> Self {
        Self { blocks: [2, 2, 2, 2], bottleneck: false, num_classes: 1000 }
    }
    pub fn resnet34() -> Self {
        Self { blocks: [3, 4, 6, 3], bottleneck: false, num_classes: 1000 }
    }
    pub fn resnet50() -> Self {
        Self { blocks: [3, 4, 6, 3], bottleneck: true, num_classes: 1000 }
    }

    /// Channels of the pooled feature (512 or 2048).
    pub fn feature_dim(&self) -> usize {
        if self.bottleneck {
            2048
        } else {
            512
        }
    }
}

/// Where the trunk's tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkKeys {
    /// `conv1`, `bn1`, `layer1..4`.
    Torchvision,
    /// `0`, `1`, `4..7` (children as a Sequential).
    Sequential,
}

impl TrunkKeys {
    fn conv1(self) -> &'static str {
        match self {
            Self::Torchvision => "conv1",
            Self::Sequential => "0",
        }
    }
    fn bn1(self) -> &'static str {
        match self {
            Self::Torchvision => "bn1",
            Self::Sequential => "1",
        }
    }
    fn layer(self, i: usize) -> String {
        match self {
            Self::Torchvision => format!("layer{}", i + 1),
            Self::Sequential => format!("{}", i + 4),
        }
    }
}

fn conv(vb: VarBuilder, cin: usize, cout: usize, k: usize, stride: usize) -> Result<Conv2d> {
    candle_nn::conv2d_no_bias(cin, cout, k, Conv2dConfig { padding: k / 2, stride, ..Default::default() }, vb)
}

/// conv → eval-mode BN folded into one biased convolution: `w·γ/σ`, `β − μ·γ/σ`
/// (σ = √(var + eps)). Saves the batch norm's passes over every activation.
fn conv_bn(vb_conv: VarBuilder, vb_bn: VarBuilder, cin: usize, cout: usize, k: usize, stride: usize) -> Result<Conv2d> {
    let c = conv(vb_conv, cin, cout, k, stride)?;
    let g = vb_bn.get(cout, "weight")?;
    let b = vb_bn.get(cout, "bias")?;
    let mean = vb_bn.get(cout, "running_mean")?;
    let var = vb_bn.get(cout, "running_var")?;
    let scale = (g / (var + 1e-5)?.sqrt()?)?;
    let w = c.weight().broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?;
    let bias = (b - (mean * &scale)?)?;
    Ok(Conv2d::new(w, Some(bias), *c.config()))
}

/// A folded convolution as plain vectors, for the no-gradient CPU path ([`crate::ops::strided`]).
#[derive(Debug, Clone)]
struct FastConv {
    w: Vec<f32>,
    b: Vec<f32>,
    o: usize,
    k: usize,
    stride: usize,
    padding: usize,
}

impl FastConv {
    fn from(c: &Conv2d) -> Result<Self> {
        let (o, _, k, _) = c.weight().dims4()?;
        let b = match c.bias() {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; o],
        };
        let cfg = c.config();
        Ok(Self { w: c.weight().flatten_all()?.to_vec1::<f32>()?, b, o, k, stride: cfg.stride, padding: cfg.padding })
    }

    fn run(&self, x: &[f32], dims: [usize; 4], residual: Option<&[f32]>, relu: bool) -> Result<(Vec<f32>, [usize; 4])> {
        let spec = crate::ops::strided::ConvSpec {
            weight: &self.w,
            bias: &self.b,
            out_channels: self.o,
            kernel: self.k,
            stride: self.stride,
            padding: self.padding,
            depthwise: false,
        };
        let epi = if relu { crate::ops::strided::Epilogue::Relu } else { crate::ops::strided::Epilogue::None };
        crate::ops::strided::conv(x, dims, &spec, residual, epi).map_err(candle_core::Error::wrap)
    }
}

fn dims4(t: &Tensor) -> Result<[usize; 4]> {
    let (a, b, c, d) = t.dims4()?;
    Ok([a, b, c, d])
}

/// A BasicBlock or Bottleneck.
#[derive(Debug, Clone)]
struct Block {
    convs: Vec<Conv2d>,
    downsample: Option<Conv2d>,
    fast: Vec<FastConv>,
    fast_down: Option<FastConv>,
}

impl Block {
    fn new(vb: VarBuilder, cin: usize, planes: usize, stride: usize, bottleneck: bool) -> Result<Self> {
        let cout = if bottleneck { planes * 4 } else { planes };
        let convs = if bottleneck {
            vec![
                conv_bn(vb.pp("conv1"), vb.pp("bn1"), cin, planes, 1, 1)?,
                conv_bn(vb.pp("conv2"), vb.pp("bn2"), planes, planes, 3, stride)?,
                conv_bn(vb.pp("conv3"), vb.pp("bn3"), planes, cout, 1, 1)?,
            ]
        } else {
            vec![
                conv_bn(vb.pp("conv1"), vb.pp("bn1"), cin, planes, 3, stride)?,
                conv_bn(vb.pp("conv2"), vb.pp("bn2"), planes, planes, 3, 1)?,
            ]
        };
        let downsample = if stride != 1 || cin != cout {
            let d = vb.pp("downsample");
            Some(conv_bn(d.pp("0"), d.pp("1"), cin, cout, 1, stride)?)
        } else {
            None
        };
        let fast = convs.iter().map(FastConv::from).collect::<Result<_>>()?;
        let fast_down = downsample.as_ref().map(FastConv::from).transpose()?;
        Ok(Self { convs, downsample, fast, fast_down })
    }

    /// The same block on the no-gradient CPU path.
    fn forward_fast(&self, x: &Tensor) -> Result<Tensor> {
        let dims = dims4(x)?;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let skip = match &self.fast_down {
            Some(d) => d.run(&xv, dims, None, false)?.0,
            None => xv.clone(),
        };
        let (mut h, mut hd) = (xv, dims);
        let last = self.fast.len() - 1;
        for (i, c) in self.fast.iter().enumerate() {
            let res = if i == last { Some(skip.as_slice()) } else { None };
            (h, hd) = c.run(&h, hd, res, true)?;
        }
        Tensor::from_vec(h, (hd[0], hd[1], hd[2], hd[3]), x.device())
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.convs.len() - 1;
        for (i, c) in self.convs.iter().enumerate() {
            h = c.forward(&h)?;
            if i < last {
                h = h.relu()?;
            }
        }
        let skip = match &self.downsample {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        (h + skip)?.relu()
    }
}

/// The convolutional trunk (no head).
#[derive(Debug, Clone)]
pub struct ResNetTrunk {
    conv1: Conv2d,
    fast_conv1: FastConv,
    blocks: Vec<Block>,
    names: Vec<String>,
    pub cfg: ResNetConfig,
}

impl ResNetTrunk {
    pub fn new(vb: VarBuilder, cfg: &ResNetConfig, keys: TrunkKeys) -> Result<Self> {
        let conv1 = conv_bn(vb.pp(keys.conv1()), vb.pp(keys.bn1()), 3, 64, 7, 2)?;
        let mut blocks = Vec::new();
        let mut names = vec!["maxpool".to_string()];
        let mut cin = 64;
        for (li, &n) in cfg.blocks.iter().enumerate() {
            let planes = 64 << li;
            for bi in 0..n {
                let stride = if bi == 0 && li > 0 { 2 } else { 1 };
                blocks.push(Block::new(vb.pp(keys.layer(li)).pp(bi), cin, planes, stride, cfg.bottleneck)?);
                names.push(format!("layer{}.{bi}", li + 1));
                cin = if cfg.bottleneck { planes * 4 } else { planes };
            }
        }
        let fast_conv1 = FastConv::from(&conv1)?;
        Ok(Self { conv1, fast_conv1, blocks, names, cfg: *cfg })
    }

    pub fn stage_names(&self) -> Vec<String> {
        self.names.clone()
    }

    pub fn run_stage(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        if i == 0 {
            let h = self.conv1.forward(x)?.relu()?;
            // maxpool 3×3, stride 2, padding 1 (−∞ padding: pad with a very negative value).
            let h = h.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?;
            return h.max_pool2d_with_stride(3, 2);
        }
        match self.blocks.get(i - 1) {
            Some(b) => b.forward(x),
            None => candle_core::bail!("ResNet has {} stages, asked for {i}", self.names.len()),
        }
    }

    /// [`Self::run_stage`] on the no-gradient CPU path (same numbers to float rounding).
    pub fn run_stage_nograd(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() {
            return self.run_stage(i, x);
        }
        if i == 0 {
            let (h, d) = self.fast_conv1.run(&x.flatten_all()?.to_vec1::<f32>()?, dims4(x)?, None, true)?;
            let h = Tensor::from_vec(h, (d[0], d[1], d[2], d[3]), x.device())?;
            let h = h.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?;
            return h.max_pool2d_with_stride(3, 2);
        }
        match self.blocks.get(i - 1) {
            Some(b) => b.forward_fast(x),
            None => candle_core::bail!("ResNet has {} stages, asked for {i}", self.names.len()),
        }
    }

    /// Global average pool `(b, c, h, w) → (b, c)`.
    pub fn pooled(&self, x: &Tensor) -> Result<Tensor> {
        x.mean((2, 3))
    }

    /// Stage of a layer name: exact (`layer4.1`), a whole layer (`layer4` = its last block), or
    /// pytorch-grad-cam's spelling `layer4[-1]`.
    pub fn resolve(&self, name: &str) -> Option<usize> {
        let name = name.trim().replace("[-1]", "");
        if let Some(i) = self.names.iter().position(|n| *n == name) {
            return Some(i);
        }
        self.names.iter().rposition(|n| n.split('.').next() == Some(name.as_str()))
    }
}

/// A ResNet classifier (torchvision layout).
#[derive(Debug, Clone)]
pub struct ResNet {
    pub trunk: ResNetTrunk,
    fc: Linear,
}

impl ResNet {
    pub fn new(vb: VarBuilder, cfg: &ResNetConfig) -> Result<Self> {
        let trunk = ResNetTrunk::new(vb.clone(), cfg, TrunkKeys::Torchvision)?;
        let fc = candle_nn::linear(cfg.feature_dim(), cfg.num_classes, vb.pp("fc"))?;
        Ok(Self { trunk, fc })
    }
}

impl super::staged::Staged for ResNet {
    fn stage_names(&self) -> Vec<String> {
        self.trunk.stage_names()
    }
    fn run_stage(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        self.trunk.run_stage(i, x)
    }
    fn run_stage_nograd(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        self.trunk.run_stage_nograd(i, x)
    }
    fn pooled(&self, x: &Tensor) -> Result<Tensor> {
        self.trunk.pooled(x)
    }
    fn head(&self, pooled: &Tensor) -> Result<Tensor> {
        self.fc.forward(pooled)
    }
    fn default_cam_stage(&self) -> usize {
        self.trunk.names.len() - 1
    }
    fn resolve_layer(&self, name: &str) -> Option<usize> {
        self.trunk.resolve(name)
    }
}

/// ResNet depth from torchvision keys (`layer3.5` exists for 34/50; `conv3` for bottlenecks).
pub fn detect(keys: &dyn Fn(&str) -> bool, prefix: &str) -> Option<ResNetConfig> {
    let k = |s: &str| keys(&format!("{prefix}{s}"));
    if !k("layer4.0.conv1.weight") && !k("7.0.conv1.weight") {
        return None;
    }
    let layer3_deep = k("layer3.5.conv1.weight") || k("6.5.conv1.weight");
    let bottleneck = k("layer1.0.conv3.weight") || k("4.0.conv3.weight");
    Some(match (bottleneck, layer3_deep) {
        (true, _) => ResNetConfig::resnet50(),
        (false, true) => ResNetConfig::resnet34(),
        (false, false) => ResNetConfig::resnet18(),
    })
}
