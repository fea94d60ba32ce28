//! A direct 3×3 convolution for layers with very few output channels (BigGAN's `conv_to_rgb`
//! keeps 3): a GEMM with 3 rows wastes most of its tile, and im2col of a 128-channel image at
//! 256² would need a 32 MB pre-activated copy. Here each band of output rows pre-activates only
//! the input rows it needs, one channel at a time, and accumulates with vectorised row updates.

use rayon::prelude::*;

/// Output rows per band (a task).
const BAND: usize = 8;

/// `out (o, h, w) = bias + Σ_c w[o, c] ⋆ relu(a_c·x_c + b_c)`, one sample, 3×3, zero padding 1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3_few_outputs(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    pre: Option<(&[f32], &[f32])>,
    weight: &[f32],
    o: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let mut planes: Vec<&mut [f32]> = out.chunks_mut(h * w).collect();
    // Split every output plane into the same row bands; a task owns one band of every plane.
    let mut bands: Vec<Vec<&mut [f32]>> = (0..h.div_ceil(BAND)).map(|_| Vec::with_capacity(o)).collect();
    for p in planes.iter_mut() {
        for (bi, chunk) in p.chunks_mut(BAND * w).enumerate() {
            bands[bi].push(chunk);
        }
    }
    bands.into_par_iter().enumerate().for_each(|(bi, mut outs)| {
        let y0 = bi * BAND;
        let rows = (h - y0).min(BAND);
        let pw = w + 2;
        // Pre-activated input rows y0−1 .. y0+rows, zero-padded left and right.
        let mut src = vec![0f32; (rows + 2) * pw];
        for (oc, ob) in outs.iter_mut().enumerate() {
            ob.fill(bias.map_or(0.0, |b| b[oc]));
        }
        for ch in 0..c {
            let plane = &x[ch * h * w..(ch + 1) * h * w];
            let (a, b) = pre.map_or((1.0, 0.0), |(s, t)| (s[ch], t[ch]));
            for r in 0..rows + 2 {
                let dst = &mut src[r * pw + 1..r * pw + 1 + w];
                let y = y0 as isize + r as isize - 1;
                if y < 0 || y >= h as isize {
                    dst.fill(0.0);
                    continue;
                }
                let s = &plane[y as usize * w..(y as usize + 1) * w];
                if pre.is_some() {
                    for (d, &v) in dst.iter_mut().zip(s) {
                        *d = (v * a + b).max(0.0);
                    }
                } else {
                    dst.copy_from_slice(s);
                }
            }
            for (oc, ob) in outs.iter_mut().enumerate() {
                let wk = &weight[(oc * c + ch) * 9..(oc * c + ch + 1) * 9];
                accumulate(ob, &src, rows, w, wk);
            }
        }
    });
}

#[inline(always)]
fn accumulate_impl(ob: &mut [f32], src: &[f32], rows: usize, w: usize, wk: &[f32]) {
    let pw = w + 2;
    for y in 0..rows {
        let orow = &mut ob[y * w..(y + 1) * w];
        for ky in 0..3 {
            let s = &src[(y + ky) * pw..(y + ky) * pw + pw];
            let (w0, w1, w2) = (wk[ky * 3], wk[ky * 3 + 1], wk[ky * 3 + 2]);
            for (i, o) in orow.iter_mut().enumerate() {
                *o += w0 * s[i] + w1 * s[i + 1] + w2 * s[i + 2];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(ob: &mut [f32], src: &[f32], rows: usize, w: usize, wk: &[f32]) {
    accumulate_impl(ob, src, rows, w, wk)
}

fn accumulate(ob: &mut [f32], src: &[f32], rows: usize, w: usize, wk: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected at run time.
        return unsafe { accumulate_avx2(ob, src, rows, w, wk) };
    }
    accumulate_impl(ob, src, rows, w, wk)
}
