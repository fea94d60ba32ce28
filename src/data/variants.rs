//! The three MNIST variants of the CGN paper (Sauer & Geiger, 2021, §4.1; reference code
//! `mnists/dataloader.py` of autonomousvision/counterfactual_generative_networks) at 32×32.
//!
//! Every image starts from an MNIST digit, resized to 32×32 with nearest neighbour
//! (`src = floor(dst·28/32)`, as `F.interpolate`'s default) and binarised at `v/255 > 0.1`
//! ([`digit_mask`]). The digit pixels take the *shape* texture/colour, the others the
//! *background*. In the biased **train** split both are tied to the class; in the de-biased
//! **test** split both are drawn uniformly from the ten classes, independently.
//!
//! - **colored**: strokes in the class colour `PALETTE[k]` plus a per-image Gaussian jitter
//!   with *variance* 0.02 (σ ≈ 0.141) per channel, clamped to [0, 1]; black background. (The
//!   original uses the colored MNIST of Kim et al. 2019, generated with "variance σ² = 0.02";
//!   its palette is not published, so ours reuses the double-colored palette.)
//! - **double-colored**: background `PALETTE[k]`, digit `PALETTE[(k − 6) mod 10]`
//!   ([`object_color_index`]), each plus its own per-image jitter `N(0, 0.01)` per channel.
//!   0.01 is the **standard deviation**: the reference draws `torch.normal(0, 0.01, (3,1,1))`,
//!   whose second argument is the std (only colored's 0.02 is stated as a variance, σ²).
//! - **wildlife**: digit texture `striped(k)`, background `veined(k)` (procedural, see
//!   [`super::textures`]); each image takes an independent random 32×32 crop of each
//!   150×150 texture after 3 px reflect padding (torchvision's `RandomCrop(32, padding=3,
//!   padding_mode='reflect')`: offsets 0..=124).
//!
//! Splits follow the reference code: train = the first 50,000 MNIST training images, test =
//! the remaining 10,000 ([`TestSource::Holdout`]); [`TestSource::T10k`] uses the MNIST test
//! file instead.
//!
//! **Storage**: images are u8 RGB, HWC, 32×32 per image — exactly what the exported PNGs hold,
//! so the in-memory and on-disk data sets are identical ([`VariantSet::to_tensor`] gives the CGN
//! convention, f32 NCHW in [−1, 1] = `u8/255·2 − 1`, as `ToTensor` + `Normalize(.5, .5)` of the
//! PNG). Jittered colours are therefore quantised to 1/255 and clamped to [0, 1] (the
//! reference keeps floats and lets yellow + jitter exceed 1 slightly).
//!
//! **Determinism**: sample i of a split draws from its own generator seeded by
//! hash(seed, split, i), in a fixed order (shape texture/colour index, background index,
//! jitters, crop offsets), so the result does not depend on the thread count or on which other
//! samples are generated.

use std::path::Path;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::mnist::{self, Mnist, MnistFile};
use super::textures::{hash3, Texture, TextureSet, TextureStyle, DEFAULT_TEXTURE_SEED, TEXTURE_SIZE};
use super::DataError;
use crate::noise::Rng;

/// Output side length.
pub const SIZE: usize = 32;

/// The ten class colours of double-colored MNIST (PIL names: darkgreen, darkblue, #b03060,
/// orangered, yellow, burlywood, lime, aqua, fuchsia, #6495ed).
pub const PALETTE: [[u8; 3]; 10] = [
    [0, 100, 0],
    [0, 0, 139],
    [0xb0, 0x30, 0x60],
    [255, 69, 0],
    [255, 255, 0],
    [222, 184, 135],
    [0, 255, 0],
    [0, 255, 255],
    [255, 0, 255],
    [0x64, 0x95, 0xed],
];

/// Standard deviation of double-colored's per-channel colour jitter (on the [0, 1] scale).
pub const DOUBLE_COLORED_JITTER_STD: f64 = 0.01;
/// Variance of colored's per-channel colour jitter (on the [0, 1] scale).
pub const COLORED_JITTER_VAR: f64 = 0.02;
/// Digit pixels are those with `v/255 > BINARIZE_THRESHOLD` after the resize.
pub const BINARIZE_THRESHOLD: f32 = 0.1;
/// Reflect padding before wildlife's random crops.
pub const CROP_PADDING: usize = 3;
/// Number of MNIST training images in the train split (the rest form the holdout test split).
pub const TRAIN_IMAGES: usize = 50_000;

/// The digit colour index for class `k` in double-colored MNIST: `(k − 6) mod 10`, i.e.
/// Python's `colors[k - 6]` (for k = 0: index −6 ≡ 4).
pub fn object_color_index(k: usize) -> usize {
    (k + 4) % 10
}

/// Which variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Colored,
    DoubleColored,
    Wildlife,
    /// Wildlife MNIST, data version 2: the high-contrast textures
    /// ([`TextureStyle::Contrast`]); `wildlife` stays version 1, bit for bit.
    WildlifeV2,
}

impl Variant {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Colored => "colored",
            Variant::DoubleColored => "double-colored",
            Variant::Wildlife => "wildlife",
            Variant::WildlifeV2 => "wildlife-v2",
        }
    }

    /// Whether the variant is textured (wildlife, either data version).
    pub fn is_wildlife(self) -> bool {
        matches!(self, Variant::Wildlife | Variant::WildlifeV2)
    }

    /// The texture parameters of a wildlife variant.
    pub fn texture_style(self) -> TextureStyle {
        if self == Variant::WildlifeV2 {
            TextureStyle::Contrast
        } else {
            TextureStyle::Classic
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s.replace('_', "-").to_ascii_lowercase().trim_end_matches("-mnist") {
            "colored" => Ok(Variant::Colored),
            "double-colored" => Ok(Variant::DoubleColored),
            "wildlife" => Ok(Variant::Wildlife),
            "wildlife-v2" => Ok(Variant::WildlifeV2),
            _ => Err(DataError::Invalid(format!(
                "unknown variant {s:?} (colored, double-colored, wildlife, wildlife-v2)"
            ))),
        }
    }
}

/// Biased (class-linked colours/textures) or de-biased (random colours/textures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The folder name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Where the test split's digits come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TestSource {
    /// MNIST training images 50,000.. (the reference code's choice).
    #[default]
    Holdout,
    /// The MNIST test file (`t10k-*`).
    T10k,
}

/// The generative factors of one image (class indices 0..=9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Factors {
    /// The digit's class (the label).
    pub shape: u8,
    /// Whose colour (colored, double-colored: the palette row before [`object_color_index`])
    /// or striped texture (wildlife) the digit wears.
    pub texture: u8,
    /// Whose colour / veined texture the background wears; `None` for colored (black).
    pub background: Option<u8>,
}

/// How to generate a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VariantConfig {
    pub variant: Variant,
    /// Seeds colour choices, jitters and crops.
    pub seed: u64,
    /// Seeds the procedural textures (wildlife only).
    pub texture_seed: u64,
}

impl VariantConfig {
    /// `variant` with `seed` and the default texture seed.
    pub fn new(variant: Variant, seed: u64) -> Self {
        Self { variant, seed, texture_seed: DEFAULT_TEXTURE_SEED }
    }
}

/// One generated split in memory.
#[derive(Debug, Clone)]
pub struct VariantSet {
    pub config: VariantConfig,
    pub split: Split,
    /// `len()·32·32·3` bytes: RGB, HWC, row-major.
    pub images: Vec<u8>,
    /// One entry per image; `factors[i].shape` is the label.
    pub factors: Vec<Factors>,
}

impl VariantSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.factors.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.factors.is_empty()
    }

    /// Image `i`: 32·32·3 bytes, HWC.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = SIZE * SIZE * 3;
        &self.images[i * n..(i + 1) * n]
    }

    /// The labels (shape classes).
    pub fn labels(&self) -> Vec<u8> {
        self.factors.iter().map(|f| f.shape).collect()
    }

    /// Images `range` as f32 `[n, 3, 32, 32]` in [−1, 1] (the CGN convention).
    pub fn to_tensor(&self, range: std::ops::Range<usize>, device: &Device) -> candle_core::Result<Tensor> {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        let hw = SIZE * SIZE;
        let mut out = vec![0f32; (end - start) * 3 * hw];
        for (j, i) in (start..end).enumerate() {
            let img = self.image(i);
            for p in 0..hw {
                for c in 0..3 {
                    out[(j * 3 + c) * hw + p] = img[p * 3 + c] as f32 / 255.0 * 2.0 - 1.0;
                }
            }
        }
        Tensor::from_vec(out, (end - start, 3, SIZE, SIZE), device)
    }
}

/// The 32×32 digit mask of an MNIST image: nearest resize (`src = floor(dst·rows/32)`), then
/// `v/255 > 0.1`. Row-major, `true` = digit.
pub fn digit_mask(img: &[u8], rows: usize, cols: usize) -> Vec<bool> {
    let mut m = Vec::with_capacity(SIZE * SIZE);
    for r in 0..SIZE {
        let sr = (r * rows / SIZE).min(rows - 1);
        for c in 0..SIZE {
            let sc = (c * cols / SIZE).min(cols - 1);
            m.push(img[sr * cols + sc] as f32 / 255.0 > BINARIZE_THRESHOLD);
        }
    }
    m
}

/// The generator of sample `i` of `split`.
fn sample_rng(seed: u64, split: Split, i: usize) -> Rng {
    Rng::new(hash3(seed, 0x5A11_0000 + split as u64, i as u64))
}

/// `PALETTE[k]` on [0, 1] plus N(0, std²) per channel, clamped, as u8.
fn jittered(k: usize, std: f64, rng: &mut Rng) -> [u8; 3] {
    PALETTE[k].map(|v| {
        let x = v as f64 / 255.0 + std * rng.normal();
        (x.clamp(0.0, 1.0) * 255.0).round() as u8
    })
}

/// Reflect index (torchvision's `reflect`, no edge repeat) of padded coordinate `p`.
fn reflect(p: usize, pad: usize, n: usize) -> usize {
    let t = p as isize - pad as isize;
    let t = if t < 0 { -t } else { t };
    let t = if t >= n as isize { 2 * (n as isize - 1) - t } else { t };
    t as usize
}

/// Generates `split` of the variant from the given MNIST images (any size; resized to 32).
pub fn generate(cfg: &VariantConfig, split: Split, mnist: &Mnist) -> Result<VariantSet, DataError> {
    generate_with_progress(cfg, split, mnist, &|_| {})
}

/// [`generate`], calling `progress(n)` as batches of `n` images finish (from worker threads).
pub fn generate_with_progress(
    cfg: &VariantConfig,
    split: Split,
    mnist: &Mnist,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<VariantSet, DataError> {
    generate_with_textures(cfg, split, mnist, None, progress)
}

/// [`generate_with_progress`] with the wildlife textures given (`None`: the variant's
/// procedural ones). Textures for a variant without them are an error.
pub fn generate_with_textures(
    cfg: &VariantConfig,
    split: Split,
    mnist: &Mnist,
    textures: Option<&TextureSet>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<VariantSet, DataError> {
    if mnist.rows == 0 || mnist.cols == 0 {
        return Err(DataError::Invalid(format!("MNIST images of size {}×{}", mnist.rows, mnist.cols)));
    }
    let made;
    let sources = match (cfg.variant, textures) {
        (v, Some(t)) if v.is_wildlife() => t,
        (v, None) if v.is_wildlife() => {
            made = TextureSet::procedural(cfg.texture_seed, v.texture_style());
            &made
        }
        (v, Some(_)) => {
            return Err(DataError::Invalid(format!("{} has no textures; texture images apply to wildlife", v.name())))
        }
        (_, None) => {
            made = TextureSet { striped: Vec::new(), veined: Vec::new() };
            &made
        }
    };
    if cfg.variant.is_wildlife() && (sources.striped.len() != 10 || sources.veined.len() != 10) {
        return Err(DataError::Invalid(format!(
            "wildlife needs 10 digit and 10 background textures, got {} and {}",
            sources.striped.len(),
            sources.veined.len()
        )));
    }
    let n = mnist.len();
    let px = SIZE * SIZE * 3;
    let mut images = vec![0u8; n * px];
    let mut factors = vec![Factors { shape: 0, texture: 0, background: None }; n];
    const CHUNK: usize = 256;
    images.par_chunks_mut(CHUNK * px).zip(factors.par_chunks_mut(CHUNK)).enumerate().for_each(
        |(chunk, (imgs, facs))| {
            for (j, (img, fac)) in imgs.chunks_mut(px).zip(facs.iter_mut()).enumerate() {
                let i = chunk * CHUNK + j;
                *fac = render_sample(cfg, split, sources, mnist, i, img);
            }
            progress(facs.len());
        },
    );
    Ok(VariantSet { config: *cfg, split, images, factors })
}

/// Draws sample `i`'s factors and writes its pixels into `out` (32·32·3, HWC).
fn render_sample(
    cfg: &VariantConfig,
    split: Split,
    src: &TextureSet,
    mnist: &Mnist,
    i: usize,
    out: &mut [u8],
) -> Factors {
    let mut rng = sample_rng(cfg.seed, split, i);
    let label = mnist.labels[i];
    let pick = |rng: &mut Rng| match split {
        Split::Train => label as usize,
        Split::Test => rng.below(10) as usize,
    };
    let mask = digit_mask(mnist.image(i), mnist.rows, mnist.cols);
    let paint = |out: &mut [u8], fg: &dyn Fn(usize, usize) -> [u8; 3], bg: &dyn Fn(usize, usize) -> [u8; 3]| {
        for r in 0..SIZE {
            for c in 0..SIZE {
                let p = r * SIZE + c;
                let rgb = if mask[p] { fg(r, c) } else { bg(r, c) };
                out[p * 3..p * 3 + 3].copy_from_slice(&rgb);
            }
        }
    };
    match cfg.variant {
        Variant::Colored => {
            let t = pick(&mut rng);
            let fg = jittered(t, COLORED_JITTER_VAR.sqrt(), &mut rng);
            paint(out, &|_, _| fg, &|_, _| [0, 0, 0]);
            Factors { shape: label, texture: t as u8, background: None }
        }
        Variant::DoubleColored => {
            let t = pick(&mut rng);
            let b = pick(&mut rng);
            let bg = jittered(b, DOUBLE_COLORED_JITTER_STD, &mut rng);
            let fg = jittered(object_color_index(t), DOUBLE_COLORED_JITTER_STD, &mut rng);
            paint(out, &|_, _| fg, &|_, _| bg);
            Factors { shape: label, texture: t as u8, background: Some(b as u8) }
        }
        Variant::Wildlife | Variant::WildlifeV2 => {
            let t = pick(&mut rng);
            let b = pick(&mut rng);
            let max = (TEXTURE_SIZE + 2 * CROP_PADDING - SIZE + 1) as u64;
            let (fy, fx) = (rng.below(max) as usize, rng.below(max) as usize);
            let (by, bx) = (rng.below(max) as usize, rng.below(max) as usize);
            let crop = |tex: &Texture, oy: usize, ox: usize, r: usize, c: usize| {
                tex.at(reflect(oy + r, CROP_PADDING, tex.size), reflect(ox + c, CROP_PADDING, tex.size))
            };
            let (ft, bt) = (&src.striped[t], &src.veined[b]);
            paint(out, &|r, c| crop(ft, fy, fx, r, c), &|r, c| crop(bt, by, bx, r, c));
            Factors { shape: label, texture: t as u8, background: Some(b as u8) }
        }
    }
}

/// The MNIST images behind both splits: train = training images `..50,000`, test = the rest
/// ([`TestSource::Holdout`]) or the `t10k` file. `limit` caps each split (for quick runs).
pub fn source_splits(dir: &Path, test: TestSource, limit: Option<usize>) -> Result<(Mnist, Mnist), DataError> {
    let all = mnist::load(dir, MnistFile::Train)?;
    let cut = TRAIN_IMAGES.min(all.len());
    let cap = |start: usize, end: usize| start..limit.map_or(end, |l| end.min(start + l));
    let train = all.slice(cap(0, cut));
    let test = match test {
        TestSource::Holdout => all.slice(cap(cut, all.len())),
        TestSource::T10k => {
            let t = mnist::load(dir, MnistFile::Test)?;
            let n = t.len();
            t.slice(cap(0, n))
        }
    };
    Ok((train, test))
}

/// Both splits in memory, from the MNIST folder `dir`.
pub fn build(cfg: &VariantConfig, dir: &Path, test: TestSource) -> Result<(VariantSet, VariantSet), DataError> {
    let (train, test) = source_splits(dir, test, None)?;
    Ok((generate(cfg, Split::Train, &train)?, generate(cfg, Split::Test, &test)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_colour_index_is_pythons_negative_index() {
        // colors2 = [colors1[i - 6] for i in range(10)]: Python's -6 % 10 == 4.
        let py: Vec<usize> = (0..10).map(|i: i64| (i - 6).rem_euclid(10) as usize).collect();
        assert_eq!((0..10).map(object_color_index).collect::<Vec<_>>(), py);
        assert_eq!(object_color_index(0), 4);
    }

    #[test]
    fn reflect_matches_numpy_reflect() {
        // np.pad([0,1,2,3,4], 3, mode='reflect') = [3,2,1,0,1,2,3,4,3,2,1]
        let got: Vec<usize> = (0..11).map(|p| reflect(p, 3, 5)).collect();
        assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
    }

    #[test]
    fn nearest_resize_28_to_32_repeats_every_seventh_row() {
        // floor(dst·28/32): source rows 0,0,1,2,3,4,5,6,7,7,8,… (rows 0 and 7 doubled).
        let mut img = vec![0u8; 28 * 28];
        img[0] = 255; // (0,0)
        img[7 * 28 + 7] = 26; // (7,7): 26/255 = 0.102 > 0.1
        img[8 * 28 + 8] = 25; // (8,8): 25/255 = 0.098, background
        let m = digit_mask(&img, 28, 28);
        let on: Vec<(usize, usize)> = (0..1024).filter(|&p| m[p]).map(|p| (p / 32, p % 32)).collect();
        assert_eq!(on, [(0, 0), (0, 1), (1, 0), (1, 1), (8, 8), (8, 9), (9, 8), (9, 9)]);
    }
}
