//! Small differentiable ops the generators need, each with a one- or two-pass backward:
//! LeakyReLU, nearest ×2 upsampling, and instance norm without affine (biased variance), whose
//! candle compositions build several temporaries per pass (the upsample's backward is a grouped
//! convolution).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, for_each_chunk};

fn dims4(l: &Layout, op: &str) -> Result<[usize; 4]> {
    match *l.dims() {
        [a, b, c, d] => Ok([a, b, c, d]),
        ref d => candle_core::bail!("{op}: expected a 4-D tensor, got {d:?}"),
    }
}

/// LeakyReLU of one value (`slope` positive).
#[inline(always)]
pub(crate) fn leaky(v: f32, slope: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        v * slope
    }
}

/// LeakyReLU's gradient `d` taken through its output `y`: for a positive slope, `y > 0` exactly
/// where the input was.
#[inline(always)]
pub(crate) fn leaky_grad(d: f32, y: f32, slope: f32) -> f32 {
    if y > 0.0 {
        d
    } else {
        d * slope
    }
}

struct LeakyRelu(f32);

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "intervene-leaky-relu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "leaky_relu input")?;
        let a = self.0;
        Ok((CpuStorage::F32(x.iter().map(|&v| leaky(v, a)).collect()), l.shape().clone()))
    }
    fn bwd(&self, _: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&dy.contiguous()?, &LeakyReluGrad(self.0))?))
    }
}

/// `(y, dy) → dy·(y > 0 ? 1 : slope)` (for a positive slope, y > 0 exactly when x > 0).
struct LeakyReluGrad(f32);

impl CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "intervene-leaky-relu-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = f32_slice(s1, l1, "leaky_relu output")?;
        let dy = f32_slice(s2, l2, "leaky_relu gradient")?;
        let a = self.0;
        Ok((CpuStorage::F32(y.iter().zip(dy).map(|(&y, &d)| leaky_grad(d, y, a)).collect()), l1.shape().clone()))
    }
}

/// LeakyReLU with a positive `slope`.
pub fn leaky_relu(x: &Tensor, slope: f32) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.maximum(&(x * slope as f64)?);
    }
    x.contiguous()?.apply_op1(LeakyRelu(slope))
}

/// Nearest ×2 upsampling of the `h × w` planes of `x` into the `2h × 2w` planes of `y` (as many
/// planes as `y` holds): each source row is widened once and its copy is the row below.
pub(crate) fn upsample2_planes(x: &[f32], h: usize, w: usize, y: &mut [f32]) {
    let w2 = 2 * w;
    for_each_chunk(y, 4 * h * w, |i, out| {
        let p = &x[i * h * w..(i + 1) * h * w];
        for (src, rows) in p.chunks_exact(w).zip(out.chunks_exact_mut(2 * w2)) {
            let (top, bottom) = rows.split_at_mut(w2);
            for (pair, &v) in top.chunks_exact_mut(2).zip(src) {
                pair[0] = v;
                pair[1] = v;
            }
            bottom.copy_from_slice(top);
        }
    });
}

/// The adjoint of [`upsample2_planes`]: each 2×2 block of the `2h × 2w` planes of `dy` summed
/// into the `h × w` planes of `dx` (as many planes as `dx` holds).
pub(crate) fn downsum2_planes(dy: &[f32], h: usize, w: usize, dx: &mut [f32]) {
    let w2 = 2 * w;
    for_each_chunk(dx, h * w, |i, out| {
        let p = &dy[i * 4 * h * w..(i + 1) * 4 * h * w];
        for (rows, o) in p.chunks_exact(2 * w2).zip(out.chunks_exact_mut(w)) {
            let (top, bottom) = rows.split_at(w2);
            for ((o, t), b) in o.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                *o = t[0] + t[1] + b[0] + b[1];
            }
        }
    });
}

struct Upsample2;

impl CustomOp1 for Upsample2 {
    fn name(&self) -> &'static str {
        "intervene-upsample-nearest-2x"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let [b, c, h, w] = dims4(l, "upsample")?;
        let x = f32_slice(s, l, "upsample input")?;
        let mut y = crate::ops::output_buffer(b * c * 4 * h * w);
        upsample2_planes(x, h, w, &mut y);
        Ok((CpuStorage::F32(y), Shape::from((b, c, 2 * h, 2 * w))))
    }
    fn bwd(&self, _: &Tensor, _: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&Upsample2Grad)?))
    }
}

/// Sums each 2×2 block of the gradient.
struct Upsample2Grad;

impl CustomOp1 for Upsample2Grad {
    fn name(&self) -> &'static str {
        "intervene-upsample-nearest-2x-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let [b, c, h2, w2] = dims4(l, "upsample backward")?;
        let (h, w) = (h2 / 2, w2 / 2);
        let dy = f32_slice(s, l, "upsample gradient")?;
        let mut dx = crate::ops::output_buffer(b * c * h * w);
        downsum2_planes(dy, h, w, &mut dx);
        Ok((CpuStorage::F32(dx), Shape::from((b, c, h, w))))
    }
}

/// Nearest-neighbour ×2 upsampling.
pub fn upsample2(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        let (_, _, h, w) = x.dims4()?;
        return x.upsample_nearest2d(2 * h, 2 * w);
    }
    x.contiguous()?.apply_op1(Upsample2)
}

struct InstanceNorm {
    eps: f64,
    /// 1/σ per plane, kept for the backward pass.
    inv: Arc<Mutex<Vec<f32>>>,
}

impl CustomOp1 for InstanceNorm {
    fn name(&self) -> &'static str {
        "intervene-instance-norm"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let [b, c, h, w] = dims4(l, "instance_norm")?;
        let hw = h * w;
        let x = f32_slice(s, l, "instance_norm input")?;
        let mut y = crate::ops::output_buffer(x.len());
        let mut inv = vec![0f32; b * c];
        let eps = self.eps;
        let run = |(i, (out, iv)): (usize, (&mut [f32], &mut f32))| {
            let p = &x[i * hw..(i + 1) * hw];
            let mean = super::reduce::sum_map(p, |v| v) / hw as f64;
            let m = mean as f32;
            let d = super::reduce::sum_map(p, |v| v - m) / hw as f64;
            let var = (super::reduce::sum_map(p, |v| (v - m) * (v - m)) / hw as f64 - d * d).max(0.0);
            let is = 1.0 / (var + eps).sqrt();
            *iv = is as f32;
            let (m, is) = (mean as f32, is as f32);
            out.iter_mut().zip(p).for_each(|(o, &v)| *o = (v - m) * is);
        };
        if rayon::current_num_threads() > 1 {
            y.par_chunks_mut(hw).zip(inv.par_iter_mut()).enumerate().for_each(run);
        } else {
            y.chunks_mut(hw).zip(inv.iter_mut()).enumerate().for_each(run);
        }
        if let Ok(mut g) = self.inv.lock() {
            *g = inv;
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
    fn bwd(&self, _: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let inv = self.inv.lock().map_err(|_| candle_core::Error::Msg("instance_norm: poisoned".into()))?.clone();
        Ok(Some(y.apply_op2_no_bwd(&dy.contiguous()?, &InstanceNormGrad(inv))?))
    }
}

/// `(x̂, dy) → dx = (dy − mean(dy) − x̂·mean(dy·x̂))/σ` per plane.
struct InstanceNormGrad(Vec<f32>);

impl CustomOp2 for InstanceNormGrad {
    fn name(&self) -> &'static str {
        "intervene-instance-norm-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let [_, _, h, w] = dims4(l1, "instance_norm backward")?;
        let hw = h * w;
        let xh = f32_slice(s1, l1, "instance_norm output")?;
        let dy = f32_slice(s2, l2, "instance_norm gradient")?;
        let mut dx = crate::ops::output_buffer(xh.len());
        for_each_chunk(&mut dx, hw, |i, out| {
            let (p, d) = (&xh[i * hw..(i + 1) * hw], &dy[i * hw..(i + 1) * hw]);
            let md = super::reduce::sum_map(d, |v| v) / hw as f64;
            let mdx = super::reduce::sum_map2(d, p, |a, b| a * b) / hw as f64;
            let (md, mdx, is) = (md as f32, mdx as f32, self.0[i]);
            out.iter_mut().zip(d.iter().zip(p)).for_each(|(o, (&g, &xh))| *o = (g - md - xh * mdx) * is);
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Instance norm without affine parameters (per sample and channel over H×W).
pub fn instance_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return crate::models::cgn_mnist::instance_norm(x);
    }
    x.contiguous()?.apply_op1(InstanceNorm { eps, inv: Arc::default() })
}
