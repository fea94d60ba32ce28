//! Classifier input pipelines, written to give torchvision's numbers exactly.
//!
//! ImageNet models (`intervene cam`, the Explain pane, `bound`, `sweep`) use torchvision's
//! evaluation transform on a PIL image, step by step:
//!
//! 1. decode as RGB u8;
//! 2. `Resize(256)`: the shorter side becomes 256, the longer `floor(256·long/short)`
//!    (torchvision truncates), resampled by **PIL's antialiased bilinear filter** — reproduced
//!    here to the bit ([`pil_resize_bilinear`]: the filter widened by the scale when shrinking,
//!    coefficients rounded to 22-bit fixed point, two separable passes each rounding to u8, in
//!    Pillow's order);
//! 3. `CenterCrop(224)`: top = round((h−224)/2), left = round((w−224)/2) with Python's
//!    round-half-to-even;
//! 4. `ToTensor()` (u8 / 255 in f32), then `Normalize(mean, std)`: (x − mean) / std in f32.
//!
//! MNIST-scale models take `Resize((side, side))` with the same PIL filter and `Normalize(0.5, 0.5)`.

use candle_core::{Device, Tensor};
use image::RgbImage;

/// ImageNet channel means and standard deviations, as torchvision's examples give them.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Fixed-point precision of PIL's 8-bit resampling (`PRECISION_BITS = 32 − 8 − 2`).
const PRECISION_BITS: u32 = 22;

/// One axis of PIL's resampling: for each output index, the first input index and the
/// fixed-point weights of the inputs it reads.
struct AxisCoeffs {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter over the whole axis.
fn axis_coeffs(in_size: usize, out_size: usize) -> AxisCoeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0, widened when shrinking (antialiasing)
    let ss = 1.0 / filterscale;
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero; the clamps make that equal to floor here.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let w: Vec<f64> = (xmin..xmax).map(|x| triangle((x as f64 - center + 0.5) * ss)).collect();
        let total: f64 = w.iter().sum();
        let fixed = w
            .iter()
            .map(|&k| {
                let k = if total != 0.0 { k / total } else { k };
                let s = k * (1u32 << PRECISION_BITS) as f64;
                (if k < 0.0 { s - 0.5 } else { s + 0.5 }) as i32
            })
            .collect();
        first.push(xmin);
        weights.push(fixed);
    }
    AxisCoeffs { first, weights }
}

/// PIL's `clip8`: drop the fixed-point fraction (arithmetic shift) and clamp to u8.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `PIL.Image.resize((width, height), Image.BILINEAR)` of an RGB image, bit for bit.
///
/// Pillow runs two separable passes, each rounding to u8, so their order changes the result
/// by ±1 in places. Pillow ≥ 13 runs the vertical pass first when the height shrinks by more
/// than twice as many pixels as the width (`ImagingResampleInner`); we follow that rule, which
/// agrees with older Pillow whenever the scaling keeps the aspect ratio (torchvision's
/// `Resize(int)`), the case every classifier here uses.
pub fn pil_resize_bilinear(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w0, h0) = (img.width() as usize, img.height() as usize);
    let (w1, h1) = (width as usize, height as usize);
    if (w0, h0) == (w1, h1) {
        return img.clone();
    }
    if w1 == 0 || h1 == 0 || w0 == 0 || h0 == 0 {
        return RgbImage::new(width, height);
    }
    let src = img.as_raw();
    let (dh, dw) = (h0 as i64 - h1 as i64, w0 as i64 - w1 as i64);
    let vertical_first = dh > 0 && dh > dw * 2;
    let out = if vertical_first {
        let tmp = vertical_pass(src, w0, h0, h1);
        horizontal_pass(&tmp, w0, h1, w1)
    } else {
        let tmp = horizontal_pass(src, w0, h0, w1);
        vertical_pass(&tmp, w1, h0, h1)
    };
    RgbImage::from_raw(width, height, out).expect("buffer size matches")
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resample every row of a `w0`×`h` RGB buffer to `w1` pixels.
fn horizontal_pass(src: &[u8], w0: usize, h: usize, w1: usize) -> Vec<u8> {
    let hc = axis_coeffs(w0, w1);
    let mut out = vec![0u8; h * w1 * 3];
    for y in 0..h {
        let row = &src[y * w0 * 3..(y + 1) * w0 * 3];
        for x in 0..w1 {
            let mut acc = [HALF; 3];
            for (i, &k) in hc.weights[x].iter().enumerate() {
                let p = &row[(hc.first[x] + i) * 3..];
                for c in 0..3 {
                    acc[c] += p[c] as i32 * k;
                }
            }
            for c in 0..3 {
                out[(y * w1 + x) * 3 + c] = clip8(acc[c]);
            }
        }
    }
    out
}

/// Resample every column of a `w`×`h0` RGB buffer to `h1` pixels.
fn vertical_pass(src: &[u8], w: usize, h0: usize, h1: usize) -> Vec<u8> {
    let vc = axis_coeffs(h0, h1);
    let mut out = vec![0u8; h1 * w * 3];
    for y in 0..h1 {
        let o = &mut out[y * w * 3..(y + 1) * w * 3];
        for (x, o) in o.iter_mut().enumerate() {
            let mut acc = HALF;
            for (i, &k) in vc.weights[y].iter().enumerate() {
                acc += src[(vc.first[y] + i) * w * 3 + x] as i32 * k;
            }
            *o = clip8(acc);
        }
    }
    out
}

/// torchvision's `Resize(size)` output size for an int size: shorter side `size`, longer side
/// truncated.
pub fn resize_shorter_side(w: u32, h: u32, size: u32) -> (u32, u32) {
    if w <= h {
        (size, (size as u64 * h as u64 / w.max(1) as u64) as u32)
    } else {
        ((size as u64 * w as u64 / h.max(1) as u64) as u32, size)
    }
}

/// torchvision's `CenterCrop`: the top-left corner (top, left), Python's `round` (half to even).
pub fn center_crop_origin(w: u32, h: u32, cw: u32, ch: u32) -> (u32, u32) {
    let top = ((h as f64 - ch as f64) / 2.0).round_ties_even().max(0.0) as u32;
    let left = ((w as f64 - cw as f64) / 2.0).round_ties_even().max(0.0) as u32;
    (top, left)
}

/// torchvision's ImageNet evaluation transform (see the module docs). Returns the `[1,3,224,224]`
/// tensor and the cropped RGB pixels (row-major, 3 bytes a pixel).
pub fn imagenet(img: &RgbImage) -> anyhow::Result<(Tensor, Vec<u8>)> {
    anyhow::ensure!(img.width() > 0 && img.height() > 0, "the image is empty (0×0)");
    let (nw, nh) = resize_shorter_side(img.width(), img.height(), 256);
    let r = pil_resize_bilinear(img, nw, nh);
    let (top, left) = center_crop_origin(nw, nh, 224, 224);
    let crop = image::imageops::crop_imm(&r, left, top, 224, 224).to_image();
    let px = crop.into_raw();
    Ok((normalised_chw(&px, 224, IMAGENET_MEAN, IMAGENET_STD)?, px))
}

/// MNIST-scale input: `Resize((side, side))` (PIL bilinear), `ToTensor()`, then the CGN scripts'
/// `Normalize(0.5, 0.5)`, i.e. (x/255 − 0.5)/0.5 in f32: [−1, 1]. Returns the `[1,3,side,side]` tensor and the resized pixels.
pub fn small(img: &RgbImage, side: u32) -> anyhow::Result<(Tensor, Vec<u8>)> {
    anyhow::ensure!(img.width() > 0 && img.height() > 0, "the image is empty (0×0)");
    let px = pil_resize_bilinear(img, side, side).into_raw();
    Ok((normalised_chw(&px, side, [0.5; 3], [0.5; 3])?, px))
}

/// `ToTensor()` + `Normalize(mean, std)` of square RGB u8 pixels (row-major, 3 bytes a pixel):
/// `[1, 3, side, side]` with (x/255 − mean)/std in f32, the order torchvision computes it in.
fn normalised_chw(px: &[u8], side: u32, mean: [f32; 3], std: [f32; 3]) -> anyhow::Result<Tensor> {
    let n = (side * side) as usize;
    let mut v = vec![0f32; 3 * n];
    for (i, p) in px.chunks_exact(3).enumerate() {
        for c in 0..3 {
            v[c * n + i] = (p[c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    Ok(Tensor::from_vec(v, (1, 3, side as usize, side as usize), &Device::Cpu)?)
}
