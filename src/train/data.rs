//! Image-folder data sets (torchvision's `ImageFolder` layout: `DIR/<class>/*.png|jpg|jpeg`)
//! for training and evaluation.
//!
//! **Classes.** The training folder (`--data`) defines them. Folders named by integers are
//! those class indices (MNIST's `0`…`9`; the model gets `max + 1` outputs). Other names (WordNet
//! ids, ImageNet names, anything) are sorted and numbered from 0, as `ImageFolder` does. The
//! other folders (`--intervened`, `--transferred`, `--eval`) are matched to these classes by
//! folder name, or, for ImageNet classes, by the class a wnid or name stands for (`n02110185`
//! and `Siberian husky` are the same class).
//!
//! **Errors** name the folder or file: a missing or unreadable folder, no class subfolders, an
//! empty class folder, class sets that disagree, an image that does not decode.
//!
//! **Loading.** Small data sets (MNIST-scale) are decoded once into memory, which also checks
//! every file before training starts; large ones are decoded per batch. Batches are assembled
//! on a loader thread one step ahead of the training step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use image::RgbImage;
use rayon::prelude::*;

use super::augment::Transform;
use crate::noise::Rng;

/// Decoded images up to this many bytes are kept in memory.
pub const CACHE_BUDGET: usize = 2 << 30;

fn is_image(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}

/// Class subfolders of `dir` and their image files (sorted), in folder-name order.
pub fn scan(dir: &Path, role: &str) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
    if !dir.is_dir() {
        bail!("{role} {}: not a folder", dir.display());
    }
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {role} folder {}", dir.display()))?;
    let mut out = Vec::new();
    let mut loose = 0usize;
    for e in entries {
        let p = e.with_context(|| format!("cannot read {role} folder {}", dir.display()))?.path();
        if !p.is_dir() {
            loose += usize::from(is_image(&p));
            continue;
        }
        let name = p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
            .with_context(|| format!("cannot read class folder {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file() && is_image(f))
            .collect();
        if files.is_empty() {
            bail!("{role} class folder {} holds no images (.png, .jpg, .jpeg)", p.display());
        }
        files.sort();
        out.push((name, files));
    }
    if out.is_empty() {
        let hint = if loose > 0 {
            format!(" ({loose} images lie directly in it: put them in one subfolder per class)")
        } else {
            String::new()
        };
        bail!("{role} {} has no class subfolders: expected {}/<class>/*.png|jpg{hint}", dir.display(), dir.display());
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The classes of a training run: label `i` is `names[i]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassSet {
    pub names: Vec<String>,
    /// Whether folder names are the class indices themselves.
    pub by_index: bool,
}

impl ClassSet {
    /// From the training folder's class names.
    pub fn from_names(names: &[String]) -> anyhow::Result<Self> {
        let idx: Option<Vec<usize>> = names.iter().map(|n| n.parse::<usize>().ok()).collect();
        let set = match idx {
            Some(idx) => {
                let n = idx.iter().max().map_or(0, |m| m + 1);
                if n > 100_000 {
                    bail!("class folder {n} is too large an index");
                }
                Self { names: (0..n).map(|i| i.to_string()).collect(), by_index: true }
            }
            None => {
                let mut v = names.to_vec();
                v.sort();
                Self { names: v, by_index: false }
            }
        };
        if names.len() < 2 {
            bail!("training needs at least two classes, found {}", names.len());
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The label of a folder name, if it is one of these classes.
    pub fn label(&self, folder: &str) -> Option<usize> {
        if self.by_index {
            return folder.trim().parse::<usize>().ok().filter(|&i| i < self.len());
        }
        if let Some(i) = self.names.iter().position(|n| n == folder) {
            return Some(i);
        }
        // wnid ⇄ ImageNet name: the same ImageNet class.
        let c = crate::classes::resolve(folder, 1000).ok()?;
        self.names.iter().position(|n| crate::classes::resolve(n, 1000).ok() == Some(c))
    }
}

/// One labelled image folder.
#[derive(Debug, Clone)]
pub struct Folder {
    pub root: PathBuf,
    /// Short name for messages and metric names (the folder's own name, or its parent's when it
    /// is called `train`/`test`/`val`).
    pub name: String,
    pub items: Vec<(PathBuf, u32)>,
    /// Images per label.
    pub counts: Vec<usize>,
}

/// A short display name for a data folder.
pub fn folder_name(dir: &Path) -> String {
    let own = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string());
    if matches!(own.as_str(), "train" | "test" | "val" | "valid" | "validation") {
        if let Some(parent) = dir.parent().and_then(|p| p.file_name()) {
            return format!("{}/{own}", parent.to_string_lossy());
        }
    }
    own
}

impl Folder {
    /// Reads `dir` and labels it with `classes`. With `same_as`, the folder must hold exactly
    /// the classes that folder holds; otherwise a subset is fine, but an unknown class is an error.
    pub fn open(dir: &Path, classes: &ClassSet, role: &str, same_as: Option<&Folder>) -> anyhow::Result<Self> {
        let scanned = scan(dir, role)?;
        let mut items = Vec::new();
        let mut counts = vec![0usize; classes.len()];
        let mut unknown = Vec::new();
        for (name, files) in &scanned {
            match classes.label(name) {
                Some(l) => {
                    counts[l] += files.len();
                    items.extend(files.iter().map(|f| (f.clone(), l as u32)));
                }
                None => unknown.push(name.clone()),
            }
        }
        let missing: Vec<&String> = match same_as {
            Some(d) => {
                (0..classes.len()).filter(|&l| d.counts[l] > 0 && counts[l] == 0).map(|l| &classes.names[l]).collect()
            }
            None => Vec::new(),
        };
        if !unknown.is_empty() || !missing.is_empty() {
            let mut msg = format!("the class folders of {role} {} do not match the training data's", dir.display());
            if !unknown.is_empty() {
                msg += &format!("; not in the training data: {}", list(&unknown));
            }
            if !missing.is_empty() {
                msg += &format!("; missing here: {}", list(&missing));
            }
            bail!("{msg}");
        }
        Ok(Self { root: dir.to_path_buf(), name: folder_name(dir), items, counts })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    let shown: Vec<String> = v.iter().take(8).map(|s| s.to_string()).collect();
    let more = if v.len() > 8 { format!(" and {} more", v.len() - 8) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// Decodes an image file as RGB.
pub fn read_image(path: &Path) -> anyhow::Result<RgbImage> {
    let img = image::open(path).with_context(|| format!("cannot read image {}", path.display()))?;
    Ok(img.to_rgb8())
}

/// A folder plus its decoded images when they fit in memory.
pub struct Images {
    pub folder: Folder,
    cache: Option<Vec<Arc<RgbImage>>>,
}

impl Images {
    /// Decodes everything up front when the images fit [`CACHE_BUDGET`] (estimated from the
    /// first image; `shrink` keeps MNIST-style images at the network's size, not the file's).
    pub fn new(folder: Folder, shrink_to: Option<u32>, log: &dyn Fn(String)) -> anyhow::Result<Self> {
        let first = folder.items.first().map(|(p, _)| read_image(p)).transpose()?;
        let per = first.map_or(0, |i| {
            let (w, h) = match shrink_to {
                Some(s) => (s, s),
                None => (i.width(), i.height()),
            };
            (w * h * 3) as usize
        });
        if per * folder.len() > CACHE_BUDGET {
            return Ok(Self { folder, cache: None });
        }
        log(format!("decoding {} images of {}", folder.len(), folder.root.display()));
        let cache = folder
            .items
            .par_iter()
            .map(|(p, _)| {
                let img = read_image(p)?;
                Ok(Arc::new(match shrink_to {
                    Some(s) if img.width() != s || img.height() != s => {
                        crate::preprocess::pil_resize_bilinear(&img, s, s)
                    }
                    _ => img,
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { folder, cache: Some(cache) })
    }

    pub fn len(&self) -> usize {
        self.folder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.folder.is_empty()
    }

    /// Whether images are read from disk per batch (not cached).
    pub fn is_decoded_lazily(&self) -> bool {
        self.cache.is_none()
    }

    pub fn label(&self, i: usize) -> u32 {
        self.folder.items[i].1
    }

    fn image(&self, i: usize) -> anyhow::Result<Arc<RgbImage>> {
        match &self.cache {
            Some(c) => Ok(c[i].clone()),
            None => Ok(Arc::new(read_image(&self.folder.items[i].0)?)),
        }
    }

    /// Writes sample `i`, transformed with the generator `seed`, into `out` (`3·size²` values).
    pub fn sample(&self, i: usize, t: &Transform, seed: u64, out: &mut [f32]) -> anyhow::Result<()> {
        let img = self.image(i)?;
        t.apply(&img, &mut Rng::new(seed), out).with_context(|| format!("{}", self.folder.items[i].0.display()))
    }
}

/// A seed from a tuple of integers (splitmix64 folded), for per-sample randomness.
pub fn seed_of(parts: &[u64]) -> u64 {
    parts.iter().fold(0x005E_ED0F_1A7E_u64, |h, &p| splitmix64(h ^ p.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// One splitmix64 output step (Steele, Lea & Flood 2014).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A permutation of `0..n` from `seed` (Fisher–Yates).
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut rng = Rng::new(seed);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// Per-class image counts of a folder, by class name (for logs and config files).
pub fn class_counts(f: &Folder, classes: &ClassSet) -> BTreeMap<String, usize> {
    classes.names.iter().cloned().zip(f.counts.iter().copied()).filter(|(_, c)| *c > 0).collect()
}
