//! The Explain pane's engine side: which classifier(s) explain which image, and the worker that
//! opens classifiers (cached), preprocesses, runs the CAM and the top-5.

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

/// Persisted Explain settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExplainState {
    pub enabled: bool,
    pub two: bool,
    pub slots: [ExplainSlot; 2],
    /// Explain this image file instead of the generated frame.
    pub image_file: Option<String>,
    /// Heatmap weight of the overlay (pytorch-grad-cam 0.5; GenInt's figures 0.4).
    pub alpha: f32,
}

impl Default for ExplainState {
    fn default() -> Self {
        let second = ExplainSlot { method: "gradcam++".into(), ..Default::default() };
        Self { enabled: false, two: false, slots: [ExplainSlot::default(), second], image_file: None, alpha: 0.5 }
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
    pub heat: Arc<super::gpu_heatmap::HeatmapInput>,
}

/// Worker-side cache of opened classifiers and their layer tables.
#[derive(Default)]
pub struct ExplainRenderer {
    open: HashMap<String, (Arc<Opened>, Vec<(String, Vec<usize>)>)>,
}

fn parse_method(s: &str) -> anyhow::Result<Method> {
    <Method as clap::ValueEnum>::from_str(s, true).map_err(|_| anyhow::anyhow!("unknown CAM method '{s}'"))
}

impl ExplainRenderer {
    fn classifier(&mut self, name: &str) -> anyhow::Result<(Arc<Opened>, Vec<(String, Vec<usize>)>)> {
        if let Some(c) = self.open.get(name) {
            return Ok(c.clone());
        }
        let opened = Arc::new(classifier::open(name, None, &Device::Cpu)?);
        let side = opened.arch.input_size();
        let mut t = candle_core::Tensor::zeros((1, 3, side, side), candle_core::DType::F32, &Device::Cpu)?;
        let mut layers = Vec::new();
        for (i, n) in opened.model.stage_names().iter().enumerate() {
            t = opened.model.run_stage(i, &t)?;
            layers.push((n.clone(), t.dims().to_vec()));
        }
        self.open.insert(name.to_string(), (opened.clone(), layers.clone()));
        Ok((opened, layers))
    }

    pub fn render(&mut self, req: ExplainRequest) -> anyhow::Result<Vec<Explained>> {
        let img = image::RgbImage::from_raw(req.image.width as u32, req.image.height as u32, req.image.pixels.clone())
            .ok_or_else(|| anyhow::anyhow!("image buffer has the wrong size"))?;
        let mut out = Vec::new();
        for slot in &req.slots {
            let (opened, layers) = self.classifier(&slot.classifier)?;
            let m = &opened.model;
            let (x, rgb) = opened.arch.preprocess(&img)?;
            let (_, _, h, w) = x.dims4()?;
            let layer = if slot.layer.is_empty() {
                m.default_cam_stage()
            } else {
                m.resolve_layer(&slot.layer)
                    .ok_or_else(|| anyhow::anyhow!("{}: no layer '{}'", slot.classifier, slot.layer))?
            };
            let ag = m.activation_and_gradient(&x, layer, slot.class.filter(|&c| c < opened.num_classes))?;
            let (_, c, lh, lw) = ag.act.dims4()?;
            let cam = compute(
                parse_method(&slot.method)?,
                &ag.act.flatten_all()?.to_vec1::<f32>()?,
                &ag.grad.flatten_all()?.to_vec1::<f32>()?,
                c,
                lh,
                lw,
                h,
                w,
            );
            let logits = ag.logits.flatten_all()?.to_vec1::<f32>()?;
            // MNIST CNN outputs are log-probabilities already; softmax is the same for both.
            let mx = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = logits.iter().map(|v| (v - mx).exp()).collect();
            let z: f32 = e.iter().sum();
            let mut idx: Vec<usize> = (0..e.len()).collect();
            idx.sort_by(|a, b| e[*b].total_cmp(&e[*a]));
            let name = |k: usize| {
                if opened.num_classes == 1000 {
                    crate::classes::imagenet().get(k).map_or(format!("{k}"), |c| c.name().to_string())
                } else {
                    format!("class {k}")
                }
            };
            let top5 = idx.iter().take(5).map(|&k| (k, name(k), e[k] / z)).collect();
            out.push(Explained {
                overlay: RgbImage { width: w, height: h, pixels: overlay(&rgb, &cam.map) },
                heat: Arc::new(super::gpu_heatmap::HeatmapInput {
                    width: w,
                    height: h,
                    image: rgb.clone(),
                    map: cam.map.clone(),
                }),
                top5,
                target: ag.class,
                layer: m.stage_names()[layer].clone(),
                layers,
                arch: opened.arch,
            });
        }
        Ok(out)
    }
}
