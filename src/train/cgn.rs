//! `intervene train cgn`: the MNIST Counterfactual Generative Network on a CGN variant, with the
//! authors' recipe (Sauer & Geiger, 2021; reference `mnists/train_cgn.py`,
//! `mnists/experiments/cgn_*/cfg.yaml`):
//!
//! per step, batch 16 —
//! 1. **G**: labels `y ~ U{0..9}`, `u ~ N(0, 1)³²`, a torus shift per texture and sample (the
//!    reference's patch shuffler; runs before 2026-11-30 drew one per texture and batch);
//!    `L_G = MSE(D(x_gen, y), 1) + λ_mask·H₂(mask) + Σ w_i²·5e3·L1(Gram_i(x_gen), Gram_i(x_real))`
//!    against the step's real batch; Adam 2e-4, β (0.5, 0.999);
//! 2. **D**: `L_D = ½[MSE(D(x_real, y_real), 1) + MSE(D(x_gen.detach(), y), 0)]`, same Adam.
//!
//! | variant | λ_mask | Gram w (relu1_2, 2_2, 3_3, 4_3) | D | G init |
//! |---|---|---|---|---|
//! | colored | 0.1 | .05, .1, .01, 0 | MLP (dropout .4) | orthogonal, gain 0.1 |
//! | double-colored | 0.3 | 0, .05, 0, .05 | MLP | orthogonal, gain 0.2 |
//! | wildlife | 0.3 | .01, .05, 0, .01 | conv, ndf 32 | normal, 0.03 |
//!
//! The Gram loss runs on the normalised VGG-19 instead of VGG-16 ([`super::nets::vgg_gram`]
//! documents the substitution). The authors' schedule is 15 epochs of the 50,000 training images
//! (46,875 steps); `--steps` shortens it.
//!
//! The generator is written as `model.safetensors` with the authors' state-dict keys (57
//! entries, BN running statistics included), so `intervene cgn --model`, `intervene export cgn`
//! and the studio open it unchanged ([`crate::models::cgn::CgnModel::open`]). Sample sheets come
//! from that file through the inference runtime (eval-mode batch norms), i.e. what users see.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::cgn_shape_init::{trained_vars, ShapeInit};
use super::data::seed_of;
use super::gan_common as common;
use super::gan_data::GanData;
use super::nets::cgn_disc_conv::CgnDiscConv;
use super::nets::cgn_mnist::{binary_entropy, mse_to, CgnDiscriminator, CgnGenerator, Generated};
use super::nets::init_ext::orthogonal;
use super::nets::vgg_gram::GramLoss;
use super::nets::{Builder, Params};
use super::optim::{Optimizer, OptimizerKind};
use super::output::{self, MetricsLog};
use super::settings::DeviceChoice;
use crate::data::texture_files;
use crate::data::textures::TextureSet;
use crate::data::variants::Variant;
use crate::jobs::{Cancelled, Control};
use crate::noise::Rng;

pub const FORMAT: &str = "intervene-train-cgn-v1";
pub const MODEL: &str = "model.safetensors";

const TAG_G: u64 = 1;
const TAG_D: u64 = 2;
const TAG_STEP: u64 = 3;
const TAG_SHEET: u64 = 4;
const LATENT: usize = 32;

/// The generator's initialisation (`init_net`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "gain")]
pub enum CgnInit {
    Orthogonal(f64),
    Normal(f64),
}

/// Which discriminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgnDisc {
    /// `DiscLin`, ndf 512.
    Linear,
    /// `DiscConv`, ndf 32.
    Conv,
}

/// The per-variant recipe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CgnRecipe {
    pub lambda_mask: f64,
    pub gram_weights: [f64; 4],
    pub disc: CgnDisc,
    pub init: CgnInit,
}

impl CgnRecipe {
    /// The authors' `cfg.yaml` for `variant`.
    pub fn of(variant: Variant) -> Self {
        match variant {
            Variant::Colored => Self {
                lambda_mask: 0.1,
                gram_weights: [0.05, 0.1, 0.01, 0.0],
                disc: CgnDisc::Linear,
                init: CgnInit::Orthogonal(0.1),
            },
            Variant::DoubleColored => Self {
                lambda_mask: 0.3,
                gram_weights: [0.0, 0.05, 0.0, 0.05],
                disc: CgnDisc::Linear,
                init: CgnInit::Orthogonal(0.2),
            },
            // Both data versions of wildlife take the authors' wildlife recipe.
            Variant::Wildlife | Variant::WildlifeV2 => Self {
                lambda_mask: 0.3,
                gram_weights: [0.01, 0.05, 0.0, 0.01],
                disc: CgnDisc::Conv,
                init: CgnInit::Normal(0.03),
            },
        }
    }
}

/// A CGN training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgnSettings {
    /// `colored`, `double-colored`, `wildlife` or `wildlife-v2`.
    pub variant: String,
    pub recipe: CgnRecipe,
    pub batch: usize,
    pub steps: u64,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub seed: u64,
    pub sample_every: u64,
    pub checkpoint_every: u64,
    /// The normalised VGG-19 weights (not part of the resume key).
    pub vgg: PathBuf,
    pub device: DeviceChoice,
    pub threads: usize,
    /// Wildlife: new random crops of the textures every epoch (the data set regenerated with
    /// the epoch as its sample seed; epoch 0 is the usual set), as the authors' `RandomCrop`
    /// in `__getitem__` does, instead of one fixed crop per image. Off unless asked for, so the
    /// shipped runs' commands still reproduce them; absent from train.json when off, so older
    /// runs resume unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_crops: bool,
    /// Wildlife: the textures read from image files (`--textures DIR`, the authors' layout,
    /// [`crate::data::texture_files`]) instead of the procedural ones. The resume key holds
    /// their digest, not the folder, so a run resumes from a moved copy but not on other images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub textures: Option<TextureFiles>,
    /// A mask-size term the authors' MNIST recipe does not have (`--mask-size`): their
    /// ImageNet `MaskLoss`, a hinge on each mask's mean outside an interval. Off unless asked
    /// for; absent from train.json when off, so older runs resume unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_size: Option<MaskSize>,
    /// The shape mechanism copied from another MNIST CGN (`--init-shape`, [`ShapeInit`]), a
    /// departure from the recipe. Absent from train.json when not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_shape: Option<ShapeInit>,
}

/// The CGN authors' `MaskLoss` (`shared/losses.py`, used by their ImageNet CGN with the interval
/// [0.1, 0.9] and weight 500): weight · (max(0, lo − mean m) + max(0, mean m − hi)) per image,
/// averaged over the batch.
///
/// Why MNIST may want it: the study's faulty masks (its §4.1) are masks of the background. The
/// mask head is InstanceNorm + clamp(0, 1), so a mask that is 1 on a fraction q of the image has
/// mean ≈ q only while q ≤ 0.5; a digit covers 10–20 % of the 32×32 image, its background the
/// rest. An upper bound between the two makes a background mask cost what a digit mask does not.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MaskSize {
    pub lo: f64,
    pub hi: f64,
    pub weight: f64,
}

impl MaskSize {
    /// A starting point for MNIST: the authors' CGNs' masks average 0.07–0.26 per class, a
    /// background mask 0.45 or more (`intervene quality masks`, RESULTS §1).
    pub const MNIST: Self = Self { lo: 0.05, hi: 0.3, weight: 1.0 };

    pub fn validate(&self) -> anyhow::Result<()> {
        let ok = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !(ok(self.lo) && ok(self.hi) && self.lo < self.hi) {
            bail!("--mask-size needs 0 ≤ LO < HI ≤ 1 (got {},{})", self.lo, self.hi);
        }
        if !(self.weight.is_finite() && self.weight > 0.0) {
            bail!("--mask-size-weight must be positive (got {})", self.weight);
        }
        Ok(())
    }

    /// The loss on a batch of masks `[B, C, H, W]`: a scalar.
    pub fn loss(&self, mask: &Tensor) -> candle_core::Result<Tensor> {
        let mean = mask.flatten_from(1)?.mean(1)?;
        let below = (mean.affine(-1.0, self.lo)?).relu()?;
        let above = (mean.affine(1.0, -self.hi)?).relu()?;
        (below + above)?.mean_all()? * self.weight
    }
}

/// Texture images a wildlife run was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextureFiles {
    pub dir: PathBuf,
    /// [`TextureSet::sha256`] of the images as read.
    pub sha256: String,
}

impl TextureFiles {
    /// Reads `dir` (checking its layout) and records its digest.
    pub fn open(dir: &Path) -> anyhow::Result<(Self, TextureSet)> {
        let set = texture_files::load_dir(dir).map_err(|e| anyhow::anyhow!("--textures: {e}"))?;
        Ok((Self { dir: dir.to_path_buf(), sha256: set.sha256() }, set))
    }

    /// Reads the images again, failing if they are no longer the ones the run began on.
    pub fn reload(&self) -> anyhow::Result<TextureSet> {
        let (now, set) = Self::open(&self.dir)?;
        if now.sha256 != self.sha256 {
            bail!(
                "the texture images in {} changed since the run began (digest {} → {}); restore them or start a new run",
                self.dir.display(),
                &self.sha256[..12],
                &now.sha256[..12]
            );
        }
        Ok(set)
    }
}

/// The authors' schedule: 15 epochs of 50,000 images at batch 16.
pub const AUTHORS_STEPS: u64 = 46_875;

impl CgnSettings {
    /// The authors' recipe for `variant` (an unknown name is an error listing the three).
    pub fn recipe(variant: &str) -> anyhow::Result<Self> {
        let v: Variant = variant.parse().map_err(|e: crate::data::DataError| anyhow::anyhow!("--variant: {e}"))?;
        Ok(Self {
            variant: v.name().to_string(),
            recipe: CgnRecipe::of(v),
            batch: 16,
            steps: AUTHORS_STEPS,
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            seed: 0,
            sample_every: 500,
            checkpoint_every: 250,
            vgg: super::nets::vgg_gram::default_weights(),
            device: DeviceChoice::Cpu,
            threads: 1,
            fresh_crops: false,
            textures: None,
            mask_size: None,
            init_shape: None,
        })
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let v: Variant = self.variant.parse().map_err(|e: crate::data::DataError| anyhow::anyhow!("{e}"))?;
        if self.fresh_crops && !v.is_wildlife() {
            bail!("--fresh-crops applies to wildlife and wildlife-v2 only ({} has no crops)", self.variant);
        }
        if self.textures.is_some() && !v.is_wildlife() {
            bail!("--textures applies to wildlife and wildlife-v2 only ({} has no textures)", self.variant);
        }
        if let Some(m) = &self.mask_size {
            m.validate()?;
        }
        if self.batch < 2 || self.steps == 0 {
            bail!("--batch must be at least 2 (batch norm) and --steps positive");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr must be positive");
        }
        Ok(())
    }

    pub fn resume_key(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            for k in ["steps", "sample_every", "checkpoint_every", "vgg", "device", "threads"] {
                o.remove(k);
            }
            if let Some(t) = o.get_mut("textures").and_then(|t| t.as_object_mut()) {
                t.remove("dir");
            }
            // The source's digest, not its path.
            if let Some(t) = o.get_mut("init_shape").and_then(|t| t.as_object_mut()) {
                t.remove("from");
            }
        }
        v
    }
}

/// Re-initialises the generator as `init_net(init_type, gain)`: Linear/Conv weights orthogonal
/// or normal, their biases 0, BatchNorm weights N(1, gain) and biases 0; the label embedding
/// keeps N(0, 1).
pub fn init_generator(params: &Params, init: CgnInit, seed: u64) -> candle_core::Result<()> {
    let mut rng = Rng::new(seed);
    for (k, v) in &params.vars {
        if k.starts_with("label_emb") {
            continue;
        }
        let t = v.as_tensor();
        let n = t.elem_count();
        let gain = match init {
            CgnInit::Orthogonal(g) | CgnInit::Normal(g) => g,
        };
        let vals: Vec<f32> = if k.ends_with(".bias") {
            vec![0.0; n]
        } else if t.rank() == 1 {
            (0..n).map(|_| (1.0 + gain * rng.normal()) as f32).collect()
        } else {
            match init {
                CgnInit::Orthogonal(g) => orthogonal(t.dim(0)?, n / t.dim(0)?, g, &mut rng),
                CgnInit::Normal(g) => (0..n).map(|_| (g * rng.normal()) as f32).collect(),
            }
        };
        v.set(&Tensor::from_vec(vals, t.shape(), t.device())?)?;
    }
    Ok(())
}

enum Disc {
    Lin(CgnDiscriminator),
    Conv(CgnDiscConv),
}

impl Disc {
    fn forward(&self, x: &Tensor, y: &Tensor, seed: u64) -> candle_core::Result<Tensor> {
        match self {
            Disc::Lin(d) => d.forward(x, y, true, seed)?.flatten_all(),
            Disc::Conv(d) => d.forward(x, y, true),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct CgnSummary {
    pub out: PathBuf,
    pub steps: u64,
    pub finished: bool,
    pub seconds: f64,
    pub sec_per_step: f64,
}

/// Trains (or continues) a CGN into `out`; `stop_after` ends this process's part early (with a
/// checkpoint), as a cancel does.
pub fn train_cgn(
    settings: &CgnSettings,
    out: &Path,
    resume: bool,
    stop_after: Option<u64>,
    control: &Control,
) -> anyhow::Result<CgnSummary> {
    settings.validate()?;
    let (s, out2, c) = (settings.clone(), out.to_path_buf(), control.clone());
    common::with_threads(settings.threads, move || run(&s, &out2, resume, stop_after, &c))
}

fn run(
    settings: &CgnSettings,
    out: &Path,
    resume: bool,
    stop_after: Option<u64>,
    control: &Control,
) -> anyhow::Result<CgnSummary> {
    let started = Instant::now();
    let dev = common::device(settings.device)?;
    let recipe = settings.recipe;
    control.set_status("loading VGG-19");
    let gram = GramLoss::load(&settings.vgg, recipe.gram_weights, &dev)?;
    control.set_status("generating the data set");
    let data_dir = crate::data::data_dir();
    let textures = settings.textures.as_ref().map(TextureFiles::reload).transpose()?;
    let load = |seed: u64| GanData::variant_with_textures(&settings.variant, &data_dir, seed, textures.as_ref());
    let mut data = load(0)?;
    // The epoch whose crops `data` holds (the usual set is epoch 0's).
    let mut data_epoch = 0;
    if data.num_classes() != 10 {
        bail!("the MNIST CGN has 10 classes; {} has {}", settings.variant, data.num_classes());
    }
    let mut extra =
        serde_json::json!({ "data": { "source": data.source.name(), "images": data.len(), "classes": data.classes } });
    if let Some(t) = &settings.textures {
        // The digest, not the folder: a resume may read a moved copy of the same images.
        extra["data"]["textures_sha256"] = t.sha256.clone().into();
        control.log(format!("textures: the images in {} (sha256 {})", t.dir.display(), &t.sha256[..12]));
    }
    if let Some(si) = &settings.init_shape {
        // Provenance only: the resume key holds the source's digest.
        extra["init_shape_from"] = si.from.display().to_string().into();
    }
    let total = settings.steps;
    let (ckpt, start) =
        common::begin_run(out, FORMAT, &settings.resume_key(), &extra, resume, total, &format!("--steps {total}"))?;
    let ckpt_path = out.join(output::CHECKPOINT);
    let bad = common::checkpoint_mismatch(out);
    let build_d = |b: &mut Builder| -> candle_core::Result<Disc> {
        Ok(match recipe.disc {
            CgnDisc::Linear => Disc::Lin(CgnDiscriminator::new(b)?),
            CgnDisc::Conv => Disc::Conv(CgnDiscConv::new(b, 32)?),
        })
    };
    let (g, gp, d, dp) = match &ckpt {
        Some(c) => {
            let (gm, dm) = (common::under(&c.state, "g/"), common::under(&c.state, "d/"));
            let mut gb = Builder::from_map(&gm, &dev);
            let g = CgnGenerator::new(&mut gb).map_err(bad)?;
            let mut db = Builder::from_map(&dm, &dev);
            let d = build_d(&mut db).map_err(bad)?;
            (g, params(gb), d, params(db))
        }
        None => {
            let mut gb = Builder::init(seed_of(&[settings.seed, TAG_G]), &dev);
            let g = CgnGenerator::new(&mut gb)?;
            let gp = params(gb);
            init_generator(&gp, recipe.init, seed_of(&[settings.seed, TAG_G, 1]))?;
            if let Some(si) = &settings.init_shape {
                let n = si.apply(&gp)?;
                control.log(format!(
                    "shape mechanism: {n} tensors from {} (sha256 {}){}",
                    si.from.display(),
                    &si.sha256[..12],
                    if si.frozen { ", frozen" } else { "" }
                ));
            }
            let mut db = Builder::init(seed_of(&[settings.seed, TAG_D]), &dev);
            let d = build_d(&mut db)?;
            (g, gp, d, params(db))
        }
    };
    let adam = OptimizerKind::Adam { beta1: settings.beta1, beta2: settings.beta2, eps: 1e-8, weight_decay: 0.0 };
    let mut opt_g = Optimizer::new(adam, trained_vars(&gp, settings.init_shape.as_ref()));
    let mut opt_d = Optimizer::new(adam, dp.vars.clone());
    if let Some(c) = &ckpt {
        opt_g
            .load_state(&common::optim_under(&c.optimizer, "g/"), c.optimizer_steps)
            .with_context(|| ckpt_path.display().to_string())?;
        opt_d
            .load_state(&common::optim_under(&c.optimizer, "d/"), c.optimizer_steps)
            .with_context(|| ckpt_path.display().to_string())?;
    }
    drop(ckpt);
    control.set_total(total);
    control.skip(start);
    control.log(format!(
        "CGN on {} ({} images): G {:.2} M, D {:.2} M parameters, batch {}, λ_mask {}, Gram w {:?}, {:?} D, init {:?}{}",
        settings.variant,
        data.len(),
        gp.count() as f64 / 1e6,
        dp.count() as f64 / 1e6,
        settings.batch,
        recipe.lambda_mask,
        recipe.gram_weights,
        recipe.disc,
        recipe.init,
        if start > 0 { format!("; resuming at step {start}") } else { String::new() }
    ));
    let mut metrics = MetricsLog::open(out, start)?;
    let mut masks = crate::train::mask_check::MaskTracker::open(out, start)?;
    let save = |step: u64, opt_g: &Optimizer, opt_d: &Optimizer| -> anyhow::Result<()> {
        let gs = gp.state_dict()?;
        let mut state = common::prefixed("g/", gs.clone());
        state.extend(common::prefixed("d/", dp.state_dict()?));
        let mut opt: Vec<(String, Vec<f32>)> =
            opt_g.state_vectors().into_iter().map(|(k, v)| (format!("g/{k}"), v)).collect();
        opt.extend(opt_d.state_vectors().into_iter().map(|(k, v)| (format!("d/{k}"), v)));
        output::write_checkpoint(out, &state, &opt, step, opt_g.steps)?;
        write_model(out, &gs, step)
    };
    let sheet = |step: u64| -> anyhow::Result<()> {
        let m = crate::models::cgn::CgnModel::open(&out.join(MODEL), &Device::Cpu)?;
        let crate::models::cgn::CgnModel::Mnist(m) = m else { bail!("not an MNIST CGN") };
        sheets(&m, seed_of(&[settings.seed, TAG_SHEET]), &out.join("samples"), step, out)?;
        control.add_written(1);
        Ok(())
    };

    // The study's faulty masks (its §4.1) do not show in the losses: every checkpoint's
    // generator is checked class by class, and the best one is kept (`mask_check`).
    let mut check_masks =
        |step: u64| -> anyhow::Result<()> { masks.record(&out.join(MODEL), step, control).map(|_| ()) };

    let every = |n: u64, step: u64| n > 0 && step.is_multiple_of(n);
    let due = |step: u64| every(settings.checkpoint_every, step) || every(settings.sample_every, step);
    let stop_at = stop_after.map_or(total, |n| (start + n).min(total));
    let mut step = start;
    let step_config = StepConfig { lambda_mask: recipe.lambda_mask, mask_size: settings.mask_size, lr: settings.lr };
    let loop_started = Instant::now();
    let b = settings.batch;
    while step < stop_at {
        if control.check().is_err() {
            save(step, &opt_g, &opt_d)?;
            check_masks(step)?;
            // The sheets of the weights just saved, so that a stopped run's folder shows them.
            sheet(step)?;
            control.log(format!("stopped at step {step}/{total}; --resume continues from here"));
            return Err(Cancelled.into());
        }
        control.set_status(format!("step {}/{total}", step + 1));
        let t0 = Instant::now();
        if settings.fresh_crops && data.epoch_of(step, b) != data_epoch {
            data_epoch = data.epoch_of(step, b);
            control.set_status(format!("new crops for epoch {data_epoch}"));
            data = load(data_epoch)?;
        }
        let idx = data.batch_indices(settings.seed, step, b);
        let (x_gt, y_gt) = data.batch(&idx, &dev)?;
        let n = idx.len();
        let mut rng = Rng::new(seed_of(&[settings.seed, TAG_STEP, step]));
        let y_gen: Vec<u32> = (0..n).map(|_| rng.below(10) as u32).collect();
        let u: Vec<f32> = (0..n * LATENT).map(|_| rng.normal() as f32).collect();
        // RandomCrop(32) of the 2×2 tiling: offsets 0..=32, i.e. a torus shift (32 ≡ 0), drawn
        // per sample as the reference's patch shuffler does (one per batch lets a BatchNorm
        // discriminator tell fakes by their aligned textures).
        let mut shift = |_| ((rng.below(33) % 32) as usize, (rng.below(33) % 32) as usize);
        let shifts = [(0..n).map(&mut shift).collect::<Vec<_>>(), (0..n).map(&mut shift).collect()];
        let y_gen = Tensor::from_vec(y_gen, n, &dev)?;
        let u = Tensor::from_vec(u, (n, LATENT), &dev)?;
        let dseed = seed_of(&[settings.seed, TAG_D, step]);
        let inputs = StepInputs { x_gt: &x_gt, y_gt: &y_gt, y_gen: &y_gen, u: &u, shifts: &shifts, dseed };
        let l = train_step((&g, &d, &gram), (&mut opt_g, &mut opt_d), step_config, &inputs)?;
        let (loss_g, loss_d, adv, bin, perc, gen) = (l.loss_g, l.loss_d, l.adv, l.binary, l.perc, l.gen);
        step += 1;

        let f = |t: &Tensor| -> anyhow::Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        let (lg, ld, la, lb, lp) = (f(&loss_g)?, f(&loss_d)?, f(&adv)?, f(&bin)?, f(&perc)?);
        let mm = f(&gen.mask.mean_all()?)?;
        common::check_finite("loss_g", lg, step)?;
        common::check_finite("loss_d", ld, step)?;
        let sec = t0.elapsed().as_secs_f64();
        for (name, v) in [
            ("loss_g", lg),
            ("loss_d", ld),
            ("loss_adv", la),
            ("loss_binary", lb),
            ("loss_perc", lp),
            ("mask_mean", mm),
            ("sec_per_step", sec),
        ] {
            control.metric(name, step as f64, v);
        }
        let mut row = serde_json::json!({ "step": step, "loss_g": lg, "loss_d": ld, "loss_adv": la, "loss_binary": lb, "loss_perc": lp, "mask_mean": mm, "sec": sec });
        if let Some(t) = &l.size {
            let ls = f(t)?;
            control.metric("loss_mask_size", step as f64, ls);
            row["loss_mask_size"] = ls.into();
        }
        metrics.write(&row)?;
        control.set_done(step);
        if due(step) {
            save(step, &opt_g, &opt_d)?;
            check_masks(step)?;
        }
        if every(settings.sample_every, step) {
            sheet(step)?;
        }
    }
    let ran = step - start;
    if ran > 0 {
        if !due(step) {
            save(step, &opt_g, &opt_d)?;
            check_masks(step)?;
        }
        // The loop already drew the sheets when the last step was a sampling step.
        if !every(settings.sample_every, step) {
            sheet(step)?;
        }
    }
    let sec_per_step = if ran > 0 { loop_started.elapsed().as_secs_f64() / ran as f64 } else { 0.0 };
    if ran > 0 {
        control.log(format!("{ran} steps in {:.0} s ({sec_per_step:.2} s/step)", loop_started.elapsed().as_secs_f64()));
    }
    Ok(CgnSummary {
        out: out.to_path_buf(),
        steps: step,
        finished: step == total,
        seconds: started.elapsed().as_secs_f64(),
        sec_per_step,
    })
}

/// One step's inputs: the real batch, the generator's labels, noise and texture shifts, and
/// the seed of the linear discriminator's dropout.
struct StepInputs<'a> {
    x_gt: &'a Tensor,
    y_gt: &'a Tensor,
    y_gen: &'a Tensor,
    u: &'a Tensor,
    shifts: &'a [Vec<(usize, usize)>; 2],
    dseed: u64,
}

/// What a step computed (scalar tensors) and the images it generated.
struct StepLosses {
    loss_g: Tensor,
    loss_d: Tensor,
    adv: Tensor,
    binary: Tensor,
    perc: Tensor,
    /// The mask-size term, when the run has one.
    size: Option<Tensor>,
    gen: Generated,
}

/// The authors' update (`train_cgn.py`'s `fit`): a generator step on LSGAN + λ·mask entropy +
/// Gram loss (+ the optional [`MaskSize`] term), then a discriminator step on the same, detached
/// fakes, real and fake in two calls (two sets of batch statistics), the loss halved.
/// The numbers a step's losses and updates take: the recipe's mask weight, the opt-in mask-size
/// term, the learning rate.
#[derive(Debug, Clone, Copy)]
struct StepConfig {
    lambda_mask: f64,
    mask_size: Option<MaskSize>,
    lr: f64,
}

fn train_step(
    (g, d, gram): (&CgnGenerator, &Disc, &GramLoss),
    (opt_g, opt_d): (&mut Optimizer, &mut Optimizer),
    StepConfig { lambda_mask, mask_size, lr }: StepConfig,
    i: &StepInputs,
) -> candle_core::Result<StepLosses> {
    let gen = g.forward(i.u, i.y_gen, i.shifts, true)?;
    let adv = mse_to(&d.forward(&gen.x, i.y_gen, i.dseed)?, 1.0)?;
    let binary = (binary_entropy(&gen.mask)? * lambda_mask)?;
    let perc = gram.loss(&gen.x, i.x_gt)?;
    let size = mask_size.map(|m| m.loss(&gen.mask)).transpose()?;
    let mut loss_g = ((&adv + &binary)? + &perc)?;
    if let Some(s) = &size {
        loss_g = (loss_g + s)?;
    }
    let grads = loss_g.backward()?;
    opt_g.step(&grads, lr)?;
    drop(grads);
    let real = mse_to(&d.forward(i.x_gt, i.y_gt, i.dseed ^ 1)?, 1.0)?;
    let fake = mse_to(&d.forward(&gen.x.detach(), i.y_gen, i.dseed ^ 2)?, 0.0)?;
    let loss_d = ((real + fake)? * 0.5)?;
    let grads = loss_d.backward()?;
    opt_d.step(&grads, lr)?;
    Ok(StepLosses { loss_g, loss_d, adv, binary, perc, size, gen })
}

fn params(b: Builder) -> Params {
    let (vars, bns) = b.into_parts();
    Params { vars, bns }
}

/// Writes the generator in the authors' layout.
fn write_model(out: &Path, state: &[(String, Tensor)], step: u64) -> anyhow::Result<()> {
    crate::imageio::write_atomically(&out.join(MODEL), |tmp| {
        let views: Vec<(&str, &Tensor)> = state.iter().map(|(k, t)| (k.as_str(), t)).collect();
        // One metadata entry: safetensors keeps metadata in a HashMap, whose order (and so the
        // file's bytes) would vary between processes with more. The step is in train.json's
        // checkpoint and metrics.
        let _ = step;
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(meta), tmp)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))
    })
}

/// Sample sheets through the inference runtime: `samples/step_N.png` (10 classes × 8, one row
/// per class), `samples.png` (the latest), `parts.png` (per class: composite, mask,
/// foreground, background) and `counterfactuals.png` (shape per row, textures shuffled).
pub fn sheets(
    m: &crate::models::cgn_mnist::CgnMnist,
    seed: u64,
    dir: &Path,
    step: u64,
    out: &Path,
) -> anyhow::Result<()> {
    use crate::models::cgn_mnist::Shifts;
    let dev = Device::Cpu;
    let per = 8;
    let y: Vec<u32> = (0..10 * per).map(|i| (i / per) as u32).collect();
    let u = crate::noise::normal_noise(seed, y.len(), LATENT, &dev)?;
    let yt = Tensor::new(y.as_slice(), &dev)?;
    let parts = m.forward_parts(&u, &yt, &yt, &yt)?.shifted(&Shifts::seeded(y.len(), seed))?;
    let path = dir.join(format!("step_{step:06}.png"));
    common::save_grid(&parts.x, per, 2, &path)?;
    std::fs::copy(&path, out.join("samples.png")).with_context(|| format!("cannot copy {}", path.display()))?;
    let mut cells = Vec::new();
    for c in 0..10 {
        let i = c * per;
        for t in [&parts.x, &parts.mask.affine(2.0, -1.0)?, &parts.fg, &parts.bg] {
            cells.push(t.narrow(0, i, 1)?);
        }
    }
    common::save_grid(&Tensor::cat(&cells, 0)?, 4, 2, &out.join("parts.png"))?;
    let (cf, _) = m.counterfactual(&y, seed ^ 0xCF)?;
    let cf = cf.shifted(&Shifts::seeded(y.len(), seed ^ 0xCF))?;
    common::save_grid(&cf.x, per, 2, &out.join("counterfactuals.png"))
}

#[cfg(test)]
#[path = "cgn_step_parity.rs"]
mod step_parity;

#[cfg(test)]
mod mask_size_tests {
    use super::*;

    /// The hinge against the authors' `MaskLoss` written out by hand: per image,
    /// max(0, lo − mean) + max(0, mean − hi), averaged, times the weight; and its gradient
    /// pushes each mask's pixels toward the interval, by weight / (B·H·W) each.
    #[test]
    fn mask_size_is_the_authors_hinge_and_pulls_masks_into_the_interval() {
        let dev = Device::Cpu;
        let m = MaskSize { lo: 0.1, hi: 0.3, weight: 2.0 };
        // Three 1×2×2 masks with means 0.05 (below), 0.2 (inside) and 0.5 (above).
        let v: Vec<f32> = vec![0.0, 0.1, 0.1, 0.0, 0.2, 0.2, 0.2, 0.2, 0.5, 0.4, 0.6, 0.5];
        let x = candle_core::Var::from_tensor(&Tensor::from_vec(v, (3, 1, 2, 2), &dev).unwrap()).unwrap();
        let loss = m.loss(x.as_tensor()).unwrap();
        let want = 2.0 * ((0.1 - 0.05) + 0.0 + (0.5 - 0.3)) / 3.0;
        assert!((loss.to_scalar::<f32>().unwrap() as f64 - want).abs() < 1e-6);
        let g = loss.backward().unwrap();
        let g: Vec<f32> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let step = 2.0 / 3.0 / 4.0;
        for (i, gi) in g.iter().enumerate() {
            let want = match i / 4 {
                0 => -step, // below: raise the mask
                1 => 0.0,
                _ => step, // above: lower it
            };
            assert!((*gi as f64 - want).abs() < 1e-6, "pixel {i}: {gi} vs {want}");
        }
    }

    #[test]
    fn bad_mask_size_settings_are_refused_with_the_flag_name() {
        let mut s = CgnSettings::recipe("wildlife-v2").unwrap();
        for (lo, hi, w) in
            [(0.3, 0.1, 1.0), (-0.1, 0.3, 1.0), (0.05, 1.5, 1.0), (0.05, 0.3, 0.0), (0.05, f64::NAN, 1.0)]
        {
            s.mask_size = Some(MaskSize { lo, hi, weight: w });
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains("--mask-size"), "{e}");
        }
        s.mask_size = Some(MaskSize { lo: 0.05, hi: 0.3, weight: 1.0 });
        s.validate().unwrap();
        // Off, the settings (and so train.json and the resume key) carry no trace of it.
        s.mask_size = None;
        assert!(!serde_json::to_string(&s).unwrap().contains("mask_size"));
    }
}
