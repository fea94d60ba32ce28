//! Measurements for `intervene bench`: random weights built in memory, median wall time after
//! warm-up, achieved GFLOP/s, and the process's peak resident memory.

use std::sync::Mutex;
use std::time::Instant;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::noise::Rng;

/// A weight source that invents tensors on request: N(0,1)·0.1 for weights (spectral norm
/// rescales them anyway), positive values for variances, so any model builds without a file.
pub struct RandomWeights {
    rng: Mutex<Rng>,
    /// Bytes handed out, i.e. the size the weights would have on disk.
    pub bytes: std::sync::atomic::AtomicUsize,
}

impl RandomWeights {
    pub fn new(seed: u64) -> Self {
        Self { rng: Mutex::new(Rng::new(seed)), bytes: Default::default() }
    }

    /// A VarBuilder over fresh random weights.
    pub fn var_builder(seed: u64, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Self::new(seed)), DType::F32, device.clone())
    }
}

impl SimpleBackend for RandomWeights {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let n = s.elem_count();
        self.bytes.fetch_add(n * 4, std::sync::atomic::Ordering::Relaxed);
        let mut rng = self.rng.lock().map_err(|_| candle_core::Error::Msg("rng poisoned".into()))?;
        let v: Vec<f32> = if name.ends_with("running_vars") || name.ends_with("running_var") {
            (0..n).map(|_| 0.5 + rng.uniform() as f32).collect()
        } else if name.ends_with("gamma") {
            vec![0.5; n]
        } else {
            (0..n).map(|_| 0.1 * rng.normal() as f32).collect()
        };
        Tensor::from_vec(v, s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("random weights need a shape for {name}")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Peak resident set size of this process in MiB (`VmHWM`), where /proc is available.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Current resident set size in MiB (`VmRSS`).
pub fn rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Median of `runs` timings (ms) of `f` after `warmup` untimed calls.
pub fn time_median_ms(warmup: usize, runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, Vec<f64>)> {
    for _ in 0..warmup {
        f()?;
    }
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let mut sorted = t.clone();
    sorted.sort_by(f64::total_cmp);
    Ok((sorted[sorted.len() / 2], t))
}

/// Tunes glibc's allocator for activation buffers: buffers up to 32 MB (glibc's cap) are
/// recycled inside the heap instead of being mapped, faulted in and zeroed by the kernel, and
/// unmapped again on every forward (PyTorch lost 30–35 % to page faults here with default
/// settings); freed memory is kept, not trimmed. Measured 2026-12-01 on this AMD VM against the
/// old 4 MB threshold: deep-128 batch 1 72.8 → 66.6 ms (same peak RSS, 261 MiB), batch 8
/// 65.5 → 62.5 ms/image, deep-256 batch 1 250 → 212 ms (peak 342 → 370 MiB).
/// `INTERVENE_MMAP_THRESHOLD_MB` overrides the threshold.
pub fn tune_allocator() {
    set_mmap_threshold(32);
}

/// Tunes the allocator for training: a step frees and re-allocates the same activations,
/// gradients and candle's zero-filled gradient sums (8–25 MB each for the MNIST CNN at batch 64
/// or the CVAE's 3072×1000 layers), recycled inside the heap as for inference
/// ([`tune_allocator`]); mapping them cost 15–25 % of a step, in the kernel.
pub fn tune_allocator_for_training() {
    set_mmap_threshold(32);
}

/// glibc's mmap threshold in MB (`INTERVENE_MMAP_THRESHOLD_MB` when set, else `default_mb`;
/// glibc caps it at 32), and freed heap memory kept up to 512 MB instead of trimmed.
fn set_mmap_threshold(default_mb: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc.
    unsafe {
        let mb =
            std::env::var("INTERVENE_MMAP_THRESHOLD_MB").ok().and_then(|v| v.parse::<i32>().ok()).unwrap_or(default_mb);
        libc::mallopt(libc::M_MMAP_THRESHOLD, mb.clamp(1, 32) * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 * 1024 * 1024);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = default_mb;
}

/// [`RandomWeights`] that keep what they hand out, under the names asked for (the checkpoint
/// key names), so a random model can be saved and reopened (`intervene init-biggan`).
pub struct RecordingWeights {
    inner: RandomWeights,
    pub taken: std::sync::Arc<Mutex<std::collections::HashMap<String, Tensor>>>,
}

impl RecordingWeights {
    pub fn new(seed: u64) -> Self {
        Self { inner: RandomWeights::new(seed), taken: Default::default() }
    }
}

impl SimpleBackend for RecordingWeights {
    fn get(&self, s: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let t = self.inner.get(s, name, init, dtype, dev)?;
        self.taken
            .lock()
            .map_err(|_| candle_core::Error::Msg("recording poisoned".into()))?
            .insert(name.to_string(), t.clone());
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.inner.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}
