//! Row-major matrix products on the `gemm` crate (the GEMM candle itself uses), with views that
//! express transposes through strides so no operand is ever copied to transpose it.

use gemm::Parallelism;

/// A read-only `rows × cols` matrix view: element `(r, c)` at `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A contiguous row-major matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    /// Whether every element the view addresses lies inside `data`.
    fn fits(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// How GEMMs of `flops` multiply–adds should use the thread pool: single-threaded below ~2 M
/// multiply–adds (the fork costs more than it saves), else all of rayon's threads.
pub fn parallelism(madds: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if threads <= 1 || madds < (1 << 21) {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    }
}

/// `dst (m × n, row stride dst_rs) = a · b` (or `+=` when `accumulate`).
///
/// Panics only on a caller bug (views that do not fit their slices), never on data.
pub fn matmul(dst: &mut [f32], dst_rs: usize, a: View, b: View, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matmul: inner dimensions differ");
    assert!(a.fits() && b.fits(), "matmul: a view exceeds its slice");
    assert!(m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst.len(), "matmul: destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the asserts above bound every address gemm reads and writes.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(m * n * k),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View, b: View) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0f64;
                for k in 0..a.cols {
                    s += a.data[i * a.rs + k * a.cs] as f64 * b.data[k * b.rs + j * b.cs] as f64;
                }
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    #[test]
    fn transposed_views_multiply_like_the_naive_product() {
        let a: Vec<f32> = (0..35).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..56).map(|i| (i as f32 * 0.11).cos()).collect();
        // (5×7)·(7×8), then (7×5)ᵀ·(8×7)ᵀ with the same data read transposed.
        for (va, vb) in
            [(View::rows(&a, 5, 7), View::rows(&b, 7, 8)), (View::rows(&a, 7, 5).t(), View::rows(&b, 8, 7).t())]
        {
            let mut d = vec![1f32; va.rows * vb.cols];
            matmul(&mut d, vb.cols, va, vb, false);
            let r = naive(va, vb);
            for (x, y) in d.iter().zip(&r) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
            matmul(&mut d, vb.cols, va, vb, true);
            for (x, y) in d.iter().zip(&r) {
                assert!((x - 2.0 * y).abs() < 1e-5);
            }
        }
    }
}
