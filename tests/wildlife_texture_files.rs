//! `--textures DIR`: wildlife MNIST built from texture images in the CGN authors' layout
//! (DIR/object, DIR/background; ten images each, the i-th by file name for class i), through
//! the data generator, `intervene data build` and `train cgn` (whose resume refuses changed
//! images). The images here are made by the test: solid colours, so every pixel of a generated
//! image can be checked against the class its factors name.

use std::path::{Path, PathBuf};

use intervene::data::mnist::Mnist;
use intervene::data::texture_files::load_dir;
use intervene::data::variants::{generate_with_textures, Split, Variant, VariantConfig, SIZE};

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-texfiles-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn object_colour(k: usize) -> [u8; 3] {
    [20 * k as u8 + 5, 250 - 20 * k as u8, 17]
}

fn background_colour(k: usize) -> [u8; 3] {
    [3, 9 * k as u8 + 40, 200 - 11 * k as u8]
}

/// A texture folder of solid-colour PNGs (sizes differ from 150 and from each other), named so
/// that only sorting by name gives class order, with a stray text file that must be ignored.
fn write_textures(dir: &Path) {
    for (sub, colour) in [("object", object_colour as fn(usize) -> [u8; 3]), ("background", background_colour)] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        for k in (0..10).rev() {
            let img = image::RgbImage::from_pixel(37 + k as u32, 23, image::Rgb(colour(k)));
            img.save(d.join(format!("{k}_{sub}_{:04}.png", 99 - k))).unwrap();
        }
        std::fs::write(d.join("notes.txt"), "not an image").unwrap();
    }
}

/// 20 synthetic 28×28 digits (a bar whose position depends on the index), labels 0..9 twice.
fn digits() -> Mnist {
    let n = 20;
    let mut images = vec![0u8; n * 28 * 28];
    for i in 0..n {
        for r in 4..24 {
            for c in (6 + i % 10)..(10 + i % 10) {
                images[i * 784 + r * 28 + c] = 255;
            }
        }
    }
    Mnist { images, labels: (0..n).map(|i| (i % 10) as u8).collect(), rows: 28, cols: 28, sources: Vec::new() }
}

#[test]
fn each_class_wears_its_own_files_in_train_and_test() {
    let dir = tempdir("paint");
    write_textures(&dir);
    let set = load_dir(&dir).unwrap();
    assert_eq!((set.striped.len(), set.veined.len()), (10, 10));
    for k in 0..10 {
        assert_eq!(set.striped[k].size, 150);
        assert!(set.striped[k].pixels.chunks(3).all(|p| p == object_colour(k)), "object {k}");
        assert!(set.veined[k].pixels.chunks(3).all(|p| p == background_colour(k)), "background {k}");
    }
    let mnist = digits();
    for split in [Split::Train, Split::Test] {
        let cfg = VariantConfig::new(Variant::Wildlife, 3);
        let out = generate_with_textures(&cfg, split, &mnist, Some(&set), &|_| {}).unwrap();
        for i in 0..out.len() {
            let f = out.factors[i];
            if split == Split::Train {
                assert_eq!((f.texture, f.background), (f.shape, Some(f.shape)), "train is class-linked");
            }
            let mask = intervene::data::variants::digit_mask(mnist.image(i), 28, 28);
            let img = out.image(i);
            for p in 0..SIZE * SIZE {
                let want = if mask[p] {
                    object_colour(f.texture as usize)
                } else {
                    background_colour(f.background.unwrap() as usize)
                };
                assert_eq!(img[p * 3..p * 3 + 3], want, "{split:?} image {i} pixel {p}");
            }
        }
    }
    // The digest names the images, not the folder.
    let copy = tempdir("paint-copy");
    write_textures(&copy);
    assert_eq!(load_dir(&copy).unwrap().sha256(), set.sha256());
}

#[test]
fn bad_texture_folders_and_variants_are_refused_with_the_reason() {
    let missing = std::env::temp_dir().join("intervene-texfiles-none-here");
    let e = load_dir(&missing).unwrap_err().to_string();
    assert!(e.contains("no such folder") && e.contains("object/"), "{e}");

    let dir = tempdir("bad");
    write_textures(&dir);
    std::fs::remove_file(dir.join("background/3_background_0096.png")).unwrap();
    let e = load_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("background") && e.contains("found 9 image(s)") && e.contains("exactly ten"), "{e}");

    std::fs::write(dir.join("background/3_background_0096.jpg"), b"not a jpeg").unwrap();
    let e = load_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("3_background_0096.jpg") && e.contains("not a readable image"), "{e}");

    let good = tempdir("bad-good");
    write_textures(&good);
    let set = load_dir(&good).unwrap();
    let cfg = VariantConfig::new(Variant::DoubleColored, 0);
    let e = generate_with_textures(&cfg, Split::Train, &digits(), Some(&set), &|_| {}).unwrap_err().to_string();
    assert!(e.contains("double-colored has no textures"), "{e}");
}

#[test]
fn data_build_writes_the_images_textures_and_names_them_in_the_manifest() {
    let mnist = intervene::data::data_dir().join("mnist");
    assert!(mnist.is_dir(), "missing {}: run `bash tools/setup.sh data`", mnist.display());
    let tex = tempdir("cli-tex");
    write_textures(&tex);
    let out = tempdir("cli-out");
    let run = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_intervene")).args(args).output().unwrap();
    let t = tex.to_str().unwrap();
    let o = out.join("set");
    let r = run(&[
        "data",
        "build",
        "--variant",
        "wildlife",
        "--limit",
        "12",
        "--textures",
        t,
        "--out",
        o.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(o.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["details"]["textures_sha256"], load_dir(&tex).unwrap().sha256());
    assert!(m["details"]["texture_seed"].is_null());
    // A training image of class k is made of class k's two colours only.
    let first = std::fs::read_dir(o.join("train/4")).unwrap().next().unwrap().unwrap().path();
    let img = image::open(first).unwrap().to_rgb8();
    assert!(img.pixels().all(|p| p.0 == object_colour(4) || p.0 == background_colour(4)));
    let r =
        run(&["data", "build", "--variant", "colored", "--limit", "12", "--textures", t, "--out", o.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && e.contains("--textures applies to wildlife"), "{e}");
}

#[test]
fn a_cgn_run_on_texture_files_resumes_from_a_copy_but_not_on_changed_images() {
    use intervene::jobs::Control;
    use intervene::train::cgn::{train_cgn, CgnSettings, TextureFiles};
    let vgg = intervene::train::nets::vgg_gram::default_weights();
    assert!(vgg.is_file(), "missing {}: run `bash tools/setup.sh data`", vgg.display());
    let tex = tempdir("cgn-tex");
    write_textures(&tex);
    let settings = |dir: &Path, steps: u64| {
        let mut s = CgnSettings::recipe("wildlife").unwrap();
        (s.batch, s.steps, s.sample_every, s.checkpoint_every, s.threads) = (4, steps, 0, 100, 1);
        s.textures = Some(TextureFiles::open(dir).unwrap().0);
        s
    };
    let out = tempdir("cgn-out");
    train_cgn(&settings(&tex, 2), &out, false, None, &Control::new()).unwrap();
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("train.json")).unwrap()).unwrap();
    assert!(run.to_string().contains(&load_dir(&tex).unwrap().sha256()), "train.json records the digest");

    // The same images in another folder: the run continues.
    let moved = tempdir("cgn-tex-moved");
    write_textures(&moved);
    train_cgn(&settings(&moved, 3), &out, true, None, &Control::new()).unwrap();

    // Other images under the recorded settings: refused, and the run's files are kept.
    let s = settings(&moved, 4);
    image::RgbImage::from_pixel(9, 9, image::Rgb([1, 2, 3])).save(moved.join("object/0_object_0099.png")).unwrap();
    let before = std::fs::read(out.join("model.safetensors")).unwrap();
    let e = train_cgn(&s, &out, true, None, &Control::new()).unwrap_err().to_string();
    assert!(e.contains("changed since the run began"), "{e}");
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), before);
    // Settings naming other images do not resume the run either.
    let e = train_cgn(&settings(&moved, 4), &out, true, None, &Control::new()).unwrap_err().to_string();
    assert!(e.contains("other settings"), "{e}");
}
