//! The training kernels (`intervene::train::ops`) against PyTorch float64 autograd goldens
//! (`tests/fixtures/train-goldens/ops.safetensors`, made by `tools/reference/train_goldens.py`):
//! forward values and every gradient of dense / strided / 1×1 / depthwise convolutions (the
//! per-sample and grouped-sample GEMM paths, the gather-table path of small maps, the direct
//! path of layers with at most 4 outputs, and the adjoint-convolution input gradient; and each fused with a preceding ×2 upsampling), max
//! pooling with padding and ties, average pooling whose windows do not tile the input,
//! training-mode batch norm with no activation, a fused ReLU and a fused LeakyReLU, and the
//! generators' LeakyReLU, nearest ×2 upsampling and instance norm. Also: finite differences of
//! the convolution, no kernel gradient for a frozen weight, and the same numbers with one and
//! two threads.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use intervene::train::ops::{self, ConvCfg, Pool};

fn goldens() -> HashMap<String, Tensor> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/train-goldens/ops.safetensors");
    candle_core::safetensors::load(p, &Device::Cpu).expect("ops goldens")
}

fn close(name: &str, got: &Tensor, want: &Tensor, tol: f32) {
    assert_eq!(got.dims(), want.dims(), "{name}: shape");
    let g = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let w = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    let worst = g.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= tol * scale, "{name}: max |Δ| {worst} > {tol}·{scale}");
}

fn conv_names(g: &HashMap<String, Tensor>) -> Vec<String> {
    let mut v: Vec<String> = g
        .keys()
        .filter_map(|k| k.strip_suffix(".cfg"))
        .filter(|n| g.contains_key(&format!("{n}.w")))
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn run_conv_cases(g: &HashMap<String, Tensor>) {
    for n in conv_names(g) {
        let t = |s: &str| g[&format!("{n}.{s}")].clone();
        let cfg = t("cfg").to_vec1::<i64>().unwrap();
        // A 4th entry: nearest ×2 upsampling first, fused (`conv2d_up2`).
        let up = cfg.get(3) == Some(&1);
        let cfg = ConvCfg { stride: cfg[0] as usize, padding: cfg[1] as usize, depthwise: cfg[2] != 0 };
        let x = Var::from_tensor(&t("x")).unwrap();
        let w = Var::from_tensor(&t("w")).unwrap();
        let b = g.get(&format!("{n}.b")).map(|b| Var::from_tensor(b).unwrap());
        let conv = if up { ops::conv2d_up2 } else { ops::conv2d };
        let y = conv(x.as_tensor(), w.as_tensor(), b.as_ref().map(|b| b.as_tensor()), cfg).unwrap();
        close(&format!("{n} y"), &y, &t("y"), 2e-6);
        let loss = (y * t("dy")).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        close(&format!("{n} dx"), grads.get(x.as_tensor()).unwrap(), &t("dx"), 2e-6);
        close(&format!("{n} dw"), grads.get(w.as_tensor()).unwrap(), &t("dw"), 2e-6);
        if let Some(b) = &b {
            close(&format!("{n} db"), grads.get(b.as_tensor()).unwrap(), &t("db"), 2e-6);
        }
    }
}

#[test]
fn convolutions_match_pytorch() {
    let g = goldens();
    assert!(conv_names(&g).len() >= 10);
    assert!(conv_names(&g).iter().filter(|n| n.starts_with("up")).count() == 3, "the fused upsampling cases");
    run_conv_cases(&g);
}

#[test]
fn convolutions_match_pytorch_with_two_threads() {
    let g = goldens();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| run_conv_cases(&g));
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let g = goldens();
    let run = || {
        let mut out = Vec::new();
        for n in ["c3rem", "c3big", "c1big", "dw3s2"] {
            let t = |s: &str| g[&format!("{n}.{s}")].clone();
            let cfg = t("cfg").to_vec1::<i64>().unwrap();
            let cfg = ConvCfg { stride: cfg[0] as usize, padding: cfg[1] as usize, depthwise: cfg[2] != 0 };
            let x = Var::from_tensor(&t("x")).unwrap();
            let w = Var::from_tensor(&t("w")).unwrap();
            let y = ops::conv2d(x.as_tensor(), w.as_tensor(), None, cfg).unwrap();
            let grads = (&y * t("dy")).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&y, grads.get(x.as_tensor()).unwrap(), grads.get(w.as_tensor()).unwrap()] {
                out.push(v.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            }
        }
        out
    };
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(run);
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(run);
    assert!(one == two, "bit-identical with 1 and 2 threads");
}

#[test]
fn frozen_weight_and_plain_input_get_no_gradient() {
    let g = goldens();
    let x = Var::from_tensor(&g["c3s1.x"]).unwrap();
    let w = g["c3s1.w"].clone(); // a plain tensor: frozen
    let y = ops::conv2d(x.as_tensor(), &w, None, ConvCfg::new(1, 1)).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&w).is_none(), "a frozen weight must not get a gradient");
    assert!(grads.get(x.as_tensor()).is_some());
    // And the input batch of a first layer costs no input gradient.
    let wv = Var::from_tensor(&g["c3s1.w"]).unwrap();
    let xin = g["c3s1.x"].clone();
    let y = ops::conv2d(&xin, wv.as_tensor(), None, ConvCfg::new(1, 1)).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&xin).is_none());
    assert!(grads.get(wv.as_tensor()).is_some());
}

#[test]
fn convolution_gradient_matches_finite_differences() {
    // f64 finite differences of Σ y·r on a strided, padded case, probing 12 entries of x and w.
    let g = goldens();
    let (x0, w0, r) = (g["c3s2.x"].clone(), g["c3s2.w"].clone(), g["c3s2.dy"].clone());
    let cfg = ConvCfg::new(2, 1);
    let f = |x: &Tensor, w: &Tensor| -> f64 {
        let y = ops::conv2d(x, w, None, cfg).unwrap();
        let a = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = r.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        a.iter().zip(&b).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let xv = Var::from_tensor(&x0).unwrap();
    let wv = Var::from_tensor(&w0).unwrap();
    let y = ops::conv2d(xv.as_tensor(), wv.as_tensor(), None, cfg).unwrap();
    let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (t, v) in [(&x0, &xv), (&w0, &wv)] {
        let an = grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let base = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in (0..base.len()).step_by(base.len() / 12 + 1) {
            let h = 1e-2f32;
            let mut p = base.clone();
            p[i] += h;
            let mut m = base.clone();
            m[i] -= h;
            let mk = |v: Vec<f32>| Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap();
            let (fp, fm) =
                if std::ptr::eq(t, &x0) { (f(&mk(p), &w0), f(&mk(m), &w0)) } else { (f(&x0, &mk(p)), f(&x0, &mk(m))) };
            let fd = (fp - fm) / (2.0 * h as f64);
            assert!((fd - an[i] as f64).abs() < 2e-3 * (1.0 + fd.abs()), "entry {i}: fd {fd} vs {}", an[i]);
        }
    }
}

#[test]
fn pooling_matches_pytorch() {
    let g = goldens();
    for n in ["mp3s2p1", "mp3s2p1relu", "mp2s2", "ap7", "ap2s1"] {
        let t = |s: &str| g[&format!("{n}.{s}")].clone();
        let c = t("cfg").to_vec1::<i64>().unwrap();
        let p = Pool { k: c[0] as usize, stride: c[1] as usize, padding: c[2] as usize };
        let x = Var::from_tensor(&t("x")).unwrap();
        let y = if n.starts_with("mp") { ops::max_pool2d(x.as_tensor(), p) } else { ops::avg_pool2d(x.as_tensor(), p) }
            .unwrap();
        close(&format!("{n} y"), &y, &t("y"), 1e-6);
        let grads = (y * t("dy")).unwrap().sum_all().unwrap().backward().unwrap();
        close(&format!("{n} dx"), grads.get(x.as_tensor()).unwrap(), &t("dx"), 1e-6);
    }
}

#[test]
fn batch_norm_matches_pytorch() {
    let g = goldens();
    use ops::BnAct;
    for (n, act) in [("bn", BnAct::Identity), ("bnrelu", BnAct::Relu), ("bnlrelu", BnAct::Leaky(0.2))] {
        let t = |s: &str| g[&format!("{n}.{s}")].clone();
        let (x, ga, be) = (
            Var::from_tensor(&t("x")).unwrap(),
            Var::from_tensor(&t("g")).unwrap(),
            Var::from_tensor(&t("b")).unwrap(),
        );
        let (y, stats) = ops::batch_norm_train(x.as_tensor(), ga.as_tensor(), be.as_tensor(), 1e-5, act).unwrap();
        assert_eq!(stats.n, 4 * 25);
        close(&format!("{n} y"), &y, &t("y"), 2e-6);
        let grads = (y * t("dy")).unwrap().sum_all().unwrap().backward().unwrap();
        close(&format!("{n} dx"), grads.get(x.as_tensor()).unwrap(), &t("dx"), 5e-6);
        close(&format!("{n} dgamma"), grads.get(ga.as_tensor()).unwrap(), &t("dg"), 5e-6);
        close(&format!("{n} dbeta"), grads.get(be.as_tensor()).unwrap(), &t("db"), 5e-6);
    }
}

#[test]
fn generator_pointwise_ops_match_pytorch() {
    use intervene::train::ops::pointwise;
    let g = goldens();
    type Op = fn(&Tensor) -> candle_core::Result<Tensor>;
    let cases: [(&str, Op); 3] = [
        ("lrelu", |x| pointwise::leaky_relu(x, 0.2)),
        ("up2", pointwise::upsample2),
        ("inorm", |x| pointwise::instance_norm(x, 1e-5)),
    ];
    for (n, f) in cases {
        let t = |s: &str| g[&format!("{n}.{s}")].clone();
        let x = Var::from_tensor(&t("x")).unwrap();
        let y = f(x.as_tensor()).unwrap();
        close(&format!("{n} y"), &y, &t("y"), 2e-6);
        let grads = (y * t("dy")).unwrap().sum_all().unwrap().backward().unwrap();
        close(&format!("{n} dx"), grads.get(x.as_tensor()).unwrap(), &t("dx"), 5e-6);
    }
}

#[test]
fn fused_add_relu_matches_the_sum_then_relu() {
    // Against the two-node form (candle's add, then the golden-checked ReLU), including exact
    // zeros of the sum, where PyTorch's rule gives no gradient.
    let dev = Device::Cpu;
    let a0 = Tensor::randn(0f32, 1.0, (2, 3, 5, 4), &dev).unwrap();
    let mut b0 = Tensor::randn(0f32, 1.0, (2, 3, 5, 4), &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let av = a0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for i in (0..b0.len()).step_by(7) {
        b0[i] = -av[i];
    }
    let b0 = Tensor::from_vec(b0, (2, 3, 5, 4), &dev).unwrap();
    let r = Tensor::randn(0f32, 1.0, (2, 3, 5, 4), &dev).unwrap();
    let run = |fused: bool| {
        let (a, b) = (Var::from_tensor(&a0).unwrap(), Var::from_tensor(&b0).unwrap());
        let y = if fused {
            ops::add_relu(a.as_tensor(), b.as_tensor()).unwrap()
        } else {
            ops::relu(&(a.as_tensor() + b.as_tensor()).unwrap()).unwrap()
        };
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        [y, g.get(a.as_tensor()).unwrap().clone(), g.get(b.as_tensor()).unwrap().clone()]
            .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
    };
    let (fused, plain) = (run(true), run(false));
    assert_eq!(fused, plain);
    assert!(fused[1].iter().filter(|&&g| g == 0.0).count() >= 20, "the zeros of the sum pass no gradient");
}

#[test]
fn fused_conv_batch_norm_equals_the_two_ops() {
    // Against the two golden-checked ops, bitwise: forward, every gradient and the batch
    // statistics, for a same-size 3×3, a halving stride-2 7×7, a 1×1 and a small map, with
    // each fused activation, and with a frozen weight and an input that needs no gradient.
    use intervene::train::ops::BnAct;
    let dev = Device::Cpu;
    let cases = [
        ((2, 5, 9, 9), (6, 5, 3, 3), ConvCfg::new(1, 1), BnAct::Relu, true, true),
        ((2, 3, 16, 16), (4, 3, 7, 7), ConvCfg::new(2, 3), BnAct::Identity, false, true),
        ((3, 4, 6, 6), (8, 4, 1, 1), ConvCfg::new(1, 0), BnAct::Leaky(0.2), true, false),
        ((4, 6, 2, 2), (5, 6, 3, 3), ConvCfg::new(1, 1), BnAct::Relu, true, true),
    ];
    for (xs, ws, cfg, act, x_grad, w_grad) in cases {
        let x0 = Tensor::randn(0f32, 1.0, xs, &dev).unwrap();
        let w0 = Tensor::randn(0f32, 0.3, ws, &dev).unwrap();
        let g0 = Tensor::randn(1f32, 0.2, ws.0, &dev).unwrap();
        let b0 = Tensor::randn(0f32, 0.2, ws.0, &dev).unwrap();
        let run = |fused: bool| {
            let x = Var::from_tensor(&x0).unwrap();
            let w = Var::from_tensor(&w0).unwrap();
            let (gamma, beta) = (Var::from_tensor(&g0).unwrap(), Var::from_tensor(&b0).unwrap());
            let xt = if x_grad { x.as_tensor().clone() } else { x.as_tensor().detach() };
            let wt = if w_grad { w.as_tensor().clone() } else { w.as_tensor().detach() };
            let (y, s) = if fused {
                ops::conv_bn_train(&xt, &wt, gamma.as_tensor(), beta.as_tensor(), cfg, 1e-5, act).unwrap()
            } else {
                let z = ops::conv2d(&xt, &wt, None, cfg).unwrap();
                ops::batch_norm_train(&z, gamma.as_tensor(), beta.as_tensor(), 1e-5, act).unwrap()
            };
            // A fixed upstream gradient, the same for both runs.
            let r =
                Tensor::arange(0f32, y.elem_count() as f32, &dev).unwrap().reshape(y.dims()).unwrap().sin().unwrap();
            let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
            let get = |t: &Tensor| grads.get(t).map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            assert_eq!(get(x.as_tensor()).is_some(), x_grad, "input gradient only when needed");
            assert_eq!(get(w.as_tensor()).is_some(), w_grad, "kernel gradient only when needed");
            let vals = vec![
                Some(y.flatten_all().unwrap().to_vec1::<f32>().unwrap()),
                get(x.as_tensor()),
                get(w.as_tensor()),
                get(gamma.as_tensor()),
                get(beta.as_tensor()),
                Some(s.mean),
                Some(s.var),
            ];
            (vals, s.n)
        };
        let (fused, plain) = (run(true), run(false));
        assert_eq!(fused, plain, "x {xs:?} w {ws:?} {act:?}");
        assert!(fused.0[3].as_ref().is_some_and(|g| g.iter().any(|&v| v != 0.0)), "γ gets a gradient");
    }
}

#[test]
fn relu_backward_is_zero_at_zero() {
    let x = Var::from_tensor(&Tensor::new(&[-1f32, 0.0, 2.0], &Device::Cpu).unwrap()).unwrap();
    let y = ops::relu(x.as_tensor()).unwrap();
    assert_eq!(y.to_vec1::<f32>().unwrap(), vec![0.0, 0.0, 2.0]);
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap(), vec![0.0, 0.0, 1.0]);
}
