//! Read-only hooks for the kittest suite (feature `testing`): what is on screen, without
//! reading the GPU back, and where panes drew their images.

use std::sync::Arc;

use super::app::StudioApp;
use crate::counterfactual::CgnRendered;
use crate::explain::pipeline::Explained;
use crate::explain::sweep::SweepPoint;
use crate::steer::render::Rendered;
use crate::steer::Components;

impl StudioApp {
    /// FNV-1a of the steering frame's pixels on screen.
    pub fn shown_image_hash(&self) -> Option<u64> {
        self.panes.steer.shown_hash()
    }

    /// The steering frame on screen.
    pub fn shown(&self) -> Option<&Rendered> {
        self.panes.steer.frame()
    }

    pub fn components(&self) -> Option<&Arc<Components>> {
        self.panes.steer.components()
    }

    /// Whether any job is queued or running on the board.
    pub fn job_running(&self) -> bool {
        self.board.busy()
    }

    pub fn explained(&self) -> Option<&[Explained]> {
        self.panes.explain.explained()
    }

    pub fn explain_busy(&self) -> bool {
        self.panes.explain.busy()
    }

    /// Where the Explain columns were drawn last frame.
    pub fn explain_rects(&self) -> [egui::Rect; 2] {
        self.panes.explain.rects
    }

    pub fn sweep_points(&self) -> Option<&[SweepPoint]> {
        self.panes.sweep.points()
    }

    pub fn sweep_running(&self) -> bool {
        self.panes.sweep.running(&self.board)
    }

    pub fn cgn_shown(&self) -> Option<&CgnRendered> {
        self.panes.counterfactual.shown()
    }

    /// FNV-1a of the counterfactual composite (CPU path of the same pixels).
    pub fn cgn_composite_hash(&self) -> Option<u64> {
        let r = self.panes.counterfactual.shown()?;
        Some(crate::imageio::fnv1a(&r.parts.render(crate::composite::View::Composite, self.state.cgn.mask).pixels))
    }

    /// Where each counterfactual view was drawn last frame.
    pub fn cgn_view_rects(&self) -> [egui::Rect; 4] {
        self.panes.counterfactual.view_rects
    }

    pub fn export_running(&self) -> bool {
        self.panes.counterfactual.export_running(&self.board)
    }

    /// Whether the views are composited on the GPU.
    pub fn gpu_compose(&self) -> bool {
        self.gpu_enabled()
    }
}
