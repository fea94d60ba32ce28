//! Mask orientation of an MNIST CGN, per class: is the shape mechanism's mask the digit?
//!
//! The CGN study (§4.1, Figure 2) found MNIST CGNs that learn *inverted* masks for some digits:
//! the background mechanism draws the digit and the mask covers the background. Counterfactuals
//! of such a class swap the wrong parts, and a classifier trained on them learns nothing of its
//! shape (RESULTS §2b). Training losses do not show it, so the check looks at the masks.
//!
//! MNIST digits are centred and leave a 4-pixel frame of the 32×32 image empty, so a digit mask
//! is near 0 on that frame and an inverted one near 1. Per class, `per_class` samples (noise
//! row i from `seed + i`, shape = texture = background = the class, eval mode, no texture
//! shift; the same as `intervene cgn --no-shift --seed S` with the classes repeated) give the
//! mask's mean on the frame and inside it. The verdict: frame mean below 0.15 upright, above 0.5
//! inverted, undecided between.
//! `tools/results/cgn_mask_check.py` computes the same figures from `intervene cgn --parts`'s
//! mask.npy, independently; `tests/cgn_mask_check.rs` holds the two to each other.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::models::cgn_mnist::CgnMnist;

/// The frame MNIST leaves empty (pixels from the border).
pub const FRAME: usize = 4;
/// Frame mean below this: the mask is the digit.
pub const UPRIGHT_BELOW: f64 = 0.15;
/// Frame mean above this: the mask is the background.
pub const INVERTED_ABOVE: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orientation {
    Upright,
    Undecided,
    Inverted,
}

impl Orientation {
    pub fn of_frame_mean(frame: f64) -> Self {
        if frame < UPRIGHT_BELOW {
            Self::Upright
        } else if frame > INVERTED_ABOVE {
            Self::Inverted
        } else {
            Self::Undecided
        }
    }
}

/// One class's masks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassMask {
    pub class: usize,
    /// Mean mask value on the 4-pixel frame.
    pub frame: f64,
    /// Mean mask value inside the frame (not in a training's `masks.jsonl`).
    pub inner: Option<f64>,
    pub orientation: Orientation,
}

/// Every class's masks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaskReport {
    pub per_class: usize,
    pub seed: u64,
    pub classes: Vec<ClassMask>,
}

impl MaskReport {
    pub fn with(&self, o: Orientation) -> Vec<usize> {
        self.classes.iter().filter(|c| c.orientation == o).map(|c| c.class).collect()
    }

    /// "8 upright, 2 inverted (0, 4)": the one-line summary for logs.
    pub fn summary(&self) -> String {
        let list = |v: &[usize]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        for (o, name) in [
            (Orientation::Upright, "upright"),
            (Orientation::Undecided, "undecided"),
            (Orientation::Inverted, "inverted"),
        ] {
            let v = self.with(o);
            if !v.is_empty() {
                parts.push(if o == Orientation::Upright {
                    format!("{} {name}", v.len())
                } else {
                    format!("{} {name} ({})", v.len(), list(&v))
                });
            }
        }
        parts.join(", ")
    }
}

/// Checks every class's masks (see the module doc). Runs `per_class` samples a class at a time.
pub fn check(m: &CgnMnist, per_class: usize, seed: u64) -> anyhow::Result<MaskReport> {
    anyhow::ensure!(per_class > 0, "the mask check needs at least one sample per class");
    let dev = Device::Cpu;
    let latent = m.config.latent_sz;
    let mut classes = Vec::with_capacity(m.config.n_classes);
    for c in 0..m.config.n_classes {
        // Rows c·per .. (c+1)·per of the whole batch, whose row i draws its noise from seed + i.
        let first = seed.wrapping_add((c * per_class) as u64);
        let u = crate::noise::normal_noise(first, per_class, latent, &dev)?;
        let y = Tensor::from_vec(vec![c as u32; per_class], per_class, &dev)?;
        let mask = m.forward_parts(&u, &y, &y, &y)?.mask;
        let (n, _, h, w) = mask.dims4()?;
        anyhow::ensure!(h > 2 * FRAME && w > 2 * FRAME, "a {h}×{w} mask has no inside to its frame");
        let plane = mask.narrow(1, 0, 1)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let (mut on_frame, mut inside) = (0.0, 0.0);
        for (i, v) in plane.iter().enumerate() {
            let (y, x) = ((i / w) % h, i % w);
            if y < FRAME || y >= h - FRAME || x < FRAME || x >= w - FRAME {
                on_frame += v;
            } else {
                inside += v;
            }
        }
        let n_inside = (h - 2 * FRAME) * (w - 2 * FRAME);
        let frame = on_frame / (n * (h * w - n_inside)) as f64;
        let inner = inside / (n * n_inside) as f64;
        classes.push(ClassMask { class: c, frame, inner: Some(inner), orientation: Orientation::of_frame_mean(frame) });
    }
    Ok(MaskReport { per_class, seed, classes })
}

/// The mask check recorded beside a CGN's weights file, if any: `masks.json` (`intervene quality
/// masks --json`, shipped with the bundled CGNs), or a training run's `masks.jsonl`: its last
/// check for `model.safetensors`, its last best one for [`BEST_MODEL`]. Reads files only, so a
/// window can show it without running the network.
pub fn recorded(weights: &Path) -> Option<MaskReport> {
    let dir = weights.parent()?;
    if let Ok(bytes) = std::fs::read(dir.join("masks.json")) {
        return serde_json::from_slice(&bytes).ok();
    }
    let name = weights.file_name()?.to_str()?;
    let text = std::fs::read_to_string(dir.join(MASKS_LOG)).ok()?;
    let mut lines = text.lines().rev().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    let line = match name {
        crate::train::cgn::MODEL => lines.next()?,
        BEST_MODEL => lines.find(|v| v["best"].as_bool() == Some(true))?,
        _ => return None,
    };
    logged(&line)
}

/// The report of one `masks.jsonl` line (its `frame` means; no inner means).
fn logged(line: &serde_json::Value) -> Option<MaskReport> {
    let frames = line["frame"].as_array()?.iter().map(|f| f.as_f64()).collect::<Option<Vec<_>>>()?;
    Some(of_frames(&frames))
}

/// The report of [`TRACK_PER_CLASS`]-sample frame means, class by class.
fn of_frames(frames: &[f64]) -> MaskReport {
    let classes = frames
        .iter()
        .enumerate()
        .map(|(class, &frame)| ClassMask { class, frame, inner: None, orientation: Orientation::of_frame_mean(frame) })
        .collect();
    MaskReport { per_class: TRACK_PER_CLASS, seed: 0, classes }
}

/// Score of a checkpoint's masks: (inverted, undecided) classes; fewer is better.
fn badness(r: &MaskReport) -> (usize, usize) {
    (r.with(Orientation::Inverted).len(), r.with(Orientation::Undecided).len())
}

/// A CGN training's mask check at every checkpoint: one line per check in `masks.jsonl`
/// (`step`, each class's `frame` mean, the `inverted` classes, `best`), a log line whenever the
/// inverted classes change, and a copy of the weights with the best masks so far in
/// [`BEST_MODEL`]. Masks can turn late (wildlife-v2 seed 1 was clean at step 4,000 and had two
/// inverted classes at 7,000), so the last checkpoint is not always the one to keep. Best =
/// fewest inverted, then fewest undecided classes; a later check wins a tie (it trained longer).
pub struct MaskTracker {
    log: crate::train::output::MetricsLog,
    inverted_before: Option<Vec<usize>>,
    best: Option<(usize, usize)>,
}

/// The log of [`MaskTracker`].
pub const MASKS_LOG: &str = "masks.jsonl";
/// The weights of the checkpoint with the best masks so far.
pub const BEST_MODEL: &str = "model-best-masks.safetensors";
/// Samples per class of the checkpoints' check.
pub const TRACK_PER_CLASS: usize = 20;

impl MaskTracker {
    /// Opens the log of the run in `dir`, dropping checks past `start` (a resumed run redoes
    /// them) and taking up the best of the kept ones if its weights are there.
    pub fn open(dir: &Path, start: u64) -> anyhow::Result<Self> {
        let log = crate::train::output::MetricsLog::open_file(dir, MASKS_LOG, start)?;
        let lines: Vec<serde_json::Value> = match std::fs::read_to_string(dir.join(MASKS_LOG)) {
            Ok(text) => text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
            Err(_) => Vec::new(),
        };
        let best = lines
            .iter()
            .rfind(|v| v["best"].as_bool() == Some(true))
            .filter(|_| dir.join(BEST_MODEL).is_file())
            .and_then(logged)
            .map(|r| badness(&r));
        let inverted_before = lines.last().map(|v| {
            v["inverted"].as_array().map(|a| a.iter().filter_map(|c| c.as_u64()).map(|c| c as usize).collect())
        });
        Ok(Self { log, inverted_before: inverted_before.flatten(), best })
    }

    /// Checks the weights just written to `model` (the run's `model.safetensors`) at `step`.
    pub fn record(&mut self, model: &Path, step: u64, control: &crate::jobs::Control) -> anyhow::Result<MaskReport> {
        let m = match crate::models::cgn::CgnModel::open(model, &Device::Cpu)? {
            crate::models::cgn::CgnModel::Mnist(m) => m,
            _ => anyhow::bail!("{}: not an MNIST CGN", model.display()),
        };
        let r = check(&m, TRACK_PER_CLASS, 0)?;
        let inverted = r.with(Orientation::Inverted);
        control.metric("inverted_mask_share", step as f64, inverted.len() as f64 / r.classes.len() as f64);
        let frames: Vec<f64> = r.classes.iter().map(|c| (c.frame * 1e4).round() / 1e4).collect();
        // Scored as logged (rounded), so a resumed run compares with the same figures.
        let score = badness(&of_frames(&frames));
        let best = self.best.is_none_or(|b| score <= b);
        if best {
            let dest = model.with_file_name(BEST_MODEL);
            crate::imageio::write_atomically(&dest, |tmp| {
                std::fs::copy(model, tmp)
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("cannot copy {}: {e}", model.display()))
            })?;
            self.best = Some(score);
        }
        self.log.write(&serde_json::json!({ "step": step, "frame": frames, "inverted": inverted, "best": best }))?;
        if self.inverted_before.as_ref() != Some(&inverted) {
            let hint = if inverted.is_empty() {
                String::new()
            } else {
                format!(" (the study's faulty masks; the best checkpoint so far is kept as {BEST_MODEL})")
            };
            control.log(format!("step {step}: masks {}{hint}", r.summary()));
        }
        self.inverted_before = Some(inverted);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(Orientation::of_frame_mean(0.01), Orientation::Upright);
        assert_eq!(Orientation::of_frame_mean(0.3), Orientation::Undecided);
        assert_eq!(Orientation::of_frame_mean(0.68), Orientation::Inverted);
    }

    #[test]
    fn summary_lists_the_bad_classes() {
        let mk = |class, frame| ClassMask { class, frame, inner: None, orientation: Orientation::of_frame_mean(frame) };
        let r = MaskReport { per_class: 1, seed: 0, classes: vec![mk(0, 0.68), mk(1, 0.01), mk(2, 0.3), mk(3, 0.02)] };
        assert_eq!(r.summary(), "2 upright, 1 undecided (2), 1 inverted (0)");
        assert_eq!(r.with(Orientation::Inverted), vec![0]);
    }

    #[test]
    fn badness_counts_inverted_then_undecided() {
        assert_eq!(badness(&of_frames(&[0.01, 0.6, 0.3, 0.2, 0.02])), (1, 2));
        assert!(badness(&of_frames(&[0.01, 0.3])) < badness(&of_frames(&[0.6, 0.01])));
    }
}
