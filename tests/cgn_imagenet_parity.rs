//! CGN-ImageNet parity with the reference `CGN` of `imagenet/models/cgn.py` (eval, f32, CPU) on
//! formula weights: case 2 and the extra truncation case of
//! tests/fixtures/formula-weights/README.md (tolerance 1e-4 on every image and mask).
//!
//! Weights are regenerated from FORMULA.md for each test (3 s for the whole CGN).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use common::formula::{self, read_section, FormulaDict, SALT_SHARED};
use intervene::checkpoint::{TensorMap, TrackedWeights};
use intervene::models::biggan::{BigGan, BigGanConfig};
use intervene::models::cgn_imagenet::{self, CgnImageNetConfig, CgnOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formula-weights").join(name)
}

fn golden(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name), &Device::Cpu).expect("golden file")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn cgn_dict() -> FormulaDict {
    FormulaDict::from_listed(&read_section(&fixture("KEYS.txt"), "cgn").unwrap()).unwrap()
}

/// The `[cgn]` tensors under `prefix` (all of them for ""), with their full keys.
fn weights(dict: &FormulaDict, prefix: &str) -> TensorMap {
    let t0 = Instant::now();
    let w = dict.generate(SALT_SHARED, |k| k.starts_with(prefix)).unwrap();
    eprintln!("weights '{prefix}': {} tensors generated in {:.2} s", w.len(), t0.elapsed().as_secs_f64());
    w
}

fn generator(dict: &FormulaDict, name: &str) -> BigGan {
    let tracked = TrackedWeights::new(weights(dict, &format!("{name}.")));
    let g = BigGan::new(tracked.var_builder(DType::F32, &Device::Cpu).pp(name), &BigGanConfig::deep_256()).unwrap();
    let report = tracked.report();
    assert!(report.is_clean(), "{name}: {report}");
    g
}

fn truncation(g: &HashMap<String, Tensor>) -> f64 {
    g["truncation"].flatten_all().unwrap().to_vec1::<f64>().unwrap()[0]
}

fn one_hot(class: usize) -> Tensor {
    let mut v = vec![0f32; 1000];
    v[class] = 1.0;
    Tensor::from_vec(v, (1, 1000), &Device::Cpu).unwrap()
}

/// The inputs of case 2 are formula tensors and one-hot rows of the listed classes.
fn case2_inputs(g: &HashMap<String, Tensor>) -> (Tensor, [Tensor; 3], f64) {
    let t = truncation(g);
    assert_eq!(t, 0.5);
    let u = formula::noise("u", 128, t, SALT_SHARED).unwrap();
    assert_eq!(max_abs_diff(&u, &g["u"]), 0.0, "regenerated u");
    let classes = g["classes"].to_vec1::<i64>().unwrap();
    assert_eq!(classes, [15, 948, 970]);
    let ys = [one_hot(15), one_hot(948), one_hot(970)];
    for (y, name) in ys.iter().zip(["y_shape", "y_texture", "y_background"]) {
        assert_eq!(max_abs_diff(y, &g[name]), 0.0, "{name}");
    }
    (u, ys, t)
}

fn check(report: &mut Vec<String>, name: &str, got: &Tensor, want: &Tensor) {
    let d = max_abs_diff(got, want);
    report.push(format!("{name} {d:.2e}"));
    assert!(d <= 1e-4, "{name} differs by {d}");
}

/// The extra case: `f_shape` at truncation 0.375, where `0.375 / (1/50) = 18.75` mixes BN
/// statistics rows 18 and 19 with the reference's reversed weights (0.75 on row 18).
#[test]
fn truncation_interpolation_matches_reference() {
    let g = golden("extra_fshape_trunc0375.safetensors");
    let t = truncation(&g);
    assert_eq!(t, 0.375);
    let u = formula::noise("u", 128, t, SALT_SHARED).unwrap();
    assert_eq!(max_abs_diff(&u, &g["u"]), 0.0, "regenerated u at 0.375");
    assert_eq!(max_abs_diff(&one_hot(15), &g["y_shape"]), 0.0, "y_shape");
    let f_shape = generator(&cgn_dict(), "f_shape");
    let premask = f_shape.forward(&u, &g["y_shape"], t).unwrap();
    let mut report = Vec::new();
    check(&mut report, "premask", &premask, &g["premask"]);
    eprintln!("CGN extra case (t = 0.375) max abs error: {}", report.join(", "));
}

/// Case 2: all four generators and both U²-Net passes through `CgnImageNet::forward`, with
/// the key report of the whole `cgn.pth` layout (278 M formula values, 1.3 GB peak; about 20 s
/// on 2 cores in the test profile).
#[test]
fn full_cgn_matches_reference() {
    let t0 = Instant::now();
    let g = golden("cgn_imagenet.safetensors");
    let (u, [y_shape, y_texture, y_background], t) = case2_inputs(&g);
    let w = weights(&cgn_dict(), "");
    let cfg = CgnImageNetConfig::default();
    let (model, keys) = cgn_imagenet::build_tracked(w, &cfg, &Device::Cpu).unwrap();
    assert!(keys.is_clean(), "every cgn.pth key is used and none is missing: {keys}");
    let t1 = Instant::now();
    let opts = CgnOptions { ground_truth: true, background_mask: true };
    let out = model.forward(&u, &y_shape, &y_texture, &y_background, t, opts).unwrap();
    eprintln!("CGN forward: {:.2} s", t1.elapsed().as_secs_f64());
    let mut report = Vec::new();
    check(&mut report, "x_gt", out.x_gt.as_ref().unwrap(), &g["x_gt"]);
    check(&mut report, "premask", &out.premask, &g["premask"]);
    check(&mut report, "mask", &out.mask, &g["mask"]);
    check(&mut report, "foreground", &out.foreground, &g["foreground"]);
    check(&mut report, "background", &out.background, &g["background"]);
    check(&mut report, "background_mask", out.background_mask.as_ref().unwrap(), &g["background_mask"]);
    check(&mut report, "x_gen", &out.x_gen, &g["x_gen"]);
    eprintln!("CGN full max abs errors: {}", report.join(", "));
    eprintln!("CGN full test: {:.1} s", t0.elapsed().as_secs_f64());
}
