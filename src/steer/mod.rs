//! Steering BigGAN along principal directions: GANSpace's PCA (Härkönen et al., 2020) and the
//! edits GANSpace's viewer and GenInt (Mao et al., 2021) apply to the per-layer latents.
//!
//! | module | concern |
//! |---|---|
//! | [`pca`] | the GANSpace method for BigGAN: streaming PCA of a layer's activations, regression back to z |
//! | [`ipca`] | incremental PCA over row chunks (memory bounded by one chunk) |
//! | [`linalg`] | GEMM wrappers, symmetric eigensolvers, Cholesky |
//! | [`components`] | GANSpace's `.npz` component files |
//! | [`npz`] | `.npy` / `.npz` reading and writing |
//! | [`edit`] | additive (GANSpace) and centred (GenInt) edits of the per-layer latents; GenInt's ranges |
//! | [`session`] | [`Steerer`]: re-rendering under changing edits from cached stage activations |
//! | [`render`] | a studio frame: model cache + steering cache behind one request type |
//! | [`pca_job`] | the PCA as a job (progress, cancel, atomic file), shared by `intervene pca` and the window |

pub mod components;
pub mod edit;
pub mod ipca;
pub mod linalg;
pub mod npz;
pub mod pca;
pub mod pca_job;
pub mod render;
pub mod session;

pub use components::{Components, ComponentsError};
pub use edit::{Edit, EditMode, GENINT_RANGES};
pub use pca::{PcaConfig, PcaLayer, PcaOutput};
pub use session::Steerer;
