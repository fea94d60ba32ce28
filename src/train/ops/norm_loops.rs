//! The per-plane loops of the batch-norm op ([`super::norm`]), compiled for AVX-512 where the CPU
//! has it. The crate is built for baseline x86-64, so these loops would otherwise run on SSE2's
//! four lanes. The element-wise loops are defined through [`crate::ops::widest`], which compiles
//! each body a second time for AVX-512. FMA is not enabled, so every path rounds as the plain
//! one does and results do not depend on the CPU. The two pairs of sums are the exception:
//! LLVM kept their loops mostly scalar even there, so they are written with AVX intrinsics
//! (module `avx`), lane for lane the plain loop.
//!
//! Sums follow [`super::reduce`]'s order: eight f32 lanes within 512-value blocks, blocks added
//! in f64. Where one pass can produce two sums it does, so each plane is read once per sum pair.

use super::norm::BnAct;

const LANES: usize = 8;
const BLOCK: usize = 512;

use crate::ops::widest;

/// Adds one block's eight-lane partial sums into the f64 totals.
#[inline(always)]
fn fold(total: &mut (f64, f64), a: &[f32; LANES], b: &[f32; LANES]) {
    total.0 += a.iter().sum::<f32>() as f64;
    total.1 += b.iter().sum::<f32>() as f64;
}

#[inline(always)]
fn centred_sums_body(x: &[f32], m: f32) -> (f64, f64) {
    let mut total = (0f64, 0f64);
    for xb in x.chunks(BLOCK) {
        let (mut a, mut b) = ([0f32; LANES], [0f32; LANES]);
        let x8 = xb.chunks_exact(LANES);
        let rest = x8.remainder();
        for xc in x8 {
            for k in 0..LANES {
                let d = xc[k] - m;
                a[k] += d * d;
                b[k] += d;
            }
        }
        for (k, &v) in rest.iter().enumerate() {
            let d = v - m;
            a[k] += d * d;
            b[k] += d;
        }
        fold(&mut total, &a, &b);
    }
    total
}

/// `(Σ (x − m)², Σ (x − m))` over one plane.
pub fn centred_sums(x: &[f32], m: f32) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx") {
        // SAFETY: the feature was detected at run time.
        return unsafe { avx::centred_sums(x, m) };
    }
    centred_sums_body(x, m)
}

#[inline(always)]
fn grad_sums_body(x: &[f32], dy: &[f32], y: &[f32], m: f32, is: f32, act: BnAct) -> (f64, f64) {
    let mut total = (0f64, 0f64);
    for ((xb, db), yb) in x.chunks(BLOCK).zip(dy.chunks(BLOCK)).zip(y.chunks(BLOCK)) {
        let (mut a, mut b) = ([0f32; LANES], [0f32; LANES]);
        let (x8, d8, y8) = (xb.chunks_exact(LANES), db.chunks_exact(LANES), yb.chunks_exact(LANES));
        let (xr, dr, yr) = (x8.remainder(), d8.remainder(), y8.remainder());
        for ((xc, dc), yc) in x8.zip(d8).zip(y8) {
            for k in 0..LANES {
                let g = act.grad(dc[k], yc[k]);
                a[k] += g;
                b[k] += g * ((xc[k] - m) * is);
            }
        }
        for (k, ((&xv, &dv), &yv)) in xr.iter().zip(dr).zip(yr).enumerate() {
            let g = act.grad(dv, yv);
            a[k] += g;
            b[k] += g * ((xv - m) * is);
        }
        fold(&mut total, &a, &b);
    }
    total
}

/// `(Σ g, Σ g·x̂)` over one plane, with `g` = `dy` through the activation (from its output `y`)
/// and `x̂ = (x − m)·is`.
pub fn grad_sums(x: &[f32], dy: &[f32], y: &[f32], m: f32, is: f32, act: BnAct) -> (f64, f64) {
    assert!(dy.len() == x.len() && y.len() == x.len(), "batch_norm: plane sizes");
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx") {
        // SAFETY: the feature was detected at run time; the lengths were checked above.
        return unsafe { avx::grad_sums(x, dy, y, m, is, act) };
    }
    grad_sums_body(x, dy, y, m, is, act)
}

/// The two sums on AVX's eight lanes, written out: LLVM did not vectorise the two-accumulator
/// loops above (it kept most lanes scalar). Lane `k` adds the same values in the same order as
/// the plain loop's `a[k]`, and no FMA is used, so the results are bitwise the same.
#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{fold, BnAct, BLOCK, LANES};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn lanes(v: __m256) -> [f32; LANES] {
        let mut out = [0f32; LANES];
        _mm256_storeu_ps(out.as_mut_ptr(), v);
        out
    }

    #[target_feature(enable = "avx")]
    pub unsafe fn centred_sums(x: &[f32], m: f32) -> (f64, f64) {
        let mut total = (0f64, 0f64);
        let mv = _mm256_set1_ps(m);
        for xb in x.chunks(BLOCK) {
            let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let full = xb.len() / LANES * LANES;
            for i in (0..full).step_by(LANES) {
                let d = _mm256_sub_ps(_mm256_loadu_ps(xb.as_ptr().add(i)), mv);
                a = _mm256_add_ps(a, _mm256_mul_ps(d, d));
                b = _mm256_add_ps(b, d);
            }
            let (mut a, mut b) = (lanes(a), lanes(b));
            for (k, &v) in xb[full..].iter().enumerate() {
                let d = v - m;
                a[k] += d * d;
                b[k] += d;
            }
            fold(&mut total, &a, &b);
        }
        total
    }

    /// `dy` through the activation, eight lanes at a time (as [`BnAct::grad`]).
    #[inline(always)]
    unsafe fn act_grad(act: BnAct, d: __m256, y: __m256) -> __m256 {
        match act {
            BnAct::Identity => d,
            BnAct::Relu => _mm256_and_ps(d, _mm256_cmp_ps::<_CMP_GT_OQ>(y, _mm256_setzero_ps())),
            BnAct::Leaky(slope) => {
                let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(y, _mm256_setzero_ps());
                _mm256_blendv_ps(_mm256_mul_ps(d, _mm256_set1_ps(slope)), d, pos)
            }
        }
    }

    #[target_feature(enable = "avx")]
    pub unsafe fn grad_sums(x: &[f32], dy: &[f32], y: &[f32], m: f32, is: f32, act: BnAct) -> (f64, f64) {
        let mut total = (0f64, 0f64);
        let (mv, iv) = (_mm256_set1_ps(m), _mm256_set1_ps(is));
        for lo in (0..x.len()).step_by(BLOCK) {
            let hi = (lo + BLOCK).min(x.len());
            let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let full = lo + (hi - lo) / LANES * LANES;
            for i in (lo..full).step_by(LANES) {
                let g = act_grad(act, _mm256_loadu_ps(dy.as_ptr().add(i)), _mm256_loadu_ps(y.as_ptr().add(i)));
                let xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), mv), iv);
                a = _mm256_add_ps(a, g);
                b = _mm256_add_ps(b, _mm256_mul_ps(g, xh));
            }
            let (mut a, mut b) = (lanes(a), lanes(b));
            for (k, i) in (full..hi).enumerate() {
                let g = act.grad(dy[i], y[i]);
                a[k] += g;
                b[k] += g * ((x[i] - m) * is);
            }
            fold(&mut total, &a, &b);
        }
        total
    }
}

widest! {
    /// `out = act(x·a + shift)`.
    pub fn normalise(out: &mut [f32], x: &[f32], a: f32, shift: f32, act: BnAct) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = act.apply(v * a + shift);
        }
    }
}

/// The per-channel constants of the input gradient.
#[derive(Clone, Copy)]
pub struct GradCoef {
    pub mean: f32,
    /// `1/σ`.
    pub inv_std: f32,
    /// `γ/σ`.
    pub scale: f32,
    /// `Σ g / n`.
    pub mean_g: f32,
    /// `Σ g·x̂ / n`.
    pub mean_gx: f32,
}

widest! {
    /// `dx = γ/σ · (g − mean(g) − x̂·mean(g·x̂))` over one plane.
    pub fn grad_input(out: &mut [f32], x: &[f32], dy: &[f32], y: &[f32], c: GradCoef, act: BnAct) {
        for (((o, &xv), &d), &yv) in out.iter_mut().zip(x).zip(dy).zip(y) {
            let g = act.grad(d, yv);
            *o = c.scale * (g - c.mean_g - (xv - c.mean) * c.inv_std * c.mean_gx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i + seed) * 37 % 101) as f32 - 50.0) * 0.013).collect()
    }

    #[test]
    fn the_avx_sums_are_bitwise_the_plain_loops() {
        for n in [0, 5, 8, 77, 512, 1100] {
            let (x, dy, y) = (plane(n, 1), plane(n, 9), plane(n, 4));
            assert_eq!(centred_sums(&x, 0.3), centred_sums_body(&x, 0.3), "n {n}");
            for act in [BnAct::Identity, BnAct::Relu, BnAct::Leaky(0.2)] {
                assert_eq!(
                    grad_sums(&x, &dy, &y, 0.3, 1.7, act),
                    grad_sums_body(&x, &dy, &y, 0.3, 1.7, act),
                    "{act:?} n {n}"
                );
            }
        }
    }

    #[test]
    fn sums_match_f64_references_at_every_remainder() {
        for n in [0, 1, 7, 8, 9, 511, 512, 513, 1029] {
            let (x, dy, y) = (plane(n, 0), plane(n, 5), plane(n, 11));
            let m = 0.1f32;
            let (q, d) = centred_sums(&x, m);
            let want_d: f64 = x.iter().map(|&v| (v - m) as f64).sum();
            let want_q: f64 = x.iter().map(|&v| ((v - m) as f64).powi(2)).sum();
            assert!((q - want_q).abs() <= 1e-5 * (1.0 + want_q) && (d - want_d).abs() <= 1e-5 * (1.0 + want_d.abs()));
            for act in [BnAct::Identity, BnAct::Relu, BnAct::Leaky(0.2)] {
                let (sg, sgx) = grad_sums(&x, &dy, &y, m, 2.0, act);
                let g = |i: usize| act.grad(dy[i], y[i]) as f64;
                let want_g: f64 = (0..n).map(g).sum();
                let want_gx: f64 = (0..n).map(|i| g(i) * ((x[i] - m) * 2.0) as f64).sum();
                assert!((sg - want_g).abs() <= 1e-5 * (1.0 + want_g.abs()), "{act:?} n {n}");
                assert!((sgx - want_gx).abs() <= 1e-5 * (1.0 + want_gx.abs()), "{act:?} n {n}");
            }
        }
    }
}
