//! `intervene bound --classifier … --generated DIR --real DIR`: class folders are paired by class
//! (wnid, name or index), the dictionary is the first --dict-size generated images by name, and
//! the estimate is the query-weighted mean of the per-class GenInt estimates (the estimator
//! itself is checked against the NumPy reference in tests/bound_logpxz.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

use intervene::explain::bound::{estimate, Variant};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-bound-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A smooth synthetic picture, different per seed.
fn picture(path: &Path, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        let v = |k: u32| ((x * (seed % 7 + k) + y * (seed % 5 + 2 * k) + 31 * seed) % 256) as u8;
        image::Rgb([v(1), v(2), v(3)])
    });
    img.save(path).unwrap();
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_intervene")).args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn folders_are_paired_by_class_and_the_estimate_is_the_query_mean() {
    let (gen, real) = (tmp("gen"), tmp("real"));
    // Class 1 (goldfish) as an index folder and as a name folder; class 207 by its wnid.
    for i in 0..4 {
        picture(&gen.join("1").join(format!("{i}.png")), 10 + i);
        picture(&gen.join("207").join(format!("{i}.png")), 20 + i);
    }
    picture(&real.join("goldfish").join("a.png"), 11);
    picture(&real.join("goldfish").join("b.png"), 99);
    picture(&real.join("n02099601").join("c.png"), 50);
    picture(&real.join("n01440764").join("d.png"), 60); // tench: no generated images, skipped
    let (g, r) = (gen.to_str().unwrap(), real.to_str().unwrap());
    let out = run_json(&[
        "bound",
        "--classifier",
        "mobilenet_v2",
        "--generated",
        g,
        "--real",
        r,
        "--dict-size",
        "3",
        "--json",
    ]);
    let classes: Vec<u64> = out["classes"].as_array().unwrap().iter().map(|c| c["class"].as_u64().unwrap()).collect();
    assert_eq!(classes, [1, 207]);

    // The same through the library: features of the first 3 generated files per class.
    let opened = intervene::models::classifier::open("mobilenet_v2", None, &candle_core::Device::Cpu).unwrap();
    let mut total = 0.0;
    for (class, queries) in [
        ("1", vec![real.join("goldfish/a.png"), real.join("goldfish/b.png")]),
        ("207", vec![real.join("n02099601/c.png")]),
    ] {
        let dict: Vec<PathBuf> = (0..3).map(|i| gen.join(class).join(format!("{i}.png"))).collect();
        let (d, f) = intervene::explain::folders::features(&opened, &dict).unwrap();
        let (q, _) = intervene::explain::folders::features(&opened, &queries).unwrap();
        total += estimate(&q, &d, f, Variant::Nn).unwrap().estimate * queries.len() as f64;
    }
    let want = total / 3.0;
    let got = out["estimate"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "{got} vs {want}");

    // The dictionary is the first --dict-size files: one file gives a different estimate.
    let one = run_json(&[
        "bound",
        "--classifier",
        "mobilenet_v2",
        "--generated",
        g,
        "--real",
        r,
        "--dict-size",
        "1",
        "--json",
    ]);
    assert!(one["classes"].as_array().unwrap().iter().all(|c| c["dictionary"] == 1));
    assert_ne!(one["estimate"], out["estimate"]);
}

#[test]
fn folders_without_common_classes_are_explained() {
    let (gen, real) = (tmp("gen2"), tmp("real2"));
    picture(&gen.join("1").join("0.png"), 1);
    picture(&real.join("2").join("0.png"), 2);
    let o = Command::new(env!("CARGO_BIN_EXE_intervene"))
        .args([
            "bound",
            "--classifier",
            "mobilenet_v2",
            "--generated",
            gen.to_str().unwrap(),
            "--real",
            real.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no class has both"), "{}", String::from_utf8_lossy(&o.stderr));
}
