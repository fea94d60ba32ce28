//! Deterministic, vectorisable sums: eight f32 lanes within blocks of 512 values, blocks added
//! in f64, always in the same order. A plain `f64` fold is latency bound (one add per ~4
//! cycles); this runs at memory speed and keeps f32 partial sums short enough to stay within
//! ~1e-6 relative error.

const LANES: usize = 8;
const BLOCK: usize = 512;

#[inline(always)]
fn block_sum(x: &[f32], f: &impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += f(c[l]);
        }
    }
    let mut s = 0f32;
    for (l, a) in acc.iter().enumerate() {
        s += a + rest.get(l).map_or(0.0, |&v| f(v));
    }
    s
}

/// `Σ f(x_i)`.
#[inline]
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    x.chunks(BLOCK).map(|b| block_sum(b, &f) as f64).sum()
}

/// `Σ f(x_i, y_i)` over two equally long slices.
#[inline]
pub fn sum_map2(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    debug_assert_eq!(x.len(), y.len());
    let mut total = 0f64;
    for (bx, by) in x.chunks(BLOCK).zip(y.chunks(BLOCK)) {
        let mut acc = [0f32; LANES];
        let (cx, cy) = (bx.chunks_exact(LANES), by.chunks_exact(LANES));
        let (rx, ry) = (cx.remainder(), cy.remainder());
        for (a, b) in cx.zip(cy) {
            for l in 0..LANES {
                acc[l] += f(a[l], b[l]);
            }
        }
        let mut s = 0f32;
        for (l, v) in acc.iter().enumerate() {
            s += v + if l < rx.len() { f(rx[l], ry[l]) } else { 0.0 };
        }
        total += s as f64;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_f64_and_handle_remainders() {
        for n in [0, 1, 7, 8, 9, 511, 512, 513, 5000] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013).collect();
            let want: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
            let got = sum_map(&x, |v| v * v);
            assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "n {n}: {got} vs {want}");
            let got2 = sum_map2(&x, &x, |a, b| a * b);
            assert!((got2 - want).abs() <= 1e-5 * (1.0 + want.abs()));
        }
    }
}
