//! Spectral normalisation while training (Miyato et al., 2018), as PyTorch's
//! `torch.nn.utils.spectral_norm` with one power iteration per training forward:
//!
//! ```text
//! v ← normalize(W_matᵀ u),  u ← normalize(W_mat v)      (no gradient; u, v are buffers)
//! σ = uᵀ W_mat v                                       (differentiable in W)
//! W_sn = W / σ
//! ```
//!
//! `normalize(x) = x / max(‖x‖, eps)`; `W_mat = weight_orig.reshape(out, −1)`. In evaluation mode
//! u and v are used as they are (no iteration), which is what the inference runtime
//! ([`crate::models::biggan::layers::sn_weight`]) folds at load time.
//!
//! The parameter is stored as `{prefix}.weight_orig`, the buffers as `{prefix}.weight_u` `[out]`
//! and `{prefix}.weight_v` `[in·kh·kw]` — the layout of pytorch-pretrained-BigGAN's checkpoints.

use std::sync::{Arc, Mutex};

use candle_core::{Result, Tensor, Var};

use super::init_ext::WInit;
use super::layers::{Builder, Init};

/// The power-iteration vectors of one spectrally normalised weight.
#[derive(Debug)]
pub struct SnBuffers {
    /// Key prefix (`generator.gen_z`).
    pub prefix: String,
    pub u: Mutex<Vec<f32>>,
    pub v: Mutex<Vec<f32>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `x / max(‖x‖, eps)` in place, the norm accumulated in f64.
pub fn normalize(x: &mut [f32], eps: f64) {
    let n = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt().max(eps);
    let inv = (1.0 / n) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// One power iteration on the row-major `out × rest` matrix `w`: `v = normalize(wᵀu)`,
/// `u = normalize(w v)`.
pub fn power_iteration(w: &[f32], out: usize, u: &mut [f32], v: &mut [f32], eps: f64) {
    let rest = v.len();
    debug_assert_eq!(w.len(), out * rest);
    let mut nv = vec![0f64; rest];
    for (r, &ur) in w.chunks_exact(rest).zip(u.iter()) {
        for (a, &x) in nv.iter_mut().zip(r) {
            *a += ur as f64 * x as f64;
        }
    }
    v.iter_mut().zip(&nv).for_each(|(d, &s)| *d = s as f32);
    normalize(v, eps);
    for (r, d) in w.chunks_exact(rest).zip(u.iter_mut()) {
        *d = r.iter().zip(v.iter()).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() as f32;
    }
    normalize(u, eps);
}

/// A spectrally normalised weight: the trainable `weight_orig` and its u/v buffers.
#[derive(Debug, Clone)]
pub struct SnWeight {
    pub weight: Tensor,
    pub buf: Arc<SnBuffers>,
    pub eps: f64,
}

impl SnWeight {
    /// Creates `{prefix}.weight_orig` of `shape` (initialised as `init`) and the buffers:
    /// fresh ones are `normalize(N(0, 1))` as PyTorch's, read ones are taken as stored.
    pub fn new(
        b: &mut Builder,
        shape: &[usize],
        init: WInit,
        eps: f64,
        bufs: &mut Vec<Arc<SnBuffers>>,
    ) -> Result<Self> {
        let weight = super::init_ext::param(b, "weight_orig", shape, init)?;
        let out = shape[0];
        let rest: usize = shape[1..].iter().product();
        let fresh = b.is_init();
        // Buffers go through the builder (so a map supplies them) and are then taken out of
        // its parameter list: the optimiser never sees them.
        let mut take = |leaf: &str, n: usize| -> Result<Vec<f32>> {
            b.param(leaf, &[n], Init::Normal(1.0))?;
            let (_, var): (String, Var) =
                b.vars.pop().ok_or_else(|| candle_core::Error::Msg("sn: buffer vanished".into()))?;
            let mut v = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            if fresh {
                normalize(&mut v, eps);
            }
            Ok(v)
        };
        let u = take("weight_u", out)?;
        let v = take("weight_v", rest)?;
        let prefix = b.prefix_key();
        let buf = Arc::new(SnBuffers { prefix, u: Mutex::new(u), v: Mutex::new(v) });
        bufs.push(buf.clone());
        Ok(Self { weight, buf, eps })
    }

    /// `W / σ`: one power iteration first when `train` (updating u, v), then σ = uᵀ W v with
    /// its gradient.
    pub fn weight(&self, train: bool) -> Result<Tensor> {
        let out = self.weight.dim(0)?;
        let mut u = lock(&self.buf.u);
        let mut v = lock(&self.buf.v);
        if train {
            let w = self.weight.flatten_all()?.to_vec1::<f32>()?;
            power_iteration(&w, out, &mut u, &mut v, self.eps);
        }
        let dev = self.weight.device();
        let ut = Tensor::from_slice(&u, (1, out), dev)?;
        let vt = Tensor::from_slice(&v, (v.len(), 1), dev)?;
        drop((u, v));
        let sigma = ut.matmul(&self.weight.reshape((out, ()))?.matmul(&vt)?)?.reshape(())?;
        self.weight.broadcast_div(&sigma)
    }

    /// σ with the stored vectors (no iteration), as a number.
    pub fn sigma(&self) -> Result<f64> {
        let out = self.weight.dim(0)?;
        let w = self.weight.flatten_all()?.to_vec1::<f32>()?;
        let u = lock(&self.buf.u);
        let v = lock(&self.buf.v);
        let rest = v.len();
        Ok(w.chunks_exact(rest)
            .zip(u.iter())
            .take(out)
            .map(|(r, &ui)| ui as f64 * r.iter().zip(v.iter()).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>())
            .sum())
    }
}

impl SnBuffers {
    /// `(weight_u, weight_v)` as tensors for a state dict.
    pub fn tensors(&self) -> Result<[(String, Tensor); 2]> {
        let dev = &candle_core::Device::Cpu;
        let u = lock(&self.u).clone();
        let v = lock(&self.v).clone();
        let (nu, nv) = (u.len(), v.len());
        Ok([
            (format!("{}.weight_u", self.prefix), Tensor::from_vec(u, nu, dev)?),
            (format!("{}.weight_v", self.prefix), Tensor::from_vec(v, nv, dev)?),
        ])
    }

    /// Runs `n` power iterations on `w` (row-major, `out` rows): the converged vectors an
    /// exported model folds σ with.
    pub fn converge(&self, w: &[f32], out: usize, n: usize, eps: f64) {
        let mut u = lock(&self.u);
        let mut v = lock(&self.v);
        for _ in 0..n {
            power_iteration(w, out, &mut u, &mut v, eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn power_iteration_finds_the_top_singular_value() {
        // diag(3, 2, 1) rotated: σ_max = 3.
        let w = [0.0f32, 3.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let mut u = vec![0.5f32, 0.5, 0.7];
        let mut v = vec![0.3f32, 0.9, 0.1];
        for _ in 0..50 {
            power_iteration(&w, 3, &mut u, &mut v, 1e-12);
        }
        let s: f64 = (0..3).map(|i| u[i] as f64 * (0..3).map(|j| w[i * 3 + j] as f64 * v[j] as f64).sum::<f64>()).sum();
        assert!((s - 3.0).abs() < 1e-5, "σ = {s}");
    }

    #[test]
    fn fresh_buffers_are_unit_vectors_and_stay_out_of_the_optimiser() {
        let mut b = Builder::init(7, &Device::Cpu);
        let mut bufs = Vec::new();
        let sn = b.scope("lin", |s| SnWeight::new(s, &[4, 3, 2, 2], WInit::Orthogonal(1.0), 1e-4, &mut bufs)).unwrap();
        assert_eq!(b.vars.len(), 1);
        assert_eq!(b.vars[0].0, "lin.weight_orig");
        let nu: f32 = sn.buf.u.lock().unwrap().iter().map(|x| x * x).sum();
        assert!((nu - 1.0).abs() < 1e-5);
        assert_eq!(sn.buf.v.lock().unwrap().len(), 12);
        assert_eq!(sn.buf.prefix, "lin");
    }
}
