//! Where the generator's CPU time goes, by kernel kind (`intervene bench biggan --breakdown`):
//! time and FLOPs of the fused 3×3 and 1×1 convolutions and of self-attention, recorded only
//! while switched on (one relaxed atomic load per kernel call otherwise).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A kernel kind of the breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 3×3 convolutions with their fused BN/ReLU/upsample im2col (the blocks' middle convs and
    /// `conv_to_rgb`).
    Conv3x3,
    /// 1×1 convolutions (the blocks' bottleneck in/out convs).
    Conv1x1,
    /// Self-attention (projections, scores, softmax, weighted sum).
    Attention,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Conv3x3, Kind::Conv1x1, Kind::Attention];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Conv3x3 => "3×3 convolutions (BN + ReLU + upsample fused)",
            Kind::Conv1x1 => "1×1 convolutions",
            Kind::Attention => "self-attention",
        }
    }
}

static ON: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
static FLOPS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Switches recording on or off.
pub fn enable(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Clears what was recorded.
pub fn reset() {
    for a in NANOS.iter().chain(&FLOPS) {
        a.store(0, Ordering::Relaxed);
    }
}

/// The start time of a kernel call when recording.
#[inline]
pub(crate) fn start() -> Option<Instant> {
    ON.load(Ordering::Relaxed).then(Instant::now)
}

/// Adds a finished kernel call.
#[inline]
pub(crate) fn record(kind: Kind, start: Option<Instant>, flops: f64) {
    if let Some(t) = start {
        NANOS[kind as usize].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        FLOPS[kind as usize].fetch_add(flops as u64, Ordering::Relaxed);
    }
}

/// Seconds and FLOPs recorded per kind.
pub fn totals() -> [(Kind, f64, f64); 3] {
    Kind::ALL.map(|k| {
        (k, NANOS[k as usize].load(Ordering::Relaxed) as f64 * 1e-9, FLOPS[k as usize].load(Ordering::Relaxed) as f64)
    })
}

/// The machine's SGEMM rate in GFLOP/s with the GEMM the kernels use, all cores: the best of a
/// few 1024 × 1024 × 1024 products.
pub fn gemm_gflops() -> f64 {
    let n = 1024;
    let (a, b) = (vec![0.5f32; n * n], vec![0.25f32; n * n]);
    let mut c = vec![0f32; n * n];
    let par = gemm::Parallelism::Rayon(rayon::current_num_threads());
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let t = Instant::now();
        super::conv::gemm_into(n, n, n, &a, &b, n, c.as_mut_ptr(), n, par);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}
