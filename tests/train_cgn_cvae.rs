//! `train cgn` and `train cvae`: small real runs (finite losses that fall, resume bit for bit,
//! the trained CGN opening in the inference runtime with the authors' keys), the Gram loss's
//! pieces against hand computations, GenInt's colored MNIST, refusals.
//!
//! The CGN runs need the normalised VGG-19 (`bash tools/setup.sh data` puts it at
//! `$INTERVENE_DATA/weights/vgg_normalized.pth`).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use intervene::jobs::Control;
use intervene::train::cgn::{train_cgn, CgnSettings};
use intervene::train::cvae::{train_cvae, CvaeSettings};
use intervene::train::nets::vgg_gram::{gram, reflect_pad1};

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-train-gen-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn metric(dir: &Path, name: &str) -> Vec<f64> {
    intervene::train::output::read_metrics(dir).unwrap().iter().map(|v| v[name].as_f64().unwrap()).collect()
}

fn tiny_cgn(variant: &str, steps: u64) -> CgnSettings {
    let mut s = CgnSettings::recipe(variant).unwrap();
    s.batch = 4;
    s.steps = steps;
    s.seed = 5;
    s.sample_every = 0;
    s.checkpoint_every = 100;
    s.threads = 1;
    s
}

#[test]
fn cgn_trains_resumes_exactly_and_opens_in_the_runtime() {
    let vgg = intervene::train::nets::vgg_gram::default_weights();
    assert!(vgg.is_file(), "missing {}: run `bash tools/setup.sh data`", vgg.display());
    let a = tempdir("cgn-a");
    let b = tempdir("cgn-b");
    let r = train_cgn(&tiny_cgn("double-colored", 6), &a, false, None, &Control::new()).unwrap();
    assert!(r.finished);
    let lg = metric(&a, "loss_g");
    let lp = metric(&a, "loss_perc");
    assert_eq!(lg.len(), 6);
    assert!(lg.iter().chain(&metric(&a, "loss_d")).all(|v| v.is_finite()));
    // The perceptual term dominates at the start and falls fast.
    assert!(lp[5] < lp[0], "loss_perc {lp:?}");
    // Two pieces: 3 steps, then resume.
    train_cgn(&tiny_cgn("double-colored", 6), &b, false, Some(3), &Control::new()).unwrap();
    let e = train_cgn(&tiny_cgn("colored", 6), &b, true, None, &Control::new()).unwrap_err().to_string();
    assert!(e.contains("other settings") && e.contains("variant"), "{e}");
    train_cgn(&tiny_cgn("double-colored", 6), &b, true, None, &Control::new()).unwrap();
    assert!(
        std::fs::read(a.join("model.safetensors")).unwrap() == std::fs::read(b.join("model.safetensors")).unwrap(),
        "resumed run differs"
    );
    // The authors' layout: 57 entries, opens as an MNIST CGN.
    let map = intervene::checkpoint::load(&a.join("model.safetensors")).unwrap();
    assert_eq!(map.len(), 57);
    let m = intervene::models::cgn::CgnModel::open(&a.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(matches!(m, intervene::models::cgn::CgnModel::Mnist(_)));
    for f in ["samples.png", "parts.png", "counterfactuals.png", "metrics.jsonl", "train.json", "masks.jsonl"] {
        assert!(a.join(f).is_file(), "{f}");
    }
    // The mask check: one line per checkpoint (a: the end; b: the stop at 3 and the end), the
    // same at step 6 whether resumed or not, and the figures of the saved model.
    let lines = |d: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join("masks.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (la, lb) = (lines(&a), lines(&b));
    assert_eq!(la.iter().map(|l| l["step"].as_u64().unwrap()).collect::<Vec<_>>(), vec![6]);
    assert_eq!(lb.iter().map(|l| l["step"].as_u64().unwrap()).collect::<Vec<_>>(), vec![3, 6]);
    for key in ["frame", "inverted"] {
        assert_eq!(la[0][key], lb[1][key], "{key}");
    }
    // The first check is the best so far, and its weights are kept.
    assert_eq!(la[0]["best"], true);
    assert_eq!(lb[0]["best"], true);
    let best = |d: &Path| std::fs::read(d.join("model-best-masks.safetensors")).unwrap();
    assert!(best(&a) == std::fs::read(a.join("model.safetensors")).unwrap());
    if lb[1]["best"] == true {
        assert!(best(&b) == std::fs::read(b.join("model.safetensors")).unwrap());
    } else {
        assert!(best(&b) != std::fs::read(b.join("model.safetensors")).unwrap());
    }
    let intervene::models::cgn::CgnModel::Mnist(m) = m else { unreachable!() };
    // As the tracker checks: with the bundled shape judge.
    let judge = intervene::train::mask_shape::ShapeJudge::bundled().unwrap();
    assert!(judge.is_some(), "models/ ships the shape judge");
    let r = intervene::train::mask_check::check(&m, 20, 0, judge.as_ref()).unwrap();
    let frames = la[0]["frame"].as_array().unwrap();
    assert_eq!(frames.len(), 10);
    for (c, f) in r.classes.iter().zip(frames) {
        assert!((c.frame - f.as_f64().unwrap()).abs() < 1e-4, "class {}: {} vs logged {f}", c.class, c.frame);
    }
    let inverted: Vec<usize> =
        la[0]["inverted"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(inverted, r.with(intervene::train::mask_check::Orientation::Inverted));
    // What the window shows for the run's weights: the last check, and for the best weights the last best one.
    for file in ["model.safetensors", "model-best-masks.safetensors"] {
        let rec = intervene::train::mask_check::recorded(&a.join(file)).unwrap();
        assert_eq!(rec.summary(), r.summary(), "{file}");
    }
}

#[test]
fn wildlife_uses_the_conv_discriminator_and_colored_stops_vgg_early() {
    let a = tempdir("cgn-w");
    train_cgn(&tiny_cgn("wildlife", 2), &a, false, None, &Control::new()).unwrap();
    assert!(metric(&a, "loss_d").iter().all(|v| v.is_finite()));
    let ck = intervene::checkpoint::load(&a.join("checkpoint.safetensors")).unwrap();
    assert!(ck.contains_key("model/d/model.13.weight"), "DiscConv keys");
    let c = tempdir("cgn-c");
    train_cgn(&tiny_cgn("colored", 1), &c, false, None, &Control::new()).unwrap();
    let e = CgnSettings::recipe("rainbow").unwrap_err().to_string();
    assert!(e.contains("rainbow") && e.contains("double-colored"), "{e}");
}

#[test]
fn reflection_padding_and_gram_match_hand_computations() {
    let dev = Device::Cpu;
    let x = Tensor::new(&[[[[1f32, 2., 3.], [4., 5., 6.], [7., 8., 9.]]]], &dev).unwrap();
    let p = reflect_pad1(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    #[rustfmt::skip]
    let want = [5., 4., 5., 6., 5., 2., 1., 2., 3., 2., 5., 4., 5., 6., 5., 8., 7., 8., 9., 8., 5., 4., 5., 6., 5.];
    assert_eq!(p, want);
    // Gram of 2 channels × 2 pixels: F Fᵀ / (c·h·w).
    let f = Var::new(&[[[[1f32, 2.]], [[3., -1.]]]], &dev).unwrap();
    let g = gram(f.as_tensor()).unwrap();
    let v = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(v, [5.0 / 4.0, 1.0 / 4.0, 1.0 / 4.0, 10.0 / 4.0]);
    // d(Σ G)/dF = (Σ_j F_j + Σ_i F_i)/(c·h·w) = 2·colsum/4.
    let grad = g.sum_all().unwrap().backward().unwrap();
    let d = grad.get(f.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(d, [2.0, 0.5, 2.0, 0.5]);
}

#[test]
fn cvae_trains_resumes_and_writes_both_sets() {
    let a = tempdir("cvae-a");
    let b = tempdir("cvae-b");
    let mut s =
        CvaeSettings { epochs: 1, batch: 2000, samples_per_class: 3, checkpoint_every: 100, ..Default::default() };
    s.shape.hidden = 64;
    let r = train_cvae(&s, &a, false, None, &Control::new()).unwrap();
    assert!(r.finished && r.steps == 30);
    let l = metric(&a, "loss");
    assert!(l.iter().all(|v| v.is_finite()));
    assert!(l[29] < l[0], "loss {} → {}", l[0], l[29]);
    train_cvae(&s, &b, false, Some(12), &Control::new()).unwrap();
    let mut other = s.clone();
    other.lr = 2e-3;
    assert!(train_cvae(&other, &b, true, None, &Control::new()).unwrap_err().to_string().contains("lr"));
    train_cvae(&s, &b, true, None, &Control::new()).unwrap();
    assert!(std::fs::read(a.join("model.safetensors")).unwrap() == std::fs::read(b.join("model.safetensors")).unwrap());
    for arm in ["observational", "interventional"] {
        for d in 0..10 {
            assert_eq!(std::fs::read_dir(a.join("samples").join(arm).join(d.to_string())).unwrap().count(), 3);
        }
    }
    let pca: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("latent_pca.json")).unwrap()).unwrap();
    let c = pca["components"].as_array().unwrap();
    let dot: f64 = (0..2).map(|i| c[0][i].as_f64().unwrap() * c[1][i].as_f64().unwrap()).sum();
    assert!(dot.abs() < 1e-9, "principal directions are orthogonal");
    cvae_export_rewrites_the_runs_sets_and_refuses_mixed_ones(&a, s.scale);
}

/// `export cvae` from a finished run: the run's own sets again, image for image; a set folder
/// refuses other settings; the reference's grid; a decoder-only f16 model (as shipped).
fn cvae_export_rewrites_the_runs_sets_and_refuses_mixed_ones(run: &Path, scale: f64) {
    use intervene::jobs::cvae_export::{export, Arm, Interventions, Request, SetSpec};
    let out = tempdir("cvae-export");
    let both = |per: usize, scale: f64| {
        [Arm::Observational, Arm::Interventional].map(|arm| SetSpec::paper(arm, per, scale, 1)).to_vec()
    };
    let req = Request { model: run.to_path_buf(), out: out.clone(), sets: both(3, scale) };
    let s = export(&req, &Control::new()).unwrap();
    assert_eq!((s.written, s.total), (60, 60));
    for arm in ["observational", "interventional"] {
        for d in 0..10 {
            for i in 0..3 {
                let f = format!("{d}/{i:05}.png");
                let ours = std::fs::read(out.join(arm).join(&f)).unwrap();
                assert!(ours == std::fs::read(run.join("samples").join(arm).join(&f)).unwrap(), "{arm}/{f}");
            }
        }
    }
    // Again: nothing to write. Another scale into the same folder: refused, naming both.
    assert_eq!(export(&req, &Control::new()).unwrap().written, 0);
    let e = export(&Request { sets: both(3, scale * 2.0), ..req.clone() }, &Control::new()).unwrap_err();
    assert!(
        format!("{e:#}").contains("other settings") && format!("{e:#}").contains(&format!("±{}", scale * 2.0)),
        "{e:#}"
    );
    // The scale does not shape the observational set: that one continues (nothing to write).
    let obs_only = Request { sets: vec![SetSpec::paper(Arm::Observational, 3, scale * 2.0, 1)], ..req.clone() };
    assert_eq!(export(&obs_only, &Control::new()).unwrap().written, 0);
    // The reference code's grid: width² images per digit, min–max stretched.
    let grid = SetSpec {
        interventions: Interventions::Grid,
        grid_width: 2,
        stretch: true,
        ..SetSpec::paper(Arm::Interventional, 1, 1.0, 1)
    };
    let g = tempdir("cvae-grid");
    export(&Request { model: run.to_path_buf(), out: g.clone(), sets: vec![grid] }, &Control::new()).unwrap();
    let img = image::open(g.join("interventional/7/00003.png")).unwrap().to_rgb8();
    assert_eq!(std::fs::read_dir(g.join("interventional/7")).unwrap().count(), 4);
    let (lo, hi) = img.pixels().flat_map(|p| p.0).fold((255, 0), |(l, h), v| (v.min(l), v.max(h)));
    assert_eq!((lo, hi), (0, 255), "stretched to the full range");
    // A decoder-only model in f16, as models/ ships it: the same images within rounding.
    let full = candle_core::safetensors::load(run.join("model.safetensors"), &Device::Cpu).unwrap();
    let half: Vec<(String, Tensor)> = full
        .iter()
        .filter(|(k, _)| k.starts_with("fc3") || k.starts_with("fc4") || k.starts_with("label_emb"))
        .map(|(k, t)| (k.clone(), t.to_dtype(candle_core::DType::F16).unwrap()))
        .collect();
    assert_eq!(half.len(), 5);
    let shipped = tempdir("cvae-shipped");
    std::fs::create_dir_all(&shipped).unwrap();
    candle_core::safetensors::save(&half.into_iter().collect(), shipped.join("model.safetensors")).unwrap();
    std::fs::copy(run.join("latent_pca.json"), shipped.join("latent_pca.json")).unwrap();
    let h = tempdir("cvae-half");
    export(&Request { model: shipped, out: h.clone(), sets: both(3, scale) }, &Control::new()).unwrap();
    let px = |dir: &Path| image::open(dir.join("interventional/4/00002.png")).unwrap().to_rgb8().into_raw();
    let worst = px(&h).iter().zip(px(&out)).map(|(a, b)| (*a as i32 - b as i32).abs()).max().unwrap();
    assert!(worst <= 2, "f16 weights moved a pixel by {worst}/255");
}

#[test]
fn genint_colored_splits_have_two_colours_per_class_and_random_test_colours() {
    use intervene::data::genint_colored::{load, GenintSplit, RULES};
    let dir = intervene::data::data_dir().join("mnist");
    let train = load(&dir, GenintSplit::Train, 0).unwrap();
    assert_eq!(train.len(), 60_000);
    for i in 0..200 {
        let l = train.labels[i] as usize;
        assert!(train.rules[i] == RULES[0][l] || train.rules[i] == RULES[1][l]);
    }
    let set1 = (0..train.len()).filter(|&i| train.rules[i] == RULES[0][train.labels[i] as usize]).count();
    assert!((29_000..31_000).contains(&set1), "{set1}");
    let causal = load(&dir, GenintSplit::CausalTest, 0).unwrap();
    assert_eq!(causal.len(), 10_000);
    // One colour per batch of 128, independent of the label.
    assert!(causal.rules[..128].iter().all(|r| *r == causal.rules[0]));
}

#[test]
fn fresh_crops_change_only_the_crops_and_stay_out_of_older_runs_keys() {
    use intervene::train::gan_data::GanData;
    let dir = intervene::data::data_dir();
    let (a, b) = (
        GanData::variant_with_seed("wildlife-v2", &dir, 0).unwrap(),
        GanData::variant_with_seed("wildlife-v2", &dir, 1).unwrap(),
    );
    // Another epoch: the same digits and labels, other crops of the same textures.
    assert_eq!(a.labels, b.labels);
    let px = 32 * 32 * 3;
    let n = 200;
    let differ = (0..n).filter(|&i| a.images[i * px..(i + 1) * px] != b.images[i * px..(i + 1) * px]).count();
    assert_eq!(differ, n, "every image gets new crops");
    assert_eq!((a.epoch_of(3124, 16), a.epoch_of(3125, 16)), (0, 1), "50,000 images at batch 16: 3,125 steps an epoch");
    // Only wildlife has crops.
    let mut s = CgnSettings::recipe("colored").unwrap();
    s.fresh_crops = true;
    assert!(s.validate().unwrap_err().to_string().contains("wildlife"));
    // Off, the setting is absent from the resume key, so runs from before it resume unchanged;
    // on, it is part of it, so a run cannot switch halfway.
    let mut w = CgnSettings::recipe("wildlife-v2").unwrap();
    assert!(w.resume_key().get("fresh_crops").is_none());
    w.fresh_crops = true;
    assert_eq!(w.resume_key()["fresh_crops"], serde_json::json!(true));
    let old: serde_json::Value = {
        let mut v = serde_json::to_value(CgnSettings::recipe("wildlife-v2").unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("fresh_crops");
        v
    };
    assert!(!serde_json::from_value::<CgnSettings>(old).unwrap().fresh_crops);
}

/// `--init-shape`: the shape mechanism and label embedding come from the source (and, frozen,
/// stay bit for bit what they were), everything else starts as the recipe says; the source's
/// digest, not its path, is in the resume key; a changed source stops a fresh run.
#[test]
fn a_shape_mechanism_copied_from_another_cgn_starts_the_run_and_stays_when_frozen() {
    use intervene::train::cgn_shape_init::{is_shape_key, ShapeInit};
    let src_dir = tempdir("shape-src");
    train_cgn(&tiny_cgn("double-colored", 2), &src_dir, false, None, &Control::new()).unwrap();
    let src_file = src_dir.join("model.safetensors");
    let src = intervene::checkpoint::load(&src_file).unwrap();
    let same = |a: &Tensor, b: &Tensor| {
        a.flatten_all().unwrap().to_vec1::<f32>().unwrap() == b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };

    let run = |frozen: bool, tag: &str| -> std::collections::HashMap<String, Tensor> {
        let mut s = tiny_cgn("colored", 3);
        s.init_shape = Some(ShapeInit::open(src_file.to_str().unwrap(), frozen).unwrap());
        let out = tempdir(tag);
        train_cgn(&s, &out, false, None, &Control::new()).unwrap();
        let key = s.resume_key();
        assert!(key["init_shape"].get("from").is_none() && key["init_shape"]["sha256"].as_str().unwrap().len() == 64);
        intervene::checkpoint::load(&out.join("model.safetensors")).unwrap()
    };
    let frozen = run(true, "shape-frozen");
    let free = run(false, "shape-free");
    let params = |k: &str| !k.contains("running_") && !k.ends_with("num_batches_tracked");
    let shape_keys: Vec<&String> = src.keys().filter(|k| is_shape_key(k) && params(k)).collect();
    assert_eq!(shape_keys.len(), 9, "{shape_keys:?}");
    for k in &shape_keys {
        assert!(same(&frozen[*k], &src[*k]), "{k}: frozen, yet it moved");
        assert!(!same(&free[*k], &src[*k]) || k.ends_with(".bias"), "{k}: trained, yet unchanged");
    }
    // The texture and background mechanisms are not copied.
    for k in src.keys().filter(|k| k.starts_with("f_text") && params(k)) {
        assert!(!same(&frozen[k], &src[k]), "{k} was copied");
    }

    // A changed source stops a fresh run, with the reason.
    let mut s = tiny_cgn("colored", 1);
    s.init_shape = Some(ShapeInit::open(src_file.to_str().unwrap(), true).unwrap());
    train_cgn(&tiny_cgn("double-colored", 3), &src_dir, true, None, &Control::new()).unwrap();
    let e = train_cgn(&s, &tempdir("shape-changed"), false, None, &Control::new()).unwrap_err().to_string();
    assert!(e.contains("--init-shape") && e.contains("changed"), "{e}");
    // Not a CGN: refused when set up.
    let e = ShapeInit::open(src_dir.join("train.json").to_str().unwrap(), false).unwrap_err().to_string();
    assert!(e.contains("--init-shape"), "{e}");
}
