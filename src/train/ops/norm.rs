//! Training-mode batch normalisation (optionally followed by ReLU or LeakyReLU) as one fused op:
//! per-channel batch mean and biased variance over `(b, h, w)`, `y = (x − μ)·γ/√(σ² + eps) + β`,
//! then `max(y, 0)` or `y > 0 ? y : slope·y`. Fusing the activation saves a pass each way and a
//! graph node, whose activation-sized gradient candle would otherwise zero and add. candle-nn's
//! version transposes the batch twice and builds the backward from a dozen elementwise ops;
//! here the forward is two passes and the backward two.
//!
//! Backward (`x̂ = (x − μ)/σ`, `g = dy·[y > 0]` after a fused ReLU, `dy·(y > 0 ? 1 : slope)`
//! after a LeakyReLU (positive slope: y > 0 exactly where the normalised value is), n = b·h·w):
//! `dβ = Σ g`, `dγ = Σ g·x̂`, `dx = γ/σ · (g − dβ/n − x̂·dγ/n)`.
//! Sums use f64 accumulators in a fixed order. The per-plane loops live in
//! [`super::norm_loops`], which runs them on AVX-512 where the CPU has it.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::f32_slice;
use super::norm_loops::{centred_sums, grad_input, grad_sums, normalise, GradCoef};
use super::reduce::sum_map;

/// The batch statistics of the last forward pass (for the running averages).
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    pub mean: Vec<f32>,
    /// Biased variance (divided by n).
    pub var: Vec<f32>,
    /// Values per channel (`b·h·w`).
    pub n: usize,
}

/// The activation fused after the normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BnAct {
    Identity,
    Relu,
    /// LeakyReLU with this positive slope.
    Leaky(f32),
}

impl BnAct {
    /// The activation of a normalised value.
    #[inline(always)]
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            BnAct::Identity => v,
            BnAct::Relu => v.max(0.0),
            BnAct::Leaky(slope) => super::pointwise::leaky(v, slope),
        }
    }

    /// `dy` through the activation, from its output `y`.
    #[inline(always)]
    pub(crate) fn grad(self, d: f32, y: f32) -> f32 {
        match self {
            BnAct::Identity => d,
            BnAct::Relu => {
                if y > 0.0 {
                    d
                } else {
                    0.0
                }
            }
            BnAct::Leaky(a) => super::pointwise::leaky_grad(d, y, a),
        }
    }
}

#[derive(Debug, Clone)]
struct BnTrain {
    eps: f64,
    act: BnAct,
    stats: Arc<Mutex<BatchStats>>,
}

fn bchw(l: &Layout) -> Result<(usize, usize, usize)> {
    match l.dims() {
        &[b, c, h, w] => Ok((b, c, h * w)),
        &[b, c] => Ok((b, c, 1)),
        d => candle_core::bail!("batch_norm: expected (b, c) or (b, c, h, w), got {d:?}"),
    }
}

/// Runs `f(channel)` for every channel, in parallel when the pool has threads, collecting the results.
fn per_channel<T: Send>(c: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if rayon::current_num_threads() > 1 {
        (0..c).into_par_iter().map(f).collect()
    } else {
        (0..c).map(f).collect()
    }
}

/// Calls `f(channel, plane)` on each sample's plane of every channel of `out (b, c, hw)`.
fn write_channels(out: &mut [f32], c: usize, hw: usize, f: impl Fn(usize, usize, &mut [f32]) + Sync) {
    if rayon::current_num_threads() > 1 {
        out.par_chunks_mut(hw).enumerate().for_each(|(i, p)| f(i % c, i / c, p));
    } else {
        out.chunks_mut(hw).enumerate().for_each(|(i, p)| f(i % c, i / c, p));
    }
}

/// The forward pass on `x (b, c, hw)`: the output and the batch statistics.
pub(super) fn forward_planes(
    x: &[f32],
    (b, c, hw): (usize, usize, usize),
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    act: BnAct,
) -> Result<(Vec<f32>, BatchStats)> {
    if gamma.len() != c || beta.len() != c {
        candle_core::bail!("batch_norm: {} channels but weight {} / bias {}", c, gamma.len(), beta.len());
    }
    let n = b * hw;
    let moments = per_channel(c, |ch| {
        let plane = |bi: usize| &x[(bi * c + ch) * hw..][..hw];
        let mean = (0..b).map(|bi| sum_map(plane(bi), |v| v)).sum::<f64>() / n as f64;
        let m = mean as f32;
        // Two-pass variance around the f32-rounded mean, corrected for that rounding.
        let (mut q, mut d) = (0f64, 0f64);
        for bi in 0..b {
            let (pq, pd) = centred_sums(plane(bi), m);
            q += pq;
            d += pd;
        }
        let d = d / n as f64;
        (mean, (q / n as f64 - d * d).max(0.0))
    });
    let coef: Vec<(f32, f32)> = moments
        .iter()
        .enumerate()
        .map(|(ch, &(m, v))| {
            let a = gamma[ch] as f64 / (v + eps).sqrt();
            (a as f32, (beta[ch] as f64 - m * a) as f32)
        })
        .collect();
    let mut y = crate::ops::output_buffer(x.len());
    write_channels(&mut y, c, hw, |ch, bi, out| {
        let (a, sh) = coef[ch];
        normalise(out, &x[(bi * c + ch) * hw..][..hw], a, sh, act);
    });
    let stats = BatchStats {
        mean: moments.iter().map(|m| m.0 as f32).collect(),
        var: moments.iter().map(|m| m.1 as f32).collect(),
        n,
    };
    Ok((y, stats))
}

impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        "intervene-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, hw) = bchw(l1)?;
        let x = f32_slice(s1, l1, "batch_norm input")?;
        let gamma = f32_slice(s2, l2, "batch_norm weight")?;
        let beta = f32_slice(s3, l3, "batch_norm bias")?;
        let (y, stats) = forward_planes(x, (b, c, hw), gamma, beta, self.eps, self.act)?;
        if let Ok(mut st) = self.stats.lock() {
            *st = stats;
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats =
            self.stats.lock().map_err(|_| candle_core::Error::Msg("batch_norm: stats poisoned".into()))?.clone();
        let gamma_v = gamma.flatten_all()?.to_vec1::<f32>()?;
        let (dx, dg, db) = backward(x, y, dy, stats, gamma_v, self.eps, self.act, x.track_op())?;
        let c = dg.len();
        let dev = x.device();
        let dgamma = if gamma.track_op() { Some(Tensor::from_vec(dg, c, dev)?) } else { None };
        let dbeta = if beta.track_op() { Some(Tensor::from_vec(db, c, dev)?) } else { None };
        Ok((dx, dgamma, dbeta))
    }
}

/// The backward pass from the forward's input `x`, output `y` and statistics: `dx` (when
/// `need_dx`), `dγ`, `dβ`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    stats: BatchStats,
    gamma: Vec<f32>,
    eps: f64,
    act: BnAct,
    need_dx: bool,
) -> Result<(Option<Tensor>, Vec<f32>, Vec<f32>)> {
    let grad = BnTrainGrad { eps, act, stats, gamma, need_dx, params: Mutex::new(None) };
    let dx = x.apply_op3_no_bwd(&dy.contiguous()?, &y.contiguous()?, &grad)?;
    let (dg, db) = grad.params.lock().ok().and_then(|mut p| p.take()).unwrap_or_default();
    Ok((need_dx.then_some(dx), dg, db))
}

/// `(x, dy, y) → dx`; `dγ`, `dβ` are left in `params`.
struct BnTrainGrad {
    eps: f64,
    act: BnAct,
    stats: BatchStats,
    gamma: Vec<f32>,
    need_dx: bool,
    params: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

impl CustomOp3 for BnTrainGrad {
    fn name(&self) -> &'static str {
        "intervene-batch-norm-train-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, hw) = bchw(l1)?;
        let x = f32_slice(s1, l1, "batch_norm input")?;
        let dy = f32_slice(s2, l2, "batch_norm gradient")?;
        let y = f32_slice(s3, l3, "batch_norm output")?;
        if dy.len() != x.len() || y.len() != x.len() || self.stats.mean.len() != c {
            candle_core::bail!("batch_norm backward: shapes do not match the forward pass");
        }
        let n = (b * hw) as f64;
        let act = self.act;
        let inv: Vec<f64> = self.stats.var.iter().map(|&v| 1.0 / (v as f64 + self.eps).sqrt()).collect();
        let sums = per_channel(c, |ch| {
            let (m, is) = (self.stats.mean[ch], inv[ch] as f32);
            let (mut sg, mut sgx) = (0f64, 0f64);
            for bi in 0..b {
                let o = (bi * c + ch) * hw;
                let (pg, pgx) = grad_sums(&x[o..o + hw], &dy[o..o + hw], &y[o..o + hw], m, is, act);
                sg += pg;
                sgx += pgx;
            }
            (sg, sgx)
        });
        if let Ok(mut p) = self.params.lock() {
            *p = Some((sums.iter().map(|s| s.1 as f32).collect(), sums.iter().map(|s| s.0 as f32).collect()));
        }
        if !self.need_dx {
            return Ok((CpuStorage::F32(vec![0.0]), Shape::from(1)));
        }
        let mut dx = crate::ops::output_buffer(x.len());
        write_channels(&mut dx, c, hw, |ch, bi, out| {
            let o = (bi * c + ch) * hw;
            let is = inv[ch] as f32;
            let coef = GradCoef {
                mean: self.stats.mean[ch],
                inv_std: is,
                scale: self.gamma[ch] * is,
                mean_g: (sums[ch].0 / n) as f32,
                mean_gx: (sums[ch].1 / n) as f32,
            };
            grad_input(&mut out[..hw], &x[o..o + hw], &dy[o..o + hw], &y[o..o + hw], coef, act);
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Training-mode batch norm of `x (b, c[, h, w])` with affine `gamma`, `beta` (`(c)`), followed
/// by `act`. Returns the output and the batch statistics (for the running averages).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: BnAct,
) -> Result<(Tensor, BatchStats)> {
    let stats = Arc::new(Mutex::new(BatchStats::default()));
    let op = BnTrain { eps, act, stats: stats.clone() };
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let s = stats.lock().map_err(|_| candle_core::Error::Msg("batch_norm: stats poisoned".into()))?.clone();
    Ok((y, s))
}
