//! GANSpace's principal components for BigGAN (Härkönen et al., 2020, "GANSpace: Discovering
//! Interpretable GAN Controls"; harskish/ganspace `decomposition.py`).
//!
//! 1. Sample N latents z ~ t·truncnorm(−2, 2) for one class; take the activation of one layer
//!    (by default the raw output of `generator.gen_z`, before the NHWC reshape, 16·ch·16-d;
//!    or `layers.N`, the output of `generator.layers[N]` flattened in NCHW order).
//! 2. Incremental PCA over chunks of `chunk` samples ([`super::ipca`]): C components, their
//!    explained variance and ratios; `act_stdev = √explained_variance`.
//! 3. Regression back to z on R fresh samples: `A = ((act − mean)·compᵀ)/stdev` (R × C),
//!    least squares `Z ≈ A·M` (normal equations in f64 — A's columns are nearly uncorrelated
//!    with unit variance, so they are well conditioned), each row of M L2-normalised → `lat_comp`;
//!    `lat_mean` = mean of the regression z's; `lat_stdev` = 1.
//! 4. `random_stdevs`: stdev of the last chunk's centred activations along C random unit
//!    directions (≤ 5,000 samples), GANSpace's baseline for "how much more than chance".
//!
//! Memory is bounded by one chunk (`chunk × D` floats, plus its Gram matrix), whatever N is.
//! Everything is deterministic from `seed` (the noise rows, the solver's start vectors and the
//! random directions come from separate streams of our own generator; GANSpace's NumPy draws
//! cannot be reproduced, see [`crate::noise`]).

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};

use super::components::Components;
use super::ipca::{IncrementalPca, IpcaError};
use super::linalg::{cholesky_solve, matmul, Mat};
use crate::models::biggan::{BigGan, StatsIndex};
use crate::noise::Rng;

/// The layer whose activations are decomposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PcaLayer {
    /// `generator.gen_z`'s linear output, before the reshape (GANSpace's BigGAN default).
    #[default]
    GenZ,
    /// The output of `generator.layers[N]` (attention counts as a layer, as in the checkpoint keys).
    Layer(usize),
}

impl std::str::FromStr for PcaLayer {
    type Err = String;
    /// `gen_z`, `generator.gen_z`, `layers.N`, `generator.layers.N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_start_matches("generator.");
        if t == "gen_z" {
            return Ok(Self::GenZ);
        }
        if let Some(n) = t.strip_prefix("layers.") {
            return n.parse().map(Self::Layer).map_err(|_| format!("'{s}': N in layers.N must be an integer"));
        }
        Err(format!("unknown layer '{s}': use gen_z or layers.N (the output of generator.layers[N])"))
    }
}

impl std::fmt::Display for PcaLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::GenZ => write!(f, "generator.gen_z"),
            Self::Layer(n) => write!(f, "generator.layers.{n}"),
        }
    }
}

/// What to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaConfig {
    pub layer: PcaLayer,
    /// N, samples for the PCA.
    pub samples: usize,
    /// C, components kept.
    pub components: usize,
    /// Truncation t in (0, 1]: scales the noise and selects the batch-norm statistics.
    pub truncation: f64,
    pub seed: u64,
    /// R, fresh samples for the regression to z; `None` → max(10,000, N) as GANSpace.
    pub regression_samples: Option<usize>,
    /// Samples per incremental-PCA step; `None` → max(2,000, 3·C) as GANSpace.
    pub chunk: Option<usize>,
    /// Samples per generator forward; `None` → 500 for gen_z, 16 for deeper layers.
    pub batch: Option<usize>,
}

impl Default for PcaConfig {
    fn default() -> Self {
        Self {
            layer: PcaLayer::GenZ,
            samples: 300_000,
            components: 80,
            truncation: 1.0,
            seed: 0,
            regression_samples: None,
            chunk: None,
            batch: None,
        }
    }
}

impl PcaConfig {
    /// R actually used.
    pub fn regression_samples(&self) -> usize {
        self.regression_samples.unwrap_or(self.samples.max(10_000))
    }

    /// Chunk size actually used.
    pub fn chunk(&self) -> usize {
        self.chunk.unwrap_or(2_000.max(3 * self.components))
    }
}

/// Which part of the computation a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sampling activations and folding them into the incremental PCA.
    Fitting,
    /// Fresh samples for the regression back to z.
    Regression,
}

/// A progress report: `done` of `total` samples of `phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done: usize,
    pub total: usize,
}

/// Why the PCA stopped.
#[derive(Debug, thiserror::Error)]
pub enum PcaError {
    #[error("cancelled")]
    Cancelled,
    #[error("invalid PCA settings: {0}")]
    Config(String),
    #[error(transparent)]
    Ipca(#[from] IpcaError),
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    #[error("the regression to z failed: the projected activations are rank-deficient (a component has no variance)")]
    Regression,
}

/// The result: GANSpace's arrays plus diagnostics.
#[derive(Debug, Clone)]
pub struct PcaOutput {
    pub components: Components,
    /// Fraction of the variance of z (around its mean) that `A·M` explains on the regression
    /// samples (1 for a linear layer with C = z_dim).
    pub regression_r2: f64,
    /// Total activation variance (sum over features), for scale.
    pub total_variance: f64,
    /// Whether every eigen-solve met its tolerance.
    pub converged: bool,
}

/// Runs GANSpace's PCA on `model` for the class mix `class_vec` (`(1, num_classes)`).
///
/// `cancel` is polled between generator batches (set it from a signal handler or the UI);
/// `progress` is called after every batch.
pub fn compute(
    model: &BigGan,
    class_vec: &Tensor,
    cfg: &PcaConfig,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<PcaOutput, PcaError> {
    let sampler = Sampler::new(model, class_vec, cfg)?;
    let (c, d) = (cfg.components, sampler.dim);
    let n = cfg.samples;
    let chunk = cfg.chunk();
    let r = cfg.regression_samples();
    if c == 0 || c > d {
        return Err(PcaError::Config(format!("--components must lie in 1..={d} (the layer has {d} values), got {c}")));
    }
    if n < c.max(2) {
        return Err(PcaError::Config(format!("{c} components need at least {} samples, got {n}", c.max(2))));
    }
    if chunk < c {
        return Err(PcaError::Config(format!(
            "the chunk size ({chunk}) must be at least the number of components ({c})"
        )));
    }
    if r <= c {
        return Err(PcaError::Config(format!(
            "the regression needs more samples than components ({c}), got {r} regression samples"
        )));
    }
    let seeds = Seeds::new(cfg.seed);

    // 1–2. Incremental PCA.
    let mut ipca = IncrementalPca::new(c, d, seeds.solver)?;
    let mut converged = true;
    let mut buf: Vec<f32> = Vec::with_capacity(chunk.min(n) * d);
    let mut done = 0;
    while done < n {
        let rows = chunk.min(n - done);
        buf.clear();
        sampler.fill(seeds.pca, done, rows, &mut buf, cancel, &mut |k| {
            progress(Progress { phase: Phase::Fitting, done: done + k, total: n })
        })?;
        ipca.partial_fit(&buf, rows)?;
        converged &= ipca.last_converged;
        tracing::debug!(
            "ipca chunk {done}..{}: {} eigensolver{}",
            done + rows,
            if ipca.last_iterative { "Krylov–Schur" } else { "dense" },
            if ipca.last_converged { "" } else { " (not converged)" }
        );
        done += rows;
        progress(Progress { phase: Phase::Fitting, done, total: n });
    }
    let comp = ipca.components().clone();
    let mean: Vec<f32> = ipca.mean().iter().map(|&m| m as f32).collect();
    let var = ipca.explained_variance();
    let stdev: Vec<f32> = var.iter().map(|v| v.max(0.0).sqrt() as f32).collect();
    let ratio: Vec<f32> = ipca.explained_variance_ratio().iter().map(|&v| v as f32).collect();

    // 4. Random-direction baseline on the last chunk (GANSpace: min(5000, chunk) samples).
    let random_stdevs = random_stdevs(&buf, d, &mean, c, seeds.random_dirs);

    // 3. Regression back to z.
    let (lat_comp, lat_mean, r2) = regress(&sampler, &comp, &mean, &stdev, r, seeds.regression, cancel, &mut |k| {
        progress(Progress { phase: Phase::Regression, done: k, total: r })
    })?;

    let components = Components {
        act_shape: sampler.act_shape.clone(),
        act_comp: comp.data,
        act_mean: mean,
        act_stdev: stdev,
        lat_comp,
        lat_mean,
        lat_stdev: vec![1.0; c],
        var_ratio: ratio,
        random_stdevs,
        source: "<memory>".into(),
    };
    Ok(PcaOutput { components, regression_r2: r2, total_variance: ipca.total_variance(), converged })
}

/// Independent random streams derived from the user's seed.
struct Seeds {
    pca: u64,
    regression: u64,
    solver: u64,
    random_dirs: u64,
}

impl Seeds {
    fn new(seed: u64) -> Self {
        let mut r = Rng::new(seed ^ 0x6761_6e73_7061_6365); // "ganspace"
        Self { pca: r.next_u64(), regression: r.next_u64(), solver: r.next_u64(), random_dirs: r.next_u64() }
    }
}

/// Draws latents and returns the chosen layer's activations as CPU rows.
struct Sampler<'a> {
    model: &'a BigGan,
    /// `(1, z_dim)` class embedding.
    embed: Tensor,
    layer: PcaLayer,
    truncation: f64,
    stats: StatsIndex,
    batch: usize,
    dim: usize,
    /// Per-sample activation shape as GANSpace stores it (`[1, D]` or `[1, C, H, W]`).
    act_shape: Vec<usize>,
}

impl<'a> Sampler<'a> {
    fn new(model: &'a BigGan, class_vec: &Tensor, cfg: &PcaConfig) -> Result<Self, PcaError> {
        if !(cfg.truncation > 0.0 && cfg.truncation <= 1.0) {
            return Err(PcaError::Config(format!("truncation must lie in (0, 1], got {}", cfg.truncation)));
        }
        let class_vec = class_vec.to_dtype(DType::F32)?.to_device(model.device())?;
        let (rows, nc) = class_vec.dims2()?;
        if rows != 1 || nc != model.cfg.num_classes {
            return Err(PcaError::Config(format!(
                "the class vector must be [1, {}], got [{rows}, {nc}]",
                model.cfg.num_classes
            )));
        }
        if let PcaLayer::Layer(i) = cfg.layer {
            let n = model.generator.layers.len();
            if i >= n {
                return Err(PcaError::Config(format!(
                    "layers.{i} does not exist: the generator has layers.0 … layers.{}",
                    n - 1
                )));
            }
        }
        let embed = model.embed(&class_vec)?;
        let stats = StatsIndex::new(cfg.truncation, model.cfg.n_stats)?;
        let batch = cfg.batch.unwrap_or(match cfg.layer {
            PcaLayer::GenZ => 500,
            PcaLayer::Layer(_) => 16,
        });
        let mut s = Self {
            model,
            embed,
            layer: cfg.layer,
            truncation: cfg.truncation,
            stats,
            batch: batch.max(1),
            dim: 0,
            act_shape: Vec::new(),
        };
        // One probe sample fixes the activation shape (as GANSpace does).
        let z = Tensor::zeros((1, model.cfg.z_dim), DType::F32, model.device())?;
        let act = s.activation(&z)?;
        s.act_shape = act.dims().to_vec();
        s.act_shape[0] = 1;
        s.dim = act.elem_count();
        Ok(s)
    }

    /// The layer's activation for latents `z` (`(b, z_dim)`), in its natural shape.
    fn activation(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let b = z.dim(0)?;
        let embed = self.embed.broadcast_as((b, self.model.cfg.z_dim))?.contiguous()?;
        let cond = Tensor::cat(&[z, &embed], 1)?;
        match self.layer {
            PcaLayer::GenZ => self.model.gen_z_raw(&cond),
            PcaLayer::Layer(i) => {
                let conds = vec![cond; self.model.cfg.num_latents()];
                let mut h = self.model.run_stage(0, None, &conds, self.stats)?;
                for stage in 1..=i + 1 {
                    h = self.model.run_stage(stage, Some(&h), &conds, self.stats)?;
                }
                Ok(h)
            }
        }
    }

    /// Latents `start..start+count` of the stream `base`.
    fn latents(&self, base: u64, start: usize, count: usize) -> candle_core::Result<Tensor> {
        crate::noise::truncated_noise(
            base.wrapping_add(start as u64),
            count,
            self.model.cfg.z_dim,
            self.truncation,
            self.model.device(),
        )
    }

    /// Appends the activations of samples `start..start+count` of stream `base` to `out`.
    fn fill(
        &self,
        base: u64,
        start: usize,
        count: usize,
        out: &mut Vec<f32>,
        cancel: &AtomicBool,
        tick: &mut dyn FnMut(usize),
    ) -> Result<(), PcaError> {
        let mut k = 0;
        while k < count {
            if cancel.load(Ordering::Relaxed) {
                return Err(PcaError::Cancelled);
            }
            let b = self.batch.min(count - k);
            let z = self.latents(base, start + k, b)?;
            let act = self.activation(&z)?;
            out.extend(act.flatten_all()?.to_device(&Device::Cpu)?.to_vec1::<f32>()?);
            k += b;
            tick(k);
        }
        Ok(())
    }
}

/// Stdev of the centred rows along `c` random unit directions (≤ 5,000 rows).
fn random_stdevs(rows: &[f32], d: usize, mean: &[f32], c: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut dirs = Mat::<f32>::zeros(c, d);
    for i in 0..c {
        let row = dirs.row_mut(i);
        row.iter_mut().for_each(|x| *x = rng.normal() as f32);
        let norm = row.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() as f32;
        row.iter_mut().for_each(|x| *x /= norm);
    }
    let n = (rows.len() / d.max(1)).min(5_000);
    let mut x = Mat::<f32>::zeros(n, d);
    for i in 0..n {
        x.row_mut(i).iter_mut().zip(&rows[i * d..(i + 1) * d]).zip(mean).for_each(|((o, &v), &m)| *o = v - m);
    }
    let Some(p) = matmul(&x, false, &dirs, true) else { return vec![0.0; c] };
    (0..c)
        .map(|j| {
            let col: Vec<f64> = (0..n).map(|i| p.at(i, j) as f64).collect();
            let mu = col.iter().sum::<f64>() / n.max(1) as f64;
            (col.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt() as f32
        })
        .collect()
}

/// GANSpace's least-squares regression from scaled PCA coordinates to z.
/// Returns (unit `lat_comp` rows, `lat_mean`, R²).
#[allow(clippy::too_many_arguments)]
fn regress(
    sampler: &Sampler,
    comp: &Mat<f32>,
    mean: &[f32],
    stdev: &[f32],
    r: usize,
    base: u64,
    cancel: &AtomicBool,
    tick: &mut dyn FnMut(usize),
) -> Result<(Vec<f32>, Vec<f32>, f64), PcaError> {
    let (c, d, zd) = (comp.rows, comp.cols, sampler.model.cfg.z_dim);
    let mut ata = Mat::<f64>::zeros(c, c);
    let mut atz = Mat::<f64>::zeros(c, zd);
    let mut zsum = vec![0.0f64; zd];
    let mut zsq = 0.0f64;
    let mut done = 0;
    let mut buf = Vec::new();
    while done < r {
        if cancel.load(Ordering::Relaxed) {
            return Err(PcaError::Cancelled);
        }
        let b = sampler.batch.min(r - done);
        let z = sampler.latents(base, done, b)?;
        let act = sampler.activation(&z)?;
        buf.clear();
        buf.extend(act.flatten_all()?.to_device(&Device::Cpu)?.to_vec1::<f32>()?);
        let mut x = Mat { rows: b, cols: d, data: std::mem::take(&mut buf) };
        for row in x.data.chunks_exact_mut(d) {
            row.iter_mut().zip(mean).for_each(|(v, &m)| *v -= m);
        }
        let coords = matmul(&x, false, comp, true).ok_or_else(|| PcaError::Config("projection shape".into()))?;
        buf = x.data;
        let a = Mat {
            rows: b,
            cols: c,
            data: coords
                .data
                .chunks_exact(c)
                .flat_map(|row| row.iter().zip(stdev).map(|(&v, &s)| v as f64 / s.max(f32::MIN_POSITIVE) as f64))
                .collect(),
        };
        let zv = z.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
        let zm = Mat { rows: b, cols: zd, data: zv.iter().map(|&v| v as f64).collect() };
        add_into(&mut ata, &matmul(&a, true, &a, false).ok_or_else(|| PcaError::Config("AᵀA shape".into()))?);
        add_into(&mut atz, &matmul(&a, true, &zm, false).ok_or_else(|| PcaError::Config("AᵀZ shape".into()))?);
        for row in zm.data.chunks_exact(zd) {
            zsum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            zsq += row.iter().map(|v| v * v).sum::<f64>();
        }
        done += b;
        tick(done);
    }
    let m = cholesky_solve(&ata, &atz).ok_or(PcaError::Regression)?;
    // R² from the accumulated moments: SS_res = Σz² − 2·tr(MᵀAᵀZ) + tr(MᵀAᵀA·M).
    let cross: f64 = m.data.iter().zip(&atz.data).map(|(a, b)| a * b).sum();
    let am = matmul(&ata, false, &m, false).ok_or(PcaError::Regression)?;
    let fit: f64 = m.data.iter().zip(&am.data).map(|(a, b)| a * b).sum();
    let ss_res = zsq - 2.0 * cross + fit;
    let lat_mean: Vec<f64> = zsum.iter().map(|s| s / r as f64).collect();
    let ss_tot = zsq - r as f64 * lat_mean.iter().map(|v| v * v).sum::<f64>();
    let r2 = if ss_tot > 0.0 { 1.0 - ss_res / ss_tot } else { 0.0 };
    let mut lat_comp = Vec::with_capacity(c * zd);
    for i in 0..c {
        let row = m.row(i);
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        lat_comp.extend(row.iter().map(|&v| if norm > 0.0 { (v / norm) as f32 } else { 0.0 }));
    }
    Ok((lat_comp, lat_mean.iter().map(|&v| v as f32).collect(), r2))
}

fn add_into(acc: &mut Mat<f64>, x: &Mat<f64>) {
    acc.data.iter_mut().zip(&x.data).for_each(|(a, b)| *a += b);
}
