//! The counterfactual mode: a CGN's shape / texture / background classes picked separately (or
//! locked together), soft interpolation between two classes per mechanism, the three parts and
//! the composite side by side (composited on the GPU with live mask shaping), an interpolation
//! sheet, and the counterfactual export as a background job.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use poll_promise::Promise;
use serde::{Deserialize, Serialize};

use crate::composite::{MaskShape, PartsImage, View};
use crate::jobs::cgn_export::{CgnExport, Layout, Settings};
use crate::jobs::{self, Control, Shard};
use crate::models::cgn::{CgnModel, DEFAULT_CGN};

/// The three mechanisms, in the order the UI shows them.
pub const MECHANISMS: [&str; 3] = ["shape", "texture", "background"];

/// One mechanism's class: `(1 − alpha)·class + alpha·other`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SoftClass {
    pub class: usize,
    pub other: usize,
    pub alpha: f32,
}

impl SoftClass {
    fn probs(&self, n: usize) -> Vec<f32> {
        let mut p = vec![0f32; n];
        p[self.class.min(n - 1)] += 1.0 - self.alpha;
        p[self.other.min(n - 1)] += self.alpha;
        p
    }
}

/// Persisted settings of the counterfactual mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CgnState {
    pub model: String,
    pub classes: [SoftClass; 3],
    pub lock: bool,
    pub seed: u64,
    pub truncation: f64,
    pub mask: MaskShape,
    pub export_n: usize,
    pub export_k: usize,
    pub export_dir: Option<String>,
}

impl Default for CgnState {
    fn default() -> Self {
        let c = |class| SoftClass { class, other: class, alpha: 0.0 };
        Self {
            model: DEFAULT_CGN.to_string(),
            classes: [c(3), c(5), c(7)],
            lock: false,
            seed: 0,
            truncation: 0.5,
            mask: MaskShape::default(),
            export_n: 1000,
            export_k: 10,
            export_dir: None,
        }
    }
}

/// What the CGN worker renders.
#[derive(Debug, Clone, PartialEq)]
pub struct CgnRequest {
    pub model: String,
    pub classes: [SoftClass; 3],
    pub seed: u64,
    pub truncation: f64,
}

/// A rendered set of parts (first sample).
pub struct CgnRendered {
    pub parts: Arc<PartsImage>,
    pub num_classes: usize,
    pub kind: &'static str,
    pub request: CgnRequest,
}

/// Worker-side state: the open CGN.
#[derive(Default)]
pub struct CgnRenderer {
    open: Option<(String, CgnModel)>,
}

impl CgnRenderer {
    pub fn render(&mut self, req: CgnRequest) -> anyhow::Result<CgnRendered> {
        let device = Device::Cpu;
        if self.open.as_ref().is_none_or(|(q, _)| *q != req.model) {
            self.open = None;
            self.open = Some((req.model.clone(), CgnModel::open_named(&req.model, &device)?));
        }
        let Some((_, model)) = &self.open else { anyhow::bail!("no CGN is open") };
        let n = model.num_classes();
        let probs = |k: usize| Tensor::from_vec(req.classes[k].probs(n), (1, n), &device);
        let (mask, fg, bg, kind) = match model {
            CgnModel::Mnist(m) => {
                let u = crate::noise::normal_noise(req.seed, 1, m.config.latent_sz, &device)?;
                let parts = m.forward_soft(&u, &probs(0)?, &probs(1)?, &probs(2)?)?;
                // The same texture shift `intervene cgn --seed` applies, so the window matches the CLI.
                let parts = parts.shifted(&crate::cli::cgn::default_shifts(req.seed, 1))?;
                (
                    parts.mask_raw.clamp(crate::models::cgn_mnist::MASK_MIN, crate::models::cgn_mnist::MASK_MAX)?,
                    parts.fg,
                    parts.bg,
                    "MNIST CGN",
                )
            }
            CgnModel::ImageNet(m) => {
                let t = req.truncation;
                let u = crate::noise::truncated_noise(req.seed, 1, m.f_shape.cfg.z_dim, t, &device)?;
                let premask = m.f_shape.forward(&u, &probs(0)?, t)?;
                let mask = crate::models::cgn_imagenet::mask_from_premask(&m.u2net, &premask)?;
                (mask, m.f_text.forward(&u, &probs(1)?, t)?, m.f_bg.forward(&u, &probs(2)?, t)?, "ImageNet CGN")
            }
        };
        let (_, _, h, w) = fg.dims4()?;
        let flat = |t: &Tensor| -> candle_core::Result<Vec<f32>> { t.get(0)?.flatten_all()?.to_vec1::<f32>() };
        let parts =
            PartsImage { width: w, height: h, mask: flat(&mask)?, foreground: flat(&fg)?, background: flat(&bg)? };
        Ok(CgnRendered { parts: Arc::new(parts), num_classes: n, kind, request: req })
    }
}

/// The export running from the window.
pub struct ExportJob {
    pub control: Control,
    pub result: Promise<Result<String, String>>,
    pub out: PathBuf,
}

impl ExportJob {
    pub fn start(model: String, n: usize, k: usize, seed: u64, truncation: f64, out: PathBuf) -> Self {
        let control = Control::new();
        let c2 = control.clone();
        let out2 = out.clone();
        let result = Promise::spawn_thread("intervene-export", move || {
            let run = || -> anyhow::Result<String> {
                let device = Device::Cpu;
                let m = CgnModel::open_named(&model, &device)?;
                let settings =
                    Settings { model, n, cf_per_shape: k, seed, layout: Layout::Cgn, truncation, format_version: 1 };
                std::fs::create_dir_all(&out2)?;
                jobs::claim_directory(&out2, &serde_json::to_value(&settings)?, true)?;
                let mut job = CgnExport::new(m, settings, out2.clone(), device);
                let s = jobs::run(&mut job, Shard::default(), true, &c2, &mut |_| {})?;
                if s.cancelled {
                    return Ok(format!("export cancelled after {} images (resume continues it)", s.files_written));
                }
                job.write_labels()?;
                Ok(format!(
                    "exported {} images to {} ({:.1} images/s)",
                    s.files_written,
                    out2.display(),
                    s.files_written as f64 / s.elapsed.as_secs_f64().max(1e-9)
                ))
            };
            run().map_err(|e| format!("{e:#}"))
        });
        Self { control, result, out }
    }
}

/// Writes an interpolation sheet: for each mechanism a row of `steps` composites from its class
/// to its other class (the other two mechanisms fixed), CPU-composited with `shape`.
pub fn interpolation_sheet(
    renderer: &mut CgnRenderer,
    base: &CgnRequest,
    shape: MaskShape,
    steps: usize,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let mut images = Vec::new();
    for k in 0..3 {
        for s in 0..steps {
            let mut req = base.clone();
            for (j, c) in req.classes.iter_mut().enumerate() {
                c.alpha = if j == k { s as f32 / (steps - 1).max(1) as f32 } else { 0.0 };
            }
            images.push(renderer.render(req)?.parts.render(View::Composite, shape));
        }
    }
    // Rows of `steps` images: tile by hand (imageio::grid is square).
    let (w, h) = (images[0].width, images[0].height);
    let (gw, gh) = (steps * w, 3 * h);
    let mut pixels = vec![0u8; gw * gh * 3];
    for (i, img) in images.iter().enumerate() {
        let (r, c) = (i / steps, i % steps);
        for y in 0..h {
            let dst = ((r * h + y) * gw + c * w) * 3;
            pixels[dst..dst + w * 3].copy_from_slice(&img.pixels[y * w * 3..(y + 1) * w * 3]);
        }
    }
    crate::imageio::save_image(&crate::imageio::RgbImage { width: gw, height: gh, pixels }, out)
}
