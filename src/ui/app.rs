//! The studio application: persisted settings, the render worker, and the panels.

use std::time::Duration;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::worker::Worker;
use super::GuiArgs;
use crate::imageio::RgbImage;
use crate::models::biggan::{load, BigGan};

/// Settings that persist across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StudioState {
    pub model: String,
    pub class_query: String,
    pub class: usize,
    pub seed: u64,
    pub truncation: f64,
}

impl Default for StudioState {
    fn default() -> Self {
        Self {
            model: crate::DEFAULT_BIGGAN.to_string(),
            class_query: String::new(),
            class: 207,
            seed: 0,
            truncation: 0.4,
        }
    }
}

/// What the worker renders.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderRequest {
    pub model: String,
    pub class: usize,
    pub seed: u64,
    pub truncation: f64,
}

/// What comes back.
pub struct Rendered {
    pub image: RgbImage,
    pub model_name: String,
    pub num_classes: usize,
}

/// The runtime application.
pub struct StudioApp {
    pub state: StudioState,
    worker: Worker<RenderRequest, Rendered>,
    last_request: Option<RenderRequest>,
    shown_id: u64,
    texture: Option<egui::TextureHandle>,
    error: Option<String>,
    render_ms: Option<f64>,
    num_classes: usize,
    device_name: &'static str,
    /// FNV-1a hash of the pixels on screen (tests compare frames without reading the GPU).
    shown_hash: Option<u64>,
}

impl StudioApp {
    pub fn new(cc: &eframe::CreationContext<'_>, args: GuiArgs) -> Self {
        let mut state: StudioState = cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
        if let Some(m) = args.model {
            state.model = m;
        }
        Self::with_state(cc.egui_ctx.clone(), state, args.cpu)
    }

    /// Builds the app around a state (tests use this directly).
    pub fn with_state(ctx: egui::Context, state: StudioState, cpu: bool) -> Self {
        let device = crate::device::select(cpu);
        let device_name = crate::device::describe(&device);
        let mut cache: Option<(String, BigGan)> = None;
        let render = move |req: RenderRequest| render(&mut cache, &device, req);
        let notify = move || ctx.request_repaint();
        let worker = Worker::spawn("intervene-render", render, notify)
            .unwrap_or_else(|e| panic!("cannot start the render thread: {e}"));
        Self {
            state,
            worker,
            last_request: None,
            shown_id: 0,
            texture: None,
            error: None,
            render_ms: None,
            num_classes: 1000,
            device_name,
            shown_hash: None,
        }
    }

    /// Hash of the image on screen, if one is shown.
    pub fn shown_image_hash(&self) -> Option<u64> {
        self.shown_hash
    }

    /// The error on screen, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn request(&self) -> RenderRequest {
        RenderRequest {
            model: self.state.model.clone(),
            class: self.state.class,
            seed: self.state.seed,
            truncation: self.state.truncation,
        }
    }

    /// Receives results and posts a request when the settings changed.
    fn logic_step(&mut self, ctx: &egui::Context) {
        if let Some(done) = self.worker.poll() {
            self.shown_id = done.id;
            self.render_ms = Some(done.elapsed.as_secs_f64() * 1e3);
            match done.result {
                Ok(r) => {
                    let img = egui::ColorImage::from_rgb([r.image.width, r.image.height], &r.image.pixels);
                    self.texture = Some(ctx.load_texture("generated", img, egui::TextureOptions::NEAREST));
                    self.shown_hash = Some(fnv1a(&r.image.pixels));
                    self.num_classes = r.num_classes;
                    self.error = None;
                }
                Err(e) => {
                    tracing::error!("render failed: {e:#}");
                    self.error = Some(format!("{e:#}"));
                }
            }
        }
        let req = self.request();
        if self.last_request.as_ref() != Some(&req) {
            self.worker.request(req.clone());
            self.last_request = Some(req);
        }
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Generator");
        ui.horizontal(|ui| {
            ui.label("Model");
            ui.text_edit_singleline(&mut self.state.model);
        });
        ui.separator();
        ui.label("Class");
        ui.add(egui::TextEdit::singleline(&mut self.state.class_query).hint_text("search name, wnid or index"));
        egui::ScrollArea::vertical().max_height(180.0).show(ui, |ui| {
            if self.num_classes == 1000 {
                for c in crate::classes::search(&self.state.class_query, 50) {
                    if ui.selectable_label(self.state.class == c.index, format!("{} {}", c.index, c.name())).clicked() {
                        self.state.class = c.index;
                    }
                }
            } else {
                for i in 0..self.num_classes {
                    if ui.selectable_label(self.state.class == i, format!("class {i}")).clicked() {
                        self.state.class = i;
                    }
                }
            }
        });
        ui.separator();
        ui.horizontal(|ui| {
            ui.label("Seed");
            if ui.button("Prev").on_hover_text("previous seed").clicked() {
                self.state.seed = self.state.seed.saturating_sub(1);
            }
            ui.add(egui::DragValue::new(&mut self.state.seed));
            if ui.button("Next").on_hover_text("next seed").clicked() {
                self.state.seed += 1;
            }
        });
        ui.add(egui::Slider::new(&mut self.state.truncation, 0.02..=1.0).step_by(0.02).text("Truncation"));
        ui.separator();
        ui.label(format!("Device: {}", self.device_name));
        if let Some(ms) = self.render_ms {
            ui.label(format!("Render: {ms:.1} ms"));
        }
    }
}

fn render(cache: &mut Option<(String, BigGan)>, device: &Device, req: RenderRequest) -> anyhow::Result<Rendered> {
    if cache.as_ref().is_none_or(|(name, _)| *name != req.model) {
        *cache = None;
        let m = load::load(&req.model, device)?;
        *cache = Some((req.model.clone(), m));
    }
    let Some((_, model)) = cache.as_ref() else { anyhow::bail!("no model") };
    let class = req.class.min(model.cfg.num_classes - 1);
    let z = crate::noise::truncated_noise(req.seed, 1, model.cfg.z_dim, req.truncation, device)?;
    let cv = crate::classes::one_hot(&[class], model.cfg.num_classes, device)?;
    let out = model.forward(&z, &cv, req.truncation)?;
    let image = crate::imageio::images_from_tensor(&out)?.remove(0);
    Ok(Rendered { image, model_name: req.model, num_classes: model.cfg.num_classes })
}

impl eframe::App for StudioApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_step(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::left("controls").default_size(300.0).show(ui, |ui| self.controls_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(err) = &self.error {
                ui.colored_label(ui.visuals().error_fg_color, format!("Error: {err}"));
            }
            if let Some(tex) = &self.texture {
                let side = ui.available_width().min(ui.available_height()).max(64.0);
                ui.add(egui::Image::new(tex).fit_to_exact_size(egui::vec2(side, side)));
            } else {
                ui.spinner();
            }
            if self.worker.busy(self.shown_id) {
                ui.ctx().request_repaint_after(Duration::from_millis(50));
            }
        });
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }
}

/// FNV-1a over the displayed pixels: a cheap identity for "which frame is on screen".
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}
