//! Tensors ⇄ images and `.npy` files.

use std::path::Path;

use anyhow::{bail, Context as _};
use candle_core::{DType, Tensor};

/// An RGB image in row-major HWC u8.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// The reference conversion of a [−1, 1] value to u8: `uint8(clip((x+1)/2·256, 0, 255))`
/// (×256 and truncation, as pytorch-pretrained-BigGAN's `convert_to_images`).
pub fn to_u8(x: f32) -> u8 {
    ((x + 1.0) / 2.0 * 256.0).clamp(0.0, 255.0) as u8
}

/// `(b, 3, h, w)` in [−1, 1] → one image per sample.
pub fn images_from_tensor(t: &Tensor) -> anyhow::Result<Vec<RgbImage>> {
    let (b, c, h, w) = t.dims4().context("expected an image batch (b, c, h, w)")?;
    if c != 3 && c != 1 {
        bail!("expected 1 or 3 channels, got {c}");
    }
    let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok((0..b)
        .map(|i| {
            let mut pixels = vec![0u8; h * w * 3];
            for y in 0..h {
                for x in 0..w {
                    for k in 0..3 {
                        let ch = if c == 1 { 0 } else { k };
                        pixels[(y * w + x) * 3 + k] = to_u8(data[((i * c + ch) * h + y) * w + x]);
                    }
                }
            }
            RgbImage { width: w, height: h, pixels }
        })
        .collect())
}

/// Tiles images into a grid of `ceil(sqrt(n))` columns with a 2-pixel black border.
pub fn grid(images: &[RgbImage]) -> RgbImage {
    let cols = (images.len().max(1) as f64).sqrt().ceil() as usize;
    grid_with(images, cols, if images.len() > 1 { 2 } else { 0 })
}

/// Tiles images (all the size of the first) into `cols` columns with a `pad`-pixel black border.
pub fn grid_with(images: &[RgbImage], cols: usize, pad: usize) -> RgbImage {
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols).max(1);
    let (w, h) = images.first().map_or((1, 1), |i| (i.width, i.height));
    let gw = cols * w + (cols + 1) * pad;
    let gh = rows * h + (rows + 1) * pad;
    let mut out = vec![0u8; gw * gh * 3];
    for (k, img) in images.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        let (ox, oy) = (pad + c * (w + pad), pad + r * (h + pad));
        for y in 0..img.height.min(h) {
            let src = &img.pixels[y * img.width * 3..(y * img.width + img.width.min(w)) * 3];
            let dst = ((oy + y) * gw + ox) * 3;
            out[dst..dst + src.len()].copy_from_slice(src);
        }
    }
    RgbImage { width: gw, height: gh, pixels: out }
}

/// Writes a PNG (or JPEG, by extension) atomically: a temporary file renamed into place.
pub fn save_image(img: &RgbImage, path: &Path) -> anyhow::Result<()> {
    let buf = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels.clone())
        .context("image buffer has the wrong size")?;
    let fmt = image::ImageFormat::from_path(path).unwrap_or(image::ImageFormat::Png);
    write_atomically(path, |tmp| buf.save_with_format(tmp, fmt).map_err(anyhow::Error::from))
        .with_context(|| format!("cannot write image {}", path.display()))
}

/// Writes `t` as a float32 `.npy` (numpy's own header layout) atomically.
pub fn save_npy(t: &Tensor, path: &Path) -> anyhow::Result<()> {
    let shape = t.dims().to_vec();
    let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let arr = crate::npy::NpyArray::new(shape, data).context("tensor data does not fill its shape")?;
    write_atomically(path, |tmp| std::fs::write(tmp, crate::npy::npy_bytes(&arr)).map_err(anyhow::Error::from))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a float32/float64 `.npy` as an f32 tensor on the CPU (header sizes checked, see
/// [`crate::npy`]).
pub fn load_npy(path: &Path) -> anyhow::Result<Tensor> {
    let a = crate::npy::load_npy(path).with_context(|| format!("cannot read {} as .npy", path.display()))?;
    Ok(Tensor::from_vec(a.data, a.shape, &candle_core::Device::Cpu)?)
}

/// Runs `write` on a temporary sibling of `path`, then renames it into place, so a killed
/// process never leaves a half-written file under the final name.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let name = path.file_name().context("output path has no file name")?.to_string_lossy();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp{ext}", std::process::id()));
    let res = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(anyhow::Error::from));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// FNV-1a: a cheap identity for pixels on screen and for cache-file tags.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_u8_conversion_truncates_with_256() {
        assert_eq!(to_u8(-1.0), 0);
        assert_eq!(to_u8(1.0), 255);
        assert_eq!(to_u8(0.0), 128); // (0+1)/2·256 = 128, not 127.5 rounded
        assert_eq!(to_u8(0.99), 254); // 254.72 truncates
        assert_eq!(to_u8(-2.0), 0);
    }

    #[test]
    fn grid_places_images() {
        let img = |v| RgbImage { width: 2, height: 2, pixels: vec![v; 12] };
        let g = grid(&[img(10), img(20), img(30)]);
        assert_eq!((g.width, g.height), (2 * 2 + 3 * 2, 2 * 2 + 3 * 2));
        assert_eq!(g.pixels[((2 * g.width) + 2) * 3], 10);
        assert_eq!(g.pixels[((2 * g.width) + 6) * 3], 20);
        assert_eq!(g.pixels[((6 * g.width) + 2) * 3], 30);
        assert_eq!(g.pixels[0], 0);
    }
}
