//! Pooling with PyTorch's semantics and a correct backward, where candle 0.11.1 has none:
//! - `max_pool2d(k, stride, padding)`: padding counts as −∞ (never wins), the first maximum of a
//!   window in row-major order takes the gradient (PyTorch's CPU tie rule; NaN wins), any
//!   `k ≠ stride` (ResNet's and the CGN classifier's MaxPool(3, s2, p1)); the forward pass records
//!   each output's source so the backward pass is one scatter;
//! - `avg_pool2d(k, stride)`: floor mode, so when windows do not tile the input (AvgPool(7) on
//!   8×8) the pixels outside every window get no gradient.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::taps::Taps;
use super::{f32_slice, for_each_chunk};

/// Window size, stride and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Pool {
    fn out(&self, n: usize) -> Result<usize> {
        if self.k == 0 || self.stride == 0 || n + 2 * self.padding < self.k || 2 * self.padding > self.k {
            candle_core::bail!(
                "pool: window {} stride {} padding {} does not fit a side of {n} (padding at most half the window)",
                self.k,
                self.stride,
                self.padding
            );
        }
        Ok((n + 2 * self.padding - self.k) / self.stride + 1)
    }

    fn geom(&self, l: &Layout) -> Result<[usize; 6]> {
        let &[b, c, h, w] = l.dims() else { candle_core::bail!("pool: expected a 4-D tensor, got {:?}", l.dims()) };
        Ok([b * c, h, w, self.out(h)?, self.out(w)?, 0])
    }

    /// The rows `[y0, y1)` and columns `[x0, x1)` of output `(oy, ox)`'s window inside the input.
    #[inline]
    fn bounds(&self, h: usize, w: usize, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        let ys = (oy * self.stride) as isize - self.padding as isize;
        let xs = (ox * self.stride) as isize - self.padding as isize;
        let clamp = |v: isize, n: usize| v.clamp(0, n as isize) as usize;
        (clamp(ys, h), clamp(ys + self.k as isize, h), clamp(xs, w), clamp(xs + self.k as isize, w))
    }
}

/// Max pooling; the forward pass keeps each output's source index for the backward pass.
#[derive(Debug, Clone)]
struct MaxPool(Pool, std::sync::Arc<std::sync::Mutex<Vec<u32>>>);

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "intervene-max-pool2d"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let [planes, h, w, oh, ow, _] = self.0.geom(l)?;
        let x = f32_slice(s, l, "max_pool2d input")?;
        let mut y = crate::ops::output_buffer(planes * oh * ow);
        let mut idx = vec![0u32; planes * oh * ow];
        let p = self.0;
        let taps = Taps::window(h, w, p.k, p.stride, p.padding, oh, ow);
        let run = |(i, (out, ix)): (usize, (&mut [f32], &mut [u32]))| {
            taps.max_pool(&x[i * h * w..(i + 1) * h * w], out, ix);
        };
        if rayon::current_num_threads() > 1 {
            y.par_chunks_mut(oh * ow).zip(idx.par_chunks_mut(oh * ow)).enumerate().for_each(run);
        } else {
            y.chunks_mut(oh * ow).zip(idx.chunks_mut(oh * ow)).enumerate().for_each(run);
        }
        if let Ok(mut g) = self.1.lock() {
            *g = idx;
        }
        let d = l.dims();
        Ok((CpuStorage::F32(y), Shape::from((d[0], d[1], oh, ow))))
    }
    fn bwd(&self, x: &Tensor, _: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let idx = self.1.lock().map_err(|_| candle_core::Error::Msg("max_pool2d: poisoned".into()))?.clone();
        Ok(Some(x.apply_op2_no_bwd(&dy.contiguous()?, &MaxPoolGrad(self.0, idx))?))
    }
}

/// `(x, dy) → dx`: each output's gradient goes to its recorded source.
struct MaxPoolGrad(Pool, Vec<u32>);

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "intervene-max-pool2d-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let [planes, h, w, oh, ow, _] = self.0.geom(l1)?;
        if l2.dims().iter().product::<usize>() != planes * oh * ow {
            candle_core::bail!("max_pool2d backward: gradient {:?} does not fit input {:?}", l2.dims(), l1.dims());
        }
        let _ = f32_slice(s1, l1, "max_pool2d input")?;
        let dy = f32_slice(s2, l2, "max_pool2d gradient")?;
        if self.1.len() != dy.len() {
            candle_core::bail!("max_pool2d backward: {} recorded indices for {} gradients", self.1.len(), dy.len());
        }
        let mut dx = vec![0f32; planes * h * w];
        for_each_chunk(&mut dx, h * w, |i, out| {
            let dp = &dy[i * oh * ow..(i + 1) * oh * ow];
            let ip = &self.1[i * oh * ow..(i + 1) * oh * ow];
            for (&a, &g) in ip.iter().zip(dp) {
                out[a as usize] += g;
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[derive(Debug, Clone, Copy)]
struct AvgPool(Pool);

impl CustomOp1 for AvgPool {
    fn name(&self) -> &'static str {
        "intervene-avg-pool2d"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let [planes, h, w, oh, ow, _] = self.0.geom(l)?;
        let x = f32_slice(s, l, "avg_pool2d input")?;
        let inv = 1.0 / (self.0.k * self.0.k) as f32;
        let mut y = crate::ops::output_buffer(planes * oh * ow);
        for_each_chunk(&mut y, oh * ow, |i, out| {
            let xp = &x[i * h * w..(i + 1) * h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    let (y0, y1, x0, x1) = self.0.bounds(h, w, oy, ox);
                    let mut acc = 0f32;
                    for y in y0..y1 {
                        acc += xp[y * w + x0..y * w + x1].iter().sum::<f32>();
                    }
                    out[oy * ow + ox] = acc * inv;
                }
            }
        });
        let d = l.dims();
        Ok((CpuStorage::F32(y), Shape::from((d[0], d[1], oh, ow))))
    }
    fn bwd(&self, x: &Tensor, _: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let d = x.dims();
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&AvgPoolGrad(self.0, [d[0], d[1], d[2], d[3]]))?))
    }
}

/// `dy → dx` for an input of the given dims.
struct AvgPoolGrad(Pool, [usize; 4]);

impl CustomOp1 for AvgPoolGrad {
    fn name(&self) -> &'static str {
        "intervene-avg-pool2d-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let [b, c, h, w] = self.1;
        let (oh, ow) = (self.0.out(h)?, self.0.out(w)?);
        if l.dims() != [b, c, oh, ow] {
            candle_core::bail!("avg_pool2d backward: gradient {:?} does not fit input {:?}", l.dims(), self.1);
        }
        let dy = f32_slice(s, l, "avg_pool2d gradient")?;
        let inv = 1.0 / (self.0.k * self.0.k) as f32;
        let mut dx = vec![0f32; b * c * h * w];
        for_each_chunk(&mut dx, h * w, |i, out| {
            let dp = &dy[i * oh * ow..(i + 1) * oh * ow];
            for oy in 0..oh {
                for ox in 0..ow {
                    let g = dp[oy * ow + ox] * inv;
                    let (y0, y1, x0, x1) = self.0.bounds(h, w, oy, ox);
                    for y in y0..y1 {
                        out[y * w + x0..y * w + x1].iter_mut().for_each(|v| *v += g);
                    }
                }
            }
        });
        Ok((CpuStorage::F32(dx), Shape::from(self.1.to_vec())))
    }
}

/// Max pooling `(b, c, h, w) → (b, c, oh, ow)` on the CPU.
pub fn max_pool2d(x: &Tensor, p: Pool) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool(p, Default::default()))
}

/// Average pooling (no padding) on the CPU.
pub fn avg_pool2d(x: &Tensor, p: Pool) -> Result<Tensor> {
    if p.padding != 0 {
        candle_core::bail!("avg_pool2d: padding is not supported");
    }
    x.contiguous()?.apply_op1(AvgPool(p))
}
