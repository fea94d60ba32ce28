//! `train::mask_check` (behind `intervene quality masks` and `train cgn`'s checkpoint check)
//! against the independent Python check of `tools/results/cgn_mask_check.py`, on the shipped
//! colored CGN, which has both: the four inverted classes its card reports (0, 5, 6, 9) and six
//! upright ones. (`tests/fixtures/cgn-mask-check/` also holds double-colored's figures, all
//! upright; one model keeps this test's cost down.) The shape scores (the bundled shape judge
//! reading each mask as a digit) are held to `intervene eval` on the same masks written as PNGs
//! by Python, on colored and on wildlife-v2, whose masks pass the frame check but not the shape one.

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
    let report = check(&m, 20, 0, None).unwrap();
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

/// The shape scores of `check` with the bundled judge equal `intervene eval` on the masks written
/// as PNGs by Python (the fixtures' README): the same masks, the same judge, another route.
fn shape_scores(name: &str) -> intervene::train::mask_check::MaskReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name).join("model.safetensors");
    let intervene::models::cgn::CgnModel::Mnist(m) =
        intervene::models::cgn::CgnModel::open(&path, &Device::Cpu).unwrap()
    else {
        panic!("{name} is not an MNIST CGN")
    };
    let judge = intervene::train::mask_shape::ShapeJudge::bundled().unwrap().expect("models/ ships the shape judge");
    let report = check(&m, 20, 0, Some(&judge)).unwrap();
    let want = reference(&format!("{name}-shape"));
    let want: Vec<f64> = want["shape"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let got: Vec<f64> = report.classes.iter().map(|c| c.shape.unwrap()).collect();
    assert_eq!(got.len(), want.len());
    for (c, (g, w)) in got.iter().zip(&want).enumerate() {
        // k of 20 masks: equal counts.
        assert!((g - w).abs() < 1e-9, "{name} class {c}: shape {g} vs {w} from the PNGs");
    }
    assert_eq!(report.shape_judge.as_deref(), Some("mnist-cnn-mnist"));
    report
}

#[test]
fn colored_cgn_shape_scores_match_the_judge_on_pngs_and_are_zero_where_inverted() {
    let r = shape_scores("cgn-colored");
    for c in r.with(Orientation::Inverted) {
        assert_eq!(r.classes[c].shape, Some(0.0), "inverted class {c}");
    }
}

#[test]
fn wildlife_v2_cgn_is_mostly_upright_by_frame_but_misshapen_by_shape() {
    let r = shape_scores("cgn-wildlife-v2");
    assert_eq!(r.with(Orientation::Upright).len(), 8);
    assert!(r.shape_top1().unwrap() < 0.5, "{}", r.summary());
    assert!(r.misshapen().len() >= 5, "{}", r.summary());
}

/// The CGNs trained on top of `cgn-double-colored`'s frozen shape mechanism (`train cgn
/// --init-shape cgn-double-colored --freeze-shape`) carry its label embedding and `f_shape`
/// parameters bit for bit, as their cards say, and their shipped mask checks read the masks as
/// the source's do: ten upright classes, the same shape scores (the batch-norm statistics
/// followed the new runs' batches, so the eval-mode masks may differ by a few pixels).
#[test]
fn frozen_shape_cgns_keep_the_source_shape_mechanism_and_its_masks() {
    use intervene::train::cgn_shape_init::is_shape_key;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let load = |name: &str| intervene::checkpoint::load(&dir.join(name).join("model.safetensors")).unwrap();
    let masks = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join(name).join("masks.json")).unwrap()).unwrap()
    };
    let shape_of = |m: &serde_json::Value| -> Vec<f64> {
        m["classes"].as_array().unwrap().iter().map(|c| c["shape"].as_f64().unwrap()).collect()
    };
    let source = load("cgn-double-colored");
    let src_shape = shape_of(&masks("cgn-double-colored"));
    for name in ["cgn-colored-frozen-shape", "cgn-wildlife-frozen-shape"] {
        let m = load(name);
        let params: Vec<&String> = source
            .keys()
            .filter(|k| is_shape_key(k) && !k.contains(".running_") && !k.ends_with("num_batches_tracked"))
            .collect();
        assert!(params.len() >= 9, "{params:?}");
        for k in params {
            let (a, b) = (&source[k], &m[k]);
            let (a, b) = (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert!(a == b, "{name}: {k} differs from cgn-double-colored's");
        }
        // The texture mechanisms are its own.
        let t = "f_text1.0.weight";
        assert_ne!(
            source[t].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            m[t].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{name}: {t}"
        );
        let report = masks(name);
        assert!(report["classes"].as_array().unwrap().iter().all(|c| c["orientation"] == "upright"), "{name}");
        let shape = shape_of(&report);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            (mean(&shape) - mean(&src_shape)).abs() <= 0.011,
            "{name}: shape {shape:?} vs the source's {src_shape:?}"
        );
    }
}

/// `intervene quality masks|measure|samples --generator NAME` open a bundled model by its index
/// name, as `--model NAME` does elsewhere; an unknown name says what is accepted.
#[test]
fn quality_opens_a_bundled_generator_by_name_and_says_what_it_takes_otherwise() {
    use intervene::train::quality::Generator;
    let g = Generator::open(Path::new("cgn-wildlife-frozen-shape")).unwrap();
    assert!(matches!(g, Generator::Cgn(_)));
    assert_eq!(g.num_classes(), 10);
    let Err(e) = Generator::open(Path::new("no-such-model")) else { panic!("an unknown name opened") };
    let e = e.to_string();
    assert!(e.contains("no-such-model") && e.contains("bundled model's name"), "{e}");
}
