//! Explaining an image, as the window's Explain pane and `intervene cam` do it: open the
//! classifier(s) (cached), preprocess, run the CAM, and rank the top-5 classes.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::explain::cam::{compute, overlay, Method};
use crate::imageio::RgbImage;
use crate::models::classifier::{self, Arch, Opened};

/// One explanation column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExplainSlot {
    pub classifier: String,
    pub method: String,
    /// Layer name; empty = the model's default CAM layer.
    pub layer: String,
    /// Target class; None = top-1.
    pub class: Option<usize>,
}

impl Default for ExplainSlot {
    fn default() -> Self {
        Self { classifier: "mobilenet_v2".into(), method: "gradcam".into(), layer: String::new(), class: None }
    }
}

/// What the explain worker computes.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainRequest {
    pub image: Arc<RgbImage>,
    pub slots: Vec<ExplainSlot>,
}

/// One column's result.
#[derive(Debug, Clone)]
pub struct Explained {
    pub overlay: RgbImage,
    /// (class, name, probability), best first.
    pub top5: Vec<(usize, String, f32)>,
    pub target: usize,
    pub layer: String,
    /// Every layer with its output shape, for the picker.
    pub layers: Vec<(String, Vec<usize>)>,
    pub arch: Arch,
    /// The classifier's input image (RGB u8) and the CAM, for the GPU overlay.
    pub heat: Arc<HeatmapInput>,
}

/// An image and its CAM, as the overlay (CPU or GPU) blends them.
#[derive(Debug)]
pub struct HeatmapInput {
    pub width: usize,
    pub height: usize,
    /// RGB u8, interleaved.
    pub image: Vec<u8>,
    /// The CAM in [0, 1], `h × w`.
    pub map: Vec<f32>,
}

/// Every stage's name with its output shape.
pub type LayerTable = Vec<(String, Vec<usize>)>;

/// A cache of opened classifiers and their layer tables; explains requests.
#[derive(Default)]
pub struct Explainer {
    open: HashMap<String, (Arc<Opened>, LayerTable)>,
}

fn parse_method(s: &str) -> anyhow::Result<Method> {
    s.parse().map_err(anyhow::Error::msg)
}

/// A CAM of one preprocessed input `(1, 3, h, w)`, with what produced it.
pub struct CamOf {
    pub cam: crate::explain::cam::Cam,
    /// The stage the CAM was taken at.
    pub layer: usize,
    pub target: usize,
    /// `(1, classes)`, the model's own outputs.
    pub logits: candle_core::Tensor,
}

/// Runs `method` at `layer` (a name or alias; `None`: the model's default CAM layer) for
/// `class` (`None`: the top-1) — the one CAM pipeline of the CLI and the window.
pub fn cam_of(
    opened: &Opened,
    x: &candle_core::Tensor,
    method: Method,
    layer: Option<&str>,
    class: Option<usize>,
) -> anyhow::Result<CamOf> {
    let m = &opened.model;
    let (_, _, h, w) = x.dims4()?;
    let layer = match layer {
        None => m.default_cam_stage(),
        Some(n) => m.resolve_layer(n).ok_or_else(|| {
            anyhow::anyhow!("{}: no layer '{n}'; layers: {}", opened.source.display(), m.stage_names().join(", "))
        })?,
    };
    if let Some(c) = class.filter(|&c| c >= opened.num_classes) {
        anyhow::bail!("class {c} does not exist: the classifier has {} classes", opened.num_classes);
    }
    let ag = m.activation_and_gradient(x, layer, class)?;
    let (_, c, lh, lw) = ag.act.dims4()?;
    let flat = |t: &candle_core::Tensor| -> anyhow::Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
    let cam = compute(method, &flat(&ag.act)?, &flat(&ag.grad)?, c, lh, lw, h, w);
    Ok(CamOf { cam, layer, target: ag.class, logits: ag.logits })
}

/// Every stage of a classifier with its output shape for an input of the architecture's size.
pub fn layer_table(opened: &Opened) -> anyhow::Result<LayerTable> {
    let side = opened.arch.input_size();
    let mut t = candle_core::Tensor::zeros((1, 3, side, side), candle_core::DType::F32, &Device::Cpu)?;
    let mut layers = Vec::new();
    for (i, n) in opened.model.stage_names().iter().enumerate() {
        t = opened.model.run_stage(i, &t)?;
        layers.push((n.clone(), t.dims().to_vec()));
    }
    Ok(layers)
}

/// The `k` most probable classes `(class, name, probability)` from a model's outputs (logits or
/// log-probabilities: the softmax is the same).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, String, f32)> {
    let mx = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - mx).exp()).collect();
    let z: f32 = e.iter().sum();
    let mut idx: Vec<usize> = (0..e.len()).collect();
    idx.sort_by(|a, b| e[*b].total_cmp(&e[*a]));
    idx.into_iter().take(k).map(|c| (c, class_name(c, logits.len()), e[c] / z)).collect()
}

/// A class's display name: the ImageNet name for 1,000-class models, else "class k".
pub fn class_name(k: usize, num_classes: usize) -> String {
    if num_classes == 1000 {
        crate::classes::imagenet().get(k).map_or(format!("{k}"), |c| c.name().to_string())
    } else {
        format!("class {k}")
    }
}

impl Explainer {
    fn classifier(&mut self, name: &str) -> anyhow::Result<(Arc<Opened>, LayerTable)> {
        if let Some(c) = self.open.get(name) {
            return Ok(c.clone());
        }
        let opened = Arc::new(classifier::open(name, None, &Device::Cpu)?);
        let layers = layer_table(&opened)?;
        self.open.insert(name.to_string(), (opened.clone(), layers.clone()));
        Ok((opened, layers))
    }

    /// Explains `req.image` with every slot's classifier.
    pub fn render(&mut self, req: ExplainRequest) -> anyhow::Result<Vec<Explained>> {
        let img = image::RgbImage::from_raw(req.image.width as u32, req.image.height as u32, req.image.pixels.clone())
            .ok_or_else(|| anyhow::anyhow!("image buffer has the wrong size"))?;
        let mut out = Vec::new();
        for slot in &req.slots {
            let (opened, layers) = self.classifier(&slot.classifier)?;
            let (x, rgb) = opened.arch.preprocess(&img)?;
            let (_, _, h, w) = x.dims4()?;
            let layer = Some(slot.layer.as_str()).filter(|l| !l.is_empty());
            let class = slot.class.filter(|&c| c < opened.num_classes);
            let r = cam_of(&opened, &x, parse_method(&slot.method)?, layer, class)?;
            let logits = r.logits.flatten_all()?.to_vec1::<f32>()?;
            out.push(Explained {
                overlay: RgbImage { width: w, height: h, pixels: overlay(&rgb, &r.cam.map) },
                heat: Arc::new(HeatmapInput { width: w, height: h, image: rgb, map: r.cam.map }),
                top5: top_k(&logits, 5),
                target: r.target,
                layer: opened.model.stage_names()[r.layer].clone(),
                layers,
                arch: opened.arch,
            });
        }
        Ok(out)
    }
}
