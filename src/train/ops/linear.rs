//! Fully connected layer `y = x·Wᵀ (+ b)` as a candle custom op with its own backward.
//!
//! Through candle's ops, `x.matmul(&w.t())` hands back the weight gradient as a transposed
//! (strided) view, and the gradient store then adds it onto zeros element by element through
//! the strides: for the CVAE's 3072×1000 layers that walk, cache line per element, took a
//! quarter of the step. Here every gradient is produced contiguous by one GEMM over transposed
//! *views* (no copies):
//! - `dx = dy · W` (`(n, m)·(m, k)`), only when `x` needs a gradient;
//! - `dW = dyᵀ · x` (`(m, n)·(n, k)`), only when `W` does (frozen weights cost nothing);
//! - `db = Σₙ dy`, summed in a fixed order (deterministic for any thread count).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::f32_slice;
use super::gemm::{matmul, View};
use crate::ops::CpuView;

/// Batches up to this size run the forward product transposed (measured: faster up to 128 rows
/// on every layer shape tried, slower at 512).
const SMALL_BATCH: usize = 128;

/// `(n, k) · (m, k)ᵀ → (n, m)`, plus `b` on every row when given.
fn forward(
    x: (&CpuStorage, &Layout),
    w: (&CpuStorage, &Layout),
    b: Option<(&CpuStorage, &Layout)>,
) -> Result<(CpuStorage, Shape)> {
    let ([n, k], [m, k2]) = (dims2(x.1, "linear input")?, dims2(w.1, "linear weight")?);
    if k != k2 {
        candle_core::bail!("linear: input has {k} features, the weight {k2}");
    }
    let (xs, ws) = (f32_slice(x.0, x.1, "linear input")?, f32_slice(w.0, w.1, "linear weight")?);
    let mut y = vec![0f32; n * m];
    if n <= SMALL_BATCH {
        // Computed as yᵀ = W·xᵀ and turned around: asked for x·Wᵀ with few rows, `gemm`
        // repacks all of W on every call, which cost 2× the product itself (GAN
        // discriminators at batch 16: 2.0 → 0.9 ms for 16×3082 · 3082×512).
        let mut yt = vec![0f32; m * n];
        matmul(&mut yt, n, View::rows(ws, m, k), View::rows(xs, n, k).t(), false);
        super::transpose::transpose(&yt, m, n, &mut y);
    } else {
        matmul(&mut y, m, View::rows(xs, n, k), View::rows(ws, m, k).t(), false);
    }
    if let Some((s, l)) = b {
        let bs = f32_slice(s, l, "linear bias")?;
        if bs.len() != m {
            candle_core::bail!("linear: {m} outputs but {} biases", bs.len());
        }
        for row in y.chunks_exact_mut(m) {
            row.iter_mut().zip(bs).for_each(|(v, &b)| *v += b);
        }
    }
    Ok((CpuStorage::F32(y), Shape::from((n, m))))
}

fn dims2(l: &Layout, what: &str) -> Result<[usize; 2]> {
    match l.dims() {
        &[a, b] => Ok([a, b]),
        d => candle_core::bail!("{what}: expected 2 dimensions, got {d:?}"),
    }
}

/// `dx` and `dW` of the tracked arguments.
fn grads(x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let ((n, k), m) = (x.dims2()?, w.dim(0)?);
    let dy = dy.contiguous()?;
    let dy = CpuView::new(&dy)?;
    let dyv = View::rows(dy.slice()?, n, m);
    let dx = if x.track_op() {
        let mut dx = vec![0f32; n * k];
        matmul(&mut dx, k, dyv, View::rows(CpuView::new(w)?.slice()?, m, k), false);
        Some(Tensor::from_vec(dx, (n, k), x.device())?)
    } else {
        None
    };
    let dw = if w.track_op() {
        let mut dw = vec![0f32; m * k];
        matmul(&mut dw, k, dyv.t(), View::rows(CpuView::new(x)?.slice()?, n, k), false);
        Some(Tensor::from_vec(dw, (m, k), w.device())?)
    } else {
        None
    };
    Ok((dx, dw))
}

struct Linear;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "intervene-linear"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        forward((s1, l1), (s2, l2), None)
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        grads(x, w, dy)
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "intervene-linear-bias"
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
        forward((s1, l1), (s2, l2), Some((s3, l3)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = grads(x, w, dy)?;
        let db = if b.track_op() {
            let m = w.dim(0)?;
            let mut db = vec![0f32; m];
            let dy = dy.contiguous()?;
            for row in CpuView::new(&dy)?.slice()?.chunks_exact(m) {
                db.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
            }
            Some(Tensor::from_vec(db, m, b.device())?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// `x (n, k) · wᵀ (k, m) + b`: the custom op for 2-D inputs on the CPU, candle's ops otherwise.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    if !x.device().is_cpu() || x.rank() != 2 {
        let y = x.broadcast_matmul(&w.t()?)?;
        return match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        };
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, Linear),
        None => x.apply_op2(&w, Linear),
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn close(a: &Tensor, b: &Tensor) {
        let (a, b) =
            (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn values_and_gradients_match_candles_matmul() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 7), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 7), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 3, &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1.0, (5, 3), &dev).unwrap();
        for bias in [true, false] {
            let ours = linear(x.as_tensor(), w.as_tensor(), bias.then_some(b.as_tensor())).unwrap();
            let mut want = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
            if bias {
                want = want.broadcast_add(b.as_tensor()).unwrap();
            }
            close(&ours, &want);
            let (g1, g2) = (
                (ours * &r).unwrap().sum_all().unwrap().backward().unwrap(),
                (want * &r).unwrap().sum_all().unwrap().backward().unwrap(),
            );
            for v in [&x, &w] {
                close(g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            }
            assert_eq!(g1.get(b.as_tensor()).is_some(), bias);
            if bias {
                close(g1.get(b.as_tensor()).unwrap(), g2.get(b.as_tensor()).unwrap());
            }
        }
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient_and_a_data_batch_none() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (4, 6), &dev).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 6), &dev).unwrap()).unwrap();
        let g = linear(&x, w.as_tensor(), None).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&x).is_none());
        // d(Σ x·wᵀ)/dw = column sums of x, for every output row.
        let want = x.sum_keepdim(0).unwrap().broadcast_as((2, 6)).unwrap();
        close(g.get(w.as_tensor()).unwrap(), &want);
    }
}
