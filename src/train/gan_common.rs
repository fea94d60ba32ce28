//! What the generator trainings (`train biggan`, `train cgn`, `train cvae`) share: the output
//! folder's claim (settings that must match on `--resume`), checkpoints of several networks and
//! optimisers in one file, EMA weights, sample grids, devices and thread pools.
//!
//! A generator run's folder:
//!
//! | file | content |
//! |---|---|
//! | `train.json` | format, the settings that must match on resume, the data's classes and size |
//! | `checkpoint.safetensors` | every network (`g/…`, `d/…`, `ema/…`), optimiser state, step ([`crate::train::output`]) |
//! | `metrics.jsonl` | one line per step: the losses (and seconds per step) |
//! | `samples/step_NNNNNN.png`, `samples.png` | sample grids, one row per class |
//! | the model | what the inference runtime opens (per kind) |
//! | `masks.jsonl`, `model-best-masks.safetensors` | CGN only: each checkpoint's mask orientation per class, and the weights with the best masks so far ([`crate::train::mask_check`]) |

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context as _};
use candle_core::{Device, Tensor, Var};

use super::settings::DeviceChoice;
use crate::imageio::RgbImage;

/// The claim file of a generator run.
pub const TRAIN_JSON: &str = "train.json";

/// The device of a run.
pub fn device(choice: DeviceChoice) -> anyhow::Result<Device> {
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

/// Runs a training job `f` on a pool of `threads` threads (0: rayon's global pool), with the
/// allocator tuned for training ([`crate::bench::tune_allocator_for_training`]).
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    crate::bench::tune_allocator_for_training();
    if threads == 0 {
        return f();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("intervene-train-{i}"))
        .build()
        .context("cannot start the training threads")?;
    pool.install(f)
}

/// Starts a run in `out`: claims the folder ([`claim`]), reads its checkpoint and returns it
/// with the step to start from (0 for a new run). A checkpoint already past the run's `total`
/// steps is refused; `limit` names that setting in the message (e.g. `--steps 3000`).
pub fn begin_run(
    out: &Path,
    format: &str,
    key: &serde_json::Value,
    extra: &serde_json::Value,
    resume: bool,
    total: u64,
    limit: &str,
) -> anyhow::Result<(Option<super::output::Checkpoint>, u64)> {
    claim(out, format, key, extra, resume)?;
    let ckpt = super::output::read_checkpoint(out)?;
    let start = ckpt.as_ref().map_or(0, |c| c.step);
    if start > total {
        bail!("{}: the checkpoint is at step {start}, past {limit}", out.display());
    }
    Ok((ckpt, start))
}

/// The error for a checkpoint in `out` whose tensors do not fit the run's settings.
pub fn checkpoint_mismatch(out: &Path) -> impl Fn(candle_core::Error) -> anyhow::Error + Copy + '_ {
    move |e| {
        anyhow::anyhow!(
            "{}: the checkpoint does not fit these settings: {e}",
            out.join(super::output::CHECKPOINT).display()
        )
    }
}

/// Claims `out` for a run: a new (or empty) folder gets `train.json`; an existing run is only
/// continued with `resume` and the same `key` (the settings that shape the numbers).
pub fn claim(
    out: &Path,
    format: &str,
    key: &serde_json::Value,
    extra: &serde_json::Value,
    resume: bool,
) -> anyhow::Result<()> {
    let path = out.join(TRAIN_JSON);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let old: serde_json::Value =
                serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", path.display()))?;
            if old.get("format").and_then(|f| f.as_str()) != Some(format) {
                bail!(
                    "{} belongs to another kind of run ({}), not {format}: choose another --out",
                    out.display(),
                    old.get("format").unwrap_or(&serde_json::Value::Null)
                );
            }
            if !resume {
                bail!(
                    "{} already holds a run: pass --resume to continue it (same settings), or choose another --out",
                    out.display()
                );
            }
            let there = &old["settings"];
            if there != key {
                let mut diffs = Vec::new();
                if let (Some(a), Some(b)) = (there.as_object(), key.as_object()) {
                    for k in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
                        if a.get(k) != b.get(k) {
                            diffs.push(format!(
                                "  {k}: was {}, now {}",
                                a.get(k).unwrap_or(&serde_json::Value::Null),
                                b.get(k).unwrap_or(&serde_json::Value::Null)
                            ));
                        }
                    }
                }
                bail!(
                    "{} was trained with other settings; --resume continues only the same run:\n{}\n(--steps, the sampling and checkpoint intervals, --device and --threads may change)",
                    out.display(),
                    diffs.join("\n")
                );
            }
            if old.get("data") != extra.get("data") {
                bail!(
                    "{}: the data changed since the run started (was {}, now {}); a resumed run must see the same images and classes",
                    out.display(),
                    old.get("data").unwrap_or(&serde_json::Value::Null),
                    extra.get("data").unwrap_or(&serde_json::Value::Null)
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if out.is_dir() && std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
                bail!("{} exists, is not empty and holds no {format} run: choose another --out", out.display());
            }
            std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
            let mut v = serde_json::json!({ "format": format, "settings": key, "intervene_version": env!("CARGO_PKG_VERSION") });
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                for (k, x) in e {
                    o.insert(k.clone(), x.clone());
                }
            }
            crate::imageio::write_atomically(&path, |tmp| Ok(std::fs::write(tmp, serde_json::to_vec_pretty(&v)?)?))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Prefixes every key of a state dict (`g/`, `d/`, `ema/`).
pub fn prefixed(prefix: &str, state: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    state.into_iter().map(|(k, t)| (format!("{prefix}{k}"), t)).collect()
}

/// The entries of `map` under `prefix`, with the prefix removed.
pub fn under(map: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    map.iter().filter_map(|(k, t)| k.strip_prefix(prefix).map(|k| (k.to_string(), t.clone()))).collect()
}

/// Optimiser vectors under `prefix`, with the prefix removed.
pub fn optim_under(map: &BTreeMap<String, Vec<f32>>, prefix: &str) -> BTreeMap<String, Vec<f32>> {
    map.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone()))).collect()
}

/// An exponential moving average of parameters (BigGAN's G_ema): a copy until `start`, then
/// `ema = decay·ema + (1 − decay)·w` after every update.
pub struct Ema {
    pub decay: f64,
    pub start: u64,
    pub values: Vec<(String, Vec<f32>)>,
}

impl Ema {
    /// Starts from the current values of `vars`, or from `stored` (a checkpoint's `ema/` part).
    pub fn new(
        decay: f64,
        start: u64,
        vars: &[(String, Var)],
        stored: Option<&HashMap<String, Tensor>>,
    ) -> anyhow::Result<Self> {
        let values = vars
            .iter()
            .map(|(k, v)| {
                let t = match stored {
                    Some(m) => m.get(k).with_context(|| format!("the checkpoint has no EMA value for {k}"))?.clone(),
                    None => v.as_tensor().clone(),
                };
                Ok((k.clone(), t.flatten_all()?.to_vec1::<f32>()?))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { decay, start, values })
    }

    /// Folds in the parameters after update number `step` (1-based).
    pub fn update(&mut self, vars: &[(String, Var)], step: u64) -> candle_core::Result<()> {
        let copy = step <= self.start;
        let (d, w) = (self.decay as f32, (1.0 - self.decay) as f32);
        for ((_, e), (_, v)) in self.values.iter_mut().zip(vars) {
            let p = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            if copy {
                e.copy_from_slice(&p);
            } else {
                e.iter_mut().zip(&p).for_each(|(e, &p)| *e = d * *e + w * p);
            }
        }
        Ok(())
    }

    /// The averages as tensors shaped like `vars`.
    pub fn tensors(&self, vars: &[(String, Var)]) -> candle_core::Result<Vec<(String, Tensor)>> {
        self.values
            .iter()
            .zip(vars)
            .map(|((k, e), (_, v))| Ok((k.clone(), Tensor::from_slice(e, v.as_tensor().shape(), &Device::Cpu)?)))
            .collect()
    }
}

/// Images in a grid of `cols` columns with a 2-pixel border (rows = classes in the sheets).
pub fn grid_cols(images: &[RgbImage], cols: usize) -> RgbImage {
    crate::imageio::grid_with(images, cols, 2)
}

/// Saves `(n, 3, h, w)` in [−1, 1] as a grid of `cols` columns, enlarged `scale`× (nearest).
pub fn save_grid(x: &Tensor, cols: usize, scale: usize, path: &Path) -> anyhow::Result<()> {
    save_image_grid(&crate::imageio::images_from_tensor(&x.to_device(&Device::Cpu)?)?, cols, scale, path)
}

/// Saves `images` as a grid of `cols` columns, enlarged `scale`× (nearest).
pub fn save_image_grid(images: &[RgbImage], cols: usize, scale: usize, path: &Path) -> anyhow::Result<()> {
    let imgs: Vec<RgbImage> = images.iter().map(|i| enlarge(i, scale)).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::imageio::save_image(&grid_cols(&imgs, cols), path)
}

fn enlarge(img: &RgbImage, s: usize) -> RgbImage {
    if s <= 1 {
        return img.clone();
    }
    let (w, h) = (img.width * s, img.height * s);
    let mut p = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let src = ((y / s) * img.width + x / s) * 3;
            p[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&img.pixels[src..src + 3]);
        }
    }
    RgbImage { width: w, height: h, pixels: p }
}

/// Fails on a non-finite loss, naming it and the step (nothing is written after it).
pub fn check_finite(name: &str, v: f64, step: u64) -> anyhow::Result<()> {
    if !v.is_finite() {
        bail!("{name} became {v} at step {step}: training diverged (the last checkpoint is kept; try another --seed or a lower learning rate)");
    }
    Ok(())
}
