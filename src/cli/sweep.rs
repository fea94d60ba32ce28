//! `intervene sweep`: GenInt's intervention-strategy sweep (Figure 6) as a CSV.

use std::path::PathBuf;

use crate::explain::bound::Variant;
use crate::explain::sweep::{self, SweepConfig};

/// Sweep truncation, top-k components and offset scale of GenInt's interventions and report
/// log P(x|z) for each (higher = tighter causal-effect bound).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: intervene sweep --model models/biggan-deep-tiny-32 --components c.npz --classifier mobilenet_v2 \\
--real photos/ --class 207 --per-setting 50 --csv sweep.csv\n\n\
Each setting generates --per-setting intervened images of the class (seeds seed.., 5 components among the top k, \
offsets uniform in s × GenInt's reference ranges, centred edits on every latent slot), embeds them with the \
classifier's penultimate features and scores the real images of the class against them. One knob moves at a time \
around the base t=1, k=60, s=100 %; the best point of each curve is marked."
)]
pub struct SweepArgs {
    /// BigGAN-deep model (folder, weights file or hub name).
    #[arg(long, value_name = "PATH", default_value = crate::DEFAULT_BIGGAN)]
    pub model: String,
    /// GANSpace component file (.npz) the interventions use.
    #[arg(long, value_name = "FILE.npz")]
    pub components: PathBuf,
    /// Classifier for the features: weights file or bundled name.
    #[arg(long, value_name = "PATH_OR_NAME", default_value = "mobilenet_v2")]
    pub classifier: String,
    /// Real images: class subfolders (`{class}/*.png`), or a folder of images of --class.
    #[arg(long, value_name = "DIR")]
    pub real: PathBuf,
    /// The class: index, ImageNet name or wnid.
    #[arg(long, value_name = "ID_OR_NAME")]
    pub class: String,
    /// Generated images per setting.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = super::values::positive)]
    pub per_setting: usize,
    /// Truncations of the first curve, each in (0, 1].
    #[arg(long, value_name = "T,...", value_delimiter = ',', default_value = "0.125,0.25,0.5,0.75,1", value_parser = super::values::truncation)]
    pub truncations: Vec<f64>,
    /// Numbers of top components interventions draw from (second curve).
    #[arg(long = "top-k", value_name = "K,...", value_delimiter = ',', default_value = "1,5,10,20,40,60,80", value_parser = super::values::positive)]
    pub top_k: Vec<usize>,
    /// Offset scales as fractions of GenInt's ranges.
    #[arg(long, value_name = "S,...", value_delimiter = ',', default_value = "0.1,0.25,0.5,0.75,1,1.3", value_parser = super::values::positive_f64)]
    pub scales: Vec<f64>,
    /// Seed of the generated samples (sample j uses seed + j).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Estimate: nn (GenInt's) or crossentropy.
    #[arg(long, value_parser = super::values::named::<Variant>(), default_value = "nn")]
    pub variant: Variant,
    /// Write the points as CSV (knob,truncation,top_k,scale,log_p,best).
    #[arg(long, value_name = "OUT.csv")]
    pub csv: Option<PathBuf>,
}

pub fn run(a: SweepArgs) -> anyhow::Result<()> {
    let device = candle_core::Device::Cpu;
    let model = crate::models::biggan::load::load(&a.model, &device)?;
    let comps = crate::steer::Components::load(&a.components)?;
    comps.check_z_dim(model.cfg.z_dim)?;
    let class = crate::classes::resolve(&a.class, model.cfg.num_classes).map_err(anyhow::Error::msg)?;
    let clf = crate::models::classifier::open(&a.classifier, None, &device)?;
    let cfg = SweepConfig {
        class,
        per_setting: a.per_setting,
        truncations: a.truncations.clone(),
        top_ks: a.top_k.clone(),
        scales: a.scales.clone(),
        base: (1.0, 60.min(comps.num_components()), 1.0),
        components_per_sample: 5,
        seed: a.seed,
        variant: a.variant,
    };
    let result = super::job::run("settings", |c| sweep::run_job(&model, &comps, &clf, &a.real, &cfg, c))?;
    let points = result.points;
    let csv = sweep::to_csv(&points);
    print!("{csv}");
    for b in sweep::best_per_knob(&points) {
        eprintln!("best {:?}: t={} k={} s={} → log P(x|z) = {:.4}", b.knob, b.truncation, b.top_k, b.scale, b.estimate);
    }
    eprintln!("{} real images of class {class}, {} generated per setting", result.real_images, a.per_setting);
    if let Some(p) = &a.csv {
        crate::imageio::write_atomically(p, |tmp| Ok(std::fs::write(tmp, &csv)?))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
