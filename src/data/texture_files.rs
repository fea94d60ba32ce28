//! Wildlife MNIST's textures read from image files, as the authors' data loader reads them.
//!
//! The CGN authors plot each digit with one of ten "striped" DTD photographs and its background
//! with one of ten "veined" ones (`mnists/data/textures/{object,background}/*.jpg`). DTD is for
//! research use only, so intervene neither ships nor downloads them; a researcher who has them
//! (or any other twenty images) points `--textures DIR` at a folder laid out the same way:
//!
//! ```text
//! DIR/object/      ten images, the digits' textures     (0_striped_0001.jpg, …)
//! DIR/background/  ten images, the backgrounds' textures (0_veined_0066.jpg, …)
//! ```
//!
//! As in the authors' loader, each folder's images are taken sorted by file name, the i-th for
//! class i, and resized to 150×150 with PIL's nearest rule (the pixel centre `(dst + 0.5)·in/out`,
//! summed step by step as PIL sums it, truncated); the 32×32 reflect-padded crops are then the
//! procedural textures' ([`super::variants`]). JPEG decoders may differ from libjpeg's by a grey level.

use std::path::Path;

use super::textures::{Texture, TextureSet, TEXTURE_SIZE};
use super::DataError;

/// The subfolder of the digits' (striped) textures.
pub const OBJECT_DIR: &str = "object";
/// The subfolder of the backgrounds' (veined) textures.
pub const BACKGROUND_DIR: &str = "background";
/// File endings taken as images.
const IMAGE_ENDINGS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Reads `dir/object` and `dir/background` (ten images each) into a [`TextureSet`].
pub fn load_dir(dir: &Path) -> Result<TextureSet, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            dir: dir.to_path_buf(),
            msg: format!(
                "no such folder; --textures wants one with {OBJECT_DIR}/ and {BACKGROUND_DIR}/ (ten images each)"
            ),
        });
    }
    Ok(TextureSet { striped: load_folder(dir, OBJECT_DIR)?, veined: load_folder(dir, BACKGROUND_DIR)? })
}

/// The ten images of `dir/sub`, sorted by file name, resized to [`TEXTURE_SIZE`]².
fn load_folder(dir: &Path, sub: &str) -> Result<Vec<Texture>, DataError> {
    let folder = dir.join(sub);
    let entries = std::fs::read_dir(&folder).map_err(|source| DataError::Io { path: folder.clone(), source })?;
    let mut files = Vec::new();
    for e in entries {
        let path = e.map_err(|source| DataError::Io { path: folder.clone(), source })?.path();
        let ending = path.extension().and_then(|x| x.to_str()).map(str::to_ascii_lowercase);
        if path.is_file() && ending.is_some_and(|x| IMAGE_ENDINGS.contains(&x.as_str())) {
            files.push(path);
        }
    }
    files.sort();
    if files.len() != 10 {
        return Err(DataError::Missing {
            dir: folder,
            msg: format!(
                "found {} image(s) ({}); wildlife needs exactly ten, the i-th by name for class i",
                files.len(),
                IMAGE_ENDINGS.join(", ")
            ),
        });
    }
    files
        .iter()
        .map(|f| {
            let img = image::open(f)
                .map_err(|e| DataError::Format { path: f.clone(), msg: format!("not a readable image: {e}") })?
                .to_rgb8();
            if img.width() == 0 || img.height() == 0 {
                return Err(DataError::Format { path: f.clone(), msg: "empty image".into() });
            }
            Ok(resize_nearest(img.as_raw(), img.width() as usize, img.height() as usize, TEXTURE_SIZE))
        })
        .collect()
}

/// PIL's `Image.NEAREST` resize of an RGB image (`w`×`h`, HWC) to `size`×`size`.
pub fn resize_nearest(rgb: &[u8], w: usize, h: usize, size: usize) -> Texture {
    let (rows, cols) = (pil_nearest_sources(h, size), pil_nearest_sources(w, size));
    let mut pixels = Vec::with_capacity(size * size * 3);
    for &sr in &rows {
        for &sc in &cols {
            let i = (sr * w + sc) * 3;
            pixels.extend_from_slice(&rgb[i..i + 3]);
        }
    }
    Texture { size, pixels }
}

/// The source index of each of `size` output pixels when PIL resizes `n` pixels with NEAREST.
/// PIL walks the affine map by adding the scale `n/size` to `scale/2` once per pixel, in
/// double precision, and truncates; the sum's rounding decides exact ties (500 → 150 takes
/// pixel 84 at output 25, where `floor(25.5·500/150)` would be 85).
fn pil_nearest_sources(n: usize, size: usize) -> Vec<usize> {
    let scale = n as f64 / size as f64;
    let mut x = scale * 0.5;
    (0..size)
        .map(|_| {
            let i = (x as usize).min(n - 1);
            x += scale;
            i
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_sources_match_pillow_on_exact_ties() {
        // Pillow 13: Image.fromarray(np.arange(n) % 256 as a 1-row image).resize((size, 1),
        // NEAREST); the ties are where the exact centre lands on an integer.
        assert_eq!(pil_nearest_sources(500, 150)[25], 84);
        assert_eq!(pil_nearest_sources(500, 150)[28], 94);
        assert_eq!(pil_nearest_sources(150, 211)[105], 74);
        assert_eq!(pil_nearest_sources(640, 150)[7], 31);
        assert_eq!(pil_nearest_sources(5, 2), [1, 3]);
        assert_eq!(pil_nearest_sources(7, 3), [1, 3, 5]);
    }

    #[test]
    fn nearest_takes_pixel_centres_as_pil_does() {
        // PIL: Image.fromarray(np.arange(5)[None].repeat(1, 0)).resize((2, 1), NEAREST) keeps
        // source columns floor((0.5)·2.5) = 1 and floor(1.5·2.5) = 3.
        let w = 5;
        let rgb: Vec<u8> = (0..w as u8).flat_map(|v| [v, v, v]).collect();
        let t = resize_nearest(&rgb, w, 1, 2);
        assert_eq!(t.at(0, 0), [1, 1, 1]);
        assert_eq!(t.at(0, 1), [3, 3, 3]);
        assert_eq!(t.at(1, 1), [3, 3, 3]);
        // Enlarging 2 → 4 repeats each source pixel twice.
        let t = resize_nearest(&[0, 0, 0, 9, 9, 9], 2, 1, 4);
        assert_eq!((0..4).map(|c| t.at(0, c)[0]).collect::<Vec<_>>(), [0, 0, 9, 9]);
    }
}
