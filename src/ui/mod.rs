//! The studio window (egui + eframe on wgpu): a thin face over the library. Panes draw and
//! push commands; every network runs on a worker or as a job on the board.
//!
//! | module | concern |
//! |---|---|
//! | [`app`] | the application: persisted state, panes, job board, command queue |
//! | [`command`] | what panes ask the app to do |
//! | [`job_requests`] | the jobs the window starts, each mapped to its library function |
//! | [`panes`] | one struct per pane (steer, counterfactual, explain, sweep, jobs, performance) |
//! | [`state`] | persisted settings (model, class, seed, sliders, saved directions, per-pane settings) |
//! | [`menu`] | the menu bar |
//! | [`dialog`] | native file dialogs on a helper thread |
//! | [`gpu_compose`] | the WGSL compositing pipeline (egui-wgpu paint callbacks) |
//! | [`gpu_heatmap`] | the WGSL CAM overlay (jet + α blend) |
//! | [`capture`] | saving frames so the CLI regenerates them bit for bit |
//! | [`worker`] | the newest-wins render thread |
//! | `testing` | read-only hooks for the kittest suite (feature `testing`) |

pub mod app;
pub mod capture;
pub mod command;
pub mod dialog;
pub mod gpu_compose;
pub mod gpu_heatmap;
pub mod job_requests;
pub mod menu;
pub mod panes;
pub mod reveal;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;

pub use app::StudioApp;
pub use state::StudioState;

/// Options of `intervene gui`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct GuiArgs {
    /// Model to open (folder, weights file or hub name); default: the last one used, else the bundled model.
    #[arg(long, value_name = "PATH")]
    pub model: Option<String>,
    /// GANSpace component file (.npz) to load for the sliders.
    #[arg(long, value_name = "FILE.npz")]
    pub components: Option<String>,
    /// Open in the counterfactual (CGN) mode, optionally on this CGN checkpoint.
    #[arg(long, value_name = "CGN", num_args = 0..=1, default_missing_value = "")]
    pub cgn: Option<String>,
    /// Open with the Explain pane on (CAMs of the frame with the bundled MobileNetV2).
    #[arg(long)]
    pub explain: bool,
    /// Run networks on the CPU even when a GPU is available.
    #[arg(long)]
    pub cpu: bool,
}

/// Opens the window and blocks until it closes.
pub fn run(args: GuiArgs) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default().with_inner_size([1280.0, 820.0]).with_title("intervene"),
        ..Default::default()
    };
    eframe::run_native("intervene", options, Box::new(move |cc| Ok(Box::new(StudioApp::new(cc, args)))))
        .map_err(|e| anyhow::anyhow!("the window could not start: {e}"))
}
