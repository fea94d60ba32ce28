//! `intervene steer`: images from a BigGAN-deep model with principal-direction edits applied
//! to the per-layer latents (GANSpace's additive edits or GenInt's centred ones).

use std::path::PathBuf;

use anyhow::Context as _;

use crate::models::biggan::load;
use crate::steer::{Components, Edit, EditMode, Steerer};

/// Steer a BigGAN-deep model along GANSpace principal directions.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: intervene steer --components c.npz --seed 3 --class 207 \
--edit 0:0:4:2.5 --edit 5:4:11:-1 --out edited.png\n\n\
An edit COMP:START:END:STRENGTH moves component COMP on latent slots START..END (END exclusive; slot 0 \
is gen_z, slot k the k-th GenBlock). Additive: z + STRENGTH·stdev·c. Centred: the coordinate of z − mean \
along c is set to STRENGTH·stdev. Edits apply in the order given.")]
pub struct SteerArgs {
    /// Model: a folder (config.json + weights), a weights file beside a config.json, or a hub name.
    #[arg(long, value_name = "PATH", help_heading = "Model", default_value = crate::DEFAULT_BIGGAN)]
    pub model: String,
    /// GANSpace component file (.npz), e.g. from `intervene pca`.
    #[arg(long, value_name = "FILE.npz", help_heading = "Model")]
    pub components: PathBuf,
    /// Latents to start from, float32 [B, z_dim] (exact reproduction of captured frames).
    #[arg(long, value_name = "Z.npy", help_heading = "Input", conflicts_with = "seed")]
    pub z: Option<PathBuf>,
    /// Seed of the truncated-normal latents (row i of the batch uses seed + i).
    #[arg(long, value_name = "N", help_heading = "Input", default_value_t = 0)]
    pub seed: u64,
    /// Class: an index, or an ImageNet name or wnid for 1000-class models; once, or once per sample.
    #[arg(long = "class", value_name = "ID_OR_NAME", help_heading = "Input")]
    pub classes: Vec<String>,
    /// Truncation in (0, 1].
    #[arg(long, value_name = "T", help_heading = "Input", default_value_t = 0.4, value_parser = super::values::truncation)]
    pub truncation: f64,
    /// Batch size when sampling from --seed.
    #[arg(long, value_name = "B", help_heading = "Input", default_value_t = 1, value_parser = super::values::positive)]
    pub batch: usize,
    /// An edit COMP:START:END:STRENGTH (repeatable).
    #[arg(long = "edit", value_name = "COMP:START:END:STRENGTH", help_heading = "Edits")]
    pub edits: Vec<Edit>,
    /// additive (GANSpace's viewer) or centred (GenInt).
    #[arg(long, value_name = "MODE", help_heading = "Edits", default_value = "additive")]
    pub mode: EditMode,
    /// Image to write (a grid for B > 1).
    #[arg(long, value_name = "IMG.png", help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Float output, float32 NCHW in [−1, 1].
    #[arg(long, value_name = "OUT.npy", help_heading = "Output")]
    pub raw: Option<PathBuf>,
    /// Run on the CPU even when a GPU is available.
    #[arg(long, help_heading = "Device")]
    pub cpu: bool,
}

pub fn run(a: SteerArgs) -> anyhow::Result<()> {
    super::generate::check_outputs(a.out.as_deref(), a.raw.as_deref())?;
    let device = crate::device::select(a.cpu);
    let model = load::load(&a.model, &device)?;
    let comps = Components::load(&a.components)?;
    comps.check_z_dim(model.cfg.z_dim)?;
    for e in &a.edits {
        e.validate(comps.num_components(), model.cfg.num_latents())?;
    }
    let z = super::generate::latents(&model, a.z.as_deref(), a.seed, a.batch, a.truncation)?;
    let cv = super::generate::class_vectors(&model, &a.classes, None, z.dim(0)?)?;
    let mut steerer = Steerer::new(model);
    steerer.set_base(&z, &cv, a.truncation)?;
    let out = steerer.render(&comps, &a.edits, a.mode).context("steering failed")?;
    super::generate::write_outputs(&out, a.out.as_deref(), a.raw.as_deref())
}
