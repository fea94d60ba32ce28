//! `intervene generate`: images from a BigGAN-deep model.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use candle_core::{DType, Tensor};

use crate::models::biggan::{load, BigGan};

/// Generate images from a BigGAN-deep model.
///
/// The noise is `truncation · truncnorm(−2, 2)` drawn from --seed, or read from --z. Classes are
/// given by index, WordNet id or name (--class, repeatable: one per sample, or one for all), or
/// as soft vectors (--class-vector) to interpolate between classes.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: intervene generate --model models/biggan-deep-tiny-128 --seed 3 --class 207 --batch 4 --out grid.png"
)]
pub struct GenerateArgs {
    /// Model folder (config.json + weights), weights file beside a config.json, or hub name.
    #[arg(long, value_name = "PATH", help_heading = "Model", default_value = crate::DEFAULT_BIGGAN)]
    pub model: String,
    /// Noise vectors, float32 [B, z_dim] `.npy` (overrides --seed and --batch).
    #[arg(long, value_name = "Z.npy", help_heading = "Input", conflicts_with = "seed")]
    pub z: Option<PathBuf>,
    /// Seed of the truncated-normal noise (our own sampler: stable across runs and machines,
    /// not bit-equal to NumPy's; store z with --z for cross-tool reproducibility).
    #[arg(long, value_name = "N", help_heading = "Input", default_value_t = 0)]
    pub seed: u64,
    /// Class of each sample: index, WordNet id (n02110185) or name ("Siberian husky").
    /// Give one for all samples or one per sample.
    #[arg(long = "class", value_name = "ID_OR_NAME", help_heading = "Input")]
    pub classes: Vec<String>,
    /// Soft class vectors, float32 [B, num_classes] `.npy` (class interpolation).
    #[arg(long, value_name = "CV.npy", help_heading = "Input", conflicts_with = "classes")]
    pub class_vector: Option<PathBuf>,
    /// Truncation in (0, 1]; scales the noise and selects the batch-norm statistics.
    #[arg(long, value_name = "T", help_heading = "Input", default_value_t = 0.4, value_parser = super::values::truncation)]
    pub truncation: f64,
    /// Number of samples (consecutive noise draws from --seed).
    #[arg(long, value_name = "B", help_heading = "Input", default_value_t = 1, value_parser = super::values::positive)]
    pub batch: usize,
    /// Image to write (PNG/JPEG by extension; a grid when B > 1).
    #[arg(long, value_name = "IMG.png", help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Raw output, float32 NCHW in [−1, 1], as `.npy`.
    #[arg(long, value_name = "OUT.npy", help_heading = "Output")]
    pub raw: Option<PathBuf>,
    /// Run on the CPU even when a GPU is available.
    #[arg(long, help_heading = "Device")]
    pub cpu: bool,
}

pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    check_outputs(a.out.as_deref(), a.raw.as_deref())?;
    let device = crate::device::select(a.cpu);
    let model = load::load(&a.model, &device)?;
    let z = latents(&model, a.z.as_deref(), a.seed, a.batch, a.truncation)?;
    let b = z.dim(0)?;
    let class_vec = class_vectors(&model, &a.classes, a.class_vector.as_deref(), b)?;
    let out = model.forward(&z, &class_vec, a.truncation)?;
    write_outputs(&out, a.out.as_deref(), a.raw.as_deref())
}

/// `generate` and `steer` refuse to run a network whose output nobody asked for.
pub(crate) fn check_outputs(out: Option<&std::path::Path>, raw: Option<&std::path::Path>) -> anyhow::Result<()> {
    if out.is_none() && raw.is_none() {
        bail!("nothing to write: give --out IMG.png and/or --raw OUT.npy");
    }
    Ok(())
}

/// z `[B, z_dim]` from `--z Z.npy`, else truncated noise from `--seed` (row i from seed + i).
pub fn latents(
    model: &BigGan,
    z: Option<&std::path::Path>,
    seed: u64,
    batch: usize,
    truncation: f64,
) -> anyhow::Result<Tensor> {
    let device = model.device();
    let z = match z {
        Some(p) => crate::imageio::load_npy(p)?.to_dtype(DType::F32)?.to_device(device)?,
        None => {
            if batch == 0 {
                bail!("--batch must be at least 1");
            }
            crate::noise::truncated_noise(seed, batch, model.cfg.z_dim, truncation, device)?
        }
    };
    let (_, zd) = z.dims2().context("--z must be a 2-D array [B, z_dim]")?;
    if zd != model.cfg.z_dim {
        bail!("--z has {zd} columns but the model's z_dim is {}", model.cfg.z_dim);
    }
    Ok(z)
}

/// Class vectors `[b, num_classes]` from `--class-vector` or `--class` names/indices (one for
/// all samples or one per sample); class 0 when neither is given.
pub fn class_vectors(
    model: &BigGan,
    classes: &[String],
    class_vector: Option<&std::path::Path>,
    b: usize,
) -> anyhow::Result<Tensor> {
    let n = model.cfg.num_classes;
    let dev = model.device();
    if let Some(p) = class_vector {
        let cv = crate::imageio::load_npy(p)?;
        let (cb, cn) = cv.dims2().context("--class-vector must be [B, num_classes]")?;
        if cn != n || cb != b {
            bail!("--class-vector is [{cb}, {cn}] but [{b}, {n}] is needed");
        }
        return Ok(cv.to_dtype(DType::F32)?.to_device(dev)?);
    }
    let names = if classes.is_empty() { vec!["0".to_string()] } else { classes.to_vec() };
    let ids = names
        .iter()
        .map(|c| crate::classes::resolve(c, n).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ids = match ids.len() {
        1 => vec![ids[0]; b],
        k if k == b => ids,
        k => bail!("{k} classes given for {b} samples: give one, or one per sample"),
    };
    Ok(crate::classes::one_hot(&ids, n, dev)?)
}

/// Writes the image (grid for B > 1) and/or the raw tensor.
pub fn write_outputs(out: &Tensor, img: Option<&std::path::Path>, raw: Option<&std::path::Path>) -> anyhow::Result<()> {
    if let Some(p) = raw {
        crate::imageio::save_npy(&out.to_device(&candle_core::Device::Cpu)?, p)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = img {
        let imgs = crate::imageio::images_from_tensor(out)?;
        crate::imageio::save_image(&crate::imageio::grid(&imgs), p)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
