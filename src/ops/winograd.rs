//! 3×3 "same" convolution (stride 1) by Winograd's minimal filtering F(2×2, 3×3) (Lavin &
//! Gray, 2016): each 2×2 output tile comes from a 4×4 input patch with 16 multiplies per
//! (input, output) channel pair instead of 36, so the GEMMs do 2.25× fewer FLOPs than im2col's.
//!
//! With `d` a 4×4 input patch, `g` a 3×3 kernel and `Y` the 2×2 output (cross-correlation, as
//! PyTorch's conv2d):
//! `V = Bᵀ d B`, `U = G g Gᵀ`, `Y = Aᵀ (U ⊙ V) A`, where
//! `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`, `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`,
//! `Aᵀ = [1 1 1 0; 0 1 −1 −1]`. Summed over input channels, the element-wise product becomes
//! 16 GEMMs `M_ξ (o × tiles) = U_ξ (o × c) · V_ξ (c × tiles)`, one per patch position ξ.
//!
//! The transforms only add, subtract and halve, so the result differs from direct convolution
//! by float rounding alone (relative ~1e-6 here; the unit test bounds it).
//!
//! Work is split in bands of whole tile rows; each band transforms its input patches, runs its
//! 16 GEMMs single-threaded and writes its output rows, all in per-thread buffers.

use std::cell::RefCell;

use super::gemm::{product, Parallelism, View};
use super::SendPtr;
use rayon::prelude::*;

thread_local! {
    /// Per-thread V (16 × c × band tiles) and M (16 × o × band tiles).
    static BUF: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Tiles per band: enough columns for gemm's wide kernels and to amortise packing U.
const BAND_TILES: usize = 256;

/// Whether this shape takes the Winograd path: even sides, and enough tiles for every thread.
pub(super) fn suits(h: usize, w: usize) -> bool {
    h.is_multiple_of(2) && w.is_multiple_of(2) && (h / 2) * (w / 2) >= 2 * rayon::current_num_threads().max(1) * 64
}

/// `U` for all (output, input) channel pairs: `u[ξ·o·c + oc·c + ic]`, the layout of 16
/// row-major `(o × c)` matrices.
pub(super) fn transform_weights(weight: &[f32], o: usize, c: usize) -> Vec<f32> {
    let mut u = vec![0f32; 16 * o * c];
    for oc in 0..o {
        for ic in 0..c {
            let g = &weight[(oc * c + ic) * 9..][..9];
            // Gg (4×3): rows of G applied to the kernel's rows.
            let mut gg = [[0f32; 3]; 4];
            for j in 0..3 {
                let (a, b, cc) = (g[j], g[3 + j], g[6 + j]);
                gg[0][j] = a;
                gg[1][j] = 0.5 * (a + b + cc);
                gg[2][j] = 0.5 * (a - b + cc);
                gg[3][j] = cc;
            }
            // (Gg)Gᵀ (4×4).
            for (i, r) in gg.iter().enumerate() {
                let vals = [r[0], 0.5 * (r[0] + r[1] + r[2]), 0.5 * (r[0] - r[1] + r[2]), r[2]];
                for (j, v) in vals.into_iter().enumerate() {
                    u[(i * 4 + j) * o * c + oc * c + ic] = v;
                }
            }
        }
    }
    u
}

/// Convolves `src (c, h, w)` (already pre-activated) with transformed weights `u`
/// ([`transform_weights`]) into `dst (o, h, w)`. `init(dst, p0, n)` first writes bias and
/// residual into pixels `[p0, p0 + n)` of every output plane; the convolution is added.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv3x3(
    src: &[f32],
    c: usize,
    h: usize,
    w: usize,
    u: &[f32],
    o: usize,
    init: &(dyn Fn(&mut [f32], usize, usize) + Sync),
    dst: &mut [f32],
) {
    let (th, tw) = (h / 2, w / 2);
    let threads = rayon::current_num_threads().max(1);
    let band_rows = (BAND_TILES.min(th * tw / threads) / tw).clamp(1, th);
    let dst_len = dst.len();
    let base = SendPtr(dst.as_mut_ptr());
    (0..th.div_ceil(band_rows)).into_par_iter().for_each(|band| {
        // Rebinds so the closure captures the Send wrapper whole, not its raw-pointer field.
        #[allow(clippy::redundant_locals)]
        let base = base;
        let (ty0, ty1) = (band * band_rows, ((band + 1) * band_rows).min(th));
        let nt = (ty1 - ty0) * tw;
        BUF.with(|b| {
            let (v, m) = &mut *b.borrow_mut();
            if v.len() < 16 * c * nt {
                v.resize(16 * c * nt, 0.0);
            }
            if m.len() < 16 * o * nt {
                m.resize(16 * o * nt, 0.0);
            }
            input_transform(src, c, h, w, ty0, ty1, &mut v[..16 * c * nt]);
            for xi in 0..16 {
                // SAFETY: m holds 16·o·nt values, v 16·c·nt, u 16·o·c.
                unsafe {
                    let dst = View::rows_mut(m.as_mut_ptr().add(xi * o * nt), nt);
                    let (lhs, rhs) = (View::rows(&u[xi * o * c..], c), View::rows(&v[xi * c * nt..], nt));
                    product(o, nt, c, dst, false, lhs, rhs, 1.0, Parallelism::None);
                }
            }
            // SAFETY: this band owns output rows [2·ty0, 2·ty1) of every plane.
            let d = unsafe { std::slice::from_raw_parts_mut(base.0, dst_len) };
            let (p0, n) = (2 * ty0 * w, 2 * (ty1 - ty0) * w);
            init(d, p0, n);
            output_transform(&m[..16 * o * nt], o, w, tw, ty0, ty1, d);
        });
    });
}

super::widest! {
    /// `V = Bᵀ d B` for every channel and every tile of tile rows `[ty0, ty1)`:
    /// `v[ξ·c·nt + ch·nt + t]`, zero padding outside the image.
    ///
    /// The padded input rows are split into even and odd columns as they are read (padded column
    /// `2j` is image column `2j − 1`, padded column `2j + 1` is image column `2j`), so that a tile's
    /// four patch columns are `E[tx], O[tx], E[tx+1], O[tx+1]`: every loop below runs over
    /// contiguous arrays and vectorises.
    fn input_transform(src: &[f32], c: usize, h: usize, w: usize, ty0: usize, ty1: usize, v: &mut [f32]) {
        let tw = w / 2;
        let nt = (ty1 - ty0) * tw;
        let n = tw + 1;
        // rows[r] = (even, odd) of padded input row 2ty − 1 + r; cols[i] = Bᵀ applied to them.
        let mut rows = vec![0f32; 8 * n];
        let mut cols = vec![0f32; 8 * n];
        for ch in 0..c {
            let plane = &src[ch * h * w..(ch + 1) * h * w];
            for ty in ty0..ty1 {
                for r in 0..4 {
                    let y = (2 * ty + r) as isize - 1;
                    let (e, o) = rows[2 * r * n..(2 * r + 2) * n].split_at_mut(n);
                    if y < 0 || y >= h as isize {
                        e.fill(0.0);
                        o.fill(0.0);
                        continue;
                    }
                    let row = &plane[y as usize * w..(y as usize + 1) * w];
                    e[0] = 0.0;
                    o[tw] = 0.0;
                    for (j, pair) in row.chunks_exact(2).enumerate() {
                        o[j] = pair[0];
                        e[j + 1] = pair[1];
                    }
                }
                // Bᵀ down the columns (even and odd halves alike: 2n values per row).
                {
                    let (r0, rest) = rows.split_at(2 * n);
                    let (r1, rest) = rest.split_at(2 * n);
                    let (r2, r3) = rest.split_at(2 * n);
                    let (c0, rest) = cols.split_at_mut(2 * n);
                    let (c1, rest) = rest.split_at_mut(2 * n);
                    let (c2, c3) = rest.split_at_mut(2 * n);
                    for x in 0..2 * n {
                        c0[x] = r0[x] - r2[x];
                        c1[x] = r1[x] + r2[x];
                        c2[x] = r2[x] - r1[x];
                        c3[x] = r1[x] - r3[x];
                    }
                }
                // B along the rows, per tile.
                let t0 = (ty - ty0) * tw;
                for i in 0..4 {
                    let (e, o) = cols[2 * i * n..(2 * i + 2) * n].split_at(n);
                    let (e0, e1, o0, o1) = (&e[..tw], &e[1..=tw], &o[..tw], &o[1..=tw]);
                    let out = |j: usize| (i * 4 + j) * c * nt + ch * nt + t0;
                    let (v0, rest) = v[out(0)..].split_at_mut(tw);
                    let _ = rest;
                    for ((d, a), b) in v0.iter_mut().zip(e0).zip(e1) {
                        *d = a - b;
                    }
                    let v1 = &mut v[out(1)..out(1) + tw];
                    for ((d, a), b) in v1.iter_mut().zip(o0).zip(e1) {
                        *d = a + b;
                    }
                    let v2 = &mut v[out(2)..out(2) + tw];
                    for ((d, a), b) in v2.iter_mut().zip(e1).zip(o0) {
                        *d = a - b;
                    }
                    let v3 = &mut v[out(3)..out(3) + tw];
                    for ((d, a), b) in v3.iter_mut().zip(o0).zip(o1) {
                        *d = a - b;
                    }
                }
            }
        }
    }
}

super::widest! {
    /// `Y = Aᵀ M A` for every output channel and tile, added to `dst (o, h, w)`.
    fn output_transform(m: &[f32], o: usize, w: usize, tw: usize, ty0: usize, ty1: usize, dst: &mut [f32]) {
        let nt = (ty1 - ty0) * tw;
        let h = dst.len() / o / w;
        // Per tile row: Aᵀ M A for all its tiles, the four results in planar scratch.
        let mut y = vec![0f32; 4 * tw];
        for oc in 0..o {
            let plane = &mut dst[oc * h * w..(oc + 1) * h * w];
            for ty in ty0..ty1 {
                let t0 = (ty - ty0) * tw;
                let e: [&[f32]; 16] = std::array::from_fn(|xi| &m[xi * o * nt + oc * nt + t0..][..tw]);
                let (y00, rest) = y.split_at_mut(tw);
                let (y01, rest) = rest.split_at_mut(tw);
                let (y10, y11) = rest.split_at_mut(tw);
                for t in 0..tw {
                    // Aᵀ M (rows r0, r1 of four), then · A.
                    let r0: [f32; 4] = std::array::from_fn(|j| e[j][t] + e[4 + j][t] + e[8 + j][t]);
                    let r1: [f32; 4] = std::array::from_fn(|j| e[4 + j][t] - e[8 + j][t] - e[12 + j][t]);
                    y00[t] = r0[0] + r0[1] + r0[2];
                    y01[t] = r0[1] - r0[2] - r0[3];
                    y10[t] = r1[0] + r1[1] + r1[2];
                    y11[t] = r1[1] - r1[2] - r1[3];
                }
                let (top, bottom) = plane[2 * ty * w..(2 * ty + 2) * w].split_at_mut(w);
                for (((pair, &a), &b), (pair2, (&cc, &d))) in top
                    .chunks_exact_mut(2)
                    .zip(y00.iter())
                    .zip(y01.iter())
                    .zip(bottom.chunks_exact_mut(2).zip(y10.iter().zip(y11.iter())))
                {
                    pair[0] += a;
                    pair[1] += b;
                    pair2[0] += cc;
                    pair2[1] += d;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 3×3 "same" cross-correlation in f64, the reference.
    fn direct(x: &[f32], c: usize, h: usize, w: usize, wt: &[f32], o: usize, bias: &[f32]) -> Vec<f64> {
        let mut out = vec![0f64; o * h * w];
        for oc in 0..o {
            for y in 0..h {
                for xx in 0..w {
                    let mut acc = bias[oc] as f64;
                    for ic in 0..c {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                acc += x[ic * h * w + iy as usize * w + ix as usize] as f64
                                    * wt[((oc * c + ic) * 3 + ky) * 3 + kx] as f64;
                            }
                        }
                    }
                    out[oc * h * w + y * w + xx] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_convolution() {
        // Several bands per thread, a band that is not full, non-square maps.
        for (c, o, h, w) in [(5usize, 7usize, 36usize, 32usize), (16, 3, 64, 40), (3, 16, 34, 130)] {
            let x: Vec<f32> = (0..c * h * w).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let wt: Vec<f32> = (0..o * c * 9).map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5).collect();
            let bias: Vec<f32> = (0..o).map(|i| i as f32 * 0.1 - 0.3).collect();
            let want = direct(&x, c, h, w, &wt, o, &bias);
            let u = transform_weights(&wt, o, c);
            let mut got = vec![f32::NAN; o * h * w];
            let init = |d: &mut [f32], p0: usize, n: usize| {
                for (oc, plane) in d.chunks_mut(h * w).enumerate() {
                    plane[p0..p0 + n].fill(bias[oc]);
                }
            };
            conv3x3(&x, c, h, w, &u, o, &init, &mut got);
            let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
            let worst = got.iter().zip(&want).fold(0f64, |m, (&g, &r)| m.max((g as f64 - r).abs()));
            assert!(worst <= 1e-5 * scale, "({c}, {o}, {h}, {w}): worst error {worst}, scale {scale}");
        }
    }

    #[test]
    fn a_layers_kept_transform_gives_the_same_output_as_a_fresh_one() {
        let (c, o, h) = (8usize, 6usize, 64usize);
        assert!(suits(h, h), "the shape takes the Winograd path");
        let x: Vec<f32> = (0..2 * c * h * h).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let wt: Vec<f32> = (0..o * c * 9).map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let cell = std::sync::OnceLock::new();
        let args = |u| crate::ops::Conv2dArgs {
            x: &x,
            dims: [2, c, h, h],
            pre: None,
            upsample2: false,
            weight: &wt,
            out_channels: o,
            kernel: 3,
            bias: None,
            residual: None,
            winograd_u: u,
        };
        let run = |a: &crate::ops::Conv2dArgs| {
            let mut out = vec![f32::NAN; 2 * o * h * h];
            crate::ops::conv2d(a, &mut out).unwrap();
            out
        };
        let fresh = run(&args(None));
        assert!(cell.get().is_none());
        assert_eq!(run(&args(Some(&cell))), fresh, "first call: made and kept");
        assert_eq!(cell.get().map(Vec::len), Some(16 * o * c));
        assert_eq!(run(&args(Some(&cell))), fresh, "second call: reused");
    }
}
