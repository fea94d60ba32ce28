//! Interactive steering: re-render a base sample under changing edits, recomputing only the
//! generator stages at and after the first latent slot that changed.
//!
//! A [`Steerer`] keeps the base latent / class / truncation and up to two recorded forwards —
//! the unedited one and the last one rendered — with every stage's output. A new edit list is
//! turned into per-slot latents; for each recorded forward the first slot whose latent differs
//! is found, the forward that allows the latest restart is picked, and the generator resumes
//! at the first stage reading that slot from the recorded activation entering it
//! ([`BigGan::run_stages`]). Moving one slider of an edit that starts at slot `s` therefore
//! costs only the stages from `s` on; an unchanged request returns the recorded image.
//!
//! Changing z, the class or the truncation drops the recordings. Memory: two sets of stage
//! activations (≈37 MiB each for deep-128 at batch 1, ≈112 MiB for deep-256).

use candle_core::{DType, Device, Tensor};

use super::components::Components;
use super::edit::{edit_latents, Edit, EditError, EditMode};
use crate::models::biggan::{BigGan, Resume};

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    #[error("no base sample: call Steerer::set_base first")]
    NoBase,
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error("{0}")]
    Input(String),
    #[error("generator: {0}")]
    Model(#[from] candle_core::Error),
}

/// One recorded forward.
#[derive(Debug, Clone)]
struct Recording {
    /// Per-slot latents, each `b × z_dim`.
    latents: Vec<Vec<f32>>,
    /// Output of every stage (index = stage).
    stages: Vec<Tensor>,
    output: Tensor,
}

#[derive(Debug, Clone)]
struct Base {
    z: Vec<f32>,
    batch: usize,
    class_vec: Vec<f32>,
    class_t: Tensor,
    truncation: f64,
    unedited: Option<Recording>,
    last: Option<Recording>,
}

/// Renders edits of one base sample (or batch) with stage caching. Cheap to call repeatedly;
/// meant to live on a render worker thread.
#[derive(Debug, Clone)]
pub struct Steerer {
    model: BigGan,
    base: Option<Base>,
    last_resume: Option<usize>,
}

impl Steerer {
    /// A steerer for `model` (cloning a `BigGan` shares its weights).
    pub fn new(model: BigGan) -> Self {
        Self { model, base: None, last_resume: None }
    }

    /// The model.
    pub fn model(&self) -> &BigGan {
        &self.model
    }

    /// Sets the base latents `z` (`(b, z_dim)`), class vectors (`(b, num_classes)`) and
    /// truncation. Recordings are kept when nothing changed and dropped otherwise.
    pub fn set_base(&mut self, z: &Tensor, class_vec: &Tensor, truncation: f64) -> Result<(), SteerError> {
        let (b, zd) = z.dims2()?;
        if zd != self.model.cfg.z_dim {
            return Err(SteerError::Input(format!(
                "z has {zd} columns but the model's z_dim is {}",
                self.model.cfg.z_dim
            )));
        }
        let (cb, nc) = class_vec.dims2()?;
        if cb != b || nc != self.model.cfg.num_classes {
            return Err(SteerError::Input(format!(
                "class vectors are [{cb}, {nc}] but [{b}, {}] are needed",
                self.model.cfg.num_classes
            )));
        }
        if !(truncation > 0.0 && truncation <= 1.0) {
            return Err(SteerError::Input(format!("truncation must lie in (0, 1], got {truncation}")));
        }
        let zv = cpu_vec(z)?;
        let cv = cpu_vec(class_vec)?;
        if let Some(base) = &self.base {
            if base.z == zv && base.class_vec == cv && base.truncation == truncation {
                return Ok(());
            }
        }
        let class_t = Tensor::from_vec(cv.clone(), (b, nc), self.model.device())?;
        self.base = Some(Base { z: zv, batch: b, class_vec: cv, class_t, truncation, unedited: None, last: None });
        self.last_resume = None;
        Ok(())
    }

    /// Renders the base under `edits` (`(b, 3, H, W)` in [−1, 1]).
    pub fn render(&mut self, comps: &Components, edits: &[Edit], mode: EditMode) -> Result<Tensor, SteerError> {
        let base = self.base.as_ref().ok_or(SteerError::NoBase)?;
        let latents = edit_latents(&base.z, self.model.cfg.z_dim, self.model.cfg.num_latents(), comps, edits, mode)?;
        self.render_latents(latents)
    }

    /// The per-slot latents `edits` would render (each `b × z_dim`).
    pub fn latents_for(&self, comps: &Components, edits: &[Edit], mode: EditMode) -> Result<Vec<Vec<f32>>, SteerError> {
        let base = self.base.as_ref().ok_or(SteerError::NoBase)?;
        Ok(edit_latents(&base.z, self.model.cfg.z_dim, self.model.cfg.num_latents(), comps, edits, mode)?)
    }

    /// Renders explicit per-slot latents (`num_latents` vectors of `b × z_dim`) with the base's
    /// class and truncation, resuming from the best recorded forward.
    pub fn render_latents(&mut self, latents: Vec<Vec<f32>>) -> Result<Tensor, SteerError> {
        let model = &self.model;
        let base = self.base.as_mut().ok_or(SteerError::NoBase)?;
        let n_slots = model.cfg.num_latents();
        let want = base.batch * model.cfg.z_dim;
        if latents.len() != n_slots || latents.iter().any(|l| l.len() != want) {
            return Err(SteerError::Input(format!(
                "expected {n_slots} latents of {} × {} values",
                base.batch, model.cfg.z_dim
            )));
        }
        // The recorded forward that lets us restart latest.
        let mut best: Option<(usize, &Recording)> = None;
        for rec in [base.unedited.as_ref(), base.last.as_ref()].into_iter().flatten() {
            let stage = match (0..n_slots).find(|&s| rec.latents[s] != latents[s]) {
                None => model.num_stages() + 1, // identical: nothing to compute
                Some(slot) => model.first_stage_of_latent(slot),
            };
            if best.is_none_or(|(s, _)| stage > s) {
                best = Some((stage, rec));
            }
        }
        let tensors = latents
            .iter()
            .map(|l| Tensor::from_vec(l.clone(), (base.batch, model.cfg.z_dim), model.device()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let conds = model.conditions(&tensors, &base.class_t)?;
        let recording = match best {
            Some((stage, rec)) if stage > model.num_stages() => {
                self.last_resume = Some(stage);
                return Ok(rec.output.clone());
            }
            Some((stage, rec)) if stage > 0 => {
                let mut stages: Vec<Tensor> = rec.stages[..stage].to_vec();
                let input = stages.last().cloned();
                let mut tail = Vec::new();
                let output = model.run_stages(
                    &conds,
                    base.truncation,
                    Resume { stage, input: input.as_ref() },
                    Some(&mut tail),
                )?;
                stages.extend(tail);
                self.last_resume = Some(stage);
                Recording { latents, stages, output }
            }
            _ => {
                let mut stages = Vec::new();
                let output =
                    model.run_stages(&conds, base.truncation, Resume { stage: 0, input: None }, Some(&mut stages))?;
                self.last_resume = Some(0);
                Recording { latents, stages, output }
            }
        };
        let output = recording.output.clone();
        let unedited = recording.latents.iter().all(|l| *l == base.z);
        if unedited {
            base.unedited = Some(recording.clone());
        }
        base.last = Some(recording);
        Ok(output)
    }

    /// The stage the last render started at: 0 = full forward, `num_stages() + 1` = served from
    /// a recording without computing. `None` before the first render after a base change.
    pub fn last_resume_stage(&self) -> Option<usize> {
        self.last_resume
    }

    /// Drops the recorded forwards (e.g. to free memory); the base is kept.
    pub fn clear_cache(&mut self) {
        if let Some(b) = &mut self.base {
            b.unedited = None;
            b.last = None;
        }
        self.last_resume = None;
    }
}

fn cpu_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()
}
