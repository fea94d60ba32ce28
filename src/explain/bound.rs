//! GenInt's nearest-neighbour estimate of log P(x|z) (Mao et al., "Generative Interventions for
//! Causal Learning", §9; the authors' `training/sample_prob.py`), which ranks intervention
//! strategies: the higher, the tighter the causal-effect bound.
//!
//! - `nn` (the paper's): each feature row is divided by its **squared** L2 norm (not unit
//!   normalised), score = query·dictᵀ, keep each query's best dictionary entry, report the mean
//!   of `log(max(score, 1e-100))` — the clamp and log in f64 (1e-100 underflows in f32).
//! - `crossentropy`: softmax(raw query)·log_softmax(raw dictionary)ᵀ (a negative cross-entropy),
//!   best entry per query, mean (no log, no clamp).
//!
//! Scores are computed in f64 (the reference's precision; features are small) in GEMM tiles of
//! queries, so N × M never has to fit in memory.

use gemm::Parallelism;

/// Which estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// GenInt's nearest neighbour with squared-norm scaling and a log.
    Nn,
    /// Negative cross-entropy between softmaxed features.
    Crossentropy,
}

crate::named_enum!(Variant, "variant", { Nn => "nn", Crossentropy => "crossentropy" });

/// The estimate and each query's best match.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Bound {
    pub variant: Variant,
    /// Mean over queries of the per-query value.
    pub estimate: f64,
    /// Index of each query's best dictionary entry (the first one on ties).
    pub best_index: Vec<usize>,
    /// Its raw score (`nn`: the scaled dot product; `crossentropy`: −CE).
    pub best_score: Vec<f64>,
    /// The value averaged: `nn` → log(max(score, 1e-100)); `crossentropy` → the score.
    pub per_query: Vec<f64>,
}

/// Errors: shapes that do not fit.
#[derive(Debug, thiserror::Error)]
pub enum BoundError {
    #[error("{0}")]
    Shape(String),
}

/// Rows per GEMM tile (bounds the score buffer to TILE × dictionary size).
const TILE: usize = 1024;

/// Computes the estimate for queries `q (nq, f)` against dictionary `d (nd, f)`, row-major.
pub fn estimate(q: &[f32], d: &[f32], f: usize, variant: Variant) -> Result<Bound, BoundError> {
    if f == 0 || !q.len().is_multiple_of(f) || !d.len().is_multiple_of(f) {
        return Err(BoundError::Shape(format!(
            "features must be [N, {f}] arrays (got {} and {} values)",
            q.len(),
            d.len()
        )));
    }
    let (nq, nd) = (q.len() / f, d.len() / f);
    if nq == 0 || nd == 0 {
        return Err(BoundError::Shape("queries and dictionary must be non-empty".into()));
    }
    let (qt, dt) = match variant {
        Variant::Nn => (rows_over_sq_norm(q, f), rows_over_sq_norm(d, f)),
        Variant::Crossentropy => (rows_softmax(q, f, false), rows_softmax(d, f, true)),
    };
    let mut best_index = Vec::with_capacity(nq);
    let mut best_score = Vec::with_capacity(nq);
    let mut s = vec![0f64; TILE.min(nq) * nd];
    for q0 in (0..nq).step_by(TILE) {
        let n = TILE.min(nq - q0);
        // s (n, nd) = qt[q0..q0+n] · dtᵀ
        // SAFETY: the slices cover the ranges described by the sizes and strides.
        unsafe {
            gemm::gemm(
                n,
                nd,
                f,
                s.as_mut_ptr(),
                1,
                nd as isize,
                false,
                qt[q0 * f..].as_ptr(),
                1,
                f as isize,
                dt.as_ptr(),
                f as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::Rayon(rayon::current_num_threads()),
            );
        }
        for row in s[..n * nd].chunks(nd) {
            let (mut bi, mut bv) = (0, row[0]);
            for (j, &v) in row.iter().enumerate().skip(1) {
                if v > bv {
                    (bi, bv) = (j, v);
                }
            }
            best_index.push(bi);
            best_score.push(bv);
        }
    }
    let per_query: Vec<f64> = match variant {
        Variant::Nn => best_score.iter().map(|&v| v.max(1e-100).ln()).collect(),
        Variant::Crossentropy => best_score.clone(),
    };
    let estimate = per_query.iter().sum::<f64>() / nq as f64;
    Ok(Bound { variant, estimate, best_index, best_score, per_query })
}

/// `m / sum(m², axis=1)`: each row divided by its squared L2 norm (rows of zeros stay zero).
pub fn rows_over_sq_norm(m: &[f32], f: usize) -> Vec<f64> {
    m.chunks(f)
        .flat_map(|r| {
            let n2: f64 = r.iter().map(|&v| v as f64 * v as f64).sum();
            let inv = if n2 > 0.0 { 1.0 / n2 } else { 0.0 };
            r.iter().map(move |&v| v as f64 * inv)
        })
        .collect()
}

/// Row softmax, or log-softmax when `log`.
pub fn rows_softmax(m: &[f32], f: usize, log: bool) -> Vec<f64> {
    m.chunks(f)
        .flat_map(|r| {
            let mx = r.iter().map(|&v| v as f64).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = r.iter().map(|&v| (v as f64 - mx).exp()).sum();
            let lse = mx + sum.ln();
            r.iter().map(move |&v| if log { v as f64 - lse } else { (v as f64 - lse).exp() }).collect::<Vec<_>>()
        })
        .collect()
}
