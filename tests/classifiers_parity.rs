//! Classifier runtimes against independent references: the CGN ResNet-50 ensemble on formula
//! weights (reference outputs from the authors' `InvariantEnsemble` + torchvision, committed),
//! and — when the shared fixture is present — torchvision ResNet-18 with pytorch-grad-cam 1.5.7.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::formula::{read_section, FormulaDict, SALT_SHARED};
use intervene::checkpoint::TrackedWeights;
use intervene::explain::cam::{compute, Method};
use intervene::models::cgn_ensemble::{CgnEnsemble, EnsembleHead};
use intervene::models::classifier::Staged;
use intervene::models::resnet::{ResNet, ResNetConfig};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let b = b.reshape(a.shape()).unwrap();
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn cgn_ensemble_resnet50_matches_the_reference_on_formula_weights() {
    let g: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture("formula-weights/ensemble_resnet50.safetensors"), &Device::Cpu).unwrap();
    let dict =
        FormulaDict::from_listed(&read_section(&fixture("formula-weights/KEYS.txt"), "ensemble").unwrap()).unwrap();
    let tracked = TrackedWeights::new(dict.generate(SALT_SHARED, |_| true).unwrap());
    let mut m = CgnEnsemble::new(tracked.var_builder(DType::F32, &Device::Cpu), 1000).unwrap();
    let report = tracked.report();
    assert!(report.missing.is_empty() && report.mismatched.is_empty(), "{report}");
    let x = &g["input"];
    let n = m.stage_names().len();
    let feat = m.pooled(&m.run_range(0, n, x).unwrap()).unwrap();
    let scale =
        |t: &Tensor| t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
    let check = |name: &str, got: &Tensor| {
        let want = &g[name];
        let d = max_abs_diff(got, want);
        eprintln!("{name}: max |Δ| {d:.2e} (scale {:.1})", scale(want));
        assert!(d <= 1e-4 * scale(want), "{name}: {d}");
    };
    check("features", &feat);
    let (s, t, b) = m.heads(&feat).unwrap();
    check("shape_preds", &s);
    check("texture_preds", &t);
    check("bg_preds", &b);
    for (head, name) in [(EnsembleHead::Average, "avg_preds"), (EnsembleHead::ShapeTexture, "shape_texture_preds")] {
        m.head = head;
        check(name, &m.head(&feat).unwrap());
    }
    // The paper's reported argmaxes of this fixture.
    let argmax = |t: &Tensor| t.flatten_all().unwrap().argmax(0).unwrap().to_scalar::<u32>().unwrap();
    assert_eq!([argmax(&s), argmax(&t), argmax(&b)], [874, 290, 628]);
}

/// `INTERVENE_RESNET18_FIXTURE=<dir of gradcam-resnet18-random> cargo test --test classifiers_parity -- --ignored`
#[test]
#[ignore = "needs the 47 MB random ResNet-18 fixture (INTERVENE_RESNET18_FIXTURE)"]
fn resnet18_gradcam_matches_pytorch_grad_cam() {
    let dir = PathBuf::from(std::env::var_os("INTERVENE_RESNET18_FIXTURE").expect("set INTERVENE_RESNET18_FIXTURE"));
    let w = intervene::checkpoint::load(&dir.join("resnet18_random_seed1234.pth")).unwrap();
    let tracked = TrackedWeights::new(w);
    let m = ResNet::new(tracked.var_builder(DType::F32, &Device::Cpu), &ResNetConfig::resnet18()).unwrap();
    let report = tracked.report();
    assert!(report.missing.is_empty() && report.mismatched.is_empty(), "{report}");
    let g =
        candle_core::safetensors::load(dir.join("golden_resnet18_random_seed1234.safetensors"), &Device::Cpu).unwrap();
    let x = &g["input"];
    let layer = m.resolve_layer("layer4[-1]").unwrap();
    assert_eq!(m.stage_names()[layer], "layer4.1");
    let ag = m.activation_and_gradient(x, layer, None).unwrap();
    let report = |name: &str, d: f32| eprintln!("{name}: max |Δ| {d:.2e}");
    let d = max_abs_diff(&ag.logits, &g["logits"]);
    report("logits", d);
    assert!(d < 1e-4);
    assert_eq!(ag.class, 868);
    let n = m.stage_names().len();
    let d = max_abs_diff(&m.pooled(&m.run_range(0, n, x).unwrap()).unwrap(), &g["pooled"]);
    report("pooled", d);
    assert!(d < 1e-4);
    for (name, t) in [("act", &ag.act), ("grad", &ag.grad)] {
        let d = max_abs_diff(t, &g[name]);
        report(name, d);
        assert!(d < 1e-4 * if name == "grad" { 1e-2 } else { 10.0 });
    }
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (method, prefix) in [(Method::GradCam, "gradcam"), (Method::GradCamPlusPlus, "gradcampp")] {
        let cam = compute(method, &flat(&ag.act), &flat(&ag.grad), 512, 7, 7, 224, 224);
        let map = Tensor::from_vec(cam.map, (224, 224), &Device::Cpu).unwrap();
        let d = max_abs_diff(&map, &g[&format!("{prefix}.map")]);
        report(&format!("{prefix}.map"), d);
        assert!(d < 1e-4, "{prefix}");
    }
    // Class at rank 500 (negative cam_raw entries: the ReLU matters).
    let ag = m.activation_and_gradient(x, layer, Some(540)).unwrap();
    let cam = compute(Method::GradCam, &flat(&ag.act), &flat(&ag.grad), 512, 7, 7, 224, 224);
    let d = max_abs_diff(&Tensor::from_vec(cam.map, (224, 224), &Device::Cpu).unwrap(), &g["rank500.gradcam.map"]);
    report("rank500.gradcam.map", d);
    assert!(d < 1e-4);
}

#[test]
fn resnet18_gradient_at_layer4_is_the_fc_row_spread_over_the_map() {
    // With random weights in memory: ∂logit_c/∂A at the last block = fc.weight[c] / (h·w)
    // at every position (global average pooling then a linear layer), an exact identity.
    let vb = intervene::bench::RandomWeights::var_builder(3, &Device::Cpu);
    let m = ResNet::new(vb, &ResNetConfig::resnet18()).unwrap();
    let x = intervene::noise::normal_noise(1, 1, 3 * 64 * 64, &Device::Cpu).unwrap().reshape((1, 3, 64, 64)).unwrap();
    let layer = m.default_cam_stage();
    let ag = m.activation_and_gradient(&x, layer, Some(7)).unwrap();
    let (_, c, h, w) = ag.grad.dims4().unwrap();
    assert_eq!((c, h, w), (512, 2, 2));
    // Recover fc.weight[7] from a linear probe of the head: head(e_k) − head(0).
    let zero = m.head(&Tensor::zeros((1, 512), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let eye = Tensor::eye(512, DType::F32, &Device::Cpu).unwrap();
    let row = (m.head(&eye).unwrap() - zero.broadcast_as((512, 1000)).unwrap()).unwrap().narrow(1, 7, 1).unwrap();
    let want = (row.reshape((512, 1, 1)).unwrap() / (h * w) as f64).unwrap().broadcast_as((512, h, w)).unwrap();
    let d = max_abs_diff(&ag.grad.squeeze(0).unwrap(), &want);
    assert!(d < 1e-6, "{d}");
}

#[test]
fn eigencam_projection_matches_numpy_svd_up_to_its_sign() {
    let g = candle_core::safetensors::load(fixture("eigencam/golden.safetensors"), &Device::Cpu).unwrap();
    for name in ["chelsea", "coffee"] {
        let acts = candle_core::safetensors::load(
            fixture(&format!("gradcam-mobilenet-v2/golden_{name}.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        let act = acts["act"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let got = intervene::explain::cam::eigen_projection(&act, 1280, 49);
        let want = g[&format!("{name}.projection")].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = |s: f32| got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - s * b).abs()));
        let (same, flipped) = (err(1.0), err(-1.0));
        eprintln!(
            "{name}: max |Δ| {:.2e} (scale {scale:.2}; numpy's sign {})",
            same.min(flipped),
            if same <= flipped { "agrees" } else { "differs" }
        );
        assert!(same.min(flipped) <= 1e-4 * scale.max(1.0), "{name}");
        // Our orientation: the map follows the channel sum.
        let cam = compute(Method::EigenCam, &act, &act, 1280, 7, 7, 224, 224);
        assert_eq!(cam.cam_raw, got);
        assert!(cam.map.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn the_fast_no_gradient_path_equals_the_differentiable_one() {
    // Random weights: both paths of every stage (strided/7×7 stem, bottlenecks, downsamples).
    let x = intervene::noise::normal_noise(4, 1, 3 * 96 * 96, &Device::Cpu).unwrap().reshape((1, 3, 96, 96)).unwrap();
    for cfg in [ResNetConfig::resnet18(), ResNetConfig::resnet50()] {
        let m = ResNet::new(intervene::bench::RandomWeights::var_builder(9, &Device::Cpu), &cfg).unwrap();
        let mut h = x.clone();
        for i in 0..m.stage_names().len() {
            let slow = m.run_stage(i, &h).unwrap();
            let fast = m.run_stage_nograd(i, &h).unwrap();
            let scale = slow.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
            let d = max_abs_diff(&fast, &slow);
            assert!(
                d <= 1e-5 * scale,
                "{} stage {}: {d} (scale {scale})",
                if cfg.bottleneck { "resnet50" } else { "resnet18" },
                m.stage_names()[i]
            );
            h = slow;
        }
    }
    let m = intervene::models::mobilenet_v2::MobileNetV2::new(
        intervene::bench::RandomWeights::var_builder(2, &Device::Cpu),
        1000,
    )
    .unwrap();
    let mut h = x.clone();
    for i in 0..m.stage_names().len() {
        let slow = m.run_stage(i, &h).unwrap();
        let fast = m.run_stage_nograd(i, &h).unwrap();
        let scale = slow.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
        let d = max_abs_diff(&fast, &slow);
        assert!(d <= 1e-5 * scale, "mobilenet_v2 stage {}: {d} (scale {scale})", m.stage_names()[i]);
        h = slow;
    }
}

#[test]
fn mnist_cnn_matches_the_numpy_reference() {
    let dir = fixture("mnist-cnn-random");
    let opened =
        intervene::models::classifier::open(dir.join("weights.safetensors").to_str().unwrap(), None, &Device::Cpu)
            .unwrap();
    assert_eq!(opened.arch, intervene::models::classifier::Arch::MnistCnn, "detected from the keys");
    let g = candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu).unwrap();
    let m = &opened.model;
    let x = &g["input"];
    let last = m.run_range(0, m.default_cam_stage() + 1, x).unwrap();
    assert_eq!(m.stage_names()[m.default_cam_stage()], "model.8");
    let d = max_abs_diff(&last, &g["last_conv"]);
    assert!(d < 1e-4, "last conv {d}");
    let n = m.stage_names().len();
    let pooled = m.pooled(&m.run_range(0, n, x).unwrap()).unwrap();
    assert!(max_abs_diff(&pooled, &g["pooled"]) < 1e-4);
    let logp = m.head(&pooled).unwrap();
    let d = max_abs_diff(&logp, &g["log_probs"]);
    eprintln!("mnist-cnn: log-probs max |Δ| {d:.2e}");
    assert!(d < 1e-4, "log-probs {d}");
    // The no-gradient path agrees too.
    assert!(max_abs_diff(&m.logits(x).unwrap(), &g["log_probs"]) < 1e-4);
}
