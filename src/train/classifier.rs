//! Classifier training with GenInt's objective (Mao et al., 2021, §3.4):
//! `L = CE(x) + λ1·CE(x_int) + λ2·CE(x_itr)`, the original, intervened and transferred batches
//! concatenated into **one** forward pass so batch norm sees one set of statistics.
//!
//! **Determinism and resume.** Every random choice is a function of the seed and a position:
//! initial weights (seed), the order of the original data (seed, epoch), the draws from the
//! intervened/transferred streams (seed, stream, cycle), augmentations and dropout masks
//! (seed, step, sample). Kernels sum in a fixed order. So a run is reproducible on the CPU for a
//! seed, and a run resumed from a checkpoint (weights, BN statistics, optimiser state, step)
//! continues bit for bit as if it had not stopped.
//!
//! **Progress** goes to the [`Control`]: total and done in steps, status `epoch e/E`, curves
//! `loss` and `train_acc` per step, `eval_acc/<folder>` per epoch, and log lines.
//! A cancel (or [`Hooks::stop_after_steps`]) checkpoints first.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use super::augment::Transform;
use super::data::{permutation, seed_of, ClassSet, Folder, Images};
use super::eval::{evaluate, EvalReport};
use super::nets::{Mode, Net};
use super::optim::Optimizer;
use super::output::{self, MetricsLog};
use super::settings::{DeviceChoice, TrainSettings};
use crate::jobs::{Cancelled, Control};

// Tags separating the random streams.
const TAG_INIT: u64 = 1;
const TAG_ORDER: u64 = 2;
const TAG_EXTRA: u64 = 3;
const TAG_AUG: u64 = 4;
const TAG_DROPOUT: u64 = 5;

/// What a caller may attach to a run (not part of its settings).
#[derive(Default)]
pub struct Hooks<'a> {
    /// Stop (with a checkpoint, as a cancel does) after this many steps of this run.
    pub stop_after_steps: Option<u64>,
    /// Called after every epoch, with its evaluations (the window's per-class table).
    pub on_epoch: Option<&'a (dyn Fn(&EpochReport) + Sync)>,
}

/// One finished epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    /// Global steps done.
    pub step: u64,
    pub lr: f64,
    /// Mean loss and accuracy (original batch) over this epoch's steps.
    pub train_loss: f64,
    pub train_acc: f64,
    pub eval: Vec<EvalReport>,
    pub seconds: f64,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub out: PathBuf,
    pub steps: u64,
    pub total_steps: u64,
    /// Whether every epoch is done (false after `stop_after_steps`).
    pub finished: bool,
    pub last_epoch: Option<EpochReport>,
    pub seconds: f64,
}

fn device(choice: DeviceChoice) -> anyhow::Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => {
            let d = crate::device::select(false);
            if d.is_cpu() {
                bail!("--device cuda: no CUDA device (build with `--features cuda` on a machine with a GPU)");
            }
            Ok(d)
        }
    }
}

/// Trains a classifier into `out` (see the module docs). `resume` continues the run already in
/// `out`; without it, `out` must be new or empty.
pub fn train_classifier(
    settings: &TrainSettings,
    out: &Path,
    resume: bool,
    hooks: &Hooks,
    control: &Control,
) -> anyhow::Result<TrainSummary> {
    settings.validate()?;
    super::gan_common::with_threads(settings.threads, || run(settings, out, resume, hooks, control))
}

/// The streams of one step's batch.
struct Streams {
    data: Arc<Images>,
    extras: Vec<(Arc<Images>, usize, f64)>,
    transform: Transform,
    batch: usize,
    seed: u64,
    steps_per_epoch: u64,
}

/// One step's inputs: `(n, 3, s, s)` values and labels, with the sizes of the three parts.
struct Batch {
    step: u64,
    x: Vec<f32>,
    y: Vec<u32>,
    parts: Vec<usize>,
}

impl Streams {
    fn indices(
        &self,
        step: u64,
        cache: &mut std::collections::HashMap<(usize, u64), Arc<Vec<u32>>>,
    ) -> Vec<(usize, usize)> {
        let mut perm = |stream: usize, round: u64, n: usize| {
            cache
                .entry((stream, round))
                .or_insert_with(|| {
                    let tag = if stream == 0 { TAG_ORDER } else { TAG_EXTRA };
                    Arc::new(permutation(n, seed_of(&[self.seed, tag, stream as u64, round])))
                })
                .clone()
        };
        let epoch = step / self.steps_per_epoch;
        let i = (step % self.steps_per_epoch) as usize;
        let n = self.data.len();
        let p = perm(0, epoch, n);
        let mut out: Vec<(usize, usize)> =
            p[i * self.batch..((i + 1) * self.batch).min(n)].iter().map(|&j| (0, j as usize)).collect();
        for (k, (img, b, _)) in self.extras.iter().enumerate() {
            let nk = img.len() as u64;
            for j in 0..*b as u64 {
                let pos = step * *b as u64 + j;
                let p = perm(k + 1, pos / nk, nk as usize);
                out.push((k + 1, p[(pos % nk) as usize] as usize));
            }
        }
        // Keep the per-epoch caches small: forget rounds before this one.
        cache.retain(|&(s, r), _| if s == 0 { r + 1 >= epoch } else { true });
        out
    }

    fn build(
        &self,
        step: u64,
        cache: &mut std::collections::HashMap<(usize, u64), Arc<Vec<u32>>>,
        parallel: bool,
    ) -> anyhow::Result<Batch> {
        let idx = self.indices(step, cache);
        let s = self.transform.size();
        let per = 3 * s * s;
        let mut x = vec![0f32; idx.len() * per];
        let source = |stream: usize| if stream == 0 { &self.data } else { &self.extras[stream - 1].0 };
        let fill = |(j, out): (usize, &mut [f32])| {
            let (stream, i) = idx[j];
            source(stream).sample(i, &self.transform, seed_of(&[self.seed, TAG_AUG, step, j as u64]), out)
        };
        if parallel {
            x.par_chunks_mut(per).enumerate().try_for_each(fill)?;
        } else {
            x.chunks_mut(per).enumerate().try_for_each(fill)?;
        }
        let y = idx.iter().map(|&(stream, i)| source(stream).label(i)).collect();
        let mut parts = vec![0usize; 1 + self.extras.len()];
        for &(stream, _) in &idx {
            parts[stream] += 1;
        }
        Ok(Batch { step, x, y, parts })
    }
}

/// Batches for steps `[from, to)` assembled on a thread, one step ahead.
fn loader(streams: Arc<Streams>, from: u64, to: u64) -> Receiver<anyhow::Result<Batch>> {
    let (tx, rx) = sync_channel(2);
    let parallel = streams.data.is_decoded_lazily();
    let spawned = std::thread::Builder::new().name("intervene-loader".into()).spawn(move || {
        let mut cache = Default::default();
        for step in from..to {
            let b = streams.build(step, &mut cache, parallel);
            let failed = b.is_err();
            if tx.send(b).is_err() || failed {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        let (tx2, rx2) = sync_channel(1);
        let _ = tx2.send(Err(anyhow::anyhow!("cannot start the data loader thread: {e}")));
        return rx2;
    }
    rx
}

fn describe_settings(s: &TrainSettings) -> String {
    let mut v = format!("{} on {}", s.arch, s.data.display());
    for (name, e) in [("intervened", &s.intervened), ("transferred", &s.transferred)] {
        if let Some(e) = e {
            v += &format!(" + {name} {} (λ {}, batch {})", e.dir.display(), e.lambda, e.batch);
        }
    }
    v
}

fn run(
    settings: &TrainSettings,
    out: &Path,
    resume: bool,
    hooks: &Hooks,
    control: &Control,
) -> anyhow::Result<TrainSummary> {
    let started = Instant::now();
    let dev = device(settings.device)?;
    control.set_status("reading data");
    // Data and classes.
    let scanned = super::data::scan(&settings.data, "--data")?;
    let names: Vec<String> = scanned.iter().map(|(n, _)| n.clone()).collect();
    let classes = ClassSet::from_names(&names)?;
    let data = Folder::open(&settings.data, &classes, "--data", None)?;
    let extras: Vec<(Folder, usize, f64)> =
        [("--intervened", &settings.intervened), ("--transferred", &settings.transferred)]
            .into_iter()
            .filter_map(|(role, e)| e.as_ref().map(|e| (role, e)))
            .map(|(role, e)| Ok((Folder::open(&e.dir, &classes, role, Some(&data))?, e.batch, e.lambda)))
            .collect::<anyhow::Result<_>>()?;
    let evals: Vec<Folder> =
        settings.eval.iter().map(|d| Folder::open(d, &classes, "--eval", None)).collect::<anyhow::Result<_>>()?;
    let steps_per_epoch = data.len().div_ceil(settings.batch) as u64;
    let total = steps_per_epoch * settings.epochs as u64;

    // The output folder.
    let config = serde_json::json!({
        "format": output::CONFIG_FORMAT,
        "settings": settings,
        "classes": classes,
        "num_classes": classes.len(),
        "images": {
            "data": data.len(),
            "intervened": extras.first().map(|e| e.0.len()),
            "transferred": extras.get(1).map(|e| e.0.len()),
        },
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total,
        "intervene_version": env!("CARGO_PKG_VERSION"),
    });
    let checkpoint = claim(out, settings, &config, resume)?;
    let start = checkpoint.as_ref().map_or(0, |c| c.step);
    if start > total {
        bail!(
            "{}: the checkpoint is at step {start}, past this run's {total} steps (fewer --epochs than before?)",
            out.display()
        );
    }

    // Network and optimiser.
    let mut net = match &checkpoint {
        Some(c) => Net::from_state(settings.arch, classes.len(), &c.state, &dev).map_err(|e| {
            anyhow::anyhow!(
                "{}: the checkpoint does not fit {}: {e}",
                out.join(output::CHECKPOINT).display(),
                settings.arch
            )
        })?,
        None => Net::init(settings.arch, classes.len(), seed_of(&[settings.seed, TAG_INIT]), &dev)?,
    };
    net.set_dropout(settings.dropout);
    let mut opt = Optimizer::new(settings.optimizer, net.vars());
    if let Some(c) = &checkpoint {
        opt.load_state(&c.optimizer, c.optimizer_steps)
            .with_context(|| format!("{}", out.join(output::CHECKPOINT).display()))?;
    }
    drop(checkpoint);
    let mut metrics = MetricsLog::open(out, start)?;
    control.set_total(total);
    control.skip(start);
    control.log(format!(
        "training {} ({} parameters, {} classes, {} images, {steps_per_epoch} steps per epoch){}",
        describe_settings(settings),
        net.params.count(),
        classes.len(),
        data.len(),
        if start > 0 { format!("; resuming at step {start}") } else { String::new() }
    ));
    if start == total {
        control.log("already complete");
        return Ok(TrainSummary {
            out: out.to_path_buf(),
            steps: start,
            total_steps: total,
            finished: true,
            last_epoch: None,
            seconds: 0.0,
        });
    }

    // Images (decoded once when they fit in memory).
    let shrink = matches!(settings.transform, Transform::Mnist { .. }).then_some(settings.transform.size() as u32);
    let log = |l: String| control.log(l);
    let data = Arc::new(Images::new(data, shrink, &log)?);
    let extras = extras
        .into_iter()
        .map(|(f, b, l)| Ok((Arc::new(Images::new(f, shrink, &log)?), b, l)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let evals = evals.into_iter().map(|f| Images::new(f, shrink, &log)).collect::<anyhow::Result<Vec<_>>>()?;
    control.check()?;

    let streams = Arc::new(Streams {
        data,
        extras,
        transform: settings.transform,
        batch: settings.batch,
        seed: settings.seed,
        steps_per_epoch,
    });
    let stop_at = hooks.stop_after_steps.map_or(total, |n| (start + n).min(total));
    let batches = loader(streams.clone(), start, stop_at);
    let lambdas: Vec<f64> = std::iter::once(1.0).chain(streams.extras.iter().map(|e| e.2)).collect();
    let s = settings.transform.size();
    // Epoch means include the steps a resumed run did before it stopped (from metrics.jsonl).
    let (mut sum_loss, mut sum_acc, mut n_steps) = (0f64, 0f64, 0u64);
    let epoch_start = start - start % steps_per_epoch;
    if start > epoch_start {
        for v in output::read_metrics(out)? {
            let step = v.get("step").and_then(|s| s.as_u64()).unwrap_or(0);
            if step > epoch_start && step <= start && v.get("end_of_epoch").is_none() {
                sum_loss += v["loss"].as_f64().unwrap_or(f64::NAN);
                sum_acc += v["train_acc"].as_f64().unwrap_or(f64::NAN);
                n_steps += 1;
            }
        }
    }
    let mut epoch_started = Instant::now();
    let mut last_epoch = None;
    let mut step = start;
    let save = |net: &Net, opt: &Optimizer, step: u64| -> anyhow::Result<()> {
        let state = net.params.state_dict()?;
        output::write_checkpoint(out, &state, &opt.state_vectors(), step, opt.steps)?;
        output::write_model(out, &state, settings.arch, step)
    };
    while step < stop_at {
        let epoch = (step / steps_per_epoch) as usize;
        let lr = settings.schedule.lr(settings.lr, epoch);
        control.set_status(format!("epoch {}/{}", epoch + 1, settings.epochs));
        if control.check().is_err() {
            save(&net, &opt, step)?;
            control.log(format!("stopped at step {step}/{total}; --resume continues from here"));
            return Err(Cancelled.into());
        }
        let b = batches.recv().map_err(|_| anyhow::anyhow!("the data loader stopped"))??;
        debug_assert_eq!(b.step, step);
        let n = b.y.len();
        let x = Tensor::from_vec(b.x, (n, 3, s, s), &dev)?;
        let y = Tensor::from_vec(b.y, n, &dev)?;
        let logits = net.forward(&x, Mode { train: true, seed: seed_of(&[settings.seed, TAG_DROPOUT, step]) })?;
        let mut loss: Option<Tensor> = None;
        let mut part_losses = Vec::new();
        let mut offset = 0;
        let mut acc = 0.0;
        for (k, &m) in b.parts.iter().enumerate() {
            if m == 0 {
                continue;
            }
            let (lg, yk) = (logits.narrow(0, offset, m)?, y.narrow(0, offset, m)?);
            let l = candle_nn::loss::cross_entropy(&lg, &yk)?;
            if k == 0 {
                let pred = lg.argmax(1)?;
                acc = pred.eq(&yk)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()? as f64;
            }
            part_losses.push(l.to_scalar::<f32>()? as f64);
            let weighted = if lambdas[k] == 1.0 { l } else { (l * lambdas[k])? };
            loss = Some(match loss {
                None => weighted,
                Some(t) => (t + weighted)?,
            });
            offset += m;
        }
        let loss = loss.context("empty batch")?;
        let lv = loss.to_scalar::<f32>()? as f64;
        if !lv.is_finite() {
            bail!(
                "the loss became {lv} at step {} (epoch {}, lr {lr}): training diverged; lower --lr or check the data. \
                 The last checkpoint in {} is intact",
                step + 1,
                epoch + 1,
                out.display()
            );
        }
        let grads = loss.backward()?;
        opt.step(&grads, lr)?;
        step += 1;
        sum_loss += lv;
        sum_acc += acc;
        n_steps += 1;
        control.set_done(step);
        control.metric("loss", step as f64, lv);
        control.metric("train_acc", step as f64, acc);
        let mut line = serde_json::json!({"step": step, "epoch": epoch + 1, "lr": lr, "loss": lv, "train_acc": acc});
        for (name, v) in ["loss_data", "loss_intervened", "loss_transferred"].iter().zip(&part_losses) {
            line[*name] = (*v).into();
        }
        metrics.write(&line)?;

        if step % steps_per_epoch == 0 {
            control.set_status(format!("epoch {}/{}: evaluating", epoch + 1, settings.epochs));
            let eval = evaluate_all(&net, settings, &evals, &classes, &dev, control)?;
            let report = EpochReport {
                epoch: epoch + 1,
                epochs: settings.epochs,
                step,
                lr,
                train_loss: sum_loss / n_steps.max(1) as f64,
                train_acc: sum_acc / n_steps.max(1) as f64,
                eval,
                seconds: epoch_started.elapsed().as_secs_f64(),
            };
            for e in &report.eval {
                control.metric(&format!("eval_acc/{}", e.name), report.epoch as f64, e.top1);
            }
            control.metric("epoch_loss", report.epoch as f64, report.train_loss);
            control.metric("epoch_train_acc", report.epoch as f64, report.train_acc);
            let evals_json: Vec<serde_json::Value> = report
                .eval
                .iter()
                .map(|e| serde_json::json!({"data": e.data, "name": e.name, "n": e.n, "top1": e.top1, "top5": e.top5, "per_class": e.per_class}))
                .collect();
            metrics.write(&serde_json::json!({
                "step": step, "epoch": report.epoch, "end_of_epoch": true, "lr": lr,
                "train_loss": report.train_loss, "train_acc": report.train_acc, "eval": evals_json, "seconds": report.seconds,
            }))?;
            save(&net, &opt, step)?;
            let evs: Vec<String> = report.eval.iter().map(|e| e.summary()).collect();
            control.log(format!(
                "epoch {}/{}: loss {:.4}, train acc {:.2} %, lr {lr:.4}, {:.1} s{}{}",
                report.epoch,
                report.epochs,
                report.train_loss,
                100.0 * report.train_acc,
                report.seconds,
                if evs.is_empty() { "" } else { "; " },
                evs.join("; ")
            ));
            if let Some(f) = hooks.on_epoch {
                f(&report);
            }
            last_epoch = Some(report);
            (sum_loss, sum_acc, n_steps) = (0.0, 0.0, 0);
            epoch_started = Instant::now();
        }
    }
    let finished = step == total;
    if !finished {
        save(&net, &opt, step)?;
        control.log(format!("stopped at step {step}/{total}; --resume continues from here"));
    }
    Ok(TrainSummary {
        out: out.to_path_buf(),
        steps: step,
        total_steps: total,
        finished,
        last_epoch,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Evaluates the current weights on each folder through the inference model (the same code the
/// explanation tools run, so what is reported is what they will see).
fn evaluate_all(
    net: &Net,
    settings: &TrainSettings,
    evals: &[Images],
    classes: &ClassSet,
    dev: &Device,
    control: &Control,
) -> anyhow::Result<Vec<EvalReport>> {
    if evals.is_empty() {
        return Ok(Vec::new());
    }
    let map: crate::checkpoint::TensorMap = net.params.state_dict()?.into_iter().collect();
    let opened =
        crate::models::classifier::open_map(map, Some(settings.arch.inference()), Path::new("<training>"), dev)?;
    let t = settings.transform.for_eval();
    evals.iter().map(|im| evaluate(opened.model.as_ref(), &t, im, classes, dev, control)).collect()
}

/// Prepares `out`: new (config written), or the run to resume (its checkpoint, if any).
fn claim(
    out: &Path,
    settings: &TrainSettings,
    config: &serde_json::Value,
    resume: bool,
) -> anyhow::Result<Option<output::Checkpoint>> {
    let cfg_path = out.join(output::CONFIG);
    let write_config = || -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(config)?;
        crate::imageio::write_atomically(&cfg_path, |tmp| Ok(std::fs::write(tmp, &text)?))
    };
    if cfg_path.is_file() {
        let text = std::fs::read_to_string(&cfg_path).with_context(|| format!("cannot read {}", cfg_path.display()))?;
        let old: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", cfg_path.display()))?;
        if old.get("format").and_then(|f| f.as_str()) != Some(output::CONFIG_FORMAT) {
            bail!("{} holds a config.json that is not a training run's: choose another --out", out.display());
        }
        if !resume {
            bail!(
                "{} already holds a training run: pass --resume to continue it, or choose another --out",
                out.display()
            );
        }
        let old_settings: TrainSettings = serde_json::from_value(old["settings"].clone())
            .with_context(|| format!("{}: unreadable settings", cfg_path.display()))?;
        let (a, b) = (old_settings.resume_key(), settings.resume_key());
        if a != b {
            let diff: Vec<String> = a
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| b.get(k.as_str()) != Some(v))
                .map(|(k, v)| format!("{k}: was {v}, now {}", b.get(k.as_str()).cloned().unwrap_or_default()))
                .collect();
            bail!("cannot --resume {}: settings differ from the run's ({})", out.display(), diff.join("; "));
        }
        for k in ["images", "classes"] {
            if old[k] != config[k] {
                bail!(
                    "cannot --resume {}: the data changed since the run started ({k}: was {}, now {})",
                    out.display(),
                    old[k],
                    config[k]
                );
            }
        }
        write_config()?;
        return output::read_checkpoint(out);
    }
    if out.exists() {
        if !out.is_dir() {
            bail!("--out {} is a file", out.display());
        }
        let nonempty =
            std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))?.next().is_some();
        if nonempty {
            bail!("--out {} is not empty and holds no training run: choose a new or empty folder", out.display());
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_config()?;
    Ok(None)
}
