//! The studio window (egui + eframe on wgpu).
//!
//! | module | concern |
//! |---|---|
//! | [`app`] | the application: runtime state, job polling, layout |
//! | [`state`] | persisted settings (model, class, seed, sliders, saved directions) |
//! | [`controls`] | menu bar and generator controls |
//! | [`steering`] | components (file or PCA job), edit mode, layer range, sliders |
//! | [`cgn_mode`] | counterfactual mode: CGN requests/renderer, export job, interpolation sheet |
//! | [`cgn_panel`] | counterfactual mode panels (class pickers, mask shaping, views, jobs) |
//! | [`gpu_compose`] | the WGSL compositing pipeline (egui-wgpu paint callbacks) |
//! | [`gpu_heatmap`] | the WGSL CAM overlay (jet + α blend) |
//! | [`explain_mode`] | the Explain pane's worker: cached classifiers, CAMs, top-5 |
//! | [`explain_panel`] | the Explain pane (one or two classifiers beside the image, layer picker) |
//! | [`perf`] | performance pane (render ms, FPS, frame-time plot, device, model size) |
//! | [`render`] | the worker-side renderer (model cache + steering cache) |
//! | [`pca_job`] | background PCA / component loading |
//! | [`capture`] | saving frames so the CLI regenerates them bit for bit |
//! | [`sweep_panel`] | GenInt's strategy sweep as a job, its three curves |
//! | [`worker`] | the newest-wins render thread |

pub mod app;
pub mod capture;
pub mod cgn_mode;
pub mod cgn_panel;
pub mod controls;
pub mod explain_mode;
pub mod explain_panel;
pub mod gpu_compose;
pub mod gpu_heatmap;
pub mod pca_job;
pub mod perf;
pub mod render;
pub mod state;
pub mod steering;
pub mod sweep_panel;
pub mod worker;

pub use app::StudioApp;

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

/// FNV-1a: a cheap identity for pixels on screen and for cache-file tags.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}
