//! Which implementation runs the networks' hot layers, and borrowed views of CPU tensors.
//!
//! Two backends compute the same functions:
//! - **fused** (default on the CPU): the kernels of this module (BN/ReLU/upsample fused into
//!   im2col + GEMM, bias and skip folded into the GEMM's destination);
//! - **portable**: plain candle tensor ops, which run on any device. CUDA always takes it, and
//!   so does the CPU when the process starts with `INTERVENE_PORTABLE` set (or after
//!   [`set_backend`]), which lets a CPU test cover the code path the GPU runs.
//!
//! The choice is made once per process (the environment is read at the first query), not on
//! every call.

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{Result, Storage, StorageRef, Tensor};

/// The implementation of the hot layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Fused,
    Portable,
}

/// 0: not chosen yet; 1: fused; 2: portable.
static CHOICE: AtomicU8 = AtomicU8::new(0);

/// The process-wide choice (`INTERVENE_PORTABLE` set at the first query → portable).
pub fn backend() -> Backend {
    match CHOICE.load(Ordering::Relaxed) {
        1 => Backend::Fused,
        2 => Backend::Portable,
        _ => {
            let b = if std::env::var_os("INTERVENE_PORTABLE").is_some() { Backend::Portable } else { Backend::Fused };
            set_backend(b);
            b
        }
    }
}

/// Overrides the choice for the rest of the process (tests of the portable path, benchmarks).
pub fn set_backend(b: Backend) {
    CHOICE.store(if b == Backend::Fused { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether `x` goes through the fused CPU kernels: an f32 CPU tensor under the fused backend.
pub fn fused_for(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && backend() == Backend::Fused
}

/// A borrowed, contiguous f32 view of a CPU tensor.
pub struct CpuView<'a> {
    guard: StorageRef<'a>,
    range: (usize, usize),
}

impl<'a> CpuView<'a> {
    pub fn new(t: &'a Tensor) -> Result<Self> {
        let (guard, layout) = t.storage_and_layout();
        let Some(range) = layout.contiguous_offsets() else {
            candle_core::bail!("the fused path needs a contiguous tensor")
        };
        Ok(Self { guard, range })
    }

    pub fn slice(&self) -> Result<&[f32]> {
        match &*self.guard {
            Storage::Cpu(c) => Ok(&c.as_slice::<f32>()?[self.range.0..self.range.1]),
            _ => candle_core::bail!("the fused path needs a CPU tensor"),
        }
    }
}
