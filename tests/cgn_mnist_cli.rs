//! `intervene cgn` on the random-weight MNIST CGN fixture: the written parts equal the library's
//! forward pass, class lists broadcast, shifts apply to textures only.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use clap::Parser;
use intervene::cli::cgn::{run, CgnArgs};
use intervene::models::cgn_mnist::{self, Shifts};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    cgn: CgnArgs,
}

fn weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgn-mnist-random/weights.safetensors")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-cgn-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cgn(args: &[&str]) -> anyhow::Result<()> {
    let w = weights();
    let mut all = vec!["cgn", "--model", w.to_str().unwrap(), "--cpu"];
    all.extend_from_slice(args);
    run(Cli::try_parse_from(all)?.cgn)
}

fn npy(p: &Path) -> Vec<f32> {
    Tensor::read_npy(p).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn v(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn parts_match_the_library_forward() {
    let d = tmp("parts");
    let (out, parts) = (d.join("x.png"), d.join("parts"));
    cgn(&[
        "--shape",
        "3",
        "--texture",
        "0,1,2",
        "--background",
        "9",
        "--seed",
        "5",
        "--shift",
        "4,30",
        "--out",
        out.to_str().unwrap(),
        "--parts",
        parts.to_str().unwrap(),
    ])
    .unwrap();

    let m = cgn_mnist::load(&weights(), &Device::Cpu).unwrap();
    let u = intervene::noise::normal_noise(5, 3, 32, &Device::Cpu).unwrap();
    let y = |v: &[u32]| Tensor::new(v, &Device::Cpu).unwrap();
    // --shift DX,DY = 4,30: 4 columns, 30 rows.
    let p = m
        .forward_parts(&u, &y(&[3, 3, 3]), &y(&[0, 1, 2]), &y(&[9, 9, 9]))
        .unwrap()
        .shifted(&Shifts::uniform(3, 30, 4))
        .unwrap();
    assert_eq!(npy(&parts.join("u.npy")), v(&u));
    let mask = npy(&parts.join("mask.npy"));
    assert_eq!(Tensor::read_npy(parts.join("mask.npy")).unwrap().dims(), [3, 1, 32, 32]);
    assert_eq!(mask, v(&p.mask.narrow(1, 0, 1).unwrap()));
    assert!(mask.iter().all(|x| (0.0..=1.0).contains(x)));
    assert_eq!(npy(&parts.join("foreground.npy")), v(&p.fg));
    assert_eq!(npy(&parts.join("background.npy")), v(&p.bg));
    assert_eq!(npy(&parts.join("composite.npy")), v(&p.x));
    for f in ["mask.png", "foreground.png", "background.png", "composite.png"] {
        assert!(image::open(parts.join(f)).is_ok(), "{f}");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(parts.join("inputs.json")).unwrap()).unwrap();
    assert_eq!(meta["texture"], serde_json::json!([0, 1, 2]));
    assert_eq!(meta["shift"]["fg_dy"], serde_json::json!([30, 30, 30]));
    // A grid of 3 images of 32×32 with a 2-px border: 2 columns × 2 rows.
    assert_eq!(image::open(&out).unwrap().to_rgb8().dimensions(), (2 * 32 + 3 * 2, 2 * 32 + 3 * 2));
}

#[test]
fn noise_from_a_file_and_shift_modes() {
    let d = tmp("u");
    let u = intervene::noise::normal_noise(77, 2, 32, &Device::Cpu).unwrap();
    let up = d.join("u.npy");
    u.write_npy(&up).unwrap();
    let run_with = |extra: &[&str], name: &str| {
        let parts = d.join(name);
        let mut a = vec!["--shape", "1", "--texture", "1", "--background", "1", "--u", up.to_str().unwrap()];
        a.extend_from_slice(extra);
        let out = d.join(format!("{name}.png"));
        a.extend_from_slice(&["--out", out.to_str().unwrap(), "--parts", parts.to_str().unwrap()]);
        cgn(&a).unwrap();
        parts
    };
    let none = run_with(&["--no-shift"], "none");
    let rand = run_with(&[], "rand");
    let m = cgn_mnist::load(&weights(), &Device::Cpu).unwrap();
    let y = Tensor::new(&[1u32, 1], &Device::Cpu).unwrap();
    let p = m.forward_parts(&u, &y, &y, &y).unwrap();
    assert_eq!(npy(&none.join("foreground.npy")), v(&p.fg));
    // The default random shift moves the textures, never the mask.
    assert_ne!(npy(&rand.join("foreground.npy")), v(&p.fg));
    assert_eq!(npy(&rand.join("mask.npy")), npy(&none.join("mask.npy")));
    let s = intervene::cli::cgn::default_shifts(0, 2);
    assert_eq!(npy(&rand.join("foreground.npy")), v(&p.shifted(&s).unwrap().fg));
}

#[test]
fn bad_inputs_are_explained() {
    let d = tmp("bad");
    let out = d.join("x.png");
    let o = out.to_str().unwrap();
    let err = |a: &[&str]| format!("{:#}", cgn(a).unwrap_err());
    assert!(err(&["--shape", "1,2", "--texture", "1,2,3", "--background", "0", "--out", o])
        .contains("2 classes for a batch of 3"));
    assert!(err(&["--shape", "12", "--texture", "1", "--background", "0", "--out", o]).contains("out of range"));
    assert!(
        err(&["--shape", "1", "--texture", "1", "--background", "0", "--shift", "40,1", "--out", o]).contains("0..=32")
    );
    assert!(err(&["--shape", "1", "--texture", "1", "--background", "0", "--shift", "1,1", "--no-shift", "--out", o])
        .contains("cannot be used with"));
    // A checkpoint that is not an MNIST CGN.
    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/biggan-deep-tiny-128/model.safetensors");
    let a =
        ["cgn", "--model", other.to_str().unwrap(), "--shape", "1", "--texture", "1", "--background", "1", "--out", o];
    let e = format!("{:#}", run(Cli::try_parse_from(a).unwrap().cgn).unwrap_err());
    assert!(e.contains("not a CGN checkpoint") && e.contains("model.safetensors"), "{e}");
}
