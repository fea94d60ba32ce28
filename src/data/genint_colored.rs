//! GenInt's 10-way colored MNIST (Mao et al., 2021, supplementary §7.A, Table 5; reference
//! cvlab-columbia/GenInt `ColorMNIST/generate_colored_mnist.py` and `generate-irm-data.py`;
//! facts in `GENINT-MNIST.md` §1).
//!
//! Every image: MNIST → grey as RGB → `Resize(32)` (PIL bilinear,
//! [`crate::preprocess::pil_resize_bilinear`]) → `ToTensor` → `Normalize(0.5, 0.5)` (background
//! −1, stroke ≈ +1) → each of the three channels is **kept** (the digit), set to **+1** or set
//! to **0** everywhere → `save_image(normalize=True)`: a per-image min–max stretch to [0, 1] →
//! u8 (`·255 + 0.5`, clamped). So a "+1" channel is 1 on background and stroke, a "0" channel is
//! 0.5, a kept channel is 0 on the background and 1 on the stroke.
//!
//! Splits:
//! - **train**: the 60,000 training digits, each in one of two environments (set 1 or set 2 of
//!   [`RULES`], two background colours per class — the paper's dataset; the committed generator
//!   used only set 1 on half the data, `generate-irm-data.py` alternates the two per batch of
//!   128). Here the environment is a seeded coin per image (50/50), which is what alternating
//!   shuffled batches amounts to.
//! - **confounded test**: the 10,000 test digits coloured the same way (the committed script
//!   coloured half of them with set 1 and never evaluated it).
//! - **causal test**: the 10,000 test digits in batches of 128, each batch one random colour
//!   independent of the label: two channels drawn with replacement, each set to +1 or 0 by a coin
//!   (`np.random.choice(3, 2)`, `np.random.sample(3) > .5`); seeded here (the original set no
//!   seed, so its 79 draws are not recoverable).

use std::path::Path;

use super::mnist::{self, Mnist, MnistFile};
use super::textures::hash3;
use super::DataError;
use crate::noise::Rng;

/// What happens to one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The digit (−1 background, +1 stroke before the stretch).
    Keep,
    /// +1 everywhere.
    One,
    /// 0 everywhere (0.5 after the stretch).
    Zero,
}

use Rule::{Keep as K, One as O, Zero as Z};

/// `RULES[set][class]`: the per-channel rules of the two colour sets (GENINT-MNIST.md §1's
/// table; set 2's classes 2 and 9 repeat set 1's classes 9 and 4).
pub const RULES: [[[Rule; 3]; 10]; 2] = [
    [[O, O, K], [K, O, O], [O, K, O], [O, K, K], [K, O, K], [K, K, O], [Z, Z, K], [K, Z, Z], [Z, K, Z], [K, Z, K]],
    [[K, K, Z], [Z, K, K], [K, Z, K], [K, O, Z], [Z, K, O], [O, Z, K], [Z, O, K], [K, Z, O], [O, K, Z], [K, O, K]],
];

pub const SIZE: usize = 32;
/// The causal test's colour changes every this many images.
pub const CAUSAL_BATCH: usize = 128;

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenintSplit {
    Train,
    ConfoundedTest,
    CausalTest,
}

impl GenintSplit {
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::ConfoundedTest => "test-confounded",
            Self::CausalTest => "test-causal",
        }
    }
}

/// One split in memory: u8 RGB HWC 32×32 images and labels.
#[derive(Debug, Clone)]
pub struct GenintSet {
    pub split: GenintSplit,
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    /// The rules each image was coloured with.
    pub rules: Vec<[Rule; 3]>,
}

impl GenintSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let n = SIZE * SIZE * 3;
        &self.images[i * n..(i + 1) * n]
    }
}

/// The normalised 32×32 digit (−1..1) of a 28×28 MNIST image: grey as RGB, PIL bilinear resize,
/// `ToTensor` + `Normalize(0.5, 0.5)` (one channel; the three are equal).
pub fn digit32(img: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let rgb: Vec<u8> = img.iter().flat_map(|&v| [v, v, v]).collect();
    let im = image::RgbImage::from_raw(cols as u32, rows as u32, rgb)
        .unwrap_or_else(|| image::RgbImage::new(cols as u32, rows as u32));
    let r = crate::preprocess::pil_resize_bilinear(&im, SIZE as u32, SIZE as u32);
    r.pixels().map(|p| (p[0] as f32 / 255.0 - 0.5) / 0.5).collect()
}

/// Colours a normalised digit with `rules` and applies `save_image(normalize=True)`'s min–max
/// stretch and u8 rounding: 32·32·3 bytes, HWC.
pub fn render(d: &[f32], rules: [Rule; 3]) -> Vec<u8> {
    let hw = SIZE * SIZE;
    let val = |c: usize, p: usize| match rules[c] {
        Rule::Keep => d[p],
        Rule::One => 1.0,
        Rule::Zero => 0.0,
    };
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for c in 0..3 {
        for p in 0..hw {
            let v = val(c, p);
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let range = (hi - lo).max(1e-5);
    let mut out = vec![0u8; hw * 3];
    for p in 0..hw {
        for c in 0..3 {
            let x = (val(c, p) - lo) / range;
            out[p * 3 + c] = (x * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// The causal test's colour for one batch: two channels drawn with replacement, each +1 or 0.
pub fn causal_rules(rng: &mut Rng) -> [Rule; 3] {
    let chans = [rng.below(3) as usize, rng.below(3) as usize];
    let coins = [rng.uniform() > 0.5, rng.uniform() > 0.5, rng.uniform() > 0.5];
    let mut r = [Rule::Keep; 3];
    for &c in &chans {
        r[c] = if coins[c] { Rule::One } else { Rule::Zero };
    }
    r
}

/// Generates `split` from the MNIST images `m` with `seed`.
pub fn generate(m: &Mnist, split: GenintSplit, seed: u64) -> GenintSet {
    let n = m.len();
    let mut images = Vec::with_capacity(n * SIZE * SIZE * 3);
    let mut rules = Vec::with_capacity(n);
    let mut batch_rules = [Rule::Keep; 3];
    for i in 0..n {
        let label = m.labels[i] as usize;
        let r = match split {
            GenintSplit::Train | GenintSplit::ConfoundedTest => {
                let mut rng = Rng::new(hash3(seed, split as u64, i as u64));
                RULES[(rng.uniform() >= 0.5) as usize][label]
            }
            GenintSplit::CausalTest => {
                if i % CAUSAL_BATCH == 0 {
                    batch_rules = causal_rules(&mut Rng::new(hash3(seed, 0xCA05A1, (i / CAUSAL_BATCH) as u64)));
                }
                batch_rules
            }
        };
        images.extend(render(&digit32(m.image(i), m.rows, m.cols), r));
        rules.push(r);
    }
    GenintSet { split, images, labels: m.labels.clone(), rules }
}

/// Loads MNIST from `dir` and generates `split` (train from the training file, the tests from
/// `t10k`).
pub fn load(dir: &Path, split: GenintSplit, seed: u64) -> Result<GenintSet, DataError> {
    let file = if split == GenintSplit::Train { MnistFile::Train } else { MnistFile::Test };
    Ok(generate(&mnist::load(dir, file)?, split, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bg_and_stroke(rules: [Rule; 3]) -> ([u8; 3], [u8; 3]) {
        // A digit with a clean −1 background and a +1 stroke pixel.
        let mut d = vec![-1.0f32; SIZE * SIZE];
        d[5] = 1.0;
        let img = render(&d, rules);
        ([img[0], img[1], img[2]], [img[15], img[16], img[17]])
    }

    #[test]
    fn colours_match_the_reference_table() {
        // GENINT-MNIST.md §1: class 0 set 1 yellow on white; class 6 set 1 olive, stroke (.5,.5,1);
        // class 0 set 2 navy; class 1 set 2 maroon.
        assert_eq!(bg_and_stroke(RULES[0][0]), ([255, 255, 0], [255, 255, 255]));
        assert_eq!(bg_and_stroke(RULES[0][6]), ([128, 128, 0], [128, 128, 255]));
        assert_eq!(bg_and_stroke(RULES[1][0]).0, [0, 0, 128]);
        assert_eq!(bg_and_stroke(RULES[1][1]).0, [128, 0, 0]);
        assert_eq!(RULES[1][2], RULES[0][9]);
        assert_eq!(RULES[1][9], RULES[0][4]);
    }

    #[test]
    fn causal_colours_are_the_18_of_the_reference() {
        let mut seen = std::collections::BTreeSet::new();
        let mut rng = Rng::new(1);
        for _ in 0..2000 {
            seen.insert(format!("{:?}", causal_rules(&mut rng)));
        }
        assert_eq!(seen.len(), 18, "{seen:?}");
    }
}
