//! `intervene::preprocess` against the references: PIL's resize (tests/fixtures/pil-resize, made
//! with Pillow) and torchvision's whole ImageNet transform on the real demo photos (the
//! `input`/`image_u8` tensors of tests/fixtures/gradcam-mobilenet-v2, made with torchvision 0.29.2).

use std::path::{Path, PathBuf};

use candle_core::Device;
use intervene::preprocess::{center_crop_origin, imagenet, pil_resize_bilinear, resize_shorter_side, small};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(p)
}

fn rgb(p: &Path) -> image::RgbImage {
    image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).to_rgb8()
}

#[test]
fn resize_equals_pillow_bit_for_bit() {
    let targets = [(11, 7), (37, 23), (80, 50), (3, 200), (1, 1), (37, 9), (64, 64), (150, 99)];
    let mut checked = 0;
    for name in ["noise37x23", "noise5x97", "grad90x61"] {
        let input = rgb(&fixture(&format!("pil-resize/{name}.png")));
        for (w, h) in targets {
            let want = rgb(&fixture(&format!("pil-resize/{name}_{w}x{h}.png")));
            let got = pil_resize_bilinear(&input, w, h);
            assert_eq!(got.dimensions(), (w, h));
            let bad = got.as_raw().iter().zip(want.as_raw()).filter(|(a, b)| a != b).count();
            assert_eq!(bad, 0, "{name} -> {w}x{h}: {bad} of {} bytes differ from Pillow", want.as_raw().len());
            checked += 1;
        }
    }
    assert_eq!(checked, 24);
}

#[test]
fn torchvision_sizes_and_crop_rounding() {
    // int(256 * 451 / 300) = 384 (truncated, not rounded: 384.85).
    assert_eq!(resize_shorter_side(451, 300, 256), (384, 256));
    assert_eq!(resize_shorter_side(300, 451, 256), (256, 384));
    assert_eq!(resize_shorter_side(500, 500, 256), (256, 256));
    // Python's round is half-to-even: (341 − 224)/2 = 58.5 → 58; (343 − 224)/2 = 59.5 → 60.
    assert_eq!(center_crop_origin(341, 256, 224, 224), (16, 58));
    assert_eq!(center_crop_origin(343, 256, 224, 224), (16, 60));
    assert_eq!(center_crop_origin(256, 341, 224, 224), (58, 16));
}

fn data_dir() -> PathBuf {
    std::env::var_os("INTERVENE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".data"))
}

/// The photo through our pipeline equals torchvision's network input exactly.
fn check_photo(name: &str) {
    let photo = data_dir().join(format!("images/{name}.png"));
    assert!(
        photo.is_file(),
        "{} is missing: run `bash tools/setup.sh data` (the README test command does) or set INTERVENE_DATA",
        photo.display()
    );
    let g = candle_core::safetensors::load(
        fixture(&format!("gradcam-mobilenet-v2/golden_{name}.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let (x, px) = imagenet(&rgb(&photo)).unwrap();
    let want_px = g["image_u8"].flatten_all().unwrap().to_vec1::<u8>().unwrap();
    let bad = px.iter().zip(&want_px).filter(|(a, b)| a != b).count();
    assert_eq!(px.len(), want_px.len());
    assert_eq!(bad, 0, "{name}: {bad} cropped bytes differ from torchvision");
    let got = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want = g["input"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(x.dims(), &[1, 3, 224, 224]);
    let bad = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(bad, 0, "{name}: {bad} input values differ from torchvision's (bitwise)");
}

#[test]
fn chelsea_matches_torchvision_input_exactly() {
    check_photo("chelsea");
}

#[test]
fn coffee_matches_torchvision_input_exactly() {
    check_photo("coffee");
}

#[test]
fn small_pipeline_is_normalise_half() {
    let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 255]));
    let (x, px) = small(&img, 32).unwrap();
    assert_eq!(px, img.as_raw().clone(), "same size: no resampling");
    let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(v[0], -1.0);
    assert_eq!(v[2 * 1024], 1.0);
    assert_eq!(v[1], (8f32 / 255.0 - 0.5) / 0.5);
}

#[test]
fn empty_image_is_an_error() {
    let e = imagenet(&image::RgbImage::new(0, 0)).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
}
