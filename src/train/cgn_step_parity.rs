//! One CGN training step against the authors' own code, number for number: three steps of
//! `train_cgn.py`'s `fit` (wildlife recipe) from weights and inputs that both sides compute from
//! the same integer formula, so the golden holds only the results
//! (`tests/fixtures/cgn-train-step/`, made by its `make_golden.py` with the authors' modules and
//! intervene's VGG-19 substitute). It checks what the per-op goldens cannot: the composition
//! (embedding, instance norms, clamp, texture crops, composite, LSGAN, mask entropy, Gram loss,
//! the conv discriminator's two BN passes, both Adam updates) and its gradients end to end, and
//! the batch norms' running statistics that eval mode (samples, the mask check) uses.

use super::*;

const M32: u64 = 1 << 32;

/// Biases of convolutions that feed a training-mode batch norm: their true gradient is 0 (the
/// norm subtracts the batch mean), so each side's Adam step follows its own rounding noise.
const ZERO_GRADIENT: [&str; 2] = ["f_text1.10.bias", "f_text2.10.bias"];

/// `n` values in [−1, 1): `make_golden.py`'s `formula`.
fn formula(key: &str, n: usize) -> Vec<f32> {
    let kh = (key.bytes().map(u64::from).sum::<u64>() * 97 + key.len() as u64 * 7919) % M32;
    (0..n as u64)
        .map(|i| {
            let mut h = (i * 2_654_435_761 + kh) % M32;
            h ^= h >> 15;
            h = (h * 2_246_822_519) % M32;
            h ^= h >> 13;
            (h as f64 / M32 as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn fill(p: &Params) {
    for (k, v) in &p.vars {
        let t = v.as_tensor();
        let raw = formula(k, t.elem_count());
        let vals: Vec<f32> = if k.ends_with(".bias") {
            raw.iter().map(|x| 0.01f32 * x).collect()
        } else if t.rank() == 1 {
            raw.iter().map(|x| 1.0f32 + 0.03f32 * x).collect()
        } else if k.contains("emb") {
            raw
        } else {
            raw.iter().map(|x| 0.04f32 * x).collect()
        };
        v.set(&Tensor::from_vec(vals, t.shape(), t.device()).unwrap()).unwrap();
    }
}

fn snapshot(p: &Params) -> Vec<(String, Vec<f32>)> {
    p.vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())).collect()
}

#[test]
fn three_steps_match_the_authors_training_loop() {
    let vgg = super::super::nets::vgg_gram::default_weights();
    assert!(vgg.is_file(), "missing {}: run `bash tools/setup.sh data`", vgg.display());
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cgn-train-step/golden.json"))
            .unwrap(),
    )
    .unwrap();
    let dev = Device::Cpu;
    let b = golden["batch"].as_u64().unwrap() as usize;
    let mut gb = Builder::init(1, &dev);
    let g = CgnGenerator::new(&mut gb).unwrap();
    let gp = params(gb);
    let mut db = Builder::init(2, &dev);
    let d = Disc::Conv(CgnDiscConv::new(&mut db, 32).unwrap());
    let dp = params(db);
    fill(&gp);
    fill(&dp);
    let (g0, d0) = (snapshot(&gp), snapshot(&dp));
    let recipe = CgnRecipe::of(Variant::Wildlife);
    let gram = GramLoss::load(&vgg, recipe.gram_weights, &dev).unwrap();
    let adam = OptimizerKind::Adam { beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let (mut opt_g, mut opt_d) = (Optimizer::new(adam, gp.vars.clone()), Optimizer::new(adam, dp.vars.clone()));
    let close = |what: &str, got: f64, want: f64, tol: f64| {
        assert!((got - want).abs() <= tol * want.abs().max(1.0), "{what}: ours {got}, the authors' {want}");
    };
    for s in 1..=3usize {
        let x_gt = Tensor::from_vec(formula(&format!("x{s}"), b * 3 * 32 * 32), (b, 3, 32, 32), &dev).unwrap();
        let y_gt = Tensor::from_vec((0..b).map(|j| ((3 * j + s) % 10) as u32).collect::<Vec<_>>(), b, &dev).unwrap();
        let y_gen =
            Tensor::from_vec((0..b).map(|j| ((7 * j + s + 1) % 10) as u32).collect::<Vec<_>>(), b, &dev).unwrap();
        let u: Vec<f32> = formula(&format!("u{s}"), b * LATENT).iter().map(|x| 1.7f32 * x).collect();
        let u = Tensor::from_vec(u, (b, LATENT), &dev).unwrap();
        // The golden crops the 2×2 tiling at offsets 0..=32; the torus roll takes them mod 32.
        let shifts = [
            (0..b).map(|j| ((5 * j + 3 * s) % 33 % 32, (11 * j + s) % 33 % 32)).collect(),
            (0..b).map(|j| ((2 * j + 7 * s) % 33 % 32, (13 * j + 5 * s) % 33 % 32)).collect(),
        ];
        let i = StepInputs { x_gt: &x_gt, y_gt: &y_gt, y_gen: &y_gen, u: &u, shifts: &shifts, dseed: 0 };
        let cfg = StepConfig { lambda_mask: recipe.lambda_mask, mask_size: None, lr: 2e-4 };
        let l = train_step((&g, &d, &gram), (&mut opt_g, &mut opt_d), cfg, &i).unwrap();
        let want = &golden["steps"][s - 1];
        for (name, t) in
            [("loss_g", &l.loss_g), ("loss_d", &l.loss_d), ("adv", &l.adv), ("binary", &l.binary), ("perc", &l.perc)]
        {
            let got = t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
            close(&format!("step {s} {name}"), got, want[name].as_f64().unwrap(), 1e-4);
        }
    }
    // The running statistics: what eval mode (samples, the mask check) normalises with.
    for (net, p) in [("g", &gp), ("d", &dp)] {
        let want = golden[format!("{net}_stats")].as_object().unwrap();
        let ours: Vec<(String, Tensor)> =
            p.state_dict().unwrap().into_iter().filter(|(k, _)| k.contains("running")).collect();
        assert_eq!(ours.len(), want.len(), "{net}: running statistics");
        for (k, t) in ours {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let sum: f64 = v.iter().map(|&x| x as f64).sum();
            let l2 = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            let w = &want[&k];
            if ZERO_GRADIENT.iter().any(|z| k == z.replace("10.bias", "11.running_mean")) {
                // The mean of the batch norm after such a bias carries that bias's noise.
                continue;
            }
            for (what, got, exp) in [("Σ", sum, w["sum"].as_f64().unwrap()), ("|·|", l2, w["l2"].as_f64().unwrap())] {
                assert!(
                    (got - exp).abs() <= 1e-4 * exp.abs() + 1e-6,
                    "{net} {k} {what}: ours {got:e}, the authors' {exp:e}"
                );
            }
        }
    }
    for (net, p, before) in [("g", &gp, &g0), ("d", &dp, &d0)] {
        let after = snapshot(p);
        let want = golden[net].as_object().unwrap();
        assert_eq!(after.len(), want.len(), "{net}: parameter count");
        for ((k, a), (_, z)) in after.iter().zip(before) {
            let w = &want.get(k).unwrap_or_else(|| panic!("{net}: {k} is not in the authors' model"));
            let delta: Vec<f64> = a.iter().zip(z).map(|(a, z)| *a as f64 - *z as f64).collect();
            let l2 = delta.iter().map(|x| x * x).sum::<f64>().sqrt();
            let sum: f64 = delta.iter().sum();
            let (wl2, wsum) = (w["l2"].as_f64().unwrap(), w["sum"].as_f64().unwrap());
            // Adam moves every weight by about lr a step, whatever its gradient's size, so the
            // change is compared against lr·√n, not against itself.
            let scale = 2e-4 * (delta.len() as f64).sqrt();
            if ZERO_GRADIENT.contains(&k.as_str()) {
                // Float noise, normalised by Adam: only Adam's bound holds (|Δ| ≤ 3·lr·√n).
                assert!(l2 <= 3.0 * scale && wl2 <= 3.0 * scale, "{net} {k}: |Δ| {l2:e} / {wl2:e}");
                continue;
            }
            assert!((l2 - wl2).abs() <= 0.02 * scale, "{net} {k}: |Δ| ours {l2:.6e}, the authors' {wl2:.6e}");
            assert!((sum - wsum).abs() <= 0.05 * scale, "{net} {k}: ΣΔ ours {sum:.6e}, the authors' {wsum:.6e}");
        }
    }
}
