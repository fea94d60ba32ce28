//! The command-line front end. Every job of the window has a subcommand here, with the same
//! engine behind it. `main` parses and dispatches; each subcommand lives in its own file.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod bound;
pub mod cam;
pub mod cgn;
pub mod data;
pub mod eval;
pub mod export;
pub mod fetch;
pub mod generate;
pub mod init_biggan;
pub mod inspect;
pub mod job;
pub mod pca;
pub mod quality;
pub mod selftest;
pub mod steer;
pub mod sweep;
pub mod train;
pub mod train_gan;
pub mod values;

/// intervene — steer class-conditional generators, build intervened and counterfactual data
/// sets, and see why classifiers decide.
///
/// Without a subcommand, the studio window opens on the bundled default model.
#[derive(Parser, Debug)]
#[command(name = "intervene", version, about, long_about, propagate_version = true, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log level filter (e.g. `info`, `intervene=debug`); also read from RUST_LOG.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

const AFTER_HELP: &str = "Exit codes: 0 success, 1 the job failed, 2 bad arguments.\n\
Models: --model takes a folder (config.json + weights), a weights file beside a config.json, or a hub name \
searched in $INTERVENE_MODELS, ~/.pytorch_pretrained_biggan/ and the bundled models/ folder.";

/// The jobs.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the studio window (the default when no subcommand is given).
    #[cfg(feature = "gui")]
    Gui(crate::ui::GuiArgs),
    /// Generate images from a BigGAN-deep model.
    Generate(generate::GenerateArgs),
    /// Steer a model along principal directions (GANSpace additive or GenInt centred edits).
    Steer(steer::SteerArgs),
    /// Compute GANSpace principal directions for a model and class (.npz).
    Pca(pca::PcaArgs),
    /// Counterfactual images from a CGN: separate shape, texture and background classes.
    Cgn(cgn::CgnArgs),
    /// Data sets: build the colored / double-colored / wildlife MNIST variants (ImageFolder trees).
    Data(data::DataArgs),
    /// Export data sets with resumable, shardable jobs (counterfactual CGN sets).
    Export(export::ExportArgs),
    /// Write a random-weight BigGAN-deep for a config (demos, tests, benchmarks).
    InitBiggan(init_biggan::InitBigganArgs),
    /// GenInt's intervention-strategy sweep: log P(x|z) over truncation, top-k and scale (CSV).
    Sweep(sweep::SweepArgs),
    /// Measure speed and memory (random weights, no files needed).
    Bench(bench::BenchArgs),
    /// Download the real BigGAN-deep weights by name (verified, resumable; --list shows what is on disk).
    Fetch(fetch::FetchArgs),
    /// Explain a classifier's decision on an image (GradCAM family, EigenCAM).
    Cam(cam::CamArgs),
    /// Train models: `train classifier` (GenInt's objective on image folders).
    Train(train::TrainArgs),
    /// Sample quality of a trained generator: class consistency with a judge classifier, diversity.
    Quality(quality::QualityArgs),
    /// Accuracy of a classifier on labelled image folders (top-1/5, per class, confusion).
    Eval(eval::EvalArgs),
    /// Estimate log P(x|z) (GenInt's causal-bound proxy) from image folders and a classifier, or from features.
    Bound(bound::BoundArgs),
    /// List the tensors of a weights file (safetensors, PyTorch zip, legacy PyTorch pickle).
    Inspect(inspect::InspectArgs),
    /// Check the BigGAN runtime against the reference goldens on this machine's device.
    Selftest(selftest::SelftestArgs),
}

/// Parses the command line and runs the job; errors print as `intervene: {:#}`.
pub fn main() -> ExitCode {
    // `intervene … | head` should end quietly, as other Unix tools do, not panic on EPIPE.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    init_logging(cli.log.as_deref());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if crate::jobs::is_cancelled_error(&e) => {
            eprintln!("intervene: {e:#}");
            ExitCode::from(job::CANCELLED_EXIT)
        }
        Err(e) => {
            eprintln!("intervene: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .map(EnvFilter::new)
        .unwrap_or_else(|| EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        #[cfg(feature = "gui")]
        None => crate::ui::run(crate::ui::GuiArgs::default()),
        #[cfg(not(feature = "gui"))]
        None => anyhow::bail!(
            "this build has no window (built without the `gui` feature); see `intervene --help` for the jobs"
        ),
        #[cfg(feature = "gui")]
        Some(Command::Gui(a)) => crate::ui::run(a),
        Some(Command::Generate(a)) => generate::run(a),
        Some(Command::Steer(a)) => steer::run(a),
        Some(Command::Cgn(a)) => cgn::run(a),
        Some(Command::Data(a)) => data::run(a),
        Some(Command::Export(a)) => export::run(a),
        Some(Command::Sweep(a)) => sweep::run(a),
        Some(Command::InitBiggan(a)) => init_biggan::run(a),
        Some(Command::Pca(a)) => pca::run(a),
        Some(Command::Bench(a)) => bench::run(a),
        Some(Command::Fetch(a)) => fetch::run(a),
        Some(Command::Inspect(a)) => inspect::run(a),
        Some(Command::Bound(a)) => bound::run(a),
        Some(Command::Cam(a)) => cam::run(a),
        Some(Command::Train(a)) => train::run(a),
        Some(Command::Quality(a)) => quality::run(a),
        Some(Command::Eval(a)) => eval::run(a),
        Some(Command::Selftest(a)) => selftest::run(a),
    }
}
