//! General convolutions for classifiers (any kernel, stride and zero padding; groups = 1 or
//! depthwise) with the eval-mode batch norm already folded into weight and bias, the residual
//! and the ReLU fused into the output pass. im2col + one GEMM per sample (gemm crate, rayon).
//!
//! Used for the no-gradient part of a CAM (everything up to the target layer) and for plain
//! classification; the differentiable candle path stays for what a backward pass needs.

use super::gemm::{product, Parallelism, View};
use rayon::prelude::*;

use super::OpsError;

/// A convolution with its folded bias.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec<'a> {
    /// `(o, c/groups, k, k)`.
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// Depthwise (`groups = c = o`) instead of a dense convolution.
    pub depthwise: bool,
}

/// What follows the convolution in the same pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Epilogue {
    None,
    Relu,
    /// ReLU6 (MobileNet).
    Relu6,
}

impl ConvSpec<'_> {
    /// Output spatial size for an `h × w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let o = |n: usize| (n + 2 * self.padding - self.kernel) / self.stride + 1;
        (o(h), o(w))
    }
}

/// `x (b, c, h, w)` → `(b, o, oh, ow)`; `residual` (same shape as the output) is added before the
/// epilogue.
pub fn conv(
    x: &[f32],
    dims: [usize; 4],
    s: &ConvSpec,
    residual: Option<&[f32]>,
    epi: Epilogue,
) -> Result<(Vec<f32>, [usize; 4]), OpsError> {
    let [b, c, h, w] = dims;
    let (o, k) = (s.out_channels, s.kernel);
    let bad = |msg: String| Err(OpsError::Shape { op: "strided conv", msg });
    if x.len() != b * c * h * w || h + 2 * s.padding < k || w + 2 * s.padding < k || s.stride == 0 {
        return bad(format!("input {dims:?} does not fit kernel {k}, stride {}, padding {}", s.stride, s.padding));
    }
    let per_out = if s.depthwise { 1 } else { c };
    if s.weight.len() != o * per_out * k * k || s.bias.len() != o || (s.depthwise && o != c) {
        return bad(format!("weight {} / bias {} do not fit ({o}, {per_out}, {k}, {k})", s.weight.len(), s.bias.len()));
    }
    let (oh, ow) = s.out_hw(h, w);
    let n = oh * ow;
    if residual.is_some_and(|r| r.len() != b * o * n) {
        return bad("residual has the wrong size".into());
    }
    let mut out = super::output_buffer(b * o * n);
    for bi in 0..b {
        let xs = &x[bi * c * h * w..(bi + 1) * c * h * w];
        let dst = &mut out[bi * o * n..(bi + 1) * o * n];
        if s.depthwise {
            depthwise(xs, c, h, w, s, oh, ow, dst);
        } else if k == 1 && s.stride == 1 && s.padding == 0 {
            gemm_bias(o, n, c, s.weight, xs, s.bias, dst);
        } else {
            let kk = c * k * k;
            let mut col = super::output_buffer(kk * n);
            col.par_chunks_mut(n).enumerate().for_each(|(row, d)| {
                let (ci, ky, kx) = (row / (k * k), (row / k) % k, row % k);
                let plane = &xs[ci * h * w..(ci + 1) * h * w];
                for oy in 0..oh {
                    let iy = (oy * s.stride + ky) as isize - s.padding as isize;
                    let line = &mut d[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= h as isize {
                        line.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    if s.stride == 1 {
                        // Output columns whose input column kx − pad + ox lies inside the row.
                        let shift = kx as isize - s.padding as isize;
                        let lo = (-shift).clamp(0, ow as isize) as usize;
                        let hi = (w as isize - shift).clamp(lo as isize, ow as isize) as usize;
                        line[..lo].fill(0.0);
                        line[hi..].fill(0.0);
                        let start = (lo as isize + shift) as usize;
                        line[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                        continue;
                    }
                    for (ox, v) in line.iter_mut().enumerate() {
                        let ix = (ox * s.stride + kx) as isize - s.padding as isize;
                        *v = if ix < 0 || ix >= w as isize { 0.0 } else { src[ix as usize] };
                    }
                }
            });
            gemm_bias(o, n, kk, s.weight, &col, s.bias, dst);
        }
        let res = residual.map(|r| &r[bi * o * n..(bi + 1) * o * n]);
        dst.par_chunks_mut(n).enumerate().for_each(|(ch, d)| {
            if let Some(r) = res {
                for (v, a) in d.iter_mut().zip(&r[ch * n..(ch + 1) * n]) {
                    *v += a;
                }
            }
            match epi {
                Epilogue::None => {}
                Epilogue::Relu => d.iter_mut().for_each(|v| *v = v.max(0.0)),
                Epilogue::Relu6 => d.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
            }
        });
    }
    Ok((out, [b, o, oh, ow]))
}

/// `dst (o, n) = w (o, k) · rhs (k, n) + bias`.
fn gemm_bias(o: usize, n: usize, k: usize, w: &[f32], rhs: &[f32], bias: &[f32], dst: &mut [f32]) {
    dst.par_chunks_mut(n).zip(bias).for_each(|(d, &b)| d.fill(b));
    // SAFETY: dst holds o·n values (rows of n), w holds o·k, rhs holds k·n, all contiguous.
    unsafe {
        let d = View::rows_mut(dst.as_mut_ptr(), n);
        product(o, n, k, d, true, View::rows(w, k), View::rows(rhs, n), 1.0, Parallelism::Rayon(0));
    }
}

#[allow(clippy::too_many_arguments)]
fn depthwise(x: &[f32], c: usize, h: usize, w: usize, s: &ConvSpec, oh: usize, ow: usize, dst: &mut [f32]) {
    let k = s.kernel;
    dst.par_chunks_mut(oh * ow).enumerate().take(c).for_each(|(ch, d)| {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        let wt = &s.weight[ch * k * k..(ch + 1) * k * k];
        let b = s.bias[ch];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = b;
                for ky in 0..k {
                    let iy = (oy * s.stride + ky) as isize - s.padding as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let row = &plane[iy as usize * w..(iy as usize + 1) * w];
                    for kx in 0..k {
                        let ix = (ox * s.stride + kx) as isize - s.padding as isize;
                        if ix >= 0 && ix < w as isize {
                            acc += wt[ky * k + kx] * row[ix as usize];
                        }
                    }
                }
                d[oy * ow + ox] = acc;
            }
        }
    });
}
