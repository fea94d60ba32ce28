//! `intervene export`: data sets written by resumable, shardable jobs ([`crate::jobs`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};

use crate::jobs::cgn_export::{CgnExport, Layout, Settings};
use crate::jobs::{self, Control, Shard};
use crate::models::cgn::CgnModel;

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
    #[arg(long, value_name = "N")]
    pub n: usize,
    /// Counterfactual texture/background draws per shape draw (mask).
    #[arg(long, value_name = "K", default_value_t = 10)]
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
    #[arg(long, value_name = "T", default_value_t = 0.5)]
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
    }
}

static CANCEL: OnceLock<std::sync::Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_sigint(_: libc::c_int) {
    if let Some(c) = CANCEL.get() {
        c.store(true, Ordering::SeqCst);
    }
}

fn cgn(a: ExportCgnArgs) -> anyhow::Result<()> {
    if a.n == 0 || a.cf_per_shape == 0 {
        bail!("--n and --cf-per-shape must be at least 1");
    }
    super::check_truncation(a.truncation)?;
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
    std::fs::create_dir_all(&a.out)?;
    // Shards share the folder by design: an existing manifest with the same settings is theirs.
    jobs::claim_directory(&a.out, &serde_json::to_value(&settings)?, a.resume || shard.count > 1)?;
    let mut job = CgnExport::new(model, settings, a.out.clone(), device);

    let control = Control::new();
    let _ = CANCEL.set(control.cancel_flag());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("[{bar:40}] {pos}/{len} chunks  {msg}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let summary = jobs::run(&mut job, shard, a.resume || shard.count > 1, &control, &mut |c| {
        let (d, t) = c.progress();
        bar.set_length(t);
        bar.set_position(d);
        bar.set_message(format!("{:.1} images/s", c.rate()));
    })?;
    bar.finish_and_clear();
    let secs = summary.elapsed.as_secs_f64();
    eprintln!(
        "shard {shard}: wrote {} images in {secs:.1} s ({:.1} images/s); {} chunks done, {} already complete",
        summary.files_written,
        summary.files_written as f64 / secs.max(1e-9),
        summary.units_run,
        summary.units_skipped
    );
    if summary.cancelled {
        bail!("cancelled: rerun the same command with --resume to finish");
    }
    if job.is_finished() {
        let p = job.write_labels()?;
        eprintln!("all images present; wrote {}", p.display());
    } else {
        eprintln!("other shards are still missing; labels.csv is written by the run that completes the set");
    }
    Ok(())
}

/// Runs `job` with a progress bar (units) and Ctrl-C wired to its control.
fn with_progress<T>(unit: &str, job: impl FnOnce(&Control) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let control = Control::new();
    let _ = CANCEL.set(control.cancel_flag());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!("[{{bar:40}}] {{pos}}/{{len}} units  {{msg}}  eta {{eta}} ({unit})"))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let ticker = {
        let (c, b, stop) = (control.clone(), bar.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (d, t) = c.progress();
                b.set_length(t);
                b.set_position(d);
                b.set_message(format!("{:.2}/s", c.rate()));
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
    let r = job(&control);
    stop.store(true, Ordering::SeqCst);
    let _ = ticker.join();
    bar.finish_and_clear();
    r
}
