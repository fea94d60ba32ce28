//! The performance pane: render time per frame, UI frame rate, their history, device, model
//! size, and how much of the generator the steering cache let us skip.

use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::app::StudioApp;

impl StudioApp {
    pub(super) fn perf_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let last = self.render_ms.back().copied();
            let fps = {
                let n = self.frame_ms.len().min(60);
                let sum: f64 = self.frame_ms.iter().rev().take(n).sum();
                if n > 0 && sum > 0.0 {
                    1e3 * n as f64 / sum
                } else {
                    0.0
                }
            };
            ui.label(format!("Device: {}", self.device_name));
            ui.separator();
            ui.label(match last {
                Some(ms) => format!("Render: {ms:.1} ms"),
                None => "Render: –".into(),
            });
            ui.separator();
            ui.label(format!("UI: {fps:.0} FPS"));
            if let Some(i) = &self.info {
                ui.separator();
                ui.label(format!(
                    "Model: {:.2} M params ({:.1} MB f32)",
                    i.parameters as f64 / 1e6,
                    i.parameters as f64 * 4.0 / 1e6
                ));
            }
            if let Some(r) = &self.shown {
                ui.separator();
                ui.label(match r.resume_stage {
                    Some(0) | None => format!("full forward ({} stages)", r.num_stages),
                    Some(s) if s > r.num_stages => "served from cache".to_string(),
                    Some(s) => format!("recomputed stages {s}..{} of {}", r.num_stages, r.num_stages),
                });
            }
        });
        let render: PlotPoints = self.render_ms.iter().enumerate().map(|(i, v)| [i as f64, *v]).collect();
        let frames: PlotPoints = self.frame_ms.iter().enumerate().map(|(i, v)| [i as f64, *v]).collect();
        Plot::new("frame times")
            .legend(Legend::default())
            .y_axis_label("ms")
            .allow_scroll(false)
            .allow_drag(false)
            .show(ui, |p| {
                p.line(Line::new("render (ms)", render));
                p.line(Line::new("UI frame (ms)", frames));
            });
        if !self.log.is_empty() {
            egui::CollapsingHeader::new(format!("Log ({})", self.log.len())).show(ui, |ui| {
                for l in self.log.iter().rev() {
                    ui.label(l);
                }
            });
        }
    }
}
