//! The steering pane (BigGAN-deep): the generator controls (left), the frame (centre), the
//! components and their sliders (right). Frames render on a worker, newest request wins; the
//! previous frame stays on screen until the next arrives.

mod controls;
mod sliders;

use std::path::PathBuf;
use std::sync::Arc;

use super::PaneCtx;
use crate::jobs::{Board, Outcome};
use crate::steer::render::{ModelInfo, RenderRequest, Rendered, Renderer};
use crate::steer::Components;
use crate::ui::command::{Command, Commands};
use crate::ui::job_requests::JobRequest;
use crate::ui::worker::Worker;
use crate::ui::StudioState;

/// The steering render's error prefix (a later frame clears only this error).
const RENDER_FAILED: &str = "render failed";

/// The steering pane.
pub struct SteerPane {
    worker: Option<Worker<RenderRequest, Rendered>>,
    last_request: Option<RenderRequest>,
    shown_id: u64,
    texture: Option<egui::TextureHandle>,
    shown: Option<Rendered>,
    /// FNV-1a of the pixels on screen (tests compare frames without reading the GPU).
    shown_hash: Option<u64>,
    info: Option<ModelInfo>,
    components: Option<Arc<Components>>,
    /// Board names of the jobs whose results this pane takes (PCA, component loading).
    pca_job: Option<String>,
    load_job: Option<String>,
    new_direction_name: String,
    device: String,
    cpu: bool,
}

impl SteerPane {
    /// Starts the render worker; a worker that cannot start is reported, not a panic.
    pub fn new(ctx: &egui::Context, cpu: bool, commands: &mut Commands) -> Self {
        let device = crate::device::select(cpu);
        let device_name = crate::device::describe(&device).to_string();
        let mut renderer = Renderer::new(device);
        let repaint = ctx.clone();
        let worker =
            match Worker::spawn("intervene-render", move |req| renderer.render(req), move || repaint.request_repaint())
            {
                Ok(w) => Some(w),
                Err(e) => {
                    commands.error("cannot start the render thread", e);
                    None
                }
            };
        Self {
            worker,
            last_request: None,
            shown_id: 0,
            texture: None,
            shown: None,
            shown_hash: None,
            info: None,
            components: None,
            pca_job: None,
            load_job: None,
            new_direction_name: String::new(),
            device: device_name,
            cpu,
        }
    }

    pub fn frame(&self) -> Option<&Rendered> {
        self.shown.as_ref()
    }

    pub fn info(&self) -> Option<&ModelInfo> {
        self.info.as_ref()
    }

    pub fn components(&self) -> Option<&Arc<Components>> {
        self.components.as_ref()
    }

    pub fn shown_hash(&self) -> Option<u64> {
        self.shown_hash
    }

    pub fn device_name(&self) -> &str {
        &self.device
    }

    /// Whether a frame or a job of this pane is in flight.
    pub fn busy(&self, board: &Board) -> bool {
        self.worker.as_ref().is_some_and(|w| w.busy(self.shown_id))
            || [&self.pca_job, &self.load_job].iter().any(|j| j.as_deref().is_some_and(|n| board.is_active(n)))
    }

    /// Loads a component file (as a job).
    pub fn load_components(&mut self, path: PathBuf, commands: &mut Commands) {
        let req = JobRequest::LoadComponents { path };
        self.load_job = Some(req.name());
        commands.push(Command::Start(req));
    }

    fn request(&self, state: &StudioState) -> RenderRequest {
        let (nc, nl) = match (&self.components, &self.info) {
            (Some(c), Some(i)) => (c.num_components(), i.num_latents),
            _ => (0, 1),
        };
        RenderRequest {
            model: state.model.clone(),
            class: state.class,
            seed: state.seed,
            batch: state.batch.clamp(1, 9),
            truncation: state.truncation,
            components: self.components.clone(),
            edits: state.edits(nc, nl),
            mode: state.mode(),
        }
    }

    /// Takes finished frames and jobs, and posts a new request when the settings changed.
    /// Returns the render time of a new frame (for the performance pane).
    pub fn logic(
        &mut self,
        ctx: &egui::Context,
        state: &mut StudioState,
        board: &mut Board,
        commands: &mut Commands,
    ) -> Option<f64> {
        let mut render_ms = None;
        if let Some(done) = self.worker.as_ref().and_then(|w| w.poll()) {
            self.shown_id = done.id;
            render_ms = Some(done.elapsed.as_secs_f64() * 1e3);
            match done.result {
                Ok(r) => {
                    let img = crate::imageio::grid(&r.images);
                    let color = egui::ColorImage::from_rgb([img.width, img.height], &img.pixels);
                    match &mut self.texture {
                        Some(t) => t.set(color, egui::TextureOptions::NEAREST),
                        None => {
                            self.texture = Some(ctx.load_texture("generated", color, egui::TextureOptions::NEAREST))
                        }
                    }
                    self.shown_hash = Some(crate::imageio::fnv1a(&img.pixels));
                    if self.info.as_ref().is_none_or(|i| i.query != r.info.query) {
                        state.push_recent(&r.info.query);
                    }
                    self.info = Some(r.info.clone());
                    self.shown = Some(r);
                    commands.push(Command::ClearError { what: RENDER_FAILED });
                }
                Err(e) => match e.downcast::<crate::steer::render::ClassOutOfRange>() {
                    // A model with fewer classes than the picked one: take its facts, move to its
                    // default class (or its last) and render again.
                    Ok(o) => {
                        state.class = crate::bundled::find(&o.info.query)
                            .and_then(|e| e.default_class)
                            .unwrap_or(o.info.num_classes - 1)
                            .min(o.info.num_classes - 1);
                        commands.push(Command::Status(format!(
                            "{}: class {} does not exist, showing class {}",
                            o.info.query, o.class, state.class
                        )));
                        self.info = Some(o.info);
                    }
                    Err(e) => commands.error(RENDER_FAILED, format!("{e:#}")),
                },
            }
        }
        self.take_jobs(state, board, commands);
        let req = self.request(state);
        if self.last_request.as_ref() != Some(&req) {
            if let Some(w) = &mut self.worker {
                w.request(req.clone());
            }
            self.last_request = Some(req);
        }
        render_ms
    }

    fn take_jobs(&mut self, state: &mut StudioState, board: &mut Board, commands: &mut Commands) {
        for slot in [&mut self.pca_job, &mut self.load_job] {
            let Some(name) = slot.clone() else { continue };
            if board.is_active(&name) {
                continue;
            }
            *slot = None;
            let Some(out) = board.take::<Arc<Components>>(&name) else { continue };
            match out {
                Outcome::Done(c) => {
                    state.components = Some(c.source.clone());
                    commands.status(format!("loaded {} components from {}", c.num_components(), c.source));
                    self.components = Some(c);
                }
                Outcome::Cancelled => commands.status(format!("{name} cancelled")),
                Outcome::Failed(e) => {
                    if name.starts_with("load") {
                        state.components = None;
                    }
                    commands.error(format!("{name} failed"), format!("{e:#}"));
                }
            }
        }
    }

    /// The frame (or a spinner) in a `side`-sized square.
    pub fn image_ui(&self, ui: &mut egui::Ui, side: f32, has_error: bool) {
        if let Some(tex) = &self.texture {
            ui.add(egui::Image::new(tex).fit_to_exact_size(egui::vec2(side, side)));
        } else if !has_error {
            ui.spinner();
        }
    }

    /// Starts GANSpace's PCA for the open model and class (or loads it from the cache).
    pub fn start_pca(&mut self, ctx: &mut PaneCtx<'_>) {
        let state = &*ctx.state;
        let max = crate::ui::state::MAX_SLIDERS;
        let comps = max.min(self.info.as_ref().map_or(max, |i| i.z_dim));
        let n = state.pca_samples.max(comps + 1);
        let out = crate::steer::pca_job::cache_path(&state.model, state.class, comps, n);
        if out.is_file() {
            self.load_components(out, ctx.commands);
            return;
        }
        let cfg = crate::steer::pca_job::default_config(n, comps, state.truncation, 0);
        let req = JobRequest::Pca { model: state.model.clone(), class: state.class, cfg, out, cpu: self.cpu };
        self.pca_job = Some(req.name());
        ctx.commands.push(Command::Start(req));
    }
}
