//! The studio application: the persisted [`StudioState`], the panes, the job board, and the
//! command queue the panes fill during a frame and the app applies after it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use poll_promise::Promise;

use super::command::{Command, Commands, DialogKind};
use super::panes::counterfactual::CounterfactualPane;
use super::panes::explain::ExplainPane;
use super::panes::jobs::JobsPane;
use super::panes::perf::PerfPane;
use super::panes::steer::SteerPane;
use super::panes::sweep::SweepPane;
use super::panes::PaneCtx;
pub use super::state::{SavedDirection, StudioState, MAX_SLIDERS};
use super::GuiArgs;
use crate::jobs::Board;

/// Background jobs that may run at once; the rest wait in the Jobs pane's queue. On a 2-core
/// machine two CPU-bound jobs already share the cores with the window's renderers.
const MAX_RUNNING_JOBS: usize = 2;
/// Error and status lines kept in the log.
const LOG_LINES: usize = 200;

/// The panes of the window.
pub struct Panes {
    pub steer: SteerPane,
    pub counterfactual: CounterfactualPane,
    pub explain: ExplainPane,
    pub sweep: SweepPane,
    pub jobs: JobsPane,
    pub perf: PerfPane,
}

/// What the bottom panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum BottomTab {
    #[default]
    Performance,
    Jobs,
    Log,
}

/// Status line, the error on screen, and the log of both.
#[derive(Default)]
pub struct Notes {
    pub status: Option<String>,
    pub error: Option<String>,
    /// What failed (the error's prefix): only a later success of that kind clears it.
    pub error_what: Option<String>,
    pub log: VecDeque<String>,
}

impl Notes {
    fn push_log(&mut self, line: String) {
        self.log.push_back(line);
        while self.log.len() > LOG_LINES {
            self.log.pop_front();
        }
    }
}

/// The runtime application.
pub struct StudioApp {
    pub state: StudioState,
    pub panes: Panes,
    pub board: Board,
    pub notes: Notes,
    commands: Commands,
    dialog: Option<Promise<Option<(DialogKind, PathBuf)>>>,
    screenshot_rx: Option<std::sync::mpsc::Receiver<Result<PathBuf, String>>>,
    /// Whether the wgpu paint callbacks are installed (compositing and heatmap on the GPU).
    gpu: bool,
    /// Jobs started from the launcher whose outcome the app reports (and, for downloads, opens).
    followed: Vec<(String, super::job_requests::FollowUp)>,
}

impl StudioApp {
    pub fn new(cc: &eframe::CreationContext<'_>, args: GuiArgs) -> Self {
        let mut state: StudioState = cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
        if let Some(m) = args.model {
            // A bundled name brings its components and classifier, as the menu does; a path
            // is opened as given.
            match crate::bundled::find(&m).filter(|e| e.kind == crate::bundled::Kind::Biggan) {
                Some(e) => state.open_bundled_biggan(&e),
                None => state.model = m,
            }
        }
        if let Some(c) = args.components {
            state.components = Some(c);
        }
        if args.explain {
            state.explain.enabled = true;
        }
        if let Some(c) = args.cgn {
            state.cgn_mode = true;
            match crate::bundled::find(&c).filter(|e| e.kind == crate::bundled::Kind::Cgn) {
                Some(e) => state.open_bundled_cgn(&e),
                None if !c.is_empty() => state.cgn.model = c,
                None => {}
            }
        }
        Self::with_creation(cc, state, args.cpu)
    }

    /// Builds the app for a window: installs the GPU pipelines when wgpu runs it.
    pub fn with_creation(cc: &eframe::CreationContext<'_>, state: StudioState, cpu: bool) -> Self {
        let mut app = Self::with_state(cc.egui_ctx.clone(), state, cpu);
        if let Some(rs) = &cc.wgpu_render_state {
            super::gpu_compose::install(rs);
            super::gpu_heatmap::install(rs);
            app.gpu = true;
        }
        app
    }

    /// Builds the app around a state (tests use this directly).
    pub fn with_state(ctx: egui::Context, mut state: StudioState, cpu: bool) -> Self {
        state.sliders.resize(MAX_SLIDERS, 0.0);
        let mut commands = Commands::default();
        let mut steer = SteerPane::new(&ctx, cpu, &mut commands);
        if let Some(p) = state.components.clone() {
            steer.load_components(PathBuf::from(p), &mut commands);
        }
        let panes = Panes {
            steer,
            counterfactual: CounterfactualPane::new(&ctx, &mut commands),
            explain: ExplainPane::new(&ctx, &mut commands),
            sweep: SweepPane::default(),
            jobs: JobsPane::default(),
            perf: PerfPane::default(),
        };
        let repaint = ctx.clone();
        let board = Board::new(MAX_RUNNING_JOBS, move || repaint.request_repaint());
        let mut app = Self {
            state,
            panes,
            board,
            notes: Notes::default(),
            commands,
            dialog: None,
            screenshot_rx: None,
            gpu: false,
            followed: Vec::new(),
        };
        app.apply_commands(&ctx);
        app
    }

    /// The error on screen, if any.
    pub fn error(&self) -> Option<&str> {
        self.notes.error.as_deref()
    }

    /// The last status line (e.g. where a capture went).
    pub fn status(&self) -> Option<&str> {
        self.notes.status.as_deref()
    }

    /// Whether the wgpu paint callbacks are installed.
    pub fn gpu_enabled(&self) -> bool {
        self.gpu
    }

    /// Queues a command as a pane would (applied at the next frame).
    pub fn send(&mut self, c: Command) {
        self.commands.push(c);
    }

    /// Receives results and finished jobs, posts requests when settings changed, then applies
    /// the commands of the frame.
    pub fn logic_step(&mut self, ctx: &egui::Context) {
        self.panes.perf.frame_tick();
        self.board.poll();
        let Self { state, panes, board, commands, .. } = self;
        if let Some(ms) = panes.steer.logic(ctx, state, board, commands) {
            if !state.cgn_mode {
                panes.perf.render_done(ms);
            }
        }
        panes.sweep.logic(board, commands);
        self.followed.retain(|(name, f)| !f.take(name, board, commands));
        if let Some(ms) = panes.counterfactual.logic(state, board, commands) {
            if state.cgn_mode {
                panes.perf.render_done(ms);
            }
        }
        if !state.cgn_mode {
            panes.explain.logic(ctx, state, panes.steer.frame(), commands);
        }
        self.handle_dropped_files(ctx);
        self.handle_dialog();
        self.handle_screenshot();
        self.apply_commands(ctx);
    }

    /// Applies the queued commands.
    pub fn apply_commands(&mut self, ctx: &egui::Context) {
        for c in self.commands.take() {
            self.apply(ctx, c);
        }
    }

    fn apply(&mut self, ctx: &egui::Context, c: Command) {
        match c {
            Command::OpenDialog(kind) => self.open_dialog(kind),
            Command::Open(kind, path) => self.open_path(kind, path),
            Command::Start(req) => {
                let name = req.name();
                let follow = req.follow_up();
                match req.submit(&mut self.board) {
                    Ok(_) => {
                        self.panes.jobs.select(&name);
                        self.notes.status = Some(format!("started {name}"));
                        if let Some(f) = follow {
                            self.followed.push((name, f));
                        }
                    }
                    Err(e) => self.report_error("cannot start the job", e),
                }
            }
            Command::Reveal(path) => {
                if let Err(e) = super::reveal::open_in_file_manager(&path) {
                    self.report_error("cannot open the folder", format!("{e:#}"));
                }
            }
            Command::OpenClassifier(k, path) => {
                self.state.cgn_mode = false;
                self.state.explain.enabled = true;
                if k > 0 {
                    self.state.explain.two = true;
                }
                self.open_path(DialogKind::Classifier(k), path);
            }
            Command::PrepareExport { model, components, class } => {
                self.panes.jobs.launcher.prepare_export(&model, components.as_deref(), class);
                self.show_launcher();
            }
            Command::PrepareCvaeExport { model } => {
                self.panes.jobs.launcher.prepare_cvae(&model);
                self.show_launcher();
            }
            Command::Cancel(name) => self.board.cancel(&name),
            Command::ClearFinishedJobs => self.board.clear_finished(),
            Command::Capture => self.capture(),
            Command::CaptureWindow => self.capture_window(ctx),
            Command::Status(s) => {
                self.notes.push_log(s.clone());
                self.notes.status = Some(s);
            }
            Command::Error { what, message } => self.report_error(&what, message),
            Command::ClearError { what } => {
                if self.notes.error_what.as_deref() == Some(what) {
                    self.notes.error = None;
                    self.notes.error_what = None;
                }
            }
        }
    }

    /// Shows the Jobs pane with its launcher open (a pane asked for one of its forms).
    fn show_launcher(&mut self) {
        self.panes.jobs.launcher_open = true;
        self.state.show_perf = true;
        self.state.bottom_tab = BottomTab::Jobs;
    }

    fn report_error(&mut self, what: &str, e: impl std::fmt::Display) {
        let msg = format!("{what}: {e}");
        tracing::error!("{msg}");
        self.notes.push_log(msg.clone());
        self.notes.error = Some(msg);
        self.notes.error_what = Some(what.to_string());
    }

    /// Acts on a path chosen in a dialog or dropped on the window.
    pub fn open_path(&mut self, kind: DialogKind, path: PathBuf) {
        let shown = path.display().to_string();
        match kind {
            DialogKind::ModelFolder | DialogKind::ModelFile => self.state.model = shown,
            DialogKind::Components => self.panes.steer.load_components(path, &mut self.commands),
            DialogKind::CaptureDir => self.state.capture_dir = Some(shown),
            DialogKind::Classifier(k) => {
                if let Some(s) = self.state.explain.slots.get_mut(k) {
                    s.classifier = shown;
                }
            }
            DialogKind::RealDir => self.state.sweep_real = Some(shown),
            DialogKind::ImageFile => {
                self.state.explain.enabled = true;
                self.state.explain.image_file = Some(shown);
            }
            DialogKind::CgnExportDir => self.state.cgn.export_dir = Some(shown),
            DialogKind::CgnModel => {
                self.state.cgn_mode = true;
                self.state.cgn.model = shown;
            }
        }
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        for p in dropped {
            let kind = match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
                Some("npz") => DialogKind::Components,
                Some("png" | "jpg" | "jpeg") => DialogKind::ImageFile,
                _ if p.is_dir() => DialogKind::ModelFolder,
                _ => DialogKind::ModelFile,
            };
            self.open_path(kind, p);
        }
    }

    fn handle_dialog(&mut self) {
        let Some(d) = self.dialog.take() else { return };
        match d.try_take() {
            Ok(Some((kind, path))) => self.commands.push(Command::Open(kind, path)),
            Ok(None) => {}
            Err(d) => self.dialog = Some(d),
        }
    }

    fn handle_screenshot(&mut self) {
        let Some(rx) = &self.screenshot_rx else { return };
        match rx.try_recv() {
            Ok(Ok(path)) => self.notes.status = Some(format!("saved window to {}", path.display())),
            Ok(Err(e)) => self.report_error("cannot save the window", e),
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {}
        }
        self.screenshot_rx = None;
    }

    /// Opens a native file dialog on a helper thread (rfd blocks).
    fn open_dialog(&mut self, kind: DialogKind) {
        if self.dialog.is_some() {
            return;
        }
        self.dialog = Some(super::dialog::spawn(kind));
    }

    /// Saves the frame on screen (image/grid, z.npy, JSON with the regenerating command).
    pub fn capture(&mut self) {
        let Some(r) = self.panes.steer.frame() else {
            self.notes.status = Some("nothing to capture yet".into());
            return;
        };
        let dir = self.state.capture_dir.clone().map(PathBuf::from).unwrap_or_else(super::capture::default_dir);
        let stem = super::capture::stem(&dir, r);
        match super::capture::save(r, &stem) {
            Ok(json) => self.notes.status = Some(format!("captured {}", json.display())),
            Err(e) => self.report_error("capture failed", format!("{e:#}")),
        }
    }

    /// Asks the renderer for a screenshot of the whole window (saved when it arrives).
    fn capture_window(&mut self, ctx: &egui::Context) {
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

    fn busy(&self) -> bool {
        self.board.busy()
            || self.panes.steer.busy(&self.board)
            || self.panes.explain.busy()
            || self.panes.counterfactual.busy(&self.board)
            || self.dialog.is_some()
            || self.screenshot_rx.is_some()
    }

    fn central_ui(&mut self, ui: &mut egui::Ui) {
        let Self { state, panes, board, commands, notes, gpu, .. } = self;
        if let Some(err) = &notes.error {
            ui.colored_label(ui.visuals().error_fg_color, format!("Error: {err}"));
        }
        let mut ctx = PaneCtx { state, commands, board, gpu: *gpu };
        if ctx.state.cgn_mode {
            panes.counterfactual.views_ui(ui, &ctx);
            return;
        }
        let explain = ctx.state.explain.enabled;
        let cols = match (explain, ctx.state.explain.two) {
            (false, _) => 1.0,
            (true, false) => 2.0,
            (true, true) => 3.0,
        };
        let side = (ui.available_width() / cols - 8.0)
            .min(ui.available_height() - if explain { 140.0 } else { 0.0 })
            .max(64.0);
        let has_error = notes.error.is_some();
        ui.horizontal_top(|ui| {
            panes.steer.image_ui(ui, side, has_error);
            if explain {
                panes.explain.view_ui(ui, side, &ctx);
            }
        });
        let _ = &mut ctx;
    }

    fn bottom_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.state.bottom_tab, BottomTab::Performance, "Performance");
            let active = self.board.entries().iter().filter(|e| e.phase.is_active()).count();
            let jobs = if active > 0 { format!("Jobs ({active})") } else { "Jobs".to_string() };
            ui.selectable_value(&mut self.state.bottom_tab, BottomTab::Jobs, jobs);
            ui.selectable_value(&mut self.state.bottom_tab, BottomTab::Log, format!("Log ({})", self.notes.log.len()));
        });
        ui.separator();
        let Self { state, panes, board, commands, notes, gpu, .. } = self;
        match state.bottom_tab {
            BottomTab::Performance => {
                let shown = if state.cgn_mode { None } else { panes.steer.frame() };
                panes.perf.ui(ui, panes.steer.device_name(), panes.steer.info(), shown);
            }
            BottomTab::Jobs => {
                let mut ctx = PaneCtx { state, commands, board, gpu: *gpu };
                panes.jobs.ui(ui, &mut ctx);
            }
            BottomTab::Log => {
                egui::ScrollArea::vertical().stick_to_bottom(true).show(ui, |ui| {
                    for l in &notes.log {
                        ui.label(l);
                    }
                });
            }
        }
    }
}

impl eframe::App for StudioApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_step(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        // The bottom panel spans the whole width (added before the side panels).
        if self.state.show_perf {
            egui::Panel::bottom("performance").default_size(190.0).show(ui, |ui| self.bottom_ui(ui));
        }
        let cgn = self.state.cgn_mode;
        egui::Panel::left("controls").default_size(290.0).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.state.cgn_mode, false, "Steer (BigGAN)");
                ui.selectable_value(&mut self.state.cgn_mode, true, "Counterfactual (CGN)");
            });
            ui.separator();
            let Self { state, panes, board, commands, gpu, .. } = self;
            let mut ctx = PaneCtx { state, commands, board, gpu: *gpu };
            egui::ScrollArea::vertical().show(ui, |ui| {
                if cgn {
                    panes.counterfactual.controls_ui(ui, &mut ctx);
                } else {
                    panes.steer.controls_ui(ui, &mut ctx);
                    ui.separator();
                    panes.explain.controls_ui(ui, &mut ctx);
                }
            });
        });
        egui::Panel::right("steering").default_size(330.0).show(ui, |ui| {
            let Self { state, panes, board, commands, gpu, .. } = self;
            let mut ctx = PaneCtx { state, commands, board, gpu: *gpu };
            if cgn {
                panes.counterfactual.jobs_ui(ui, &mut ctx);
            } else {
                let comps = panes.steer.components().cloned();
                let sweep = &mut panes.sweep;
                panes.steer.steering_ui(ui, &mut ctx, |ui, ctx| sweep.ui(ui, ctx, comps.as_ref()));
            }
        });
        if !cgn {
            let ctx = ui.ctx().clone();
            self.panes.sweep.window(&ctx, self.state.capture_dir.as_deref(), &mut self.commands);
        }
        egui::CentralPanel::default().show(ui, |ui| self.central_ui(ui));
        if self.busy() {
            ui.ctx().request_repaint_after(Duration::from_millis(16));
        }
        // Commands from this frame's UI pass (clicks) are applied before the next frame.
        let ctx = ui.ctx().clone();
        self.apply_commands(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }
}
