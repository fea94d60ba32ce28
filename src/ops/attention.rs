//! BigGAN's self-attention on CPU: 1×1 projections as GEMMs, 2×2 max-pooled keys/values, and
//! the attention itself in tiles of queries so the `(queries × keys)` score matrix never
//! exists whole (it would be 268 MB at 128² for BigGAN-deep-512).

use gemm::Parallelism;
use rayon::prelude::*;

use super::OpsError;

/// Queries per tile of the score matrix.
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

/// `dst = alpha·dst + beta·(lhs · rhs)` with explicit strides (see `gemm::gemm`).
#[allow(clippy::too_many_arguments)]
fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    read: bool,
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
    beta: f32,
    par: Parallelism,
) {
    // SAFETY: callers pass slices covering the strided ranges and disjoint destinations.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            read,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            par,
        );
    }
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

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tiles write disjoint column ranges.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

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
    let mut theta = vec![0f32; c8 * n];
    let mut full = vec![0f32; c2 * n];
    let mut phi = vec![0f32; c8 * m];
    let mut g = vec![0f32; c2 * m];
    let mut attn_g = vec![0f32; c2 * n];
    for bi in 0..b {
        let x = &a.x[bi * c * n..(bi + 1) * c * n];
        mm(c8, n, c, theta.as_mut_ptr(), n, false, a.theta, c, 1, x, n, 1, 1.0, par);
        mm(c8, n, c, full.as_mut_ptr(), n, false, a.phi, c, 1, x, n, 1, 1.0, par);
        maxpool2(&full, c8, h, w, &mut phi);
        mm(c2, n, c, full.as_mut_ptr(), n, false, a.g, c, 1, x, n, 1, 1.0, par);
        maxpool2(&full, c2, h, w, &mut g);
        let base = SendPtr(attn_g.as_mut_ptr());
        (0..n.div_ceil(QUERY_TILE)).into_par_iter().for_each(|t| {
            // Rebinds so the closure captures the Send wrapper whole, not its raw-pointer field.
            #[allow(clippy::redundant_locals)]
            let base = base;
            let (q0, nq) = (t * QUERY_TILE, QUERY_TILE.min(n - t * QUERY_TILE));
            let mut s = vec![0f32; nq * m];
            // s[i, j] = Σ_k θ[k, q0+i] φ[k, j]
            mm(nq, m, c8, s.as_mut_ptr(), m, false, &theta[q0..], 1, n, &phi, m, 1, 1.0, Parallelism::None);
            super::softmax_rows(&mut s, m);
            // attn_g[:, q0..q0+nq] = g (c2, m) · sᵀ (m, nq)
            mm(c2, nq, m, unsafe { base.0.add(q0) }, n, false, &g, m, 1, &s, 1, m, 1.0, Parallelism::None);
        });
        let dst = &mut out[bi * c * n..(bi + 1) * c * n];
        dst.copy_from_slice(x);
        mm(c, n, c2, dst.as_mut_ptr(), n, true, a.o, c2, 1, &attn_g, n, 1, a.gamma, par);
    }
    Ok(())
}
