//! Finding and opening BigGAN-deep models on disk.
//!
//! `--model` accepts a folder (`config.json` + weights), a weights file with a `config.json`
//! beside it, or a hub name (`biggan-deep-256`) looked up in `$INTERVENE_MODELS`, the Python
//! package's cache `~/.pytorch_pretrained_biggan/`, and the bundled `models/` folder.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::{BigGan, BigGanConfig};
use crate::checkpoint;

/// Weight file names tried inside a model folder, in order.
pub const WEIGHT_NAMES: &[&str] = &["model.safetensors", "pytorch_model.bin", "pytorch_model_zip.bin", "model.pth"];

/// A model located on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
}

/// Why no model could be opened.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no BigGAN model found for '{query}'. Looked in:\n{looked}\nA model is a folder with config.json and pytorch_model.bin (or model.safetensors). \
The real weights (biggan-deep-128/256/512) come from the pytorch-pretrained-BigGAN release: `intervene fetch biggan-deep-256` downloads \
and verifies them into the folder searched here (`intervene fetch --list` shows what is on disk; offline machines: --from a mirror).")]
    NotFound { query: String, looked: String },
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("{path}: the weights do not fit the config: {source}")]
    Build { path: PathBuf, source: candle_core::Error },
}

/// The folders searched for a model given by name.
pub fn search_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(p) = std::env::var_os("INTERVENE_MODELS") {
        roots.extend(std::env::split_paths(&p));
    }
    roots.push(python_cache_dir());
    roots.push(crate::bundled_models_dir());
    roots
}

/// pytorch-pretrained-BigGAN's cache folder, as the Python package computes it:
/// `$PYTORCH_PRETRAINED_BIGGAN_CACHE`, else `~/.pytorch_pretrained_biggan` (`intervene fetch`
/// stores models here by default, so both find one copy).
pub fn python_cache_dir() -> PathBuf {
    match std::env::var_os("PYTORCH_PRETRAINED_BIGGAN_CACHE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".pytorch_pretrained_biggan"),
    }
}

/// Finds the config and weights for `query` (a path or a hub name).
pub fn locate(query: &str) -> Result<ModelFiles, LoadError> {
    let mut looked = Vec::new();
    if std::env::var_os("INTERVENE_MODELS").is_none() {
        looked.push("$INTERVENE_MODELS (not set; a folder of model folders)".to_string());
    }
    let p = Path::new(query);
    if let Some(m) = from_path(p, &mut looked) {
        return Ok(m);
    }
    // A name (no path separator) is also looked up in the model folders.
    let is_name = !query.contains(std::path::MAIN_SEPARATOR) && !query.contains('/');
    if !is_name {
        let roots: Vec<String> = search_roots().iter().map(|r| r.display().to_string()).collect();
        looked.push(format!("(model names, not paths, are also looked up in: {})", roots.join(", ")));
    }
    for root in search_roots().into_iter().filter(|_| is_name) {
        if let Some(m) = from_path(&root.join(query), &mut looked) {
            return Ok(m);
        }
        if let Some(m) = from_python_cache(&root, query, &mut looked) {
            return Ok(m);
        }
    }
    Err(LoadError::NotFound {
        query: query.to_string(),
        looked: looked.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n"),
    })
}

fn from_path(p: &Path, looked: &mut Vec<String>) -> Option<ModelFiles> {
    looked.push(p.display().to_string());
    if p.is_dir() {
        let config = p.join("config.json");
        let weights = WEIGHT_NAMES.iter().map(|n| p.join(n)).find(|w| w.is_file())?;
        return config.is_file().then_some(ModelFiles { config, weights });
    }
    if p.is_file() {
        let config = p.parent()?.join("config.json");
        return config.is_file().then(|| ModelFiles { config, weights: p.to_path_buf() });
    }
    None
}

/// The Python package caches `{name}-pytorch_model.bin` / `{name}-config.json` under hashed file
/// names, each with a `<hash>.json` sidecar that records its URL.
fn from_python_cache(root: &Path, name: &str, looked: &mut Vec<String>) -> Option<ModelFiles> {
    if root != python_cache_dir() && !root.ends_with(".pytorch_pretrained_biggan") {
        return None;
    }
    looked.push(format!("{} (cache entries for {name})", root.display()));
    let mut config = None;
    let mut weights = None;
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let meta = entry.path();
        if meta.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&meta) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(url) = v.get("url").and_then(|u| u.as_str()) else {
            continue;
        };
        let data = meta.with_extension("");
        if url.ends_with(&format!("{name}-config.json")) {
            config = Some(data);
        } else if url.ends_with(&format!("{name}-pytorch_model.bin")) {
            weights = Some(data);
        }
    }
    Some(ModelFiles { config: config?, weights: weights? })
}

/// Opens a located model on `device`.
pub fn open(files: &ModelFiles, device: &Device) -> Result<BigGan, LoadError> {
    let cfg = BigGanConfig::from_file(&files.config)?;
    let tensors = checkpoint::load(&files.weights)?;
    let (model, report) = build_tracked(tensors, &cfg, device)
        .map_err(|source| LoadError::Build { path: files.weights.clone(), source })?;
    if !report.unexpected.is_empty() {
        tracing::warn!(
            "{}: {} tensors were not used by the model: {report}",
            files.weights.display(),
            report.unexpected.len()
        );
    }
    Ok(model)
}

/// Builds the model while recording which checkpoint keys it used; tensors are moved out of the
/// map as they are taken, so the checkpoint's copy is freed while the model is built.
pub fn build_tracked(
    tensors: checkpoint::TensorMap,
    cfg: &BigGanConfig,
    device: &Device,
) -> candle_core::Result<(BigGan, checkpoint::KeyReport)> {
    let tracked = checkpoint::TrackedWeights::new(tensors);
    let model = BigGan::new(tracked.var_builder(DType::F32, device), cfg);
    let report = tracked.report();
    match model {
        Ok(m) => Ok((m, report)),
        Err(e) if report.is_clean() => Err(e),
        Err(e) => Err(candle_core::Error::Msg(format!("{e} ({report})"))),
    }
}

/// The default model's files, compiled in (see `models/biggan-deep-tiny-128/MODEL_CARD.md`).
const EMBEDDED_CONFIG: &str = include_str!("../../../models/biggan-deep-tiny-128/config.json");
const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../../models/biggan-deep-tiny-128/model.safetensors");

/// Opens the compiled-in default model (no files needed).
pub fn open_embedded(device: &Device) -> Result<BigGan, LoadError> {
    let cfg: BigGanConfig = serde_json::from_str(EMBEDDED_CONFIG)
        .map_err(|e| LoadError::Config(super::config::ConfigError::Invalid(format!("embedded config: {e}"))))?;
    let build = |source| LoadError::Build { path: PathBuf::from("<embedded default model>"), source };
    let tensors = candle_core::safetensors::load_buffer(EMBEDDED_WEIGHTS, &Device::Cpu).map_err(build)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    BigGan::new(vb, &cfg).map_err(build)
}

/// `locate` + `open`; the default model's name falls back to the compiled-in copy.
/// The file beside a model's `config.json` that names its classes, one per line in class order
/// (`intervene train biggan` writes it; ImageNet models need none).
pub const CLASS_NAMES_FILE: &str = "classes.txt";

/// The class names of the model `query` (empty when it has no `classes.txt`).
pub fn class_names(query: &str) -> anyhow::Result<Vec<String>> {
    let Ok(files) = locate(query) else { return Ok(Vec::new()) };
    let Some(path) = files.config.parent().map(|d| d.join(CLASS_NAMES_FILE)) else { return Ok(Vec::new()) };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

pub fn load(query: &str, device: &Device) -> Result<BigGan, LoadError> {
    match locate(query) {
        Ok(files) => open(&files, device),
        Err(LoadError::NotFound { .. }) if query == crate::DEFAULT_BIGGAN => open_embedded(device),
        Err(e) => Err(e),
    }
}
