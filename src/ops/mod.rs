//! Fast CPU kernels for the generator's hot path.
//!
//! candle's CPU conv2d materialises the whole im2col matrix and loses ~45 % to data movement
//! around the GEMM on this class of machine. These kernels instead
//! - fuse the batch-norm affine + ReLU (and the nearest ×2 upsample) into the im2col pass,
//! - build im2col one cache-sized tile of output pixels at a time, in a reused buffer,
//! - fold bias and residual into the GEMM's destination (one pass over the output),
//! - run 1×1 convolutions as plain GEMMs,
//!
//! and call the `gemm` crate directly (the same GEMM candle uses).
//!
//! [`strided`] serves the classifiers: any kernel/stride/padding, depthwise, BN folded.
//!
//! Layout everywhere: NCHW, f32, contiguous.

/// Defines a function whose body is compiled twice, for baseline x86-64 and for AVX-512, the
/// second chosen at run time when the CPU has it.
///
/// The crate is built for baseline x86-64, so element-wise loops would otherwise run on
/// SSE2's four lanes. The body becomes an `#[inline(always)]` inner fn called from the
/// function itself and from a `#[target_feature]` twin (closures handed to such a twin are
/// not inlined into it, hence the named fn). FMA is not enabled, so both instances round
/// alike and results do not depend on the CPU.
///
/// ```ignore
/// widest! {
///     /// `o = relu(i·a + b)` over one plane.
///     pub(crate) fn plane(o: &mut [f32], i: &[f32], a: f32, b: f32) { … }
/// }
/// ```
macro_rules! widest {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the feature was detected at run time.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use widest;

/// A raw output pointer that parallel tasks share, each writing only its own disjoint part
/// (columns, pixel ranges or rows) of the buffer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: the tasks holding it write disjoint regions of one buffer that outlives them.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// A tuning knob read once from the environment: `var` parsed as a count, else `default`.
/// Each knob keeps its value in its own `cell`.
pub(crate) fn knob(cell: &'static std::sync::OnceLock<usize>, var: &str, default: usize) -> usize {
    *cell.get_or_init(|| std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
}

mod attention;
pub mod backend;
mod conv;
mod few_outputs;
mod gemm;
mod pointwise;
pub mod profile;
mod softmax;
pub mod strided;
mod winograd;

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

/// A zeroed output buffer of `n` floats for the kernels to write into.
///
/// Zeroed, not uninitialised: a `Vec<f32>` whose elements were never written is undefined
/// behaviour to hand out as `&mut [f32]`, whatever the kernels then do. The zeroing is nearly
/// free: `vec![0.0; n]` asks the allocator for zeroed memory (`calloc`), and buffers at or above
/// the mmap threshold (32 MB, [`crate::bench::tune_allocator`]) come from fresh kernel pages
/// that are zero already, so only the smaller, recycled buffers get a `memset`.
pub fn output_buffer(n: usize) -> Vec<f32> {
    vec![0.0; n]
}
