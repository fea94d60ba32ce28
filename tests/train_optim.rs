//! Optimisers and LR schedules against PyTorch (`tests/fixtures/train-goldens/optim.safetensors`,
//! made by `tools/reference/train_goldens.py`): the parameter after each of six steps of SGD
//! (plain; momentum + weight decay), Adam (plain; β1 0.5 + weight decay) and Adadelta (plain;
//! weight decay), all in float32, and the per-epoch learning rates of StepLR and
//! CosineAnnealingLR. Also the `Optimizer` wrapper on candle `Var`s and its state round trip.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use intervene::train::optim::{adadelta_update, adam_update, sgd_update, Optimizer, OptimizerKind};
use intervene::train::schedule::Schedule;

fn goldens() -> HashMap<String, Tensor> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/train-goldens/optim.safetensors");
    candle_core::safetensors::load(p, &Device::Cpu).expect("optim goldens")
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn assert_close(what: &str, step: usize, got: &[f32], want: &[f32]) {
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 2e-6 * (1.0 + b.abs()), "{what} step {step} [{i}]: {a} vs {b}");
    }
}

#[test]
fn update_rules_match_pytorch() {
    let g = goldens();
    let p0 = g["p0"].to_vec1::<f32>().unwrap();
    let grads = rows(&g["grads"]);
    let n = p0.len();
    type Case = (&'static str, Box<dyn Fn(&mut [f32], &[f32], &mut Vec<Vec<f32>>, u64)>);
    let cases: Vec<Case> = vec![
        ("sgd", Box::new(|p, gr, s, _| sgd_update(p, gr, &mut s[0], 0.1, 0.0, 0.0))),
        ("sgd_momentum_wd", Box::new(|p, gr, s, _| sgd_update(p, gr, &mut s[0], 0.1, 0.9, 1e-2))),
        (
            "adam",
            Box::new(move |p, gr, s, t| {
                let (m, v) = s.split_at_mut(1);
                adam_update(p, gr, &mut m[0], &mut v[0], t, 0.01, (0.9, 0.999, 1e-8, 0.0))
            }),
        ),
        (
            "adam_wd",
            Box::new(move |p, gr, s, t| {
                let (m, v) = s.split_at_mut(1);
                adam_update(p, gr, &mut m[0], &mut v[0], t, 0.01, (0.5, 0.999, 1e-8, 1e-2))
            }),
        ),
        (
            "adadelta",
            Box::new(|p, gr, s, _| {
                let (a, b) = s.split_at_mut(1);
                adadelta_update(p, gr, &mut a[0], &mut b[0], 1.0, (0.9, 1e-6, 0.0))
            }),
        ),
        (
            "adadelta_wd",
            Box::new(|p, gr, s, _| {
                let (a, b) = s.split_at_mut(1);
                adadelta_update(p, gr, &mut a[0], &mut b[0], 0.5, (0.9, 1e-6, 1e-2))
            }),
        ),
    ];
    for (name, step) in cases {
        let want = rows(&g[name]);
        let mut p = p0.clone();
        let mut state = if name.starts_with("sgd") { vec![Vec::new()] } else { vec![vec![0f32; n], vec![0f32; n]] };
        for t in 0..6 {
            step(&mut p, &grads[t], &mut state, t as u64 + 1);
            assert_close(name, t, &p, &want[t]);
        }
    }
}

#[test]
fn optimizer_on_vars_matches_the_rule_and_resumes_exactly() {
    let g = goldens();
    let p0 = g["p0"].clone();
    let grads = rows(&g["grads"]);
    let want = rows(&g["adam_wd"]);
    let kind = OptimizerKind::Adam { beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2 };
    let run = |steps: std::ops::Range<usize>, opt: &mut Optimizer, var: &Var| {
        for t in steps {
            // d(p·g)/dp = g: a loss whose gradient is the recorded one.
            let gt = Tensor::new(grads[t].as_slice(), &Device::Cpu).unwrap();
            let loss = (var.as_tensor() * &gt).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap(), 0.01).unwrap();
        }
    };
    let var = Var::from_tensor(&p0).unwrap();
    let mut opt = Optimizer::new(kind, vec![("p".into(), var.clone())]);
    run(0..3, &mut opt, &var);
    assert_close("adam_wd (Var)", 2, &var.as_tensor().to_vec1::<f32>().unwrap(), &want[2]);
    // Save and restore into a fresh optimiser: the remaining steps are bit-identical.
    let saved: std::collections::BTreeMap<String, Vec<f32>> = opt.state_vectors().into_iter().collect();
    let var2 = Var::from_tensor(&var.as_tensor().copy().unwrap()).unwrap();
    let mut opt2 = Optimizer::new(kind, vec![("p".into(), var2.clone())]);
    opt2.load_state(&saved, opt.steps).unwrap();
    run(3..6, &mut opt, &var);
    run(3..6, &mut opt2, &var2);
    assert_eq!(var.as_tensor().to_vec1::<f32>().unwrap(), var2.as_tensor().to_vec1::<f32>().unwrap());
    assert_close("adam_wd (Var)", 5, &var.as_tensor().to_vec1::<f32>().unwrap(), &want[5]);
}

#[test]
fn schedules_match_pytorch() {
    let g = goldens();
    let cases = [
        ("lr_steplr_1_0.7", Schedule::Step { every: 1, gamma: 0.7 }, 1.0),
        ("lr_steplr_3_0.1", Schedule::Step { every: 3, gamma: 0.1 }, 0.1),
        ("lr_cosine_10", Schedule::Cosine { epochs: 10, min_lr: 0.0 }, 0.1),
    ];
    for (name, s, base) in cases {
        let want = g[name].to_vec1::<f64>().unwrap();
        for (e, w) in want.iter().enumerate() {
            let got = s.lr(base, e);
            assert!((got - w).abs() <= 1e-12 * (1.0 + w.abs()), "{name} epoch {e}: {got} vs {w}");
        }
    }
}
