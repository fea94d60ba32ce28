//! `intervene export`: data sets written by resumable, shardable jobs ([`crate::jobs`]).

use std::path::PathBuf;

use crate::jobs::cgn_export::{export, Layout, Settings};
use crate::jobs::Shard;
use crate::models::cgn::CgnModel;

pub mod cvae;
pub mod genint;
pub mod transfer;

/// Export data sets (resumable, shardable across a cluster's job scheduler).
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportWhat,
}

/// What to export.
#[derive(clap::Subcommand, Debug)]
pub enum ExportWhat {
    /// A counterfactual data set from a CGN (one mask per shape draw, K texture/background draws).
    Cgn(ExportCgnArgs),
    /// GenInt's intervened data set from BigGAN (ImageFolder or WebDataset, JSONL manifest, replay).
    Genint(genint::ExportGenintArgs),
    /// GenInt's transfer step: AdaIN style transfer of intervened images onto real ones.
    Transfer(transfer::ExportTransferArgs),
    /// GenInt's observational and interventional sets from a trained colored-MNIST CVAE.
    Cvae(cvae::ExportCvaeArgs),
}

/// `intervene export cgn`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  intervene export cgn --model double_colored.pth --n 100000 --cf-per-shape 10 --out cf/\n  \
# a Slurm array of 16 tasks, each doing its share into the same folder:\n  \
intervene export cgn --model cgn.pth --n 1000000 --cf-per-shape 10 --out /scratch/cf --shard $SLURM_ARRAY_TASK_ID/16\n\n\
Files appear complete or not at all. A killed run continues with --resume and produces exactly the files an \
uninterrupted run would. Shards split the work by shape draw; together they give the single-machine set. \
labels.csv (index, file, shape, texture, background) is written once every image exists."
)]
pub struct ExportCgnArgs {
    /// CGN checkpoint (MNIST or ImageNet CGN; the kind is read from the keys).
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Number of images (rounded up to whole shape draws).
    #[arg(long, value_name = "N", value_parser = super::values::positive)]
    pub n: usize,
    /// Counterfactual texture/background draws per shape draw (mask).
    #[arg(long, value_name = "K", default_value_t = 10, value_parser = super::values::positive)]
    pub cf_per_shape: usize,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// cgn: images/{index}.png + labels.csv; imagefolder: {shape}/{index}.png (+ labels.csv).
    #[arg(long, value_name = "LAYOUT", default_value = "cgn")]
    pub layout: Layout,
    /// Do only shard I of N (shape draws with index mod N == I). Default: Slurm's array variables, else 0/1.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Continue an interrupted export in --out (same settings required).
    #[arg(long)]
    pub resume: bool,
    /// Seed of every random choice.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Truncation of the ImageNet CGN's noise (the authors use 0.5).
    #[arg(long, value_name = "T", default_value_t = 0.5, value_parser = super::values::truncation)]
    pub truncation: f64,
    /// Run on the CPU even when a GPU is available.
    #[arg(long)]
    pub cpu: bool,
}

pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    match a.what {
        ExportWhat::Cgn(c) => cgn(c),
        ExportWhat::Genint(g) => genint::run(g),
        ExportWhat::Transfer(t) => transfer::run(t),
        ExportWhat::Cvae(v) => cvae::run(v),
    }
}

fn cgn(a: ExportCgnArgs) -> anyhow::Result<()> {
    let shard = a.shard.or_else(Shard::from_env).unwrap_or_default();
    let device = crate::device::select(a.cpu);
    let model = CgnModel::open(&a.model, &device)?;
    let settings = Settings {
        model: a.model.display().to_string(),
        n: a.n,
        cf_per_shape: a.cf_per_shape,
        seed: a.seed,
        layout: a.layout,
        truncation: a.truncation,
        format_version: 1,
    };
    let report = super::job::run("images", |c| export(model, settings, &a.out, shard, a.resume, device, c))?;
    let s = &report.summary;
    let secs = s.elapsed.as_secs_f64();
    eprintln!(
        "shard {shard}: wrote {} images in {secs:.1} s ({:.1} images/s); {} chunks done, {} already complete",
        s.files_written,
        s.files_written as f64 / secs.max(1e-9),
        s.units_run,
        s.units_skipped
    );
    match report.labels {
        Some(p) => eprintln!("all images present; wrote {}", p.display()),
        None => eprintln!("other shards are still missing; labels.csv is written by the run that completes the set"),
    }
    Ok(())
}
