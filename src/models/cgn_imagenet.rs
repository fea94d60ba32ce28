//! The ImageNet Counterfactual Generative Network (Sauer & Geiger, 2021, "Counterfactual
//! Generative Networks", ICLR; autonomousvision/counterfactual_generative_networks,
//! `imagenet/models/cgn.py`): four BigGAN-deep-256 generators and a frozen U²-Net.
//!
//! Independent mechanisms share one noise vector `u` and each take their own class:
//! - `f_shape(u, y_shape)` → premask → `u2net` → `sigmoid` → `clamp(1e-4, 0.9999)` = mask `m`,
//! - `f_text(u, y_texture)` = foreground `f`,
//! - `f_bg(u, y_background)` = background `b`,
//!
//! composed as `x_gen = m·f + (1 − m)·b`. `biggan_GT` is the frozen pretrained BigGAN the
//! mechanisms were initialised from (the "ground truth" image for `y_shape`).
//!
//! Checkpoint `cgn.pth`: prefixes `biggan_GT.`, `f_shape.`, `f_text.`, `f_bg.` (BigGAN-deep-256
//! keys with `weight_orig/u/v`) and `u2net.` (U²-Net keys); `module.` is stripped by the loader.
//! The truncation is passed to every generator as the same f64; the caller scales `u` by it
//! (as the reference's `get_noise_vec` does), the generators only use it to pick BN statistics.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::checkpoint::{KeyReport, TensorMap, TrackedWeights};
use crate::models::biggan::{BigGan, BigGanConfig};
use crate::models::u2net::{is_bookkeeping, U2Net, U2NetConfig};

/// Lower and upper clamp of the mask (`torch.clamp(mask, 0.0001, 0.9999)`).
pub const MASK_CLAMP: (f64, f64) = (1e-4, 0.9999);

/// The four generators' prefixes in `cgn.pth`, then the U²-Net's.
pub const PREFIXES: [&str; 5] = ["biggan_GT", "f_shape", "f_text", "f_bg", "u2net"];

/// Configuration: the generators' architecture, the U²-Net's, and which optional parts to build.
#[derive(Debug, Clone, PartialEq)]
pub struct CgnImageNetConfig {
    pub biggan: BigGanConfig,
    pub u2net: U2NetConfig,
    /// Build `biggan_GT` (a fourth 224 MB generator, only needed for `x_gt`).
    pub with_ground_truth: bool,
}

impl Default for CgnImageNetConfig {
    /// The released model: BigGAN-deep-256 ×4 and CGN's U²-Net.
    fn default() -> Self {
        Self { biggan: BigGanConfig::deep_256(), u2net: U2NetConfig::cgn(), with_ground_truth: true }
    }
}

/// What to compute besides the composite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgnOptions {
    /// Run `biggan_GT` for `x_gt` (needs a model built with the ground truth).
    pub ground_truth: bool,
    /// Run the U²-Net on the background too (`background_mask`, not clamped).
    pub background_mask: bool,
}

/// One generation. Images are `(b, 3, 256, 256)` in [−1, 1], masks `(b, 1, 256, 256)`.
#[derive(Debug, Clone)]
pub struct CgnOutput {
    pub x_gt: Option<Tensor>,
    pub premask: Tensor,
    pub mask: Tensor,
    pub foreground: Tensor,
    pub background: Tensor,
    pub background_mask: Option<Tensor>,
    pub x_gen: Tensor,
}

impl CgnOutput {
    /// The images one generation wrote out, named as `intervene cgn --parts` names its files:
    /// `x_gt` (when computed), `mask`, `foreground`, `background`, `composite` (= `x_gen`).
    pub fn named_parts(&self) -> Vec<(&'static str, &Tensor)> {
        let mut parts: Vec<(&'static str, &Tensor)> = self.x_gt.iter().map(|t| ("x_gt", t)).collect();
        parts.extend([
            ("mask", &self.mask),
            ("foreground", &self.foreground),
            ("background", &self.background),
            ("composite", &self.x_gen),
        ]);
        parts
    }
}

/// The ImageNet CGN.
#[derive(Debug, Clone)]
pub struct CgnImageNet {
    pub biggan_gt: Option<BigGan>,
    pub f_shape: BigGan,
    pub f_text: BigGan,
    pub f_bg: BigGan,
    pub u2net: U2Net,
}

impl CgnImageNet {
    /// Builds the model from a VarBuilder over the `cgn.pth` keys (without `module.`).
    pub fn new(vb: VarBuilder, cfg: &CgnImageNetConfig) -> Result<Self> {
        let g = |name: &str| BigGan::new(vb.pp(name), &cfg.biggan);
        Ok(Self {
            biggan_gt: if cfg.with_ground_truth { Some(g("biggan_GT")?) } else { None },
            f_shape: g("f_shape")?,
            f_text: g("f_text")?,
            f_bg: g("f_bg")?,
            u2net: U2Net::new(vb.pp("u2net"), &cfg.u2net)?,
        })
    }

    /// Generates one composite. `u (b, z_dim)` is already scaled by the truncation; the class
    /// vectors `(b, 1000)` may be soft (class interpolation).
    pub fn forward(
        &self,
        u: &Tensor,
        y_shape: &Tensor,
        y_texture: &Tensor,
        y_background: &Tensor,
        truncation: f64,
        opts: CgnOptions,
    ) -> Result<CgnOutput> {
        let x_gt = match (opts.ground_truth, &self.biggan_gt) {
            (false, _) => None,
            (true, Some(g)) => Some(g.forward(u, y_shape, truncation)?),
            (true, None) => candle_core::bail!("x_gt needs the model built with_ground_truth"),
        };
        let premask = self.f_shape.forward(u, y_shape, truncation)?;
        let mask = mask_from_premask(&self.u2net, &premask)?;
        let foreground = self.f_text.forward(u, y_texture, truncation)?;
        let background = self.f_bg.forward(u, y_background, truncation)?;
        let background_mask = if opts.background_mask { Some(self.u2net.forward(&background)?) } else { None };
        let x_gen = compose(&mask, &foreground, &background)?;
        Ok(CgnOutput { x_gt, premask, mask, foreground, background, background_mask, x_gen })
    }
}

/// `mask = clamp(u2net(premask), 1e-4, 0.9999)`: the premask (raw generator output in [−1, 1],
/// no normalisation) through the U²-Net's `sigmoid(d0)`, clamped.
pub fn mask_from_premask(u2net: &U2Net, premask: &Tensor) -> Result<Tensor> {
    u2net.forward(premask)?.clamp(MASK_CLAMP.0, MASK_CLAMP.1)
}

/// `x_gen = m·f + (1 − m)·b`, the mask `(b, 1, h, w)` broadcast over the channels.
pub fn compose(mask: &Tensor, foreground: &Tensor, background: &Tensor) -> Result<Tensor> {
    let fg = foreground.broadcast_mul(mask)?;
    let inv = mask.affine(-1.0, 1.0)?;
    fg + background.broadcast_mul(&inv)?
}

/// Builds the model from a checkpoint's tensors while recording which keys it used
/// (`num_batches_tracked` entries are dropped first; without the ground truth, the
/// `biggan_GT.` keys are dropped too).
pub fn build_tracked(tensors: TensorMap, cfg: &CgnImageNetConfig, device: &Device) -> Result<(CgnImageNet, KeyReport)> {
    let tensors: TensorMap = tensors
        .into_iter()
        .filter(|(k, _)| !is_bookkeeping(k) && (cfg.with_ground_truth || !k.starts_with("biggan_GT.")))
        .collect();
    let tracked = TrackedWeights::new(tensors);
    let model = CgnImageNet::new(tracked.var_builder(DType::F32, device), cfg);
    let report = tracked.report();
    match model {
        Ok(m) => Ok((m, report)),
        Err(e) if report.is_clean() => Err(e),
        Err(e) => Err(candle_core::Error::Msg(format!("{e} ({report})"))),
    }
}

/// Opens `cgn.pth` (zip, legacy pickle or safetensors).
pub fn load(path: &std::path::Path, cfg: &CgnImageNetConfig, device: &Device) -> Result<CgnImageNet> {
    let tensors = crate::checkpoint::load(path).map_err(candle_core::Error::wrap)?;
    let (model, report) = build_tracked(tensors, cfg, device)?;
    if !report.is_clean() {
        tracing::warn!("{}: {report}", path.display());
    }
    Ok(model)
}
