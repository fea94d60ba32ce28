//! `train biggan`: the trainable generator against the inference runtime (layout and numbers),
//! gradient checks of the hand-written pieces (spectral norm with its σ, conditional batch norm
//! in training mode) against independent f64 references, and small real runs (finite and
//! decreasing losses, resume bit for bit, refusals).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use intervene::jobs::Control;
use intervene::train::biggan::{self, config_32, hub_state, BigGanSettings, Hooks};
use intervene::train::gan_data::DataSource;
use intervene::train::nets::biggan_g::{CondBn, Generator};
use intervene::train::nets::sn::{power_iteration, SnWeight};
use intervene::train::nets::Builder;

fn vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap()
}

fn truncnorm(seed: u64, n: usize) -> Vec<f32> {
    let mut r = intervene::noise::Rng::new(seed);
    (0..n).map(|_| r.truncated_normal(-2.0, 2.0) as f32).collect()
}

#[test]
fn exported_generator_matches_the_trainable_one_in_the_hub_runtime() {
    let dev = Device::Cpu;
    let cfg = config_32(4, 8, 3);
    let mut b = Builder::init(11, &dev);
    let g = Generator::new(&mut b, &cfg).unwrap();
    // Move the weights off their initial values so every parameter matters (γ included).
    for (k, v) in b.vars() {
        let t = v.as_tensor();
        let noise = Tensor::new(truncnorm(k.len() as u64, t.elem_count()), &dev).unwrap().reshape(t.shape()).unwrap();
        v.set(&(t + (noise * 0.05).unwrap()).unwrap()).unwrap();
    }
    // A few training-mode forwards move u, v the way training does.
    let n = 6;
    let z = Tensor::from_vec(truncnorm(5, n * 8), (n, 8), &dev).unwrap();
    let y = Tensor::new(&[0u32, 1, 2, 2, 1, 0], &dev).unwrap();
    for _ in 0..3 {
        g.forward(&z, &y, true, None).unwrap();
    }
    // Statistics of exactly this batch in every row: the runtime then normalises as the
    // training forward does.
    let mut rec = Vec::new();
    let ours = g.forward(&z, &y, false, Some(&mut rec)).unwrap();
    let row: Vec<(Vec<f32>, Vec<f32>)> = rec.iter().map(|s| (s.mean.clone(), s.var.clone())).collect();
    assert_eq!(row.len(), g.bn_prefixes().len());
    let tables = vec![row; cfg.n_stats];
    let params: Vec<(String, Tensor)> = b.vars().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let state = hub_state(&g, &params, &tables).unwrap();
    // The hub's key set: weight_orig/u/v for every SN module, tables for every BN.
    let keys: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "embeddings.weight",
        "generator.gen_z.weight_orig",
        "generator.gen_z.weight_u",
        "generator.gen_z.weight_v",
        "generator.layers.4.gamma",
        "generator.layers.0.bn_0.scale.weight_orig",
        "generator.layers.0.bn_0.running_means",
        "generator.bn.running_vars",
        "generator.conv_to_rgb.weight_v",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
    let dir = tempdir("hub");
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let views: Vec<(&str, &Tensor)> = state.iter().map(|(k, t)| (k.as_str(), t)).collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let m = intervene::models::biggan::load::load(&dir.display().to_string(), &dev).unwrap();
    let onehot = intervene::classes::one_hot(&[0, 1, 2, 2, 1, 0], 3, &dev).unwrap();
    let theirs = m.forward(&z, &onehot, 1.0).unwrap();
    let (a, b) = (vec(&ours), vec(&theirs));
    let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max < 2e-4, "trainable vs runtime: max |Δ| = {max}");
    // And a truncation between rows mixes equal rows to the same numbers.
    let mid = vec(&m.forward(&z, &onehot, 0.55).unwrap());
    let max = a.iter().zip(&mid).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max < 2e-4, "{max}");
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-train-biggan-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// f(W) = Σ C ⊙ W/σ(W), σ = uᵀWv with u, v fixed: ∂f/∂W = C/σ − (Σ C⊙W)/σ² · u vᵀ.
#[test]
fn spectral_norm_gradient_matches_the_closed_form_and_finite_differences() {
    let dev = Device::Cpu;
    let (out, rest) = (3usize, 4usize);
    let w0: Vec<f64> = truncnorm(1, out * rest).iter().map(|&v| v as f64).collect();
    let c: Vec<f64> = truncnorm(2, out * rest).iter().map(|&v| v as f64).collect();
    let mut b = Builder::init(3, &dev);
    let mut bufs = Vec::new();
    let sn = b
        .scope("w", |s| {
            SnWeight::new(
                s,
                &[out, rest],
                intervene::train::nets::init_ext::WInit::Plain(intervene::train::nets::layers::Init::Const(0.0)),
                1e-12,
                &mut bufs,
            )
        })
        .unwrap();
    let var: &Var = &b.vars()[0].1;
    var.set(&Tensor::from_vec(w0.iter().map(|&v| v as f32).collect::<Vec<_>>(), (out, rest), &dev).unwrap()).unwrap();
    // Training mode: one power iteration, then σ with the new u, v.
    let wn = sn.weight(true).unwrap();
    let ct = Tensor::from_vec(c.iter().map(|&v| v as f32).collect::<Vec<_>>(), (out, rest), &dev).unwrap();
    let f = (wn * &ct).unwrap().sum_all().unwrap();
    let grad = vec(f.backward().unwrap().get(var.as_tensor()).unwrap());
    let u: Vec<f64> = sn.buf.u.lock().unwrap().iter().map(|&v| v as f64).collect();
    let v: Vec<f64> = sn.buf.v.lock().unwrap().iter().map(|&v| v as f64).collect();
    // The power iteration reproduced independently.
    let (mut u2, mut v2) = (vec![0f32; out], vec![0f32; rest]);
    {
        let mut b2 = Builder::init(3, &dev);
        let mut bufs2 = Vec::new();
        let s2 = b2
            .scope("w", |s| {
                SnWeight::new(
                    s,
                    &[out, rest],
                    intervene::train::nets::init_ext::WInit::Plain(intervene::train::nets::layers::Init::Const(0.0)),
                    1e-12,
                    &mut bufs2,
                )
            })
            .unwrap();
        u2.copy_from_slice(&s2.buf.u.lock().unwrap());
        v2.copy_from_slice(&s2.buf.v.lock().unwrap());
        let w32: Vec<f32> = w0.iter().map(|&x| x as f32).collect();
        power_iteration(&w32, out, &mut u2, &mut v2, 1e-12);
    }
    for (a, b) in u.iter().zip(&u2) {
        assert!((a - *b as f64).abs() < 1e-6);
    }
    let sigma =
        |w: &[f64]| -> f64 { (0..out).map(|i| u[i] * (0..rest).map(|j| w[i * rest + j] * v[j]).sum::<f64>()).sum() };
    let f64_of = |w: &[f64]| -> f64 {
        let s = sigma(w);
        w.iter().zip(&c).map(|(a, b)| a * b / s).sum()
    };
    let s = sigma(&w0);
    let cw: f64 = c.iter().zip(&w0).map(|(a, b)| a * b).sum();
    #[allow(clippy::needless_range_loop)] // i, j index the matrix and both singular vectors
    for i in 0..out {
        for j in 0..rest {
            let k = i * rest + j;
            let closed = c[k] / s - cw / (s * s) * u[i] * v[j];
            let mut wp = w0.clone();
            wp[k] += 1e-6;
            let mut wm = w0.clone();
            wm[k] -= 1e-6;
            let fd = (f64_of(&wp) - f64_of(&wm)) / 2e-6;
            assert!((closed - fd).abs() < 1e-6, "closed form vs FD at {k}: {closed} {fd}");
            assert!(
                (grad[k] as f64 - closed).abs() < 1e-4 * (1.0 + closed.abs()),
                "autograd vs closed form at {k}: {} {closed}",
                grad[k]
            );
        }
    }
}

/// Conditional BN in training mode against an f64 reference (batch mean, biased variance,
/// `x̂·(1 + cond·Wsᵀ/σs) + cond·Woᵀ/σo`), its gradients by central differences.
#[test]
fn conditional_batch_norm_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let (bsz, c, hw, cd) = (3usize, 2usize, 4usize, 3usize);
    let eps = 1e-4;
    let mut b = Builder::init(9, &dev);
    let mut bufs = Vec::new();
    let bn = CondBn::new(&mut b, "bn", c, cd, eps, &mut bufs).unwrap();
    let ws = vec(b.vars()[0].1.as_tensor());
    let wo = vec(b.vars()[1].1.as_tensor());
    let us: Vec<f64> = bn.scale.w.buf.u.lock().unwrap().iter().map(|&v| v as f64).collect();
    let vs: Vec<f64> = bn.scale.w.buf.v.lock().unwrap().iter().map(|&v| v as f64).collect();
    let uo: Vec<f64> = bn.offset.w.buf.u.lock().unwrap().iter().map(|&v| v as f64).collect();
    let vo: Vec<f64> = bn.offset.w.buf.v.lock().unwrap().iter().map(|&v| v as f64).collect();
    let x0: Vec<f64> = truncnorm(4, bsz * c * hw).iter().map(|&v| v as f64 * 2.0 + 0.3).collect();
    let cond: Vec<f64> = truncnorm(5, bsz * cd).iter().map(|&v| v as f64).collect();
    let r: Vec<f64> = truncnorm(6, bsz * c * hw).iter().map(|&v| v as f64).collect();
    let reference = |x: &[f64], ws: &[f64], wo: &[f64]| -> f64 {
        let sig = |w: &[f64], u: &[f64], v: &[f64]| -> f64 {
            (0..c).map(|i| u[i] * (0..cd).map(|j| w[i * cd + j] * v[j]).sum::<f64>()).sum()
        };
        let (ss, so) = (sig(ws, &us, &vs), sig(wo, &uo, &vo));
        let mut loss = 0.0;
        for ch in 0..c {
            let vals: Vec<f64> =
                (0..bsz).flat_map(|n| (0..hw).map(move |p| (n, p))).map(|(n, p)| x[(n * c + ch) * hw + p]).collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / vals.len() as f64;
            for n in 0..bsz {
                let cr = &cond[n * cd..(n + 1) * cd];
                let gain = 1.0 + (0..cd).map(|j| ws[ch * cd + j] * cr[j]).sum::<f64>() / ss;
                let off = (0..cd).map(|j| wo[ch * cd + j] * cr[j]).sum::<f64>() / so;
                for p in 0..hw {
                    let i = (n * c + ch) * hw + p;
                    let y = (x[i] - m) / (var + eps).sqrt() * gain + off;
                    loss += r[i] * y.max(0.0);
                }
            }
        }
        loss
    };
    let xv = Var::from_tensor(
        &Tensor::from_vec(x0.iter().map(|&v| v as f32).collect::<Vec<_>>(), (bsz, c, 2, 2), &dev).unwrap(),
    )
    .unwrap();
    let ct = Tensor::from_vec(cond.iter().map(|&v| v as f32).collect::<Vec<_>>(), (bsz, cd), &dev).unwrap();
    let rt = Tensor::from_vec(r.iter().map(|&v| v as f32).collect::<Vec<_>>(), (bsz, c, 2, 2), &dev).unwrap();
    let y = bn.forward(xv.as_tensor(), &ct, true, false, &mut None).unwrap();
    let loss = (y * rt).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let gx = vec(grads.get(xv.as_tensor()).unwrap());
    let gws = vec(grads.get(b.vars()[0].1.as_tensor()).unwrap());
    let wsd: Vec<f64> = ws.iter().map(|&v| v as f64).collect();
    let wod: Vec<f64> = wo.iter().map(|&v| v as f64).collect();
    let h = 1e-6;
    for i in 0..x0.len() {
        let (mut p, mut m) = (x0.clone(), x0.clone());
        p[i] += h;
        m[i] -= h;
        let fd = (reference(&p, &wsd, &wod) - reference(&m, &wsd, &wod)) / (2.0 * h);
        assert!((gx[i] as f64 - fd).abs() < 2e-3 * (1.0 + fd.abs()), "dx[{i}]: {} vs {fd}", gx[i]);
    }
    for i in 0..wsd.len() {
        let (mut p, mut m) = (wsd.clone(), wsd.clone());
        p[i] += h;
        m[i] -= h;
        let fd = (reference(&x0, &p, &wod) - reference(&x0, &m, &wod)) / (2.0 * h);
        assert!((gws[i] as f64 - fd).abs() < 2e-3 * (1.0 + fd.abs()), "dWs[{i}]: {} vs {fd}", gws[i]);
    }
}

fn tiny(steps: u64) -> BigGanSettings {
    let mut s = BigGanSettings::recipe(DataSource::Mnist);
    s.ch = 4;
    s.d_ch = 4;
    s.z_dim = 8;
    s.batch = 8;
    s.steps = steps;
    s.seed = 3;
    s.ema_start = 2;
    s.sample_every = 0;
    s.checkpoint_every = 2;
    s.standing_batches = 1;
    s.standing_batch = 8;
    s.pca_samples = 64;
    s.pca_components = 4;
    s.threads = 1;
    s
}

fn losses(dir: &Path) -> Vec<(f64, f64)> {
    intervene::train::output::read_metrics(dir)
        .unwrap()
        .iter()
        .map(|v| (v["loss_d"].as_f64().unwrap(), v["loss_g"].as_f64().unwrap()))
        .collect()
}

#[test]
fn a_short_run_trains_resumes_bit_for_bit_and_exports_a_loadable_model() {
    let straight = tempdir("straight");
    let split = tempdir("split");
    let c = Control::new();
    let s = tiny(12);
    let r = biggan::train_biggan(&s, &straight, false, Hooks::default(), &c).unwrap();
    assert!(r.finished);
    let l = losses(&straight);
    assert_eq!(l.len(), 12);
    assert!(l.iter().all(|(d, g)| d.is_finite() && g.is_finite()));
    // The discriminator learns: its hinge loss falls from ≈2 at the start.
    let first: f64 = l[..3].iter().map(|p| p.0).sum::<f64>() / 3.0;
    let last: f64 = l[9..].iter().map(|p| p.0).sum::<f64>() / 3.0;
    assert!(last < first, "loss_d did not decrease: {first} → {last}");
    assert_eq!(c.last_metric("loss_d"), Some(l[11].0));
    // Hub files that open in the runtime, sheets, components.
    for f in [
        "config.json",
        "model.safetensors",
        "components.npz",
        "samples.png",
        "samples_t0.4.png",
        "checkpoint.safetensors",
        "train.json",
    ] {
        assert!(straight.join(f).is_file(), "{f} missing");
    }
    let m = intervene::models::biggan::load::load(&straight.display().to_string(), &Device::Cpu).unwrap();
    assert_eq!((m.cfg.output_dim, m.cfg.num_classes, m.cfg.n_stats), (32, 10, 51));
    // Same run in two pieces: stop after 5 steps, then resume (with more steps allowed).
    let mut s5 = tiny(12);
    s5.checkpoint_every = 100;
    let r = biggan::train_biggan(
        &s5,
        &split,
        false,
        Hooks { stop_after_steps: Some(5), skip_finalize: true },
        &Control::new(),
    )
    .unwrap();
    assert!(!r.finished && r.steps == 5);
    // Other settings are refused, naming the setting.
    let mut other = tiny(12);
    other.lr_g = 2e-4;
    let e = biggan::train_biggan(&other, &split, true, Hooks::default(), &Control::new()).unwrap_err().to_string();
    assert!(e.contains("lr_g") && e.contains("other settings"), "{e}");
    let e = biggan::train_biggan(&tiny(12), &split, false, Hooks::default(), &Control::new()).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    biggan::train_biggan(&tiny(12), &split, true, Hooks::default(), &Control::new()).unwrap();
    let a = std::fs::read(straight.join("model.safetensors")).unwrap();
    let b = std::fs::read(split.join("model.safetensors")).unwrap();
    assert!(a == b, "a resumed run differs from the straight one");
    assert_eq!(losses(&straight), losses(&split));
    // A finished run resumed with more steps continues.
    let r = biggan::train_biggan(
        &tiny(14),
        &split,
        true,
        Hooks { stop_after_steps: None, skip_finalize: true },
        &Control::new(),
    )
    .unwrap();
    assert_eq!(r.steps, 14);
}

#[test]
fn bad_data_is_refused_clearly() {
    let e = DataSource::parse("/no/such/folder").unwrap_err().to_string();
    assert!(e.contains("not a data set name"), "{e}");
    let one = tempdir("oneclass");
    std::fs::create_dir_all(one.join("a")).unwrap();
    let img = image::RgbImage::new(8, 8);
    img.save(one.join("a/x.png")).unwrap();
    let e = intervene::train::gan_data::GanData::load(&DataSource::Folder(one.clone()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 2"), "{e}");
    let _ = HashMap::<u8, u8>::new();
}
