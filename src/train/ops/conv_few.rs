//! Direct stride-1 "same" convolutions with few output channels (`o ≤ 4`): a generator's
//! to-image layers (CGN-MNIST's mask 32→1 and textures 32→3, BigGAN's `conv_to_rgb`).
//!
//! Through im2col their GEMMs have 1–3 rows (forward, weight gradient) or an inner dimension of
//! 1–3 (input gradient), while im2col / col2im still move `C·K²` values per pixel: in a CGN-MNIST
//! GAN step these layers were a third of all im2col traffic for 3 % of the multiply–adds.
//!
//! Here planes are zero-padded once into rows of `Wp = w + 2p` ("wide" layout). In that layout
//! every tap of the window is one constant offset, so each (input plane, tap) pair is a single
//! long `axpy` or dot product over `h·Wp` values: no per-row slicing, fully vectorised. Outputs
//! are accumulated wide and their `w` valid columns copied out. Each output value is computed by
//! one thread in a fixed order, so results do not depend on the thread count.

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::Geom;
use super::{for_each_chunk, grow};

/// Output channels up to which the direct path is used.
pub const FEW: usize = 4;

thread_local! {
    static PAD: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static WIDE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether `g` takes this path.
pub fn applies(g: &Geom) -> bool {
    !g.depthwise && g.stride == 1 && g.oh == g.h && g.ow == g.w && g.o <= FEW && 2 * g.pad + 1 == g.k
}

/// The wide layout of one geometry.
#[derive(Clone, Copy)]
struct Wide {
    h: usize,
    w: usize,
    k: usize,
    p: usize,
    /// Padded row length.
    wp: usize,
}

impl Wide {
    fn new(g: &Geom) -> Self {
        Self { h: g.h, w: g.w, k: g.k, p: g.pad, wp: g.w + 2 * g.pad }
    }
    /// Values of a wide output (`h` rows of `wp`).
    fn out_len(&self) -> usize {
        self.h * self.wp
    }
    /// Values of a padded plane: `h + 2p` rows of `wp`, plus `k − 1` zeros so the last tap's
    /// span of `out_len` stays inside.
    fn pad_len(&self) -> usize {
        (self.h + 2 * self.p) * self.wp + self.k - 1
    }
    /// Writes `plane (h × w)` into `dst` (`pad_len`) at rows/columns offset by `p`, zeros around.
    fn pad(&self, plane: &[f32], dst: &mut [f32]) {
        let dst = &mut dst[..self.pad_len()];
        dst.fill(0.0);
        for (y, row) in plane[..self.h * self.w].chunks_exact(self.w).enumerate() {
            dst[(y + self.p) * self.wp + self.p..][..self.w].copy_from_slice(row);
        }
    }
    /// Writes `plane (h × w)` into `dst` (`out_len`) in the wide layout, zeros in the extra columns.
    fn widen(&self, plane: &[f32], dst: &mut [f32]) {
        let dst = &mut dst[..self.out_len()];
        dst.fill(0.0);
        for (y, row) in plane[..self.h * self.w].chunks_exact(self.w).enumerate() {
            dst[y * self.wp..][..self.w].copy_from_slice(row);
        }
    }
    /// Copies the valid `w` columns of a wide output into `plane (h × w)`.
    fn narrow(&self, wide: &[f32], plane: &mut [f32]) {
        for (y, row) in plane[..self.h * self.w].chunks_exact_mut(self.w).enumerate() {
            row.copy_from_slice(&wide[y * self.wp..][..self.w]);
        }
    }
}

/// `out[q] += a · src[q]` over `out.len()` values.
#[inline(always)]
fn axpy(out: &mut [f32], src: &[f32], a: f32) {
    let src = &src[..out.len()];
    out.iter_mut().zip(src).for_each(|(d, &s)| *d += a * s);
}

/// `Σ a[q] · b[q]` in 16 lanes summed in a fixed order.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(p, q)| p * q).sum();
    let mut acc = [0f32; 16];
    for (pa, pb) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += pa[l] * pb[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The shared body of the forward pass and the input gradient. For each sample, its `n_src`
/// planes of `src (b, n_src, h, w)` are padded once; then each of its `n_dst` planes of
/// `dst (b, n_dst, h, w)` is `init(d) + Σ_s Σ_t wt[at(d, s) + t] · src_s[q + offset(t)]`,
/// accumulated in the wide layout and narrowed. One task per sample.
#[allow(clippy::too_many_arguments)]
fn spread(
    g: &Geom,
    src: &[f32],
    n_src: usize,
    dst: &mut [f32],
    n_dst: usize,
    wt: &[f32],
    at: impl Fn(usize, usize) -> usize + Sync,
    offset: impl Fn(usize) -> usize + Sync,
    init: impl Fn(usize) -> f32 + Sync,
) {
    let (l, hw, kk) = (Wide::new(g), g.hw(), g.k * g.k);
    let (pl, ol) = (l.pad_len(), l.out_len());
    for_each_chunk(&mut dst[..g.b * n_dst * hw], n_dst * hw, |b, planes| {
        PAD.with(|pad| {
            WIDE.with(|wide| {
                let (mut pad, mut wide) = (pad.borrow_mut(), wide.borrow_mut());
                grow(&mut pad, n_src * pl);
                grow(&mut wide, ol);
                for s in 0..n_src {
                    l.pad(&src[(b * n_src + s) * hw..][..hw], &mut pad[s * pl..]);
                }
                for (d, out) in planes.chunks_exact_mut(hw).enumerate() {
                    let acc = &mut wide[..ol];
                    acc.fill(init(d));
                    for s in 0..n_src {
                        let sp = &pad[s * pl..(s + 1) * pl];
                        for (t, &a) in wt[at(d, s)..][..kk].iter().enumerate() {
                            axpy(acc, &sp[offset(t)..], a);
                        }
                    }
                    l.narrow(acc, out);
                }
            })
        })
    });
}

/// `y (b, o, h, w)` (overwritten) = conv(x, w) + bias: tap `(ky, kx)` reads the padded input at
/// offset `(ky, kx)`.
pub fn forward(g: &Geom, x: &[f32], wt: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (k, wp, kk) = (g.k, Wide::new(g).wp, g.k * g.k);
    spread(
        g,
        x,
        g.c,
        y,
        g.o,
        wt,
        |o, c| (o * g.c + c) * kk,
        |t| (t / k) * wp + t % k,
        |o| bias.map_or(0.0, |bv| bv[o]),
    );
}

/// `dx (b, c, h, w)` (overwritten): `dx[q] = Σ_o Σ_t w[o, c, t] · dy[o][q − s_t]`, i.e. tap
/// `(ky, kx)` reads the padded output gradient at offset `(2p − ky, 2p − kx)`.
pub fn backward_input(g: &Geom, wt: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (k, wp, p2, kk) = (g.k, Wide::new(g).wp, 2 * g.pad, g.k * g.k);
    spread(g, dy, g.o, dx, g.c, wt, |c, o| (o * g.c + c) * kk, |t| (p2 - t / k) * wp + p2 - t % k, |_| 0.0);
}

/// `dw (o, c, k, k)` (overwritten): `dw[o, c, t] = Σ_b Σ_q dy[b, o][q] · x[b, c][q + s_t]`.
/// The output gradients are widened once (zeros in the extra columns, so those positions add
/// nothing); one task per input channel then pads its planes sample by sample.
pub fn backward_weight(g: &Geom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (l, hw, kk) = (Wide::new(g), g.hw(), g.k * g.k);
    let (pl, ol) = (l.pad_len(), l.out_len());
    let mut dyw = vec![0f32; g.b * g.o * ol];
    for (i, d) in dyw.chunks_exact_mut(ol).enumerate() {
        l.widen(&dy[i * hw..(i + 1) * hw], d);
    }
    let per_c = |c: usize| -> Vec<f32> {
        PAD.with(|pad| {
            let mut pad = pad.borrow_mut();
            grow(&mut pad, pl);
            let mut taps = vec![0f32; g.o * kk];
            for b in 0..g.b {
                l.pad(&x[(b * g.c + c) * hw..][..hw], &mut pad);
                for o in 0..g.o {
                    let d = &dyw[(b * g.o + o) * ol..][..ol];
                    for (t, v) in taps[o * kk..(o + 1) * kk].iter_mut().enumerate() {
                        *v += dot(d, &pad[(t / g.k) * l.wp + t % g.k..]);
                    }
                }
            }
            taps
        })
    };
    let cols: Vec<Vec<f32>> = if rayon::current_num_threads() > 1 {
        (0..g.c).into_par_iter().map(per_c).collect()
    } else {
        (0..g.c).map(per_c).collect()
    };
    for (c, taps) in cols.iter().enumerate() {
        for o in 0..g.o {
            dw[(o * g.c + c) * kk..][..kk].copy_from_slice(&taps[o * kk..(o + 1) * kk]);
        }
    }
}
