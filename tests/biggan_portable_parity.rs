//! The portable (non-fused) BigGAN-deep path — the candle ops CUDA runs — against
//! pytorch-pretrained-BigGAN's goldens on the CPU, so CI covers the GPU's code path
//! (issue 11 §6). Same fixture and tolerances as tests/biggan_parity.rs
//! (tests/fixtures/biggan-deep-tiny-128/README.md): outputs atol 1e-4, uint8 images within one
//! level on ≤ 0.1 % of the pixels, intermediates atol 1e-4·max(1, max|ref|).
//!
//! The fused CPU kernels are switched off for this whole test binary with
//! `ops::set_backend(Backend::Portable)` before any model runs (each test calls [`portable`]
//! first; the choice is process-wide).
//!
//! `INTERVENE_TEST_DEVICE=cuda` runs the same checks on the GPU (a `--features cuda` build;
//! tools/gpu-check.sh does this on a lent CUDA machine).

mod common;

use candle_core::{Device, Tensor};
use common::biggan_fixture::{f64_scalar, golden, max_abs, max_abs_diff};
use intervene::models::biggan::{BigGan, Resume};
use intervene::ops::{backend, set_backend, Backend};

/// Selects the portable path for this process, before the first forward.
fn portable() {
    set_backend(Backend::Portable);
    assert_eq!(backend(), Backend::Portable);
}

/// The CPU, or the GPU when `INTERVENE_TEST_DEVICE=cuda` (and then it must be one).
fn device() -> Device {
    match std::env::var("INTERVENE_TEST_DEVICE").as_deref() {
        Ok("cuda") => {
            let d = intervene::device::select(false);
            assert!(d.is_cuda(), "INTERVENE_TEST_DEVICE=cuda but no CUDA device (build with --features cuda)");
            d
        }
        _ => Device::Cpu,
    }
}

fn model() -> BigGan {
    common::biggan_fixture::model("model.safetensors", &device())
}

fn cpu(t: &Tensor) -> Tensor {
    t.to_device(&Device::Cpu).unwrap()
}

/// All six golden cases (batches, truncations, soft class vectors) through `forward`.
#[test]
fn portable_outputs_match_reference() {
    portable();
    let m = model();
    let g = golden("golden.safetensors");
    let mut worst = 0f32;
    for case in 0..6 {
        let k = |s: &str| g.get(&format!("case{case}.{s}")).unwrap_or_else(|| panic!("case{case}.{s}")).clone();
        let dev = |t: Tensor| t.to_device(&device()).unwrap();
        let out = m.forward(&dev(k("z")), &dev(k("class_vector")), f64_scalar(&k("truncation"))).expect("forward");
        let out = cpu(&out);
        let d = max_abs_diff(&out, &k("output"));
        worst = worst.max(d);
        assert!(d <= 1e-4, "portable case {case}: output differs by {d}");
        let imgs = intervene::imageio::images_from_tensor(&out).unwrap();
        let want = k("image_u8").flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let got: Vec<u8> = imgs.iter().flat_map(|i| i.pixels.iter().copied()).collect();
        assert_eq!(got.len(), want.len());
        let off: Vec<i32> =
            got.iter().zip(&want).map(|(&a, &b)| (a as i32 - b as i32).abs()).filter(|&d| d > 0).collect();
        assert!(off.iter().all(|&d| d <= 1), "portable case {case}: a pixel differs by more than 1");
        assert!(off.len() as f64 <= 0.001 * want.len() as f64, "portable case {case}: {} pixels differ", off.len());
    }
    eprintln!("portable path: worst output difference over 6 cases {worst:.2e}");
}

/// Every stage's activation of case 0 (gen_z, each GenBlock, attention, output) on the
/// portable path, and a resume from a cached stage.
#[test]
fn portable_intermediates_match_reference() {
    portable();
    let m = model();
    let g = golden("golden_intermediates.safetensors");
    let gold = golden("golden.safetensors");
    let z = gold["case0.z"].narrow(0, 0, 1).unwrap().to_device(&device()).unwrap();
    let cv = gold["case0.class_vector"].narrow(0, 0, 1).unwrap().to_device(&device()).unwrap();
    let check = |name: &str, got: &Tensor, want: &Tensor| {
        let tol = 1e-4 * max_abs(want).max(1.0);
        let d = max_abs_diff(&cpu(got), want);
        assert!(d <= tol, "portable {name}: differs by {d} (tolerance {tol})");
    };
    let conds = m.conditions(&vec![z.clone(); m.cfg.num_latents()], &cv).unwrap();
    let mut acts = Vec::new();
    let out = m.run_stages(&conds, 0.4, Resume { stage: 0, input: None }, Some(&mut acts)).unwrap();
    check("output", &out, &g["act.output"]);
    let c = 16 * m.cfg.channel_width;
    let gz = g["act.gen_z"].reshape((1, 4, 4, c)).unwrap().permute((0, 3, 1, 2)).unwrap().contiguous().unwrap();
    check("gen_z", &acts[0], &gz);
    for (i, act) in acts.iter().enumerate().skip(1) {
        let li = i - 1;
        let key = if li == 8 { "act.layers.8.attn".to_string() } else { format!("act.layers.{li}.block") };
        check(&key, act, &g[&key]);
    }
    let s = 9;
    let resumed = m.run_stages(&conds, 0.4, Resume { stage: s, input: Some(&acts[s - 1]) }, None).unwrap();
    assert_eq!(max_abs_diff(&cpu(&resumed), &cpu(&out)), 0.0, "resume at stage {s}");
}
