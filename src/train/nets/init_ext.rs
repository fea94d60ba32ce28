//! Initialisations the generators need beyond [`super::layers::Init`]: PyTorch's
//! `nn.init.orthogonal_` (BigGAN's `ortho` init, the CGN's `orthogonal` with a gain) and a
//! re-initialisation of existing parameters by key (the CGN's `init_net` walks the modules after
//! they were built).
//!
//! `orthogonal_(W, gain)`: draw `A ~ N(0, 1)` of shape `(rows, cols)` (cols = the product of the
//! remaining dims), transpose if `rows < cols`, take `Q` of `A = QR` with the signs fixed so
//! diag(R) > 0, transpose back, times `gain`. Modified Gram–Schmidt in f64 gives exactly that Q.

use candle_core::{Result, Tensor};

use super::layers::{Builder, Init};
use crate::noise::Rng;

/// A `(rows, cols)` matrix (row-major) with orthonormal rows or columns, whichever are fewer,
/// times `gain`.
pub fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    // Work on the tall orientation: n vectors (columns of the tall matrix) of length m ≥ n.
    let (m, n) = if rows >= cols { (rows, cols) } else { (cols, rows) };
    let draws: Vec<f64> = (0..rows * cols).map(|_| rng.normal()).collect();
    // vecs[j] = column j of the tall matrix.
    let mut vecs: Vec<Vec<f64>> = (0..n)
        .map(|j| (0..m).map(|i| if rows >= cols { draws[i * cols + j] } else { draws[j * cols + i] }).collect())
        .collect();
    for j in 0..n {
        for k in 0..j {
            let (done, rest) = vecs.split_at_mut(j);
            let q = &done[k];
            let d: f64 = q.iter().zip(rest[0].iter()).map(|(a, b)| a * b).sum();
            rest[0].iter_mut().zip(q).for_each(|(x, &qk)| *x -= d * qk);
        }
        let norm = vecs[j].iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        vecs[j].iter_mut().for_each(|x| *x /= norm);
    }
    let mut out = vec![0f32; rows * cols];
    for (j, v) in vecs.iter().enumerate() {
        for (i, &x) in v.iter().enumerate() {
            let idx = if rows >= cols { i * cols + j } else { j * cols + i };
            out[idx] = (x * gain) as f32;
        }
    }
    out
}

/// How a weight matrix is initialised.
#[derive(Debug, Clone, Copy)]
pub enum WInit {
    Plain(Init),
    /// `orthogonal_` with this gain.
    Orthogonal(f64),
}

/// A parameter `{prefix}.{leaf}`: plain inits through the builder, orthogonal ones drawn from
/// the builder's generator (ignored when the builder reads a map).
pub fn param(b: &mut Builder, leaf: &str, shape: &[usize], init: WInit) -> Result<Tensor> {
    match init {
        WInit::Plain(i) => b.param(leaf, shape, i),
        WInit::Orthogonal(gain) => {
            let t = b.param(leaf, shape, Init::Const(0.0))?;
            let rows = shape[0];
            let cols: usize = shape[1..].iter().product();
            let dev = b.device().clone();
            if let Some(rng) = b.rng() {
                let v = orthogonal(rows, cols, gain, rng);
                let var = &b.vars.last().ok_or_else(|| candle_core::Error::Msg("no parameter".into()))?.1;
                var.set(&Tensor::from_vec(v, shape, &dev)?)?;
            }
            Ok(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gram(w: &[f32], rows: usize, cols: usize, by_rows: bool) -> Vec<f64> {
        let n = if by_rows { rows } else { cols };
        let at = |k: usize, i: usize| if by_rows { w[k * cols + i] } else { w[i * cols + k] } as f64;
        let len = if by_rows { cols } else { rows };
        let mut g = vec![0.0; n * n];
        for a in 0..n {
            for b in 0..n {
                g[a * n + b] = (0..len).map(|i| at(a, i) * at(b, i)).sum();
            }
        }
        g
    }

    #[test]
    fn orthogonal_has_orthonormal_rows_or_columns_times_gain() {
        let mut rng = Rng::new(3);
        for (rows, cols, by_rows) in [(10, 4, false), (4, 10, true), (6, 6, true)] {
            let w = orthogonal(rows, cols, 0.5, &mut rng);
            let n = rows.min(cols);
            let g = gram(&w, rows, cols, by_rows);
            for a in 0..n {
                for b in 0..n {
                    let want = if a == b { 0.25 } else { 0.0 };
                    assert!((g[a * n + b] - want).abs() < 1e-5, "{rows}×{cols} ({a},{b}) = {}", g[a * n + b]);
                }
            }
        }
    }
}
