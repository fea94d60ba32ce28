//! `intervene bound`: GenInt's log P(x|z) estimate, from precomputed features or from a
//! classifier's penultimate features of generated and real image folders.

use std::path::PathBuf;

use anyhow::{bail, Context as _};

use crate::explain::bound::{estimate, Variant};
use crate::explain::folders::{features, images_by_class};

/// Estimate log P(x|z) (GenInt §9) from penultimate-layer features: real images (queries)
/// against generated images of the same class (dictionary). Higher is better: it tightens the
/// causal-effect bound of the intervention strategy that generated the dictionary.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  intervene bound --classifier resnet18.pth --generated intervened/ --real imagenet-val/ --dict-size 500\n  \
intervene bound --query-features q.npy --dict-features d.npy --json\n\n\
Folders hold one subfolder per class (`{class}/*.png|jpg`: ImageNet wnid, name or index), or are an \
`intervene export` folder (labels.csv: the shape class labels an image). Classes present in both are used; \
the estimate is the mean over all real images of their class's score."
)]
pub struct BoundArgs {
    /// Query features, float32 [N, F] `.npy` (e.g. ResNet-18 avgpool features of real images).
    #[arg(
        long,
        value_name = "Q.npy",
        requires = "dict_features",
        conflicts_with = "classifier",
        help_heading = "Features"
    )]
    pub query_features: Option<PathBuf>,
    /// Dictionary features, float32 [M, F] `.npy` (generated images of the same class).
    #[arg(long, value_name = "D.npy", requires = "query_features", help_heading = "Features")]
    pub dict_features: Option<PathBuf>,
    /// Classifier whose penultimate (pooled) features are compared: weights file or bundled name.
    #[arg(long, value_name = "PATH_OR_NAME", requires_all = ["generated", "real"], help_heading = "Images")]
    pub classifier: Option<String>,
    /// Architecture of --classifier (detected from its keys when omitted).
    #[arg(long, value_parser = super::values::named::<crate::models::classifier::Arch>(), help_heading = "Images")]
    pub arch: Option<crate::models::classifier::Arch>,
    /// Generated images (the dictionary), per class.
    #[arg(long, value_name = "DIR_OR_JOB", help_heading = "Images")]
    pub generated: Option<PathBuf>,
    /// Real images (the queries), per class.
    #[arg(long, value_name = "DIR", help_heading = "Images")]
    pub real: Option<PathBuf>,
    /// Generated images per class in the dictionary (the first N by file name).
    #[arg(long, value_name = "N", default_value_t = 500, help_heading = "Images")]
    pub dict_size: usize,
    /// `nn`: mean log of the best squared-norm-scaled dot product (the paper's);
    /// `crossentropy`: mean best negative cross-entropy between softmaxed features.
    #[arg(long, value_parser = super::values::named::<Variant>(), default_value = "nn")]
    pub variant: Variant,
    /// Print JSON with the per-query scores and best indices.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: BoundArgs) -> anyhow::Result<()> {
    if let (Some(c), Some(g), Some(r)) = (&a.classifier, &a.generated, &a.real) {
        return from_images(c, a.arch, g, r, a.dict_size, a.variant, a.json);
    }
    let (Some(qf), Some(df)) = (&a.query_features, &a.dict_features) else {
        bail!("give --query-features Q.npy --dict-features D.npy, or --classifier M --generated DIR --real DIR");
    };
    let load = |p: &PathBuf| -> anyhow::Result<(Vec<f32>, usize)> {
        let t = crate::imageio::load_npy(p)?;
        let (_, f) = t.dims2().with_context(|| format!("{} must be a 2-D [N, F] array", p.display()))?;
        Ok((t.flatten_all()?.to_vec1::<f32>()?, f))
    };
    let (q, fq) = load(qf)?;
    let (d, fd) = load(df)?;
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

fn from_images(
    classifier: &str,
    arch: Option<crate::models::classifier::Arch>,
    generated: &std::path::Path,
    real: &std::path::Path,
    dict_size: usize,
    variant: Variant,
    json: bool,
) -> anyhow::Result<()> {
    if dict_size == 0 {
        bail!("--dict-size must be at least 1");
    }
    let opened = crate::models::classifier::open(classifier, arch, &candle_core::Device::Cpu)?;
    let gen = images_by_class(generated, opened.num_classes)?;
    let real = images_by_class(real, opened.num_classes)?;
    let classes: Vec<usize> = real.keys().copied().filter(|c| gen.contains_key(c)).collect();
    if classes.is_empty() {
        bail!(
            "no class has both generated and real images (generated: {:?}…, real: {:?}…)",
            gen.keys().take(5).collect::<Vec<_>>(),
            real.keys().take(5).collect::<Vec<_>>()
        );
    }
    let (mut total, mut count) = (0f64, 0usize);
    let mut per_class = Vec::new();
    for c in &classes {
        let dict_files: Vec<PathBuf> = gen[c].iter().take(dict_size).cloned().collect();
        let (d, f) = features(&opened, &dict_files)?;
        let (q, _) = features(&opened, &real[c])?;
        let b = estimate(&q, &d, f, variant)?;
        let nq = b.best_index.len();
        total += b.estimate * nq as f64;
        count += nq;
        per_class.push(
            serde_json::json!({"class": c, "estimate": b.estimate, "queries": nq, "dictionary": dict_files.len()}),
        );
        if !json {
            eprintln!("class {c}: {:.6} ({nq} real vs {} generated)", b.estimate, dict_files.len());
        }
    }
    let est = total / count as f64;
    if json {
        println!("{}", serde_json::json!({"estimate": est, "variant": format!("{variant:?}"), "classes": per_class}));
    } else {
        println!("log P(x|z) = {est:.6} over {count} real images in {} classes ({:?})", classes.len(), variant);
    }
    Ok(())
}
