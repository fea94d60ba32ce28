//! One studio frame: what the window asks for, what comes back, and the state (loaded model,
//! steering cache) that turns one into the other. The window runs it on its render worker;
//! `intervene steer` / `generate` regenerate the same pixels from a capture.

use std::sync::Arc;

use anyhow::Context as _;
use candle_core::Device;

use crate::imageio::RgbImage;
use crate::models::biggan::{load, BigGan};
use crate::steer::{Components, Edit, EditMode, Steerer};

/// One frame the UI wants.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    pub model: String,
    pub class: usize,
    /// First seed; the grid shows `seed..seed + batch` (row i of the noise depends on seed + i only).
    pub seed: u64,
    pub batch: usize,
    pub truncation: f64,
    pub components: Option<Arc<Components>>,
    pub edits: Vec<Edit>,
    pub mode: EditMode,
}

impl PartialEq for RenderRequest {
    fn eq(&self, o: &Self) -> bool {
        let same_comps = match (&self.components, &o.components) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_comps
            && self.model == o.model
            && self.class == o.class
            && self.seed == o.seed
            && self.batch == o.batch
            && self.truncation.to_bits() == o.truncation.to_bits()
            && self.edits == o.edits
            && self.mode == o.mode
    }
}

/// Facts about the loaded model, for the UI.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub query: String,
    pub parameters: usize,
    pub num_classes: usize,
    pub num_latents: usize,
    pub z_dim: usize,
    pub resolution: usize,
    /// Class names from `classes.txt` beside the model's config (one per line, in class
    /// order); empty when there is none (ImageNet models are named by `crate::classes`).
    pub class_names: Vec<String>,
}

impl ModelInfo {
    /// The display name of class `i`: its `classes.txt` name, the ImageNet name for
    /// 1000-class models, else none.
    pub fn class_name(&self, i: usize) -> Option<String> {
        if !self.class_names.is_empty() {
            return self.class_names.get(i).cloned();
        }
        (self.num_classes == 1000).then(|| crate::classes::imagenet().get(i).map(|c| c.name().to_string())).flatten()
    }
}

/// A render asked for a class the model does not have; carries the model's facts so the
/// window can correct the class (a 10-class model opened while class 207 was picked).
#[derive(Debug, thiserror::Error)]
#[error("class {class} does not exist: the model has {} classes", info.num_classes)]
pub struct ClassOutOfRange {
    pub class: usize,
    pub info: ModelInfo,
}

/// A finished frame.
pub struct Rendered {
    pub images: Vec<RgbImage>,
    /// The base latents `batch × z_dim` (before edits), for capture.
    pub z: Vec<f32>,
    pub info: ModelInfo,
    /// The stage the steering cache restarted at (0 = full forward).
    pub resume_stage: Option<usize>,
    pub num_stages: usize,
    /// The request that produced it (captures write exactly this).
    pub request: RenderRequest,
}

/// The worker's state: the open model and its steering cache.
pub struct Renderer {
    device: Device,
    open: Option<(String, Steerer, Vec<String>)>,
}

impl Renderer {
    pub fn new(device: Device) -> Self {
        Self { device, open: None }
    }

    /// The open model for `query` (opened, with its class names, when it is another one).
    fn open(&mut self, query: &str) -> anyhow::Result<(&mut Steerer, &[String])> {
        if self.open.as_ref().is_none_or(|(q, _, _)| q != query) {
            self.open = None; // free the old model before loading the next
            let model: BigGan = load::load(query, &self.device)?;
            let names = load::class_names(query)?;
            self.open = Some((query.to_string(), Steerer::new(model), names));
        }
        let Some((_, s, names)) = self.open.as_mut() else { anyhow::bail!("no model is open") };
        Ok((s, names))
    }

    /// Renders one request.
    pub fn render(&mut self, req: RenderRequest) -> anyhow::Result<Rendered> {
        let device = self.device.clone();
        let (steerer, class_names) = self.open(&req.model)?;
        let cfg = steerer.model().cfg.clone();
        let info = ModelInfo {
            query: req.model.clone(),
            parameters: steerer.model().num_parameters(),
            num_classes: cfg.num_classes,
            num_latents: cfg.num_latents(),
            z_dim: cfg.z_dim,
            resolution: cfg.output_dim,
            class_names: class_names.to_vec(),
        };
        let batch = req.batch.clamp(1, 9);
        if req.class >= cfg.num_classes {
            return Err(ClassOutOfRange { class: req.class, info }.into());
        }
        let z = crate::noise::truncated_noise(req.seed, batch, cfg.z_dim, req.truncation, &device)?;
        let cv = crate::classes::one_hot(&vec![req.class; batch], cfg.num_classes, &device)?;
        steerer.set_base(&z, &cv, req.truncation)?;
        let out = match (&req.components, req.edits.is_empty()) {
            (Some(comps), false) => {
                comps.check_z_dim(cfg.z_dim).context("the loaded components do not fit this model")?;
                steerer.render(comps, &req.edits, req.mode)?
            }
            _ => {
                let zv = z.flatten_all()?.to_vec1::<f32>()?;
                steerer.render_latents(vec![zv; cfg.num_latents()])?
            }
        };
        let images = crate::imageio::images_from_tensor(&out)?;
        Ok(Rendered {
            images,
            z: z.flatten_all()?.to_vec1::<f32>()?,
            info,
            resume_stage: steerer.last_resume_stage(),
            num_stages: steerer.model().num_stages(),
            request: req,
        })
    }
}
