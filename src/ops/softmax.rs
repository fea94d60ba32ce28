//! Softmax with a vectorisable exp: BigGAN's attention takes 4 M exponentials per image at 64²,
//! where a scalar libm `exp` alone would cost ~15 ms on this class of CPU. The attention uses
//! the column form ([`softmax_cols_unnormalised`], AVX-512 where the CPU has it); the row form
//! ([`softmax_rows`]) is its reference in the tests and the general-purpose export.

/// `exp(x)` for f32 by range reduction `x = n·ln2 + r`, |r| ≤ ln2/2, and a degree-6 polynomial
/// for `e^r` (relative error < 2e-7, i.e. ~1–2 ulp); inputs below −87 give 0. Written without
/// branches so the loop calling it auto-vectorises.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by the 1.5·2^23 trick: one add and one subtract, which vectorise
    // (`f32::round` is a libm call).
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    // Two-step ln2 (Cody–Waite) keeps r exact enough.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

#[inline(always)]
fn softmax_rows_impl(s: &mut [f32], m: usize) {
    for row in s.chunks_mut(m) {
        // Eight independent lanes so max, exp and sum all vectorise.
        let mut mx8 = [f32::NEG_INFINITY; 8];
        let mut chunks = row.chunks_exact(8);
        for c in &mut chunks {
            for k in 0..8 {
                mx8[k] = if c[k] > mx8[k] { c[k] } else { mx8[k] };
            }
        }
        let mx =
            chunks
                .remainder()
                .iter()
                .chain(mx8.iter())
                .copied()
                .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
        for v in row.iter_mut() {
            *v = exp_f32(*v - mx);
        }
        let mut s8 = [0f32; 8];
        let mut chunks = row.chunks_exact(8);
        for c in &mut chunks {
            for k in 0..8 {
                s8[k] += c[k];
            }
        }
        let sum: f32 = s8.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(s: &mut [f32], m: usize) {
    softmax_rows_impl(s, m)
}

/// [`exp_f32`] on 16 lanes, 2ⁿ applied by `vscalefps` (the float → int conversion of the
/// portable version kept LLVM from vectorising it for AVX-512: the compiled loop was scalar).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn exp512(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = |v: f32| _mm512_set1_ps(v);
    let x = _mm512_min_ps(_mm512_max_ps(x, c(-87.0)), c(88.0));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        x,
        c(std::f32::consts::LOG2_E),
    ));
    let r = _mm512_fnmadd_ps(n, c(1.428_606_8e-6), _mm512_fnmadd_ps(n, c(0.693_145_75), x));
    let mut q = _mm512_fmadd_ps(r, c(0.001_388_889), c(0.008_333_334));
    q = _mm512_fmadd_ps(r, q, c(0.041_666_668));
    q = _mm512_fmadd_ps(r, q, c(0.166_666_67));
    q = _mm512_fmadd_ps(r, q, c(0.5));
    q = _mm512_fmadd_ps(r, q, c(1.0));
    q = _mm512_fmadd_ps(r, q, c(1.0));
    _mm512_scalef_ps(q, n)
}

/// Column softmax without the division: each column `i` of the row-major `(rows, cols)` matrix
/// `s` becomes `exp(s[·, i] − max)`, and `1 / Σ` of that column is written to `inv[i]` for
/// the caller to apply to whatever it computes from the column (the attention divides its
/// `(channels × queries)` result, 8× smaller than the scores). Columns run across vector
/// lanes, so the max and the sums vectorise with no horizontal reductions.
pub fn softmax_cols_unnormalised(s: &mut [f32], rows: usize, cols: usize, inv: &mut [f32]) {
    assert!(s.len() >= rows * cols && inv.len() >= cols);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was detected at run time; the slices were checked above.
        return unsafe { softmax_cols_avx512(s, rows, cols, inv) };
    }
    let inv = &mut inv[..cols];
    inv.fill(f32::NEG_INFINITY);
    for row in s.chunks_exact(cols).take(rows) {
        for (m, &v) in inv.iter_mut().zip(row) {
            *m = if v > *m { v } else { *m };
        }
    }
    let mut sum = vec![0f32; cols];
    for row in s.chunks_exact_mut(cols).take(rows) {
        for ((v, &m), t) in row.iter_mut().zip(inv.iter()).zip(sum.iter_mut()) {
            *v = exp_f32(*v - m);
            *t += *v;
        }
    }
    for (i, t) in inv.iter_mut().zip(&sum) {
        *i = 1.0 / t;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_cols_avx512(s: &mut [f32], rows: usize, cols: usize, inv: &mut [f32]) {
    use std::arch::x86_64::*;
    // Column blocks of 16 lanes (the last one masked); each block walks all rows twice.
    for c0 in (0..cols).step_by(16) {
        let k: __mmask16 = if cols - c0 >= 16 { 0xFFFF } else { ((1u32 << (cols - c0)) - 1) as __mmask16 };
        let p = s.as_mut_ptr().add(c0);
        let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
        for r in 0..rows {
            mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, k, p.add(r * cols)));
        }
        let mut sum = _mm512_setzero_ps();
        for r in 0..rows {
            let e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p.add(r * cols)), mx));
            _mm512_mask_storeu_ps(p.add(r * cols), k, e);
            sum = _mm512_add_ps(sum, e);
        }
        _mm512_mask_storeu_ps(inv.as_mut_ptr().add(c0), k, _mm512_div_ps(_mm512_set1_ps(1.0), sum));
    }
}

/// In-place softmax of each length-`m` row of `s`.
pub fn softmax_rows(s: &mut [f32], m: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected at run time.
        return unsafe { softmax_rows_avx2(s, m) };
    }
    softmax_rows_impl(s, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_softmax_matches_the_row_softmax_of_the_transpose() {
        for (rows, cols) in [(37, 21), (1024, 16), (5, 40)] {
            let s: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 97) as f32 / 5.0 - 9.0).collect();
            let mut t: Vec<f32> = (0..rows * cols).map(|i| s[(i % rows) * cols + i / rows]).collect();
            softmax_rows_impl(&mut t, rows);
            let mut got = s.clone();
            let mut inv = vec![0f32; cols];
            softmax_cols_unnormalised(&mut got, rows, cols, &mut inv);
            for r in 0..rows {
                for c in 0..cols {
                    let (a, b) = (got[r * cols + c] * inv[c], t[c * rows + r]);
                    assert!((a - b).abs() < 1e-6, "({rows}, {cols}) at ({r}, {c}): {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 87.0 * i as f32 / 200_000.0;
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "max relative error {worst}");
        assert_eq!(exp_f32(-1000.0), 0.0f32.max(exp_f32(-1000.0)));
        assert!(exp_f32(-1000.0) < 1e-37);
    }

    #[test]
    fn rows_sum_to_one_and_match_a_direct_softmax() {
        for m in [37, 16, 1024, 5] {
            rows_match(m);
        }
    }

    fn rows_match(m: usize) {
        let mut s: Vec<f32> = (0..3 * m).map(|i| ((i * 7919) % 97) as f32 / 5.0 - 9.0).collect();
        let want: Vec<f32> = s
            .chunks(m)
            .flat_map(|r| {
                let mx = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f64> = r.iter().map(|&v| ((v - mx) as f64).exp()).collect();
                let sum: f64 = e.iter().sum();
                e.into_iter().map(move |v| (v / sum) as f32).collect::<Vec<_>>()
            })
            .collect();
        // The dispatched path (AVX2 where the CPU has it) and the portable one.
        let mut portable = s.clone();
        softmax_rows_impl(&mut portable, m);
        softmax_rows(&mut s, m);
        for (a, b) in s.iter().chain(&portable).zip(want.iter().chain(&want)) {
            assert!((a - b).abs() < 1e-6, "m = {m}: {a} vs {b}");
        }
    }
}
