//! Out-of-place matrix transpose. The convolution's weight gradient is computed transposed
//! (see [`super::conv::backward_weight`]) and turned around here: 11 M values a ResNet-18 step.
//! Compiled as scalar code the 8×8 tile spilled to the stack and cost 5 % of the step, so full
//! tiles use the AVX unpack/shuffle/permute network, chosen at run time.

/// `dst (cols × rows) = srcᵀ` for a row-major `src (rows × cols)`.
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    let (rf, cf) = (rows - rows % 8, cols - cols % 8);
    #[cfg(target_arch = "x86_64")]
    let tiled = if std::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is present; the tile loop stays inside `rf × cf`, within both slices.
        unsafe { tiles_avx(src, rows, cols, dst, rf, cf) };
        true
    } else {
        false
    };
    #[cfg(not(target_arch = "x86_64"))]
    let tiled = false;
    let mut one = |r: usize, c: usize| dst[c * rows + r] = src[r * cols + c];
    if !tiled {
        (0..rf).for_each(|r| (0..cf).for_each(|c| one(r, c)));
    }
    for r in 0..rf {
        (cf..cols).for_each(|c| one(r, c));
    }
    for r in rf..rows {
        (0..cols).for_each(|c| one(r, c));
    }
}

/// The full 8×8 tiles of the top-left `rf × cf` block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn tiles_avx(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], rf: usize, cf: usize) {
    use std::arch::x86_64::*;
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    for r0 in (0..rf).step_by(8) {
        for c0 in (0..cf).step_by(8) {
            let p = s.add(r0 * cols + c0);
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(p.add(i * cols)));
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let out = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            let q = d.add(c0 * rows + r0);
            for (j, v) in out.into_iter().enumerate() {
                _mm256_storeu_ps(q.add(j * rows), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn transpose_matches_the_definition_on_full_and_ragged_tiles() {
        for (rows, cols) in [(8, 8), (16, 24), (9, 17), (3, 5), (1, 1), (20, 7), (576, 64)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![-1f32; rows * cols];
            super::transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * rows + r], src[r * cols + c], "({r}, {c}) of {rows}×{cols}");
                }
            }
        }
    }
}
