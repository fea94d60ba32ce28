//! The studio window (egui + eframe on wgpu).
//!
//! `app` holds the runtime state and panels; `worker` runs networks off the UI thread.

pub mod app;
pub mod worker;

pub use app::StudioApp;

/// Options of `intervene gui`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct GuiArgs {
    /// Model to open (folder, weights file or hub name); default: the last one used, else the bundled model.
    #[arg(long, value_name = "PATH")]
    pub model: Option<String>,
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
