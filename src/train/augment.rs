//! Input transforms for training and evaluation, torchvision's semantics:
//! - **MNIST style** (`mnist-cnn`): `Resize((s, s))` when the image is not already s×s,
//!   `ToTensor`, `Normalize(0.5, 0.5)` → [−1, 1] (the CGN scripts' convention, and what
//!   [`crate::preprocess::small`] gives the explanation tools); no augmentation by default.
//! - **ImageNet training**: `RandomResizedCrop(s, scale=(0.08, 1), ratio=(3/4, 4/3))` (10
//!   attempts, then the centre crop clamped to the ratio range, as torchvision's `get_params`)
//!   with PIL's antialiased bilinear resize, `RandomHorizontalFlip()`, ImageNet normalisation.
//! - **ImageNet evaluation**: `Resize(⌊s·256/224⌋)` of the shorter side, `CenterCrop(s)`
//!   (at s = 224 exactly [`crate::preprocess::imagenet`]).
//!
//! Every random choice comes from a generator seeded per sample, so batches do not depend on
//! the order or the thread in which images are prepared.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::noise::Rng;
use crate::preprocess::{center_crop_origin, pil_resize_bilinear, resize_shorter_side, IMAGENET_MEAN, IMAGENET_STD};

/// What is done to an image before the network sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Transform {
    /// Resize to `size`², [−1, 1]; optional horizontal flips.
    Mnist { size: usize, flip: bool },
    /// RandomResizedCrop + flip, ImageNet normalisation.
    ImagenetTrain { size: usize, min_scale: f64 },
    /// Resize + CenterCrop, ImageNet normalisation.
    ImagenetEval { size: usize },
}

impl Transform {
    pub fn size(&self) -> usize {
        match *self {
            Self::Mnist { size, .. } | Self::ImagenetTrain { size, .. } | Self::ImagenetEval { size } => size,
        }
    }

    /// Whether the transform draws random numbers.
    pub fn is_random(&self) -> bool {
        matches!(self, Self::ImagenetTrain { .. } | Self::Mnist { flip: true, .. })
    }

    /// The evaluation counterpart (no randomness).
    pub fn for_eval(&self) -> Self {
        match *self {
            Self::Mnist { size, .. } => Self::Mnist { size, flip: false },
            Self::ImagenetTrain { size, .. } | Self::ImagenetEval { size } => Self::ImagenetEval { size },
        }
    }

    /// Writes `3·size²` normalised CHW values of `img` into `out`.
    pub fn apply(&self, img: &RgbImage, rng: &mut Rng, out: &mut [f32]) -> anyhow::Result<()> {
        anyhow::ensure!(img.width() > 0 && img.height() > 0, "the image is empty (0×0)");
        let s = self.size() as u32;
        let (px, flip, mean, std) = match *self {
            Self::Mnist { flip, .. } => {
                let px =
                    if img.width() == s && img.height() == s { img.clone() } else { pil_resize_bilinear(img, s, s) };
                (px, flip && rng.uniform() < 0.5, [0.5; 3], [0.5; 3])
            }
            Self::ImagenetTrain { min_scale, .. } => {
                let (top, left, h, w) = random_resized_crop_params(img.width(), img.height(), min_scale, rng);
                let crop = image::imageops::crop_imm(img, left, top, w, h).to_image();
                let px = pil_resize_bilinear(&crop, s, s);
                (px, rng.uniform() < 0.5, IMAGENET_MEAN, IMAGENET_STD)
            }
            Self::ImagenetEval { .. } => {
                let r = (s as u64 * 256 / 224) as u32;
                let (nw, nh) = resize_shorter_side(img.width(), img.height(), r);
                let resized = pil_resize_bilinear(img, nw, nh);
                let (top, left) = center_crop_origin(nw, nh, s, s);
                (image::imageops::crop_imm(&resized, left, top, s, s).to_image(), false, IMAGENET_MEAN, IMAGENET_STD)
            }
        };
        let n = (s * s) as usize;
        anyhow::ensure!(out.len() == 3 * n, "transform output has {} values, needs {}", out.len(), 3 * n);
        let raw = px.as_raw();
        let side = s as usize;
        for y in 0..side {
            for x in 0..side {
                let sx = if flip { side - 1 - x } else { x };
                let p = &raw[(y * side + sx) * 3..][..3];
                for c in 0..3 {
                    out[c * n + y * side + x] = (p[c] as f32 / 255.0 - mean[c]) / std[c];
                }
            }
        }
        Ok(())
    }
}

/// torchvision `RandomResizedCrop.get_params(img, scale=(min_scale, 1), ratio=(3/4, 4/3))`:
/// `(top, left, height, width)`.
pub fn random_resized_crop_params(width: u32, height: u32, min_scale: f64, rng: &mut Rng) -> (u32, u32, u32, u32) {
    let (w0, h0) = (width as f64, height as f64);
    let area = w0 * h0;
    let (lr0, lr1) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * (min_scale + (1.0 - min_scale) * rng.uniform());
        let aspect = (lr0 + (lr1 - lr0) * rng.uniform()).exp();
        let w = (target * aspect).sqrt().round_ties_even();
        let h = (target / aspect).sqrt().round_ties_even();
        if w > 0.0 && h > 0.0 && w <= w0 && h <= h0 {
            let (w, h) = (w as u32, h as u32);
            let top = rng.below((height - h + 1) as u64) as u32;
            let left = rng.below((width - w + 1) as u64) as u32;
            return (top, left, h, w);
        }
    }
    // Fallback: the central crop, clamped to the ratio range.
    let ratio = w0 / h0;
    let (w, h) = if ratio < 3.0 / 4.0 {
        (width, ((w0 / (3.0 / 4.0)).round() as u32).min(height))
    } else if ratio > 4.0 / 3.0 {
        (((h0 * (4.0 / 3.0)).round() as u32).min(width), height)
    } else {
        (width, height)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_crops_stay_inside_and_cover_the_scale_range() {
        let mut rng = Rng::new(3);
        let mut areas = Vec::new();
        for _ in 0..2000 {
            let (t, l, h, w) = random_resized_crop_params(120, 100, 0.08, &mut rng);
            assert!(h > 0 && w > 0 && t + h <= 100 && l + w <= 120);
            areas.push((h * w) as f64 / 12000.0);
        }
        let min = areas.iter().cloned().fold(1.0, f64::min);
        let max = areas.iter().cloned().fold(0.0, f64::max);
        assert!(min < 0.15 && max > 0.9, "areas span [{min}, {max}]");
    }

    #[test]
    fn mnist_transform_is_minus_one_to_one_and_eval_imagenet_matches_preprocess() {
        let img = RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 255]));
        let mut out = vec![0f32; 3 * 32 * 32];
        Transform::Mnist { size: 32, flip: false }.apply(&img, &mut Rng::new(0), &mut out).unwrap();
        assert_eq!(out[0], -1.0);
        assert_eq!(out[2 * 1024], 1.0);
        let photo =
            RgbImage::from_fn(300, 260, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]));
        let mut a = vec![0f32; 3 * 224 * 224];
        Transform::ImagenetEval { size: 224 }.apply(&photo, &mut Rng::new(0), &mut a).unwrap();
        let (b, _) = crate::preprocess::imagenet(&photo).unwrap();
        assert_eq!(a, b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
}
