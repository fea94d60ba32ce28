//! BigGAN's self-attention on CPU: 1×1 projections as GEMMs, 2×2 max-pooled keys/values, and
//! the attention itself in tiles of queries so the `(queries × keys)` score matrix never
//! exists whole (it would be 268 MB at 128² for BigGAN-deep-512).

use super::gemm::{product, Parallelism, View};
use rayon::prelude::*;

use super::{OpsError, SendPtr};

thread_local! {
    /// Per-thread score tile (and its column sums), reused across tiles and calls.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Queries per tile of the score matrix.
/// (128–512 measured alike on deep-128.)
const QUERY_TILE: usize = 256;

/// Weights of one self-attention layer (1×1 convs, no bias).
#[derive(Debug, Clone, Copy)]
pub struct AttnArgs<'a> {
    /// `(b, c, h, w)`.
    pub x: &'a [f32],
    pub dims: [usize; 4],
    /// `(c/8, c)`.
    pub theta: &'a [f32],
    /// `(c/8, c)`.
    pub phi: &'a [f32],
    /// `(c/2, c)`.
    pub g: &'a [f32],
    /// `(c, c/2)`.
    pub o: &'a [f32],
    pub gamma: f32,
}

/// 2×2 max-pool of `(c, h, w)` planes into `(c, h/2, w/2)`.
fn maxpool2(x: &[f32], c: usize, h: usize, w: usize, out: &mut [f32]) {
    let (ph, pw) = (h / 2, w / 2);
    out.par_chunks_mut(ph * pw).enumerate().take(c).for_each(|(ch, o)| {
        let p = &x[ch * h * w..(ch + 1) * h * w];
        for y in 0..ph {
            for xx in 0..pw {
                let i = 2 * y * w + 2 * xx;
                o[y * pw + xx] = p[i].max(p[i + 1]).max(p[i + w]).max(p[i + w + 1]);
            }
        }
    });
}

/// `out = x + γ·o(g·softmax(θᵀφ)ᵀ)`, no 1/√d scaling (BigGAN's parity quirk).
pub fn self_attention(a: &AttnArgs, out: &mut [f32]) -> Result<(), OpsError> {
    let t = super::profile::start();
    self_attention_inner(a, out)?;
    let [b, c, h, w] = a.dims;
    let (c8, c2, n) = ((c / 8) as f64, (c / 2) as f64, (h * w) as f64);
    let (c, m) = (c as f64, n / 4.0);
    // θ, φ, g projections; θᵀφ scores; the weighted sum; the output projection.
    let flops = 2.0 * n * c * (2.0 * c8 + c2) + 2.0 * n * m * (c8 + c2) + 2.0 * n * c2 * c;
    super::profile::record(super::profile::Kind::Attention, t, b as f64 * flops);
    Ok(())
}

fn self_attention_inner(a: &AttnArgs, out: &mut [f32]) -> Result<(), OpsError> {
    let [b, c, h, w] = a.dims;
    let (c8, c2, n) = (c / 8, c / 2, h * w);
    let m = n / 4;
    let bad = |msg: String| Err(OpsError::Shape { op: "self_attention", msg });
    if h % 2 != 0 || w % 2 != 0 || c % 8 != 0 {
        return bad(format!("needs even h, w and c divisible by 8, got {:?}", a.dims));
    }
    if a.x.len() != b * c * n
        || out.len() != b * c * n
        || a.theta.len() != c8 * c
        || a.phi.len() != c8 * c
        || a.g.len() != c2 * c
        || a.o.len() != c * c2
    {
        return bad(format!("buffer sizes do not match dims {:?}", a.dims));
    }
    let threads = rayon::current_num_threads().max(1);
    let par = Parallelism::Rayon(threads);
    // θ, φ and g in one GEMM: one pass over x instead of three, and 192 rows (at c = 256)
    // instead of 32 / 32 / 128.
    let rows = 2 * c8 + c2;
    let wcat = [a.theta, a.phi, a.g].concat();
    let mut proj = vec![0f32; rows * n];
    // φ and g pooled, (c8 + c2, m).
    let mut pooled = vec![0f32; (c8 + c2) * m];
    let mut attn_g = vec![0f32; c2 * n];
    let mut gt = vec![0f32; m * c2];
    for bi in 0..b {
        let x = &a.x[bi * c * n..(bi + 1) * c * n];
        // SAFETY (all products here): the views cover the buffers they name; each tile
        // writes only its own columns of attn_g.
        unsafe {
            product(
                rows,
                n,
                c,
                View::rows_mut(proj.as_mut_ptr(), n),
                false,
                View::rows(&wcat, c),
                View::rows(x, n),
                1.0,
                par,
            )
        };
        maxpool2(&proj[c8 * n..], c8 + c2, h, w, &mut pooled);
        let (theta, (phi, g)) = (&proj[..c8 * n], pooled.split_at(c8 * m));
        // gᵀ (m, c2): the weighted sum's right-hand side, row-major.
        // 16 channels at a time: 16 sequential read streams, 16 contiguous writes per key.
        for c0 in (0..c2).step_by(16) {
            let c1 = (c0 + 16).min(c2);
            for (j, dst) in gt.chunks_exact_mut(c2).enumerate() {
                for ch in c0..c1 {
                    dst[ch] = g[ch * m + j];
                }
            }
        }
        let base = SendPtr(attn_g.as_mut_ptr());
        (0..n.div_ceil(QUERY_TILE)).into_par_iter().for_each(|t| {
            // Rebinds so the closure captures the Send wrapper whole, not its raw-pointer field.
            #[allow(clippy::redundant_locals)]
            let base = base;
            let (q0, nq) = (t * QUERY_TILE, QUERY_TILE.min(n - t * QUERY_TILE));
            SCORES.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < nq * m + nq {
                    s.resize(nq * m + nq, 0.0);
                }
                let (st, inv) = s.split_at_mut(nq * m);
                // Scores transposed, sᵀ[j, i] = Σ_k φ[k, j] θ[k, q0+i]: keys × queries, so that
                // the weighted sum below reads them in the layout gemm packs fastest.
                let dst = View::rows_mut(st.as_mut_ptr(), nq);
                unsafe {
                    product(
                        m,
                        nq,
                        c8,
                        dst,
                        false,
                        View::cols(phi, m),
                        View::rows(&theta[q0..], n),
                        1.0,
                        Parallelism::None,
                    )
                };
                super::softmax::softmax_cols_unnormalised(st, m, nq, inv);
                // attn_g[:, q0..q0+nq] = g (c2, m) · sᵀ (m, nq), computed as its transpose
                // (queries × channels, column-major = attn_g's rows) from sᵀ and gᵀ.
                let dst = View::cols_mut(unsafe { base.0.add(q0) }, n);
                unsafe {
                    product(nq, c2, m, dst, false, View::cols(st, nq), View::rows(&gt, c2), 1.0, Parallelism::None)
                };
                // The softmax's division, applied to the 8× smaller result.
                for ch in 0..c2 {
                    // SAFETY: this tile's own nq columns of row ch.
                    let seg = unsafe { std::slice::from_raw_parts_mut(base.0.add(ch * n + q0), nq) };
                    for (v, &s) in seg.iter_mut().zip(inv.iter()) {
                        *v *= s;
                    }
                }
            });
        });
        let dst = &mut out[bi * c * n..(bi + 1) * c * n];
        dst.copy_from_slice(x);
        let d = View::rows_mut(dst.as_mut_ptr(), n);
        unsafe { product(c, n, c2, d, true, View::rows(a.o, c2), View::rows(&attn_g, n), a.gamma, par) };
    }
    Ok(())
}
