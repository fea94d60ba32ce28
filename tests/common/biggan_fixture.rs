//! The tiny random-weight BigGAN-deep fixture (tests/fixtures/biggan-deep-tiny-128) and the
//! tensor comparisons its parity tests share: tests/biggan_parity.rs (fused CPU kernels, three
//! weight formats) and tests/biggan_portable_parity.rs (the portable path CUDA runs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use intervene::models::biggan::{BigGan, BigGanConfig};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/biggan-deep-tiny-128").join(name)
}

/// A golden file of the fixture, on the CPU.
pub fn golden(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name), &Device::Cpu).expect("golden file")
}

/// The fixture's model from one of its weight files, on `device`.
pub fn model(weights: &str, device: &Device) -> BigGan {
    let cfg = BigGanConfig::from_file(&fixture("config.json")).expect("config");
    let t = intervene::checkpoint::load(&fixture(weights)).expect("weights");
    BigGan::new(VarBuilder::from_tensors(t, DType::F32, device), &cfg).expect("model")
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

pub fn max_abs(a: &Tensor) -> f32 {
    a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

pub fn f64_scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().get(0).unwrap().to_scalar::<f64>().unwrap()
}
