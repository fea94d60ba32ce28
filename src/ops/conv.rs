//! Convolution (stride 1, "same" zero padding, odd kernel) as tiled im2col + GEMM, with the
//! batch-norm pre-activation, nearest ×2 upsample, bias and residual fused in.

use std::cell::RefCell;

use super::gemm::{product, Parallelism, View};
use rayon::prelude::*;

use super::pointwise::PreAct;
use super::{OpsError, SendPtr};

/// Bytes of im2col columns built at once: a tile stays resident in the core's L2 (1 MiB here)
/// while the GEMM consumes it.
/// `INTERVENE_TILE_KB` overrides it for tuning.
fn tile_bytes() -> usize {
    static T: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    super::knob(&T, "INTERVENE_TILE_KB", 384) * 1024
}

/// A GEMM's column count below which its cost is dominated by packing the weights and by
/// narrow micro-kernels (gemm's widest f32 kernel covers 64 columns × 6 output channels when
/// the output is row-major): small maps are grouped across samples, large ones tiled in at
/// least this many columns. `INTERVENE_MIN_COLS` overrides it for tuning.
fn min_cols() -> usize {
    static T: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    super::knob(&T, "INTERVENE_MIN_COLS", 256)
}

/// Samples whose maps are smaller than this many pixels are convolved together.
/// `INTERVENE_GROUP_COLS` overrides it for tuning.
fn group_cols() -> usize {
    static T: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    super::knob(&T, "INTERVENE_GROUP_COLS", 512)
}

/// Whether 3×3 convolutions on large maps take the Winograd path (`INTERVENE_WINOGRAD=0`
/// switches it off, for comparisons).
fn winograd_on() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var("INTERVENE_WINOGRAD").map_or(true, |v| v != "0"))
}

thread_local! {
    /// Per-thread scratch: pre-activated input planes and im2col tiles, grown once and reused.
    static PRE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static TMP: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// One convolution.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dArgs<'a> {
    /// Input `(b, c, h, w)`.
    pub x: &'a [f32],
    pub dims: [usize; 4],
    /// `relu(x·a + b)` applied to the input first (fused batch norm + ReLU).
    pub pre: Option<PreAct<'a>>,
    /// Nearest ×2 upsample of the (pre-activated) input before the convolution.
    pub upsample2: bool,
    /// `(o, c, k, k)`.
    pub weight: &'a [f32],
    pub out_channels: usize,
    pub kernel: usize,
    /// `(o)`.
    pub bias: Option<&'a [f32]>,
    /// Added to the output.
    pub residual: Option<Residual<'a>>,
    /// Where the layer keeps `weight`'s Winograd transform between calls (it is made here on
    /// first use); `None` makes it afresh on every call.
    pub winograd_u: Option<&'a std::sync::OnceLock<Vec<f32>>>,
}

/// What a convolution adds to its output.
#[derive(Debug, Clone, Copy)]
pub enum Residual<'a> {
    /// `(b, o, h', w')`, the output's shape.
    Full(&'a [f32]),
    /// BigGAN's GenBlock skip, read in place: the first `o` channels of `x (b, c, h, w)`,
    /// nearest-upsampled ×2 when the output is twice as large (no skip tensor is materialised).
    Skip { x: &'a [f32], c: usize, h: usize, w: usize },
}

/// One sample's residual.
#[derive(Clone, Copy)]
enum ResSample<'a> {
    Full(&'a [f32]),
    Skip { x: &'a [f32], h: usize, w: usize, up: bool },
}

/// FLOPs (2 per multiply–add) of a convolution producing `(b, o, h', w')` from `c` channels.
pub fn conv_flops(b: usize, c: usize, o: usize, k: usize, out_h: usize, out_w: usize) -> f64 {
    2.0 * (b * o * c * k * k * out_h * out_w) as f64
}

impl Conv2dArgs<'_> {
    /// Output spatial size.
    pub fn out_hw(&self) -> (usize, usize) {
        let [_, _, h, w] = self.dims;
        if self.upsample2 {
            (2 * h, 2 * w)
        } else {
            (h, w)
        }
    }

    fn check(&self, out_len: usize) -> Result<(), OpsError> {
        let [b, c, h, w] = self.dims;
        let (o, k) = (self.out_channels, self.kernel);
        let (oh, ow) = self.out_hw();
        let bad = |msg: String| Err(OpsError::Shape { op: "conv2d", msg });
        if k % 2 == 0 {
            return bad(format!("kernel {k} must be odd"));
        }
        if self.x.len() != b * c * h * w {
            return bad(format!("input has {} values, dims {:?} need {}", self.x.len(), self.dims, b * c * h * w));
        }
        if self.weight.len() != o * c * k * k {
            return bad(format!(
                "weight has {} values, ({o}, {c}, {k}, {k}) needs {}",
                self.weight.len(),
                o * c * k * k
            ));
        }
        if self.bias.is_some_and(|bb| bb.len() != o) {
            return bad(format!("bias must have {o} values"));
        }
        if let Some(p) = self.pre {
            if p.scale.len() != b * c || p.shift.len() != b * c {
                return bad(format!("pre-activation needs {} scales and shifts", b * c));
            }
        }
        let n = b * o * oh * ow;
        if out_len != n {
            return bad(format!("output must have {n} values"));
        }
        match self.residual {
            Some(Residual::Full(r)) if r.len() != n => return bad(format!("residual must have {n} values")),
            Some(Residual::Skip { x, c: rc, h: rh, w: rw }) => {
                let up_ok = (rh == oh && rw == ow) || (2 * rh == oh && 2 * rw == ow);
                if x.len() != b * rc * rh * rw || rc < o || !up_ok {
                    return bad(format!(
                        "skip input ({b}, {rc}, {rh}, {rw}) does not fit output ({b}, {o}, {oh}, {ow})"
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Runs the convolution into `out (b, o, h', w')` (overwritten).
pub fn conv2d(a: &Conv2dArgs, out: &mut [f32]) -> Result<(), OpsError> {
    let t = super::profile::start();
    conv2d_inner(a, out)?;
    let [b, c, _, _] = a.dims;
    let (oh, ow) = a.out_hw();
    let kind = if a.kernel == 1 { super::profile::Kind::Conv1x1 } else { super::profile::Kind::Conv3x3 };
    super::profile::record(kind, t, conv_flops(b, c, a.out_channels, a.kernel, oh, ow));
    Ok(())
}

fn conv2d_inner(a: &Conv2dArgs, out: &mut [f32]) -> Result<(), OpsError> {
    a.check(out.len())?;
    let [b, c, h, w] = a.dims;
    let o = a.out_channels;
    let (oh, ow) = a.out_hw();
    let few = a.out_channels <= 4 && a.kernel == 3 && !a.upsample2 && a.residual.is_none();
    if !few && oh * ow < group_cols() {
        let g = group_cols().div_ceil(oh * ow).clamp(1, b);
        let per_group = g * a.out_channels * oh * ow;
        if b.div_ceil(g) >= rayon::current_num_threads() {
            out.par_chunks_mut(per_group).enumerate().for_each(|(t, dst)| {
                conv_group(a, t * g, (t * g + g).min(b), dst, false);
            });
        } else {
            for (t, dst) in out.chunks_mut(per_group).enumerate() {
                conv_group(a, t * g, (t * g + g).min(b), dst, true);
            }
        }
        return Ok(());
    }
    for bi in 0..b {
        let x = &a.x[bi * c * h * w..(bi + 1) * c * h * w];
        let dst = &mut out[bi * o * oh * ow..(bi + 1) * o * oh * ow];
        let res = res_sample(a, bi);
        if few {
            let pre = a.pre.map(|p| (&p.scale[bi * c..(bi + 1) * c], &p.shift[bi * c..(bi + 1) * c]));
            super::few_outputs::conv3x3_few_outputs(x, c, h, w, pre, a.weight, o, a.bias, dst);
            continue;
        }
        if let (1, false, Some(p)) = (a.kernel, a.upsample2, a.pre) {
            if h * w >= 1024 {
                let (sc, sh) = (&p.scale[bi * c..(bi + 1) * c], &p.shift[bi * c..(bi + 1) * c]);
                conv1x1_preact_chunks(x, c, h * w, sc, sh, a, res, dst);
                continue;
            }
        }
        match a.pre {
            Some(p) => PRE.with(|buf| {
                let mut buf = buf.borrow_mut();
                let (src, sh, sw) = pre_activate(p, a, bi, x, &mut buf);
                let plain = Conv2dArgs { dims: [b, c, sh, sw], upsample2: false, ..*a };
                conv_sample(&plain, src, res, dst);
            }),
            None => conv_sample(a, x, res, dst),
        }
    }
    Ok(())
}

/// Sample `bi`'s residual.
fn res_sample<'a>(a: &Conv2dArgs<'a>, bi: usize) -> Option<ResSample<'a>> {
    let o = a.out_channels;
    let (oh, ow) = a.out_hw();
    a.residual.map(|r| match r {
        Residual::Full(r) => ResSample::Full(&r[bi * o * oh * ow..(bi + 1) * o * oh * ow]),
        Residual::Skip { x, c, h, w } => {
            ResSample::Skip { x: &x[bi * c * h * w..(bi + 1) * c * h * w], h, w, up: 2 * h == oh }
        }
    })
}

/// Sample `bi`'s input `x` pre-activated into `buf`, nearest-upsampled ×2 there when the
/// convolution upsamples (so its im2col copies whole rows); returns the planes and their size.
fn pre_activate<'b>(
    p: PreAct,
    a: &Conv2dArgs,
    bi: usize,
    x: &[f32],
    buf: &'b mut Vec<f32>,
) -> (&'b [f32], usize, usize) {
    let [_, c, h, w] = a.dims;
    // The output's size: the input's, doubled when upsampling.
    let (sh, sw) = a.out_hw();
    let n = c * sh * sw;
    grow(buf, n);
    if a.upsample2 {
        p.apply_sample_up(bi, c, h, w, x, &mut buf[..n]);
    } else {
        p.apply_sample(bi, c, h * w, x, &mut buf[..n]);
    }
    (&buf[..n], sh, sw)
}

/// Samples `[s0, s1)` of a convolution with small maps, as one GEMM over all their pixels
/// (written to `dst`, those samples' outputs): per-sample GEMMs of 16–64 columns would repack
/// the whole weight matrix for each sample and run gemm's narrowest kernels. The product goes
/// to a scratch buffer and is then added to bias + residual. `inner`: the group is the only
/// task, so its im2col and GEMM use all threads.
fn conv_group(a: &Conv2dArgs, s0: usize, s1: usize, dst: &mut [f32], inner: bool) {
    let [_, c, h, w] = a.dims;
    let (o, k) = (a.out_channels, a.kernel);
    let (oh, ow) = a.out_hw();
    let (hw, kk) = (oh * ow, c * k * k);
    let n = (s1 - s0) * hw;
    let threads = if inner { rayon::current_num_threads().max(1) } else { 1 };
    COL.with(|col| {
        PRE.with(|pre| {
            TMP.with(|tmp| {
                let (mut col, mut pre, mut tmp) = (col.borrow_mut(), pre.borrow_mut(), tmp.borrow_mut());
                grow(&mut col, kk * n);
                grow(&mut tmp, o * n);
                for (j, bi) in (s0..s1).enumerate() {
                    let x = &a.x[bi * c * h * w..(bi + 1) * c * h * w];
                    let (src, sh, sw, up) = match a.pre {
                        Some(p) => {
                            let (src, sh, sw) = pre_activate(p, a, bi, x, &mut pre);
                            (src, sh, sw, false)
                        }
                        None => (x, h, w, a.upsample2),
                    };
                    // Channel chunks in parallel: each owns k² rows of the columns.
                    let per = c.div_ceil(threads);
                    col[..kk * n].par_chunks_mut(per * k * k * n).enumerate().for_each(|(t, rows)| {
                        let ch = per.min(c - t * per);
                        let planes = &src[t * per * sh * sw..(t * per + ch) * sh * sw];
                        im2col_rows(planes, ch, sh, sw, k, up, 0, oh, n, &mut rows[j * hw..]);
                    });
                }
                let par = if inner { Parallelism::Rayon(threads) } else { Parallelism::None };
                // SAFETY: tmp holds o·n values; col holds kk·n; w holds o·kk.
                unsafe {
                    let dst = View::rows_mut(tmp.as_mut_ptr(), n);
                    product(o, n, kk, dst, false, View::rows(a.weight, kk), View::rows(&col, n), 1.0, par);
                }
                for (j, (bi, dst)) in (s0..s1).zip(dst.chunks_mut(o * hw)).enumerate() {
                    init_dst(a.bias, res_sample(a, bi), dst, hw, 0, hw);
                    for (oc, row) in dst.chunks_mut(hw).enumerate() {
                        for (d, &t) in row.iter_mut().zip(&tmp[oc * n + j * hw..oc * n + (j + 1) * hw]) {
                            *d += t;
                        }
                    }
                }
            })
        })
    });
}

/// 1×1 convolution of `relu(x·a + b)` in column chunks: each task pre-activates a cache-sized
/// chunk of columns into its own buffer and runs a single-threaded GEMM on it, so the
/// activation is never written out whole.
#[allow(clippy::too_many_arguments)]
fn conv1x1_preact_chunks(
    x: &[f32],
    c: usize,
    hw: usize,
    sc: &[f32],
    sh: &[f32],
    a: &Conv2dArgs,
    res: Option<ResSample>,
    dst: &mut [f32],
) {
    let o = a.out_channels;
    let step = (tile_bytes() / (4 * c)).clamp(64, hw).next_multiple_of(16).min(hw);
    let base = SendPtr(dst.as_mut_ptr());
    let dst_len = dst.len();
    (0..hw.div_ceil(step)).into_par_iter().for_each(|t| {
        // Rebinds so the closure captures the Send wrapper whole, not its raw-pointer field.
        #[allow(clippy::redundant_locals)]
        let base = base;
        let (p0, n) = (t * step, step.min(hw - t * step));
        COL.with(|col| {
            let mut col = col.borrow_mut();
            grow(&mut col, c * n);
            for ch in 0..c {
                super::pointwise::plane(
                    &mut col[ch * n..(ch + 1) * n],
                    &x[ch * hw + p0..ch * hw + p0 + n],
                    sc[ch],
                    sh[ch],
                );
            }
            // SAFETY: this task owns columns [p0, p0+n) of every output row.
            let d = unsafe { std::slice::from_raw_parts_mut(base.0, dst_len) };
            init_dst(a.bias, res, d, hw, p0, n);
            gemm_into(o, n, c, a.weight, &col[..c * n], n, unsafe { base.0.add(p0) }, hw, Parallelism::None);
        });
    });
    debug_assert_eq!(dst_len, o * hw);
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

super::widest! {
    /// Writes bias (+ residual) into the destination columns `[p0, p0 + n)` of every output row.
    fn init_dst(bias: Option<&[f32]>, res: Option<ResSample>, dst: &mut [f32], hw: usize, p0: usize, n: usize) {
        for (row, d) in dst.chunks_mut(hw).enumerate() {
            let d = &mut d[p0..p0 + n];
            let b = bias.map_or(0.0, |b| b[row]);
            match res {
                Some(ResSample::Full(r)) => {
                    for (d, &r) in d.iter_mut().zip(&r[row * hw + p0..row * hw + p0 + n]) {
                        *d = r + b;
                    }
                }
                Some(ResSample::Skip { x, h, w, up }) => {
                    let plane = &x[row * h * w..(row + 1) * h * w];
                    let ow = if up { 2 * w } else { w };
                    // Walk the output rows that [p0, p0 + n) touches, a source row at a time.
                    let mut p = p0;
                    let mut d = d;
                    while !d.is_empty() {
                        let (y, x0) = (p / ow, p % ow);
                        let len = (ow - x0).min(d.len());
                        let (seg, rest) = d.split_at_mut(len);
                        if up {
                            let src = &plane[(y / 2) * w..(y / 2 + 1) * w];
                            // An odd start takes its pixel alone; then pixel pairs share a source.
                            let (head, pairs) = seg.split_at_mut(x0 % 2);
                            if let Some(h0) = head.first_mut() {
                                *h0 = src[x0 / 2] + b;
                            }
                            for (pair, &v) in pairs.chunks_mut(2).zip(&src[x0.div_ceil(2)..]) {
                                pair.fill(v + b);
                            }
                        } else {
                            for (d, &v) in seg.iter_mut().zip(&plane[y * w + x0..y * w + x0 + len]) {
                                *d = v + b;
                            }
                        }
                        p += len;
                        d = rest;
                    }
                }
                None => d.fill(b),
            }
        }
    }
}

/// `dst (o, n) += w (o, k) · rhs (k, n)`, strided destination rows of length `dst_rs`.
///
/// # Safety contract (upheld by callers)
/// `dst` points at `o` rows of `n` valid values spaced `dst_rs`; `rhs` holds `k·n` values.
pub(crate) fn gemm_into(
    o: usize,
    n: usize,
    k: usize,
    w: &[f32],
    rhs: &[f32],
    rhs_rs: usize,
    dst: *mut f32,
    dst_rs: usize,
    par: Parallelism,
) {
    debug_assert!(w.len() >= o * k && rhs.len() >= (k.max(1) - 1) * rhs_rs + n);
    // SAFETY: the slices cover the strided ranges gemm reads; dst rows are disjoint per caller.
    unsafe { product(o, n, k, View::rows_mut(dst, dst_rs), true, View::rows(w, k), View::rows(rhs, rhs_rs), 1.0, par) }
}

/// One sample: `src (c, h, w)` already pre-activated.
fn conv_sample(a: &Conv2dArgs, src: &[f32], res: Option<ResSample>, dst: &mut [f32]) {
    let [_, c, h, w] = a.dims;
    let (o, k) = (a.out_channels, a.kernel);
    let (oh, ow) = a.out_hw();
    let hw = oh * ow;
    let kk = c * k * k;
    let threads = rayon::current_num_threads().max(1);
    if k == 1 && !a.upsample2 {
        // 1×1: the input planes are already the GEMM's right-hand side; split the columns
        // between threads (each GEMM single-threaded) once there is enough work.
        let chunks = if hw >= 1024 { threads * 4 } else { 1 };
        if chunks == 1 {
            init_dst(a.bias, res, dst, hw, 0, hw);
            gemm_into(o, hw, c, a.weight, src, hw, dst.as_mut_ptr(), hw, Parallelism::Rayon(threads));
            return;
        }
        let step = hw.div_ceil(chunks).next_multiple_of(16);
        let base = SendPtr(dst.as_mut_ptr());
        let dst_len = dst.len();
        (0..hw.div_ceil(step)).into_par_iter().for_each(|t| {
            // Rebinds so the closure captures the Send wrapper whole, not its raw-pointer field.
            #[allow(clippy::redundant_locals)]
            let base = base;
            let (p0, n) = (t * step, step.min(hw - t * step));
            // SAFETY: this task owns columns [p0, p0+n) of every output row.
            let d = unsafe { std::slice::from_raw_parts_mut(base.0, dst_len) };
            init_dst(a.bias, res, d, hw, p0, n);
            gemm_into(o, n, c, a.weight, &src[p0..], hw, unsafe { base.0.add(p0) }, hw, Parallelism::None);
        });
        return;
    }
    if k == 3 && !a.upsample2 && winograd_on() && super::winograd::suits(oh, ow) {
        let fresh;
        let u = match a.winograd_u {
            Some(cell) => cell.get_or_init(|| super::winograd::transform_weights(a.weight, o, c)),
            None => {
                fresh = super::winograd::transform_weights(a.weight, o, c);
                &fresh
            }
        };
        let init = |d: &mut [f32], p0: usize, n: usize| init_dst(a.bias, res, d, hw, p0, n);
        super::winograd::conv3x3(src, c, oh, ow, u, o, &init, dst);
        return;
    }
    // Tiles of whole output rows, sized to stay in L2.
    let rows_per_tile = (tile_bytes() / (4 * kk * ow)).max(min_cols().div_ceil(ow)).clamp(1, oh);
    let tiles = oh.div_ceil(rows_per_tile);
    if tiles < 2 * threads {
        // Small images (the 4×4–16×16 layers): one im2col, one GEMM parallelised inside.
        COL.with(|col| {
            let mut col = col.borrow_mut();
            grow(&mut col, kk * hw);
            im2col_rows(src, c, h, w, k, a.upsample2, 0, oh, hw, &mut col[..kk * hw]);
            init_dst(a.bias, res, dst, hw, 0, hw);
            gemm_into(o, hw, kk, a.weight, &col[..kk * hw], hw, dst.as_mut_ptr(), hw, Parallelism::Rayon(threads));
        });
        return;
    }
    let base = SendPtr(dst.as_mut_ptr());
    let dst_len = dst.len();
    (0..tiles).into_par_iter().for_each(|t| {
        // Rebinds so the closure captures the Send wrapper whole, not its raw-pointer field.
        #[allow(clippy::redundant_locals)]
        let base = base;
        let r0 = t * rows_per_tile;
        let r1 = (r0 + rows_per_tile).min(oh);
        let (p0, n) = (r0 * ow, (r1 - r0) * ow);
        COL.with(|col| {
            let mut col = col.borrow_mut();
            grow(&mut col, kk * n);
            im2col_rows(src, c, h, w, k, a.upsample2, r0, r1, n, &mut col[..kk * n]);
            // SAFETY: this task owns columns [p0, p0+n) of every output row.
            let d = unsafe { std::slice::from_raw_parts_mut(base.0, dst_len) };
            init_dst(a.bias, res, d, hw, p0, n);
            gemm_into(o, n, kk, a.weight, &col[..kk * n], n, unsafe { base.0.add(p0) }, hw, Parallelism::None);
        });
    });
}

super::widest! {
    /// im2col of output rows `[r0, r1)`: `col[((ch·k + ky)·k + kx)·ld + (y − r0)·ow + x]` =
    /// input at `(y + ky − pad, x + kx − pad)` in the (optionally ×2-upsampled) grid, 0 outside.
    fn im2col_rows(
        src: &[f32],
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        up: bool,
        r0: usize,
        r1: usize,
        ld: usize,
        col: &mut [f32],
    ) {
        let pad = (k / 2) as isize;
        let (gh, gw) = if up { (2 * h, 2 * w) } else { (h, w) };
        let n = (r1 - r0) * gw;
        for ch in 0..c {
            let plane = &src[ch * h * w..(ch + 1) * h * w];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut col[((ch * k + ky) * k + kx) * ld..][..n];
                    let dx = kx as isize - pad;
                    // Output columns x whose source column x+dx lies inside the grid.
                    let x_lo = (-dx).max(0) as usize;
                    let x_hi = ((gw as isize) - dx).min(gw as isize).max(0) as usize;
                    for y in r0..r1 {
                        let seg = &mut row[(y - r0) * gw..(y - r0 + 1) * gw];
                        let iy = y as isize + ky as isize - pad;
                        if iy < 0 || iy >= gh as isize || x_lo >= x_hi {
                            seg.fill(0.0);
                            continue;
                        }
                        seg[..x_lo].fill(0.0);
                        seg[x_hi..].fill(0.0);
                        let sy = if up { iy as usize / 2 } else { iy as usize };
                        let srow = &plane[sy * w..(sy + 1) * w];
                        if up {
                            for x in x_lo..x_hi {
                                seg[x] = srow[(x as isize + dx) as usize / 2];
                            }
                        } else {
                            let s0 = (x_lo as isize + dx) as usize;
                            seg[x_lo..x_hi].copy_from_slice(&srow[s0..s0 + (x_hi - x_lo)]);
                        }
                    }
                }
            }
        }
    }
}
