//! `intervene pca`: GANSpace's principal components of a BigGAN-deep layer for one class,
//! written as GANSpace's own `.npz` layout.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};

use crate::models::biggan::load;
use crate::steer::pca::{self, PcaConfig, PcaLayer, Phase};

/// Compute GANSpace principal directions (incremental PCA + regression back to z).
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: intervene pca --class 207 --samples 100000 --components 80 --out husky.npz\n\n\
The result loads in GANSpace and in `intervene steer` / the studio. Memory stays bounded by one chunk of \
samples whatever N is. Ctrl-C stops cleanly without writing a partial file.")]
pub struct PcaArgs {
    /// Model: a folder (config.json + weights), a weights file beside a config.json, or a hub name.
    #[arg(long, value_name = "PATH", default_value = crate::DEFAULT_BIGGAN)]
    pub model: String,
    /// Class whose samples are decomposed: index, ImageNet name or wnid.
    #[arg(long, value_name = "ID_OR_NAME", default_value = "0")]
    pub class: String,
    /// N, samples for the PCA.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub samples: usize,
    /// C, components kept.
    #[arg(long, value_name = "K", default_value_t = 80)]
    pub components: usize,
    /// Layer: gen_z (GANSpace's BigGAN default) or layers.N (output of generator.layers[N]).
    #[arg(long, value_name = "LAYER", default_value = "gen_z")]
    pub layer: PcaLayer,
    /// Truncation of the samples, in (0, 1].
    #[arg(long, value_name = "T", default_value_t = 1.0)]
    pub truncation: f64,
    /// Seed of the samples (the result is deterministic from it).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Samples for the regression back to z (default max(10000, N)).
    #[arg(long, value_name = "R")]
    pub regression_samples: Option<usize>,
    /// Output file (.npz, GANSpace layout).
    #[arg(long, value_name = "FILE.npz")]
    pub out: PathBuf,
    /// Run on the CPU even when a GPU is available.
    #[arg(long)]
    pub cpu: bool,
}

static CANCEL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    CANCEL.store(true, Ordering::SeqCst);
}

pub fn run(a: PcaArgs) -> anyhow::Result<()> {
    super::check_truncation(a.truncation)?;
    let device = crate::device::select(a.cpu);
    let model = load::load(&a.model, &device)?;
    let class = crate::classes::resolve(&a.class, model.cfg.num_classes).map_err(anyhow::Error::msg)?;
    let cv = crate::classes::one_hot(&[class], model.cfg.num_classes, &device)?;
    let cfg = PcaConfig {
        layer: a.layer,
        samples: a.samples,
        components: a.components,
        truncation: a.truncation,
        seed: a.seed,
        regression_samples: a.regression_samples,
        chunk: None,
        batch: None,
    };
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let bar = ProgressBar::new(cfg.samples as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} samples ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("fitting");
    let mut phase = Phase::Fitting;
    let mut progress = |p: pca::Progress| {
        if p.phase != phase {
            phase = p.phase;
            bar.set_message("regression");
            bar.set_length(p.total as u64);
        }
        bar.set_position(p.done as u64);
    };
    let result = pca::compute(&model, &cv, &cfg, &CANCEL, &mut progress);
    bar.finish_and_clear();
    let out = match result {
        Err(pca::PcaError::Cancelled) => bail!("cancelled: nothing was written"),
        r => r?,
    };
    out.components.save(&a.out)?;
    let c = &out.components;
    let top: Vec<String> = c.var_ratio.iter().take(5).map(|v| format!("{:.2}%", 100.0 * v)).collect();
    eprintln!(
        "wrote {} ({} components of {} at {}; explained variance {}…; regression R² {:.4}{})",
        a.out.display(),
        c.num_components(),
        cfg.layer,
        model.cfg.output_dim,
        top.join(", "),
        out.regression_r2,
        if out.converged { "" } else { "; warning: an eigen-solve did not converge" }
    );
    Ok(())
}
