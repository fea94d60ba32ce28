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
//!
//! An upright frame does not make a digit: a class-blind blob passes it. With a shape judge
//! ([`super::mask_shape`]) the check also reads every mask as a digit and reports, per class,
//! the share read as the class (its *shape* score).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::models::cgn_mnist::CgnMnist;
use crate::train::mask_shape::ShapeJudge;

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
    /// Share of the class's masks the shape judge reads as the class (absent without a judge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<f64>,
}

/// Every class's masks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaskReport {
    pub per_class: usize,
    pub seed: u64,
    pub classes: Vec<ClassMask>,
    /// The shape judge that scored the masks, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_judge: Option<String>,
}

impl MaskReport {
    pub fn with(&self, o: Orientation) -> Vec<usize> {
        self.classes.iter().filter(|c| c.orientation == o).map(|c| c.class).collect()
    }

    /// The mean shape score over the classes, when the masks were read by a judge.
    pub fn shape_top1(&self) -> Option<f64> {
        let s: Option<Vec<f64>> = self.classes.iter().map(|c| c.shape).collect();
        s.filter(|v| !v.is_empty()).map(|v| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Classes whose masks the judge reads as their digit less than half the time.
    pub fn misshapen(&self) -> Vec<usize> {
        self.classes.iter().filter(|c| c.shape.is_some_and(|s| s < SHAPE_BELOW)).map(|c| c.class).collect()
    }

    /// "8 upright, 2 inverted (0, 4); shape 84.5 %, 1 below 50 % (4)": the one-line summary for logs.
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
        let frames = parts.join(", ");
        match self.shape_top1() {
            None => frames,
            Some(top1) => {
                let low = self.misshapen();
                let low = if low.is_empty() {
                    String::new()
                } else {
                    format!(", {} below {:.0} % ({})", low.len(), 100.0 * SHAPE_BELOW, list(&low))
                };
                format!("{frames}; shape {:.1} %{low}", 100.0 * top1)
            }
        }
    }
}

/// A class whose masks read as its digit less often than this is flagged.
pub const SHAPE_BELOW: f64 = 0.5;

/// Checks every class's masks (see the module doc), and reads them as digits with `judge` if
/// given. Runs `per_class` samples a class at a time.
pub fn check(m: &CgnMnist, per_class: usize, seed: u64, judge: Option<&ShapeJudge>) -> anyhow::Result<MaskReport> {
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
        let shape = match judge {
            Some(j) => Some(j.read(&mask.narrow(1, 0, 1)?)?.iter().filter(|&&d| d == c).count() as f64 / n as f64),
            None => None,
        };
        classes.push(ClassMask {
            class: c,
            frame,
            inner: Some(inner),
            orientation: Orientation::of_frame_mean(frame),
            shape,
        });
    }
    Ok(MaskReport { per_class, seed, classes, shape_judge: judge.map(|j| j.name.clone()) })
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

/// The report of one `masks.jsonl` line (its `frame` means and `shape` scores; no inner means).
fn logged(line: &serde_json::Value) -> Option<MaskReport> {
    let numbers = |key: &str| -> Option<Vec<f64>> { line[key].as_array()?.iter().map(|f| f.as_f64()).collect() };
    let frames = numbers("frame")?;
    let shapes = numbers("shape").filter(|s| s.len() == frames.len());
    Some(of_log(&frames, shapes.as_deref()))
}

/// The report of [`TRACK_PER_CLASS`]-sample frame means and shape scores, class by class.
fn of_log(frames: &[f64], shapes: Option<&[f64]>) -> MaskReport {
    let classes = frames
        .iter()
        .enumerate()
        .map(|(class, &frame)| ClassMask {
            class,
            frame,
            inner: None,
            orientation: Orientation::of_frame_mean(frame),
            shape: shapes.map(|s| s[class]),
        })
        .collect();
    let shape_judge = shapes.map(|_| crate::train::mask_shape::SHAPE_JUDGE.to_string());
    MaskReport { per_class: TRACK_PER_CLASS, seed: 0, classes, shape_judge }
}

/// How good a checkpoint's masks are; higher is better: masks read as their digit in classes
/// that are not inverted (−1 when not read: any read check beats it), then fewer inverted, then
/// fewer undecided classes. An inverted mask holds the digit's outline too, and the judge reads
/// some of them (a quarter of the shipped wildlife CGN's, all inverted), but its counterfactuals
/// swap the wrong parts, so it scores nothing.
fn goodness(r: &MaskReport) -> (i64, i64, i64) {
    let read = match r.classes.iter().map(|c| c.shape.map(|s| (c, s))).collect::<Option<Vec<_>>>() {
        Some(read) => read
            .iter()
            .filter(|(c, _)| c.orientation != Orientation::Inverted)
            .map(|(_, s)| (s * r.per_class as f64).round() as i64)
            .sum(),
        None => -1,
    };
    let count = |o| r.with(o).len() as i64;
    (read, -count(Orientation::Inverted), -count(Orientation::Undecided))
}

/// A CGN training's mask check at every checkpoint: one line per check in `masks.jsonl`
/// (`step`, each class's `frame` mean and `shape` score, the `inverted` classes, `shape_top1`,
/// `best`), a log line whenever the inverted or misshapen classes change, and a copy of the
/// weights with the best masks so far in [`BEST_MODEL`]. Masks can turn late (wildlife-v2 seed 1
/// was clean at step 4,000 and had two inverted classes at 7,000), so the last checkpoint is not
/// always the one to keep. Best = most masks read as their digit by the shape judge, then fewest
/// inverted, then fewest undecided classes ([`goodness`]); a later check wins a tie (it trained
/// longer). Without the bundled judge the check falls back to frames only.
pub struct MaskTracker {
    log: crate::train::output::MetricsLog,
    judge: Option<ShapeJudge>,
    flagged_before: Option<(Vec<usize>, Vec<usize>)>,
    best: Option<(i64, i64, i64)>,
}

/// The log of [`MaskTracker`].
pub const MASKS_LOG: &str = "masks.jsonl";
/// The weights of the checkpoint with the best masks so far.
pub const BEST_MODEL: &str = "model-best-masks.safetensors";
/// Samples per class of the checkpoints' check.
pub const TRACK_PER_CLASS: usize = 20;

/// The classes a log line names: inverted and misshapen.
fn flagged(r: &MaskReport) -> (Vec<usize>, Vec<usize>) {
    (r.with(Orientation::Inverted), r.misshapen())
}

impl MaskTracker {
    /// Opens the log of the run in `dir`, dropping checks past `start` (a resumed run redoes
    /// them) and taking up the best of the kept ones if its weights are there. Loads the
    /// bundled shape judge.
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
            .map(|r| goodness(&r));
        let flagged_before = lines.last().and_then(logged).map(|r| flagged(&r));
        Ok(Self { log, judge: ShapeJudge::bundled()?, flagged_before, best })
    }

    /// Checks the weights just written to `model` (the run's `model.safetensors`) at `step`.
    pub fn record(&mut self, model: &Path, step: u64, control: &crate::jobs::Control) -> anyhow::Result<MaskReport> {
        let m = match crate::models::cgn::CgnModel::open(model, &candle_core::Device::Cpu)? {
            crate::models::cgn::CgnModel::Mnist(m) => m,
            _ => anyhow::bail!("{}: not an MNIST CGN", model.display()),
        };
        let r = check(&m, TRACK_PER_CLASS, 0, self.judge.as_ref())?;
        let inverted = r.with(Orientation::Inverted);
        control.metric("inverted_mask_share", step as f64, inverted.len() as f64 / r.classes.len() as f64);
        if let Some(s) = r.shape_top1() {
            control.metric("mask_shape_top1", step as f64, s);
        }
        let round = |v: f64| (v * 1e4).round() / 1e4;
        let frames: Vec<f64> = r.classes.iter().map(|c| round(c.frame)).collect();
        let shapes: Option<Vec<f64>> = r.classes.iter().map(|c| c.shape.map(round)).collect();
        // Scored as logged (rounded), so a resumed run compares with the same figures.
        let score = goodness(&of_log(&frames, shapes.as_deref()));
        let best = self.best.is_none_or(|b| score >= b);
        if best {
            let dest = model.with_file_name(BEST_MODEL);
            crate::imageio::write_atomically(&dest, |tmp| {
                std::fs::copy(model, tmp)
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("cannot copy {}: {e}", model.display()))
            })?;
            self.best = Some(score);
        }
        let mut line = serde_json::json!({ "step": step, "frame": frames, "inverted": inverted, "best": best });
        if let Some(s) = &shapes {
            line["shape"] = serde_json::json!(s);
            line["shape_top1"] = serde_json::json!(r.shape_top1().map(round));
        }
        self.log.write(&line)?;
        let now = flagged(&r);
        if self.flagged_before.as_ref() != Some(&now) {
            let hint = if now.0.is_empty() && now.1.is_empty() {
                String::new()
            } else {
                format!(" (the best checkpoint so far is kept as {BEST_MODEL})")
            };
            control.log(format!("step {step}: masks {}{hint}", r.summary()));
        }
        self.flagged_before = Some(now);
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
        let mk = |class, frame| ClassMask {
            class,
            frame,
            inner: None,
            orientation: Orientation::of_frame_mean(frame),
            shape: None,
        };
        let r = MaskReport {
            per_class: 1,
            seed: 0,
            classes: vec![mk(0, 0.68), mk(1, 0.01), mk(2, 0.3), mk(3, 0.02)],
            shape_judge: None,
        };
        assert_eq!(r.summary(), "2 upright, 1 undecided (2), 1 inverted (0)");
        assert_eq!(r.with(Orientation::Inverted), vec![0]);
    }

    #[test]
    fn summary_adds_the_shape_score_and_the_misshapen_classes() {
        let r = of_log(&[0.01, 0.01, 0.6], Some(&[0.9, 0.3, 0.0]));
        assert_eq!(r.summary(), "2 upright, 1 inverted (2); shape 40.0 %, 2 below 50 % (1, 2)");
        assert_eq!(r.shape_judge.as_deref(), Some(crate::train::mask_shape::SHAPE_JUDGE));
    }

    #[test]
    fn goodness_ranks_shape_then_inverted_then_undecided() {
        // Frames only: fewer inverted, then fewer undecided.
        assert_eq!(goodness(&of_log(&[0.01, 0.6, 0.3, 0.2, 0.02], None)), (-1, -1, -2));
        assert!(goodness(&of_log(&[0.01, 0.3], None)) > goodness(&of_log(&[0.6, 0.01], None)));
        // A class-blind blob (upright, unreadable) loses to digits with one inverted class.
        let blob = of_log(&[0.01, 0.01], Some(&[0.1, 0.1]));
        let digits = of_log(&[0.6, 0.01], Some(&[0.0, 0.95]));
        assert!(goodness(&digits) > goodness(&blob));
        // Any read check beats an unread one (a run resumed from before the judge).
        assert!(goodness(&blob) > goodness(&of_log(&[0.01, 0.01], None)));
        // An inverted class's readings do not count.
        assert_eq!(goodness(&of_log(&[0.6, 0.01], Some(&[1.0, 0.5]))).0, 10);
        assert_eq!(goodness(&of_log(&[0.6, 0.6], Some(&[1.0, 0.5]))).0, 0);
    }

    #[test]
    fn a_logged_line_gives_back_its_report() {
        let line = serde_json::json!({"step": 5, "frame": [0.01, 0.7], "shape": [0.95, 0.0], "inverted": [1]});
        let r = logged(&line).unwrap();
        assert_eq!(r.with(Orientation::Inverted), vec![1]);
        assert_eq!(r.classes[0].shape, Some(0.95));
        // Lines from before the shape judge have frames only.
        let old = logged(&serde_json::json!({"frame": [0.01, 0.7]})).unwrap();
        assert_eq!(old.shape_top1(), None);
    }
}
