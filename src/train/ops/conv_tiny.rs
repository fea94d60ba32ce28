//! "Same" stride-1 convolutions on maps of at most 16 pixels: ResNet's last two stages (4×4
//! and 2×2 maps at 64×64 inputs, 3×3 kernels, padding 1).
//!
//! There im2col is largely padding: on a 2×2 map a 3×3 window holds 4 pixels and 5 zeros, on a
//! 4×4 map 6.25 pixels and 2.75 zeros on average, so the im2col GEMM spends 56 % and 31 % of its
//! multiply–adds on zeros (together a fifth of a ResNet-18 step's convolution work at 64×64).
//! Here each (output pixel p, input pixel q) pair inside one window is one GEMM with the kernel
//! tap that links them, `t(p, q) = (q_y − p_y + pad, q_x − p_x + pad)`:
//! - forward: `Y_p (o × b) = Σ_q W_t(p,q) (o × c) · X_q (c × b)`;
//! - input gradient: `dX_q = Σ_p W_t(p,q)ᵀ · dY_p`;
//! - weight gradient: `dW_t = Σ_{t(p,q) = t} dY_p · X_qᵀ` (taps no pair uses are 0).
//!
//! The kernel is made tap-major (`W_t` contiguous) once per call, activations pixel-major; all
//! of it is small next to the GEMMs. Sums run in a fixed order.

use std::cell::RefCell;

use super::conv::Geom;
use super::gemm::{matmul, View};
use super::grow;
use super::transpose::transpose;

thread_local! {
    /// The kernel or its gradient, tap-major: `(k², o, c)`.
    static TAPS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// An activation pixel-major: `(hw, channels, b)`.
    static PIX_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PIX_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Largest map (pixels) taken here.
const MAX_PIXELS: usize = 16;

/// Whether this geometry is one of these convolutions.
pub fn applies(g: &Geom) -> bool {
    !g.depthwise && g.stride == 1 && g.oh == g.h && g.ow == g.w && 2 * g.pad + 1 == g.k && g.hw() <= MAX_PIXELS
}

/// The tap linking output pixel `p` and input pixel `q`, if `q` lies in `p`'s window.
fn tap(g: &Geom, p: usize, q: usize) -> Option<usize> {
    let (py, px, qy, qx) = (p / g.w, p % g.w, q / g.w, q % g.w);
    let (ky, kx) = ((qy + g.pad).checked_sub(py)?, (qx + g.pad).checked_sub(px)?);
    (ky < g.k && kx < g.k).then_some(ky * g.k + kx)
}

/// `a (b, ch, hw)` → `out (hw, ch, b)`.
fn to_pixel_major(a: &[f32], b: usize, ch: usize, hw: usize, out: &mut [f32]) {
    for bi in 0..b {
        for c in 0..ch {
            for (q, &v) in a[(bi * ch + c) * hw..][..hw].iter().enumerate() {
                out[(q * ch + c) * b + bi] = v;
            }
        }
    }
}

/// `a (hw, ch, b)` → `out (b, ch, hw)`, plus `bias[ch]` when given.
fn from_pixel_major(a: &[f32], b: usize, ch: usize, hw: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    for bi in 0..b {
        for c in 0..ch {
            let add = bias.map_or(0.0, |v| v[c]);
            for (q, o) in out[(bi * ch + c) * hw..][..hw].iter_mut().enumerate() {
                *o = a[(q * ch + c) * b + bi] + add;
            }
        }
    }
}

/// Runs `f(taps, pix_a, pix_b)` with the scratch buffers grown to these sizes.
fn with_scratch<T>(taps: usize, a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> T) -> T {
    TAPS.with(|t| {
        PIX_A.with(|pa| {
            PIX_B.with(|pb| {
                let (mut t, mut pa, mut pb) = (t.borrow_mut(), pa.borrow_mut(), pb.borrow_mut());
                grow(&mut t, taps);
                grow(&mut pa, a);
                grow(&mut pb, b);
                f(&mut t[..taps], &mut pa[..a], &mut pb[..b])
            })
        })
    })
}

/// Forward: `y (b, o, h, w)` (overwritten) = conv(x, w) + bias.
pub fn forward(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (b, c, o, hw, kk) = (g.b, g.c, g.o, g.hw(), g.k * g.k);
    with_scratch(kk * o * c, hw * c * b, hw * o * b, |wt, xq, yp| {
        transpose(w, o * c, kk, wt);
        to_pixel_major(x, b, c, hw, xq);
        for p in 0..hw {
            let dst = &mut yp[p * o * b..][..o * b];
            // Every window holds its own pixel, so each p gets at least one product.
            for (i, (q, t)) in (0..hw).filter_map(|q| Some((q, tap(g, p, q)?))).enumerate() {
                let wq = View::rows(&wt[t * o * c..][..o * c], o, c);
                matmul(dst, b, wq, View::rows(&xq[q * c * b..][..c * b], c, b), i > 0);
            }
        }
        from_pixel_major(yp, b, o, hw, bias, y);
    });
}

/// Input gradient `dx (b, c, h, w)` (overwritten).
pub fn backward_input(g: &Geom, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (b, c, o, hw, kk) = (g.b, g.c, g.o, g.hw(), g.k * g.k);
    with_scratch(kk * o * c, hw * o * b, hw * c * b, |wt, dyp, dxq| {
        transpose(w, o * c, kk, wt);
        to_pixel_major(dy, b, o, hw, dyp);
        for q in 0..hw {
            let dst = &mut dxq[q * c * b..][..c * b];
            for (i, (p, t)) in (0..hw).filter_map(|p| Some((p, tap(g, p, q)?))).enumerate() {
                let wt_p = View::rows(&wt[t * o * c..][..o * c], o, c).t();
                matmul(dst, b, wt_p, View::rows(&dyp[p * o * b..][..o * b], o, b), i > 0);
            }
        }
        from_pixel_major(dxq, b, c, hw, None, dx);
    });
}

/// Weight gradient `dw (o, c, k, k)` (overwritten).
pub fn backward_weight(g: &Geom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (b, c, o, hw, kk) = (g.b, g.c, g.o, g.hw(), g.k * g.k);
    with_scratch(kk * o * c, hw * c * b, hw * o * b, |dwt, xq, dyp| {
        to_pixel_major(x, b, c, hw, xq);
        to_pixel_major(dy, b, o, hw, dyp);
        // Each tap's pairs in (p, q) order: its first product overwrites, the rest add.
        let mut used = vec![false; kk];
        for p in 0..hw {
            let d = View::rows(&dyp[p * o * b..][..o * b], o, b);
            for (q, t) in (0..hw).filter_map(|q| Some((q, tap(g, p, q)?))) {
                let dst = &mut dwt[t * o * c..][..o * c];
                matmul(dst, c, d, View::rows(&xq[q * c * b..][..c * b], c, b).t(), used[t]);
                used[t] = true;
            }
        }
        for t in (0..kk).filter(|&t| !used[t]) {
            dwt[t * o * c..][..o * c].fill(0.0);
        }
        transpose(dwt, kk, o * c, dw);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::ops::ConvCfg;

    /// Direct convolution in f64: `y[b, o, p] = Σ_{c, taps inside} w · x`.
    fn naive(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f64> {
        let mut y = vec![0f64; g.b * g.o * g.hw()];
        for bi in 0..g.b {
            for oc in 0..g.o {
                for p in 0..g.hw() {
                    let mut s = 0f64;
                    for ci in 0..g.c {
                        for q in 0..g.hw() {
                            if let Some(t) = tap(g, p, q) {
                                s += w[(oc * g.c + ci) * g.k * g.k + t] as f64 * x[(bi * g.c + ci) * g.hw() + q] as f64;
                            }
                        }
                    }
                    y[(bi * g.o + oc) * g.hw() + p] = s;
                }
            }
        }
        y
    }

    /// Forward against the direct sum; the two gradients against the adjoint identity
    /// `⟨conv(x, w), r⟩ = ⟨x, dx(r)⟩ = ⟨w, dw(x, r)⟩` on 4×4, 3×5, 2×2, 1×2 and 1×1 maps with
    /// 3×3 kernels, and a 4×4 map with a 5×5 kernel.
    #[test]
    fn tiny_maps_match_the_direct_sum_and_the_adjoint_identity() {
        for (h, w, k) in [(4, 4, 3), (3, 5, 3), (2, 2, 3), (1, 2, 3), (1, 1, 3), (4, 4, 5)] {
            let g = Geom::new(&[3, 5, h, w], &[4, 5, k, k], ConvCfg::new(1, k / 2)).unwrap();
            assert!(applies(&g));
            let x: Vec<f32> = (0..3 * 5 * h * w).map(|i| (i as f32 * 0.37).sin()).collect();
            let wt: Vec<f32> = (0..4 * 5 * k * k).map(|i| (i as f32 * 0.11).cos()).collect();
            let r: Vec<f32> = (0..3 * 4 * h * w).map(|i| (i as f32 * 0.23).sin()).collect();
            let mut y = vec![f32::NAN; r.len()];
            forward(&g, &x, &wt, None, &mut y);
            for (a, e) in y.iter().zip(naive(&g, &x, &wt)) {
                assert!((*a as f64 - e).abs() < 1e-5, "{h}×{w}: {a} vs {e}");
            }
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(&u, &v)| u as f64 * v as f64).sum::<f64>();
            let yr = dot(&y, &r);
            let (mut dx, mut dw) = (vec![f32::NAN; x.len()], vec![f32::NAN; wt.len()]);
            backward_input(&g, &wt, &r, &mut dx);
            backward_weight(&g, &x, &r, &mut dw);
            assert!((dot(&x, &dx) - yr).abs() < 1e-4, "{h}×{w}: ⟨x, dx⟩");
            assert!((dot(&wt, &dw) - yr).abs() < 1e-4, "{h}×{w}: ⟨w, dw⟩");
            assert!(dw.iter().all(|v| v.is_finite()), "unused taps are 0");
        }
    }
}
