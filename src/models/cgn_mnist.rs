//! The MNIST Counterfactual Generative Network (Sauer & Geiger, 2021, "Counterfactual
//! Generative Networks", ICLR; reference: autonomousvision/counterfactual_generative_networks,
//! `mnists/models/cgn.py`). Three independent mechanisms share the input
//! `inp = cat(u, label_emb[y])` (u ∈ R³², 42-d in all):
//!
//! - `f_shape` → `mask_raw` [B,1,32,32]; `mask = clamp(mask_raw, 1e-4, 0.9999)` repeated to 3
//!   channels. There is **no sigmoid**: the last layer is an instance norm and the clamp makes the
//!   mask almost binary.
//! - `f_text1` → foreground texture, `f_text2` → background texture, both `tanh` outputs.
//! - `x = mask·fg + (1 − mask)·bg`.
//!
//! Layers follow the checkpoint's `nn.Sequential` indices (`f_shape.{0,4,5,9,10}`,
//! `f_text{1,2}.{0,3,4,7,8,10,11}`). Batch norms run in eval mode (running statistics,
//! eps 1e-5); instance norms have no affine and always normalise the current sample (biased
//! variance, eps 1e-5); LeakyReLU slope 0.2; upsampling is nearest ×2.
//!
//! The original also rolls each texture by a random torus shift inside `forward` ("tile 2×2,
//! crop 32×32 at a random corner"); here it is the separate, seedable step [`torus_shift`]
//! ([`Shifts::random`], [`Parts::shifted`]). The mask is never shifted.
//!
//! Checkpoints: the authors' `ckp.pth` (PyTorch zip, 57 entries incl. `num_batches_tracked`
//! int64 scalars, storages tagged `cuda:0`) or the same keys in safetensors, via
//! [`crate::checkpoint::load`].

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp as _, Module as _, ModuleT as _, Result, Tensor, D};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Linear, VarBuilder};

use crate::checkpoint::{self, CheckpointError, KeyReport, TensorMap, TrackedWeights};
use crate::noise::Rng;

/// Fixed sizes of the released MNIST CGNs (`CGN(n_classes=10, latent_sz=32, ngf=32, img_sz=32)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub n_classes: usize,
    pub latent_sz: usize,
    pub ngf: usize,
    pub img_sz: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { n_classes: 10, latent_sz: 32, ngf: 32, img_sz: 32 }
    }
}

impl Config {
    /// Input width of every mechanism: `latent_sz + n_classes`.
    pub fn inp_dim(&self) -> usize {
        self.latent_sz + self.n_classes
    }
    fn init_sz(&self) -> usize {
        self.img_sz / 4
    }
}

/// `float32(1e-4)` and `float32(0.9999)`, the clamp bounds of the mask.
pub const MASK_MIN: f32 = 1e-4;
pub const MASK_MAX: f32 = 0.9999;
const NORM_EPS: f64 = 1e-5;

fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    candle_nn::batch_norm(c, BatchNormConfig { eps: NORM_EPS, ..Default::default() }, vb)
}

fn conv3(cin: usize, cout: usize, bias: bool, vb: VarBuilder) -> Result<Conv2d> {
    let cfg = Conv2dConfig { padding: 1, ..Default::default() };
    if bias {
        candle_nn::conv2d(cin, cout, 3, cfg, vb)
    } else {
        candle_nn::conv2d_no_bias(cin, cout, 3, cfg, vb)
    }
}

/// conv3×3 → eval-mode BN, kept as candle modules (other devices) and folded into one biased
/// convolution for the CPU path ([`crate::ops::strided`]): `w·γ/σ`, `(b − μ)·γ/σ + β`.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    fast_w: Vec<f32>,
    fast_b: Vec<f32>,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, bias: bool, vb_conv: VarBuilder, vb_bn: VarBuilder) -> Result<Self> {
        let conv = conv3(cin, cout, bias, vb_conv)?;
        let bn = bn(cout, vb_bn)?;
        let (g, beta) =
            bn.weight_and_bias().ok_or_else(|| candle_core::Error::Msg("batch norm without affine".into()))?;
        let scale = (g / (bn.running_var() + bn.eps())?.sqrt()?)?;
        let cb = match conv.bias() {
            Some(b) => b.clone(),
            None => Tensor::zeros(cout, DType::F32, g.device())?,
        };
        let fast_b = (((cb - bn.running_mean())? * &scale)? + beta)?.to_vec1::<f32>()?;
        let fast_w = conv.weight().broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self { conv, bn, fast_w, fast_b })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() {
            return self.bn.forward_t(&self.conv.forward(x)?, false);
        }
        let (b, c, h, w) = x.dims4()?;
        let spec = crate::ops::strided::ConvSpec {
            weight: &self.fast_w,
            bias: &self.fast_b,
            out_channels: self.fast_b.len(),
            kernel: 3,
            stride: 1,
            padding: 1,
            depthwise: false,
        };
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let (y, d) = crate::ops::strided::conv(&xv, [b, c, h, w], &spec, None, crate::ops::strided::Epilogue::None)
            .map_err(candle_core::Error::wrap)?;
        Tensor::from_vec(y, (d[0], d[1], d[2], d[3]), x.device())
    }
}

/// Per-sample, per-channel normalisation over H×W (biased variance, eps 1e-5, no affine).
pub fn instance_norm(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let flat = x.reshape((b, c, h * w))?;
    let mean = flat.mean_keepdim(D::Minus1)?;
    let centred = flat.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred.broadcast_div(&(var + NORM_EPS)?.sqrt()?)?.reshape((b, c, h, w))
}

fn up2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.upsample_nearest2d(2 * h, 2 * w)
}

fn lrelu(x: &Tensor) -> Result<Tensor> {
    // max(x, 0.2·x) equals LeakyReLU(0.2) for every x.
    x.maximum(&(x * 0.2)?)
}

/// The shape mechanism (`f_shape`): Linear → IN → up → conv → BN → LReLU → IN → up → conv → BN →
/// LReLU → IN.
#[derive(Debug, Clone)]
pub struct ShapeMechanism {
    l0: Linear,
    c4: ConvBn,
    c9: ConvBn,
    ch: usize,
    init_sz: usize,
}

impl ShapeMechanism {
    fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (ch, s) = (2 * cfg.ngf, cfg.init_sz());
        Ok(Self {
            l0: candle_nn::linear(cfg.inp_dim(), ch * s * s, vb.pp("0"))?,
            c4: ConvBn::new(ch, cfg.ngf, false, vb.pp("4"), vb.pp("5"))?,
            c9: ConvBn::new(cfg.ngf, 1, false, vb.pp("9"), vb.pp("10"))?,
            ch,
            init_sz: s,
        })
    }

    /// `inp` [B,42] → `mask_raw` [B,1,32,32] (before the clamp).
    pub fn forward(&self, inp: &Tensor) -> Result<Tensor> {
        let b = inp.dim(0)?;
        let h = self.l0.forward(inp)?.reshape((b, self.ch, self.init_sz, self.init_sz))?;
        let h = up2(&instance_norm(&h)?)?;
        let h = lrelu(&self.c4.forward(&h)?)?;
        let h = up2(&instance_norm(&h)?)?;
        let h = lrelu(&self.c9.forward(&h)?)?;
        instance_norm(&h)
    }
}

/// A texture mechanism (`f_text1` / `f_text2`): Linear → up → conv → BN → LReLU → up → conv →
/// BN → LReLU → conv (+bias) → BN → (tanh).
#[derive(Debug, Clone)]
pub struct TextureMechanism {
    l0: Linear,
    c3: ConvBn,
    c7: ConvBn,
    c10: ConvBn,
    ch: usize,
    init_sz: usize,
}

impl TextureMechanism {
    fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (ch, s) = (2 * cfg.ngf, cfg.init_sz());
        Ok(Self {
            l0: candle_nn::linear(cfg.inp_dim(), ch * s * s, vb.pp("0"))?,
            c3: ConvBn::new(ch, ch, false, vb.pp("3"), vb.pp("4"))?,
            c7: ConvBn::new(ch, cfg.ngf, false, vb.pp("7"), vb.pp("8"))?,
            c10: ConvBn::new(cfg.ngf, 3, true, vb.pp("10"), vb.pp("11"))?,
            ch,
            init_sz: s,
        })
    }

    /// `inp` [B,42] → the texture before its tanh, [B,3,32,32].
    pub fn forward_pretanh(&self, inp: &Tensor) -> Result<Tensor> {
        let b = inp.dim(0)?;
        let h = self.l0.forward(inp)?.reshape((b, self.ch, self.init_sz, self.init_sz))?;
        let h = lrelu(&self.c3.forward(&up2(&h)?)?)?;
        let h = lrelu(&self.c7.forward(&up2(&h)?)?)?;
        self.c10.forward(&h)
    }
}

/// Everything one forward pass produces (all f32, NCHW, 32×32).
#[derive(Debug, Clone)]
pub struct Parts {
    /// `f_shape`'s output before the clamp, [B,1,H,W].
    pub mask_raw: Tensor,
    /// `clamp(mask_raw, 1e-4, 0.9999)` repeated to 3 channels, [B,3,H,W].
    pub mask: Tensor,
    pub fg_pretanh: Tensor,
    pub bg_pretanh: Tensor,
    /// Foreground texture in [−1, 1], [B,3,H,W].
    pub fg: Tensor,
    /// Background texture in [−1, 1], [B,3,H,W].
    pub bg: Tensor,
    /// The composite `mask·fg + (1 − mask)·bg`.
    pub x: Tensor,
}

impl Parts {
    /// The same parts with both textures torus-shifted (mask unchanged, `x` recomposed).
    /// `fg_pretanh`/`bg_pretanh` are shifted too, so they stay consistent with `fg`/`bg`.
    pub fn shifted(&self, s: &Shifts) -> Result<Parts> {
        let fg = torus_shift(&self.fg, &s.fg_dy, &s.fg_dx)?;
        let bg = torus_shift(&self.bg, &s.bg_dy, &s.bg_dx)?;
        Ok(Parts {
            mask_raw: self.mask_raw.clone(),
            mask: self.mask.clone(),
            fg_pretanh: torus_shift(&self.fg_pretanh, &s.fg_dy, &s.fg_dx)?,
            bg_pretanh: torus_shift(&self.bg_pretanh, &s.bg_dy, &s.bg_dx)?,
            x: composite(&self.mask, &fg, &bg)?,
            fg,
            bg,
        })
    }
}

/// `mask·fg + (1 − mask)·bg`.
pub fn composite(mask: &Tensor, fg: &Tensor, bg: &Tensor) -> Result<Tensor> {
    // bg + m·(fg − bg) rounds differently from the reference; keep its form.
    (mask.mul(fg)? + (1.0 - mask)?.mul(bg)?)?.contiguous()
}

/// Per-sample texture offsets for [`torus_shift`], each in 0..=32 (32 ≡ 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shifts {
    pub fg_dy: Vec<usize>,
    pub fg_dx: Vec<usize>,
    pub bg_dy: Vec<usize>,
    pub bg_dx: Vec<usize>,
}

impl Shifts {
    /// The shifts `intervene cgn --seed S` and the window apply to a batch drawn from seed S
    /// (so a frame in the window matches the command line).
    pub fn for_seed(seed: u64, batch: usize) -> Self {
        Self::seeded(batch, seed ^ 0x5_41F7)
    }

    /// No shift for `batch` samples.
    pub fn none(batch: usize) -> Self {
        Self { fg_dy: vec![0; batch], fg_dx: vec![0; batch], bg_dy: vec![0; batch], bg_dx: vec![0; batch] }
    }

    /// The same (dy, dx) for every sample's foreground and background.
    pub fn uniform(batch: usize, dy: usize, dx: usize) -> Self {
        Self { fg_dy: vec![dy; batch], fg_dx: vec![dx; batch], bg_dy: vec![dy; batch], bg_dx: vec![dx; batch] }
    }

    /// Random offsets as the original draws them (`randint(0, 33)` per axis, per image, fg and
    /// bg independent): for each sample, fg dy, fg dx, bg dy, bg dx from `rng`.
    pub fn random(batch: usize, rng: &mut Rng) -> Self {
        let mut s = Self::none(batch);
        for b in 0..batch {
            s.fg_dy[b] = rng.below(33) as usize;
            s.fg_dx[b] = rng.below(33) as usize;
            s.bg_dy[b] = rng.below(33) as usize;
            s.bg_dx[b] = rng.below(33) as usize;
        }
        s
    }

    /// [`Shifts::random`] from a seed.
    pub fn seeded(batch: usize, seed: u64) -> Self {
        Self::random(batch, &mut Rng::new(seed))
    }
}

/// The original's texture shuffle: tile `t` [B,C,H,W] 2×2 and crop H×W at row `dy[b]`, column
/// `dx[b]` (each in 0..=H / 0..=W), i.e. `out[b,c,h,w] = t[b,c,(h+dy) mod H,(w+dx) mod W]`.
pub fn torus_shift(t: &Tensor, dy: &[usize], dx: &[usize]) -> Result<Tensor> {
    let (b, _, h, w) = t.dims4()?;
    if dy.len() != b || dx.len() != b {
        candle_core::bail!("torus_shift: {} row and {} column offsets for a batch of {b}", dy.len(), dx.len());
    }
    if let Some(i) = (0..b).find(|&i| dy[i] > h || dx[i] > w) {
        candle_core::bail!("torus_shift: offset ({}, {}) of sample {i} is outside 0..={h} × 0..={w}", dy[i], dx[i]);
    }
    let rows: Vec<Tensor> = (0..b)
        .map(|i| {
            let s = t.i(i..i + 1)?;
            // Tensor::roll moves element j to j + shift, so a crop starting at dy is roll(−dy).
            s.roll(-((dy[i] % h) as i32), 2)?.roll(-((dx[i] % w) as i32), 3)
        })
        .collect::<Result<_>>()?;
    Tensor::cat(&rows, 0)
}

/// Inputs of the three mechanisms: noise and labels for each.
#[derive(Debug, Clone)]
pub struct MechanismInputs {
    pub u_shape: Tensor,
    pub u_text: Tensor,
    pub u_bg: Tensor,
    /// Labels (u8/u32/i64), [B].
    pub y_shape: Tensor,
    pub y_text: Tensor,
    pub y_bg: Tensor,
}

impl MechanismInputs {
    /// The original's counterfactual draw: a fresh u ~ N(0, 1) per mechanism, the shape keeps
    /// `y`, texture and background get `y` permuted within the batch (two independent
    /// permutations). Everything comes from `seed`.
    pub fn counterfactual(y: &[u32], seed: u64, latent_sz: usize, device: &Device) -> Result<Self> {
        let b = y.len();
        let noise = |k: u64| crate::noise::normal_noise(Rng::new(seed ^ k).next_u64(), b, latent_sz, device);
        let mut rng = Rng::new(seed ^ 0xC0F_ACE);
        let mut perm = || {
            let mut p: Vec<u32> = y.to_vec();
            for i in (1..b).rev() {
                p.swap(i, rng.below(i as u64 + 1) as usize);
            }
            p
        };
        let (yt, yb) = (perm(), perm());
        Ok(Self {
            u_shape: noise(1)?,
            u_text: noise(2)?,
            u_bg: noise(3)?,
            y_shape: Tensor::new(y, device)?,
            y_text: Tensor::new(yt.as_slice(), device)?,
            y_bg: Tensor::new(yb.as_slice(), device)?,
        })
    }
}

/// The MNIST CGN.
#[derive(Debug, Clone)]
pub struct CgnMnist {
    pub label_emb: Tensor,
    pub f_shape: ShapeMechanism,
    pub f_text1: TextureMechanism,
    pub f_text2: TextureMechanism,
    pub config: Config,
}

impl CgnMnist {
    /// Builds the model from `label_emb.weight`, `f_shape.*`, `f_text1.*`, `f_text2.*`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let config = Config::default();
        Ok(Self {
            label_emb: vb.get((config.n_classes, config.n_classes), "label_emb.weight")?,
            f_shape: ShapeMechanism::new(vb.pp("f_shape"), &config)?,
            f_text1: TextureMechanism::new(vb.pp("f_text1"), &config)?,
            f_text2: TextureMechanism::new(vb.pp("f_text2"), &config)?,
            config,
        })
    }

    /// `cat(u, label_emb[y])`, [B, 42].
    pub fn inp(&self, u: &Tensor, y: &Tensor) -> Result<Tensor> {
        let y = y.flatten_all()?.to_dtype(DType::U32)?;
        let (b, l) = u.dims2()?;
        if l != self.config.latent_sz || y.dim(0)? != b {
            candle_core::bail!(
                "CGN input: u must be [B, {}] with B labels, got u {:?} and {} labels",
                self.config.latent_sz,
                u.dims(),
                y.dim(0)?
            );
        }
        let e = self.label_emb.index_select(&y, 0)?;
        Tensor::cat(&[&u.to_dtype(DType::F32)?, &e], 1)
    }

    /// One forward pass with a shared `u` and a class per mechanism. With
    /// `y_shape = y_text = y_bg` this is the original's non-counterfactual forward (without its
    /// texture shift; see [`Parts::shifted`]).
    pub fn forward_parts(&self, u: &Tensor, y_shape: &Tensor, y_text: &Tensor, y_bg: &Tensor) -> Result<Parts> {
        let inp_shape = self.inp(u, y_shape)?;
        let same = |a: &Tensor, b: &Tensor| -> Result<bool> {
            Ok(a.to_dtype(DType::U32)?.to_vec1::<u32>()? == b.to_dtype(DType::U32)?.to_vec1::<u32>()?)
        };
        let inp_text = if same(y_text, y_shape)? { inp_shape.clone() } else { self.inp(u, y_text)? };
        let inp_bg = if same(y_bg, y_shape)? { inp_shape.clone() } else { self.inp(u, y_bg)? };
        self.forward_inps(&inp_shape, &inp_text, &inp_bg)
    }

    /// `cat(u, p·label_emb)` for class *distributions* `p` [B, 10] (soft classes interpolate the
    /// label embedding; a one-hot row gives exactly [`Self::inp`]'s embedding row).
    pub fn inp_soft(&self, u: &Tensor, p: &Tensor) -> Result<Tensor> {
        let e = p.to_dtype(DType::F32)?.matmul(&self.label_emb)?;
        Tensor::cat(&[&u.to_dtype(DType::F32)?, &e], 1)
    }

    /// One forward pass with a shared `u` and a class distribution per mechanism.
    pub fn forward_soft(&self, u: &Tensor, p_shape: &Tensor, p_text: &Tensor, p_bg: &Tensor) -> Result<Parts> {
        self.forward_inps(&self.inp_soft(u, p_shape)?, &self.inp_soft(u, p_text)?, &self.inp_soft(u, p_bg)?)
    }

    /// One forward pass with separate noise and labels per mechanism.
    pub fn forward_mechanisms(&self, m: &MechanismInputs) -> Result<Parts> {
        self.forward_inps(
            &self.inp(&m.u_shape, &m.y_shape)?,
            &self.inp(&m.u_text, &m.y_text)?,
            &self.inp(&m.u_bg, &m.y_bg)?,
        )
    }

    /// The original's counterfactual forward (fresh u per mechanism, texture and background
    /// labels shuffled within the batch), seeded; returns the inputs drawn too.
    pub fn counterfactual(&self, y: &[u32], seed: u64) -> Result<(Parts, MechanismInputs)> {
        let m = MechanismInputs::counterfactual(y, seed, self.config.latent_sz, self.label_emb.device())?;
        Ok((self.forward_mechanisms(&m)?, m))
    }

    fn forward_inps(&self, inp_shape: &Tensor, inp_text: &Tensor, inp_bg: &Tensor) -> Result<Parts> {
        let mask_raw = self.f_shape.forward(inp_shape)?;
        let mask = mask_raw.clamp(MASK_MIN, MASK_MAX)?.repeat((1, 3, 1, 1))?;
        let fg_pretanh = self.f_text1.forward_pretanh(inp_text)?;
        let bg_pretanh = self.f_text2.forward_pretanh(inp_bg)?;
        let fg = fg_pretanh.tanh()?;
        let bg = bg_pretanh.tanh()?;
        let x = composite(&mask, &fg, &bg)?;
        Ok(Parts { mask_raw, mask, fg_pretanh, bg_pretanh, fg, bg, x })
    }
}

/// Why an MNIST CGN could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: not an MNIST CGN checkpoint ({report})")]
    Keys { path: PathBuf, report: KeyReport },
    #[error("{path}: {source}")]
    Build { path: PathBuf, source: candle_core::Error },
}

/// Whether a checkpoint looks like an MNIST CGN (by its keys: `label_emb.weight` [10,10] and a
/// 42→4096 `f_shape.0`), as opposed to e.g. an ImageNet CGN.
pub fn is_cgn_mnist(map: &TensorMap) -> bool {
    let dims = |k: &str| map.get(k).map(|t| t.dims().to_vec());
    dims("label_emb.weight") == Some(vec![10, 10]) && dims("f_shape.0.weight") == Some(vec![4096, 42])
}

/// Builds the model from a loaded checkpoint. Every key must be used except the batch norms'
/// `num_batches_tracked` counters.
pub fn from_tensors(map: TensorMap, path: &Path, device: &Device) -> std::result::Result<CgnMnist, LoadError> {
    let tw = TrackedWeights::new(map);
    let built = CgnMnist::new(tw.var_builder(DType::F32, device));
    let mut report = tw.report();
    report.unexpected.retain(|k| !k.ends_with("num_batches_tracked"));
    match built {
        Ok(m) if report.is_clean() => Ok(m),
        Ok(_) => Err(LoadError::Keys { path: path.to_path_buf(), report }),
        Err(_) if !report.is_clean() => Err(LoadError::Keys { path: path.to_path_buf(), report }),
        Err(source) => Err(LoadError::Build { path: path.to_path_buf(), source }),
    }
}

/// Opens an MNIST CGN checkpoint (PyTorch zip `ckp.pth` or safetensors).
pub fn load(path: &Path, device: &Device) -> std::result::Result<CgnMnist, LoadError> {
    from_tensors(checkpoint::load(path)?, path, device)
}
