//! `intervene data build` on a tiny synthetic MNIST folder: the ImageFolder tree, factors.csv
//! and manifest.json, and PNGs that hold exactly the in-memory data set.

use std::path::{Path, PathBuf};

use clap::Parser;
use intervene::cli::data::{run, DataArgs};
use intervene::data::mnist::{self, MnistFile};
use intervene::data::variants::{generate, Split, Variant, VariantConfig};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    data: DataArgs,
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-data-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 40 training and 12 test digits (a bar whose position depends on the index), labels i mod 10.
fn tiny_mnist(dir: &Path) {
    for (prefix, n) in [("train", 40u32), ("t10k", 12)] {
        let mut images = vec![0u8; n as usize * 784];
        for i in 0..n as usize {
            for r in 5..23 {
                for c in 8 + i % 10..12 + i % 10 {
                    images[i * 784 + r * 28 + c] = 255;
                }
            }
        }
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), idx(&[n, 28, 28], &images)).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx(&[n], &labels)).unwrap();
    }
}

fn build(args: &[&str]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("data").chain(args.iter().copied()))?;
    run(cli.data)
}

#[test]
fn build_writes_an_image_folder_that_equals_the_in_memory_set() {
    let root = tmp("build");
    let (src, out) = (root.join("mnist"), root.join("out"));
    std::fs::create_dir_all(&src).unwrap();
    tiny_mnist(&src);
    let (s, o) = (src.to_str().unwrap(), out.to_str().unwrap());
    build(&["build", "--variant", "double-colored", "--mnist", s, "--out", o, "--seed", "4", "--test-source", "t10k"])
        .unwrap();

    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["variant"], "double-colored");
    assert_eq!(m["seed"], 4);
    assert_eq!(m["splits"]["train"]["count"], 40);
    assert_eq!(m["splits"]["test"]["count"], 12);
    assert_eq!(m["splits"]["train"]["class_counts"][3], 4);
    assert_eq!(m["details"]["jitter_std"], 0.01);
    let files = m["source_files"].as_array().unwrap();
    assert_eq!(files.len(), 4, "train and t10k image and label files");
    assert_eq!(files[0]["bytes"], 16 + 40 * 784);

    let train = generate(
        &VariantConfig::new(Variant::DoubleColored, 4),
        Split::Train,
        &mnist::load(&src, MnistFile::Train).unwrap(),
    )
    .unwrap();
    for i in [0usize, 13, 39] {
        let p = out.join("train").join((i % 10).to_string()).join(format!("{i}.png"));
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (32, 32));
        assert_eq!(img.as_raw().as_slice(), train.image(i), "{}", p.display());
    }
    let n_png = |split: &str| {
        (0..10).map(|k| std::fs::read_dir(out.join(split).join(k.to_string())).unwrap().count()).sum::<usize>()
    };
    assert_eq!((n_png("train"), n_png("test")), (40, 12));
    let csv = std::fs::read_to_string(out.join("test/factors.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("file,shape,texture,background"));
    assert_eq!(csv.lines().count(), 13);
    assert!(csv.lines().nth(1).unwrap().starts_with("0/0.png,0,"));

    // A second build into the same folder needs --overwrite.
    let e = build(&["build", "--variant", "wildlife", "--mnist", s, "--out", o]).unwrap_err();
    assert!(e.to_string().contains("--overwrite"), "{e}");
    build(&["build", "--variant", "wildlife", "--mnist", s, "--out", o, "--overwrite", "--limit", "5"]).unwrap();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["splits"]["train"]["count"], 5);
    assert_eq!(m["details"]["texture_size"], 150);
}

#[test]
fn bad_arguments_and_missing_data_are_explained() {
    let root = tmp("bad");
    let o = root.join("out");
    let e = build(&["build", "--variant", "plaid", "--out", o.to_str().unwrap()]).unwrap_err();
    assert!(e.to_string().contains("double-colored"), "{e}");
    let e = build(&["build", "--variant", "colored", "--mnist", "/nonexistent/dir", "--out", o.to_str().unwrap()])
        .unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("/nonexistent/dir") && msg.contains("tools/setup.sh data"), "{msg}");
}
