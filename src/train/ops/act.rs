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
