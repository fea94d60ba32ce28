//! Gather tables for sliding windows: for each tap of a `k × k` window (row-major) and each
//! output pixel, the index of the input pixel it reads, or `hw` (one past the plane) where the
//! tap falls into the padding. im2col and col2im of strided or small maps and max pooling walk
//! the table instead of slicing the plane row by row: on 14-wide or 2-wide rows the per-row
//! slicing cost more than the data movement. The walks are branch-free over unchecked reads, so they
//! vectorise (masked AVX-512 gathers where the CPU has them; checked at run time).

pub struct Taps {
    idx: Vec<u32>,
    /// Every entry is at most this; the planes walked must hold exactly `hw` values.
    hw: usize,
    ohw: usize,
}

impl Taps {
    /// The table of a `k × k` window with `stride` and zero `pad` over an `h × w` plane whose
    /// output is `oh × ow`.
    pub fn window(h: usize, w: usize, k: usize, stride: usize, pad: usize, oh: usize, ow: usize) -> Self {
        let inside = |i: isize, n: usize| (0..n as isize).contains(&i);
        let mut idx = Vec::with_capacity(k * k * oh * ow);
        for ky in 0..k {
            for kx in 0..k {
                for oy in 0..oh {
                    let iy = (oy * stride + ky) as isize - pad as isize;
                    for ox in 0..ow {
                        let ix = (ox * stride + kx) as isize - pad as isize;
                        let at = if inside(iy, h) && inside(ix, w) { iy as usize * w + ix as usize } else { h * w };
                        idx.push(at as u32);
                    }
                }
            }
        }
        Self { idx, hw: h * w, ohw: oh * ow }
    }

    /// One slice of `ohw` input indices per tap, in row-major tap order.
    fn rows(&self) -> std::slice::ChunksExact<'_, u32> {
        self.idx.chunks_exact(self.ohw.max(1))
    }

    /// im2col of one channel: `rows[t·n + j0 + j] = plane[idx[t·ohw + j]]` for every tap `t`,
    /// 0 in the padding.
    pub fn gather_rows(&self, plane: &[f32], rows: &mut [f32], n: usize, j0: usize) {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn walk_avx512(t: &Taps, plane: &[f32], rows: &mut [f32], n: usize, j0: usize) {
            gather_walk(t, plane, rows, n, j0)
        }
        assert_eq!(plane.len(), self.hw, "gather_rows: plane size");
        let taps = self.idx.len() / self.ohw.max(1);
        assert!(taps == 0 || rows.len() >= (taps - 1) * n + j0 + self.ohw, "gather_rows: rows too short");
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            if self.hw <= 16 && self.ohw <= 16 {
                // SAFETY: AVX-512F is present; the plane and each tap's row were checked above.
                return unsafe { self.permute_avx512(plane, rows, n, j0) };
            }
            // SAFETY: AVX-512F is present.
            return unsafe { walk_avx512(self, plane, rows, n, j0) };
        }
        gather_walk(self, plane, rows, n, j0)
    }

    /// [`Self::gather_rows`] for planes and outputs of at most 16 pixels (ResNet's 4×4 and 2×2
    /// stages): the plane sits in one register and each tap's row is one lane permutation of it,
    /// where a gather would load every lane from memory separately.
    ///
    /// # Safety
    /// AVX-512F must be present, `plane` hold `hw ≤ 16` values, `ohw ≤ 16`, and `rows` reach
    /// `(taps − 1)·n + j0 + ohw`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn permute_avx512(&self, plane: &[f32], rows: &mut [f32], n: usize, j0: usize) {
        use std::arch::x86_64::*;
        let lanes = |m: usize| ((1u32 << m) - 1) as __mmask16;
        let (lanes_in, lanes_out) = (lanes(self.hw), lanes(self.ohw));
        // SAFETY (whole body): masked loads and stores touch only the first hw / ohw lanes,
        // which the caller guarantees are in bounds.
        let p = _mm512_maskz_loadu_ps(lanes_in, plane.as_ptr());
        let hw = _mm512_set1_epi32(self.hw as i32);
        for (k, src) in self.rows().enumerate() {
            let idx = _mm512_maskz_loadu_epi32(lanes_out, src.as_ptr() as *const i32);
            // Padding taps hold `hw`: outside the plane, so their lanes are zeroed.
            let inside = _mm512_cmplt_epu32_mask(idx, hw);
            let v = _mm512_maskz_permutexvar_ps(inside, idx, p);
            _mm512_mask_storeu_ps(rows.as_mut_ptr().add(k * n + j0), lanes_out, v);
        }
    }

    /// col2im of one channel, the adjoint of [`Self::gather_rows`]: `plane[idx[t·ohw + j]] +=
    /// rows[t·n + j0 + j]` for every tap `t`, skipping the padding.
    pub fn scatter_add_rows(&self, rows: &[f32], n: usize, j0: usize, plane: &mut [f32]) {
        assert_eq!(plane.len(), self.hw, "scatter_add_rows: plane size");
        for (t, src) in self.rows().enumerate() {
            for (&v, &i) in rows[t * n + j0..][..self.ohw].iter().zip(src) {
                if let Some(d) = plane.get_mut(i as usize) {
                    *d += v;
                }
            }
        }
    }

    /// Max pooling of one plane: `out[j]` the window maximum and `ix[j]` its plane index, with
    /// PyTorch's rules: padding is −∞ (never wins), the first maximum in row-major window order
    /// wins, a NaN always replaces, and a window with no finite maximum keeps its first
    /// in-bounds position.
    pub fn max_pool(&self, plane: &[f32], out: &mut [f32], ix: &mut [u32]) {
        #[inline(always)]
        fn walk(t: &Taps, plane: &[f32], out: &mut [f32], ix: &mut [u32]) {
            let (out, ix) = (&mut out[..t.ohw], &mut ix[..t.ohw]);
            out.fill(f32::NEG_INFINITY);
            ix.fill(u32::MAX);
            for src in t.rows() {
                for ((o, d), &i) in out.iter_mut().zip(ix.iter_mut()).zip(src) {
                    let v = read_or(plane, i, f32::NEG_INFINITY);
                    // The window's first in-bounds position, where nothing has won yet.
                    let unset = 0u32.wrapping_sub((*d == u32::MAX && (i as usize) < t.hw) as u32);
                    // Selected through bit masks: LLVM turns `if` selects into branches, which
                    // mispredict on data.
                    let m = 0u32.wrapping_sub(((v > *o) | v.is_nan()) as u32);
                    *o = f32::from_bits((v.to_bits() & m) | (o.to_bits() & !m));
                    *d = (i & (m | unset)) | (*d & !(m | unset));
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn walk_avx512(t: &Taps, plane: &[f32], out: &mut [f32], ix: &mut [u32]) {
            walk(t, plane, out, ix)
        }
        assert_eq!(plane.len(), self.hw, "max_pool: plane size");
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present.
            return unsafe { walk_avx512(self, plane, out, ix) };
        }
        walk(self, plane, out, ix)
    }
}

/// [`Taps::gather_rows`] as plain loops (vectorised to masked gathers under AVX-512).
#[inline(always)]
fn gather_walk(t: &Taps, plane: &[f32], rows: &mut [f32], n: usize, j0: usize) {
    for (k, src) in t.rows().enumerate() {
        for (d, &i) in rows[k * n + j0..][..t.ohw].iter_mut().zip(src) {
            *d = read_or(plane, i, 0.0);
        }
    }
}

/// `plane[i]`, or `pad` when `i` is past the end (a padding tap).
#[inline(always)]
fn read_or(plane: &[f32], i: u32, pad: f32) -> f32 {
    let i = i as usize;
    // SAFETY: read only when i < plane.len().
    if i < plane.len() {
        unsafe { *plane.get_unchecked(i) }
    } else {
        pad
    }
}

#[cfg(test)]
mod tests {
    use super::Taps;

    /// PyTorch's CPU max-pool loop, written out: scan the window row-major from its first
    /// in-bounds position, replace on `v > max` or a NaN.
    fn naive(x: &[f32], h: usize, w: usize, k: usize, s: usize, p: usize) -> (Vec<f32>, Vec<u32>) {
        let out = |n: usize| (n + 2 * p - k) / s + 1;
        let (oh, ow) = (out(h), out(w));
        let (mut vals, mut idx) = (vec![], vec![]);
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * s) as isize - p as isize;
                let x0 = (ox * s) as isize - p as isize;
                let ys = y0.max(0) as usize..((y0 + k as isize) as usize).min(h);
                let xs = x0.max(0) as usize..((x0 + k as isize) as usize).min(w);
                let (mut m, mut at) = (f32::NEG_INFINITY, (ys.start * w + xs.start) as u32);
                for yy in ys {
                    for xx in xs.clone() {
                        let v = x[yy * w + xx];
                        if v > m || v.is_nan() {
                            (m, at) = (v, (yy * w + xx) as u32);
                        }
                    }
                }
                vals.push(m);
                idx.push(at);
            }
        }
        (vals, idx)
    }

    /// The register-permutation im2col of small maps equals the plain gather loop.
    #[test]
    fn small_map_gather_matches_the_plain_loop() {
        // (h, w, k, stride, pad): ResNet's 4×4 and 2×2 stages, a stride-2 step between them,
        // a 1×1 on 3×3 and a full 16-pixel output from a 16-pixel plane.
        for (h, w, k, s, p) in [(4, 4, 3, 1, 1), (2, 2, 3, 1, 1), (4, 4, 3, 2, 1), (3, 3, 1, 1, 0), (2, 8, 3, 1, 1)] {
            let out = |n: usize| (n + 2 * p - k) / s + 1;
            let t = Taps::window(h, w, k, s, p, out(h), out(w));
            let x: Vec<f32> = (0..h * w).map(|i| i as f32 + 0.5).collect();
            let n = t.ohw + 3;
            let (mut got, mut want) = (vec![-7f32; k * k * n + 2], vec![-7f32; k * k * n + 2]);
            t.gather_rows(&x, &mut got, n, 2);
            super::gather_walk(&t, &x, &mut want, n, 2);
            assert_eq!(got, want, "{h}×{w} k{k} s{s} p{p}");
        }
    }

    #[test]
    fn max_pool_follows_pytorchs_tie_nan_and_padding_rules() {
        let specials = [0.0, 0.0, 1.0, f32::NAN, f32::NEG_INFINITY, -1.0, 0.5];
        for (h, w, k, s, p) in [(9, 9, 3, 2, 1), (8, 8, 3, 2, 1), (6, 7, 2, 2, 0), (5, 5, 3, 1, 1), (2, 2, 3, 2, 1)] {
            let x: Vec<f32> = (0..h * w).map(|i| specials[(i * 7 + i / 3) % specials.len()]).collect();
            let (want, want_ix) = naive(&x, h, w, k, s, p);
            let out = |n: usize| (n + 2 * p - k) / s + 1;
            let t = Taps::window(h, w, k, s, p, out(h), out(w));
            let (mut got, mut ix) = (vec![0f32; want.len()], vec![0u32; want.len()]);
            t.max_pool(&x, &mut got, &mut ix);
            for j in 0..want.len() {
                assert!(got[j].to_bits() == want[j].to_bits(), "{h}×{w} k{k}: value {j}: {} vs {}", got[j], want[j]);
            }
            assert_eq!(ix, want_ix, "{h}×{w} k{k} s{s} p{p}");
        }
    }
}
