//! The studio application: persisted settings, the render worker, background jobs, and the
//! panels (generator controls left, steering right, performance below, the image centre).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poll_promise::Promise;

use super::cgn_mode::{CgnRendered, CgnRenderer, CgnRequest, ExportJob};
use super::explain_mode::{ExplainRenderer, ExplainRequest, Explained};
use super::pca_job::{self, PcaJob};
use super::render::{ModelInfo, RenderRequest, Rendered, Renderer};
pub use super::state::{SavedDirection, StudioState, MAX_SLIDERS};
use super::worker::Worker;
use super::GuiArgs;
use crate::steer::Components;

/// How many frame / render times the performance plot keeps.
const HISTORY: usize = 300;

/// The runtime application.
pub struct StudioApp {
    pub state: StudioState,
    pub(super) cpu: bool,
    worker: Worker<RenderRequest, Rendered>,
    last_request: Option<RenderRequest>,
    shown_id: u64,
    texture: Option<egui::TextureHandle>,
    /// The frame on screen (kept for captures).
    pub(super) shown: Option<Rendered>,
    error: Option<String>,
    pub(super) log: VecDeque<String>,
    pub(super) render_ms: VecDeque<f64>,
    pub(super) frame_ms: VecDeque<f64>,
    pub(super) last_frame: Option<Instant>,
    pub(super) info: Option<ModelInfo>,
    pub(super) device_name: &'static str,
    /// FNV-1a hash of the pixels on screen (tests compare frames without reading the GPU).
    shown_hash: Option<u64>,
    pub(super) components: Option<Arc<Components>>,
    pub(super) components_loading: Option<Promise<Result<Arc<Components>, String>>>,
    pub(super) pca: Option<PcaJob>,
    pub(super) dialog: Option<Promise<Option<(DialogKind, PathBuf)>>>,
    pub(super) new_direction_name: String,
    pub(super) screenshot_rx: Option<std::sync::mpsc::Receiver<Result<PathBuf, String>>>,
    pub(super) status: Option<String>,
    pub(super) cgn_worker: Worker<CgnRequest, CgnRendered>,
    cgn_last_request: Option<CgnRequest>,
    cgn_shown_id: u64,
    pub(super) cgn_shown: Option<CgnRendered>,
    /// Bumped with every new set of parts (the GPU re-uploads its textures then).
    pub(super) cgn_version: u64,
    pub(super) gpu_compose: bool,
    pub(super) cpu_textures: Vec<egui::TextureHandle>,
    /// Where each counterfactual view was drawn last frame (mask, foreground, background, composite).
    pub cgn_view_rects: [egui::Rect; 4],
    pub(super) export_job: Option<ExportJob>,
    pub(super) sheet: Option<Promise<Result<PathBuf, String>>>,
    explain_worker: Worker<ExplainRequest, Vec<Explained>>,
    explain_last: Option<ExplainRequest>,
    explain_shown_id: u64,
    pub(super) explained: Option<Vec<Explained>>,
    pub(super) explain_textures: Vec<egui::TextureHandle>,
    /// Bumped with every new explanation (the GPU overlay re-uploads then).
    pub(super) explain_version: u64,
    /// Where the Explain columns were drawn last frame.
    pub explain_rects: [egui::Rect; 2],
    pub(super) sweep: Option<super::sweep_panel::SweepJob>,
    pub(super) sweep_points: Option<Vec<crate::explain::sweep::SweepPoint>>,
    /// The image file being explained, decoded (path, pixels).
    pub(super) explain_file: Option<(String, Arc<crate::imageio::RgbImage>)>,
}

/// What a file dialog was opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogKind {
    ModelFolder,
    ModelFile,
    Components,
    CaptureDir,
    /// A classifier weights file for Explain column k.
    Classifier(usize),
    /// An image to explain.
    ImageFile,
    /// Real images for the strategy sweep.
    RealDir,
}

impl StudioApp {
    pub fn new(cc: &eframe::CreationContext<'_>, args: GuiArgs) -> Self {
        let mut state: StudioState = cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
        if let Some(m) = args.model {
            state.model = m;
        }
        if let Some(c) = args.components {
            state.components = Some(c);
        }
        if args.explain {
            state.explain.enabled = true;
        }
        if let Some(c) = args.cgn {
            state.cgn_mode = true;
            if !c.is_empty() {
                state.cgn.model = c;
            }
        }
        Self::with_creation(cc, state, args.cpu)
    }

    /// Builds the app for a window: installs the GPU compositing pipeline when wgpu runs it.
    pub fn with_creation(cc: &eframe::CreationContext<'_>, state: StudioState, cpu: bool) -> Self {
        let mut app = Self::with_state(cc.egui_ctx.clone(), state, cpu);
        if let Some(rs) = &cc.wgpu_render_state {
            super::gpu_compose::install(rs);
            super::gpu_heatmap::install(rs);
            app.gpu_compose = true;
        }
        app
    }

    /// Builds the app around a state (tests use this directly).
    pub fn with_state(ctx: egui::Context, mut state: StudioState, cpu: bool) -> Self {
        state.sliders.resize(MAX_SLIDERS, 0.0);
        let device = crate::device::select(cpu);
        let device_name = crate::device::describe(&device);
        let mut renderer = Renderer::new(device);
        let ctx2 = ctx.clone();
        let notify = move || ctx.request_repaint();
        let worker = Worker::spawn("intervene-render", move |req| renderer.render(req), notify)
            .unwrap_or_else(|e| panic!("cannot start the render thread: {e}"));
        let ctx3 = ctx2.clone();
        let mut explain_renderer = ExplainRenderer::default();
        let explain_worker =
            Worker::spawn("intervene-explain", move |req| explain_renderer.render(req), move || ctx3.request_repaint())
                .unwrap_or_else(|e| panic!("cannot start the explain thread: {e}"));
        let mut cgn_renderer = CgnRenderer::default();
        let cgn_worker =
            Worker::spawn("intervene-cgn", move |req| cgn_renderer.render(req), move || ctx2.request_repaint())
                .unwrap_or_else(|e| panic!("cannot start the CGN render thread: {e}"));
        let components_loading = state.components.clone().map(|p| pca_job::load(PathBuf::from(p)));
        Self {
            state,
            cpu,
            worker,
            last_request: None,
            shown_id: 0,
            texture: None,
            shown: None,
            error: None,
            log: VecDeque::new(),
            render_ms: VecDeque::new(),
            frame_ms: VecDeque::new(),
            last_frame: None,
            info: None,
            device_name,
            shown_hash: None,
            components: None,
            components_loading,
            pca: None,
            dialog: None,
            new_direction_name: String::new(),
            screenshot_rx: None,
            status: None,
            cgn_worker,
            cgn_last_request: None,
            cgn_shown_id: 0,
            cgn_shown: None,
            cgn_version: 0,
            gpu_compose: false,
            cpu_textures: Vec::new(),
            cgn_view_rects: [egui::Rect::NOTHING; 4],
            export_job: None,
            sheet: None,
            explain_worker,
            explain_last: None,
            explain_shown_id: 0,
            explained: None,
            explain_textures: Vec::new(),
            explain_version: 0,
            explain_rects: [egui::Rect::NOTHING; 2],
            explain_file: None,
            sweep: None,
            sweep_points: None,
        }
    }

    /// The explanations on screen (one per classifier column).
    pub fn explained(&self) -> Option<&[Explained]> {
        self.explained.as_deref()
    }

    /// The sweep's points once it finished.
    pub fn sweep_points(&self) -> Option<&[crate::explain::sweep::SweepPoint]> {
        self.sweep_points.as_deref()
    }

    /// Whether a sweep runs.
    pub fn sweep_running(&self) -> bool {
        self.sweep.is_some()
    }

    /// Whether an explanation is being computed.
    pub fn explain_busy(&self) -> bool {
        self.explain_worker.busy(self.explain_shown_id)
    }

    /// Hash of the counterfactual composite on screen (CPU path of the same pixels).
    pub fn cgn_composite_hash(&self) -> Option<u64> {
        let r = self.cgn_shown.as_ref()?;
        Some(super::fnv1a(&r.parts.render(crate::composite::View::Composite, self.state.cgn.mask).pixels))
    }

    /// The counterfactual parts on screen.
    pub fn cgn_shown(&self) -> Option<&CgnRendered> {
        self.cgn_shown.as_ref()
    }

    /// Whether the views are composited on the GPU (wgpu) rather than from CPU textures.
    pub fn gpu_compose(&self) -> bool {
        self.gpu_compose
    }

    /// Whether the counterfactual export job runs.
    pub fn export_running(&self) -> bool {
        self.export_job.is_some()
    }

    /// Hash of the image on screen, if one is shown.
    pub fn shown_image_hash(&self) -> Option<u64> {
        self.shown_hash
    }

    /// The error on screen, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The loaded components, if any.
    pub fn components(&self) -> Option<&Arc<Components>> {
        self.components.as_ref()
    }

    /// Whether a background job (PCA, component loading) is running.
    pub fn job_running(&self) -> bool {
        self.pca.is_some() || self.components_loading.is_some()
    }

    /// The last status line (e.g. where a capture went).
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The frame on screen.
    pub fn shown(&self) -> Option<&Rendered> {
        self.shown.as_ref()
    }

    pub(super) fn report_error(&mut self, what: &str, e: impl std::fmt::Display) {
        let msg = format!("{what}: {e}");
        tracing::error!("{msg}");
        self.log.push_back(msg.clone());
        while self.log.len() > 50 {
            self.log.pop_front();
        }
        self.error = Some(msg);
    }

    fn request(&self) -> RenderRequest {
        let (nc, nl) = match (&self.components, &self.info) {
            (Some(c), Some(i)) => (c.num_components(), i.num_latents),
            _ => (0, 1),
        };
        RenderRequest {
            model: self.state.model.clone(),
            class: self.state.class,
            seed: self.state.seed,
            batch: self.state.batch.clamp(1, 9),
            truncation: self.state.truncation,
            components: self.components.clone(),
            edits: self.state.edits(nc, nl),
            mode: self.state.mode(),
        }
    }

    /// Receives results and finished jobs, and posts a request when the settings changed.
    pub(super) fn logic_step(&mut self, ctx: &egui::Context) {
        let now = Instant::now();
        if let Some(t) = self.last_frame.replace(now) {
            push(&mut self.frame_ms, (now - t).as_secs_f64() * 1e3);
        }
        if let Some(done) = self.worker.poll() {
            self.shown_id = done.id;
            push(&mut self.render_ms, done.elapsed.as_secs_f64() * 1e3);
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
                    self.shown_hash = Some(super::fnv1a(&img.pixels));
                    if self.info.as_ref().is_none_or(|i| i.query != r.info.query) {
                        let q = r.info.query.clone();
                        self.state.push_recent(&q);
                    }
                    self.info = Some(r.info.clone());
                    self.shown = Some(r);
                    self.error = None;
                }
                Err(e) => self.report_error("render failed", format!("{e:#}")),
            }
        }
        self.poll_jobs();
        self.poll_cgn_jobs();
        self.poll_sweep();
        self.cpu_textures.clear();
        if self.state.cgn_mode {
            if let Some(done) = self.cgn_worker.poll() {
                self.cgn_shown_id = done.id;
                push(&mut self.render_ms, done.elapsed.as_secs_f64() * 1e3);
                match done.result {
                    Ok(r) => {
                        self.cgn_version += 1;
                        self.cgn_shown = Some(r);
                        self.error = None;
                    }
                    Err(e) => self.report_error("CGN render failed", format!("{e:#}")),
                }
            }
            let req = self.cgn_request();
            if self.cgn_last_request.as_ref() != Some(&req) {
                self.cgn_worker.request(req.clone());
                self.cgn_last_request = Some(req);
            }
        } else {
            let req = self.request();
            if self.last_request.as_ref() != Some(&req) {
                self.worker.request(req.clone());
                self.last_request = Some(req);
            }
            self.explain_step(ctx);
        }
        self.handle_dropped_files(ctx);
        self.handle_screenshot();
    }

    fn explain_step(&mut self, ctx: &egui::Context) {
        // Decode an image file to explain (small, once per path).
        if let Some(p) = self.state.explain.image_file.clone() {
            if self.explain_file.as_ref().is_none_or(|(q, _)| *q != p) {
                match image::open(&p) {
                    Ok(img) => {
                        let rgb = img.to_rgb8();
                        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
                        let pixels = rgb.into_raw();
                        self.explain_file =
                            Some((p, Arc::new(crate::imageio::RgbImage { width: w, height: h, pixels })));
                    }
                    Err(e) => {
                        self.state.explain.image_file = None;
                        self.report_error(&format!("cannot open {p}"), e);
                    }
                }
            }
        }
        if let Some(done) = self.explain_worker.poll() {
            self.explain_shown_id = done.id;
            match done.result {
                Ok(v) => {
                    self.explain_textures = v
                        .iter()
                        .enumerate()
                        .map(|(k, x)| {
                            let c = egui::ColorImage::from_rgb([x.overlay.width, x.overlay.height], &x.overlay.pixels);
                            ctx.load_texture(format!("explain-{k}"), c, egui::TextureOptions::LINEAR)
                        })
                        .collect();
                    self.explained = Some(v);
                    self.explain_version += 1;
                }
                Err(e) => self.report_error("explain failed", format!("{e:#}")),
            }
        }
        if let Some(req) = self.explain_request() {
            if self.explain_last.as_ref() != Some(&req) {
                self.explain_worker.request(req.clone());
                self.explain_last = Some(req);
            }
        }
    }

    fn poll_jobs(&mut self) {
        if let Some(p) = self.components_loading.take() {
            match p.try_take() {
                Ok(Ok(c)) => {
                    self.state.components = Some(c.source.clone());
                    self.status = Some(format!("loaded {} components from {}", c.num_components(), c.source));
                    self.components = Some(c);
                }
                Ok(Err(e)) => {
                    self.state.components = None;
                    self.report_error("cannot load components", e);
                }
                Err(p) => self.components_loading = Some(p),
            }
        }
        if let Some(job) = self.pca.take_if(|j| j.result.ready().is_some()) {
            match job.result.block_and_take() {
                Ok((c, path)) => {
                    self.status = Some(format!("PCA done: {}", path.display()));
                    self.state.components = Some(path.display().to_string());
                    self.components = Some(c);
                }
                Err(e) if e == "cancelled" => self.status = Some("PCA cancelled".into()),
                Err(e) => self.report_error("PCA failed", e),
            }
        }
        if let Some(d) = self.dialog.take() {
            match d.try_take() {
                Ok(Some((kind, path))) => self.open_path(kind, path),
                Ok(None) => {}
                Err(d) => self.dialog = Some(d),
            }
        }
    }

    /// Acts on a path chosen in a dialog or dropped on the window.
    pub fn open_path(&mut self, kind: DialogKind, path: PathBuf) {
        match kind {
            DialogKind::ModelFolder | DialogKind::ModelFile => {
                self.state.model = path.display().to_string();
            }
            DialogKind::Components => self.components_loading = Some(pca_job::load(path)),
            DialogKind::CaptureDir => self.state.capture_dir = Some(path.display().to_string()),
            DialogKind::Classifier(k) => {
                if let Some(s) = self.state.explain.slots.get_mut(k) {
                    s.classifier = path.display().to_string();
                }
            }
            DialogKind::RealDir => self.state.sweep_real = Some(path.display().to_string()),
            DialogKind::ImageFile => {
                self.state.explain.enabled = true;
                self.state.explain.image_file = Some(path.display().to_string());
            }
        }
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        for p in dropped {
            let kind = match p.extension().and_then(|e| e.to_str()) {
                Some("npz") => DialogKind::Components,
                Some("png" | "jpg" | "jpeg" | "PNG" | "JPG" | "JPEG") => DialogKind::ImageFile,
                _ if p.is_dir() => DialogKind::ModelFolder,
                _ => DialogKind::ModelFile,
            };
            self.open_path(kind, p);
        }
    }

    fn handle_screenshot(&mut self) {
        let Some(rx) = &self.screenshot_rx else { return };
        match rx.try_recv() {
            Ok(Ok(path)) => self.status = Some(format!("saved window to {}", path.display())),
            Ok(Err(e)) => self.report_error("cannot save the window", e),
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {}
        }
        self.screenshot_rx = None;
    }

    /// Opens a native file dialog on a helper thread (rfd blocks).
    pub(super) fn open_dialog(&mut self, kind: DialogKind) {
        if self.dialog.is_some() {
            return;
        }
        self.dialog = Some(Promise::spawn_thread("intervene-dialog", move || {
            let d = rfd::FileDialog::new();
            let picked = match kind {
                DialogKind::ModelFolder => d.set_title("Open a BigGAN-deep folder").pick_folder(),
                DialogKind::ModelFile => d
                    .set_title("Open BigGAN-deep weights")
                    .add_filter("weights", &["bin", "pth", "pt", "safetensors"])
                    .pick_file(),
                DialogKind::Components => {
                    d.set_title("Open GANSpace components").add_filter("components", &["npz"]).pick_file()
                }
                DialogKind::CaptureDir => d.set_title("Folder for captures").pick_folder(),
                DialogKind::Classifier(_) => d
                    .set_title("Open classifier weights")
                    .add_filter("weights", &["pth", "pt", "bin", "safetensors"])
                    .pick_file(),
                DialogKind::RealDir => d.set_title("Folder of real images (or class subfolders)").pick_folder(),
                DialogKind::ImageFile => {
                    d.set_title("Open an image to explain").add_filter("images", &["png", "jpg", "jpeg"]).pick_file()
                }
            };
            picked.map(|p| (kind, p))
        }));
    }

    /// Saves the frame on screen (image/grid, z.npy, JSON with the regenerating command).
    pub fn capture(&mut self) {
        let Some(r) = &self.shown else {
            self.status = Some("nothing to capture yet".into());
            return;
        };
        let dir = self.state.capture_dir.clone().map(PathBuf::from).unwrap_or_else(super::capture::default_dir);
        let stem = super::capture::stem(&dir, r);
        match super::capture::save(r, &stem) {
            Ok(json) => self.status = Some(format!("captured {}", json.display())),
            Err(e) => self.report_error("capture failed", format!("{e:#}")),
        }
    }

    /// Asks the renderer for a screenshot of the whole window (saved when it arrives).
    pub(super) fn capture_window(&mut self, ctx: &egui::Context) {
        let dir = self.state.capture_dir.clone().map(PathBuf::from).unwrap_or_else(super::capture::default_dir);
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let path = dir.join(format!("window-{ms}.png"));
        let (tx, rx) = std::sync::mpsc::channel();
        self.screenshot_rx = Some(rx);
        let repaint = ctx.clone();
        ctx.request_screenshot(move |img| {
            let r = std::fs::create_dir_all(&dir)
                .map_err(anyhow::Error::from)
                .and_then(|()| super::capture::save_screenshot(&img, &path))
                .map(|()| path)
                .map_err(|e| format!("{e:#}"));
            let _ = tx.send(r);
            repaint.request_repaint();
        });
    }

    /// Starts GANSpace's PCA for the open model and class (a background job).
    pub fn start_pca(&mut self) {
        if self.pca.is_some() {
            return;
        }
        let comps = MAX_SLIDERS.min(self.info.as_ref().map_or(MAX_SLIDERS, |i| i.z_dim));
        let n = self.state.pca_samples.max(comps + 1);
        let out = pca_job::cache_path(&self.state.model, self.state.class, comps, n);
        if out.is_file() {
            self.components_loading = Some(pca_job::load(out));
            return;
        }
        let cfg = PcaJob::default_config(n, comps, self.state.truncation, 0);
        self.pca = Some(PcaJob::start(self.state.model.clone(), self.state.class, cfg, out, self.cpu));
    }

    fn central_ui(&mut self, ui: &mut egui::Ui) {
        if let Some(err) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, format!("Error: {err}"));
        }
        let explain = self.state.explain.enabled;
        let cols = if !explain {
            1.0
        } else if self.state.explain.two {
            3.0
        } else {
            2.0
        };
        let side = (ui.available_width() / cols - 8.0)
            .min(ui.available_height() - if explain { 140.0 } else { 0.0 })
            .max(64.0);
        ui.horizontal_top(|ui| {
            if let Some(tex) = &self.texture {
                ui.add(egui::Image::new(tex).fit_to_exact_size(egui::vec2(side, side)));
            } else if self.error.is_none() {
                ui.spinner();
            }
            if explain {
                self.explain_view_ui(ui, side);
            }
        });
        if self.worker.busy(self.shown_id)
            || self.explain_busy()
            || self.job_running()
            || self.dialog.is_some()
            || self.screenshot_rx.is_some()
            || self.sweep.is_some()
        {
            ui.ctx().request_repaint_after(Duration::from_millis(16));
        }
    }
}

impl eframe::App for StudioApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_step(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        let cgn = self.state.cgn_mode;
        egui::Panel::left("controls").default_size(290.0).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.state.cgn_mode, false, "Steer (BigGAN)");
                ui.selectable_value(&mut self.state.cgn_mode, true, "Counterfactual (CGN)");
            });
            ui.separator();
            egui::ScrollArea::vertical()
                .show(ui, |ui| if cgn { self.cgn_controls_ui(ui) } else { self.controls_ui(ui) });
        });
        egui::Panel::right("steering").default_size(330.0).show(ui, |ui| {
            if cgn {
                self.cgn_jobs_ui(ui)
            } else {
                self.steering_ui(ui)
            }
        });
        if self.state.show_perf {
            egui::Panel::bottom("performance").default_size(150.0).show(ui, |ui| self.perf_ui(ui));
        }
        if !cgn {
            self.sweep_window(&ui.ctx().clone());
        }
        egui::CentralPanel::default().show(ui, |ui| {
            if cgn {
                if let Some(err) = &self.error {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Error: {err}"));
                }
                self.cgn_views_ui(ui);
                if self.cgn_worker.busy(self.cgn_shown_id) || self.export_job.is_some() || self.sheet.is_some() {
                    ui.ctx().request_repaint_after(Duration::from_millis(16));
                }
            } else {
                self.central_ui(ui);
            }
        });
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }
}

fn push(q: &mut VecDeque<f64>, v: f64) {
    q.push_back(v);
    while q.len() > HISTORY {
        q.pop_front();
    }
}
