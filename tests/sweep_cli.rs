//! `intervene sweep` on the tiny BigGAN fixture: the CSV has one row per setting (three one-knob
//! curves around the base), finite estimates, the maximum of each curve marked, and the same
//! bytes from the same seed. (The estimator is checked against its reference in bound_logpxz.rs,
//! the interventions' ranges in the library's unit tests.)

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_intervene"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("intervene-sweep-{name}-{}", std::process::id()))
}

#[test]
fn sweep_writes_three_curves_with_their_best_points() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/biggan-deep-tiny-128");
    let comps = tmp("c.npz");
    let o = bin()
        .args(["pca", "--model", model, "--class", "207", "--samples", "800", "--components", "12", "--out"])
        .arg(&comps)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let real = tmp("real");
    std::fs::create_dir_all(&real).unwrap();
    for i in 0..3u32 {
        image::RgbImage::from_fn(40, 40, |x, y| image::Rgb([(x * 6 + i * 40) as u8, (y * 5) as u8, (i * 70) as u8]))
            .save(real.join(format!("{i}.png")))
            .unwrap();
    }
    let run = |csv: &PathBuf| {
        let o = bin()
            .args(["sweep", "--model", model, "--components"])
            .arg(&comps)
            .args(["--real"])
            .arg(&real)
            .args([
                "--class",
                "207",
                "--per-setting",
                "3",
                "--truncations",
                "0.5,1",
                "--top-k",
                "2,12",
                "--scales",
                "0.5,1,1.3",
                "--csv",
            ])
            .arg(csv)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(csv).unwrap()
    };
    let text = run(&tmp("a.csv"));
    let rows: Vec<Vec<String>> = text.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
    assert_eq!(text.lines().next(), Some("knob,truncation,top_k,scale,log_p,best"));
    assert_eq!(rows.len(), 2 + 2 + 3);
    for knob in ["truncation", "top_k", "scale"] {
        let curve: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == knob).collect();
        let values: Vec<f64> = curve.iter().map(|r| r[4].parse().unwrap()).collect();
        assert!(values.iter().all(|v| v.is_finite()), "{knob}: {values:?}");
        let best: Vec<&&Vec<String>> = curve.iter().filter(|r| r[5] == "1").collect();
        assert_eq!(best.len(), 1, "one best point on the {knob} curve");
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(best[0][4].parse::<f64>().unwrap(), max);
    }
    // The base setting (t = 1, k = 12 of 12, s = 1) appears on every curve with one value.
    let base: Vec<&String> =
        rows.iter().filter(|r| r[1] == "1" && r[2] == "12" && r[3] == "1").map(|r| &r[4]).collect();
    assert_eq!(base.len(), 3);
    assert!(base.iter().all(|v| *v == base[0]));
    assert_eq!(run(&tmp("b.csv")), text, "deterministic from the seed");
}
