//! The one way the kernels call `gemm`: operands as strided views, the destination either
//! overwritten or accumulated into. (gemm's own argument list is 19 positional values, with
//! column stride before row stride; spelling it out at each call invited transpositions.)

pub(crate) use gemm::Parallelism;

/// A matrix operand: element (i, j) at `ptr + i·rs + j·cs` (in floats).
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<P> {
    pub ptr: P,
    pub rs: usize,
    pub cs: usize,
}

impl View<*const f32> {
    /// Row-major rows of `ld` values starting at `s`.
    pub(crate) fn rows(s: &[f32], ld: usize) -> Self {
        Self { ptr: s.as_ptr(), rs: ld, cs: 1 }
    }

    /// Column-major columns of `ld` values starting at `s` (the transpose of [`Self::rows`]).
    pub(crate) fn cols(s: &[f32], ld: usize) -> Self {
        Self { ptr: s.as_ptr(), rs: 1, cs: ld }
    }
}

impl View<*mut f32> {
    /// Row-major rows of `ld` values starting at `p`.
    pub(crate) fn rows_mut(p: *mut f32, ld: usize) -> Self {
        Self { ptr: p, rs: ld, cs: 1 }
    }

    /// Column-major columns of `ld` values starting at `p`.
    pub(crate) fn cols_mut(p: *mut f32, ld: usize) -> Self {
        Self { ptr: p, rs: 1, cs: ld }
    }
}

/// `dst (m × n) = [dst +] scale · lhs (m × k) · rhs (k × n)`; `accumulate` keeps and adds to
/// what `dst` holds.
///
/// # Safety
/// Every view covers its strided range, and nothing else writes the range `dst` covers while
/// this runs.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: View<*mut f32>,
    accumulate: bool,
    lhs: View<*const f32>,
    rhs: View<*const f32>,
    scale: f32,
    par: Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.ptr,
        dst.cs as isize,
        dst.rs as isize,
        accumulate,
        lhs.ptr,
        lhs.cs as isize,
        lhs.rs as isize,
        rhs.ptr,
        rhs.cs as isize,
        rhs.rs as isize,
        1.0,
        scale,
        false,
        false,
        false,
        par,
    );
}
