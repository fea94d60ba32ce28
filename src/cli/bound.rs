//! `intervene bound`: GenInt's log P(x|z) estimate from precomputed features.

use std::path::PathBuf;

use anyhow::{bail, Context as _};

use crate::explain::bound::{estimate, Variant};

/// Estimate log P(x|z) (GenInt §9) from penultimate-layer features: real images (queries)
/// against generated images of the same class (dictionary). Higher is better: it tightens the
/// causal-effect bound of the intervention strategy that generated the dictionary.
#[derive(clap::Args, Debug)]
pub struct BoundArgs {
    /// Query features, float32 [N, F] `.npy` (e.g. ResNet-18 avgpool features of real images).
    #[arg(long, value_name = "Q.npy")]
    pub query_features: PathBuf,
    /// Dictionary features, float32 [M, F] `.npy` (generated images of the same class).
    #[arg(long, value_name = "D.npy")]
    pub dict_features: PathBuf,
    /// `nn`: mean log of the best squared-norm-scaled dot product (the paper's);
    /// `crossentropy`: mean best negative cross-entropy between softmaxed features.
    #[arg(long, value_enum, default_value = "nn")]
    pub variant: Variant,
    /// Print JSON with the per-query scores and best indices.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: BoundArgs) -> anyhow::Result<()> {
    let load = |p: &PathBuf| -> anyhow::Result<(Vec<f32>, usize)> {
        let t = crate::imageio::load_npy(p)?;
        let (_, f) = t.dims2().with_context(|| format!("{} must be a 2-D [N, F] array", p.display()))?;
        Ok((t.flatten_all()?.to_vec1::<f32>()?, f))
    };
    let (q, fq) = load(&a.query_features)?;
    let (d, fd) = load(&a.dict_features)?;
    if fq != fd {
        bail!("query features have {fq} columns but dictionary features have {fd}");
    }
    let b = estimate(&q, &d, fq, a.variant)?;
    if a.json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        let what = match a.variant {
            Variant::Nn => "log P(x|z)",
            Variant::Crossentropy => "−CE",
        };
        println!(
            "{what} = {:.6} over {} queries against {} dictionary entries",
            b.estimate,
            b.best_index.len(),
            d.len() / fd
        );
    }
    Ok(())
}
