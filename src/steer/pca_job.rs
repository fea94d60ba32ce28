//! GANSpace's PCA as a job: computes components for one model and class and writes them
//! (atomically) to a file — what `intervene pca` and the window's "Compute PCA" both run.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::pca::{self, PcaConfig, PcaLayer, Phase};
use super::Components;
use crate::jobs::{Cancelled, Control};
use crate::models::biggan::BigGan;

/// Where the window caches computed components: `$INTERVENE_CACHE` or `~/.cache/intervene`, then
/// `components/`. Names follow GANSpace's `{model}-{class}_{layer}_ipca_c{C}_n{N}.npz`.
pub fn cache_path(model: &str, class: usize, components: usize, samples: usize) -> PathBuf {
    let root = std::env::var_os("INTERVENE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|p| PathBuf::from(p).join("intervene")))
        .or_else(|| std::env::var_os("HOME").map(|p| PathBuf::from(p).join(".cache").join("intervene")))
        .unwrap_or_else(|| std::env::temp_dir().join("intervene"));
    let name: String = Path::new(model)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| model.to_string())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    // Different models with the same folder name must not share a file.
    let tag = crate::imageio::fnv1a(model.as_bytes()) & 0xffff_ffff;
    root.join("components").join(format!("{name}-{tag:08x}-{class}_generator.gen_z_ipca_c{components}_n{samples}.npz"))
}

/// The studio's settings: gen_z, as GANSpace does for BigGAN.
pub fn default_config(samples: usize, components: usize, truncation: f64, seed: u64) -> PcaConfig {
    PcaConfig {
        layer: PcaLayer::GenZ,
        samples,
        components,
        truncation,
        seed,
        regression_samples: None,
        chunk: None,
        batch: None,
    }
}

/// What a finished PCA job gives back.
pub struct PcaResult {
    pub output: pca::PcaOutput,
    pub path: PathBuf,
}

/// Computes the components of `model` for `class` and saves them to `out` (GANSpace's layout;
/// nothing is written when cancelled). Progress runs over both phases (fitting, regression).
pub fn run(model: &BigGan, class: usize, cfg: &PcaConfig, out: &Path, control: &Control) -> anyhow::Result<PcaResult> {
    let nc = model.cfg.num_classes;
    if class >= nc {
        anyhow::bail!("class {class} does not exist: the model has {nc} classes");
    }
    let cv = crate::classes::one_hot(&[class], nc, &Device::Cpu)?.to_device(model.device())?;
    let fit = cfg.samples as u64;
    control.set_total(fit + cfg.regression_samples() as u64);
    let mut progress = |p: pca::Progress| {
        let offset = if p.phase == Phase::Regression { fit } else { 0 };
        control.set_status(if p.phase == Phase::Regression { "regression back to z" } else { "fitting" });
        control.set_done(offset + p.done as u64);
    };
    let flag = control.cancel_flag();
    let output = match pca::compute(model, &cv, cfg, &flag, &mut progress) {
        Err(pca::PcaError::Cancelled) => return Err(Cancelled.into()),
        r => r?,
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut output = output;
    output.components.source = out.display().to_string();
    output.components.save(out)?;
    control.log(format!("wrote {}", out.display()));
    Ok(PcaResult { output, path: out.to_path_buf() })
}

/// Loads a component file (a job too: large files take a moment).
pub fn load(path: &Path) -> anyhow::Result<Components> {
    Ok(Components::load(path)?)
}
