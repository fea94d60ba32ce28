//! U²-Net parity with the reference `U2NET(3, 1)` of CGN's `imagenet/models/u2net.py` (eval,
//! f32, CPU) on formula weights (case 1 of tests/fixtures/formula-weights/README.md): the fused
//! map, the six side maps and the fused logits, with `align_corners=True` (CGN) and, against the
//! diagnostic tensor, `align_corners=False` (the original repository).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use common::formula::{self, read_section, FormulaDict, SALT_SHARED};
use intervene::models::u2net::{self, U2Net, U2NetConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formula-weights").join(name)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn build(cfg: &U2NetConfig) -> U2Net {
    let t0 = Instant::now();
    let dict = FormulaDict::from_listed(&read_section(&fixture("KEYS.txt"), "u2net").unwrap()).unwrap();
    let weights = dict.generate(SALT_SHARED, |_| true).unwrap();
    let gen_s = t0.elapsed().as_secs_f64();
    let (model, report) = u2net::build_tracked(weights, cfg, &Device::Cpu).unwrap();
    assert!(report.is_clean(), "every U²-Net key is used and none is missing: {report}");
    eprintln!("u2net: weights generated in {gen_s:.2} s, model built in {:.2} s", t0.elapsed().as_secs_f64() - gen_s);
    model
}

#[test]
fn u2net_matches_reference_outputs() {
    let g: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture("u2net.safetensors"), &Device::Cpu).unwrap();
    // The input is a formula tensor too: check we regenerate it exactly.
    let input = formula::input("input", &[1, 3, 256, 256], SALT_SHARED).unwrap();
    assert_eq!(max_abs_diff(&input, &g["input"]), 0.0, "regenerated input differs from the stored one");

    let model = build(&U2NetConfig::cgn());
    let t0 = Instant::now();
    let out = model.forward_sides(&input).unwrap();
    eprintln!("u2net: forward in {:.2} s", t0.elapsed().as_secs_f64());
    let mut report = Vec::new();
    let d = max_abs_diff(&out.d0_logits, &g["d0_logits"]);
    report.push(format!("d0_logits {d:.2e}"));
    assert!(d <= 5e-4, "d0_logits differ by {d}");
    let d = max_abs_diff(&out.d0().unwrap(), &g["d0"]);
    report.push(format!("d0 {d:.2e}"));
    assert!(d <= 1e-4, "d0 differs by {d}");
    assert_eq!(max_abs_diff(&model.forward(&input).unwrap(), &out.d0().unwrap()), 0.0, "forward = sigmoid(d0)");
    for i in 1..=6 {
        let d = max_abs_diff(&out.side(i).unwrap(), &g[&format!("d{i}")]);
        report.push(format!("d{i} {d:.2e}"));
        assert!(d <= 1e-4, "d{i} differs by {d}");
    }
    eprintln!("u2net max abs errors: {}", report.join(", "));
}

/// The same weights with the original repository's `align_corners=False` upsampling reproduce
/// the fixture's diagnostic logits, and CGN's setting does not (the difference is the quirk).
#[test]
fn align_corners_flag_selects_the_upsampling() {
    let g: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture("u2net.safetensors"), &Device::Cpu).unwrap();
    let diag = &g["diag_d0_logits_align_corners_false"];
    let model = build(&U2NetConfig::original());
    let logits = model.forward_sides(&g["input"]).unwrap().d0_logits;
    let d = max_abs_diff(&logits, diag);
    eprintln!("u2net align_corners=False: d0_logits max abs error {d:.2e}");
    assert!(d <= 5e-4, "align_corners=False logits differ by {d}");
    assert!(max_abs_diff(&g["d0_logits"], diag) > 0.5, "the fixture's two settings differ");
}
