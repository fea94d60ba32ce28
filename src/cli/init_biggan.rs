//! `intervene init-biggan`: a BigGAN-deep with random weights, saved in the hub layout
//! (`config.json` + `model.safetensors`) — for demos, tests and benchmarks of any size.

use std::path::PathBuf;

use anyhow::Context as _;
use candle_core::{DType, Device};

use crate::bench::RecordingWeights;
use crate::models::biggan::{BigGan, BigGanConfig};

/// Write a random-weight BigGAN-deep (nothing learned: structured noise) for a config.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: intervene init-biggan --config models/biggan-deep-tiny-32/config.json --seed 1 --out /tmp/tiny32"
)]
pub struct InitBigganArgs {
    /// deep-128, deep-256, deep-512 or a hub config.json path.
    #[arg(long, value_name = "NAME_OR_PATH")]
    pub config: String,
    /// Seed of the weights.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Output folder (config.json + model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(a: InitBigganArgs) -> anyhow::Result<()> {
    let cfg = match BigGanConfig::preset(&a.config) {
        Some(c) => c,
        None => BigGanConfig::from_file(std::path::Path::new(&a.config))?,
    };
    let rec = RecordingWeights::new(a.seed);
    let taken = rec.taken.clone();
    let vb = candle_nn::VarBuilder::from_backend(Box::new(rec), DType::F32, Device::Cpu);
    let model = BigGan::new(vb, &cfg)?;
    let tensors = std::mem::take(&mut *taken.lock().map_err(|_| anyhow::anyhow!("recording poisoned"))?);
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let weights = a.out.join("model.safetensors");
    crate::imageio::write_atomically(&weights, |tmp| Ok(candle_core::safetensors::save(&tensors, tmp)?))?;
    let config = a.out.join("config.json");
    crate::imageio::write_atomically(&config, |tmp| {
        Ok(std::fs::write(tmp, serde_json::to_string_pretty(&cfg)? + "\n")?)
    })?;
    eprintln!(
        "wrote {} ({} tensors, {:.2} M parameters, {}×{}) and {}",
        weights.display(),
        tensors.len(),
        model.num_parameters() as f64 / 1e6,
        cfg.output_dim,
        cfg.output_dim,
        config.display()
    );
    Ok(())
}
