//! `intervene train biggan`: a small class-conditional BigGAN-deep with the hub's block
//! structure and checkpoint layout, trained with the hinge loss, spectral norm (one power
//! iteration per step), a projection discriminator and an EMA of the generator
//! (Brock et al., 2019; recipe choices from `SMALL-GAN-RECIPES.md` §1, §5).
//!
//! One step: a D update on a real batch and a fake batch (G in training mode, no gradient to
//! G), then a G update through D. Adam with its own rate per network (TTUR, 1 D step).
//!
//! **When training ends** (`finalize`), the EMA generator becomes the shipped model:
//! 1. every spectral norm's u, v converge on the EMA weights (extra power iterations);
//! 2. **standing statistics** fill the hub's `n_stats` tables: for row i, truncation
//!    t = i/(n_stats − 1), `standing_batches` batches of z = t·truncnorm(−2, 2) (z = 0 at i = 0)
//!    and uniform labels run with batch statistics; each batch norm's batch mean and biased
//!    variance are averaged over the batches (BigGAN-PyTorch's `accumulate_standing_stats`,
//!    once per truncation) — so the truncation slider selects statistics that belong to it, as
//!    in the released models;
//! 3. `config.json` + `model.safetensors` are written in the hub layout, opened back with
//!    [`crate::models::biggan::load`] for a sample sheet per truncation;
//! 4. GANSpace components are computed with [`crate::steer::pca_job`] into `components.npz`.
//!
//! Determinism: weights, batches, z, labels and sample sheets derive from the seed and the step;
//! a resumed run (checkpoint: G, D, their SN vectors, EMA, both Adam states) continues bit for bit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::data::seed_of;
use super::gan_common::{self as common, Ema};
use super::gan_data::{DataSource, GanData, SIZE};
use super::gan_losses::{hinge_d, hinge_g};
use super::nets::biggan_d::{default_blocks, Discriminator};
use super::nets::biggan_g::Generator;
use super::nets::Builder;
use super::optim::{Optimizer, OptimizerKind};
use super::output::{self, MetricsLog};
use super::settings::DeviceChoice;
use crate::jobs::{Cancelled, Control};
use crate::models::biggan::{BigGanConfig, LayerSpec};

pub const FORMAT: &str = "intervene-train-biggan-v1";
/// The components file written beside the model.
pub const COMPONENTS: &str = "components.npz";

const TAG_G: u64 = 1;
const TAG_D: u64 = 2;
const TAG_Z: u64 = 3;
const TAG_SHEET: u64 = 4;
const TAG_STANDING: u64 = 5;

/// A BigGAN training run as plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BigGanSettings {
    pub data: DataSource,
    /// Generator channel width (`channel_width`: 16·ch channels at 4×4, ch at 32×32).
    pub ch: usize,
    /// Discriminator base width.
    pub d_ch: usize,
    pub z_dim: usize,
    pub batch: usize,
    /// Total steps (may grow between resumes).
    pub steps: u64,
    pub seed: u64,
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub adam_eps: f64,
    pub ema_decay: f64,
    /// EMA = copy of G until this step.
    pub ema_start: u64,
    /// Sample sheet every N steps (0: only at the end).
    pub sample_every: u64,
    pub checkpoint_every: u64,
    /// Standing statistics: batches per truncation row and their size.
    pub standing_batches: usize,
    pub standing_batch: usize,
    /// GANSpace PCA after training: samples and components (0 samples: none).
    pub pca_samples: usize,
    pub pca_components: usize,
    pub device: DeviceChoice,
    /// Compute threads (0: all). Results do not depend on it.
    pub threads: usize,
}

impl BigGanSettings {
    /// The defaults of the shipped models (`SMALL-GAN-RECIPES.md` §5, sized to a CPU budget).
    pub fn recipe(data: DataSource) -> Self {
        Self {
            data,
            ch: 16,
            d_ch: 32,
            z_dim: 64,
            batch: 64,
            steps: 2000,
            seed: 0,
            lr_g: 1e-4,
            lr_d: 4e-4,
            beta1: 0.0,
            beta2: 0.999,
            adam_eps: 1e-6,
            ema_decay: 0.999,
            ema_start: 400,
            sample_every: 250,
            checkpoint_every: 100,
            standing_batches: 4,
            standing_batch: 256,
            pca_samples: 20_000,
            pca_components: 40,
            device: DeviceChoice::Cpu,
            threads: 1,
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.ch == 0 || !self.ch.is_multiple_of(4) {
            bail!("--ch must be a positive multiple of 4 (the bottleneck divides channels by 4), got {}", self.ch);
        }
        if self.d_ch == 0 || self.z_dim == 0 || self.batch < 2 || self.steps == 0 {
            bail!("--d-ch, --z-dim and --steps must be positive and --batch at least 2");
        }
        for (n, v) in [("lr-g", self.lr_g), ("lr-d", self.lr_d)] {
            if !(v.is_finite() && v > 0.0) {
                bail!("--{n} must be a positive number, got {v}");
            }
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            bail!("--ema-decay must lie in [0, 1), got {}", self.ema_decay);
        }
        if self.standing_batches == 0 || self.standing_batch < 2 {
            bail!("standing statistics need at least one batch of at least 2 samples");
        }
        Ok(())
    }

    /// Settings that must match when resuming.
    pub fn resume_key(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            for k in [
                "steps",
                "sample_every",
                "checkpoint_every",
                "standing_batches",
                "standing_batch",
                "pca_samples",
                "pca_components",
                "device",
                "threads",
            ] {
                o.remove(k);
            }
        }
        v
    }
}

/// The hub config of the 32×32 layout: two GenBlocks per resolution (F16,16 T16,8 F8,8 T8,4
/// F4,4 T4,2 F2,1), attention before the first 16×16 block (layers index 4).
pub fn config_32(ch: usize, z_dim: usize, num_classes: usize) -> BigGanConfig {
    let layers =
        [(false, 16, 16), (true, 16, 8), (false, 8, 8), (true, 8, 4), (false, 4, 4), (true, 4, 2), (false, 2, 1)];
    BigGanConfig {
        output_dim: SIZE,
        z_dim,
        class_embed_dim: z_dim,
        channel_width: ch,
        num_classes,
        layers: layers.iter().map(|&(u, i, o)| LayerSpec(u, i, o)).collect(),
        attention_layer_position: 4,
        eps: 1e-4,
        n_stats: 51,
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct BigGanSummary {
    pub out: PathBuf,
    pub steps: u64,
    pub finished: bool,
    pub seconds: f64,
    /// Mean seconds per step of this process.
    pub sec_per_step: f64,
}

/// Callers' extras (not settings): stop after N steps of this process (tests, budgets).
#[derive(Debug, Default, Clone, Copy)]
pub struct Hooks {
    pub stop_after_steps: Option<u64>,
    /// Skip the standing statistics / model export / PCA after the last step.
    pub skip_finalize: bool,
}

/// `t·truncnorm(−2, 2)` per row (seeded), labels uniform.
fn noise(
    seed: u64,
    n: usize,
    z_dim: usize,
    t: f64,
    classes: usize,
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut rng = crate::noise::Rng::new(seed);
    let z: Vec<f32> = (0..n * z_dim).map(|_| (t * rng.truncated_normal(-2.0, 2.0)) as f32).collect();
    let y: Vec<u32> = (0..n).map(|_| rng.below(classes as u64) as u32).collect();
    Ok((Tensor::from_vec(z, (n, z_dim), dev)?, Tensor::from_vec(y, n, dev)?))
}

/// A sheet's inputs: `per` samples of every class (class-major), fixed by `seed`.
fn sheet_inputs(
    seed: u64,
    classes: usize,
    per: usize,
    z_dim: usize,
    t: f64,
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (z, _) = noise(seed, classes * per, z_dim, t, classes, dev)?;
    let y: Vec<u32> = (0..classes * per).map(|i| (i / per) as u32).collect();
    Ok((z, Tensor::from_vec(y, classes * per, dev)?))
}

/// Trains (or continues) a BigGAN-deep into `out`.
pub fn train_biggan(
    settings: &BigGanSettings,
    out: &Path,
    resume: bool,
    hooks: Hooks,
    control: &Control,
) -> anyhow::Result<BigGanSummary> {
    settings.validate()?;
    let s = settings.clone();
    let out = out.to_path_buf();
    let control = control.clone();
    common::with_threads(settings.threads, move || run(&s, &out, resume, hooks, &control))
}

fn run(
    settings: &BigGanSettings,
    out: &Path,
    resume: bool,
    hooks: Hooks,
    control: &Control,
) -> anyhow::Result<BigGanSummary> {
    let started = Instant::now();
    let dev = common::device(settings.device)?;
    control.set_status("reading data");
    let data = GanData::load(&settings.data, &crate::data::data_dir())?;
    let nc = data.num_classes();
    let cfg = config_32(settings.ch, settings.z_dim, nc);
    let extra = serde_json::json!({
        "data": { "source": data.source.name(), "images": data.len(), "classes": data.classes },
        "config": cfg,
    });
    let total = settings.steps;
    let (ckpt, start) =
        common::begin_run(out, FORMAT, &settings.resume_key(), &extra, resume, total, &format!("--steps {total}"))?;
    let ckpt_path = out.join(output::CHECKPOINT);
    let bad_ckpt = common::checkpoint_mismatch(out);

    // Networks (fresh from the seed, or from the checkpoint).
    let (g, gvars, d, dvars) = match &ckpt {
        Some(c) => {
            let gm = common::under(&c.state, "g/");
            let dm = common::under(&c.state, "d/");
            let mut gb = Builder::from_map(&gm, &dev);
            let g = Generator::new(&mut gb, &cfg).map_err(bad_ckpt)?;
            let mut db = Builder::from_map(&dm, &dev);
            let d = Discriminator::new(&mut db, settings.d_ch, &default_blocks(), nc, cfg.eps).map_err(bad_ckpt)?;
            (g, gb.vars, d, db.vars)
        }
        None => {
            let mut gb = Builder::init(seed_of(&[settings.seed, TAG_G]), &dev);
            let g = Generator::new(&mut gb, &cfg)?;
            let mut db = Builder::init(seed_of(&[settings.seed, TAG_D]), &dev);
            let d = Discriminator::new(&mut db, settings.d_ch, &default_blocks(), nc, cfg.eps)?;
            (g, gb.vars, d, db.vars)
        }
    };
    let adam = |wd| OptimizerKind::Adam {
        beta1: settings.beta1,
        beta2: settings.beta2,
        eps: settings.adam_eps,
        weight_decay: wd,
    };
    let mut opt_g = Optimizer::new(adam(0.0), gvars.clone());
    let mut opt_d = Optimizer::new(adam(0.0), dvars.clone());
    let mut ema = Ema::new(
        settings.ema_decay,
        settings.ema_start,
        &gvars,
        ckpt.as_ref().map(|c| common::under(&c.state, "ema/")).as_ref(),
    )?;
    if let Some(c) = &ckpt {
        opt_g
            .load_state(&common::optim_under(&c.optimizer, "g/"), c.optimizer_steps)
            .with_context(|| ckpt_path.display().to_string())?;
        opt_d
            .load_state(&common::optim_under(&c.optimizer, "d/"), c.optimizer_steps)
            .with_context(|| ckpt_path.display().to_string())?;
    }
    drop(ckpt);
    let n_g: usize = gvars.iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
    let n_d: usize = dvars.iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
    control.set_total(total);
    control.skip(start);
    control.log(format!(
        "BigGAN-deep {}×{} ch {} on {} ({} images, {nc} classes): G {:.2} M, D {:.2} M parameters, batch {}{}",
        SIZE,
        SIZE,
        settings.ch,
        data.source.name(),
        data.len(),
        n_g as f64 / 1e6,
        n_d as f64 / 1e6,
        settings.batch,
        if start > 0 { format!("; resuming at step {start}") } else { String::new() }
    ));
    let mut metrics = MetricsLog::open(out, start)?;
    let save = |step: u64, opt_g: &Optimizer, opt_d: &Optimizer, ema: &Ema| -> anyhow::Result<()> {
        let mut state = common::prefixed("g/", gen_state(&g, &gvars)?);
        state.extend(common::prefixed("d/", disc_state(&d, &dvars)?));
        state.extend(common::prefixed("ema/", ema.tensors(&gvars)?));
        let mut opt: Vec<(String, Vec<f32>)> =
            opt_g.state_vectors().into_iter().map(|(k, v)| (format!("g/{k}"), v)).collect();
        opt.extend(opt_d.state_vectors().into_iter().map(|(k, v)| (format!("d/{k}"), v)));
        output::write_checkpoint(out, &state, &opt, step, opt_g.steps)
    };
    let sheet = |step: u64, ema: &Ema| -> anyhow::Result<()> {
        let ge = ema_generator(&g, &gvars, ema, &cfg, &dev)?;
        let per = 10;
        let (z, y) = sheet_inputs(seed_of(&[settings.seed, TAG_SHEET]), nc.min(10), per, settings.z_dim, 1.0, &dev)?;
        let x = ge.forward(&z, &y, true, None)?;
        let path = out.join("samples").join(format!("step_{step:06}.png"));
        common::save_grid(&x, per, 2, &path)?;
        std::fs::copy(&path, out.join("samples.png")).ok();
        control.add_written(1);
        Ok(())
    };

    let stop_at = hooks.stop_after_steps.map_or(total, |n| (start + n).min(total));
    let mut step = start;
    let loop_started = Instant::now();
    while step < stop_at {
        if control.check().is_err() {
            save(step, &opt_g, &opt_d, &ema)?;
            control.log(format!("stopped at step {step}/{total}; --resume continues from here"));
            return Err(Cancelled.into());
        }
        control.set_status(format!("step {}/{total}", step + 1));
        let t0 = Instant::now();
        // D step: real batch + a fake batch from G (no gradient reaches G).
        let idx = data.batch_indices(settings.seed, step, settings.batch);
        let (xr, yr) = data.batch(&idx, &dev)?;
        let n = idx.len();
        let (z, yf) = noise(seed_of(&[settings.seed, TAG_Z, step]), n, settings.z_dim, 1.0, nc, &dev)?;
        let xf = g.forward(&z, &yf, true, None)?.detach();
        let dr = d.forward(&xr, &yr, true)?;
        let df = d.forward(&xf, &yf, true)?;
        let loss_d = hinge_d(&dr, &df)?;
        let grads = loss_d.backward()?;
        opt_d.step(&grads, settings.lr_d)?;
        drop(grads);
        // G step through the updated D (a fresh z and fresh labels).
        let (z2, y2) = noise(seed_of(&[settings.seed, TAG_Z, step, 1]), n, settings.z_dim, 1.0, nc, &dev)?;
        let xg = g.forward(&z2, &y2, true, None)?;
        let dg = d.forward(&xg, &y2, true)?;
        let loss_g = hinge_g(&dg)?;
        let grads = loss_g.backward()?;
        // Only G's parameters step; D's gradients from this pass are dropped.
        opt_g.step(&grads, settings.lr_g)?;
        drop(grads);
        step += 1;
        ema.update(&gvars, step)?;

        let ld = loss_d.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let lg = loss_g.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let mean = |t: &Tensor| -> anyhow::Result<f64> { Ok(t.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        let (mr, mf) = (mean(&dr)?, mean(&df)?);
        common::check_finite("loss_d", ld, step)?;
        common::check_finite("loss_g", lg, step)?;
        let sec = t0.elapsed().as_secs_f64();
        for (name, v) in [("loss_d", ld), ("loss_g", lg), ("d_real", mr), ("d_fake", mf), ("sec_per_step", sec)] {
            control.metric(name, step as f64, v);
        }
        metrics.write(
            &serde_json::json!({ "step": step, "loss_d": ld, "loss_g": lg, "d_real": mr, "d_fake": mf, "sec": sec }),
        )?;
        control.set_done(step);
        if settings.checkpoint_every > 0 && step % settings.checkpoint_every == 0 {
            save(step, &opt_g, &opt_d, &ema)?;
        }
        if settings.sample_every > 0 && step % settings.sample_every == 0 {
            sheet(step, &ema)?;
        }
    }
    let ran = step - start;
    if ran > 0 {
        save(step, &opt_g, &opt_d, &ema)?;
        sheet(step, &ema)?;
    }
    let sec_per_step = if ran > 0 { loop_started.elapsed().as_secs_f64() / ran as f64 } else { 0.0 };
    if ran > 0 {
        control.log(format!("{ran} steps in {:.0} s ({sec_per_step:.2} s/step)", loop_started.elapsed().as_secs_f64()));
    }
    let finished = step == total;
    if finished && !hooks.skip_finalize {
        let ge = ema_generator(&g, &gvars, &ema, &cfg, &dev)?;
        finalize(&ge, settings, &data, out, control)?;
    }
    Ok(BigGanSummary {
        out: out.to_path_buf(),
        steps: step,
        finished,
        seconds: started.elapsed().as_secs_f64(),
        sec_per_step,
    })
}

/// The generator's state dict: parameters and SN vectors (no statistics tables).
pub fn gen_state(g: &Generator, vars: &[(String, candle_core::Var)]) -> candle_core::Result<Vec<(String, Tensor)>> {
    let mut out: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_device(&Device::Cpu)?.detach())))
        .collect::<candle_core::Result<_>>()?;
    for b in &g.sn {
        out.extend(b.tensors()?);
    }
    Ok(out)
}

fn disc_state(d: &Discriminator, vars: &[(String, candle_core::Var)]) -> candle_core::Result<Vec<(String, Tensor)>> {
    let mut out: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_device(&Device::Cpu)?.detach())))
        .collect::<candle_core::Result<_>>()?;
    for b in &d.sn {
        out.extend(b.tensors()?);
    }
    Ok(out)
}

/// A generator holding the EMA weights (SN vectors copied from the trained one).
fn ema_generator(
    g: &Generator,
    vars: &[(String, candle_core::Var)],
    ema: &Ema,
    cfg: &BigGanConfig,
    dev: &Device,
) -> anyhow::Result<Generator> {
    let mut map: std::collections::HashMap<String, Tensor> = ema.tensors(vars)?.into_iter().collect();
    for b in &g.sn {
        for (k, t) in b.tensors()? {
            map.insert(k, t);
        }
    }
    let mut b = Builder::from_map(&map, dev);
    Ok(Generator::new(&mut b, cfg)?)
}

/// Per-batch-norm running sums for the standing statistics.
struct Standing {
    mean: Vec<Vec<f64>>,
    var: Vec<Vec<f64>>,
    batches: usize,
}

/// Standing statistics of `g` (SN frozen) at truncation `t` over `batches` batches of `batch`:
/// per batch norm, the average of the batch means and biased variances.
pub fn standing_stats(
    g: &Generator,
    t: f64,
    batches: usize,
    batch: usize,
    seed: u64,
    dev: &Device,
) -> anyhow::Result<Vec<(Vec<f32>, Vec<f32>)>> {
    let nc = g.cfg.num_classes;
    let mut acc: Option<Standing> = None;
    for k in 0..batches {
        let (z, y) = noise(seed_of(&[seed, TAG_STANDING, k as u64]), batch, g.cfg.z_dim, t, nc, dev)?;
        let mut rec = Vec::new();
        let _ = g.forward(&z, &y, false, Some(&mut rec))?;
        let a = acc.get_or_insert_with(|| Standing {
            mean: rec.iter().map(|s| vec![0.0; s.mean.len()]).collect(),
            var: rec.iter().map(|s| vec![0.0; s.var.len()]).collect(),
            batches: 0,
        });
        for (i, s) in rec.iter().enumerate() {
            a.mean[i].iter_mut().zip(&s.mean).for_each(|(m, &v)| *m += v as f64);
            a.var[i].iter_mut().zip(&s.var).for_each(|(m, &v)| *m += v as f64);
        }
        a.batches += 1;
    }
    let a = acc.context("no standing-statistics batches")?;
    let n = a.batches as f64;
    Ok(a.mean
        .iter()
        .zip(&a.var)
        .map(|(m, v)| (m.iter().map(|x| (x / n) as f32).collect(), v.iter().map(|x| (x / n) as f32).collect()))
        .collect())
}

/// The hub state dict of `g` with statistics tables `tables[bn] = (means, vars)` rows.
pub fn hub_state(
    g: &Generator,
    vars_of: &[(String, Tensor)],
    tables: &[Vec<(Vec<f32>, Vec<f32>)>],
) -> anyhow::Result<Vec<(String, Tensor)>> {
    let mut out: Vec<(String, Tensor)> = vars_of.to_vec();
    for b in &g.sn {
        out.extend(b.tensors()?);
    }
    let prefixes = g.bn_prefixes();
    for (i, (prefix, c)) in prefixes.iter().enumerate() {
        let rows = tables.len();
        let mut m = Vec::with_capacity(rows * c);
        let mut v = Vec::with_capacity(rows * c);
        for row in tables {
            let (rm, rv) = &row[i];
            if rm.len() != *c {
                bail!("{prefix}: {} statistics for {c} channels", rm.len());
            }
            m.extend_from_slice(rm);
            v.extend_from_slice(rv);
        }
        out.push((format!("{prefix}.running_means"), Tensor::from_vec(m, (rows, *c), &Device::Cpu)?));
        out.push((format!("{prefix}.running_vars"), Tensor::from_vec(v, (rows, *c), &Device::Cpu)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Converged SN vectors, standing statistics per truncation, the hub files, sheets, components.
fn finalize(
    g: &Generator,
    settings: &BigGanSettings,
    data: &GanData,
    out: &Path,
    control: &Control,
) -> anyhow::Result<()> {
    let dev = g.embeddings.device().clone();
    control.set_status("spectral norms");
    converge_sn(g, 30)?;
    let n_stats = g.cfg.n_stats;
    let mut tables = Vec::with_capacity(n_stats);
    control.set_status("standing statistics");
    for i in 0..n_stats {
        control.check()?;
        let t = i as f64 / (n_stats - 1) as f64;
        tables.push(standing_stats(g, t, settings.standing_batches, settings.standing_batch, settings.seed, &dev)?);
        control.set_status(format!("standing statistics {}/{n_stats}", i + 1));
    }
    let vars: Vec<(String, Tensor)> = param_tensors(g)?;
    let state = hub_state(g, &vars, &tables)?;
    let cfg_path = out.join("config.json");
    crate::imageio::write_atomically(&cfg_path, |tmp| Ok(std::fs::write(tmp, serde_json::to_vec_pretty(&g.cfg)?)?))?;
    let model = out.join("model.safetensors");
    crate::imageio::write_atomically(&model, |tmp| {
        let views: Vec<(&str, &Tensor)> = state.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(meta), tmp)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))
    })?;
    let names = out.join(crate::models::biggan::load::CLASS_NAMES_FILE);
    crate::imageio::write_atomically(&names, |tmp| Ok(std::fs::write(tmp, data.classes.join("\n") + "\n")?))?;
    control.log(format!("wrote {}, {} and {}", cfg_path.display(), model.display(), names.display()));
    // Open it back with the inference runtime: sheets per truncation.
    let m = crate::models::biggan::load::load(&out.display().to_string(), &Device::Cpu)
        .context("the exported model does not open in the BigGAN runtime")?;
    let nc = g.cfg.num_classes.min(10);
    for t in [1.0, 0.7, 0.4] {
        let (z, y) = sheet_inputs(seed_of(&[settings.seed, TAG_SHEET]), nc, 10, g.cfg.z_dim, t, &Device::Cpu)?;
        let onehot = crate::classes::one_hot(
            &y.to_vec1::<u32>()?.iter().map(|&c| c as usize).collect::<Vec<_>>(),
            g.cfg.num_classes,
            &Device::Cpu,
        )?;
        let x = m.forward(&z, &onehot, t)?;
        common::save_grid(&x, 10, 2, &out.join(format!("samples_t{t:.1}.png")))?;
    }
    if settings.pca_samples > 0 {
        control.set_status("GANSpace components");
        let cfg = crate::steer::pca_job::default_config(
            settings.pca_samples,
            settings.pca_components.min(16 * g.cfg.channel_width * 16),
            1.0,
            settings.seed,
        );
        crate::steer::pca_job::run(&m, 0, &cfg, &out.join(COMPONENTS), control)?;
    }
    Ok(())
}

/// Runs `n` power iterations on every SN weight of `g` with its current values.
pub fn converge_sn(g: &Generator, n: usize) -> anyhow::Result<()> {
    for w in g.all_sn() {
        let out = w.weight.dim(0)?;
        let v = w.weight.flatten_all()?.to_vec1::<f32>()?;
        w.buf.converge(&v, out, n, w.eps);
    }
    Ok(())
}

/// The generator's parameters (EMA values when built from them) by key.
fn param_tensors(g: &Generator) -> anyhow::Result<Vec<(String, Tensor)>> {
    use super::nets::biggan_g::Layer;
    let cpu = |t: &Tensor| t.to_device(&Device::Cpu).map(|t| t.detach());
    let mut out = vec![("embeddings.weight".to_string(), cpu(&g.embeddings)?)];
    let sn =
        |out: &mut Vec<(String, Tensor)>, prefix: &str, w: &Tensor, b: Option<&Tensor>| -> candle_core::Result<()> {
            out.push((format!("{prefix}.weight_orig"), cpu(w)?));
            if let Some(b) = b {
                out.push((format!("{prefix}.bias"), cpu(b)?));
            }
            Ok(())
        };
    sn(&mut out, "generator.gen_z", &g.gen_z.w.weight, g.gen_z.b.as_ref())?;
    for (i, l) in g.layers.iter().enumerate() {
        let p = format!("generator.layers.{i}");
        match l {
            Layer::Attention(a) => {
                for (name, c) in [
                    ("snconv1x1_theta", &a.theta),
                    ("snconv1x1_phi", &a.phi),
                    ("snconv1x1_g", &a.g),
                    ("snconv1x1_o_conv", &a.o),
                ] {
                    sn(&mut out, &format!("{p}.{name}"), &c.w.weight, c.b.as_ref())?;
                }
                out.push((format!("{p}.gamma"), cpu(&a.gamma)?));
            }
            Layer::Block(b) => {
                for k in 0..4 {
                    sn(&mut out, &format!("{p}.bn_{k}.scale"), &b.bn[k].scale.w.weight, None)?;
                    sn(&mut out, &format!("{p}.bn_{k}.offset"), &b.bn[k].offset.w.weight, None)?;
                    sn(&mut out, &format!("{p}.conv_{k}"), &b.conv[k].w.weight, b.conv[k].b.as_ref())?;
                }
            }
        }
    }
    out.push(("generator.bn.weight".to_string(), cpu(&g.bn_weight)?));
    out.push(("generator.bn.bias".to_string(), cpu(&g.bn_bias)?));
    sn(&mut out, "generator.conv_to_rgb", &g.conv_to_rgb.w.weight, g.conv_to_rgb.b.as_ref())?;
    Ok(out)
}
