//! The building blocks of BigGAN-deep: spectral-norm folding, conditional batch norm with
//! truncation-indexed statistics, the bottleneck GenBlock and the self-attention layer.
//!
//! Names mirror `pytorch_pretrained_biggan/model.py` so that `vb.pp(...)` paths equal the
//! checkpoint keys.

use candle_core::{DType, Module as _, Result, Tensor, D};
use candle_nn::VarBuilder;

/// Reads a spectral-norm module (`weight_orig`, `weight_u`, `weight_v`) and folds σ into the weight.
///
/// At inference `W = weight_orig / σ`, `σ = uᵀ (W_mat v)`, `W_mat = weight_orig.reshape(out, −1)`.
/// The stored u/v are used as they are: eval mode runs no power iteration.
pub fn sn_weight<S: Into<candle_core::Shape>>(vb: &VarBuilder, shape: S) -> Result<Tensor> {
    let shape: candle_core::Shape = shape.into();
    let dims = shape.dims().to_vec();
    let out = dims[0];
    let rest: usize = dims[1..].iter().product();
    let w = vb.get(shape, "weight_orig")?;
    let u = vb.get(out, "weight_u")?;
    let v = vb.get(rest, "weight_v")?;
    let sigma = spectral_sigma(&w, &u, &v)?;
    // One f32 tensor op: no f64 copy of large weights (gen_z of deep-256 is 32 MB).
    w.affine(1.0 / sigma, 0.0)
}

/// σ = uᵀ (W_mat v): the matrix–vector product in f32 as the reference does (no copy of W),
/// the final dot product in f64.
pub fn spectral_sigma(w: &Tensor, u: &Tensor, v: &Tensor) -> Result<f64> {
    let out = w.dim(0)?;
    let wv = w
        .to_dtype(DType::F32)?
        .reshape((out, ()))?
        .matmul(&v.to_dtype(DType::F32)?.unsqueeze(1)?)?
        .squeeze(1)?
        .to_dtype(DType::F64)?;
    let s = (wv * u.to_dtype(DType::F64)?)?.sum_all()?.to_scalar::<f64>()?;
    if !s.is_finite() || s == 0.0 {
        candle_core::bail!("spectral norm σ = {s} is not usable (weight_u/weight_v broken?)");
    }
    Ok(s)
}

/// Where a truncation value falls in the `[n_stats, C]` statistics tables.
///
/// **Parity quirk**: `(coef, idx) = modf(t / (1/(n_stats−1)))` in f64, and the mix is
/// `row[idx]·coef + row[idx+1]·(1−coef)` — the reverse of an ordinary lerp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsIndex {
    pub index: usize,
    pub coef: f64,
}

impl StatsIndex {
    /// Locates `truncation` (which must lie in (0, 1]) for tables of `n_stats` rows.
    pub fn new(truncation: f64, n_stats: usize) -> Result<Self> {
        if !(truncation > 0.0 && truncation <= 1.0) {
            candle_core::bail!("truncation must lie in (0, 1], got {truncation}");
        }
        let step = 1.0 / (n_stats as f64 - 1.0);
        let q = truncation / step;
        let index = q.trunc();
        let coef = q - index;
        let index = index as usize;
        if index >= n_stats || (coef != 0.0 && index + 1 >= n_stats) {
            candle_core::bail!("truncation {truncation} falls outside the {n_stats} statistics rows");
        }
        Ok(Self { index, coef })
    }

    /// Mixes one `[n_stats, C]` table into a `[C]` row.
    pub fn select(&self, table: &Tensor) -> Result<Tensor> {
        let a = table.get(self.index)?;
        if self.coef == 0.0 {
            return Ok(a);
        }
        let b = table.get(self.index + 1)?;
        // f32 tensors times a Python float: PyTorch computes in f32 with the scalar rounded.
        (a * self.coef)? + (b * (1.0 - self.coef))?
    }
}

/// A convolution (weights already folded), stride 1, "same" zero padding.
#[derive(Debug, Clone)]
pub struct Conv {
    /// `[out, in, k, k]`
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// The CPU kernels' Winograd transform of `weight`, made on first use (only 3×3 layers on
    /// large maps take that path); `weight` never changes after loading.
    pub winograd: std::sync::Arc<std::sync::OnceLock<Vec<f32>>>,
}

impl Conv {
    /// A spectral-norm conv (`SNConv2d`) of kernel `k`.
    pub fn sn(vb: VarBuilder, cin: usize, cout: usize, k: usize, bias: bool) -> Result<Self> {
        let weight = sn_weight(&vb, (cout, cin, k, k))?;
        let bias = if bias { Some(vb.get(cout, "bias")?) } else { None };
        Ok(Self { weight, bias, winograd: Default::default() })
    }

    /// Bytes of the weight and bias.
    pub fn param_bytes(&self) -> usize {
        4 * (self.weight.elem_count() + self.bias.as_ref().map_or(0, |b| b.elem_count()))
    }

    pub fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Keeps only the first `n` output channels (e.g. the 3 RGB channels of `conv_to_rgb`).
    pub fn keep_outputs(&self, n: usize) -> Result<Self> {
        Ok(Self {
            weight: self.weight.narrow(0, 0, n)?.contiguous()?,
            bias: self.bias.as_ref().map(|b| b.narrow(0, 0, n)).transpose()?,
            winograd: Default::default(),
        })
    }

    /// `x (b, c, h, w) → (b, out, h, w)` with candle's conv (the portable path).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let pad = self.kernel() / 2;
        let y = x.conv2d(&self.weight, pad, 1, 1, 1)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

/// Per-(sample, channel) affine `a·x + b` that a batch norm reduces to once its statistics and
/// condition are known; consumers apply `relu(a·x + b)` in one pass.
#[derive(Debug, Clone)]
pub struct Affine {
    /// `(b, c)`
    pub scale: Tensor,
    /// `(b, c)`
    pub shift: Tensor,
}

impl Affine {
    /// `relu(a·x + b)` on a `(b, c, h, w)` tensor (the portable path).
    pub fn relu(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c) = self.scale.dims2()?;
        let s = self.scale.reshape((b, c, 1, 1))?;
        let t = self.shift.reshape((b, c, 1, 1))?;
        x.broadcast_mul(&s)?.broadcast_add(&t)?.relu()
    }
}

/// `BigGANBatchNorm`: batch norm with truncation-indexed statistics; conditional (scale/offset
/// from the condition vector through SN-Linear layers without bias) or plain (weight/bias).
#[derive(Debug, Clone)]
pub struct BigGanBatchNorm {
    running_means: Tensor,
    running_vars: Tensor,
    eps: f64,
    kind: BnKind,
}

#[derive(Debug, Clone)]
enum BnKind {
    /// `scale.weight`, `offset.weight`: `(c, cond_dim)`
    Conditional {
        scale: Tensor,
        offset: Tensor,
    },
    Plain {
        weight: Tensor,
        bias: Tensor,
    },
}

impl BigGanBatchNorm {
    pub fn conditional(vb: VarBuilder, c: usize, cond_dim: usize, n_stats: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            running_means: vb.get((n_stats, c), "running_means")?,
            running_vars: vb.get((n_stats, c), "running_vars")?,
            eps,
            kind: BnKind::Conditional {
                scale: sn_weight(&vb.pp("scale"), (c, cond_dim))?,
                offset: sn_weight(&vb.pp("offset"), (c, cond_dim))?,
            },
        })
    }

    pub fn plain(vb: VarBuilder, c: usize, n_stats: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            running_means: vb.get((n_stats, c), "running_means")?,
            running_vars: vb.get((n_stats, c), "running_vars")?,
            eps,
            kind: BnKind::Plain { weight: vb.get(c, "weight")?, bias: vb.get(c, "bias")? },
        })
    }

    /// Bytes of the statistics tables and the scale/offset (or weight/bias) parameters.
    pub fn param_bytes(&self) -> usize {
        let k = match &self.kind {
            BnKind::Conditional { scale, offset } => scale.elem_count() + offset.elem_count(),
            BnKind::Plain { weight, bias } => weight.elem_count() + bias.elem_count(),
        };
        4 * (k + self.running_means.elem_count() + self.running_vars.elem_count())
    }

    /// The per-(sample, channel) affine for a condition `(b, cond_dim)` (ignored when plain)
    /// and batch size `b`.
    pub fn affine(&self, stats: StatsIndex, cond: &Tensor) -> Result<Affine> {
        if crate::ops::fused_for(cond) {
            return self.affine_cpu(stats, cond);
        }
        let b = cond.dim(0)?;
        let mean = stats.select(&self.running_means)?;
        let inv_std = (stats.select(&self.running_vars)? + self.eps)?.sqrt()?.recip()?;
        let (gain, offset) = match &self.kind {
            BnKind::Conditional { scale, offset } => {
                let g = (cond.matmul(&scale.t()?)? + 1.0)?;
                (g, cond.matmul(&offset.t()?)?)
            }
            BnKind::Plain { weight, bias } => {
                let c = weight.dim(0)?;
                (weight.unsqueeze(0)?.expand((b, c))?, bias.unsqueeze(0)?.expand((b, c))?)
            }
        };
        // (x − μ)/σ · g + o  =  x · (g/σ) + (o − μ·g/σ)
        let scale = gain.broadcast_mul(&inv_std.unsqueeze(0)?)?;
        let shift = (offset - scale.broadcast_mul(&mean.unsqueeze(0)?)?)?;
        Ok(Affine { scale: scale.contiguous()?, shift: shift.contiguous()? })
    }
}

impl BigGanBatchNorm {
    /// [`Self::affine`] in plain loops over borrowed CPU buffers: ~15 tiny tensor ops per batch
    /// norm (600 per forward) cost more in dispatch than in arithmetic.
    fn affine_cpu(&self, stats: StatsIndex, cond: &Tensor) -> Result<Affine> {
        use crate::ops::CpuView;
        let (b, cd) = cond.dims2()?;
        let cond = cond.contiguous()?;
        let cv = CpuView::new(&cond)?;
        let (rm, rv) = (CpuView::new(&self.running_means)?, CpuView::new(&self.running_vars)?);
        let (rm, rv) = (rm.slice()?, rv.slice()?);
        let c = self.running_means.dim(1)?;
        // The same f32 arithmetic as the tensor path: row·coef + next·(1 − coef).
        let mix = |t: &[f32], ch: usize| {
            let a = t[stats.index * c + ch];
            if stats.coef == 0.0 {
                a
            } else {
                a * stats.coef as f32 + t[(stats.index + 1) * c + ch] * (1.0 - stats.coef) as f32
            }
        };
        let mut scale = vec![0f32; b * c];
        let mut shift = vec![0f32; b * c];
        let cond = cv.slice()?;
        // 16 independent partial sums so the dot product vectorises (a plain `.sum()` is a
        // serial chain of adds).
        let dot = |w: &[f32], row: &[f32]| {
            let mut acc = [0f32; 16];
            let (wc, rc) = (w.chunks_exact(16), row.chunks_exact(16));
            let tail: f32 = wc.remainder().iter().zip(rc.remainder()).map(|(x, y)| x * y).sum();
            for (a, b) in wc.zip(rc) {
                for k in 0..16 {
                    acc[k] += a[k] * b[k];
                }
            }
            acc.iter().sum::<f32>() + tail
        };
        let (wv_s, wv_o, pv_w, pv_b);
        let (ws, wo, pw, pb): (Option<&[f32]>, Option<&[f32]>, Option<&[f32]>, Option<&[f32]>) = match &self.kind {
            BnKind::Conditional { scale, offset } => {
                wv_s = CpuView::new(scale)?;
                wv_o = CpuView::new(offset)?;
                (Some(wv_s.slice()?), Some(wv_o.slice()?), None, None)
            }
            BnKind::Plain { weight, bias } => {
                pv_w = CpuView::new(weight)?;
                pv_b = CpuView::new(bias)?;
                (None, None, Some(pv_w.slice()?), Some(pv_b.slice()?))
            }
        };
        // Channels outer: each weight row is read once for the whole batch (the conditions are
        // a few KB; the weights of one forward's batch norms are ~40 MB at deep-128).
        for ch in 0..c {
            let mean = mix(rm, ch);
            let inv_std = 1.0 / (mix(rv, ch) + self.eps as f32).sqrt();
            for bi in 0..b {
                let row = &cond[bi * cd..(bi + 1) * cd];
                let (g, o) = match (ws, wo, pw, pb) {
                    (Some(ws), Some(wo), _, _) => {
                        (dot(&ws[ch * cd..(ch + 1) * cd], row) + 1.0, dot(&wo[ch * cd..(ch + 1) * cd], row))
                    }
                    (_, _, Some(pw), Some(pb)) => (pw[ch], pb[ch]),
                    _ => candle_core::bail!("batch norm without parameters"),
                };
                let s = g * inv_std;
                scale[bi * c + ch] = s;
                shift[bi * c + ch] = o - s * mean;
            }
        }
        let dev = &candle_core::Device::Cpu;
        Ok(Affine { scale: Tensor::from_vec(scale, (b, c), dev)?, shift: Tensor::from_vec(shift, (b, c), dev)? })
    }
}

/// The bottleneck residual block of BigGAN-deep (`GenBlock`, reduction 4).
#[derive(Debug, Clone)]
pub struct GenBlock {
    pub bn_0: BigGanBatchNorm,
    pub conv_0: Conv,
    pub bn_1: BigGanBatchNorm,
    pub conv_1: Conv,
    pub bn_2: BigGanBatchNorm,
    pub conv_2: Conv,
    pub bn_3: BigGanBatchNorm,
    pub conv_3: Conv,
    pub up_sample: bool,
    /// Skip path keeps the first `in/2` channels when in ≠ out (no 1×1 conv on the skip).
    pub drop_channels: bool,
}

impl GenBlock {
    pub fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        up_sample: bool,
        cond_dim: usize,
        n_stats: usize,
        eps: f64,
    ) -> Result<Self> {
        let mid = cin / 4;
        let bn = |name: &str, c| BigGanBatchNorm::conditional(vb.pp(name), c, cond_dim, n_stats, eps);
        Ok(Self {
            bn_0: bn("bn_0", cin)?,
            conv_0: Conv::sn(vb.pp("conv_0"), cin, mid, 1, true)?,
            bn_1: bn("bn_1", mid)?,
            conv_1: Conv::sn(vb.pp("conv_1"), mid, mid, 3, true)?,
            bn_2: bn("bn_2", mid)?,
            conv_2: Conv::sn(vb.pp("conv_2"), mid, mid, 3, true)?,
            bn_3: bn("bn_3", mid)?,
            conv_3: Conv::sn(vb.pp("conv_3"), mid, cout, 1, true)?,
            up_sample,
            drop_channels: cin != cout,
        })
    }

    /// Bytes of the (folded) parameters.
    pub fn param_bytes(&self) -> usize {
        let convs =
            [&self.conv_0, &self.conv_1, &self.conv_2, &self.conv_3].iter().map(|c| c.param_bytes()).sum::<usize>();
        convs + [&self.bn_0, &self.bn_1, &self.bn_2, &self.bn_3].iter().map(|b| b.param_bytes()).sum::<usize>()
    }

    /// The four batch-norm affines for one condition.
    pub fn affines(&self, stats: StatsIndex, cond: &Tensor) -> Result<[Affine; 4]> {
        Ok([
            self.bn_0.affine(stats, cond)?,
            self.bn_1.affine(stats, cond)?,
            self.bn_2.affine(stats, cond)?,
            self.bn_3.affine(stats, cond)?,
        ])
    }

    /// The skip path: first `in/2` channels when channels drop, nearest ×2 when upsampling.
    pub fn skip(&self, x: &Tensor) -> Result<Tensor> {
        let mut s = x.clone();
        if self.drop_channels {
            let c = x.dim(1)?;
            s = s.narrow(1, 0, c / 2)?;
        }
        if self.up_sample {
            let (_, _, h, w) = s.dims4()?;
            s = s.upsample_nearest2d(2 * h, 2 * w)?;
        }
        Ok(s)
    }

    /// `x (b, in, h, w) → (b, out, h', w')` with candle ops (the portable path).
    pub fn forward(&self, x: &Tensor, a: &[Affine; 4]) -> Result<Tensor> {
        let h = self.conv_0.forward(&a[0].relu(x)?)?;
        let mut h = a[1].relu(&h)?;
        if self.up_sample {
            let (_, _, hh, ww) = h.dims4()?;
            h = h.upsample_nearest2d(2 * hh, 2 * ww)?;
        }
        let h = self.conv_1.forward(&h)?;
        let h = self.conv_2.forward(&a[2].relu(&h)?)?;
        let h = self.conv_3.forward(&a[3].relu(&h)?)?;
        h + self.skip(x)?
    }
}

/// Self-attention (`SelfAttn`): θ, φ, g 1×1 SN convs without bias, φ and g max-pooled 2×2,
/// softmax over keys **without 1/√d scaling** (parity quirk), `out = x + γ·o_conv(g·attnᵀ)`.
#[derive(Debug, Clone)]
pub struct SelfAttn {
    pub snconv1x1_theta: Conv,
    pub snconv1x1_phi: Conv,
    pub snconv1x1_g: Conv,
    pub snconv1x1_o_conv: Conv,
    pub gamma: f64,
}

impl SelfAttn {
    pub fn new(vb: VarBuilder, c: usize) -> Result<Self> {
        Ok(Self {
            snconv1x1_theta: Conv::sn(vb.pp("snconv1x1_theta"), c, c / 8, 1, false)?,
            snconv1x1_phi: Conv::sn(vb.pp("snconv1x1_phi"), c, c / 8, 1, false)?,
            snconv1x1_g: Conv::sn(vb.pp("snconv1x1_g"), c, c / 2, 1, false)?,
            snconv1x1_o_conv: Conv::sn(vb.pp("snconv1x1_o_conv"), c / 2, c, 1, false)?,
            gamma: vb.get(1, "gamma")?.to_dtype(DType::F64)?.get(0)?.to_scalar::<f64>()?,
        })
    }

    /// Bytes of the four convolutions.
    pub fn param_bytes(&self) -> usize {
        [&self.snconv1x1_theta, &self.snconv1x1_phi, &self.snconv1x1_g, &self.snconv1x1_o_conv]
            .iter()
            .map(|c| c.param_bytes())
            .sum::<usize>()
            + 4
    }

    /// `x (b, c, h, w) → (b, c, h, w)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = h * w;
        let theta = self.snconv1x1_theta.forward(x)?.reshape((b, c / 8, n))?;
        let phi = self.snconv1x1_phi.forward(x)?.max_pool2d(2)?.reshape((b, c / 8, n / 4))?;
        let attn = theta.transpose(1, 2)?.contiguous()?.matmul(&phi)?; // (b, n, n/4)
        let attn = candle_nn::ops::softmax(&attn, D::Minus1)?;
        let g = self.snconv1x1_g.forward(x)?.max_pool2d(2)?.reshape((b, c / 2, n / 4))?;
        let attn_g = g.matmul(&attn.transpose(1, 2)?.contiguous()?)?.reshape((b, c / 2, h, w))?;
        let o = self.snconv1x1_o_conv.forward(&attn_g)?;
        x + (o * self.gamma)?
    }
}

/// A plain Linear `y = x Wᵀ (+ b)` with an already-folded weight.
#[derive(Debug, Clone)]
pub struct Linear(pub candle_nn::Linear);

impl Linear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)
    }
}
