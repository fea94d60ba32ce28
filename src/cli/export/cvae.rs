//! `intervene export cvae`: GenInt's observational and interventional sets from a trained CVAE
//! (engine: [`crate::jobs::cvae_export`]).

use std::path::PathBuf;

use crate::jobs::cvae_export::{export, Arm, Interventions, Request, SetSpec, REFERENCE_GRID_WIDTH};

/// Which sets.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmChoice {
    Observational,
    Interventional,
    Both,
}

/// `intervene export cvae`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  # the paper's two arms from the bundled CVAE, 2,000 images per digit each
  intervene export cvae --model cvae-genint-colored --out cvae-sets
  # the reference code's interventional set: a 77×77 quantile grid per digit, min–max stretched
  intervene export cvae --model cvae-genint-colored --arm interventional --interventions grid --stretch --out grid

Writes OUT/<arm>/<digit>/NNNNN.png (for `intervene train classifier --data OUT/<arm>`), OUT/<arm>/set.json \
(the settings and the model's SHA-256) and a sheet OUT/samples_<arm>.png. Rerunning continues a set; a set \
folder made with other settings or another model is refused. The same --seed as the training run rewrites \
the sets `intervene train cvae` wrote, image for image.")]
pub struct ExportCvaeArgs {
    /// A bundled CVAE's name (see `models/index.json`) or a CVAE folder (`intervene train cvae --out`).
    #[arg(long, value_name = "NAME|DIR")]
    pub model: String,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Which sets to write.
    #[arg(long, value_enum, default_value = "both")]
    pub arm: ArmChoice,
    /// Images per digit in each set (the grid has --grid-width² instead).
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = crate::cli::values::positive)]
    pub per_class: usize,
    /// How the interventional set moves the latent: pca (the paper: uniform within ±--scale sd
    /// along the top-2 principal directions) or grid (the reference code: a --grid-width² grid
    /// of N(0, 1) quantiles over the two latent axes).
    #[arg(long, value_parser = crate::cli::values::named::<Interventions>(), default_value = "pca")]
    pub interventions: Interventions,
    /// pca: ± this many standard deviations along each principal direction.
    #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = crate::cli::values::positive_f64)]
    pub scale: f64,
    /// grid: points per latent axis (the reference's vis_width).
    #[arg(long, value_name = "W", default_value_t = REFERENCE_GRID_WIDTH, value_parser = crate::cli::values::positive)]
    pub grid_width: usize,
    /// Save each image min–max stretched to [0, 1], as the reference's save_image(normalize=True).
    #[arg(long)]
    pub stretch: bool,
    /// Seed of the latents (1 = the training run's default, so its sets are reproduced).
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
}

pub fn run(a: ExportCvaeArgs) -> anyhow::Result<()> {
    let model = crate::jobs::cvae_export::resolve_model(&a.model)?;
    let arms = match a.arm {
        ArmChoice::Observational => vec![Arm::Observational],
        ArmChoice::Interventional => vec![Arm::Interventional],
        ArmChoice::Both => vec![Arm::Observational, Arm::Interventional],
    };
    let like = SetSpec {
        interventions: a.interventions,
        grid_width: a.grid_width,
        stretch: a.stretch,
        ..SetSpec::paper(Arm::Interventional, a.per_class, a.scale, a.seed)
    };
    let req = Request::new(model, a.out, &arms, &like);
    let s = crate::cli::job::run("images", |c| export(&req, c))?;
    eprintln!(
        "wrote {} of {} images → {}",
        s.written,
        s.total,
        s.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
