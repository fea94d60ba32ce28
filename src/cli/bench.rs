//! `intervene bench`: speed and memory of the runtimes, with random weights in memory.

use anyhow::bail;

use crate::bench::{peak_rss_mib, time_median_ms, RandomWeights};
use crate::models::biggan::{BigGan, BigGanConfig};

mod export;

/// Measure speed and memory (random weights in memory; no model files needed).
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// What to measure.
#[derive(clap::Subcommand, Debug)]
pub enum BenchWhat {
    /// BigGAN-deep generator forward: ms per image (median after warm-up), GFLOP/s, peak RSS.
    Biggan(BigganBench),
    /// Steering: a late-layer edit served from the stage cache vs a full forward.
    Steer(SteerBench),
    /// CAM: GradCAM at 224² batch 1 (ResNet-18, ResNet-50, MobileNetV2; random weights), forward + gradient to the layer.
    Cam(CamBench),
    /// CGN: one studio frame (three mechanisms, soft classes, batch 1) for a CGN checkpoint.
    Cgn(CgnBench),
    /// Training: seconds per optimiser step of the MNIST CNN (batch 64), ResNet-18 (64², batch 32,
    /// SGD) and one CGN-MNIST GAN step (G + D, batch 16, no VGG loss); one thread by default.
    Train(TrainBench),
    /// The GenInt export loop (BigGAN forward + PNG write, the real job): images/s.
    Export(export::ExportBench),
}

/// Training-step timing (compare with `tools/reference/pt_train_bench.py`).
#[derive(clap::Args, Debug)]
pub struct TrainBench {
    /// Workloads (comma separated).
    #[arg(long, value_name = "W,...", value_delimiter = ',', default_value = "mnist-cnn,resnet18,cgn-gan", value_parser = super::values::named::<crate::train::bench::Workload>())]
    pub workload: Vec<crate::train::bench::Workload>,
    /// Timed steps per workload and round (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Untimed warm-up steps per workload before its first round.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub warmup: usize,
    /// Rounds: each round times every workload once, so the workloads interleave.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
    /// Compute threads (0: all cores).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// One JSON object per workload and round.
    #[arg(long)]
    pub json: bool,
}

/// CAM timing.
#[derive(clap::Args, Debug)]
pub struct CamBench {
    /// Architectures (comma separated): resnet18, resnet34, resnet50, mobilenet_v2.
    #[arg(long, value_name = "ARCH,...", value_delimiter = ',', default_value = "resnet18,mobilenet_v2")]
    pub arch: Vec<String>,
    /// Timed runs (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = super::values::positive)]
    pub runs: usize,
    /// One JSON object per architecture.
    #[arg(long)]
    pub json: bool,
}

/// CGN frame timing.
#[derive(clap::Args, Debug)]
pub struct CgnBench {
    /// CGN checkpoint or bundled name.
    #[arg(long, value_name = "PATH", default_value = crate::models::cgn::DEFAULT_CGN)]
    pub model: String,
    /// Timed runs (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = super::values::positive)]
    pub runs: usize,
    /// One JSON object on stdout (model, frame_ms, frame_ms_best, runs).
    #[arg(long)]
    pub json: bool,
}

/// Steering-cache timing: edits that start in the last third of the latent slots.
#[derive(clap::Args, Debug)]
pub struct SteerBench {
    /// Configuration: deep-128, deep-256, deep-512 or a hub config.json path.
    #[arg(long, value_name = "NAME", default_value = "deep-128")]
    pub config: String,
    /// First latent slot the edit changes (default: the first slot read in the last third of
    /// `generator.layers`, attention included, i.e. slot 9 of 11 for deep-128).
    #[arg(long, value_name = "SLOT")]
    pub start: Option<usize>,
    /// Timed runs (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = super::values::positive)]
    pub runs: usize,
    /// One JSON object on stdout (config, full_ms, edit_ms, speedup, start, resume_stage, …).
    #[arg(long)]
    pub json: bool,
    /// Run on the CPU even when a GPU is available.
    #[arg(long)]
    pub cpu: bool,
}

/// BigGAN-deep forward timing.
#[derive(clap::Args, Debug)]
pub struct BigganBench {
    /// Configurations: deep-128, deep-256, deep-512 or a hub config.json path (comma separated).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',', default_value = "deep-128")]
    pub config: Vec<String>,
    /// Batch sizes (comma separated).
    #[arg(long, value_name = "B,...", value_delimiter = ',', default_value = "1", value_parser = super::values::positive)]
    pub batch: Vec<usize>,
    /// Timed runs per configuration (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = super::values::positive)]
    pub runs: usize,
    /// Untimed warm-up runs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub warmup: usize,
    /// Truncation used for the forward.
    #[arg(long, value_name = "T", default_value_t = 0.4, value_parser = super::values::truncation)]
    pub truncation: f64,
    /// One JSON object per configuration on stdout (config, batch, ms_per_image, gflops, peak_rss_mb, …).
    #[arg(long)]
    pub json: bool,
    /// Run on the CPU even when a GPU is available.
    #[arg(long)]
    pub cpu: bool,
    /// Also time each kernel kind (3×3 convs, 1×1 convs, attention, the rest) against its FLOP
    /// floor at this machine's measured SGEMM rate (CPU fused path).
    #[arg(long)]
    pub breakdown: bool,
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    match a.what {
        BenchWhat::Biggan(b) => biggan(b),
        BenchWhat::Steer(b) => steer(b),
        BenchWhat::Cgn(b) => cgn(b),
        BenchWhat::Cam(b) => cam(b),
        BenchWhat::Train(b) => train(b),
        BenchWhat::Export(b) => export::run(b, config),
    }
}

fn train(a: TrainBench) -> anyhow::Result<()> {
    use crate::train::bench::{median, prepare, time_steps};
    super::train::limit_candle_threads(a.threads);
    let body = || -> anyhow::Result<()> {
        let mut prepared = Vec::new();
        for &w in &a.workload {
            let mut p = prepare(w)?;
            time_steps(&mut p, a.warmup, 0)?;
            prepared.push((w, p));
        }
        for round in 0..a.rounds {
            for (w, p) in &mut prepared {
                let t = time_steps(p, 0, a.steps as usize)?;
                let (med, best) = (median(&t), t.iter().copied().fold(f64::INFINITY, f64::min));
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"impl": "intervene", "workload": w.name(), "batch": w.batch(), "round": round,
                            "s_per_step": med, "best": best, "steps": a.steps, "threads": rayon::current_num_threads()})
                    );
                } else {
                    println!(
                        "train {:<10} batch {:>3}: {:.4} s/step (best {:.4}) over {} steps, {} thread(s)  [CPU]",
                        w.name(),
                        w.batch(),
                        med,
                        best,
                        a.steps,
                        rayon::current_num_threads()
                    );
                }
            }
        }
        Ok(())
    };
    // The same threads and allocator settings as the training jobs.
    crate::train::gan_common::with_threads(a.threads, body)
}

fn config(name: &str) -> anyhow::Result<BigGanConfig> {
    match BigGanConfig::preset(name) {
        Some(c) => Ok(c),
        None if std::path::Path::new(name).is_file() => Ok(BigGanConfig::from_file(std::path::Path::new(name))?),
        None => bail!("unknown config '{name}': use deep-128, deep-256, deep-512 or a config.json path"),
    }
}

fn cam(a: CamBench) -> anyhow::Result<()> {
    use crate::explain::cam::{compute, Method};
    use crate::models::classifier::Staged;
    use crate::models::resnet::{ResNet, ResNetConfig};
    let device = candle_core::Device::Cpu;
    for name in &a.arch {
        let vb = RandomWeights::var_builder(1, &device);
        let model: Box<dyn Staged> = match name.as_str() {
            "resnet18" => Box::new(ResNet::new(vb, &ResNetConfig::resnet18())?),
            "resnet34" => Box::new(ResNet::new(vb, &ResNetConfig::resnet34())?),
            "resnet50" => Box::new(ResNet::new(vb, &ResNetConfig::resnet50())?),
            "mobilenet_v2" => Box::new(crate::models::mobilenet_v2::MobileNetV2::new(vb, 1000)?),
            other => bail!("unknown architecture '{other}': use resnet18, resnet34, resnet50 or mobilenet_v2"),
        };
        let x = crate::noise::normal_noise(0, 1, 3 * 224 * 224, &device)?.reshape((1, 3, 224, 224))?;
        let layer = model.default_cam_stage();
        let (fwd, _) = time_median_ms(1, a.runs, || {
            model.logits(&x)?;
            Ok(())
        })?;
        let (ms, all) = time_median_ms(1, a.runs, || {
            let ag = model.activation_and_gradient(&x, layer, None)?;
            let (_, c, h, w) = ag.act.dims4()?;
            let act = ag.act.flatten_all()?.to_vec1::<f32>()?;
            let grad = ag.grad.flatten_all()?.to_vec1::<f32>()?;
            std::hint::black_box(compute(Method::GradCam, &act, &grad, c, h, w, 224, 224));
            Ok(())
        })?;
        let best = all.iter().copied().fold(f64::INFINITY, f64::min);
        if a.json {
            println!(
                "{}",
                serde_json::json!({"arch": name, "gradcam_ms": ms, "gradcam_ms_best": best, "forward_ms": fwd, "layer": model.stage_names()[layer], "rss_mb": peak_rss_mib()})
            );
        } else {
            println!("cam {name:<13} GradCAM {ms:6.1} ms (best {best:.1}; forward alone {fwd:.1} ms) at {} 224² batch 1  [CPU]", model.stage_names()[layer]);
        }
    }
    Ok(())
}

fn cgn(a: CgnBench) -> anyhow::Result<()> {
    use crate::counterfactual::{CgnRenderer, CgnRequest, SoftClass};
    let mut r = CgnRenderer::default();
    let model_name = a.model.clone();
    let mut k = 0u64;
    let mut req = move || {
        k += 1;
        let c = |class, alpha| SoftClass { class, other: (class + 1) % 10, alpha };
        // A new seed and interpolation each frame, as a slider drag produces.
        CgnRequest {
            model: a.model.clone(),
            classes: [c(3, 0.0), c(5, (k % 10) as f32 / 10.0), c(7, 0.5)],
            seed: k,
            truncation: 0.5,
        }
    };
    r.render(req())?; // load
    let (ms, all) = time_median_ms(1, a.runs, || {
        r.render(req()).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(())
    })?;
    let best = all.iter().copied().fold(f64::INFINITY, f64::min);
    if a.json {
        println!("{}", serde_json::json!({"model": model_name, "frame_ms": ms, "frame_ms_best": best, "runs": a.runs}));
    } else {
        println!("cgn frame: {ms:.2} ms median (best {best:.2}) per render of the three parts  [CPU]");
    }
    Ok(())
}

fn steer(a: SteerBench) -> anyhow::Result<()> {
    use crate::steer::{Components, Edit, EditMode, Steerer};
    let device = crate::device::select(a.cpu);
    let cfg = config(&a.config)?;
    let model = BigGan::new(RandomWeights::var_builder(1, &device), &cfg)?;
    let slots = cfg.num_latents();
    let layers = cfg.layers.len() + usize::from(cfg.attention_layer_position < cfg.layers.len());
    let last_third = (2 * layers).div_ceil(3);
    let default_start =
        (1 + last_third..model.num_stages()).find_map(|st| model.latent_of_stage(st)).unwrap_or(slots - 1);
    let start = a.start.unwrap_or(default_start).min(slots - 1);
    // One random unit direction is enough: the cost does not depend on which direction.
    let zd = cfg.z_dim;
    let mut dir: Vec<f32> = (0..zd).map(|i| ((i * 7919 % 101) as f32 - 50.0) / 50.0).collect();
    let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt();
    dir.iter_mut().for_each(|v| *v /= norm);
    let comps = Components {
        act_shape: vec![1, 1],
        act_comp: vec![1.0],
        act_mean: vec![0.0],
        act_stdev: vec![1.0],
        lat_comp: dir,
        lat_mean: vec![0.0; zd],
        lat_stdev: vec![1.0],
        var_ratio: vec![1.0],
        random_stdevs: vec![1.0],
        source: "<bench>".into(),
    };
    let z = crate::noise::truncated_noise(0, 1, zd, 0.4, &device)?;
    let cv = crate::classes::one_hot(&[207], cfg.num_classes, &device)?;
    let mut s = Steerer::new(model);
    s.set_base(&z, &cv, 0.4)?;
    let (full_ms, _) = time_median_ms(1, a.runs, || {
        s.clear_cache();
        let y = s.render(&comps, &[], EditMode::Additive).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        device.synchronize()?;
        drop(y);
        Ok(())
    })?;
    let mut k = 0u32;
    let mut resume = None;
    let (edit_ms, _) = time_median_ms(1, a.runs, || {
        // A new strength each time, as a slider drag produces.
        k += 1;
        let e = Edit { component: 0, start, end: slots, strength: 0.1 * k as f32 };
        let y = s.render(&comps, &[e], EditMode::Additive).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        device.synchronize()?;
        resume = s.last_resume_stage();
        drop(y);
        Ok(())
    })?;
    let speedup = full_ms / edit_ms;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "config": a.config, "device": crate::device::describe(&device), "full_ms": full_ms, "edit_ms": edit_ms,
                "speedup": speedup, "start": start, "slots": slots, "resume_stage": resume, "stages": s.model().num_stages(),
            })
        );
    } else {
        println!(
            "steer {}: full forward {full_ms:.1} ms, edit of slots {start}..{slots} {edit_ms:.1} ms ({speedup:.2}× faster; restarts at stage {} of {})  [{}]",
            a.config,
            resume.unwrap_or(0),
            s.model().num_stages(),
            crate::device::describe(&device)
        );
    }
    Ok(())
}

/// Where a forward's time goes, per kernel kind, against each kind's FLOP floor.
fn breakdown(
    name: &str,
    b: usize,
    runs: usize,
    mut forward: impl FnMut() -> anyhow::Result<()>,
    json: bool,
) -> anyhow::Result<()> {
    use crate::ops::profile;
    let peak = profile::gemm_gflops();
    profile::reset();
    profile::enable(true);
    let t = std::time::Instant::now();
    for _ in 0..runs {
        forward()?;
    }
    let wall = t.elapsed().as_secs_f64();
    profile::enable(false);
    let per = |x: f64| x / (runs * b) as f64;
    let total_ms = 1e3 * per(wall);
    let mut rows = Vec::new();
    let mut covered = 0.0;
    for (kind, secs, flops) in profile::totals() {
        covered += secs;
        let (ms, gflop) = (1e3 * per(secs), per(flops) / 1e9);
        rows.push((kind.name().to_string(), ms, gflop, gflop / (ms / 1e3).max(1e-12), 1e3 * gflop / peak));
    }
    let rest = 1e3 * per(wall - covered);
    rows.push(("the rest (embeddings, cBN parameters, glue, allocation)".into(), rest, 0.0, 0.0, 0.0));
    if json {
        let kinds: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"kind": r.0, "ms_per_image": r.1, "gflop_per_image": r.2, "gflops": r.3, "floor_ms": r.4}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"breakdown": name, "batch": b, "ms_per_image": total_ms, "sgemm_gflops": peak, "kinds": kinds})
        );
        return Ok(());
    }
    println!("  where the time goes ({name}, batch {b}, {runs} runs; SGEMM peak here {peak:.0} GFLOP/s, all cores):");
    println!(
        "  {:<58} {:>10} {:>6} {:>11} {:>9} {:>10}",
        "kind", "ms/image", "share", "GFLOP/img", "GFLOP/s", "floor ms"
    );
    for r in &rows {
        println!(
            "  {:<58} {:>10.1} {:>5.0}% {:>11.2} {:>9.1} {:>10.1}",
            r.0,
            r.1,
            100.0 * r.1 / total_ms,
            r.2,
            r.3,
            r.4
        );
    }
    let floor: f64 = rows.iter().map(|r| r.4).sum();
    println!(
        "  {:<58} {:>10.1} {:>6} {:>11} {:>9} {:>10.1}",
        "total (floor = FLOPs at the SGEMM peak)", total_ms, "", "", "", floor
    );
    Ok(())
}

fn biggan(a: BigganBench) -> anyhow::Result<()> {
    let device = crate::device::select(a.cpu);
    for name in &a.config {
        let cfg = config(name)?;
        let rw = RandomWeights::new(1);
        let weights_mib = {
            let vb = candle_nn::VarBuilder::from_backend(Box::new(rw), candle_core::DType::F32, device.clone());
            let model = BigGan::new(vb, &cfg)?;
            let params: usize = param_bytes(&model);
            (model, params as f64 / (1024.0 * 1024.0))
        };
        let (model, weights_mib) = weights_mib;
        let loaded_rss = crate::bench::peak_rss_mib().unwrap_or(f64::NAN);
        for &b in &a.batch {
            if b == 0 {
                bail!("batch sizes must be positive");
            }
            let z = crate::noise::truncated_noise(0, b, cfg.z_dim, a.truncation, &device)?;
            let cv = crate::classes::one_hot(&vec![207; b], cfg.num_classes, &device)?;
            let (ms, all) = time_median_ms(a.warmup, a.runs, || {
                let y = model.forward(&z, &cv, a.truncation)?;
                device.synchronize()?;
                drop(y);
                Ok(())
            })?;
            let per_img = ms / b as f64;
            // On shared machines the fastest run is the steadier estimate of what the code costs.
            let best_per_img = all.iter().copied().fold(f64::INFINITY, f64::min) / b as f64;
            let gflop = cfg.flops_per_image() / 1e9;
            let gflops = gflop / (per_img / 1e3);
            let rss = peak_rss_mib().unwrap_or(f64::NAN);
            if a.breakdown {
                let fwd = || -> anyhow::Result<()> {
                    drop(model.forward(&z, &cv, a.truncation)?);
                    Ok(())
                };
                breakdown(name, b, a.runs, fwd, a.json)?;
            }
            if a.json {
                let o = serde_json::json!({
                    "config": name, "batch": b, "device": crate::device::describe(&device),
                    "ms_per_image": per_img, "ms_per_image_best": best_per_img, "ms_per_batch": ms, "runs_ms": all,
                    "gflop_per_image": gflop, "gflops": gflops,
                    "peak_rss_mb": rss, "peak_rss_after_load_mb": loaded_rss, "weights_mb": weights_mib, "threads": rayon::current_num_threads(),
                });
                println!("{o}");
            } else {
                println!(
                    "biggan {name:<9} batch {b:<3} {per_img:8.1} ms/image (best {best_per_img:.1})  {gflops:6.1} GFLOP/s  ({gflop:.2} GFLOP/image)  peak RSS {rss:.0} MiB (after load {loaded_rss:.0}, weights {weights_mib:.0} MiB)  [{}]",
                    crate::device::describe(&device)
                );
            }
        }
    }
    Ok(())
}

/// Bytes held by the model's tensors.
fn param_bytes(m: &BigGan) -> usize {
    m.num_parameters() * 4
}
