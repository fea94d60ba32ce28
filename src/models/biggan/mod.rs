//! BigGAN-deep: configuration, layers, generator, and the fast CPU path.

pub mod config;
pub mod fast;
pub mod generator;
pub mod layers;
pub mod load;

pub use config::{BigGanConfig, LayerSpec};
pub use generator::{BigGan, Resume};
pub use layers::StatsIndex;
