//! GradCAM and GradCAM++ on torchvision's real MobileNetV2 ImageNet weights against
//! pytorch-grad-cam 1.5.7 (tests/fixtures/gradcam-mobilenet-v2/README.md, its tolerances).
//! The weights (14 MB, BSD-3) ship in `models/mobilenet_v2/` (see its MODEL_CARD.md).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use intervene::explain::cam::{compute, Method};
use intervene::models::classifier::Staged;
use intervene::models::mobilenet_v2::MobileNetV2;

fn weights_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mobilenet_v2/mobilenet_v2-b0353104.pth")
}

fn model() -> MobileNetV2 {
    let p = weights_file();
    let t = intervene::checkpoint::load(&p).expect("weights");
    let tw = intervene::checkpoint::TrackedWeights::new(t);
    let m = MobileNetV2::new(tw.var_builder(DType::F32, &Device::Cpu), 1000).expect("model");
    let r = tw.report();
    // torchvision's file also holds num_batches_tracked counters, which inference does not read.
    assert!(r.missing.is_empty() && r.mismatched.is_empty(), "{r}");
    assert!(r.unexpected.iter().all(|k| k.ends_with("num_batches_tracked")), "{r}");
    m
}

fn v(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn check_image(name: &str) {
    let g = candle_core::safetensors::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/gradcam-mobilenet-v2/golden_{name}.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let m = model();
    let input = &g["input"];
    let layer = m.stage_index("features.18").unwrap();
    assert_eq!(layer, m.default_cam_stage());
    let top1 = g["target_class"].flatten_all().unwrap().to_vec1::<i64>().unwrap()[0] as usize;
    let ag = m.activation_and_gradient(input, layer, None).unwrap();
    assert_eq!(ag.class, top1, "{name}: top-1 class");
    let logits = v(&ag.logits);
    assert!(
        max_diff(&logits, &v(&g["logits"])) <= 1e-4,
        "{name}: logits differ by {}",
        max_diff(&logits, &v(&g["logits"]))
    );
    let mut order: Vec<usize> = (0..1000).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let top5: Vec<i64> = order[..5].iter().map(|&i| i as i64).collect();
    assert_eq!(top5, g["top5"].to_vec1::<i64>().unwrap(), "{name}: top-5");
    let act = v(&ag.act);
    let grad = v(&ag.grad);
    assert!(max_diff(&act, &v(&g["act"])) <= 1e-4, "{name}: act");
    let gw = v(&g["grad"]);
    assert!(grad.iter().zip(&gw).all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs() + 1e-12), "{name}: grad");
    for (method, key, raw_tol) in [(Method::GradCam, "gradcam", 1e-5), (Method::GradCamPlusPlus, "gradcampp", 1e-4)] {
        let cam = compute(method, &act, &grad, 1280, 7, 7, 224, 224);
        let w = v(&g[&format!("{key}.weights")]);
        assert!(
            cam.weights.iter().zip(&w).all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs() + 1e-9),
            "{name} {key}: weights"
        );
        assert!(max_diff(&cam.cam_raw, &v(&g[&format!("{key}.cam_raw")])) <= raw_tol, "{name} {key}: cam_raw");
        for part in ["cam_norm_lowres", "cam_resized", "map"] {
            let got = match part {
                "cam_norm_lowres" => &cam.cam_norm_lowres,
                "cam_resized" => &cam.cam_resized,
                _ => &cam.map,
            };
            let d = max_diff(got, &v(&g[&format!("{key}.{part}")]));
            assert!(d <= 1e-4, "{name} {key}.{part} differs by {d}");
        }
    }
    // A low-ranked class (negative cam_raw entries: the ReLU matters) and the lowest one
    // (all negative: the map is exactly zero, no NaN).
    for (prefix, exact_zero) in [("rank500", false), ("argmin", true)] {
        let class = g[&format!("{prefix}.target_class")].flatten_all().unwrap().to_vec1::<i64>().unwrap()[0] as usize;
        let ag = m.activation_and_gradient(input, layer, Some(class)).unwrap();
        let cam = compute(Method::GradCam, &v(&ag.act), &v(&ag.grad), 1280, 7, 7, 224, 224);
        let d = max_diff(&cam.map, &v(&g[&format!("{prefix}.gradcam.map")]));
        assert!(d <= 1e-4, "{name} {prefix}: map differs by {d}");
        if exact_zero {
            assert!(cam.map.iter().all(|&x| x == 0.0), "{name}: all-negative CAM must give an all-zero map");
        }
    }
}

#[test]
fn chelsea_matches_pytorch_grad_cam() {
    check_image("chelsea");
}

#[test]
fn coffee_matches_pytorch_grad_cam() {
    check_image("coffee");
}

/// HiResCAM and LayerCAM against pytorch-grad-cam 1.5.7's own classes
/// (tests/fixtures/cam-family-mobilenet-v2/README.md) on the default layer `features.18` and on
/// `features.13`, whose spatially varying gradient and negative activations are where the two
/// methods differ from GradCAM and from each other; top-1 and rank-500 targets.
///
/// - The CAM formulas, on the reference's own activation and gradient: every case, exactly
///   (cam_raw 1e-5, map 1e-4).
/// - End to end (our network, our backward, our CAM): `features.18` maps to 1e-4. At
///   `features.13` the gradient must match to 1e-5 at every spatial site whose downstream ReLU6
///   inputs keep clear of the kink (|pre-activation| ≥ 1e-5 in the reference); at a site closer
///   than that, which side of the kink a float32 forward lands on is a rounding coin flip (chelsea
///   has one at 3.8e-7), and the gradient there may legitimately differ. The final maps agree
///   to 1e-4 in every case all the same.
#[test]
fn hirescam_and_layercam_match_pytorch_grad_cam() {
    let family = candle_core::safetensors::load(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cam-family-mobilenet-v2/golden.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let m = model();
    let mut checked = 0;
    let mut report = Vec::new();
    for image in ["chelsea", "coffee"] {
        let g = candle_core::safetensors::load(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/gradcam-mobilenet-v2/golden_{image}.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        for layer_name in ["features.18", "features.13"] {
            let layer = m.stage_index(layer_name).unwrap();
            for target in ["top1", "rank500"] {
                let key = format!("{image}.{layer_name}.{target}");
                let Some(class) = family.get(&format!("{key}.target_class")) else { continue };
                let class = class.to_vec1::<i64>().unwrap()[0] as usize;
                let ag = m.activation_and_gradient(&g["input"], layer, Some(class)).unwrap();
                let (_, c, h, w) = ag.act.dims4().unwrap();
                let (act, grad) = (v(&ag.act), v(&ag.grad));
                // The reference's activation and gradient for this case.
                let (ref_act, ref_grad) = if layer_name == "features.18" {
                    let grad_key = if target == "top1" { "grad".to_string() } else { format!("{target}.grad") };
                    (v(&g["act"]), v(&g[&grad_key]))
                } else {
                    (v(&family[&format!("{image}.{layer_name}.act")]), v(&family[&format!("{key}.grad")]))
                };
                assert!(max_diff(&act, &ref_act) <= 1e-4, "{key}: act");
                let mut clear_sites = vec![true; h * w];
                if layer_name == "features.13" {
                    let kink = v(&family[&format!("{image}.features.14.expand_preact_min_abs")]);
                    clear_sites = kink.iter().map(|&k| k >= 1e-5).collect();
                }
                let mut off_sites = std::collections::BTreeSet::new();
                for (i, (a, b)) in grad.iter().zip(&ref_grad).enumerate() {
                    let site = i % (h * w);
                    if (a - b).abs() > 1e-5 + 1e-5 * b.abs() {
                        assert!(
                            !clear_sites[site],
                            "{key}: grad differs by {} at channel {} site {site}",
                            (a - b).abs(),
                            i / (h * w)
                        );
                        off_sites.insert(site);
                    }
                }
                for (method, name) in [(Method::HiResCam, "hirescam"), (Method::LayerCam, "layercam")] {
                    let want_raw = v(&family[&format!("{key}.{name}.cam_raw")]);
                    let want_map = v(&family[&format!("{key}.{name}.map")]);
                    // The formulas on the reference's own inputs.
                    let cam = compute(method, &ref_act, &ref_grad, c, h, w, 224, 224);
                    let (raw, map) = (max_diff(&cam.cam_raw, &want_raw), max_diff(&cam.map, &want_map));
                    assert!(raw <= 1e-5, "{key} {name}: cam_raw from the reference's act/grad differs by {raw}");
                    assert!(map <= 1e-4, "{key} {name}: map from the reference's act/grad differs by {map}");
                    // End to end.
                    let ours = compute(method, &act, &grad, c, h, w, 224, 224);
                    let e2e = max_diff(&ours.map, &want_map);
                    // Chelsea's kink site lies where both maps are clipped to 0 by the ReLU, so
                    // even there the final maps agree.
                    assert!(e2e <= 1e-4, "{key} {name}: end-to-end map differs by {e2e}");
                    report.push(format!(
                        "{key}.{name}: formula raw {raw:.1e} map {map:.1e}; end to end map {e2e:.1e} (kink sites {off_sites:?})"
                    ));
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(checked, 12, "every golden case was compared");
}

/// The `intervene cam` contract: --input tensor, --class, --raw map and --logits files.
#[test]
fn cam_cli_writes_the_reference_map() {
    let g = candle_core::safetensors::load(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gradcam-mobilenet-v2/golden_coffee.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("intervene-cam-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    g["input"].write_npy(dir.join("x.npy")).unwrap();
    let class = g["rank500.target_class"].flatten_all().unwrap().to_vec1::<i64>().unwrap()[0];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_intervene"))
        .arg("cam")
        .arg("--classifier")
        .arg(weights_file())
        .arg("--input")
        .arg(dir.join("x.npy"))
        .args(["--method", "gradcam++", "--class", &class.to_string()])
        .arg("--raw")
        .arg(dir.join("cam.npy"))
        .arg("--logits")
        .arg(dir.join("logits.npy"))
        .arg("--out")
        .arg(dir.join("o.png"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let map = Tensor::read_npy(dir.join("cam.npy")).unwrap();
    assert_eq!(map.dims(), &[224, 224]);
    let d = max_diff(&v(&map), &v(&g["rank500.gradcampp.map"]));
    assert!(d <= 1e-4, "CLI GradCAM++ map differs by {d}");
    assert_eq!(Tensor::read_npy(dir.join("logits.npy")).unwrap().dims(), &[1, 1000]);
    assert!(image::open(dir.join("o.png")).is_ok());
}
