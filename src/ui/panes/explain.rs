//! The Explain pane: one or two classifiers explain the frame on screen (or an image file) with
//! a CAM each, with their top-5 labels and a layer picker. It follows the sliders: every new
//! frame is explained again on a worker (newest wins).

use std::sync::Arc;

use super::{paint_texture, PaneCtx};
use crate::explain::pipeline::{ExplainRequest, Explained, Explainer};
use crate::imageio::RgbImage;
use crate::steer::render::Rendered;
use crate::ui::command::{Command, Commands, DialogKind};
use crate::ui::worker::Worker;
use crate::ui::StudioState;

const METHODS: [&str; 5] = ["gradcam", "gradcam++", "hirescam", "layercam", "eigencam"];

/// The Explain pane.
pub struct ExplainPane {
    worker: Option<Worker<ExplainRequest, Vec<Explained>>>,
    last: Option<ExplainRequest>,
    shown_id: u64,
    explained: Option<Vec<Explained>>,
    textures: Vec<egui::TextureHandle>,
    /// Bumped with every new explanation (the GPU overlay re-uploads then).
    version: u64,
    /// Where the columns were drawn last frame.
    pub rects: [egui::Rect; 2],
    /// The image file being explained, decoded (path, pixels).
    file: Option<(String, Arc<RgbImage>)>,
}

impl ExplainPane {
    pub fn new(ctx: &egui::Context, commands: &mut Commands) -> Self {
        let mut explainer = Explainer::default();
        let repaint = ctx.clone();
        let worker = match Worker::spawn(
            "intervene-explain",
            move |req| explainer.render(req),
            move || repaint.request_repaint(),
        ) {
            Ok(w) => Some(w),
            Err(e) => {
                commands.error("cannot start the explain thread", e);
                None
            }
        };
        Self {
            worker,
            last: None,
            shown_id: 0,
            explained: None,
            textures: Vec::new(),
            version: 0,
            rects: [egui::Rect::NOTHING; 2],
            file: None,
        }
    }

    /// The explanations on screen (one per classifier column).
    pub fn explained(&self) -> Option<&[Explained]> {
        self.explained.as_deref()
    }

    pub fn busy(&self) -> bool {
        self.worker.as_ref().is_some_and(|w| w.busy(self.shown_id))
    }

    /// The request for the current frame and settings, if the pane is on and an image exists.
    fn request(&self, state: &StudioState, frame: Option<&Rendered>) -> Option<ExplainRequest> {
        let e = &state.explain;
        if !e.enabled {
            return None;
        }
        let image = match &e.image_file {
            Some(p) => self.file.as_ref().filter(|(q, _)| q == p).map(|(_, i)| i.clone())?,
            None => Arc::new(frame?.images.first()?.clone()),
        };
        let n = if e.two { 2 } else { 1 };
        Some(ExplainRequest { image, slots: e.slots[..n].to_vec() })
    }

    pub fn logic(
        &mut self,
        ctx: &egui::Context,
        state: &mut StudioState,
        frame: Option<&Rendered>,
        commands: &mut Commands,
    ) {
        // Decode an image file to explain (small, once per path).
        if let Some(p) = state.explain.image_file.clone() {
            if self.file.as_ref().is_none_or(|(q, _)| *q != p) {
                match image::open(&p) {
                    Ok(img) => {
                        let rgb = img.to_rgb8();
                        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
                        self.file = Some((p, Arc::new(RgbImage { width: w, height: h, pixels: rgb.into_raw() })));
                    }
                    Err(e) => {
                        state.explain.image_file = None;
                        commands.error(format!("cannot open {p}"), e);
                    }
                }
            }
        }
        if let Some(done) = self.worker.as_ref().and_then(|w| w.poll()) {
            self.shown_id = done.id;
            match done.result {
                Ok(v) => {
                    self.textures = v
                        .iter()
                        .enumerate()
                        .map(|(k, x)| {
                            let c = egui::ColorImage::from_rgb([x.overlay.width, x.overlay.height], &x.overlay.pixels);
                            ctx.load_texture(format!("explain-{k}"), c, egui::TextureOptions::LINEAR)
                        })
                        .collect();
                    self.explained = Some(v);
                    self.version += 1;
                }
                Err(e) => commands.error("explain failed", format!("{e:#}")),
            }
        }
        if let Some(req) = self.request(state, frame) {
            if self.last.as_ref() != Some(&req) {
                if let Some(w) = &mut self.worker {
                    w.request(req.clone());
                }
                self.last = Some(req);
            }
        }
    }

    /// The Explain section of the left panel.
    pub fn controls_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PaneCtx<'_>) {
        let e = &mut ctx.state.explain;
        egui::CollapsingHeader::new("Explain").default_open(e.enabled).show(ui, |ui| {
            ui.checkbox(&mut e.enabled, "Explain the image (CAM)");
            ui.checkbox(&mut e.two, "Two classifiers side by side");
            ui.add(egui::Slider::new(&mut e.alpha, 0.0..=1.0).text("Heatmap weight"));
            ui.horizontal(|ui| {
                match &e.image_file {
                    Some(p) => {
                        let name =
                            std::path::Path::new(p).file_name().map_or(p.clone(), |s| s.to_string_lossy().into());
                        ui.label(format!("image: {name}"));
                        if ui.button("Use the generated image").clicked() {
                            e.image_file = None;
                        }
                    }
                    None => {
                        ui.label("image: the generated frame");
                    }
                }
                if ui.button("Open image…").clicked() {
                    ctx.commands.push(Command::OpenDialog(DialogKind::ImageFile));
                }
            });
            let n = if e.two { 2 } else { 1 };
            for k in 0..n {
                ui.separator();
                let layers: Vec<String> = self
                    .explained
                    .as_ref()
                    .and_then(|v| v.get(k))
                    .map(|x| x.layers.iter().map(|(n, s)| format!("{n} {s:?}")).collect())
                    .unwrap_or_default();
                let slot = &mut e.slots[k];
                ui.horizontal(|ui| {
                    let l = ui.label(format!("Classifier {}", k + 1));
                    ui.add(egui::TextEdit::singleline(&mut slot.classifier).desired_width(120.0)).labelled_by(l.id);
                });
                if ui.button(format!("Open classifier {}…", k + 1)).clicked() {
                    ctx.commands.push(Command::OpenDialog(DialogKind::Classifier(k)));
                }
                egui::ComboBox::from_label(format!("Method {}", k + 1)).selected_text(slot.method.clone()).show_ui(
                    ui,
                    |ui| {
                        for m in METHODS {
                            ui.selectable_value(&mut slot.method, m.to_string(), m);
                        }
                    },
                );
                let shown = if slot.layer.is_empty() { "default".to_string() } else { slot.layer.clone() };
                egui::ComboBox::from_label(format!("Layer {}", k + 1)).selected_text(shown).show_ui(ui, |ui| {
                    ui.selectable_value(&mut slot.layer, String::new(), "default");
                    for l in &layers {
                        let name = l.split(' ').next().unwrap_or_default().to_string();
                        ui.selectable_value(&mut slot.layer, name, l);
                    }
                });
                let mut top1 = slot.class.is_none();
                ui.horizontal(|ui| {
                    ui.checkbox(&mut top1, "top-1 class");
                    if !top1 {
                        let mut c = slot.class.unwrap_or(0);
                        ui.add(egui::DragValue::new(&mut c).range(0..=999).prefix("class "));
                        slot.class = Some(c);
                    }
                });
                if top1 {
                    slot.class = None;
                }
            }
        });
    }

    /// The explanation columns (central panel, right of the image).
    pub fn view_ui(&mut self, ui: &mut egui::Ui, side: f32, ctx: &PaneCtx<'_>) {
        let Some(results) = &self.explained else {
            ui.spinner();
            return;
        };
        let alpha = ctx.state.explain.alpha;
        ui.horizontal_top(|ui| {
            for (k, r) in results.iter().enumerate() {
                ui.vertical(|ui| {
                    let method = &ctx.state.explain.slots[k.min(1)].method;
                    ui.strong(format!("{:?} · {method} · {}", r.arch, r.layer));
                    let (rect, _) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
                    self.rects[k.min(1)] = rect;
                    if ctx.gpu {
                        let (_, max) = crate::explain::cam::blend(&r.heat.image, &r.heat.map, alpha);
                        let cb = crate::ui::gpu_heatmap::HeatmapCallback {
                            input: r.heat.clone(),
                            version: self.version,
                            slot: k,
                            alpha,
                            max,
                        };
                        ui.painter().add(eframe::egui_wgpu::Callback::new_paint_callback(rect, cb));
                    } else if let Some(tex) = self.textures.get(k) {
                        paint_texture(ui, tex, rect);
                    }
                    for (i, (c, name, p)) in r.top5.iter().enumerate() {
                        let mark = if *c == r.target { "  (CAM target)" } else { "" };
                        ui.label(format!("{}. {name} ({c}) {:.1}%{mark}", i + 1, 100.0 * p));
                    }
                });
            }
        });
    }
}
