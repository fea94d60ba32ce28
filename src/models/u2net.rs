//! U²-Net (Qin, Zhang, Huang, Dehghan, Zaiane & Jagersand, 2020, "U²-Net: Going deeper with
//! nested U-structure for salient object detection"; github.com/xuebinqin/U-2-Net), as copied
//! into CGN (autonomousvision/counterfactual_generative_networks, `imagenet/models/u2net.py`),
//! where it turns the shape generator's output into the mask.
//!
//! The full model `U2NET(in_ch, out_ch)`: six encoder stages (RSU7, RSU6, RSU5, RSU4, RSU4F,
//! RSU4F) joined by 2×2 max-pools (stride 2, `ceil_mode=True`), five decoder stages on
//! `cat(upsampled deeper stage, skip)`, six 3×3 side convolutions upsampled to the input size,
//! and a 1×1 `outconv` fusing them; the output is `sigmoid(fused)`.
//!
//! **Parity quirk**: CGN's copy upsamples bilinearly with `align_corners=True`; the original
//! repository's `F.upsample(..., mode='bilinear')` means `align_corners=False`
//! ([`U2NetConfig::upsample_align_corners`]). The two differ by up to 1.46 in the fused logits.
//!
//! Batch norms run in eval mode (running statistics, eps 1e-5) and are folded into the preceding
//! convolution at load time, so a REBNCONV is `relu(conv'(x))`.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::checkpoint::{KeyReport, TensorMap, TrackedWeights};
use crate::ops::{self, Conv2dArgs};
use crate::ops::{fused_for, CpuView};

/// Batch-norm epsilon of `nn.BatchNorm2d`.
const BN_EPS: f64 = 1e-5;

/// Configuration of `U2NET(in_ch, out_ch)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct U2NetConfig {
    pub in_ch: usize,
    pub out_ch: usize,
    /// Bilinear upsampling with `align_corners=True` (CGN's copy) or `False` (the original repo).
    pub upsample_align_corners: bool,
}

impl Default for U2NetConfig {
    /// CGN's U²-Net: `U2NET(3, 1)` with `align_corners=True`.
    fn default() -> Self {
        Self::cgn()
    }
}

impl U2NetConfig {
    /// The U²-Net inside CGN-ImageNet (`imagenet/models/u2net.py`).
    pub fn cgn() -> Self {
        Self { in_ch: 3, out_ch: 1, upsample_align_corners: true }
    }

    /// The original release (`u2net.pth` of xuebinqin/U-2-Net, `model/u2net.py`).
    pub fn original() -> Self {
        Self { upsample_align_corners: false, ..Self::cgn() }
    }
}

/// A 3×3 (or 1×1) convolution with bias, "same" padding and a dilation.
#[derive(Debug, Clone)]
pub struct Conv {
    /// `(out, in, k, k)`
    pub weight: Tensor,
    /// `(out)`
    pub bias: Tensor,
    pub dilation: usize,
}

impl Conv {
    /// A plain `nn.Conv2d(cin, cout, k, padding=dilation·(k/2), dilation)` with bias.
    pub fn new(vb: VarBuilder, cin: usize, cout: usize, k: usize, dilation: usize) -> Result<Self> {
        Ok(Self { weight: vb.get((cout, cin, k, k), "weight")?, bias: vb.get(cout, "bias")?, dilation })
    }

    fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    /// `x (b, cin, h, w) → (b, cout, h, w)`, optionally followed by ReLU.
    pub fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        if self.dilation == 1 && fused_for(x) && self.weight.device().is_cpu() {
            return self.forward_cpu(x, relu);
        }
        let pad = self.dilation * (self.kernel() / 2);
        let y =
            x.conv2d(&self.weight, pad, 1, self.dilation, 1)?.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    /// The undilated case through the tiled im2col + GEMM kernel of [`crate::ops`].
    fn forward_cpu(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let o = self.weight.dim(0)?;
        let x = x.contiguous()?;
        let (xv, wv, bv) = (CpuView::new(&x)?, CpuView::new(&self.weight)?, CpuView::new(&self.bias)?);
        let mut out = ops::output_buffer(b * o * h * w);
        let args = Conv2dArgs {
            x: xv.slice()?,
            dims: [b, c, h, w],
            pre: None,
            upsample2: false,
            weight: wv.slice()?,
            out_channels: o,
            kernel: self.kernel(),
            bias: Some(bv.slice()?),
            residual: None,
            winograd_u: None,
        };
        ops::conv2d(&args, &mut out)?;
        if relu {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        Tensor::from_vec(out, (b, o, h, w), &Device::Cpu)
    }
}

/// `REBNCONV`: `conv_s1` (3×3, dilation d, padding d) → `bn_s1` (eval) → ReLU, with the batch
/// norm folded into the convolution.
#[derive(Debug, Clone)]
pub struct RebnConv {
    pub conv_s1: Conv,
}

impl RebnConv {
    pub fn new(vb: VarBuilder, cin: usize, cout: usize, dirate: usize) -> Result<Self> {
        let conv = Conv::new(vb.pp("conv_s1"), cin, cout, 3, dirate)?;
        let bn = vb.pp("bn_s1");
        let get = |name: &str| -> Result<Vec<f64>> {
            bn.get(cout, name)?.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_vec1::<f64>()
        };
        let (gamma, beta, mean, var) = (get("weight")?, get("bias")?, get("running_mean")?, get("running_var")?);
        // bn(conv(x)) = a·(W∗x + b − μ) + β with a = γ/√(σ² + ε): scale W's rows by a.
        let a: Vec<f64> = gamma.iter().zip(&var).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
        let dev = conv.weight.device().clone();
        let a_t = Tensor::from_vec(a.clone(), (cout, 1, 1, 1), &Device::Cpu)?;
        let weight =
            conv.weight.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.broadcast_mul(&a_t)?.to_dtype(DType::F32)?;
        let bias0 = conv.bias.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_vec1::<f64>()?;
        let bias: Vec<f32> = (0..cout).map(|o| ((bias0[o] - mean[o]) * a[o] + beta[o]) as f32).collect();
        Ok(Self {
            conv_s1: Conv {
                weight: weight.to_device(&dev)?,
                bias: Tensor::from_vec(bias, cout, &Device::Cpu)?.to_device(&dev)?,
                dilation: dirate,
            },
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv_s1.forward(x, true)
    }
}

/// A residual U-block: `RSU{L}` (`height` = L, pooled levels, dilation 2 at the bottom) or
/// `RSU4F` (no pooling, dilations 1, 2, 4, 8).
#[derive(Debug, Clone)]
pub struct Rsu {
    pub rebnconvin: RebnConv,
    /// `rebnconv1 … rebnconv{L}`.
    pub encoder: Vec<RebnConv>,
    /// `rebnconv{L−1}d … rebnconv1d`.
    pub decoder: Vec<RebnConv>,
    /// RSU4F: dilated instead of pooled.
    pub flat: bool,
}

impl Rsu {
    /// `RSU{height}(in_ch, mid_ch, out_ch)`, or `RSU4F` when `flat` (height 4).
    pub fn new(vb: VarBuilder, height: usize, flat: bool, cin: usize, mid: usize, cout: usize) -> Result<Self> {
        if height < 3 || (flat && height != 4) {
            candle_core::bail!("RSU height {height} (flat: {flat}) is not a U²-Net block");
        }
        let enc_dil = |i: usize| {
            if flat {
                1 << (i - 1)
            } else if i == height {
                2
            } else {
                1
            }
        };
        let dec_dil = |l: usize| if flat { 1 << (l - 1) } else { 1 };
        let rebnconvin = RebnConv::new(vb.pp("rebnconvin"), cin, cout, 1)?;
        let encoder = (1..=height)
            .map(|i| RebnConv::new(vb.pp(format!("rebnconv{i}")), if i == 1 { cout } else { mid }, mid, enc_dil(i)))
            .collect::<Result<Vec<_>>>()?;
        let decoder = (1..height)
            .rev()
            .map(|l| {
                RebnConv::new(vb.pp(format!("rebnconv{l}d")), 2 * mid, if l == 1 { cout } else { mid }, dec_dil(l))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { rebnconvin, encoder, decoder, flat })
    }

    /// `x (b, in, h, w) → (b, out, h, w)`.
    pub fn forward(&self, x: &Tensor, align_corners: bool) -> Result<Tensor> {
        let height = self.encoder.len();
        let hxin = self.rebnconvin.forward(x)?;
        // Encoder outputs hx1 … hx{L−1}; pools follow rebnconv1 … rebnconv{L−2} (never in RSU4F).
        let mut skips: Vec<Tensor> = Vec::with_capacity(height - 1);
        let mut h = hxin.clone();
        for (i, conv) in self.encoder[..height - 1].iter().enumerate() {
            let hx = conv.forward(&h)?;
            h = if !self.flat && i + 2 < height { max_pool_ceil(&hx)? } else { hx.clone() };
            skips.push(hx);
        }
        let mut d = self.encoder[height - 1].forward(&h)?;
        for (conv, level) in self.decoder.iter().zip((1..height).rev()) {
            d = conv.forward(&Tensor::cat(&[&d, &skips[level - 1]], 1)?)?;
            if level > 1 && !self.flat {
                d = upsample_like(&d, &skips[level - 2], align_corners)?;
            }
        }
        d + hxin
    }
}

/// 2×2 max-pool, stride 2, `ceil_mode=True`: an odd edge keeps its last row/column as a window
/// of one (padding by a copy of that row/column does exactly that).
pub fn max_pool_ceil(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut x = x.clone();
    if h % 2 == 1 {
        x = x.pad_with_same(2, 0, 1)?;
    }
    if w % 2 == 1 {
        x = x.pad_with_same(3, 0, 1)?;
    }
    x.max_pool2d(2)
}

/// `_upsample_like(src, tar)`: bilinear resize of `src` to `tar`'s spatial size.
pub fn upsample_like(src: &Tensor, tar: &Tensor, align_corners: bool) -> Result<Tensor> {
    let (_, _, h, w) = tar.dims4()?;
    let (_, _, sh, sw) = src.dims4()?;
    if (sh, sw) == (h, w) {
        return Ok(src.clone());
    }
    src.contiguous()?.upsample_bilinear2d(h, w, align_corners)
}

/// The fused map and the six side maps of one forward, all at the input size, before the sigmoid.
#[derive(Debug, Clone)]
pub struct U2NetOutput {
    /// `outconv(cat(d1 … d6))` `(b, out_ch, h, w)`.
    pub d0_logits: Tensor,
    /// `side1 … side6`, sides 2–6 upsampled to the input size.
    pub side_logits: Vec<Tensor>,
}

impl U2NetOutput {
    /// `sigmoid(d0)`: what `U2NET.forward` returns (the saliency map).
    pub fn d0(&self) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.d0_logits)
    }

    /// `sigmoid(d_i)` for `i` in 1..=6.
    pub fn side(&self, i: usize) -> Result<Tensor> {
        let Some(t) = i.checked_sub(1).and_then(|j| self.side_logits.get(j)) else {
            candle_core::bail!("U²-Net has side outputs d1 … d6, not d{i}")
        };
        candle_nn::ops::sigmoid(t)
    }
}

/// The full U²-Net (`U2NET`), fields named like the PyTorch attributes.
#[derive(Debug, Clone)]
pub struct U2Net {
    pub stage1: Rsu,
    pub stage2: Rsu,
    pub stage3: Rsu,
    pub stage4: Rsu,
    pub stage5: Rsu,
    pub stage6: Rsu,
    pub stage5d: Rsu,
    pub stage4d: Rsu,
    pub stage3d: Rsu,
    pub stage2d: Rsu,
    pub stage1d: Rsu,
    /// `side1 … side6`: 3×3 convolutions to `out_ch`.
    pub sides: Vec<Conv>,
    /// 1×1 `6·out_ch → out_ch`.
    pub outconv: Conv,
    pub cfg: U2NetConfig,
}

impl U2Net {
    /// Builds `U2NET(cfg.in_ch, cfg.out_ch)` from a VarBuilder whose keys are those of
    /// `u2net.pth` (`stage1.rebnconvin.conv_s1.weight`, …, `side1.weight`, `outconv.bias`).
    pub fn new(vb: VarBuilder, cfg: &U2NetConfig) -> Result<Self> {
        let rsu = |name: &str, height, flat, cin, mid, cout| Rsu::new(vb.pp(name), height, flat, cin, mid, cout);
        let side_ch = [64, 64, 128, 256, 512, 512];
        let sides = side_ch
            .iter()
            .enumerate()
            .map(|(i, &c)| Conv::new(vb.pp(format!("side{}", i + 1)), c, cfg.out_ch, 3, 1))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            stage1: rsu("stage1", 7, false, cfg.in_ch, 32, 64)?,
            stage2: rsu("stage2", 6, false, 64, 32, 128)?,
            stage3: rsu("stage3", 5, false, 128, 64, 256)?,
            stage4: rsu("stage4", 4, false, 256, 128, 512)?,
            stage5: rsu("stage5", 4, true, 512, 256, 512)?,
            stage6: rsu("stage6", 4, true, 512, 256, 512)?,
            stage5d: rsu("stage5d", 4, true, 1024, 256, 512)?,
            stage4d: rsu("stage4d", 4, false, 1024, 128, 256)?,
            stage3d: rsu("stage3d", 5, false, 512, 64, 128)?,
            stage2d: rsu("stage2d", 6, false, 256, 32, 64)?,
            stage1d: rsu("stage1d", 7, false, 128, 16, 64)?,
            sides,
            outconv: Conv::new(vb.pp("outconv"), 6 * cfg.out_ch, cfg.out_ch, 1, 1)?,
            cfg: *cfg,
        })
    }

    /// `x (b, in_ch, h, w) → sigmoid(d0) (b, out_ch, h, w)`: the saliency map in (0, 1).
    /// The input is used as it is (CGN feeds the generator's [−1, 1] output, unnormalised).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_sides(x)?.d0()
    }

    /// The forward that also returns the side outputs and the fused logits.
    pub fn forward_sides(&self, x: &Tensor) -> Result<U2NetOutput> {
        let ac = self.cfg.upsample_align_corners;
        let up = |s: &Tensor, t: &Tensor| upsample_like(s, t, ac);
        let cat = |a: &Tensor, b: &Tensor| Tensor::cat(&[a, b], 1);
        let hx1 = self.stage1.forward(x, ac)?;
        let hx2 = self.stage2.forward(&max_pool_ceil(&hx1)?, ac)?;
        let hx3 = self.stage3.forward(&max_pool_ceil(&hx2)?, ac)?;
        let hx4 = self.stage4.forward(&max_pool_ceil(&hx3)?, ac)?;
        let hx5 = self.stage5.forward(&max_pool_ceil(&hx4)?, ac)?;
        let hx6 = self.stage6.forward(&max_pool_ceil(&hx5)?, ac)?;

        let hx5d = self.stage5d.forward(&cat(&up(&hx6, &hx5)?, &hx5)?, ac)?;
        drop(hx5);
        let hx4d = self.stage4d.forward(&cat(&up(&hx5d, &hx4)?, &hx4)?, ac)?;
        drop(hx4);
        let hx3d = self.stage3d.forward(&cat(&up(&hx4d, &hx3)?, &hx3)?, ac)?;
        drop(hx3);
        let hx2d = self.stage2d.forward(&cat(&up(&hx3d, &hx2)?, &hx2)?, ac)?;
        drop(hx2);
        let hx1d = self.stage1d.forward(&cat(&up(&hx2d, &hx1)?, &hx1)?, ac)?;
        drop(hx1);

        let d1 = self.sides[0].forward(&hx1d, false)?;
        let mut side_logits = vec![d1.clone()];
        for (side, h) in self.sides[1..].iter().zip([&hx2d, &hx3d, &hx4d, &hx5d, &hx6]) {
            side_logits.push(up(&side.forward(h, false)?, &d1)?);
        }
        let d0_logits = self.outconv.forward(&Tensor::cat(&side_logits, 1)?, false)?;
        Ok(U2NetOutput { d0_logits, side_logits })
    }
}

/// `num_batches_tracked` entries are BatchNorm bookkeeping the eval-mode model never reads.
pub fn is_bookkeeping(key: &str) -> bool {
    key.ends_with(".num_batches_tracked")
}

/// Builds a U²-Net from a checkpoint's tensors while recording which keys it used
/// (`num_batches_tracked` entries are dropped first; any other leftover is reported).
pub fn build_tracked(tensors: TensorMap, cfg: &U2NetConfig, device: &Device) -> Result<(U2Net, KeyReport)> {
    let tensors: TensorMap = tensors.into_iter().filter(|(k, _)| !is_bookkeeping(k)).collect();
    let tracked = TrackedWeights::new(tensors);
    let model = U2Net::new(tracked.var_builder(DType::F32, device), cfg);
    let report = tracked.report();
    match model {
        Ok(m) => Ok((m, report)),
        Err(e) if report.is_clean() => Err(e),
        Err(e) => Err(candle_core::Error::Msg(format!("{e} ({report})"))),
    }
}

/// Opens a U²-Net weights file (`u2net.pth`, zip or legacy pickle, or safetensors).
pub fn load(path: &std::path::Path, cfg: &U2NetConfig, device: &Device) -> Result<U2Net> {
    let tensors = crate::checkpoint::load(path).map_err(candle_core::Error::wrap)?;
    let (model, report) = build_tracked(tensors, cfg, device)?;
    if !report.is_clean() {
        tracing::warn!("{}: {report}", path.display());
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_align_corners_matches_hand_values() {
        // 1-D along width: [0, 3] → 4 samples. align_corners=True: 0, 1, 2, 3.
        // align_corners=False: src = (i + 0.5)/2 − 0.5 clamped at 0: 0, 0.75, 2.25, 3.
        let x = Tensor::new(&[[[[0f32, 3.0], [0.0, 3.0]]]], &Device::Cpu).unwrap();
        let t = Tensor::zeros((1, 1, 2, 4), DType::F32, &Device::Cpu).unwrap();
        let row = |ac| upsample_like(&x, &t, ac).unwrap().get(0).unwrap().get(0).unwrap().get(0).unwrap();
        assert_eq!(row(true).to_vec1::<f32>().unwrap(), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(row(false).to_vec1::<f32>().unwrap(), [0.0, 0.75, 2.25, 3.0]);
    }

    #[test]
    fn ceil_mode_pool_keeps_the_odd_edge() {
        let x = Tensor::arange(0f32, 15.0, &Device::Cpu).unwrap().reshape((1, 1, 3, 5)).unwrap();
        let y = max_pool_ceil(&x).unwrap();
        assert_eq!(y.dims(), &[1, 1, 2, 3]);
        let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, [6.0, 8.0, 9.0, 11.0, 13.0, 14.0]);
    }
}
