//! Small dense linear algebra for the PCA: GEMMs over the `gemm` crate (f32 and f64), a symmetric
//! eigensolver (cyclic Jacobi for small matrices; subspace iteration with Rayleigh–Ritz for the
//! top eigenpairs of large ones), Cholesky solves and row orthonormalisation.
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

/// Full eigendecomposition of a symmetric matrix by cyclic Jacobi rotations (exact to f64
/// rounding; O(n³) per sweep, so meant for n up to a few hundred).
///
/// Returns the eigenvalues in descending order and the eigenvectors as the *rows* of a matrix.
pub fn sym_eig(a: &Mat<f64>) -> (Vec<f64>, Mat<f64>) {
    let n = a.rows;
    let mut m = a.clone();
    let mut v = Mat::zeros(n, n); // columns are eigenvectors during the sweeps
    for i in 0..n {
        v.data[i * n + i] = 1.0;
    }
    let floor = 1e-18 * m.data.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let mut rotations = 0;
        for p in 0..n {
            for q in p + 1..n {
                let apq = m.data[p * n + q];
                let (app, aqq) = (m.data[p * n + p], m.data[q * n + q]);
                // Skip entries already negligible next to their diagonal: the sweep that
                // rotates nothing ends the iteration.
                if apq.abs() <= floor || apq.abs() <= 1e-16 * (app.abs() * aqq.abs()).sqrt() {
                    continue;
                }
                rotations += 1;
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (m.data[k * n + p], m.data[k * n + q]);
                    m.data[k * n + p] = c * akp - s * akq;
                    m.data[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (m.data[p * n + k], m.data[q * n + k]);
                    m.data[p * n + k] = c * apk - s * aqk;
                    m.data[q * n + k] = s * apk + c * aqk;
                }
                m.data[p * n + q] = 0.0;
                m.data[q * n + p] = 0.0;
                for k in 0..n {
                    let (vkp, vkq) = (v.data[k * n + p], v.data[k * n + q]);
                    v.data[k * n + p] = c * vkp - s * vkq;
                    v.data[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
        if rotations == 0 {
            break;
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m.data[j * n + j].total_cmp(&m.data[i * n + i]));
    let vals = order.iter().map(|&i| m.data[i * n + i]).collect();
    let mut rows = Mat::zeros(n, n);
    for (r, &i) in order.iter().enumerate() {
        for k in 0..n {
            rows.data[r * n + k] = v.data[k * n + i];
        }
    }
    (vals, rows)
}

/// Top eigenpairs of a symmetric positive semi-definite matrix.
#[derive(Debug, Clone)]
pub struct TopEig {
    /// Eigenvalues, descending.
    pub values: Vec<f64>,
    /// Eigenvectors as rows (`k × m`).
    pub vectors: Mat<f64>,
    /// Subspace iterations used (0 when the matrix was small enough for Jacobi).
    pub iterations: usize,
    /// Whether every residual reached the tolerance.
    pub converged: bool,
}

/// Matrices up to this size are decomposed whole by Jacobi.
const JACOBI_MAX: usize = 96;

/// The `k` largest eigenpairs of the symmetric PSD matrix `g` (`m × m`).
///
/// Small matrices (or `k` close to `m`) go to [`sym_eig`]. Otherwise: subspace iteration on a
/// block of `k + p` vectors (p = max(k, 16) oversampling) with a Rayleigh–Ritz step every
/// iteration, until every wanted Ritz pair has `‖g·x − θx‖ ≤ 1e-9·θ₁` (or 500 iterations).
/// `warm` rows (if any) seed the block — the previous chunk's components make later chunks
/// converge in a few iterations.
pub fn top_eig(g: &Mat<f64>, k: usize, warm: Option<&Mat<f64>>, rng: &mut Rng) -> TopEig {
    let m = g.rows;
    let k = k.min(m);
    let p = k.max(16);
    if m <= JACOBI_MAX || k + p >= m {
        let (vals, vecs) = sym_eig(g);
        let vectors = Mat { rows: k, cols: m, data: vecs.data[..k * m].to_vec() };
        return TopEig { values: vals[..k].to_vec(), vectors, iterations: 0, converged: true };
    }
    let b = k + p;
    let mut q = Mat::zeros(b, m);
    let nwarm = warm.map_or(0, |w| w.rows.min(b));
    for i in 0..b {
        let row = q.row_mut(i);
        match warm {
            Some(w) if i < nwarm && w.cols == m => row.copy_from_slice(w.row(i)),
            _ => row.iter_mut().for_each(|x| *x = rng.normal()),
        }
    }
    orthonormalize_rows(&mut q, rng);
    let mut best = None;
    for it in 1..=500 {
        // W = Q·G (rows are g·q_i since g is symmetric).
        let Some(w) = matmul(&q, false, g, false) else { break };
        let Some(mut h) = matmul(&q, false, &w, true) else { break };
        symmetrize(&mut h);
        let (theta, s) = sym_eig(&h);
        // Ritz vectors X = Sᵀ-combination of Q's rows, and G·X likewise from W.
        let (Some(x), Some(gx)) = (matmul(&s, false, &q, false), matmul(&s, false, &w, false)) else { break };
        let top = theta[0].abs().max(f64::MIN_POSITIVE);
        let converged = (0..k).all(|i| {
            let r: f64 = gx.row(i).iter().zip(x.row(i)).map(|(a, b)| (a - theta[i] * b).powi(2)).sum();
            r.sqrt() <= 1e-9 * top
        });
        if converged || it == 500 {
            best = Some(TopEig {
                values: theta[..k].to_vec(),
                vectors: Mat { rows: k, cols: m, data: x.data[..k * m].to_vec() },
                iterations: it,
                converged,
            });
            break;
        }
        // Next block: G·x_i / θ_i (unit scale, nearly orthogonal, so the QR is well conditioned);
        // directions with no energy are replaced by fresh random vectors.
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
        orthonormalize_rows(&mut q, rng);
    }
    best.unwrap_or_else(|| {
        let (vals, vecs) = sym_eig(g);
        TopEig {
            values: vals[..k].to_vec(),
            vectors: Mat { rows: k, cols: m, data: vecs.data[..k * m].to_vec() },
            iterations: 0,
            converged: true,
        }
    })
}

/// Makes `a` exactly symmetric (averages the two triangles).
pub fn symmetrize(a: &mut Mat<f64>) {
    let n = a.rows;
    for i in 0..n {
        for j in i + 1..n {
            let v = 0.5 * (a.data[i * n + j] + a.data[j * n + i]);
            a.data[i * n + j] = v;
            a.data[j * n + i] = v;
        }
    }
}

/// Orthonormalises the rows of `q` in order (Cholesky QR twice, i.e. Gram–Schmidt order);
/// falls back to modified Gram–Schmidt with re-orthogonalisation when the rows are nearly
/// dependent, replacing rows that vanish with random directions.
pub fn orthonormalize_rows(q: &mut Mat<f64>, rng: &mut Rng) {
    for _ in 0..2 {
        let Some(gram) = matmul(q, false, q, true) else { return };
        let Some(l) = cholesky(&gram) else {
            mgs_rows(q, rng);
            return;
        };
        let linv = lower_inverse(&l);
        match matmul(&linv, false, q, false) {
            Some(n) => *q = n,
            None => return,
        }
    }
}

/// Modified Gram–Schmidt on rows, twice per row; rows that vanish become random directions.
pub fn mgs_rows(q: &mut Mat<f64>, rng: &mut Rng) {
    let (k, m) = (q.rows, q.cols);
    let mut i = 0;
    let mut retries = 0;
    while i < k {
        let orig: f64 = q.row(i).iter().map(|x| x * x).sum::<f64>().sqrt();
        for _ in 0..2 {
            for j in 0..i {
                let (head, tail) = q.data.split_at_mut(i * m);
                let rj = &head[j * m..(j + 1) * m];
                let ri = &mut tail[..m];
                let d: f64 = ri.iter().zip(rj).map(|(a, b)| a * b).sum();
                ri.iter_mut().zip(rj).for_each(|(a, b)| *a -= d * b);
            }
        }
        let norm: f64 = q.row(i).iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm <= 1e-10 * orig.max(f64::MIN_POSITIVE) || norm == 0.0 || !norm.is_finite() {
            if retries > 8 * k + 16 {
                // Cannot happen for i < m with a working generator; stop rather than spin.
                return;
            }
            retries += 1;
            q.row_mut(i).iter_mut().for_each(|x| *x = rng.normal());
            continue;
        }
        q.row_mut(i).iter_mut().for_each(|x| *x /= norm);
        i += 1;
    }
}

/// Lower Cholesky factor of a symmetric positive-definite matrix; `None` if a pivot is not
/// clearly positive.
pub fn cholesky(a: &Mat<f64>) -> Option<Mat<f64>> {
    let n = a.rows;
    let mut l = Mat::zeros(n, n);
    let scale = (0..n).map(|i| a.at(i, i).abs()).fold(0.0, f64::max);
    for i in 0..n {
        for j in 0..=i {
            let mut s = a.at(i, j);
            for k in 0..j {
                s -= l.at(i, k) * l.at(j, k);
            }
            if i == j {
                if !(s > 1e-13 * scale) {
                    return None;
                }
                l.data[i * n + i] = s.sqrt();
            } else {
                l.data[i * n + j] = s / l.at(j, j);
            }
        }
    }
    Some(l)
}

/// Inverse of a lower-triangular matrix with a non-zero diagonal.
pub fn lower_inverse(l: &Mat<f64>) -> Mat<f64> {
    let n = l.rows;
    let mut inv = Mat::zeros(n, n);
    for c in 0..n {
        // Solve L·x = e_c by forward substitution.
        for i in c..n {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in c..i {
                s -= l.at(i, k) * inv.at(k, c);
            }
            inv.data[i * n + c] = s / l.at(i, i);
        }
    }
    inv
}

/// Solves `a·x = b` for a symmetric positive-definite `a` (`n × n`) and `b` (`n × r`) by
/// Cholesky; `None` if `a` is not positive definite.
pub fn cholesky_solve(a: &Mat<f64>, b: &Mat<f64>) -> Option<Mat<f64>> {
    let l = cholesky(a)?;
    let n = a.rows;
    let r = b.cols;
    let mut y = b.clone();
    for c in 0..r {
        for i in 0..n {
            let mut s = y.at(i, c);
            for k in 0..i {
                s -= l.at(i, k) * y.at(k, c);
            }
            y.data[i * r + c] = s / l.at(i, i);
        }
        for i in (0..n).rev() {
            let mut s = y.at(i, c);
            for k in i + 1..n {
                s -= l.at(k, i) * y.at(k, c);
            }
            y.data[i * r + c] = s / l.at(i, i);
        }
    }
    Some(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_psd(n: usize, spectrum: impl Fn(usize) -> f64, rng: &mut Rng) -> (Mat<f64>, Mat<f64>) {
        let mut basis = Mat::zeros(n, n);
        basis.data.iter_mut().for_each(|x| *x = rng.normal());
        mgs_rows(&mut basis, rng);
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
    fn jacobi_recovers_a_known_spectrum() {
        let mut rng = Rng::new(1);
        let (g, basis) = random_psd(20, |i| 20.0 - i as f64, &mut rng);
        let (vals, vecs) = sym_eig(&g);
        for i in 0..20 {
            assert!((vals[i] - (20.0 - i as f64)).abs() < 1e-10, "{i}: {}", vals[i]);
            let c: f64 = vecs.row(i).iter().zip(basis.row(i)).map(|(a, b)| a * b).sum();
            assert!((c.abs() - 1.0).abs() < 1e-10);
        }
    }

    #[test]
    fn subspace_iteration_finds_the_top_of_a_large_matrix() {
        let mut rng = Rng::new(2);
        let n = 300;
        let (g, basis) = random_psd(n, |i| 1.0 / (1.0 + i as f64).powf(1.2), &mut rng);
        let top = top_eig(&g, 10, None, &mut rng);
        assert!(top.converged && top.iterations > 0);
        for i in 0..10 {
            let want = 1.0 / (1.0 + i as f64).powf(1.2);
            assert!((top.values[i] - want).abs() < 1e-9, "{i}: {} vs {want}", top.values[i]);
            let c: f64 = top.vectors.row(i).iter().zip(basis.row(i)).map(|(a, b)| a * b).sum();
            assert!(c.abs() > 1.0 - 1e-8, "{i}: |cos| {c}");
        }
        // Rank-deficient input: zero eigenvalues beyond rank 5 must not break the iteration.
        let (g, _) = random_psd(n, |i| if i < 5 { 5.0 - i as f64 } else { 0.0 }, &mut rng);
        let top = top_eig(&g, 8, None, &mut rng);
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
        assert!(cholesky(&Mat::from_vec(2, 2, vec![1.0, 2.0, 2.0, 1.0]).unwrap()).is_none());
    }
}
