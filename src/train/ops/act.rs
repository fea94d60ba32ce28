//! ReLU with a one-pass backward (`dy·[y > 0]`, PyTorch's rule: no gradient at 0). candle's
//! own backward builds a zeros tensor, a comparison, a cast and a product.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::f32_slice;

const CHUNK: usize = 1 << 14;

/// `f` over two equal-length slices into a new vector. Collected, not written into a zeroed
/// buffer: the zeroing `memset` cost as much as the map (2 % of an MNIST-CNN step).
fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync + Send) -> Vec<f32> {
    if rayon::current_num_threads() > 1 && a.len() > 4 * CHUNK {
        let mut out = Vec::new();
        a.par_iter().zip(b).with_min_len(CHUNK).map(|(&a, &b)| f(a, b)).collect_into_vec(&mut out);
        out
    } else {
        a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()
    }
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "intervene-relu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "relu input")?;
        Ok((CpuStorage::F32(map2(x, x, |v, _| v.max(0.0))), l.shape().clone()))
    }
    fn bwd(&self, _: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&dy.contiguous()?, &ReluGrad)?))
    }
}

/// `(y, dy) → dy·[y > 0]`.
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "intervene-relu-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = f32_slice(s1, l1, "relu output")?;
        let dy = f32_slice(s2, l2, "relu gradient")?;
        if y.len() != dy.len() {
            candle_core::bail!("relu backward: {} outputs, {} gradients", y.len(), dy.len());
        }
        Ok((CpuStorage::F32(map2(y, dy, |y, d| if y > 0.0 { d } else { 0.0 })), l1.shape().clone()))
    }
}

/// ReLU on the CPU with the one-pass backward.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

/// `relu(a + b)`: a residual block's end. As two nodes, candle would keep the sum, and in the
/// backward pass zero and add its gradient before handing it on to both inputs.
struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "intervene-add-relu"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            candle_core::bail!("add_relu: shapes {:?} and {:?} differ", l1.dims(), l2.dims());
        }
        let a = f32_slice(s1, l1, "add_relu input")?;
        let b = f32_slice(s2, l2, "add_relu residual")?;
        Ok((CpuStorage::F32(map2(a, b, |a, b| (a + b).max(0.0))), l1.shape().clone()))
    }
    fn bwd(&self, a: &Tensor, b: &Tensor, y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = y.apply_op2_no_bwd(&dy.contiguous()?, &ReluGrad)?;
        Ok((a.track_op().then(|| g.clone()), b.track_op().then_some(g)))
    }
}

/// `relu(a + b)` on the CPU, one node with the one-pass backward.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}
