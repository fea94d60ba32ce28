//! `intervene pca`: GANSpace's principal components of a BigGAN-deep layer for one class,
//! written as GANSpace's own `.npz` layout.

use std::path::PathBuf;

use crate::models::biggan::load;
use crate::steer::pca::{PcaConfig, PcaLayer};
use crate::steer::pca_job;

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
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = super::values::positive)]
    pub samples: usize,
    /// C, components kept.
    #[arg(long, value_name = "K", default_value_t = 80, value_parser = super::values::positive)]
    pub components: usize,
    /// Layer: gen_z (GANSpace's BigGAN default) or layers.N (output of generator.layers[N]).
    #[arg(long, value_name = "LAYER", default_value = "gen_z")]
    pub layer: PcaLayer,
    /// Truncation of the samples, in (0, 1].
    #[arg(long, value_name = "T", default_value_t = 1.0, value_parser = super::values::truncation)]
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

pub fn run(a: PcaArgs) -> anyhow::Result<()> {
    let device = crate::device::select(a.cpu);
    let model = load::load(&a.model, &device)?;
    let class = crate::classes::resolve(&a.class, model.cfg.num_classes).map_err(anyhow::Error::msg)?;
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
    let r = super::job::run("samples", |c| pca_job::run(&model, class, &cfg, &a.out, c)).map_err(|e| {
        if crate::jobs::is_cancelled_error(&e) {
            e.context("nothing was written")
        } else {
            e
        }
    })?;
    let c = &r.output.components;
    let top: Vec<String> = c.var_ratio.iter().take(5).map(|v| format!("{:.2}%", 100.0 * v)).collect();
    eprintln!(
        "wrote {} ({} components of {} at {}; explained variance {}…; regression R² {:.4}{})",
        a.out.display(),
        c.num_components(),
        cfg.layer,
        model.cfg.output_dim,
        top.join(", "),
        r.output.regression_r2,
        if r.output.converged { "" } else { "; warning: an eigen-solve did not converge" }
    );
    Ok(())
}
