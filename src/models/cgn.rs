//! A CGN of any supported kind, recognised by its checkpoint keys: the MNIST CGN
//! ([`super::cgn_mnist`]) or the ImageNet CGN ([`super::cgn_imagenet`]).

use std::path::Path;

use anyhow::{bail, Context as _};
use candle_core::Device;

use crate::checkpoint::TensorMap;

use super::cgn_imagenet::{self, CgnImageNet, CgnImageNetConfig};
use super::cgn_mnist::{self, CgnMnist};

/// The bundled MNIST CGN (random weights; `models/cgn-mnist-random/MODEL_CARD.md`), compiled in.
pub const DEFAULT_CGN: &str = "cgn-mnist-random";
const EMBEDDED_CGN: &[u8] = include_bytes!("../../models/cgn-mnist-random/model.safetensors");

/// A CGN of any supported kind.
pub enum CgnModel {
    /// The MNIST CGN (32×32, three small mechanisms).
    Mnist(CgnMnist),
    /// The ImageNet CGN (four BigGAN-deep-256 generators + U²-Net, 256×256).
    ImageNet(Box<CgnImageNet>),
}

/// The kind of CGN a checkpoint holds, told by its keys alone (nothing is built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgnKind {
    Mnist,
    /// `ground_truth`: the checkpoint also holds `biggan_GT` (the pretrained generator).
    ImageNet {
        ground_truth: bool,
    },
}

impl CgnKind {
    /// The kind of the checkpoint's tensors; `None` when they are no CGN this version runs.
    pub fn detect(map: &TensorMap) -> Option<Self> {
        if cgn_mnist::is_cgn_mnist(map) {
            return Some(Self::Mnist);
        }
        let has = |p: &str| map.keys().any(|k| k.starts_with(p));
        (has("f_shape.generator.") && has("u2net.")).then(|| Self::ImageNet { ground_truth: has("biggan_GT.") })
    }
}

/// The error for a checkpoint that is no CGN (`n` tensors found in it).
pub fn not_a_cgn(path: &Path, n: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: not a CGN checkpoint this version can run (an MNIST CGN has label_emb.weight [10, 10] and \
         f_shape.0.weight [4096, 42]; an ImageNet CGN has f_shape.generator.* and u2net.* keys; {n} tensors found)",
        path.display()
    )
}

impl CgnModel {
    /// Opens a checkpoint and recognises its kind by the keys (an ImageNet CGN without its
    /// `biggan_GT`, which only `x_gt` needs).
    pub fn open(path: &Path, device: &Device) -> anyhow::Result<Self> {
        let map = crate::checkpoint::load(path)?;
        let kind = CgnKind::detect(&map).ok_or_else(|| not_a_cgn(path, map.len()))?;
        Self::from_tensors(map, kind, path, device, false)
    }

    /// Builds the model of `kind` from a checkpoint's tensors (`path` names it in messages).
    /// `ground_truth`: also build an ImageNet CGN's `biggan_GT` when the checkpoint has it.
    pub fn from_tensors(
        map: TensorMap,
        kind: CgnKind,
        path: &Path,
        device: &Device,
        ground_truth: bool,
    ) -> anyhow::Result<Self> {
        match kind {
            CgnKind::Mnist => Ok(CgnModel::Mnist(cgn_mnist::from_tensors(map, path, device)?)),
            CgnKind::ImageNet { ground_truth: has_gt } => {
                let cfg =
                    CgnImageNetConfig { with_ground_truth: has_gt && ground_truth, ..CgnImageNetConfig::default() };
                let (m, report) = cgn_imagenet::build_tracked(map, &cfg, device)
                    .with_context(|| format!("{}: cannot build the ImageNet CGN", path.display()))?;
                if !report.is_clean() {
                    tracing::warn!("{}: {report}", path.display());
                }
                Ok(CgnModel::ImageNet(Box::new(m)))
            }
        }
    }

    /// Opens a checkpoint path, a folder in the bundled `models/` by name, or the compiled-in
    /// default ([`DEFAULT_CGN`]).
    pub fn open_named(query: &str, device: &Device) -> anyhow::Result<Self> {
        if let Some(w) = Self::weights_named(query) {
            return Self::open(&w, device);
        }
        if query == DEFAULT_CGN {
            let map = crate::checkpoint::load_bytes(EMBEDDED_CGN, Path::new("<embedded cgn-mnist-random>"))?;
            return Ok(CgnModel::Mnist(cgn_mnist::from_tensors(
                map,
                Path::new("<embedded cgn-mnist-random>"),
                device,
            )?));
        }
        bail!("no CGN found at '{query}': give a checkpoint file (the authors' ckp.pth / cgn.pth, or safetensors), or a folder name in {}", crate::bundled_models_dir().display())
    }

    /// The weights file [`CgnModel::open_named`] opens for `query`: the path itself, or the
    /// weights in a folder (a training output, or a bundled model by name).
    pub fn weights_named(query: &str) -> Option<std::path::PathBuf> {
        let p = Path::new(query);
        if p.is_file() {
            return Some(p.to_path_buf());
        }
        [p.to_path_buf(), crate::bundled_models_dir().join(query)].iter().find_map(|dir| weights_in(dir))
    }

    /// Classes of each mechanism.
    pub fn num_classes(&self) -> usize {
        match self {
            CgnModel::Mnist(m) => m.config.n_classes,
            CgnModel::ImageNet(m) => m.f_shape.cfg.num_classes,
        }
    }
}

/// The weights file of a model folder: `model.safetensors`, else the first `.safetensors` /
/// `.pth` / `.pt` / `.bin` file by name.
fn weights_in(dir: &Path) -> Option<std::path::PathBuf> {
    if !dir.is_dir() {
        return None;
    }
    let preferred = dir.join("model.safetensors");
    if preferred.is_file() {
        return Some(preferred);
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("safetensors" | "pth" | "pt" | "bin")))
        .collect();
    files.sort();
    files.into_iter().next()
}
