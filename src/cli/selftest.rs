//! `intervene selftest`: checks the runtime against the reference goldens on the chosen device
//! (the same checks as tests/biggan_parity.rs, runnable where no Rust toolchain exists, e.g. a
//! GPU machine that only receives the binary).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use candle_core::{DType, Tensor};

use crate::models::biggan::{load, BigGan};

/// Check BigGAN-deep against the reference goldens of a fixture folder, on CPU or GPU.
#[derive(clap::Args, Debug)]
pub struct SelftestArgs {
    /// Fixture folder with config.json, the weight files and golden.safetensors.
    #[arg(long, value_name = "DIR", default_value = "tests/fixtures/biggan-deep-tiny-128")]
    pub fixture: PathBuf,
    /// Largest allowed absolute difference of the outputs.
    #[arg(long, value_name = "ATOL", default_value_t = 1e-4, value_parser = atol)]
    pub atol: f32,
    /// Run on the CPU even when a GPU is available.
    #[arg(long)]
    pub cpu: bool,
}

pub fn run(a: SelftestArgs) -> anyhow::Result<()> {
    let device = crate::device::select(a.cpu);
    let golden = candle_core::safetensors::load(a.fixture.join("golden.safetensors"), &candle_core::Device::Cpu)
        .context("golden.safetensors")?;
    let mut worst = 0f32;
    for w in ["model.safetensors", "pytorch_model.bin", "pytorch_model_zip.bin"] {
        let files = load::ModelFiles { config: a.fixture.join("config.json"), weights: a.fixture.join(w) };
        let model: BigGan = load::open(&files, &device)?;
        for case in 0..6 {
            let k = |s: &str| {
                golden.get(&format!("case{case}.{s}")).cloned().with_context(|| format!("case{case}.{s} missing"))
            };
            let t = k("truncation")?.to_dtype(DType::F64)?.flatten_all()?.get(0)?.to_scalar::<f64>()?;
            let out = model.forward(&k("z")?.to_device(&device)?, &k("class_vector")?.to_device(&device)?, t)?;
            let d = max_abs_diff(&out.to_device(&candle_core::Device::Cpu)?, &k("output")?)?;
            println!("{w:<22} case {case}: max |Δ| = {d:.2e}");
            worst = worst.max(d);
        }
    }
    println!("device {}: worst max |Δ| = {worst:.2e} (atol {:.0e})", crate::device::describe(&device), a.atol);
    if worst > a.atol {
        bail!("parity check failed: {worst:e} > {:e}", a.atol);
    }
    Ok(())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn atol(s: &str) -> Result<f32, String> {
    super::values::non_negative(s).map(|v| v as f32)
}
