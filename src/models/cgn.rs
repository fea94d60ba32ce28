//! A CGN of any supported kind, recognised by its checkpoint keys: the MNIST CGN
//! ([`super::cgn_mnist`]) or the ImageNet CGN ([`super::cgn_imagenet`]).

use std::path::Path;

use anyhow::{bail, Context as _};
use candle_core::Device;

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

impl CgnModel {
    /// Opens a checkpoint and recognises its kind by the keys.
    pub fn open(path: &Path, device: &Device) -> anyhow::Result<Self> {
        let map = crate::checkpoint::load(path)?;
        if cgn_mnist::is_cgn_mnist(&map) {
            return Ok(CgnModel::Mnist(cgn_mnist::from_tensors(map, path, device)?));
        }
        if map.keys().any(|k| k.starts_with("f_shape.generator.")) && map.keys().any(|k| k.starts_with("u2net.")) {
            let cfg = CgnImageNetConfig {
                with_ground_truth: map.keys().any(|k| k.starts_with("biggan_GT.")),
                ..CgnImageNetConfig::default()
            };
            let (m, report) = cgn_imagenet::build_tracked(map, &cfg, device)
                .with_context(|| format!("{}: cannot build the ImageNet CGN", path.display()))?;
            if !report.is_clean() {
                tracing::warn!("{}: {report}", path.display());
            }
            return Ok(CgnModel::ImageNet(Box::new(m)));
        }
        bail!(
            "{}: not a CGN checkpoint this version can run (an MNIST CGN has label_emb.weight [10, 10] and \
             f_shape.0.weight [4096, 42]; an ImageNet CGN has f_shape.generator.* and u2net.* keys; {} tensors found)",
            path.display(),
            map.len()
        )
    }

    /// Opens a checkpoint path, a folder in the bundled `models/` by name, or the compiled-in
    /// default ([`DEFAULT_CGN`]).
    pub fn open_named(query: &str, device: &Device) -> anyhow::Result<Self> {
        let p = Path::new(query);
        if p.is_file() {
            return Self::open(p, device);
        }
        // A folder (a training output, or a bundled model by name): its weights file.
        for dir in [p.to_path_buf(), crate::bundled_models_dir().join(query)] {
            if let Some(w) = weights_in(&dir) {
                return Self::open(&w, device);
            }
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
