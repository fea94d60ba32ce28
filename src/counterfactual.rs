//! Counterfactual frames from a CGN, as the window's counterfactual mode shows them: shape,
//! texture and background classes picked separately, each softly interpolated between two
//! classes, rendered into the three parts (mask, foreground, background) that the window
//! composites live; and interpolation sheets.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::composite::{MaskShape, PartsImage, View};
use crate::models::cgn::CgnModel;

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
    /// A plain (not interpolated) class.
    pub fn plain(class: usize) -> Self {
        Self { class, other: class, alpha: 0.0 }
    }

    fn probs(&self, n: usize) -> Vec<f32> {
        let mut p = vec![0f32; n];
        p[self.class.min(n - 1)] += 1.0 - self.alpha;
        p[self.other.min(n - 1)] += self.alpha;
        p
    }
}

/// One counterfactual frame.
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
    /// The mask check recorded beside the weights (`mask_check::recorded`), if any.
    pub masks: Option<Arc<crate::train::mask_check::MaskReport>>,
}

/// The open CGN; renders requests.
#[derive(Default)]
pub struct CgnRenderer {
    open: Option<(String, CgnModel, Option<Arc<crate::train::mask_check::MaskReport>>)>,
}

impl CgnRenderer {
    pub fn render(&mut self, req: CgnRequest) -> anyhow::Result<CgnRendered> {
        let device = Device::Cpu;
        if self.open.as_ref().is_none_or(|(q, _, _)| *q != req.model) {
            self.open = None;
            let model = CgnModel::open_named(&req.model, &device)?;
            let masks =
                CgnModel::weights_named(&req.model).and_then(|w| crate::train::mask_check::recorded(&w)).map(Arc::new);
            self.open = Some((req.model.clone(), model, masks));
        }
        let Some((_, model, masks)) = &self.open else { anyhow::bail!("no CGN is open") };
        let n = model.num_classes();
        let probs = |k: usize| Tensor::from_vec(req.classes[k].probs(n), (1, n), &device);
        let (mask, fg, bg, kind) = match model {
            CgnModel::Mnist(m) => {
                let u = crate::noise::normal_noise(req.seed, 1, m.config.latent_sz, &device)?;
                let parts = m.forward_soft(&u, &probs(0)?, &probs(1)?, &probs(2)?)?;
                // The same texture shift `intervene cgn --seed` applies, so the window matches the CLI.
                let parts = parts.shifted(&crate::models::cgn_mnist::Shifts::for_seed(req.seed, 1))?;
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
        Ok(CgnRendered { parts: Arc::new(parts), num_classes: n, kind, request: req, masks: masks.clone() })
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
