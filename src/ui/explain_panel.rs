//! The Explain pane: one or two classifiers explain the frame on screen (or an image file) with
//! a CAM each, with their top-5 labels and a layer picker. It follows the sliders: every new
//! frame is explained again on a worker (newest wins).

use std::sync::Arc;

use super::app::{DialogKind, StudioApp};
use super::explain_mode::ExplainRequest;

const METHODS: [&str; 5] = ["gradcam", "gradcam++", "hirescam", "layercam", "eigencam"];

impl StudioApp {
    /// The request for the current frame and settings, if the pane is on and an image exists.
    pub(super) fn explain_request(&self) -> Option<ExplainRequest> {
        let e = &self.state.explain;
        if !e.enabled {
            return None;
        }
        let image = match &e.image_file {
            Some(p) => self.explain_file.as_ref().filter(|(q, _)| q == p).map(|(_, i)| i.clone())?,
            None => Arc::new(self.shown.as_ref()?.images.first()?.clone()),
        };
        let n = if e.two { 2 } else { 1 };
        Some(ExplainRequest { image, slots: e.slots[..n].to_vec() })
    }

    pub(super) fn explain_controls_ui(&mut self, ui: &mut egui::Ui) {
        egui::CollapsingHeader::new("Explain").default_open(self.state.explain.enabled).show(ui, |ui| {
            ui.checkbox(&mut self.state.explain.enabled, "Explain the image (CAM)");
            ui.checkbox(&mut self.state.explain.two, "Two classifiers side by side");
            ui.add(egui::Slider::new(&mut self.state.explain.alpha, 0.0..=1.0).text("Heatmap weight"));
            ui.horizontal(|ui| {
                match &self.state.explain.image_file {
                    Some(p) => {
                        let name =
                            std::path::Path::new(p).file_name().map_or(p.clone(), |s| s.to_string_lossy().into());
                        ui.label(format!("image: {name}"));
                        if ui.button("Use the generated image").clicked() {
                            self.state.explain.image_file = None;
                        }
                    }
                    None => {
                        ui.label("image: the generated frame");
                    }
                }
                if ui.button("Open image…").clicked() {
                    self.open_dialog(DialogKind::ImageFile);
                }
            });
            let n = if self.state.explain.two { 2 } else { 1 };
            for k in 0..n {
                ui.separator();
                let layers: Vec<String> = self
                    .explained
                    .as_ref()
                    .and_then(|v| v.get(k))
                    .map(|x| x.layers.iter().map(|(n, s)| format!("{n} {s:?}")).collect())
                    .unwrap_or_default();
                let slot = &mut self.state.explain.slots[k];
                ui.horizontal(|ui| {
                    let l = ui.label(format!("Classifier {}", k + 1));
                    ui.add(egui::TextEdit::singleline(&mut slot.classifier).desired_width(120.0)).labelled_by(l.id);
                });
                if ui.button(format!("Open classifier {}…", k + 1)).clicked() {
                    self.open_dialog(DialogKind::Classifier(k));
                }
                let slot = &mut self.state.explain.slots[k];
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
    pub(super) fn explain_view_ui(&mut self, ui: &mut egui::Ui, side: f32) {
        let Some(results) = &self.explained else {
            ui.spinner();
            return;
        };
        ui.horizontal_top(|ui| {
            for (k, r) in results.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.strong(format!("{:?} · {} · {}", r.arch, self.state.explain.slots[k].method, r.layer));
                    let (rect, _) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
                    self.explain_rects[k.min(1)] = rect;
                    let alpha = self.state.explain.alpha;
                    if self.gpu_compose {
                        let (_, max) = crate::explain::cam::blend(&r.heat.image, &r.heat.map, alpha);
                        let cb = super::gpu_heatmap::HeatmapCallback {
                            input: r.heat.clone(),
                            version: self.explain_version,
                            slot: k,
                            alpha,
                            max,
                        };
                        ui.painter().add(eframe::egui_wgpu::Callback::new_paint_callback(rect, cb));
                    } else if let Some(tex) = self.explain_textures.get(k) {
                        ui.painter().image(
                            tex.id(),
                            rect,
                            egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                            egui::Color32::WHITE,
                        );
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
