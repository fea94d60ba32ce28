//! intervene — a studio for generative interventions.
//!
//! Layers, top-down (a test, `tests/layering.rs`, keeps them):
//! 1. faces: [`cli`] (clap) and `ui` (egui/eframe, feature `gui`) only parse, validate, draw and
//!    send commands; nothing outside `cli` imports it;
//! 2. jobs and pipelines: [`jobs`], [`steer`], [`explain`], [`counterfactual`], [`data`] — each
//!    job is one library function taking plain arguments and a [`jobs::Control`];
//! 3. [`models`]; 4. [`ops`] (kernels, backend choice) and [`checkpoint`] (weight files).
//!
//! | module | concern |
//! |---|---|
//! | [`bundled`] | the bundled models (`models/index.json`): defaults, menus, names |
//! | [`checkpoint`] | reading weight files: safetensors, PyTorch zip, legacy PyTorch pickles; key reports |
//! | [`ops`] | fast CPU kernels (fused BN/ReLU/upsample + im2col + GEMM), the fused/portable choice |
//! | [`models`] | network runtimes, one model per file: BigGAN-deep, CGNs, U²-Net, classifiers |
//! | [`device`] | choosing CPU or CUDA |
//! | [`jobs`] | the job system (cancel, progress, log, metrics, board) and resumable, shardable exports |
//! | [`steer`] | GANSpace PCA, component files, latent edits, cached re-rendering, studio frames |
//! | [`counterfactual`] | CGN frames: separate shape/texture/background classes, interpolation, sheets |
//! | [`composite`] | CGN compositing with live mask shaping (CPU mirror of `shaders/compose.wgsl`) |
//! | [`explain`] | CAMs, the explanation pipeline, GenInt's log P(x|z) and the strategy sweep |
//! | [`data`] | MNIST / Fashion-MNIST and the colored, double-colored and wildlife variants |
//! | [`imageio`] | tensors ⇄ images and `.npy` files, grids, atomic writes |
//! | [`npy`] | NumPy `.npy` / `.npz` reading (hostile-header safe) and writing (numpy's exact layout) |
//! | [`preprocess`] | classifier input pipelines, torchvision's to the bit (PIL's antialiased bilinear resize) |
//! | [`classes`] | ImageNet class names / wnids, class-vector parsing |
//! | [`fetch`] | `intervene fetch`: known real weights by name, resumable verified downloads, mirrors |
//! | [`named`] | engine enums chosen by name (the faces turn them into choices) |
//! | [`bench`] | `intervene bench` measurements (FLOPs, ms, peak RSS) |
//! | [`cli`] | the command-line face |
//! | `ui` | the window's face (feature `gui`) |

// Numeric kernels and network stages take many plain arguments (shapes, strides, buffers) and
// index several arrays with one loop counter; bundling them into structs or iterators would hide
// the arithmetic that the comments and the references explain. Nested tensor tuples name what
// they hold at each use. One enum (`models::cgn::CgnModel`) keeps the large ImageNet variant
// inline because exactly one model is open at a time.
#![allow(clippy::too_many_arguments, clippy::needless_range_loop, clippy::type_complexity, clippy::large_enum_variant)]

pub mod bench;
pub mod bundled;
pub mod checkpoint;
pub mod classes;
pub mod cli;
pub mod composite;
pub mod counterfactual;
pub mod data;
pub mod device;
pub mod explain;
pub mod fetch;
pub mod imageio;
pub mod jobs;
pub mod models;
pub mod named;
pub mod noise;
pub mod npy;
pub mod ops;
pub mod preprocess;
pub mod steer;
pub mod train;
#[cfg(feature = "gui")]
pub mod ui;

/// The model the studio and the CLI use when none is given: bundled in `models/` and compiled
/// into the binary, so nothing has to be downloaded.
pub const DEFAULT_BIGGAN: &str = "biggan-deep-tiny-128";

/// The bundled `models/` folder: next to the executable when installed, else the source tree's.
pub fn bundled_models_dir() -> std::path::PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            let m = dir.join("models");
            if m.join(DEFAULT_BIGGAN).is_dir() {
                return m;
            }
        }
    }
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
}
