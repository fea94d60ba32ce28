//! `intervene export genint`: GenInt's intervened data set ([`crate::jobs::genint_export`]).

use std::path::PathBuf;

use anyhow::{bail, Context as _};

use crate::jobs::genint_export::{self, Layout};
use crate::jobs::image_sink::ImageFormat;
use crate::jobs::Shard;

/// `intervene export genint`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
intervene export genint --model biggan-deep-256 --components husky_c80.npz --classes all --per-class 1000 \\\n      \
--topk 60 --scale 1 --truncation 1 --seed 0 --out genint/\n  \
# the same set as WebDataset shards, split over a Slurm array of 64 tasks (each writes its share):\n  \
intervene export genint ... --layout webdataset --out /scratch/genint   # SLURM_ARRAY_TASK_ID/COUNT pick the shard\n  \
# regenerate image 1234 bit for bit from the manifest:\n  \
intervene export genint --replay genint/manifest.jsonl --index 1234 --out img.png\n\n\
Per (class, n): z = truncation·truncnorm(−2, 2) and 5 distinct components among the top --topk, each offset \
uniform in --scale × GenInt's reference range, set with the centred edit on every latent slot; all drawn from \
the item's seed (seed, class, n). --observational writes plain samples instead. Files appear complete or not \
at all; a killed run continues with --resume and ends with exactly the files of an uninterrupted run; shards \
together give the single-machine set. manifest.jsonl (one line per image) is written by the run that completes \
the set; manifest.json holds the settings.")]
pub struct ExportGenintArgs {
    /// BigGAN-deep model: a folder (config.json + weights), a weights file beside a config.json, or a hub name.
    #[arg(long, value_name = "PATH", required_unless_present = "replay")]
    pub model: Option<String>,
    /// GANSpace component file (.npz) of this model (not needed with --observational).
    #[arg(long, value_name = "C.npz")]
    pub components: Option<PathBuf>,
    /// Classes: `all`, or indices / WordNet ids / names separated by commas.
    #[arg(long, value_name = "LIST|all", required_unless_present = "replay")]
    pub classes: Option<String>,
    /// Images per class.
    #[arg(long, value_name = "N", value_parser = positive, required_unless_present = "replay")]
    pub per_class: Option<usize>,
    /// Components are drawn among the top K (GenInt: 60).
    #[arg(long, value_name = "K", default_value_t = 60, value_parser = positive)]
    pub topk: usize,
    /// Offset scale: a fraction (1 = 100 % of GenInt's reference ranges) or a percentage (`100%`).
    #[arg(long, value_name = "S", default_value = "1", value_parser = scale)]
    pub scale: f64,
    /// Truncation in (0, 1] (GenInt: 1 for interventions, 0.2 for the observational baseline).
    #[arg(long, value_name = "T", default_value_t = 1.0, value_parser = truncation)]
    pub truncation: f64,
    /// Seed of every random draw.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    pub seed: u64,
    /// Output folder (an image file with --replay).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Do only shard I of N (units with index mod N == I). Default: Slurm's array variables, else 0/1.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Continue an interrupted export in --out (the settings must be the same).
    #[arg(long)]
    pub resume: bool,
    /// Image format: png or jpg (quality 95).
    #[arg(long, value_name = "FORMAT", default_value = "png")]
    pub format: ImageFormat,
    /// Plain samples at --truncation, no intervention (GenInt's observational baseline).
    #[arg(long)]
    pub observational: bool,
    /// imagefolder: {wnid or class}/{index}.png; webdataset: tar shards of --samples-per-tar samples.
    #[arg(long, value_name = "LAYOUT", default_value = "imagefolder")]
    pub layout: Layout,
    /// Samples per WebDataset tar shard (the resume unit of that layout).
    #[arg(long, value_name = "N", default_value_t = genint_export::DEFAULT_SAMPLES_PER_TAR, value_parser = positive)]
    pub samples_per_tar: usize,
    /// Images per forward (part of the settings: the batch fixes the arithmetic).
    #[arg(long, value_name = "B", default_value_t = genint_export::DEFAULT_BATCH, value_parser = positive)]
    pub batch: usize,
    /// Regenerate one image of an export from its manifest.jsonl (with --index and --out IMG.png).
    #[arg(long, value_name = "MANIFEST", requires = "index")]
    pub replay: Option<PathBuf>,
    /// The image to regenerate (its `index` in the manifest).
    #[arg(long, value_name = "I", requires = "replay")]
    pub index: Option<usize>,
    /// Run on the CPU even when a GPU is available.
    #[arg(long)]
    pub cpu: bool,
}

/// A count of at least 1.
pub(crate) fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a positive whole number")),
    }
}

/// A truncation in (0, 1].
pub(crate) fn truncation(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if t > 0.0 && t <= 1.0 => Ok(t),
        _ => Err(format!("'{s}' is not a truncation in (0, 1]")),
    }
}

/// `1`, `0.5` or `50%`.
fn scale(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match v {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive scale (e.g. 1, 0.5 or 50%)")),
    }
}

pub fn run(a: ExportGenintArgs) -> anyhow::Result<()> {
    let device = crate::device::select(a.cpu);
    if let Some(manifest) = &a.replay {
        let index = a.index.context("--replay needs --index")?;
        let img = genint_export::replay(manifest, index, &device)?;
        // The export's own encoder, so a replayed file has the exported file's bytes.
        let ext = a.out.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        let format: ImageFormat = ext.parse().map_err(|e: String| anyhow::anyhow!("--out {}: {e}", a.out.display()))?;
        crate::jobs::image_sink::write_file(&a.out, &format.encode(&img)?)?;
        eprintln!("wrote {} (image {index} of {})", a.out.display(), manifest.display());
        return Ok(());
    }
    let (Some(model_name), Some(classes), Some(per_class)) = (&a.model, &a.classes, a.per_class) else {
        bail!("--model, --classes and --per-class are needed (or --replay MANIFEST --index I)");
    };
    let shard = a.shard.or_else(Shard::from_env).unwrap_or_default();
    let mut req = genint_export::Request::new(model_name, a.components.clone(), classes, per_class, a.out.clone());
    let st = &mut req.settings;
    (st.top_k, st.scale, st.truncation, st.seed) = (a.topk, a.scale, a.truncation, a.seed);
    (st.observational, st.format, st.layout) = (a.observational, a.format, a.layout);
    (st.samples_per_tar, st.batch) = (a.samples_per_tar, a.batch);
    (req.shard, req.resume) = (shard, a.resume);
    let report = crate::cli::job::run("images", |control| genint_export::export(&req, &device, control))?;
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
        Some(p) => eprintln!("the set is complete; wrote {}", p.display()),
        None => {
            eprintln!("other shards are still missing; manifest.jsonl is written by the run that completes the set")
        }
    }
    Ok(())
}
