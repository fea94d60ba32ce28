//! Direct stride-1 "same" convolutions with few output channels (`o ≤ 4`): a generator's
//! to-image layers (CGN-MNIST's mask 32→1 and textures 32→3, BigGAN's `conv_to_rgb`).
//!
//! Through im2col their GEMMs have 1–3 rows (forward, weight gradient) or an inner dimension of
//! 1–3 (input gradient), while im2col / col2im still move `C·K²` values per pixel: in a CGN-MNIST
//! GAN step these layers were a third of all im2col traffic for 3 % of the multiply–adds.
//!
//! Here planes are zero-padded once into rows of `Wp = w + 2p` ("wide" layout). In that layout
//! every tap of the window is one constant offset, so a run of output positions reads each tap
//! as one contiguous span: no per-row slicing. The forward pass and the input gradient keep
//! [`DB`] destination planes × 32 positions in registers across all (source plane, tap) pairs;
//! the weight gradient takes a 3×3 kernel's nine tap dot products at once. These kernels are
//! chosen at run time for AVX-512 + FMA (the crate targets baseline x86-64, where they ran on
//! SSE2), with a portable fallback. Outputs are accumulated wide and their `w` valid columns
//! copied out. Each output value is computed by one thread in a fixed order, so results do not
//! depend on the thread count (they may differ in the last bits between CPUs with and without
//! FMA).

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
    /// [`Self::out_len`] rounded up to whole [`CHUNK`]s (the kernel's tail columns are junk).
    fn out_len_rounded(&self) -> usize {
        self.out_len().next_multiple_of(CHUNK)
    }
    /// Values of a padded plane: `h + 2p` rows of `wp`, plus zeros so the last tap's span of
    /// `out_len_rounded` stays inside.
    fn pad_len(&self) -> usize {
        (self.k - 1) * self.wp + self.k - 1 + self.out_len_rounded()
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

/// Values per register-blocked step of [`accumulate`]: two AVX-512 vectors.
const CHUNK: usize = 32;
/// Destination planes computed together, so each source load feeds `DB` multiply–adds.
const DB: usize = 4;

/// `a·b + c`, fused where the kernel is compiled for FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Whether the AVX-512 + FMA kernels can run here.
fn wide_simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// One block's operands for [`accumulate`]: `n_src` padded source planes of `pl` values, the
/// tap offsets, the block's weights `wb[(s·kk + t)·D + d]` and initial values, and the rounded
/// wide output length.
struct BlockArgs<'a> {
    pad: &'a [f32],
    pl: usize,
    n_src: usize,
    offs: &'a [usize],
    wb: &'a [f32],
    init: &'a [f32],
    olr: usize,
}

/// `out[d·olr + q] = init[d] + Σ_s Σ_t wb[(s·kk + t)·D + d] · pad[s·pl + q + offs[t]]` for the
/// `D` planes of one block, `q < olr` (a multiple of [`CHUNK`]). The `2·D` accumulators stay in
/// registers across all `n_src · kk` taps: one load per tap feeds `2·D` multiply–adds, where an
/// axpy per (plane, tap) loaded and stored the whole plane each time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn accumulate<const D: usize, const FMA: bool>(
    pad: &[f32],
    pl: usize,
    n_src: usize,
    offs: &[usize],
    wb: &[f32],
    init: &[f32],
    out: &mut [f32],
    olr: usize,
) {
    let kk = offs.len();
    for c0 in (0..olr).step_by(CHUNK) {
        let mut acc = [[0f32; CHUNK]; D];
        for (a, &v) in acc.iter_mut().zip(init) {
            *a = [v; CHUNK];
        }
        for s in 0..n_src {
            let sp = &pad[s * pl + c0..(s + 1) * pl];
            let ws = &wb[s * kk * D..(s + 1) * kk * D];
            for (t, &off) in offs.iter().enumerate() {
                assert!(off + CHUNK <= sp.len(), "accumulate: tap offset {off} outside the padded plane");
                // SAFETY: checked just above; t < kk so the D weights lie inside `ws`.
                // Unchecked reads, because a bounds check that may panic inside the loop made LLVM
                // keep the accumulators in memory.
                let v = unsafe { &*(sp.as_ptr().add(off) as *const [f32; CHUNK]) };
                let w = unsafe { &*(ws.as_ptr().add(t * D) as *const [f32; D]) };
                for d in 0..D {
                    for l in 0..CHUNK {
                        acc[d][l] = madd::<FMA>(w[d], v[l], acc[d][l]);
                    }
                }
            }
        }
        for (d, a) in acc.iter().enumerate() {
            out[d * olr + c0..][..CHUNK].copy_from_slice(a);
        }
    }
}

/// [`accumulate`] for a block of `nd ≤ DB` planes.
#[inline(always)]
fn accumulate_nd<const FMA: bool>(nd: usize, a: &BlockArgs, out: &mut [f32]) {
    // Unpacked here: with the struct passed into `accumulate` itself, LLVM left its inner loop
    // scalar (18 % of a cgn-gan step instead of 1.5 %).
    let BlockArgs { pad, pl, n_src, offs, wb, init, olr } = *a;
    match nd {
        1 => accumulate::<1, FMA>(pad, pl, n_src, offs, wb, init, out, olr),
        2 => accumulate::<2, FMA>(pad, pl, n_src, offs, wb, init, out, olr),
        3 => accumulate::<3, FMA>(pad, pl, n_src, offs, wb, init, out, olr),
        _ => accumulate::<DB, FMA>(pad, pl, n_src, offs, wb, init, out, olr),
    }
}

/// [`accumulate_nd`] on AVX-512 + FMA where present.
fn accumulate_block(nd: usize, a: &BlockArgs, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn simd(nd: usize, a: &BlockArgs, out: &mut [f32]) {
        accumulate_nd::<true>(nd, a, out)
    }
    #[cfg(target_arch = "x86_64")]
    if wide_simd() {
        // SAFETY: AVX-512F and FMA are present.
        return unsafe { simd(nd, a, out) };
    }
    accumulate_nd::<false>(nd, a, out)
}

/// `Σ a[q] · b[q]` in [`CHUNK`] lanes summed in a fixed order.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    let (ca, cb) = (a.chunks_exact(CHUNK), b.chunks_exact(CHUNK));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(p, q)| p * q).sum();
    let mut acc = [0f32; CHUNK];
    for (pa, pb) in ca.zip(cb) {
        for l in 0..CHUNK {
            acc[l] = madd::<FMA>(pa[l], pb[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The nine dot products of a 3×3 kernel's taps at once: each load of `dp` feeds nine
/// multiply–adds into nine register accumulators (one dot at a time loaded both operands).
#[inline(always)]
fn tap_dots3<const FMA: bool>(dp: &[f32], pad: &[f32], wp: usize, tp: &mut [f32]) {
    const L: usize = 16;
    let offs = [0, 1, 2, wp, wp + 1, wp + 2, 2 * wp, 2 * wp + 1, 2 * wp + 2];
    let full = dp.len() / L * L;
    let pad = &pad[..dp.len() + offs[8]];
    let mut acc = [[0f32; L]; 9];
    for q in (0..full).step_by(L) {
        // SAFETY: q + L ≤ full ≤ dp.len(), and q + off + L ≤ dp.len() + offs[8] = pad.len().
        // Unchecked, because a bounds check in the loop made LLVM keep the accumulators in
        // memory (a store per tap per step).
        let d = unsafe { &*(dp.as_ptr().add(q) as *const [f32; L]) };
        for (a, &off) in acc.iter_mut().zip(&offs) {
            let p = unsafe { &*(pad.as_ptr().add(q + off) as *const [f32; L]) };
            for l in 0..L {
                a[l] = madd::<FMA>(d[l], p[l], a[l]);
            }
        }
    }
    for ((v, a), &off) in tp.iter_mut().zip(&acc).zip(&offs) {
        let tail: f32 = (full..dp.len()).map(|q| dp[q] * pad[q + off]).sum();
        *v += a.iter().sum::<f32>() + tail;
    }
}

/// `taps[o·k² + t] += Σ_q d_o[q] · pad[q + (t / k)·wp + t % k]` for the output-gradient planes
/// `d (o × ol)` of one sample, on AVX-512 + FMA where present.
fn add_tap_dots(d: &[f32], ol: usize, pad: &[f32], k: usize, wp: usize, taps: &mut [f32]) {
    #[inline(always)]
    fn run<const FMA: bool>(d: &[f32], ol: usize, pad: &[f32], k: usize, wp: usize, taps: &mut [f32]) {
        for (dp, tp) in d.chunks_exact(ol).zip(taps.chunks_exact_mut(k * k)) {
            if k == 3 {
                tap_dots3::<FMA>(dp, pad, wp, tp);
                continue;
            }
            for (t, v) in tp.iter_mut().enumerate() {
                *v += dot::<FMA>(dp, &pad[(t / k) * wp + t % k..]);
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn simd(d: &[f32], ol: usize, pad: &[f32], k: usize, wp: usize, taps: &mut [f32]) {
        run::<true>(d, ol, pad, k, wp, taps)
    }
    #[cfg(target_arch = "x86_64")]
    if wide_simd() {
        // SAFETY: AVX-512F and FMA are present.
        return unsafe { simd(d, ol, pad, k, wp, taps) };
    }
    run::<false>(d, ol, pad, k, wp, taps)
}

/// The shared body of the forward pass and the input gradient. For each sample, its `n_src`
/// planes of `src (b, n_src, h, w)` are padded once; then each of its `n_dst` planes of
/// `dst (b, n_dst, h, w)` is `init(d) + Σ_s Σ_t wt[at(d, s) + t] · src_s[q + offset(t)]`,
/// accumulated in the wide layout, [`DB`] planes at a time, and narrowed. One task per sample.
#[allow(clippy::too_many_arguments)]
fn spread(
    g: &Geom,
    src: &[f32],
    n_src: usize,
    dst: &mut [f32],
    n_dst: usize,
    wt: &[f32],
    at: impl Fn(usize, usize) -> usize,
    offset: impl Fn(usize) -> usize,
    init: impl Fn(usize) -> f32,
) {
    let (l, hw, kk) = (Wide::new(g), g.hw(), g.k * g.k);
    let (pl, olr) = (l.pad_len(), l.out_len_rounded());
    let offs: Vec<usize> = (0..kk).map(offset).collect();
    // The weights of each block of DB destination planes in `accumulate`'s order (block `d0`
    // at `d0·n_src·kk`, then `(s·kk + t)·nd + j`), and the initial values, built once for all
    // samples.
    let mut wb = vec![0f32; n_dst * n_src * kk];
    for d0 in (0..n_dst).step_by(DB) {
        let nd = DB.min(n_dst - d0);
        let block = &mut wb[d0 * n_src * kk..(d0 + nd) * n_src * kk];
        for s in 0..n_src {
            for t in 0..kk {
                for j in 0..nd {
                    block[(s * kk + t) * nd + j] = wt[at(d0 + j, s) + t];
                }
            }
        }
    }
    let inits: Vec<f32> = (0..n_dst).map(init).collect();
    for_each_chunk(&mut dst[..g.b * n_dst * hw], n_dst * hw, |b, planes| {
        PAD.with(|pad| {
            WIDE.with(|wide| {
                let (mut pad, mut wide) = (pad.borrow_mut(), wide.borrow_mut());
                grow(&mut pad, n_src * pl);
                grow(&mut wide, DB * olr);
                for s in 0..n_src {
                    l.pad(&src[(b * n_src + s) * hw..][..hw], &mut pad[s * pl..]);
                }
                for d0 in (0..n_dst).step_by(DB) {
                    let nd = DB.min(n_dst - d0);
                    let args = BlockArgs {
                        pad: &pad,
                        pl,
                        n_src,
                        offs: &offs,
                        wb: &wb[d0 * n_src * kk..(d0 + nd) * n_src * kk],
                        init: &inits[d0..d0 + nd],
                        olr,
                    };
                    accumulate_block(nd, &args, &mut wide);
                    for j in 0..nd {
                        l.narrow(&wide[j * olr..], &mut planes[(d0 + j) * hw..(d0 + j + 1) * hw]);
                    }
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
                add_tap_dots(&dyw[b * g.o * ol..(b + 1) * g.o * ol], ol, &pad, g.k, l.wp, &mut taps);
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
