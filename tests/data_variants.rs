//! Invariants of the colored / double-colored / wildlife MNIST variants, on synthetic digits
//! written as IDX files by the test: shapes, determinism across runs and thread counts,
//! class-linked colours and textures in train, unlinked ones in test, masks that follow the
//! binarisation, and the jitter's standard deviation.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::Device;
use intervene::data::mnist::{self, Mnist, MnistFile};
use intervene::data::textures::{self, TextureStyle, DEFAULT_TEXTURE_SEED};
use intervene::data::variants::{
    self, generate, object_color_index, Split, TestSource, Variant, VariantConfig, VariantSet, PALETTE,
};

/// A tiny LCG for the synthetic digits (independent of the crate's generators).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// `n` 28×28 "digits": a filled rectangle of intensity 200–255 with a soft edge of 10–40
/// (below the 0.1 threshold) and random labels.
fn synthetic(n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut r = Lcg(12345);
    let mut images = vec![0u8; n * 784];
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        labels.push((r.next() % 10) as u8);
        let (y0, x0) = (4 + r.next() as usize % 8, 4 + r.next() as usize % 8);
        let (h, w) = (4 + r.next() as usize % 10, 3 + r.next() as usize % 10);
        let ink = 200 + (r.next() % 56) as u8;
        let soft = 10 + (r.next() % 15) as u8;
        for y in y0 - 1..=y0 + h {
            for x in x0 - 1..=x0 + w {
                let edge = y == y0 - 1 || y == y0 + h || x == x0 - 1 || x == x0 + w;
                images[i * 784 + y * 28 + x] = if edge { soft } else { ink };
            }
        }
    }
    (images, labels)
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

/// A folder with synthetic train (n) and t10k (n/4) files.
fn mnist_dir(n: usize, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-data-variants-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let (images, labels) = synthetic(n);
    std::fs::write(d.join("train-images-idx3-ubyte"), idx(&[n as u32, 28, 28], &images)).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx(&[n as u32], &labels)).unwrap();
    let m = n / 4;
    std::fs::write(d.join("t10k-images-idx3-ubyte"), idx(&[m as u32, 28, 28], &images[..m * 784])).unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx(&[m as u32], &labels[..m])).unwrap();
    d
}

fn source(n: usize, tag: &str) -> Mnist {
    mnist::load(&mnist_dir(n, tag), MnistFile::Train).unwrap()
}

fn pixel(set: &VariantSet, i: usize, p: usize) -> [u8; 3] {
    let img = set.image(i);
    [img[p * 3], img[p * 3 + 1], img[p * 3 + 2]]
}

fn in_pool<T>(threads: usize, f: impl FnOnce() -> T + Send) -> T
where
    T: Send,
{
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

#[test]
fn shapes_ranges_and_determinism_across_thread_counts() {
    let src = source(600, "shapes");
    for variant in [Variant::Colored, Variant::DoubleColored, Variant::Wildlife] {
        let cfg = VariantConfig::new(variant, 11);
        for split in [Split::Train, Split::Test] {
            let a = in_pool(1, || generate(&cfg, split, &src).unwrap());
            let b = in_pool(3, || generate(&cfg, split, &src).unwrap());
            assert_eq!(a.images.len(), 600 * 32 * 32 * 3);
            assert_eq!(a.images, b.images, "{variant:?} {split:?}: thread count changed the images");
            assert_eq!(a.factors, b.factors);
            // Sample i depends only on (seed, split, i): a prefix generates the same images.
            let head = generate(&cfg, split, &src.slice(0..50)).unwrap();
            assert_eq!(head.images[..], a.images[..50 * 3072]);
            let other = generate(&VariantConfig::new(variant, 12), split, &src).unwrap();
            assert_ne!(other.images, a.images, "{variant:?}: the seed must matter");
            let t = a.to_tensor(10..14, &Device::Cpu).unwrap();
            assert_eq!(t.dims(), [4, 3, 32, 32]);
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
            // NCHW of image 10, channel 1, pixel (0, 5) = its HWC byte scaled to [−1, 1].
            assert_eq!(v[32 * 32 + 5], a.image(10)[5 * 3 + 1] as f32 / 255.0 * 2.0 - 1.0);
            assert_eq!(a.labels(), src.labels);
        }
    }
}

/// The 32×32 digit mask written out independently: nearest neighbour takes source row
/// `floor(r·28/32)`, and `v/255 > 0.1` holds exactly for v ≥ 26.
fn digit_mask(img: &[u8], rows: usize, cols: usize) -> Vec<bool> {
    assert_eq!((rows, cols), (28, 28));
    let src = |d: usize| (d as f64 * 0.875).floor() as usize;
    (0..1024).map(|p| img[src(p / 32) * 28 + src(p % 32)] >= 26).collect()
}

/// All digit pixels share one colour, all background pixels another; returns them.
fn two_colours(set: &VariantSet, src: &Mnist, i: usize) -> ([u8; 3], [u8; 3]) {
    let mask = digit_mask(src.image(i), 28, 28);
    let fg = mask.iter().position(|&m| m).expect("synthetic digits have ink");
    let bg = mask.iter().position(|&m| !m).expect("and background");
    let (cf, cb) = (pixel(set, i, fg), pixel(set, i, bg));
    for (p, &m) in mask.iter().enumerate() {
        assert_eq!(pixel(set, i, p), if m { cf } else { cb }, "image {i} pixel {p}: mask and colours disagree");
    }
    (cf, cb)
}

fn dist(a: [u8; 3], b: [u8; 3]) -> i32 {
    a.iter().zip(b).map(|(&x, y)| (x as i32 - y as i32).abs()).max().unwrap_or(0)
}

fn nearest(c: [u8; 3], palette: &[[u8; 3]]) -> usize {
    (0..palette.len()).min_by_key(|&k| dist(c, palette[k])).unwrap()
}

#[test]
fn double_colored_train_is_class_linked_and_test_is_not() {
    let src = source(2000, "double");
    let cfg = VariantConfig::new(Variant::DoubleColored, 3);
    let train = generate(&cfg, Split::Train, &src).unwrap();
    let test = generate(&cfg, Split::Test, &src).unwrap();
    let digit_palette: Vec<[u8; 3]> = (0..10).map(|k| PALETTE[object_color_index(k)]).collect();
    let (mut bg_hits, mut jitter, mut n_jitter) = (0, 0.0f64, 0usize);
    for i in 0..train.len() {
        let k = src.labels[i] as usize;
        let f = train.factors[i];
        assert_eq!((f.texture, f.background), (k as u8, Some(k as u8)));
        let (cf, cb) = two_colours(&train, &src, i);
        // ±5σ of N(0, 0.01) on the 0..255 scale is ±12.75.
        assert!(dist(cb, PALETTE[k]) <= 13, "background {cb:?} vs class colour {:?}", PALETTE[k]);
        assert!(dist(cf, digit_palette[k]) <= 13, "digit {cf:?} vs {:?}", digit_palette[k]);
        bg_hits += (nearest(cb, &PALETTE) == k) as usize;
        for c in 0..3 {
            // Channels away from 0 and 255 are not clamped: their spread is the jitter's std.
            if (20..236).contains(&PALETTE[k][c]) {
                jitter += ((cb[c] as f64 - PALETTE[k][c] as f64) / 255.0).powi(2);
                n_jitter += 1;
            }
        }
    }
    assert_eq!(bg_hits, train.len(), "a nearest-class-colour classifier is perfect on train");
    let std = (jitter / n_jitter as f64).sqrt();
    assert!((0.0085..0.0115).contains(&std), "jitter std {std} (0.01 is the std, not the variance)");

    // Test: colours drawn at random, independent of the label and of each other.
    let (mut hits, mut same, mut counts) = (0, 0, [0usize; 10]);
    for i in 0..test.len() {
        let f = test.factors[i];
        let (cf, cb) = two_colours(&test, &src, i);
        let b = f.background.unwrap() as usize;
        assert!(dist(cb, PALETTE[b]) <= 13 && dist(cf, digit_palette[f.texture as usize]) <= 13);
        hits += (nearest(cb, &PALETTE) == src.labels[i] as usize) as usize;
        same += (f.texture as usize == b) as usize;
        counts[b] += 1;
    }
    let acc = hits as f64 / test.len() as f64;
    assert!((0.06..0.14).contains(&acc), "class-colour classifier on test: {acc} (chance is 0.1)");
    assert!((0.06..0.14).contains(&(same as f64 / test.len() as f64)));
    assert!(counts.iter().all(|&c| (140..260).contains(&c)), "background classes uniform: {counts:?}");
}

#[test]
fn colored_strokes_carry_the_class_colour_on_black() {
    let src = source(2000, "colored");
    let cfg = VariantConfig::new(Variant::Colored, 5);
    let train = generate(&cfg, Split::Train, &src).unwrap();
    let test = generate(&cfg, Split::Test, &src).unwrap();
    let mut sums = [[0f64; 3]; 10];
    let mut n = [0usize; 10];
    let mut sq = 0.0;
    let mut nsq = 0;
    for i in 0..train.len() {
        let k = src.labels[i] as usize;
        let (cf, cb) = two_colours(&train, &src, i);
        assert_eq!(cb, [0, 0, 0]);
        assert_eq!(train.factors[i].background, None);
        for c in 0..3 {
            sums[k][c] += cf[c] as f64;
            if (60..196).contains(&PALETTE[k][c]) {
                sq += ((cf[c] as f64 - PALETTE[k][c] as f64) / 255.0).powi(2);
                nsq += 1;
            }
        }
        n[k] += 1;
    }
    // Interior channels: std ≈ sqrt(0.02) = 0.141 (the clamp trims a little).
    let std = (sq / nsq as f64).sqrt();
    assert!((0.12..0.16).contains(&std), "colored jitter std {std}, want sqrt(0.02)");
    // Class means sit near the palette (clamping pulls 0/255 channels inwards).
    for k in 0..10 {
        let mean = sums[k].map(|s| s / n[k] as f64);
        for c in 0..3 {
            assert!((mean[c] - PALETTE[k][c] as f64).abs() < 40.0, "class {k} mean {mean:?}");
        }
    }
    let linked = (0..test.len()).filter(|&i| test.factors[i].texture == src.labels[i]).count() as f64;
    assert!((0.06..0.14).contains(&(linked / test.len() as f64)));
}

#[test]
fn wildlife_pixels_come_from_the_class_textures() {
    for (variant, style) in [(Variant::Wildlife, TextureStyle::Classic), (Variant::WildlifeV2, TextureStyle::Contrast)]
    {
        wildlife_pixels(variant, style);
    }
}

fn wildlife_pixels(variant: Variant, style: TextureStyle) {
    let src = source(400, "wildlife");
    let cfg = VariantConfig::new(variant, 9);
    let striped: Vec<HashSet<[u8; 3]>> = textures::striped_set(DEFAULT_TEXTURE_SEED, style)
        .iter()
        .map(|t| t.pixels.chunks(3).map(|p| [p[0], p[1], p[2]]).collect())
        .collect();
    let veined: Vec<HashSet<[u8; 3]>> = textures::veined_set(DEFAULT_TEXTURE_SEED, style)
        .iter()
        .map(|t| t.pixels.chunks(3).map(|p| [p[0], p[1], p[2]]).collect())
        .collect();
    for split in [Split::Train, Split::Test] {
        let set = generate(&cfg, split, &src).unwrap();
        let mut linked = 0;
        for i in 0..set.len() {
            let f = set.factors[i];
            let (t, b) = (f.texture as usize, f.background.unwrap() as usize);
            if split == Split::Train {
                assert_eq!((t, b), (src.labels[i] as usize, src.labels[i] as usize));
            }
            linked += (t == src.labels[i] as usize) as usize;
            let mask = digit_mask(src.image(i), 28, 28);
            let (mut fg_own, mut bg_own, mut nf, mut nb) = (0, 0, 0, 0);
            for (p, &m) in mask.iter().enumerate() {
                let c = pixel(&set, i, p);
                if m {
                    nf += 1;
                    fg_own += striped[t].contains(&c) as usize;
                } else {
                    nb += 1;
                    bg_own += veined[b].contains(&c) as usize;
                }
            }
            assert_eq!((fg_own, bg_own), (nf, nb), "image {i}: every pixel comes from its own texture");
        }
        if split == Split::Test {
            assert!(linked < set.len() / 4, "test textures are not tied to the class ({linked})");
        }
    }
    // Crops vary per image: two train images of one class differ in their background pixels.
    let set = generate(&cfg, Split::Train, &src).unwrap();
    let k = src.labels[0];
    let j = (1..src.len()).find(|&j| src.labels[j] == k).unwrap();
    let corner = |i: usize| (0..32).map(|c| pixel(&set, i, c)).collect::<Vec<_>>();
    assert_ne!(corner(0), corner(j));
}

#[test]
fn splits_follow_the_reference_and_t10k_is_optional() {
    let dir = mnist_dir(200, "splits");
    let (train, test) = variants::source_splits(&dir, TestSource::Holdout, None).unwrap();
    assert_eq!((train.len(), test.len()), (200, 0), "fewer than 50,000 images: all go to train");
    let (train, test) = variants::source_splits(&dir, TestSource::T10k, Some(30)).unwrap();
    assert_eq!((train.len(), test.len()), (30, 30));
    let (a, b) = variants::build(&VariantConfig::new(Variant::DoubleColored, 1), &dir, TestSource::T10k).unwrap();
    assert_eq!((a.len(), b.len(), a.split, b.split), (200, 50, Split::Train, Split::Test));
    let e = variants::source_splits(Path::new("/nonexistent/mnist"), TestSource::Holdout, None).unwrap_err();
    assert!(e.to_string().contains("tools/setup.sh data"), "{e}");
}

#[test]
fn real_mnist_splits_are_50k_and_10k() {
    let dir = intervene::data::data_dir().join("mnist");
    assert!(dir.is_dir(), "MNIST is missing at {}: run `bash tools/setup.sh data`", dir.display());
    let (train, test) = variants::source_splits(&dir, TestSource::Holdout, None).unwrap();
    assert_eq!((train.len(), test.len()), (50_000, 10_000));
    // The reference's holdout: training images 50,000.. (per-class counts of that slice).
    assert_eq!(test.class_counts(), [991, 1064, 990, 1030, 983, 915, 967, 1090, 1009, 961]);
    let set = generate(&VariantConfig::new(Variant::DoubleColored, 0), Split::Test, &test.slice(0..500)).unwrap();
    for i in 0..set.len() {
        two_colours(&set, &test, i);
    }
}

/// Digit/background separation of a wildlife train split: per image, the distance between the
/// mean digit colour and the mean background colour over the mean within-region RMS spread,
/// averaged over images (the measure of RESULTS.md §1).
fn separation(variant: Variant, src: &Mnist) -> f64 {
    let set = generate(&VariantConfig::new(variant, 3), Split::Train, src).unwrap();
    let mut total = 0.0;
    for i in 0..set.len() {
        let mask = digit_mask(src.image(i), 28, 28);
        let (mut sum, mut n) = ([[0f64; 3]; 2], [0f64; 2]);
        for (p, &m) in mask.iter().enumerate() {
            let c = pixel(&set, i, p);
            for k in 0..3 {
                sum[m as usize][k] += c[k] as f64;
            }
            n[m as usize] += 1.0;
        }
        let mean: [[f64; 3]; 2] = std::array::from_fn(|r| sum[r].map(|s| s / n[r]));
        let mut sq = [0f64; 2];
        for (p, &m) in mask.iter().enumerate() {
            let c = pixel(&set, i, p);
            sq[m as usize] += (0..3).map(|k| (c[k] as f64 - mean[m as usize][k]).powi(2)).sum::<f64>();
        }
        let spread = ((sq[0] / n[0]).sqrt() + (sq[1] / n[1]).sqrt()) / 2.0;
        let d = (0..3).map(|k| (mean[0][k] - mean[1][k]).powi(2)).sum::<f64>().sqrt();
        total += d / spread;
    }
    total / set.len() as f64
}

#[test]
fn wildlife_v2_separates_digit_from_background() {
    let src = source(300, "wildlife-contrast");
    let (v1, v2) = (separation(Variant::Wildlife, &src), separation(Variant::WildlifeV2, &src));
    eprintln!("separation: wildlife {v1:.2}, wildlife-v2 {v2:.2}");
    assert!(v1 < 1.5, "wildlife (version 1) separation {v1}");
    assert!(v2 > 2.0 * v1, "wildlife-v2 separation {v2} vs {v1}");
}
