//! `intervene quality`: sample quality of a trained generator with a judge classifier
//! (engine: [`crate::train::quality`]).

use std::path::PathBuf;

use crate::train::gan_data::{DataSource, GanData};

const HELP: &str = "\
Measures a trained generator (a BigGAN folder or an MNIST CGN) with a judge: an MNIST-CNN trained \
on the real training images of the generator's data set.

  intervene quality real --data fashion-mnist --out real/fashion
  intervene train classifier --arch mnist-cnn --data real/fashion/train --eval real/fashion/test --out judges/fashion
  intervene quality measure --generator models/biggan-fashion-mnist-32 --judge judges/fashion --data fashion-mnist --truncation 1.0 --truncation 0.5

`measure` reports class consistency (the judge's top-1 on --per-class samples of every class, per \
truncation) and diversity (mean pairwise RMS pixel distance within a class, samples vs real images).";

/// Sample quality.
#[derive(clap::Args, Debug)]
#[command(long_about = HELP)]
pub struct QualityArgs {
    #[command(subcommand)]
    pub what: QualityWhat,
}

#[derive(clap::Subcommand, Debug)]
pub enum QualityWhat {
    /// Write a data set's real train/ and test/ images as class folders (to train the judge on).
    Real(RealArgs),
    /// Class consistency and diversity of a generator's samples.
    Measure(MeasureArgs),
    /// Write samples of every class as class folders (a CGN's non-counterfactual "GAN" set).
    Samples(SamplesArgs),
    /// An MNIST CGN's mask orientation per class: upright (the digit) or inverted (the
    /// background), the study's "faulty masks".
    Masks(MasksArgs),
}

#[derive(clap::Args, Debug)]
#[command(long_about = MASKS_HELP)]
pub struct MasksArgs {
    /// The MNIST CGN: a weights file, a training folder (`model.safetensors` inside), or a bundled model's name.
    #[arg(long, value_name = "PATH")]
    pub generator: PathBuf,
    /// Samples per class.
    #[arg(long, value_name = "N", value_parser = super::values::positive, default_value_t = 20)]
    pub per_class: usize,
    /// Seed of the samples (row i of the whole batch draws its noise from seed + i).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// The shape judge: an MNIST digit classifier (a training folder or weights file) that
    /// reads each mask as a digit [default: the bundled mnist-cnn-mnist].
    #[arg(long, value_name = "PATH")]
    pub judge: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

const MASKS_HELP: &str = "\
Checks an MNIST CGN's masks class by class. The CGN study (its §4.1 and Figure 2) found that some \
trainings learn inverted masks for some digits: the background mechanism draws the digit, so \
counterfactuals of that class swap the wrong parts. MNIST leaves a 4-pixel frame empty, so a digit \
mask is near 0 there: frame mean below 0.15 is upright, above 0.5 inverted, in between undecided.
A class-blind blob passes that test too, so the shape judge (an MNIST-CNN trained on plain MNIST, \
bundled as mnist-cnn-mnist) also reads every mask as a digit: `shape` is the share of a class's \
masks read as that class. The authors' released CGNs score 78-90 %; below 50 % a class is flagged.

  intervene quality masks --generator models/cgn-colored
  intervene quality masks --generator runs/cgn-wildlife/model.safetensors --json masks.json

`intervene train cgn` runs the same check at every checkpoint and logs it.";

#[derive(clap::Args, Debug)]
pub struct SamplesArgs {
    /// The generator: a BigGAN folder, an MNIST CGN weights file or folder, or a bundled model's name.
    #[arg(long, value_name = "PATH")]
    pub generator: PathBuf,
    /// Images per class.
    #[arg(long, value_name = "N", value_parser = super::values::positive)]
    pub per_class: usize,
    /// Truncation (BigGAN: z = t·truncnorm; CGN: u scaled by t).
    #[arg(long, value_name = "T", value_parser = super::values::truncation, default_value_t = 1.0)]
    pub truncation: f64,
    /// Seed of the samples.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Output folder (class sub-folders; existing files are kept).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn data_source(s: &str) -> Result<DataSource, String> {
    DataSource::parse(s).map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug)]
pub struct RealArgs {
    /// mnist, fashion-mnist, colored, double-colored or wildlife.
    #[arg(long, value_name = "DATA", value_parser = data_source)]
    pub data: DataSource,
    /// Output folder (gets train/ and test/).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct MeasureArgs {
    /// The generator: a BigGAN folder, an MNIST CGN weights file or folder, or a bundled model's name.
    #[arg(long, value_name = "PATH")]
    pub generator: PathBuf,
    /// The judge: a classifier training folder (`intervene train classifier --out`).
    #[arg(long, value_name = "DIR")]
    pub judge: PathBuf,
    /// The generator's data set (its real images give the diversity reference).
    #[arg(long, value_name = "DATA", value_parser = data_source)]
    pub data: DataSource,
    /// Samples per class for class consistency.
    #[arg(long, value_name = "N", value_parser = super::values::positive, default_value_t = 1000)]
    pub per_class: usize,
    /// Samples (and real images) per class for the diversity figure.
    #[arg(long, value_name = "N", value_parser = super::values::positive, default_value_t = 200)]
    pub diversity_per_class: usize,
    /// Truncations to measure (repeatable) [default: 1.0].
    #[arg(long, value_name = "T", value_parser = super::values::truncation)]
    pub truncation: Vec<f64>,
    /// Seed of the samples.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

pub fn run(a: QualityArgs) -> anyhow::Result<()> {
    match a.what {
        QualityWhat::Real(r) => {
            let (tr, te) = super::job::run("images", |c| crate::train::quality::real_folders(&r.data, &r.out, c))?;
            println!("wrote {tr} training and {te} test images under {}", r.out.display());
            Ok(())
        }
        QualityWhat::Samples(s) => {
            let n = super::job::run("images", |c| {
                let g = crate::train::quality::Generator::open(&s.generator)?;
                crate::train::quality::write_samples(&g, &s.out, s.per_class, s.truncation, s.seed, c)
            })?;
            println!("wrote {n} images under {}", s.out.display());
            Ok(())
        }
        QualityWhat::Masks(a) => {
            let report = super::job::run("classes", |_| {
                let g = crate::train::quality::Generator::open(&a.generator)?;
                let crate::train::quality::Generator::Cgn(m) = g else {
                    anyhow::bail!("{}: a BigGAN has no masks; give an MNIST CGN", a.generator.display())
                };
                let judge = match &a.judge {
                    Some(p) => Some(crate::train::mask_shape::ShapeJudge::open(p, &p.display().to_string())?),
                    None => crate::train::mask_shape::ShapeJudge::bundled()?,
                };
                if judge.is_none() {
                    eprintln!("no shape judge (models/ lacks mnist-cnn-mnist): frames only");
                }
                crate::train::mask_check::check(&m, a.per_class, a.seed, judge.as_ref())
            })?;
            println!("class  frame  inner  orientation  shape");
            for c in &report.classes {
                let shape = c.shape.map_or("-".to_string(), |s| format!("{:.1} %", 100.0 * s));
                println!(
                    "{:>5}  {:.3}  {:.3}  {:<11}  {shape}",
                    c.class,
                    c.frame,
                    c.inner.unwrap_or(f64::NAN),
                    format!("{:?}", c.orientation).to_lowercase()
                );
            }
            println!("{}", report.summary());
            if let Some(p) = &a.json {
                crate::imageio::write_atomically(p, |tmp| {
                    Ok(std::fs::write(tmp, serde_json::to_vec_pretty(&report)?)?)
                })?;
            }
            Ok(())
        }
        QualityWhat::Measure(m) => {
            let truncations = if m.truncation.is_empty() { vec![1.0] } else { m.truncation.clone() };
            let report = super::job::run("classes", |c| {
                let g = crate::train::quality::Generator::open(&m.generator)?;
                let judge = crate::train::eval::EvalModel::open(
                    &m.judge.display().to_string(),
                    None,
                    &candle_core::Device::Cpu,
                )?;
                let data = GanData::load(&m.data, &crate::data::data_dir())?;
                crate::train::quality::measure(
                    &g,
                    &m.generator.display().to_string(),
                    &judge,
                    &m.judge.display().to_string(),
                    &data,
                    m.per_class,
                    m.diversity_per_class,
                    &truncations,
                    m.seed,
                    c,
                )
            })?;
            for (c, d) in report.consistency.iter().zip(&report.diversity) {
                println!(
                    "truncation {:.2}: class consistency {:.2} % ({} per class); diversity {:.4} (real {:.4})",
                    c.truncation,
                    100.0 * c.accuracy,
                    c.samples_per_class,
                    d.samples_mean,
                    d.real_mean
                );
            }
            if let Some(p) = &m.json {
                crate::imageio::write_atomically(p, |tmp| {
                    Ok(std::fs::write(tmp, serde_json::to_vec_pretty(&report)?)?)
                })?;
            }
            Ok(())
        }
    }
}
