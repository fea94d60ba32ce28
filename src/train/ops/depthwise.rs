//! Depthwise convolution (`groups = C = O`, MobileNetV2's 3×3 layers): direct loops for the
//! forward pass and both gradients. Each channel is independent, so channels run in parallel
//! and every sum has a fixed order.

use rayon::prelude::*;

use super::conv::Geom;

/// `(iy, ix)` read by output `(oy, ox)` through tap `(ky, kx)`, if inside the input.
#[inline]
fn src(g: &Geom, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
    (iy >= 0 && iy < g.h as isize && ix >= 0 && ix < g.w as isize).then(|| iy as usize * g.w + ix as usize)
}

/// Runs `f(b, c, plane_index)` over all `(sample, channel)` planes, in parallel when the pool
/// has threads.
fn planes(g: &Geom, out: &mut [f32], plane: usize, f: impl Fn(usize, usize, &mut [f32]) + Sync) {
    let c = g.c;
    if rayon::current_num_threads() > 1 {
        out.par_chunks_mut(plane).enumerate().for_each(|(i, p)| f(i / c, i % c, p));
    } else {
        out.chunks_mut(plane).enumerate().for_each(|(i, p)| f(i / c, i % c, p));
    }
}

pub fn forward(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (k, hw) = (g.k, g.hw());
    planes(g, y, g.ohw(), |b, c, out| {
        let xp = &x[(b * g.c + c) * hw..][..hw];
        let wk = &w[c * k * k..(c + 1) * k * k];
        let b0 = bias.map_or(0.0, |bv| bv[c]);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut acc = b0;
                for ky in 0..k {
                    for kx in 0..k {
                        if let Some(i) = src(g, oy, ox, ky, kx) {
                            acc += wk[ky * k + kx] * xp[i];
                        }
                    }
                }
                out[oy * g.ow + ox] = acc;
            }
        }
    });
}

pub fn backward_input(g: &Geom, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (k, ohw) = (g.k, g.ohw());
    planes(g, dx, g.hw(), |b, c, out| {
        out.fill(0.0);
        let dp = &dy[(b * g.c + c) * ohw..][..ohw];
        let wk = &w[c * k * k..(c + 1) * k * k];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let d = dp[oy * g.ow + ox];
                for ky in 0..k {
                    for kx in 0..k {
                        if let Some(i) = src(g, oy, ox, ky, kx) {
                            out[i] += wk[ky * k + kx] * d;
                        }
                    }
                }
            }
        }
    });
}

pub fn backward_weight(g: &Geom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (k, hw, ohw) = (g.k, g.hw(), g.ohw());
    let per = |c: usize, out: &mut [f32]| {
        let mut acc = vec![0f64; k * k];
        for b in 0..g.b {
            let xp = &x[(b * g.c + c) * hw..][..hw];
            let dp = &dy[(b * g.c + c) * ohw..][..ohw];
            for ky in 0..k {
                for kx in 0..k {
                    let mut s = 0f32;
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            if let Some(i) = src(g, oy, ox, ky, kx) {
                                s += dp[oy * g.ow + ox] * xp[i];
                            }
                        }
                    }
                    acc[ky * k + kx] += s as f64;
                }
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = a as f32;
        }
    };
    if rayon::current_num_threads() > 1 {
        dw.par_chunks_mut(k * k).enumerate().for_each(|(c, o)| per(c, o));
    } else {
        dw.chunks_mut(k * k).enumerate().for_each(|(c, o)| per(c, o));
    }
}
