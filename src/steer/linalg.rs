//! Dense linear algebra for the PCA: GEMMs over the `gemm` crate (f32 and f64) and, from
//! `faer` (the same author's linear-algebra crate), the symmetric eigensolvers (dense, and
//! Krylov–Schur for the top eigenpairs of a large matrix), QR orthonormalisation and Cholesky
//! solves. What stays here is [`top_eig`]'s choice between them and the warm-started block
//! iteration that incremental PCA's later chunks need (faer has no block solver that takes a
//! start block).
//!
//! Matrices are row-major. Bases are stored as *rows* (`k × m`) so every vector is contiguous.

use gemm::Parallelism;

use crate::noise::Rng;

/// A row-major dense matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat<T> {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<T>,
}

impl<T: Copy + Default> Mat<T> {
    /// A `rows × cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![T::default(); rows * cols] }
    }

    /// Wraps `data` (length `rows·cols`, row-major); `None` when the length does not match.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Option<Self> {
        (data.len() == rows * cols).then_some(Self { rows, cols, data })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.cols + j]
    }
}

/// Element types the GEMM wrapper accepts.
pub trait Real: Copy + Default + Send + Sync + 'static {
    const ONE: Self;
}
impl Real for f32 {
    const ONE: Self = 1.0;
}
impl Real for f64 {
    const ONE: Self = 1.0;
}

/// `op(a) · op(b)`, where `op` transposes when the flag is set. Runs on all rayon threads.
///
/// Returns `None` when the inner dimensions differ.
pub fn matmul<T: Real>(a: &Mat<T>, ta: bool, b: &Mat<T>, tb: bool) -> Option<Mat<T>> {
    let (m, k) = if ta { (a.cols, a.rows) } else { (a.rows, a.cols) };
    let (k2, n) = if tb { (b.cols, b.rows) } else { (b.rows, b.cols) };
    if k != k2 {
        return None;
    }
    let mut out = Mat::zeros(m, n);
    if m == 0 || n == 0 || k == 0 {
        return Some(out);
    }
    // Strides of op(x) for a row-major x: (row stride, column stride).
    let st = |x: &Mat<T>, t: bool| if t { (1isize, x.cols as isize) } else { (x.cols as isize, 1isize) };
    let (a_rs, a_cs) = st(a, ta);
    let (b_rs, b_cs) = st(b, tb);
    let threads = rayon::current_num_threads();
    let par = if m * n * k < 64 * 64 * 64 || threads <= 1 { Parallelism::None } else { Parallelism::Rayon(threads) };
    // SAFETY: the strides describe exactly the extents of `a`, `b` and `out` checked above;
    // `out` is a fresh buffer that aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.data.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            T::default(),
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
    Some(out)
}

/// Why a decomposition failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinalgError {
    #[error("the symmetric eigensolver did not converge (non-finite values in a {0}×{0} matrix?)")]
    NoConvergence(usize),
}

fn faer_ref(a: &Mat<f64>) -> faer::MatRef<'_, f64> {
    faer::MatRef::from_row_major_slice(&a.data, a.rows, a.cols)
}

/// Eigenvalues (descending) and eigenvectors (as rows, same order) from faer's ascending ones.
fn descending(values: impl Fn(usize) -> f64, vectors: faer::MatRef<'_, f64>, k: usize) -> (Vec<f64>, Mat<f64>) {
    let (m, n) = (vectors.nrows(), vectors.ncols());
    let order: Vec<usize> = (0..n).rev().take(k).collect();
    let vals = order.iter().map(|&j| values(j)).collect();
    let mut rows = Mat::zeros(order.len(), m);
    for (r, &j) in order.iter().enumerate() {
        rows.row_mut(r).iter_mut().enumerate().for_each(|(i, x)| *x = vectors[(i, j)]);
    }
    (vals, rows)
}

/// Full eigendecomposition of a symmetric matrix (faer's tridiagonal divide and conquer; the
/// lower triangle is read).
///
/// Returns the eigenvalues in descending order and the eigenvectors as the *rows* of a matrix.
pub fn sym_eig(a: &Mat<f64>) -> Result<(Vec<f64>, Mat<f64>), LinalgError> {
    let n = a.rows;
    if n == 0 {
        return Ok((Vec::new(), Mat::zeros(0, 0)));
    }
    let evd = faer_ref(a).self_adjoint_eigen(faer::Side::Lower).map_err(|_| LinalgError::NoConvergence(n))?;
    let s = evd.S().column_vector();
    Ok(descending(|j| s[j], evd.U(), n))
}

/// Top eigenpairs of a symmetric positive semi-definite matrix.
#[derive(Debug, Clone)]
pub struct TopEig {
    /// Eigenvalues, descending.
    pub values: Vec<f64>,
    /// Eigenvectors as rows (`k × m`).
    pub vectors: Mat<f64>,
    /// Krylov–Schur was used (false: the dense solver).
    pub iterative: bool,
    /// Whether every residual reached the tolerance.
    pub converged: bool,
}

/// Matrices up to this size are decomposed whole.
const DENSE_MAX: usize = 96;

/// Relative residual each wanted pair must reach: `‖g·x − θx‖ ≤ RESIDUAL·θ₁`.
const RESIDUAL: f64 = 1e-9;

/// The `k` largest eigenpairs of the symmetric PSD matrix `g` (`m × m`).
///
/// - Small matrices (or `k` close to `m`): the dense solver, [`sym_eig`].
/// - A cold start (no `warm` rows): faer's Krylov–Schur (restarted Lanczos,
///   `partial_self_adjoint_eigen`) for the pairs of largest magnitude — the largest, as `g` is PSD.
/// - A warm start (the previous chunk's components, as every incremental-PCA step after the
///   first has): block subspace iteration from those rows with a Rayleigh–Ritz step each
///   iteration, built on faer's dense eigensolver and QR. Krylov–Schur can only start from one
///   vector and so cannot use the warm block: on a 2,081² Gram with k = 80 (the sample-side Gram
///   of a default 2,000-sample chunk) it took 3.9 s per warm chunk against 0.7–0.9 s for the
///   block iteration, while cold it needs about half the block iteration's time (3.0–4.7 s vs
///   6.0–9.5 s; 2-core VM, other builds running, so only the ratios mean anything).
///
/// Every pair must reach `‖g·x − θx‖ ≤ 1e-9·θ₁`; an iterative answer that does not (a
/// rank-deficient `g` can exhaust Lanczos's Krylov space) is replaced by the dense solver's.
pub fn top_eig(g: &Mat<f64>, k: usize, warm: Option<&Mat<f64>>, rng: &mut Rng) -> Result<TopEig, LinalgError> {
    let m = g.rows;
    let k = k.min(m);
    let dense = |g: &Mat<f64>| -> Result<TopEig, LinalgError> {
        let (vals, vecs) = sym_eig(g)?;
        let vectors = Mat { rows: k, cols: m, data: vecs.data[..k * m].to_vec() };
        Ok(TopEig { values: vals[..k].to_vec(), vectors, iterative: false, converged: true })
    };
    if m <= DENSE_MAX || 2 * k + 16 >= m {
        return dense(g);
    }
    let found = match warm.filter(|w| w.cols == m && w.rows > 0) {
        Some(w) => subspace_iteration(g, k, w, rng)?,
        None => krylov_schur(g, k, rng),
    };
    match found {
        Some((values, vectors)) if residuals_ok(g, &values, &vectors) => {
            Ok(TopEig { values, vectors, iterative: true, converged: true })
        }
        _ => dense(g),
    }
}

/// Whether every pair has `‖g·x − θx‖ ≤ RESIDUAL·θ₁`.
fn residuals_ok(g: &Mat<f64>, values: &[f64], vectors: &Mat<f64>) -> bool {
    let Some(gx) = matmul(vectors, false, g, false) else { return false };
    let top = values.first().copied().unwrap_or(0.0).abs().max(f64::MIN_POSITIVE);
    (0..vectors.rows).all(|i| {
        let r: f64 = gx.row(i).iter().zip(vectors.row(i)).map(|(a, b)| (a - values[i] * b).powi(2)).sum();
        r.sqrt() <= RESIDUAL * top
    })
}

/// faer's Krylov–Schur from a random start; `None` when fewer than `k` pairs converged.
fn krylov_schur(g: &Mat<f64>, k: usize, rng: &mut Rng) -> Option<(Vec<f64>, Mat<f64>)> {
    let m = g.rows;
    let mut v0 = faer::Col::<f64>::zeros(m);
    for i in 0..m {
        v0[i] = rng.normal();
    }
    let a = faer_ref(g);
    let params = faer::matrix_free::eigen::PartialEigenParams {
        min_dim: (k + 16).min(m),
        max_dim: (2 * k + 32).min(m),
        max_restarts: 1000,
        ..Default::default()
    };
    // Sequential: faer's rayon feature would bring its own thread pool; the Gram GEMM before
    // this call is the parallel part.
    let par = faer::Par::Seq;
    let mut vecs = faer::Mat::<f64>::zeros(m, k);
    let mut vals = vec![0.0f64; k];
    let scratch = faer::matrix_free::eigen::partial_self_adjoint_eigen_scratch(&a, k, par, params);
    let mut mem = faer::dyn_stack::MemBuffer::new(scratch);
    let info = faer::matrix_free::eigen::partial_self_adjoint_eigen(
        vecs.as_mut(),
        &mut vals,
        &a,
        v0.as_ref(),
        f64::EPSILON * 128.0,
        par,
        faer::dyn_stack::MemStack::new(&mut mem),
        params,
    );
    if info.n_converged_eigen < k {
        return None;
    }
    // By decreasing magnitude from faer; for a PSD matrix that is decreasing value.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| vals[j].total_cmp(&vals[i]));
    let mut vectors = Mat::zeros(k, m);
    for (r, &j) in order.iter().enumerate() {
        vectors.row_mut(r).iter_mut().enumerate().for_each(|(i, x)| *x = vecs[(i, j)]);
    }
    Some((order.iter().map(|&j| vals[j]).collect(), vectors))
}

/// Block subspace iteration from the `warm` rows (plus random ones, `k + max(k, 16)` in all),
/// with a Rayleigh–Ritz step every iteration; `None` after 500 iterations without convergence.
fn subspace_iteration(
    g: &Mat<f64>,
    k: usize,
    warm: &Mat<f64>,
    rng: &mut Rng,
) -> Result<Option<(Vec<f64>, Mat<f64>)>, LinalgError> {
    let m = g.rows;
    let b = (k + k.max(16)).min(m);
    let mut q = Mat::zeros(b, m);
    for i in 0..b {
        match i < warm.rows {
            true => q.row_mut(i).copy_from_slice(warm.row(i)),
            false => q.row_mut(i).iter_mut().for_each(|x| *x = rng.normal()),
        }
    }
    orthonormalize_rows(&mut q);
    for _ in 0..500 {
        // W = Q·G (rows g·q_i, g symmetric); H = Q·Wᵀ, the projected matrix.
        let Some(w) = matmul(&q, false, g, false) else { return Ok(None) };
        let Some(mut h) = matmul(&q, false, &w, true) else { return Ok(None) };
        symmetrize(&mut h);
        let (theta, s) = sym_eig(&h)?;
        // Ritz vectors X = S·Q and G·X = S·W.
        let (Some(x), Some(gx)) = (matmul(&s, false, &q, false), matmul(&s, false, &w, false)) else {
            return Ok(None);
        };
        let top = theta[0].abs().max(f64::MIN_POSITIVE);
        let converged = (0..k).all(|i| {
            let r: f64 = gx.row(i).iter().zip(x.row(i)).map(|(a, b)| (a - theta[i] * b).powi(2)).sum();
            r.sqrt() <= RESIDUAL * top
        });
        if converged {
            return Ok(Some((theta[..k].to_vec(), Mat { rows: k, cols: m, data: x.data[..k * m].to_vec() })));
        }
        // Next block: G·x_i / θ_i (unit scale, nearly orthogonal); directions with no energy
        // are replaced by fresh random ones.
        q = gx;
        for i in 0..b {
            let row = q.row_mut(i);
            if theta[i] > 1e-13 * top {
                let inv = 1.0 / theta[i];
                row.iter_mut().for_each(|v| *v *= inv);
            } else {
                row.iter_mut().for_each(|v| *v = rng.normal());
            }
        }
        orthonormalize_rows(&mut q);
    }
    Ok(None)
}

/// Makes `a` exactly symmetric (averages the two triangles).
fn symmetrize(a: &mut Mat<f64>) {
    let n = a.rows;
    for i in 0..n {
        for j in i + 1..n {
            let v = 0.5 * (a.data[i * n + j] + a.data[j * n + i]);
            a.data[i * n + j] = v;
            a.data[j * n + i] = v;
        }
    }
}

/// Orthonormalises the rows of `q` in order (QR of `qᵀ`, so row i keeps its component
/// orthogonal to rows 0..i, with its sign); rows that depend on earlier ones become unit
/// directions orthogonal to all the others.
pub fn orthonormalize_rows(q: &mut Mat<f64>) {
    let (k, m) = (q.rows, q.cols);
    if k == 0 || m == 0 {
        return;
    }
    let qt = faer_ref(q).transpose().to_owned();
    let qr = qt.qr();
    let thin = qr.compute_thin_Q();
    let r = qr.thin_R();
    for i in 0..k.min(m) {
        // Householder QR fixes the sign of R's diagonal freely; keep each row's own direction.
        let sign = if r[(i, i)] < 0.0 { -1.0 } else { 1.0 };
        q.row_mut(i).iter_mut().enumerate().for_each(|(j, x)| *x = sign * thin[(j, i)]);
    }
}

/// Solves `a·x = b` for a symmetric positive-definite `a` (`n × n`) and `b` (`n × r`) by
/// Cholesky; `None` if `a` is not positive definite.
pub fn cholesky_solve(a: &Mat<f64>, b: &Mat<f64>) -> Option<Mat<f64>> {
    use faer::linalg::solvers::Solve;
    if a.rows != a.cols || b.rows != a.rows {
        return None;
    }
    let llt = faer_ref(a).llt(faer::Side::Lower).ok()?;
    let x = llt.solve(faer::MatRef::from_row_major_slice(&b.data, b.rows, b.cols));
    let mut out = Mat::zeros(b.rows, b.cols);
    for i in 0..b.rows {
        out.row_mut(i).iter_mut().enumerate().for_each(|(j, v)| *v = x[(i, j)]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_psd(n: usize, spectrum: impl Fn(usize) -> f64, rng: &mut Rng) -> (Mat<f64>, Mat<f64>) {
        let mut basis = Mat::zeros(n, n);
        basis.data.iter_mut().for_each(|x| *x = rng.normal());
        orthonormalize_rows(&mut basis);
        // g = Σ λ_i b_i b_iᵀ
        let mut scaled = basis.clone();
        for i in 0..n {
            let l = spectrum(i);
            scaled.row_mut(i).iter_mut().for_each(|x| *x *= l);
        }
        let g = matmul(&basis, true, &scaled, false).unwrap();
        (g, basis)
    }

    #[test]
    fn matmul_matches_definition_with_transposes() {
        let a = Mat::from_vec(2, 3, vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let b = Mat::from_vec(2, 3, vec![1.0f32, 0.0, -1.0, 2.0, 1.0, 0.0]).unwrap();
        let abt = matmul(&a, false, &b, true).unwrap();
        assert_eq!(abt.data, vec![-2.0, 4.0, -2.0, 13.0]);
        let atb = matmul(&a, true, &b, false).unwrap();
        assert_eq!(atb.data, vec![9.0, 4.0, -1.0, 12.0, 5.0, -2.0, 15.0, 6.0, -3.0]);
        assert!(matmul(&a, false, &b, false).is_none());
    }

    #[test]
    fn dense_solver_recovers_a_known_spectrum() {
        let mut rng = Rng::new(1);
        let (g, basis) = random_psd(20, |i| 20.0 - i as f64, &mut rng);
        let (vals, vecs) = sym_eig(&g).unwrap();
        for i in 0..20 {
            assert!((vals[i] - (20.0 - i as f64)).abs() < 1e-10, "{i}: {}", vals[i]);
            let c: f64 = vecs.row(i).iter().zip(basis.row(i)).map(|(a, b)| a * b).sum();
            assert!((c.abs() - 1.0).abs() < 1e-10);
        }
    }

    #[test]
    fn iterative_solvers_find_the_top_of_a_large_matrix() {
        let mut rng = Rng::new(2);
        let n = 300;
        let (g, basis) = random_psd(n, |i| 1.0 / (1.0 + i as f64).powf(1.2), &mut rng);
        let top = top_eig(&g, 10, None, &mut rng).unwrap();
        assert!(top.converged && top.iterative);
        for i in 0..10 {
            let want = 1.0 / (1.0 + i as f64).powf(1.2);
            assert!((top.values[i] - want).abs() < 1e-9, "{i}: {} vs {want}", top.values[i]);
            let c: f64 = top.vectors.row(i).iter().zip(basis.row(i)).map(|(a, b)| a * b).sum();
            assert!(c.abs() > 1.0 - 1e-8, "{i}: |cos| {c}");
        }
        // A warm start (incremental PCA's later chunks): the block iteration from those rows.
        let again = top_eig(&g, 10, Some(&top.vectors), &mut rng).unwrap();
        assert!(again.iterative);
        for i in 0..10 {
            assert!((again.values[i] - top.values[i]).abs() < 1e-9 * top.values[0], "{i}");
            let c: f64 = again.vectors.row(i).iter().zip(basis.row(i)).map(|(a, b)| a * b).sum();
            assert!(c.abs() > 1.0 - 1e-8, "warm {i}: |cos| {c}");
        }
        // Rank-deficient input: zero eigenvalues beyond rank 5 must not break the iteration.
        let (g, _) = random_psd(n, |i| if i < 5 { 5.0 - i as f64 } else { 0.0 }, &mut rng);
        let top = top_eig(&g, 8, None, &mut rng).unwrap();
        let warm = top_eig(&g, 8, Some(&top.vectors), &mut rng).unwrap();
        for i in 0..5 {
            assert!((warm.values[i] - (5.0 - i as f64)).abs() < 1e-9);
        }
        for i in 0..5 {
            assert!((top.values[i] - (5.0 - i as f64)).abs() < 1e-9);
        }
        let gram = matmul(&top.vectors, false, &top.vectors, true).unwrap();
        for i in 0..8 {
            for j in 0..8 {
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((gram.at(i, j) - e).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn cholesky_solves() {
        let a = Mat::from_vec(2, 2, vec![4.0, 2.0, 2.0, 3.0]).unwrap();
        let b = Mat::from_vec(2, 1, vec![2.0, 1.0]).unwrap();
        let x = cholesky_solve(&a, &b).unwrap();
        assert!((x.data[0] - 0.5).abs() < 1e-12 && x.data[1].abs() < 1e-12);
        assert!(cholesky_solve(&Mat::from_vec(2, 2, vec![1.0, 2.0, 2.0, 1.0]).unwrap(), &b).is_none());
    }

    /// Rows keep their order and sign (row i only loses its part along rows 0..i), and a row
    /// that depends on earlier ones still comes out a unit vector orthogonal to the rest.
    #[test]
    fn orthonormalization_is_gram_schmidt_order() {
        let mut q = Mat::from_vec(3, 3, vec![2.0, 0.0, 0.0, 1.0, 3.0, 0.0, 4.0, 6.0, 0.0]).unwrap();
        orthonormalize_rows(&mut q);
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(q.row(0), &[1.0, 0.0, 0.0]), "{:?}", q.row(0));
        assert!(close(q.row(1), &[0.0, 1.0, 0.0]), "{:?}", q.row(1));
        let gram = matmul(&q, false, &q, true).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                assert!((gram.at(i, j) - f64::from(u8::from(i == j))).abs() < 1e-12, "{i},{j}");
            }
        }
    }
}
