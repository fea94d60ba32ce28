//! `train::mask_check` (behind `intervene quality masks` and `train cgn`'s checkpoint check)
//! against the independent Python check of `tools/results/cgn_mask_check.py`, on the shipped
//! colored CGN, which has both: the four inverted classes its card reports (0, 5, 6, 9) and six
//! upright ones. (`tests/fixtures/cgn-mask-check/` also holds double-colored's figures, all
//! upright; one model keeps this test's cost down.)

use std::path::Path;

use candle_core::Device;
use intervene::train::mask_check::{check, Orientation};

fn reference(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgn-mask-check").join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn compare(name: &str) -> Vec<usize> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name).join("model.safetensors");
    let intervene::models::cgn::CgnModel::Mnist(m) =
        intervene::models::cgn::CgnModel::open(&path, &Device::Cpu).unwrap()
    else {
        panic!("{name} is not an MNIST CGN")
    };
    let report = check(&m, 20, 0).unwrap();
    let want = reference(name);
    assert_eq!(report.classes.len(), 10);
    for (got, want) in report.classes.iter().zip(want["classes"].as_array().unwrap()) {
        for key in ["frame", "inner"] {
            let (g, w) = (if key == "frame" { got.frame } else { got.inner.unwrap() }, want[key].as_f64().unwrap());
            // The reference rounds to 3 decimals.
            assert!((g - w).abs() <= 5.01e-4, "{name} class {}: {key} {g} vs Python's {w}", got.class);
        }
        assert_eq!(
            got.orientation == Orientation::Inverted,
            want["inverted"].as_bool().unwrap(),
            "class {}",
            got.class
        );
    }
    report.with(Orientation::Inverted)
}

#[test]
fn colored_cgn_has_the_four_inverted_classes_python_finds() {
    assert_eq!(compare("cgn-colored"), vec![0, 5, 6, 9]);
}
