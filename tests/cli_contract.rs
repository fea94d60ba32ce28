//! The command-line contract scripts rely on: outputs, shapes, exit codes, error messages.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_intervene"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

#[test]
fn generate_writes_raw_npy_and_a_grid_that_match_the_reference() {
    // z and classes from the reference golden case 0 (3 samples, one soft class mix).
    let g = candle_core::safetensors::load(fixture("biggan-deep-tiny-128/golden.safetensors"), &Device::Cpu).unwrap();
    let (z, cv) = (tmp("z.npy"), tmp("cv.npy"));
    g["case0.z"].write_npy(&z).unwrap();
    g["case0.class_vector"].write_npy(&cv).unwrap();
    let (raw, png) = (tmp("out.npy"), tmp("grid.png"));
    let model = fixture("biggan-deep-tiny-128/pytorch_model.bin");
    let out = bin()
        .args(["generate", "--model"])
        .arg(&model)
        .arg("--z")
        .arg(&z)
        .arg("--class-vector")
        .arg(&cv)
        .args(["--truncation", "0.4", "--raw"])
        .arg(&raw)
        .arg("--out")
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = Tensor::read_npy(&raw).unwrap();
    assert_eq!(t.dims(), &[3, 3, 128, 128]);
    let d = (t - &g["case0.output"])
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d <= 1e-4, "CLI output differs from the reference by {d}");
    let img = image::open(&png).unwrap();
    // 2 columns × 2 rows of 128² with 2-px borders.
    assert_eq!((img.width(), img.height()), (2 * 128 + 3 * 2, 2 * 128 + 3 * 2));
}

#[test]
fn generate_resolves_class_names_and_seeds_reproducibly() {
    let (a, b) = (tmp("a.npy"), tmp("b.npy"));
    for p in [&a, &b] {
        let s = bin()
            .args(["generate", "--class", "Siberian husky", "--seed", "7", "--batch", "2", "--raw"])
            .arg(p)
            .status()
            .unwrap();
        assert!(s.success());
    }
    let (ta, tb) = (Tensor::read_npy(&a).unwrap(), Tensor::read_npy(&b).unwrap());
    assert_eq!(
        ta.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        tb.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}

#[test]
fn errors_have_exit_codes_and_say_what_is_wrong() {
    let out = bin().args(["generate", "--model", "/no/such/model", "--out", "/tmp/x.png"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no BigGAN model found")
            && err.contains("/no/such/model")
            && err.contains(".pytorch_pretrained_biggan"),
        "{err}"
    );
    // A bad value is refused while parsing: exit 2, as `--help` says.
    let out = bin().args(["generate", "--truncation", "1.5", "--out", "/tmp/x.png"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(0, 1]"));
    let out = bin().args(["generate", "--class", "no such class", "--out", "/tmp/x.png"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ImageNet class"));
    let out = bin().args(["generate", "--bogus-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bound_from_feature_files() {
    let g = candle_core::safetensors::load(fixture("logpxz/logpxz_golden.safetensors"), &Device::Cpu).unwrap();
    let (q, d) = (tmp("q.npy"), tmp("d.npy"));
    g["q"].write_npy(&q).unwrap();
    g["d"].write_npy(&d).unwrap();
    let out =
        bin().args(["bound", "--json", "--query-features"]).arg(&q).arg("--dict-features").arg(&d).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["estimate"].as_f64().unwrap() - -18.494702154482138).abs() < 1e-5);
    assert_eq!(v["best_index"].as_array().unwrap().len(), 20);
}

#[test]
fn inspect_lists_a_legacy_file() {
    let out = bin().arg("inspect").arg(fixture("biggan-deep-tiny-128/pytorch_model.bin")).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("TorchLegacy") && s.contains("506 tensors") && s.contains("generator.layers.8.gamma"), "{s}");
}
