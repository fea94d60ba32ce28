//! Training images for the generators, held in memory as 32×32 RGB u8 (HWC) with labels:
//!
//! | `--data` | images |
//! |---|---|
//! | `mnist`, `fashion-mnist` | the 60,000 training images of `$INTERVENE_DATA/{mnist,fashion-mnist}`, zero-padded 28 → 32 (2 px per side), grey copied to RGB |
//! | `colored`, `double-colored`, `wildlife` | the biased **train** split of the CGN variant ([`crate::data::variants`], seed 0: the first 50,000 MNIST training digits) |
//! | a folder | class sub-folders of images (any size, resized to 32×32 with a triangle filter); labels in sorted folder order |
//!
//! A batch is f32 `(n, 3, 32, 32)` in [−1, 1] (`u8/255·2 − 1`). The order of an epoch is a
//! seeded permutation, so a run is reproducible and a resumed run sees the same batches.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::mnist::{self, MnistFile};
use crate::data::textures::TextureSet;
use crate::data::variants::{self, Split, Variant, VariantConfig};

/// Side of every generator training image.
pub const SIZE: usize = 32;

/// Where the images come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum DataSource {
    Mnist,
    FashionMnist,
    Variant(String),
    Folder(PathBuf),
}

impl DataSource {
    /// `mnist`, `fashion-mnist`, a variant name, or a folder path.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "mnist" => return Ok(Self::Mnist),
            "fashion-mnist" | "fashion" => return Ok(Self::FashionMnist),
            _ => {}
        }
        if let Ok(v) = s.parse::<Variant>() {
            return Ok(Self::Variant(v.name().to_string()));
        }
        let p = PathBuf::from(s);
        if p.is_dir() {
            return Ok(Self::Folder(p));
        }
        bail!("--data {s:?}: not a data set name (mnist, fashion-mnist, colored, double-colored, wildlife, wildlife-v2) nor an existing folder of class sub-folders")
    }

    /// A short name for cards and logs.
    pub fn name(&self) -> String {
        match self {
            Self::Mnist => "mnist".into(),
            Self::FashionMnist => "fashion-mnist".into(),
            Self::Variant(v) => v.clone(),
            Self::Folder(p) => p.display().to_string(),
        }
    }
}

/// Images and labels in memory.
#[derive(Debug, Clone)]
pub struct GanData {
    pub source: DataSource,
    /// `len()·32·32·3` bytes, RGB HWC.
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    /// Class names in label order.
    pub classes: Vec<String>,
}

fn pad_grey(m: &mnist::Mnist) -> anyhow::Result<Vec<u8>> {
    if m.rows > SIZE || m.cols > SIZE {
        bail!("images of {}×{} do not fit 32×32", m.rows, m.cols);
    }
    let (oy, ox) = ((SIZE - m.rows) / 2, (SIZE - m.cols) / 2);
    let px = SIZE * SIZE * 3;
    let mut out = vec![0u8; m.len() * px];
    for (i, dst) in out.chunks_exact_mut(px).enumerate() {
        let src = m.image(i);
        for r in 0..m.rows {
            for c in 0..m.cols {
                let v = src[r * m.cols + c];
                let p = ((r + oy) * SIZE + c + ox) * 3;
                dst[p..p + 3].copy_from_slice(&[v, v, v]);
            }
        }
    }
    Ok(out)
}

/// Fashion-MNIST's class names (zalandoresearch/fashion-mnist README).
pub const FASHION_CLASSES: [&str; 10] =
    ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"];

impl GanData {
    /// Loads `source` (MNIST-family files from `data_dir`, i.e. `$INTERVENE_DATA`).
    pub fn load(source: &DataSource, data_dir: &Path) -> anyhow::Result<Self> {
        let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        match source {
            DataSource::Mnist | DataSource::FashionMnist => {
                let (dir, classes) = match source {
                    DataSource::Mnist => (data_dir.join("mnist"), digits),
                    _ => (data_dir.join("fashion-mnist"), FASHION_CLASSES.iter().map(|s| s.to_string()).collect()),
                };
                let m = mnist::load(&dir, MnistFile::Train)?;
                Ok(Self {
                    source: source.clone(),
                    images: pad_grey(&m)?,
                    labels: m.labels.iter().map(|&l| l as u32).collect(),
                    classes,
                })
            }
            DataSource::Variant(name) => Self::variant_with_seed(name, data_dir, 0),
            DataSource::Folder(dir) => Self::from_folder(dir, source),
        }
    }

    /// The biased train split of MNIST variant `name` generated with sample seed `seed` (seed 0
    /// is [`Self::load`]'s; for wildlife another seed gives other texture crops of the same
    /// digits, classes and textures).
    pub fn variant_with_seed(name: &str, data_dir: &Path, seed: u64) -> anyhow::Result<Self> {
        Self::variant_with_textures(name, data_dir, seed, None)
    }

    /// [`Self::variant_with_seed`] with wildlife's textures given (`None`: the procedural ones).
    pub fn variant_with_textures(
        name: &str,
        data_dir: &Path,
        seed: u64,
        textures: Option<&TextureSet>,
    ) -> anyhow::Result<Self> {
        let v: Variant = name.parse()?;
        let (train, _) = variants::source_splits(&data_dir.join("mnist"), variants::TestSource::Holdout, None)?;
        let set =
            variants::generate_with_textures(&VariantConfig::new(v, seed), Split::Train, &train, textures, &|_| {})?;
        let labels = set.labels().iter().map(|&l| l as u32).collect();
        let classes = (0..10).map(|d| d.to_string()).collect();
        Ok(Self { source: DataSource::Variant(v.name().to_string()), images: set.images, labels, classes })
    }

    fn from_folder(dir: &Path, source: &DataSource) -> anyhow::Result<Self> {
        let scanned = crate::train::data::scan(dir, "--data")?;
        if scanned.len() < 2 {
            bail!(
                "{}: found {} class folder(s); a class-conditional generator needs at least 2",
                dir.display(),
                scanned.len()
            );
        }
        // Labels as the classifier trainer assigns them (numeric folder names by value, others
        // sorted), so a judge trained on the same folder agrees.
        let names: Vec<String> = scanned.iter().map(|(n, _)| n.clone()).collect();
        let set = crate::train::data::ClassSet::from_names(&names)?;
        let classes = set.names.clone();
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for (name, files) in scanned.iter() {
            let label = set.label(name).with_context(|| format!("{}: class folder {name}", dir.display()))?;
            for f in files {
                let img = image::open(f).with_context(|| format!("cannot read the image {}", f.display()))?.to_rgb8();
                let img = if img.width() as usize == SIZE && img.height() as usize == SIZE {
                    img
                } else {
                    image::imageops::resize(&img, SIZE as u32, SIZE as u32, image::imageops::FilterType::Triangle)
                };
                images.extend_from_slice(img.as_raw());
                labels.push(label as u32);
            }
        }
        Ok(Self { source: source.clone(), images, labels, classes })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Images `idx` as `(n, 3, 32, 32)` in [−1, 1] and their labels `(n)` (u32).
    pub fn batch(&self, idx: &[u32], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let hw = SIZE * SIZE;
        let mut x = vec![0f32; idx.len() * 3 * hw];
        for (j, &i) in idx.iter().enumerate() {
            let img = &self.images[i as usize * 3 * hw..(i as usize + 1) * 3 * hw];
            for p in 0..hw {
                for c in 0..3 {
                    x[(j * 3 + c) * hw + p] = img[p * 3 + c] as f32 / 255.0 * 2.0 - 1.0;
                }
            }
        }
        let y: Vec<u32> = idx.iter().map(|&i| self.labels[i as usize]).collect();
        Ok((Tensor::from_vec(x, (idx.len(), 3, SIZE, SIZE), device)?, Tensor::from_vec(y, idx.len(), device)?))
    }

    /// The epoch that global step `step` falls in at `batch` images per step.
    pub fn epoch_of(&self, step: u64, batch: usize) -> u64 {
        step / (self.len() / batch).max(1) as u64
    }

    /// The indices of the batch of global step `step` (epochs of seeded permutations; the last
    /// partial batch of an epoch is dropped, as `drop_last`).
    pub fn batch_indices(&self, seed: u64, step: u64, batch: usize) -> Vec<u32> {
        let per_epoch = (self.len() / batch).max(1) as u64;
        let epoch = self.epoch_of(step, batch);
        let i = (step % per_epoch) as usize;
        let perm = crate::train::data::permutation(self.len(), crate::train::data::seed_of(&[seed, 0xDA7A, epoch]));
        perm[i * batch..((i + 1) * batch).min(perm.len())].to_vec()
    }

    /// The first `n` images of class `c` (for sample sheets and diversity figures).
    pub fn of_class(&self, c: u32, n: usize) -> Vec<u32> {
        (0..self.len() as u32).filter(|&i| self.labels[i as usize] == c).take(n).collect()
    }
}
