//! Background jobs for the steering panel: loading a component file and computing GANSpace's
//! PCA for the open model and class. Both run on their own thread (poll-promise); the PCA
//! reports progress through atomics and stops at the next batch when cancelled.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use poll_promise::Promise;

use crate::steer::pca::{self, PcaConfig, PcaLayer};
use crate::steer::Components;

/// Where computed components are cached: `$INTERVENE_CACHE` or `~/.cache/intervene`, then
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
    let tag = crate::ui::fnv1a(model.as_bytes()) & 0xffff_ffff;
    root.join("components").join(format!("{name}-{tag:08x}-{class}_generator.gen_z_ipca_c{components}_n{samples}.npz"))
}

/// Loads a component file off the UI thread.
pub fn load(path: PathBuf) -> Promise<Result<Arc<Components>, String>> {
    Promise::spawn_thread("intervene-components", move || {
        Components::load(&path).map(Arc::new).map_err(|e| e.to_string())
    })
}

/// A running PCA.
pub struct PcaJob {
    pub cancel: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    pub result: Promise<Result<(Arc<Components>, PathBuf), String>>,
    pub target: PathBuf,
}

impl PcaJob {
    /// Starts GANSpace's PCA at `gen_z` for `class` of `model` and writes the result to `out`.
    pub fn start(model: String, class: usize, cfg: PcaConfig, out: PathBuf, cpu: bool) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(cfg.samples));
        let (c2, d2, t2, o2) = (cancel.clone(), done.clone(), total.clone(), out.clone());
        let result = Promise::spawn_thread("intervene-pca", move || {
            let run = || -> anyhow::Result<(Arc<Components>, PathBuf)> {
                let device = crate::device::select(cpu);
                let m = crate::models::biggan::load::load(&model, &device)?;
                let cv = crate::classes::one_hot(&[class.min(m.cfg.num_classes - 1)], m.cfg.num_classes, &device)?;
                let mut progress = |p: pca::Progress| {
                    // Fitting then regression: one bar over both phases.
                    let offset = if p.phase == pca::Phase::Regression { cfg.samples } else { 0 };
                    t2.store(cfg.samples + cfg.regression_samples(), Ordering::Relaxed);
                    d2.store(offset + p.done, Ordering::Relaxed);
                };
                let out = pca::compute(&m, &cv, &cfg, &c2, &mut progress)?;
                if let Some(dir) = o2.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut comps = out.components;
                comps.source = o2.display().to_string();
                comps.save(&o2)?;
                Ok((Arc::new(comps), o2))
            };
            run().map_err(|e| format!("{e:#}"))
        });
        Self { cancel, done, total, result, target: out }
    }

    /// Fraction done in [0, 1].
    pub fn fraction(&self) -> f32 {
        let t = self.total.load(Ordering::Relaxed).max(1);
        (self.done.load(Ordering::Relaxed) as f32 / t as f32).clamp(0.0, 1.0)
    }

    /// Default settings for the studio: gen_z, as GANSpace does for BigGAN.
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
}
