//! Differentiable 2-D convolution on im2col / col2im + GEMM, as a candle custom op whose
//! backward replaces candle's (which runs the input gradient through a naive
//! `conv_transpose2d` loop and always computes the kernel gradient).
//!
//! For a group of `g` samples, `col (C·K·K, g·OH·OW)` holds the receptive fields side by side:
//! - forward: `y = W (O, CKK) · col`;
//! - weight gradient: `dW += dY (O, g·OHOW) · colᵀ`;
//! - input gradient of the same-size stride-1 convolutions where it pays ([`Geom::adjoint`]):
//!   the adjoint convolution of `dY` with the flipped kernel, on the forward path;
//! - input gradient otherwise: `dcol = Wᵀ · dY`, then col2im adds each column back onto the
//!   pixels it was read from.
//!
//! Samples are grouped so each GEMM has at least [`TARGET_COLS`] columns (small late layers
//! would otherwise run GEMMs of 4–64 columns); 1×1 stride-1 convolutions on large maps skip
//! im2col. Scratch buffers are per thread and reused. Gradients are only computed for
//! arguments that need one (`Tensor::track_op`): a frozen weight costs no kernel gradient,
//! an input batch no input gradient.
//!
//! Depthwise convolutions (`groups = C = O`, MobileNetV2) use direct loops
//! ([`super::depthwise`]). Every reduction runs in a fixed order, so results do not depend on
//! the thread count.

use std::cell::RefCell;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{matmul, View};
use super::taps::Taps;
use super::{f32_slice, grow};

/// GEMMs get at least this many columns (output pixels × samples) when the batch allows.
const TARGET_COLS: usize = 512;
/// Upper bound on one im2col buffer (bytes).
const COL_BUDGET: usize = 16 << 20;
/// Stride-1 maps up to this many pixels use a gather table ([`taps_for`]).
const SMALL_MAP: usize = 16;

thread_local! {
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static TMP: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The weight gradient, transposed (taps × output channels).
    static DWT: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The adjoint convolution's kernel ([`Geom::adjoint`]).
    static WFLIP: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The ×2 upsampled input of a fused upsample-convolution ([`conv2d_up2`]).
    static UP: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Its input gradient at the upsampled size, before the 2×2 sums.
    static DXUP: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// One channel's four phase planes ([`halving`]).
    static PHASES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Stride, zero padding and grouping of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvCfg {
    pub stride: usize,
    pub padding: usize,
    /// Depthwise (`groups = C = O`, weight `(C, 1, K, K)`) instead of dense.
    pub depthwise: bool,
}

impl ConvCfg {
    pub fn new(stride: usize, padding: usize) -> Self {
        Self { stride, padding, depthwise: false }
    }
}

/// Shapes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    pub b: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
    pub depthwise: bool,
}

impl Geom {
    /// Checks `x (b, c, h, w)` against `weight (o, c or 1, k, k)`.
    pub fn new(x: &[usize], wt: &[usize], cfg: ConvCfg) -> Result<Self> {
        let (&[b, c, h, w], &[o, wc, k, k2]) = (x, wt) else {
            candle_core::bail!("conv2d: input {x:?} and weight {wt:?} must both be 4-D");
        };
        let want_c = if cfg.depthwise { 1 } else { c };
        if k != k2 || wc != want_c || (cfg.depthwise && o != c) || cfg.stride == 0 || k == 0 {
            candle_core::bail!(
                "conv2d: weight {wt:?} does not fit input {x:?} (depthwise {}, stride {})",
                cfg.depthwise,
                cfg.stride
            );
        }
        if h + 2 * cfg.padding < k || w + 2 * cfg.padding < k {
            candle_core::bail!("conv2d: kernel {k} larger than the padded input {x:?} (padding {})", cfg.padding);
        }
        let out = |n: usize| (n + 2 * cfg.padding - k) / cfg.stride + 1;
        Ok(Self {
            b,
            c,
            h,
            w,
            o,
            k,
            stride: cfg.stride,
            pad: cfg.padding,
            oh: out(h),
            ow: out(w),
            depthwise: cfg.depthwise,
        })
    }

    pub fn ohw(&self) -> usize {
        self.oh * self.ow
    }
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Rows of im2col: `C·K·K`.
    pub fn kk(&self) -> usize {
        self.c * self.k * self.k
    }
    /// Stride 1 with an output as large as the input ("same" padding).
    fn same_size(&self) -> bool {
        self.stride == 1 && self.oh == self.h && self.ow == self.w
    }
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
    /// Whether each sample runs its own GEMM straight on the input planes (1×1, large maps).
    fn direct_pointwise(&self) -> bool {
        self.pointwise() && self.hw() >= TARGET_COLS
    }
    /// For a "same" stride-1 convolution (not 1×1), the convolution that computes its input
    /// gradient: `dx = conv(dy, flipped w)` with `o` input and `c` output channels and the same
    /// padding. Its GEMM reduces over `o·k²` into `c` rows and its im2col holds `o·k²` values a
    /// pixel, where `Wᵀ·dY` + col2im reduces over `o` into `c·k²` rows that col2im reads back.
    /// Same multiply–adds; the adjoint moves less memory when `o < c`, and on maps of at most
    /// [`SMALL_MAP`] pixels (ResNet's 4×4 and 2×2) its GEMM ran 5–20 % faster. With `o ≥ c` on
    /// larger maps the col2im form was faster (its GEMM has 9× the rows: 5.5 vs 6.3 ms for
    /// 64→64 at 16×16, batch 32, best of 20 interleaved), so those keep it, as do "valid"
    /// convolutions (the adjoint would multiply the zero padding too) and layers with fewer than
    /// 16 inputs (its GEMM would have fewer rows than an AVX-512 vector has lanes).
    fn adjoint(&self) -> Option<Geom> {
        let worth = self.o < self.c || self.hw() <= SMALL_MAP;
        if !worth
            || self.c < 16
            || self.depthwise
            || !self.same_size()
            || self.pointwise()
            || 2 * self.pad + 1 != self.k
        {
            return None;
        }
        Some(Geom { c: self.o, o: self.c, ..*self })
    }
    /// Samples per GEMM.
    pub fn group(&self) -> usize {
        let by_cols = TARGET_COLS.div_ceil(self.ohw().max(1));
        let by_mem = (COL_BUDGET / (4 * self.kk() * self.ohw()).max(1)).max(1);
        by_cols.min(by_mem).clamp(1, self.b.max(1))
    }
    pub fn out_dims(&self) -> [usize; 4] {
        [self.b, self.o, self.oh, self.ow]
    }
    /// Multiply–adds of the forward pass.
    pub fn madds(&self) -> usize {
        let per_out = if self.depthwise { self.k * self.k } else { self.kk() };
        self.b * self.o * self.ohw() * per_out
    }
}

fn parallel() -> bool {
    rayon::current_num_threads() > 1
}

/// Runs `f(channel, chunk)` over the `c` consecutive chunks of `per` values in `data`, across
/// the thread pool when there is one.
fn per_channel(data: &mut [f32], c: usize, per: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let data = &mut data[..c * per];
    if parallel() && c >= 4 {
        data.par_chunks_mut(per).enumerate().for_each(|(ci, d)| f(ci, d));
    } else {
        data.chunks_mut(per).enumerate().for_each(|(ci, d)| f(ci, d));
    }
}

/// The gather table of a strided convolution or a small map, else `None`: there each tap's
/// im2col row is short (4 values for a 2×2 map) and copying it row segment by row segment cost
/// 2–4 ns a value in loop overhead. Stride-1 "same" convolutions on larger maps copy each row
/// as one shifted span instead ([`shifted_copy`]).
fn taps_for(g: &Geom) -> Option<Taps> {
    if g.same_size() && g.hw() > SMALL_MAP {
        return None;
    }
    Some(Taps::window(g.h, g.w, g.k, g.stride, g.pad, g.oh, g.ow))
}

/// Whether a convolution halves an even-sized map with stride 2 (ResNet's stem and the first
/// convolution and downsampling of each stage). Then input pixel `(2y + py, 2x + px)` is pixel
/// `(y, x)` of phase plane `(py, px)`, a plane the size of the output, and each tap's im2col row
/// is a shifted copy of one phase plane ([`shifted_copy`]): memory copies instead of a gather
/// per value. On the 7×7 stem, the phases cost one pass over the input for 12 passes' worth of
/// gathers.
fn halving(g: &Geom) -> bool {
    g.stride == 2
        && !g.depthwise
        && g.h.is_multiple_of(2)
        && g.w.is_multiple_of(2)
        && 2 * g.oh == g.h
        && 2 * g.ow == g.w
        && g.ohw() > SMALL_MAP
}

/// The four phase planes of `plane (h, w)`, `h` and `w` even: `phases[(py·2 + px)·ohw + y·ow +
/// x] = plane[(2y + py)·w + 2x + px]`.
fn split_phases(plane: &[f32], h: usize, w: usize, phases: &mut [f32]) {
    let (oh, ow) = (h / 2, w / 2);
    let ohw = oh * ow;
    for y in 0..oh {
        for py in 0..2 {
            let src = &plane[(2 * y + py) * w..][..w];
            let (even, odd) = phases[py * 2 * ohw..].split_at_mut(ohw);
            let (even, odd) = (&mut even[y * ow..][..ow], &mut odd[y * ow..][..ow]);
            for (x, pair) in src.chunks_exact(2).enumerate() {
                even[x] = pair[0];
                odd[x] = pair[1];
            }
        }
    }
}

/// A tap offset `t` of a stride-2 window as (offset in the phase plane, phase): `t = 2·d + p`.
fn phase_offset(t: isize) -> (isize, usize) {
    (t.div_euclid(2), t.rem_euclid(2) as usize)
}

/// im2col of sample `x (c, h, w)` into columns `[j0, j0 + ohw)` of `col (kk, n)`; `table` is
/// [`taps_for`]'s for this geometry.
fn im2col(g: &Geom, table: Option<&Taps>, x: &[f32], col: &mut [f32], n: usize, j0: usize) {
    let (k, ohw, hw) = (g.k, g.ohw(), g.hw());
    let per_c = k * k * n;
    if halving(g) {
        return per_channel(col, g.c, per_c, |ci, rows| {
            PHASES.with(|p| {
                let mut p = p.borrow_mut();
                grow(&mut p, hw);
                split_phases(&x[ci * hw..(ci + 1) * hw], g.h, g.w, &mut p[..hw]);
                for ky in 0..k {
                    let (dy, py) = phase_offset(ky as isize - g.pad as isize);
                    for kx in 0..k {
                        let (dx, px) = phase_offset(kx as isize - g.pad as isize);
                        let row = &mut rows[(ky * k + kx) * n + j0..][..ohw];
                        shifted_copy(g.oh, g.ow, &p[(py * 2 + px) * ohw..][..ohw], row, dy, dx);
                    }
                }
            })
        });
    }
    if let Some(table) = table {
        return per_channel(col, g.c, per_c, |ci, rows| table.gather_rows(&x[ci * hw..(ci + 1) * hw], rows, n, j0));
    }
    per_channel(col, g.c, per_c, |ci, rows| {
        let plane = &x[ci * hw..(ci + 1) * hw];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut rows[(ky * k + kx) * n + j0..][..ohw];
                shifted_copy(g.h, g.w, plane, row, ky as isize - g.pad as isize, kx as isize - g.pad as isize);
            }
        }
    });
}

/// col2im: adds columns `[j0, j0 + ohw)` of `col (kk, n)` onto `dx (c, h, w)` (not cleared).
fn col2im(g: &Geom, table: Option<&Taps>, col: &[f32], n: usize, j0: usize, dx: &mut [f32]) {
    let (k, ohw, hw) = (g.k, g.ohw(), g.hw());
    if let Some(table) = table {
        return per_channel(dx, g.c, hw, |ci, plane| table.scatter_add_rows(&col[ci * k * k * n..], n, j0, plane));
    }
    per_channel(dx, g.c, hw, |ci, plane| {
        for ky in 0..k {
            for kx in 0..k {
                let row = &col[((ci * k + ky) * k + kx) * n + j0..][..ohw];
                shifted_add(g, row, plane, ky as isize - g.pad as isize, kx as isize - g.pad as isize);
            }
        }
    });
}

/// Output rows `[lo, hi)` whose input row `oy + dy` lies in `[0, h)`.
#[inline]
fn row_range(h: usize, dy: isize) -> (usize, usize) {
    ((-dy).clamp(0, h as isize) as usize, (h as isize - dy).clamp(0, h as isize) as usize)
}

/// im2col row of one tap of a stride-1 "same" convolution on `plane (h, w)`: `row[oy·w + ox] =
/// plane[(oy + dy)·w + ox + dx]`, 0 outside. The valid rows are one contiguous span of the plane
/// shifted by `dy·w + dx`, so it is one copy; the `|dx|` columns per row that wrapped around are
/// zeroed after.
fn shifted_copy(h: usize, w: usize, plane: &[f32], row: &mut [f32], dy: isize, dx: isize) {
    let (lo, hi) = row_range(h, dy);
    row[..lo * w].fill(0.0);
    row[hi.max(lo) * w..].fill(0.0);
    if hi <= lo {
        return;
    }
    // Destination [lo·w, hi·w) reads source [lo·w + s, hi·w + s) with s = dy·w + dx, clipped to
    // the plane; what falls outside is a wrapped column and is zeroed below anyway.
    let s = dy * w as isize + dx;
    let (d0, d1) = (lo * w, hi * w);
    let a = ((d0 as isize + s).max(0) - s) as usize;
    let b = ((d1 as isize + s).min(plane.len() as isize) - s) as usize;
    row[d0..a.max(d0)].fill(0.0);
    row[b.min(d1)..d1].fill(0.0);
    if b > a {
        row[a..b].copy_from_slice(&plane[(a as isize + s) as usize..(b as isize + s) as usize]);
    }
    let m = dx.unsigned_abs().min(w);
    if m > 0 {
        for oy in lo..hi {
            let r = &mut row[oy * w..(oy + 1) * w];
            zero_few(if dx > 0 { &mut r[w - m..] } else { &mut r[..m] });
        }
    }
}

/// Zeroes a slice that is usually 1–2 values long (the wrapped columns of a tap): stores, not a
/// `memset` call per image row, which cost more than the copy it follows.
#[inline(always)]
fn zero_few(s: &mut [f32]) {
    match s {
        [] => {}
        [a] => *a = 0.0,
        [a, b] => (*a, *b) = (0.0, 0.0),
        _ => s.fill(0.0),
    }
}

/// col2im of one tap of a stride-1 "same" convolution: `plane[(oy + dy)·w + ox + dx] += row[oy·w
/// + ox]` where inside. One contiguous span, minus the wrapped columns, which are skipped by
/// adding row by row only where `|dx|` makes them wrap.
fn shifted_add(g: &Geom, row: &[f32], plane: &mut [f32], dy: isize, dx: isize) {
    let w = g.w;
    let (lo, hi) = row_range(g.h, dy);
    if hi <= lo {
        return;
    }
    let s = dy * w as isize + dx;
    let m = dx.unsigned_abs().min(w);
    if m == 0 {
        let (d0, d1) = (lo * w, hi * w);
        let dst = &mut plane[(d0 as isize + s) as usize..(d1 as isize + s) as usize];
        dst.iter_mut().zip(&row[d0..d1]).for_each(|(d, &v)| *d += v);
        return;
    }
    for oy in lo..hi {
        let (c0, c1) = if dx > 0 { (0, w - m) } else { (m, w) };
        let src = &row[oy * w + c0..oy * w + c1];
        let start = ((oy * w + c0) as isize + s) as usize;
        plane[start..start + src.len()].iter_mut().zip(src).for_each(|(d, &v)| *d += v);
    }
}

/// Runs `f(first_sample, samples, col, n)` for each group of samples with its im2col built.
fn for_each_group(g: &Geom, x: &[f32], mut f: impl FnMut(usize, usize, &[f32], usize)) {
    let gs = g.group();
    // Halving convolutions copy from phase planes ([`im2col`]); their table would go unused.
    let table = if halving(g) { None } else { taps_for(g) };
    COL.with(|col| {
        let mut col = col.borrow_mut();
        let mut b0 = 0;
        while b0 < g.b {
            let s = gs.min(g.b - b0);
            let n = s * g.ohw();
            grow(&mut col, g.kk() * n);
            for j in 0..s {
                let xs = &x[(b0 + j) * g.c * g.hw()..(b0 + j + 1) * g.c * g.hw()];
                im2col(g, table.as_ref(), xs, &mut col, n, j * g.ohw());
            }
            f(b0, s, &col[..g.kk() * n], n);
            b0 += s;
        }
    });
}

/// Forward: `y (b, o, oh, ow)` (overwritten) = conv(x, w) + bias.
pub fn forward(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    if g.depthwise {
        return super::depthwise::forward(g, x, w, bias, y);
    }
    if super::conv_few::applies(g) {
        return super::conv_few::forward(g, x, w, bias, y);
    }
    if super::conv_tiny::applies(g) {
        return super::conv_tiny::forward(g, x, w, bias, y);
    }
    let (o, ohw, kk) = (g.o, g.ohw(), g.kk());
    // With a bias the GEMM adds onto it; without one it overwrites (no clearing pass).
    let init = |rows: &mut [f32], n: usize| {
        if let Some(bv) = bias {
            rows.chunks_mut(n).zip(bv).for_each(|(r, &v)| r.fill(v));
        }
    };
    let acc = bias.is_some();
    if g.direct_pointwise() {
        for bi in 0..g.b {
            let dst = &mut y[bi * o * ohw..(bi + 1) * o * ohw];
            init(dst, ohw);
            let xs = &x[bi * g.c * ohw..(bi + 1) * g.c * ohw];
            matmul(dst, ohw, View::rows(w, o, kk), View::rows(xs, g.c, ohw), acc);
        }
        return;
    }
    for_each_group(g, x, |b0, s, col, n| {
        if s == 1 {
            let dst = &mut y[b0 * o * ohw..(b0 + 1) * o * ohw];
            init(dst, ohw);
            matmul(dst, ohw, View::rows(w, o, kk), View::rows(col, kk, n), acc);
            return;
        }
        TMP.with(|tmp| {
            let mut tmp = tmp.borrow_mut();
            grow(&mut tmp, o * n);
            let t = &mut tmp[..o * n];
            init(t, n);
            matmul(t, n, View::rows(w, o, kk), View::rows(col, kk, n), acc);
            for j in 0..s {
                for oc in 0..o {
                    y[((b0 + j) * o + oc) * ohw..][..ohw].copy_from_slice(&t[oc * n + j * ohw..][..ohw]);
                }
            }
        });
    });
}

/// `dy` of samples `[b0, b0 + s)` as one `(o, s·ohw)` matrix: the batch's own memory when
/// `s = 1`, else gathered into `buf`.
fn dy_group<'a>(g: &Geom, dy: &'a [f32], b0: usize, s: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
    let (o, ohw) = (g.o, g.ohw());
    if s == 1 {
        return &dy[b0 * o * ohw..(b0 + 1) * o * ohw];
    }
    let n = s * ohw;
    grow(buf, o * n);
    for j in 0..s {
        for oc in 0..o {
            buf[oc * n + j * ohw..][..ohw].copy_from_slice(&dy[((b0 + j) * o + oc) * ohw..][..ohw]);
        }
    }
    &buf[..o * n]
}

/// Weight gradient `dw (o, c, k, k)` (overwritten) from the input and the output gradient.
pub fn backward_weight(g: &Geom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    if g.depthwise {
        return super::depthwise::backward_weight(g, x, dy, dw);
    }
    if super::conv_few::applies(g) {
        return super::conv_few::backward_weight(g, x, dy, dw);
    }
    if super::conv_tiny::applies(g) {
        return super::conv_tiny::backward_weight(g, x, dy, dw);
    }
    let (o, ohw, kk) = (g.o, g.ohw(), g.kk());
    if g.direct_pointwise() {
        for bi in 0..g.b {
            let d = &dy[bi * o * ohw..(bi + 1) * o * ohw];
            let xs = &x[bi * g.c * ohw..(bi + 1) * g.c * ohw];
            matmul(dw, kk, View::rows(d, o, ohw), View::rows(xs, g.c, ohw).t(), bi > 0);
        }
        return;
    }
    // dWᵀ = col · dYᵀ, accumulated over the groups, then transposed (it is small). The `gemm`
    // crate works column-major: asked for dW = dY · colᵀ directly it computes dWᵀ with the taps
    // as its vector dimension and must repack all of `col` (taps × pixels) with a gather per
    // element, which made this GEMM cost twice the forward one. Asked for dWᵀ, its vector
    // dimension is the o output channels: it repacks only dY (9× smaller for 3×3 kernels) and
    // streams `col` rows as they lie.
    TMP.with(|tmp| {
        DWT.with(|dwt| {
            let (mut tmp, mut dwt) = (tmp.borrow_mut(), dwt.borrow_mut());
            grow(&mut dwt, kk * o);
            let dwt = &mut dwt[..kk * o];
            // The first group overwrites, the others add: no clearing pass over dWᵀ.
            for_each_group(g, x, |b0, s, col, n| {
                let d = dy_group(g, dy, b0, s, &mut tmp);
                matmul(dwt, o, View::rows(col, kk, n), View::rows(d, o, n).t(), b0 > 0);
            });
            super::transpose::transpose(dwt, kk, o, dw);
        });
    });
}

/// Input gradient `dx (b, c, h, w)`. `dx` must arrive zeroed (the op's fresh output buffer,
/// [`crate::ops::output_buffer`]): col2im adds into it, and clearing it again cost a memset of
/// every activation gradient.
pub fn backward_input(g: &Geom, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    if g.depthwise {
        return super::depthwise::backward_input(g, w, dy, dx);
    }
    if super::conv_few::applies(g) {
        return super::conv_few::backward_input(g, w, dy, dx);
    }
    if super::conv_tiny::applies(g) {
        return super::conv_tiny::backward_input(g, w, dy, dx);
    }
    if let Some(gt) = g.adjoint() {
        return WFLIP.with(|wf| {
            let mut wf = wf.borrow_mut();
            grow(&mut wf, w.len());
            flip_weights(g, w, &mut wf[..w.len()]);
            forward(&gt, dy, &wf[..w.len()], None, dx);
        });
    }
    let (o, ohw, kk) = (g.o, g.ohw(), g.kk());
    let wt = View::rows(w, o, kk).t();
    if g.direct_pointwise() {
        for bi in 0..g.b {
            let d = &dy[bi * o * ohw..(bi + 1) * o * ohw];
            matmul(&mut dx[bi * g.c * ohw..(bi + 1) * g.c * ohw], ohw, wt, View::rows(d, o, ohw), false);
        }
        return;
    }
    debug_assert!(dx.iter().all(|&v| v == 0.0), "backward_input: dx must arrive zeroed");
    let gs = g.group();
    let table = taps_for(g);
    TMP.with(|tmp| {
        COL.with(|col| {
            let (mut tmp, mut col) = (tmp.borrow_mut(), col.borrow_mut());
            let mut b0 = 0;
            while b0 < g.b {
                let s = gs.min(g.b - b0);
                let n = s * ohw;
                let d = dy_group(g, dy, b0, s, &mut tmp);
                grow(&mut col, kk * n);
                matmul(&mut col[..kk * n], n, wt, View::rows(d, o, n), false);
                for j in 0..s {
                    let dxs = &mut dx[(b0 + j) * g.c * g.hw()..(b0 + j + 1) * g.c * g.hw()];
                    col2im(g, table.as_ref(), &col[..kk * n], n, j * ohw, dxs);
                }
                b0 += s;
            }
        });
    });
}

/// `wf (c, o, k, k)`: the kernel of the adjoint convolution, `wf[ci, oc, ky, kx] = w[oc, ci,
/// k−1−ky, k−1−kx]` (channels swapped, taps reversed).
///
/// Blocks of 8 output channels: each block reads 8 sequential streams of `w` and writes runs of
/// 8 kernels (72 values for 3×3) of `wf`, where a plain (oc, ci) loop writes one kernel per
/// `o·k²` stride.
fn flip_weights(g: &Geom, w: &[f32], wf: &mut [f32]) {
    const BLOCK: usize = 8;
    let (c, o, k) = (g.c, g.o, g.k);
    let kk = k * k;
    for oc0 in (0..o).step_by(BLOCK) {
        let oc1 = (oc0 + BLOCK).min(o);
        for ci in 0..c {
            let dst = &mut wf[(ci * o + oc0) * kk..(ci * o + oc1) * kk];
            for (oc, d) in (oc0..oc1).zip(dst.chunks_exact_mut(kk)) {
                let src = &w[(oc * c + ci) * kk..][..kk];
                d.iter_mut().zip(src.iter().rev()).for_each(|(d, &v)| *d = v);
            }
        }
    }
}

/// Bias gradient: `dy` summed over samples and pixels (fixed order, [`super::reduce`]).
pub fn backward_bias(dims: [usize; 4], dy: &[f32]) -> Vec<f32> {
    let [b, o, h, w] = dims;
    let hw = h * w;
    (0..o)
        .map(|oc| (0..b).map(|bi| super::reduce::sum_map(&dy[(bi * o + oc) * hw..][..hw], |v| v)).sum::<f64>() as f32)
        .collect()
}

// --- the candle ops --------------------------------------------------------------------------

fn dims4(l: &Layout) -> Result<[usize; 4]> {
    let d = l.dims();
    match d {
        &[a, b, c, e] => Ok([a, b, c, e]),
        _ => candle_core::bail!("conv2d: expected a 4-D tensor, got {d:?}"),
    }
}

/// The input dims the convolution sees: `x`'s, doubled in height and width when `up`.
fn seen_dims(x: &[usize], up: bool) -> Result<[usize; 4]> {
    match *x {
        [b, c, h, w] if up => Ok([b, c, 2 * h, 2 * w]),
        [b, c, h, w] => Ok([b, c, h, w]),
        ref d => candle_core::bail!("conv2d: expected a 4-D input, got {d:?}"),
    }
}

/// Runs `f` on `x` as the convolution sees it: itself, or (`up`) its ×2 nearest upsampling of
/// geometry `g` built in a reused per-thread buffer.
fn with_seen_input<T>(g: &Geom, x: &[f32], up: bool, f: impl FnOnce(&[f32]) -> T) -> T {
    if !up {
        return f(x);
    }
    UP.with(|buf| {
        let mut buf = buf.borrow_mut();
        let n = g.b * g.c * g.hw();
        grow(&mut buf, n);
        super::pointwise::upsample2_planes(x, g.h / 2, g.w / 2, &mut buf[..n]);
        f(&buf[..n])
    })
}

/// `conv(x, w)` or, with `up`, `conv(upsample2(x), w)`; with a third argument, `+ bias`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Conv {
    pub(super) cfg: ConvCfg,
    pub(super) up: bool,
}

impl Conv {
    pub(super) fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(&seen_dims(x.1.dims(), self.up)?, w.1.dims(), self.cfg)?;
        let xs = f32_slice(x.0, x.1, "conv2d input")?;
        let ws = f32_slice(w.0, w.1, "conv2d weight")?;
        let bs = match b {
            Some((s, l)) => {
                let v = f32_slice(s, l, "conv2d bias")?;
                if v.len() != g.o {
                    candle_core::bail!("conv2d: bias has {} values for {} outputs", v.len(), g.o);
                }
                Some(v)
            }
            None => None,
        };
        let mut y = crate::ops::output_buffer(g.b * g.o * g.ohw());
        with_seen_input(&g, xs, self.up, |xs| forward(&g, xs, ws, bs, &mut y));
        Ok((CpuStorage::F32(y), Shape::from(g.out_dims().to_vec())))
    }

    pub(super) fn grads(&self, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(w, &ConvGradInput { cfg: self.cfg, up: self.up, x: x.dims().to_vec() })?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(&dy, &ConvGradWeight { cfg: self.cfg, up: self.up, w: w.dims().to_vec() })?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "intervene-conv2d"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.fwd((s1, l1), (s2, l2), None)
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.grads(x, w, dy)
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "intervene-conv2d-bias"
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
        self.fwd((s1, l1), (s2, l2), Some((s3, l3)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = self.grads(x, w, dy)?;
        let db = if b.track_op() { Some(dy.contiguous()?.apply_op1_no_bwd(&ConvGradBias)?) } else { None };
        Ok((dx, dw, db))
    }
}

/// `(dy, w) → dx`.
struct ConvGradInput {
    cfg: ConvCfg,
    up: bool,
    x: Vec<usize>,
}

impl CustomOp2 for ConvGradInput {
    fn name(&self) -> &'static str {
        "intervene-conv2d-grad-input"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(&seen_dims(&self.x, self.up)?, l2.dims(), self.cfg)?;
        if dims4(l1)? != g.out_dims() {
            candle_core::bail!(
                "conv2d backward: gradient {:?} does not match the output {:?}",
                l1.dims(),
                g.out_dims()
            );
        }
        let dy = f32_slice(s1, l1, "conv2d output gradient")?;
        let w = f32_slice(s2, l2, "conv2d weight")?;
        let n = g.b * g.c * g.hw();
        if !self.up {
            let mut dx = crate::ops::output_buffer(n);
            backward_input(&g, w, dy, &mut dx);
            return Ok((CpuStorage::F32(dx), Shape::from(self.x.clone())));
        }
        // The gradient of the upsampled input, in a reused buffer (zeroed: col2im adds into
        // it), then the upsampling's adjoint into the op's output.
        let mut dx = crate::ops::output_buffer(n / 4);
        DXUP.with(|buf| {
            let mut buf = buf.borrow_mut();
            grow(&mut buf, n);
            buf[..n].fill(0.0);
            backward_input(&g, w, dy, &mut buf[..n]);
            super::pointwise::downsum2_planes(&buf[..n], g.h / 2, g.w / 2, &mut dx);
        });
        Ok((CpuStorage::F32(dx), Shape::from(self.x.clone())))
    }
}

/// `(x, dy) → dw`.
struct ConvGradWeight {
    cfg: ConvCfg,
    up: bool,
    w: Vec<usize>,
}

impl CustomOp2 for ConvGradWeight {
    fn name(&self) -> &'static str {
        "intervene-conv2d-grad-weight"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(&seen_dims(l1.dims(), self.up)?, &self.w, self.cfg)?;
        if dims4(l2)? != g.out_dims() {
            candle_core::bail!(
                "conv2d backward: gradient {:?} does not match the output {:?}",
                l2.dims(),
                g.out_dims()
            );
        }
        let x = f32_slice(s1, l1, "conv2d input")?;
        let dy = f32_slice(s2, l2, "conv2d output gradient")?;
        let mut dw = vec![0f32; self.w.iter().product()];
        with_seen_input(&g, x, self.up, |x| backward_weight(&g, x, dy, &mut dw));
        Ok((CpuStorage::F32(dw), Shape::from(self.w.clone())))
    }
}

/// `dy → db`.
struct ConvGradBias;

impl candle_core::CustomOp1 for ConvGradBias {
    fn name(&self) -> &'static str {
        "intervene-conv2d-grad-bias"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = dims4(l)?;
        let db = backward_bias(dims, f32_slice(s, l, "conv2d output gradient")?);
        Ok((CpuStorage::F32(db), Shape::from(dims[1])))
    }
}

/// The differentiable CPU convolution: `x (b, c, h, w)`, `w (o, c, k, k)` (or `(c, 1, k, k)`
/// depthwise), optional `bias (o)`.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, cfg: ConvCfg) -> Result<Tensor> {
    apply(x, w, bias, Conv { cfg, up: false })
}

/// `conv2d(upsample2(x), …)` as one op: the generators' upsample-then-convolve. The upsampled
/// input lives only in a reused per-thread buffer, rebuilt for the weight gradient, so the graph
/// holds no 4×-sized tensor: candle would allocate it, and in the backward pass zero and add its
/// gradient, which together cost more than the upsampling itself.
pub fn conv2d_up2(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, cfg: ConvCfg) -> Result<Tensor> {
    if cfg.depthwise {
        candle_core::bail!("conv2d_up2: depthwise convolutions are not fused with upsampling");
    }
    apply(x, w, bias, Conv { cfg, up: true })
}

fn apply(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, op: Conv) -> Result<Tensor> {
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match bias {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
        None => x.apply_op2(&w, op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The phase-plane im2col of halving convolutions equals the gather table's, value for value
    /// (the table path is checked against PyTorch in tests/train_ops.rs).
    #[test]
    fn halving_im2col_matches_the_gather_table() {
        // (h, w, k, pad): ResNet's stem, a stage's first 3×3 and its 1×1 downsampling, a
        // non-square map, a 5×5 with padding 2 and an even kernel.
        for &(h, w, k, pad) in
            &[(16, 16, 7, 3), (16, 16, 3, 1), (10, 10, 1, 0), (12, 6, 3, 1), (10, 12, 5, 2), (10, 10, 4, 1)]
        {
            let g = Geom::new(&[2, 3, h, w], &[4, 3, k, k], ConvCfg::new(2, pad)).unwrap();
            assert!(halving(&g), "{h}×{w} k{k} p{pad} should take the phase path");
            let x: Vec<f32> = (0..3 * h * w).map(|i| (i as f32 * 0.37).sin()).collect();
            let n = g.ohw() + 5;
            let (mut got, mut want) = (vec![f32::NAN; g.kk() * n], vec![f32::NAN; g.kk() * n]);
            im2col(&g, None, &x, &mut got, n, 3);
            let table = Taps::window(h, w, k, 2, pad, g.oh, g.ow);
            per_channel(&mut want, 3, k * k * n, |ci, rows| table.gather_rows(&x[ci * h * w..][..h * w], rows, n, 3));
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(a == b || (a.is_nan() && b.is_nan()), "{h}×{w} k{k} p{pad}: col[{i}] {a} vs {b}");
            }
        }
    }
}
