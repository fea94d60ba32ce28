//! The performance pane: render time per frame, UI frame rate, their history, device, model
//! size, and how much of the generator the steering cache let us skip.

use std::collections::VecDeque;
use std::time::Instant;

use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::steer::render::{ModelInfo, Rendered};

/// How many frame / render times the plot keeps.
const HISTORY: usize = 300;

/// The performance pane.
#[derive(Default)]
pub struct PerfPane {
    render_ms: VecDeque<f64>,
    frame_ms: VecDeque<f64>,
    last_frame: Option<Instant>,
}

fn push(q: &mut VecDeque<f64>, v: f64) {
    q.push_back(v);
    while q.len() > HISTORY {
        q.pop_front();
    }
}

impl PerfPane {
    /// Called once per UI frame.
    pub fn frame_tick(&mut self) {
        let now = Instant::now();
        if let Some(t) = self.last_frame.replace(now) {
            push(&mut self.frame_ms, (now - t).as_secs_f64() * 1e3);
        }
    }

    /// A network result arrived after `ms`.
    pub fn render_done(&mut self, ms: f64) {
        push(&mut self.render_ms, ms);
    }

    pub fn ui(&self, ui: &mut egui::Ui, device: &str, info: Option<&ModelInfo>, shown: Option<&Rendered>) {
        ui.horizontal(|ui| {
            let fps = {
                let n = self.frame_ms.len().min(60);
                let sum: f64 = self.frame_ms.iter().rev().take(n).sum();
                if n > 0 && sum > 0.0 {
                    1e3 * n as f64 / sum
                } else {
                    0.0
                }
            };
            ui.label(format!("Device: {device}"));
            ui.separator();
            ui.label(match self.render_ms.back() {
                Some(ms) => format!("Render: {ms:.1} ms"),
                None => "Render: –".into(),
            });
            ui.separator();
            ui.label(format!("UI: {fps:.0} FPS"));
            if let Some(i) = info {
                ui.separator();
                ui.label(format!(
                    "Model: {:.2} M params ({:.1} MB f32)",
                    i.parameters as f64 / 1e6,
                    i.parameters as f64 * 4.0 / 1e6
                ));
            }
            if let Some(r) = shown {
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
    }
}
