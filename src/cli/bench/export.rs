//! `intervene bench export`: images/s of the GenInt export loop — the real job
//! ([`crate::jobs::genint_export`]) with a random-weight BigGAN-deep and 20 random latent
//! directions, writing PNGs into a scratch folder. Its peer is `tools/reference/pt_export_bench.py`
//! (pytorch-pretrained-biggan forward + PIL PNG save); `tools/reference/export_bench.sh` runs both
//! side by side.

use std::path::PathBuf;

use crate::bench::RandomWeights;
use crate::jobs::genint_export::{self, Settings};
use crate::jobs::image_sink::ImageFormat;
use crate::jobs::{Control, Shard};
use crate::models::biggan::{BigGan, BigGanConfig};
use crate::steer::Components;

/// Export-loop timing.
#[derive(clap::Args, Debug)]
pub struct ExportBench {
    /// Configuration of a random-weight model: deep-128, deep-256, deep-512 or a config.json path.
    #[arg(long, value_name = "NAME", default_value = "deep-128")]
    pub config: String,
    /// A model to load instead (folder, weights file or hub name), e.g. the one
    /// `tools/reference/make_bench_biggan.py` writes for both this and the PyTorch peer.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    pub model: Option<String>,
    /// Images per forward.
    #[arg(long, value_name = "B", default_value_t = 8, value_parser = crate::cli::export::genint::positive)]
    pub batch: usize,
    /// Timed images (after one untimed warm-up batch).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = crate::cli::export::genint::positive)]
    pub images: usize,
    /// Truncation (GenInt: 1).
    #[arg(long, value_name = "T", default_value_t = 1.0, value_parser = crate::cli::export::genint::truncation)]
    pub truncation: f64,
    /// Image format: png or jpg.
    #[arg(long, value_name = "FORMAT", default_value = "png")]
    pub format: ImageFormat,
    /// Encode and write between batches on the rendering thread instead of on a second thread.
    #[arg(long)]
    pub inline_writes: bool,
    /// Scratch folder (emptied first) [default: a folder under the system's temporary directory].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Run on the CPU even when a GPU is available.
    #[arg(long)]
    pub cpu: bool,
}

/// 20 random unit directions (seeded) and a small mean: what the cost depends on is the count.
fn random_components(z_dim: usize) -> Components {
    let c = 20;
    let mut rng = crate::noise::Rng::new(11);
    let mut lat = Vec::with_capacity(c * z_dim);
    for _ in 0..c {
        let d: Vec<f32> = (0..z_dim).map(|_| rng.normal() as f32).collect();
        let n = d.iter().map(|v| v * v).sum::<f32>().sqrt();
        lat.extend(d.iter().map(|v| v / n));
    }
    Components {
        act_shape: vec![1, 1],
        act_comp: vec![1.0; c],
        act_mean: vec![0.0],
        act_stdev: vec![1.0; c],
        lat_comp: lat,
        lat_mean: (0..z_dim).map(|_| 0.01 * rng.normal() as f32).collect(),
        lat_stdev: vec![1.0; c],
        var_ratio: vec![0.01; c],
        random_stdevs: vec![1.0; c],
        source: "<bench: 20 random directions>".into(),
    }
}

pub fn run(a: ExportBench, config: fn(&str) -> anyhow::Result<BigGanConfig>) -> anyhow::Result<()> {
    let device = crate::device::select(a.cpu);
    let model = match &a.model {
        Some(m) => crate::models::biggan::load::load(m, &device)?,
        None => BigGan::new(RandomWeights::var_builder(1, &device), &config(&a.config)?)?,
    };
    let cfg = model.cfg.clone();
    let name = a.model.clone().unwrap_or_else(|| format!("{} (random weights)", a.config));
    let comps = random_components(cfg.z_dim);
    let root = a
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("intervene-bench-export-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&root);
    let settings = |classes: usize| {
        let mut s = Settings::new(&a.config, Some(std::path::Path::new("<bench>")), (0..classes).collect(), a.batch);
        s.top_k = 20;
        s.truncation = a.truncation;
        s.format = a.format;
        s.batch = a.batch;
        s
    };
    let go = |dir: &std::path::Path, classes: usize| {
        genint_export::run_with_writer(
            model.clone(),
            Some(comps.clone()),
            settings(classes),
            dir,
            Shard::default(),
            false,
            !a.inline_writes,
            &Control::new(),
        )
    };
    go(&root.join("warmup"), 1)?;
    // Whole batches: `images` rounded up to a multiple of the batch.
    let classes = a.images.div_ceil(a.batch);
    let timed = root.join("timed");
    let t0 = std::time::Instant::now();
    let report = go(&timed, classes)?;
    let secs = t0.elapsed().as_secs_f64();
    let n = report.summary.files_written as usize;
    let mut bytes = 0u64;
    for e in walk(&timed) {
        if e.extension().is_some_and(|x| x == a.format.extension()) {
            bytes += std::fs::metadata(&e).map(|m| m.len()).unwrap_or(0);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    let o = serde_json::json!({
        "tool": "intervene", "model": name, "res": cfg.output_dim, "batch": a.batch, "images": n, "seconds": secs,
        "images_per_s": n as f64 / secs, "ms_per_image": 1000.0 * secs / n as f64,
        "png_kb": bytes as f64 / n.max(1) as f64 / 1024.0, "writer": if a.inline_writes { "inline" } else { "thread" },
        "format": a.format.extension(), "threads": rayon::current_num_threads(), "device": crate::device::describe(&device),
    });
    if a.json {
        println!("{o}");
    } else {
        println!(
            "export {name} batch {}: {n} images in {secs:.2} s = {:.2} images/s ({:.1} ms/image, {:.1} KiB/image, writes on {})  [{}]",
            a.batch,
            n as f64 / secs,
            1000.0 * secs / n as f64,
            bytes as f64 / n.max(1) as f64 / 1024.0,
            if a.inline_writes { "the render thread" } else { "a second thread" },
            crate::device::describe(&device)
        );
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
