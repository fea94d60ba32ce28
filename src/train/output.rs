//! The training output folder:
//!
//! | file | content |
//! |---|---|
//! | `config.json` | every setting, the seed, the classes (label order), written before the first step |
//! | `model.safetensors` | the state dict with PyTorch / torchvision key names (what the explanation tools load) |
//! | `checkpoint.safetensors` | state dict + optimiser state + step: what `--resume` continues from |
//! | `metrics.jsonl` | one JSON object per step (loss, accuracy, lr) and per epoch (evaluations) |
//!
//! Files are replaced atomically (temporary name, then rename), so a killed run leaves the last
//! complete checkpoint; `metrics.jsonl` only grows, and a resume drops lines past the checkpoint.
//! The folder itself opens wherever a classifier is expected ([`TrainedModel::find`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use candle_core::{Device, Tensor};

use super::nets::TrainArch;

/// `config.json`'s `format` field.
pub const CONFIG_FORMAT: &str = "intervene-train-classifier-v1";
const CHECKPOINT_FORMAT: &str = "intervene-train-checkpoint-v1";

pub const CONFIG: &str = "config.json";
pub const MODEL: &str = "model.safetensors";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const METRICS: &str = "metrics.jsonl";

/// What a classifier path needs from a training folder.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    pub dir: PathBuf,
    pub arch: TrainArch,
    pub weights: PathBuf,
    /// Label order (folder names).
    pub classes: super::data::ClassSet,
    /// The evaluation transform the model was trained for.
    pub transform: super::augment::Transform,
}

impl TrainedModel {
    /// `Some` when `path` is a training output folder; an error when it is one without weights.
    pub fn find(path: &Path) -> anyhow::Result<Option<Self>> {
        let cfg = path.join(CONFIG);
        if !path.is_dir() || !cfg.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&cfg).with_context(|| format!("cannot read {}", cfg.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", cfg.display()))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(CONFIG_FORMAT) {
            return Ok(None);
        }
        let arch: TrainArch = serde_json::from_value(v["settings"]["arch"].clone())
            .with_context(|| format!("{}: no valid settings.arch", cfg.display()))?;
        let classes = serde_json::from_value(v["classes"].clone())
            .with_context(|| format!("{}: no valid classes", cfg.display()))?;
        let transform: super::augment::Transform = serde_json::from_value(v["settings"]["transform"].clone())
            .with_context(|| format!("{}: no valid settings.transform", cfg.display()))?;
        let weights = path.join(MODEL);
        if !weights.is_file() {
            bail!(
                "{} is a training folder without weights yet ({MODEL} appears after the first epoch)",
                path.display()
            );
        }
        Ok(Some(Self { dir: path.to_path_buf(), arch, weights, classes, transform: transform.for_eval() }))
    }
}

/// A checkpoint read back.
pub struct Checkpoint {
    pub step: u64,
    pub optimizer_steps: u64,
    pub state: HashMap<String, Tensor>,
    pub optimizer: BTreeMap<String, Vec<f32>>,
}

/// Writes `tensors` with `metadata` to `path` atomically.
fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> anyhow::Result<()> {
    crate::imageio::write_atomically(path, |tmp| {
        let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        safetensors::serialize_to_file(views, Some(metadata), tmp)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))
    })
}

/// Writes the loadable weights (`model.safetensors`).
pub fn write_model(dir: &Path, state: &[(String, Tensor)], arch: TrainArch, step: u64) -> anyhow::Result<()> {
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("arch".to_string(), arch.name().to_string()),
        ("step".to_string(), step.to_string()),
    ]);
    write_safetensors(&dir.join(MODEL), state, meta)
}

/// Writes `checkpoint.safetensors`: `model/{key}`, `optim/{name}`, the step in the metadata.
pub fn write_checkpoint(
    dir: &Path,
    state: &[(String, Tensor)],
    optimizer: &[(String, Vec<f32>)],
    step: u64,
    optimizer_steps: u64,
) -> anyhow::Result<()> {
    let mut all: Vec<(String, Tensor)> = state.iter().map(|(k, t)| (format!("model/{k}"), t.clone())).collect();
    for (k, v) in optimizer {
        all.push((format!("optim/{k}"), Tensor::from_slice(v, v.len(), &Device::Cpu)?));
    }
    let meta = HashMap::from([
        ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
        ("step".to_string(), step.to_string()),
        ("optimizer_steps".to_string(), optimizer_steps.to_string()),
    ]);
    write_safetensors(&dir.join(CHECKPOINT), &all, meta)
}

/// Reads `checkpoint.safetensors`, if present.
pub fn read_checkpoint(dir: &Path) -> anyhow::Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT);
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(CHECKPOINT_FORMAT) {
        bail!("{}: not an intervene training checkpoint", path.display());
    }
    let num = |k: &str| -> anyhow::Result<u64> {
        meta.get(k).and_then(|v| v.parse().ok()).with_context(|| format!("{}: metadata lacks {k}", path.display()))
    };
    let (step, optimizer_steps) = (num("step")?, num("optimizer_steps")?);
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut state = HashMap::new();
    let mut optimizer = BTreeMap::new();
    for (k, t) in tensors {
        if let Some(key) = k.strip_prefix("model/") {
            state.insert(key.to_string(), t);
        } else if let Some(key) = k.strip_prefix("optim/") {
            optimizer.insert(key.to_string(), t.to_vec1::<f32>()?);
        }
    }
    Ok(Some(Checkpoint { step, optimizer_steps, state, optimizer }))
}

/// Appends JSON lines to `metrics.jsonl`.
pub struct MetricsLog {
    file: std::fs::File,
    path: PathBuf,
}

impl MetricsLog {
    /// Opens the log for appending, first dropping lines past `keep_until_step` (a resumed run
    /// redoes those steps) and a torn last line.
    pub fn open(dir: &Path, keep_until_step: u64) -> anyhow::Result<Self> {
        Self::open_file(dir, METRICS, keep_until_step)
    }

    /// [`MetricsLog::open`] for another per-step log in `dir` (lines with a `step` field).
    pub fn open_file(dir: &Path, name: &str, keep_until_step: u64) -> anyhow::Result<Self> {
        let path = dir.join(name);
        if path.is_file() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|s| s <= keep_until_step)
                })
                .collect();
            let mut body = kept.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            if body != text {
                crate::imageio::write_atomically(&path, |tmp| Ok(std::fs::write(tmp, &body)?))?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self { file, path })
    }

    pub fn write(&mut self, v: &serde_json::Value) -> anyhow::Result<()> {
        writeln!(self.file, "{v}").with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// Reads every line of a `metrics.jsonl`.
pub fn read_metrics(dir: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let path = dir.join(METRICS);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
