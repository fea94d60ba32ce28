//! BigGAN-deep parity with huggingface/pytorch-pretrained-BigGAN 0.1.1 (eval mode, f32, CPU) on
//! the tiny random-weight fixture, in all three weight-file formats.
//! Golden tensors and tolerances: tests/fixtures/biggan-deep-tiny-128/README.md.

mod common;

use candle_core::{DType, Device, Tensor};
use common::biggan_fixture::{f64_scalar, fixture, golden, max_abs, max_abs_diff};
use intervene::models::biggan::{layers::spectral_sigma, BigGan, BigGanConfig, Resume, StatsIndex};

fn model(weights: &str) -> BigGan {
    common::biggan_fixture::model(weights, &Device::Cpu)
}

fn check_outputs(weights: &str) {
    let m = model(weights);
    let g = golden("golden.safetensors");
    for case in 0..6 {
        let k = |s: &str| g.get(&format!("case{case}.{s}")).unwrap_or_else(|| panic!("case{case}.{s}")).clone();
        let t = f64_scalar(&k("truncation"));
        let out = m.forward(&k("z"), &k("class_vector"), t).expect("forward");
        let d = max_abs_diff(&out, &k("output"));
        assert!(d <= 1e-4, "{weights} case {case}: output differs by {d}");
        let imgs = intervene::imageio::images_from_tensor(&out).unwrap();
        let want = k("image_u8").flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let got: Vec<u8> = imgs.iter().flat_map(|i| i.pixels.iter().copied()).collect();
        assert_eq!(got.len(), want.len());
        let off: Vec<i32> =
            got.iter().zip(&want).map(|(&a, &b)| (a as i32 - b as i32).abs()).filter(|&d| d > 0).collect();
        assert!(off.iter().all(|&d| d <= 1), "{weights} case {case}: a pixel differs by more than 1");
        assert!(off.len() as f64 <= 0.001 * want.len() as f64, "{weights} case {case}: {} pixels differ", off.len());
    }
}

#[test]
fn outputs_match_reference_safetensors() {
    check_outputs("model.safetensors");
}

#[test]
fn outputs_match_reference_legacy_pickle() {
    check_outputs("pytorch_model.bin");
}

#[test]
fn outputs_match_reference_zip() {
    check_outputs("pytorch_model_zip.bin");
}

/// The f64 truncation lookup, including modf just below 1 and just above 0.
#[test]
fn truncation_stats_index_is_exact() {
    let g = golden("golden.safetensors");
    for case in 0..6 {
        let t = f64_scalar(&g[&format!("case{case}.truncation")]);
        let want_idx = g[&format!("case{case}.bn_index")].flatten_all().unwrap().to_vec1::<i64>().unwrap()[0];
        let want_coef = f64_scalar(&g[&format!("case{case}.bn_coef")]);
        let s = StatsIndex::new(t, 51).unwrap();
        assert_eq!(s.index as i64, want_idx, "case {case}");
        assert_eq!(s.coef, want_coef, "case {case}: coef must match bit for bit");
    }
    // f32 truncation moves to the next row's mix (the documented gotcha).
    let s32 = StatsIndex::new(0.4f32 as f64, 51).unwrap();
    assert_ne!(s32, StatsIndex::new(0.4, 51).unwrap());
    assert!(StatsIndex::new(0.0, 51).is_err());
    assert!(StatsIndex::new(1.0001, 51).is_err());
}

#[test]
fn spectral_norms_match_reference() {
    let g = golden("golden_intermediates.safetensors");
    let w = intervene::checkpoint::load(&fixture("model.safetensors")).unwrap();
    let mut n = 0;
    for (key, sigma) in g.iter().filter(|(k, _)| k.starts_with("sigma.")) {
        let module = &key["sigma.".len()..];
        let get = |s: &str| w.get(&format!("{module}.{s}")).unwrap_or_else(|| panic!("{module}.{s}"));
        let s = spectral_sigma(get("weight_orig"), get("weight_u"), get("weight_v")).unwrap();
        let want = f64_scalar(sigma);
        assert!(((s - want) / want).abs() <= 1e-5, "{module}: σ {s} vs {want}");
        n += 1;
    }
    assert_eq!(n, 126, "every spectral-norm module is checked");
}

/// Per-layer intermediates of case 0, sample 0: gen_z (NHWC quirk), every layer output,
/// final BN, conv_to_rgb (first 3 channels) — atol 1e-4·max(1, max|ref|).
#[test]
fn intermediates_match_reference() {
    let m = model("model.safetensors");
    let g = golden("golden_intermediates.safetensors");
    let gold = golden("golden.safetensors");
    let z = gold["case0.z"].narrow(0, 0, 1).unwrap();
    let cv = gold["case0.class_vector"].narrow(0, 0, 1).unwrap();
    let check = |name: &str, got: &Tensor, want: &Tensor| {
        let tol = 1e-4 * max_abs(want).max(1.0);
        let d = max_abs_diff(got, want);
        assert!(d <= tol, "{name}: differs by {d} (tolerance {tol})");
    };
    let embed = m.embed(&cv).unwrap();
    check("embed", &embed, &g["act.embed"]);
    let conds = m.conditions(&vec![z.clone(); m.cfg.num_latents()], &cv).unwrap();
    check("cond_vector", &conds[0], &g["act.cond_vector"]);
    let mut acts = Vec::new();
    let out = m.run_stages(&conds, 0.4, Resume { stage: 0, input: None }, Some(&mut acts)).unwrap();
    check("output", &out, &g["act.output"]);
    // gen_z: the reference stores the pre-reshape vector; reshape it NHWC → NCHW.
    let c = 16 * m.cfg.channel_width;
    let gz = g["act.gen_z"].reshape((1, 4, 4, c)).unwrap().permute((0, 3, 1, 2)).unwrap().contiguous().unwrap();
    check("gen_z", &acts[0], &gz);
    for (i, act) in acts.iter().enumerate().skip(1) {
        let li = i - 1;
        let key = if li == 8 { "act.layers.8.attn".to_string() } else { format!("act.layers.{li}.block") };
        check(&key, act, &g[&key]);
    }
    // The head: final BN (before ReLU) and the 3 kept channels of conv_to_rgb.
    let stats = StatsIndex::new(0.4, 51).unwrap();
    let last = acts.last().unwrap();
    let a = m.generator.bn.affine(stats, &Tensor::zeros((1, 1), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let bn = last
        .broadcast_mul(&a.scale.reshape((1, (), 1, 1)).unwrap())
        .unwrap()
        .broadcast_add(&a.shift.reshape((1, (), 1, 1)).unwrap())
        .unwrap();
    check("final_bn", &bn, &g["act.final_bn"]);
    let rgb = m.generator.conv_to_rgb.forward(&bn.relu().unwrap()).unwrap();
    check("conv_to_rgb[:3]", &rgb, &g["act.conv_to_rgb"].narrow(1, 0, 3).unwrap());
}

/// Sub-ops of block 0: BN outputs (before ReLU) and conv outputs.
#[test]
fn block0_subops_match_reference() {
    let m = model("model.safetensors");
    let g = golden("golden_intermediates.safetensors");
    let gold = golden("golden.safetensors");
    let z = gold["case0.z"].narrow(0, 0, 1).unwrap();
    let cv = gold["case0.class_vector"].narrow(0, 0, 1).unwrap();
    let conds = m.conditions(&vec![z; m.cfg.num_latents()], &cv).unwrap();
    let stats = StatsIndex::new(0.4, 51).unwrap();
    let x = m.gen_z(&conds[0]).unwrap();
    let intervene::models::biggan::generator::Layer::Block(b) = &m.generator.layers[0] else {
        panic!("layer 0 is a block")
    };
    let a = b.affines(stats, &conds[1]).unwrap();
    let bn = |i: usize, x: &Tensor| {
        let (bb, c) = a[i].scale.dims2().unwrap();
        x.broadcast_mul(&a[i].scale.reshape((bb, c, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&a[i].shift.reshape((bb, c, 1, 1)).unwrap())
            .unwrap()
    };
    let check = |name: &str, got: &Tensor| {
        let want = &g[&format!("act.layers.0.{name}")];
        let tol = 1e-4 * max_abs(want).max(1.0);
        let d = max_abs_diff(got, want);
        assert!(d <= tol, "{name}: differs by {d}");
    };
    let h = bn(0, &x);
    check("bn_0", &h);
    let h = b.conv_0.forward(&h.relu().unwrap()).unwrap();
    check("conv_0", &h);
    let h = bn(1, &h);
    check("bn_1", &h);
    let h = b.conv_1.forward(&h.relu().unwrap()).unwrap();
    check("conv_1", &h);
    let h = bn(2, &h);
    check("bn_2", &h);
    let h = b.conv_2.forward(&h.relu().unwrap()).unwrap();
    check("conv_2", &h);
    let h = bn(3, &h);
    check("bn_3", &h);
    let h = b.conv_3.forward(&h.relu().unwrap()).unwrap();
    check("conv_3", &h);
}

/// Resuming from a cached activation gives the same output as a full forward, and per-layer
/// latents equal to z everywhere reproduce `forward`.
#[test]
fn resume_from_cached_stage_matches_full_forward() {
    let m = model("model.safetensors");
    let gold = golden("golden.safetensors");
    let z = gold["case1.z"].clone();
    let cv = gold["case1.class_vector"].clone();
    let full = m.forward(&z, &cv, 0.456).unwrap();
    let conds = m.conditions(&vec![z.clone(); m.cfg.num_latents()], &cv).unwrap();
    let mut acts = Vec::new();
    let _ = m.run_stages(&conds, 0.456, Resume { stage: 0, input: None }, Some(&mut acts)).unwrap();
    for stage in [1, 5, 9, m.num_stages() - 1, m.num_stages()] {
        let out = m.run_stages(&conds, 0.456, Resume { stage, input: Some(&acts[stage - 1]) }, None).unwrap();
        assert_eq!(max_abs_diff(&out, &full), 0.0, "resume at stage {stage}");
    }
    // An edit of the last latent changes only the last block: a resume must see it.
    let mut latents = vec![z.clone(); m.cfg.num_latents()];
    let last = m.cfg.num_latents() - 1;
    latents[last] = (&z * 0.5).unwrap();
    let edited = m.forward_latents(&latents, &cv, 0.456).unwrap();
    assert!(max_abs_diff(&edited, &full) > 1e-3, "editing the last latent changes the image");
    let s = m.first_stage_of_latent(last);
    let conds2 = m.conditions(&latents, &cv).unwrap();
    let resumed = m.run_stages(&conds2, 0.456, Resume { stage: s, input: Some(&acts[s - 1]) }, None).unwrap();
    assert_eq!(max_abs_diff(&resumed, &edited), 0.0);
}

/// Every tensor of the hub layout is used, and a config that does not fit names the keys.
#[test]
fn every_checkpoint_key_is_used_and_mismatches_are_named() {
    let cfg = BigGanConfig::from_file(&fixture("config.json")).unwrap();
    let t = intervene::checkpoint::load(&fixture("model.safetensors")).unwrap();
    let (_, report) = intervene::models::biggan::load::build_tracked(t, &cfg, &Device::Cpu).unwrap();
    assert!(report.is_clean(), "{report}");
    // A wider channel schedule than the file: the error names the key and both shapes.
    let mut wide = cfg.clone();
    wide.channel_width = 16;
    let t = intervene::checkpoint::load(&fixture("model.safetensors")).unwrap();
    let err = intervene::models::biggan::load::build_tracked(t, &wide, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("generator.gen_z.weight_orig") && err.contains("expected shape"), "{err}");
}
