//! The window's panes. Each owns its worker thread, textures and transient state; persisted
//! settings live in [`super::StudioState`]. Panes read and edit their part of the state and
//! push [`super::command::Command`]s; they never reach into another pane.
//!
//! | pane | shows |
//! |---|---|
//! | [`steer`] | generator controls, the frame, components and sliders (BigGAN-deep) |
//! | [`counterfactual`] | CGN class pickers, the parts and composite, export and sheets |
//! | [`explain`] | one or two classifiers' CAMs and top-5 beside the frame |
//! | [`sweep`] | GenInt's strategy sweep: settings, curves |
//! | [`jobs`] | every background job: progress, rate, ETA, cancel, log, metric curves |
//! | [`perf`] | render and frame times, device, model size |

pub mod counterfactual;
pub mod explain;
pub mod gen_train_form;
pub mod job_preview;
pub mod jobs;
pub mod launch;
pub mod perf;
pub mod steer;
pub mod sweep;
pub mod train_form;

use super::command::Commands;
use super::StudioState;
use crate::jobs::Board;

/// What a pane may touch during the UI pass.
pub struct PaneCtx<'a> {
    pub state: &'a mut StudioState,
    pub commands: &'a mut Commands,
    pub board: &'a Board,
    /// Whether the wgpu paint callbacks (compositing, heatmap) are installed.
    pub gpu: bool,
}

/// Draws an image texture into `rect` (full UV).
/// A value for a form's command-line preview, or its placeholder while the field is empty (a
/// preview that reads `--model --classes` hides which value is missing).
pub(crate) fn or_placeholder<'a>(value: &'a str, name: &'a str) -> std::borrow::Cow<'a, str> {
    match value.trim() {
        "" => format!("<{name}>").into(),
        v => v.into(),
    }
}

pub(crate) fn paint_texture(ui: &egui::Ui, tex: &egui::TextureHandle, rect: egui::Rect) {
    ui.painter().image(
        tex.id(),
        rect,
        egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
        egui::Color32::WHITE,
    );
}

/// A progress bar with cancel for the job `name` if it is on the board and active; returns
/// whether it is active.
pub(crate) fn job_progress_ui(ui: &mut egui::Ui, ctx: &mut PaneCtx<'_>, name: &str, cancel_label: &str) -> bool {
    let Some(e) = ctx.board.get(name).filter(|e| e.phase.is_active()) else { return false };
    let p = e.control.progress();
    ui.horizontal(|ui| {
        ui.add(egui::ProgressBar::new(p.fraction()).show_percentage().desired_width(160.0));
        if ui.button(cancel_label).clicked() {
            ctx.commands.push(super::command::Command::Cancel(name.to_string()));
        }
    });
    let status = e.control.status();
    if !status.is_empty() || p.computed > 0 {
        ui.small(format!("{:.1} {}/s  {status}", p.rate_per_sec(), e.spec.unit));
    }
    true
}
