//! `intervene cgn` flags that depend on the CGN kind (issue 11 §7): the help text of
//! --truncation / --cpu / --u, and --shift / --no-shift refused for the ImageNet CGN before
//! its (1 GB) model is built. The ImageNet checkpoints here are stand-ins that only carry the
//! keys the kind is told by; `x_gt` itself is checked against the authors' module in
//! tests/cgn_imagenet_parity.rs.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use clap::{CommandFactory, Parser};
use intervene::cli::cgn::{run, CgnArgs};
use intervene::models::cgn::CgnKind;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    cgn: CgnArgs,
}

fn help_of(id: &str) -> String {
    let cmd = Cli::command();
    let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap_or_else(|| panic!("no --{id}"));
    arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default()
}

#[test]
fn help_lines_belong_to_their_flags() {
    let truncation = help_of("truncation");
    assert!(truncation.starts_with("Truncation"), "--truncation: {truncation}");
    assert!(!truncation.contains("CPU"), "--truncation shows --cpu's line: {truncation}");
    let cpu = help_of("cpu");
    assert!(cpu.contains("Run on the CPU"), "--cpu: {cpu:?}");
    let u = help_of("u");
    for want in ["32", "128", "scaled by the truncation"] {
        assert!(u.contains(want), "--u lacks {want:?}: {u}");
    }
    for id in ["shift", "no_shift"] {
        assert!(help_of(id).contains("MNIST CGN only"), "--{id}: {}", help_of(id));
    }
}

/// A safetensors file holding only the named (tiny) tensors.
fn stand_in(name: &str, keys: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("intervene-cgn-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let map: HashMap<String, Tensor> = keys
        .iter()
        .map(|k| (k.to_string(), Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap()))
        .collect();
    let p = dir.join(name);
    candle_core::safetensors::save(&map, &p).unwrap();
    p
}

fn cgn(model: &std::path::Path, extra: &[&str]) -> String {
    let out = model.with_extension("png");
    let mut args = vec!["cgn", "--model", model.to_str().unwrap(), "--cpu", "--shape", "1", "--texture", "2"];
    args.extend_from_slice(&["--background", "3", "--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let err = run(Cli::try_parse_from(args).unwrap().cgn).expect_err("a stand-in checkpoint cannot run");
    assert!(!out.exists(), "nothing is written on an error");
    format!("{err:#}")
}

#[test]
fn texture_shift_flags_are_refused_for_the_imagenet_cgn() {
    let m = stand_in("imagenet.safetensors", &["f_shape.generator.gen_z.weight", "u2net.outconv.weight"]);
    for flags in [&["--no-shift"][..], &["--shift", "3,4"]] {
        let err = cgn(&m, flags);
        assert!(err.contains(flags[0]) && err.contains("ImageNet CGN has none"), "{flags:?}: {err}");
    }
    // Without them the kind is accepted and the build itself is what fails.
    let err = cgn(&m, &[]);
    assert!(err.contains("cannot build the ImageNet CGN"), "{err}");
}

#[test]
fn kind_is_told_by_the_keys() {
    let load = |p: PathBuf| intervene::checkpoint::load(&p).unwrap();
    let gt = load(stand_in("gt.safetensors", &["biggan_GT.x", "f_shape.generator.x", "u2net.x"]));
    assert_eq!(CgnKind::detect(&gt), Some(CgnKind::ImageNet { ground_truth: true }));
    let no_gt = load(stand_in("nogt.safetensors", &["f_shape.generator.x", "u2net.x"]));
    assert_eq!(CgnKind::detect(&no_gt), Some(CgnKind::ImageNet { ground_truth: false }));
    let neither = load(stand_in("neither.safetensors", &["f_shape.generator.x"]));
    assert_eq!(CgnKind::detect(&neither), None);
    let err = cgn(&stand_in("neither2.safetensors", &["f_shape.generator.x"]), &[]);
    assert!(err.contains("not a CGN checkpoint"), "{err}");
}
