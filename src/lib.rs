//! intervene — a studio for generative interventions.
//!
//! Module map (engine modules never import egui; the UI lives behind the `gui` feature):
//!
//! | module | concern |
//! |---|---|
//! | [`checkpoint`] | reading weight files: safetensors, PyTorch zip, legacy PyTorch pickles; key reports |
//! | [`ops`] | fast CPU kernels (fused BN/ReLU/upsample + im2col + GEMM convolutions, buffer reuse) |
//! | [`models`] | network runtimes, one model per file: BigGAN-deep, MobileNetV2 (as named stages for CAMs) |
//! | [`device`] | choosing CPU or CUDA |
//! | [`composite`] | CGN compositing with live mask shaping (CPU mirror of `shaders/compose.wgsl`) |
//! | [`jobs`] | resumable, shardable jobs (progress, cancel, atomic files) and the exports built on them |
//! | [`steer`] | GANSpace PCA for BigGAN, component files, latent edits, cached re-rendering |
//! | [`imageio`] | tensors ⇄ images and `.npy` files, grids |
//! | [`preprocess`] | classifier input pipelines, torchvision's to the bit (PIL's antialiased bilinear resize) |
//! | [`classes`] | ImageNet class names / wnids, class-vector parsing |
//! | [`explain`] | why a classifier decides (GradCAM family) and GenInt's log P(x|z) estimate |
//! | [`bench`] | `intervene bench` measurements (FLOPs, ms, peak RSS) |
//! | [`cli`] | the command-line front end (clap) |
//! | `ui` | the egui/eframe studio (feature `gui`) |

pub mod bench;
pub mod checkpoint;
pub mod classes;
pub mod cli;
pub mod composite;
pub mod data;
pub mod device;
pub mod explain;
pub mod imageio;
pub mod jobs;
pub mod models;
pub mod noise;
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
