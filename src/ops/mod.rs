//! Fast CPU kernels for the generator's hot path.
//!
//! candle's CPU conv2d materialises the whole im2col matrix and loses ~45 % to data movement
//! around the GEMM on this class of machine. These kernels instead
//! - fuse the batch-norm affine + ReLU (and the nearest ×2 upsample) into the im2col pass,
//! - build im2col one cache-sized tile of output pixels at a time, in a reused buffer,
//! - fold bias and residual into the GEMM's destination (one pass over the output),
//! - run 1×1 convolutions as plain GEMMs,
//! and call the `gemm` crate directly (the same GEMM candle uses).
//!
//! [`strided`] serves the classifiers: any kernel/stride/padding, depthwise, BN folded.
//!
//! Layout everywhere: NCHW, f32, contiguous.

mod attention;
pub mod backend;
mod conv;
mod few_outputs;
mod pointwise;
mod softmax;
pub mod strided;

pub use attention::{self_attention, AttnArgs};
pub use backend::{backend, fused_for, set_backend, Backend, CpuView};
pub use conv::{conv2d, conv_flops, Conv2dArgs, Residual};
pub use pointwise::PreAct;
pub use softmax::softmax_rows;

/// Errors of the kernels: shapes that do not fit.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
}

impl From<OpsError> for candle_core::Error {
    fn from(e: OpsError) -> Self {
        candle_core::Error::Msg(e.to_string())
    }
}

/// An output buffer of `n` floats whose every element the caller overwrites before reading
/// (the kernels write whole outputs): skips the zeroing pass over up to 32 MB per activation.
pub fn output_buffer(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: f32 has no invalid bit patterns, and every caller (conv2d,
    // self_attention) writes all `n` elements before any read.
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(n)
    };
    v
}
