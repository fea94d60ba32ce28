//! IDX reading and MNIST loading: tiny IDX files written by the test itself (raw and gzip,
//! both file-name spellings, broken headers), and the real MNIST / Fashion-MNIST files that
//! `tools/setup.sh data` fetches into `$INTERVENE_DATA`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use intervene::data::idx::{parse_idx, read_idx};
use intervene::data::mnist::{self, MnistFile};

/// An IDX file of u8 elements, written independently of the reader.
fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-data-mnist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Three 2×3 "images" with labels 7, 0, 9.
fn write_tiny(dir: &Path, images: &str, labels: &str, gz: bool) {
    let img: Vec<u8> = (0..18).collect();
    let mut i = idx_bytes(&[3, 2, 3], &img);
    let mut l = idx_bytes(&[3], &[7, 0, 9]);
    if gz {
        i = gzip(&i);
        l = gzip(&l);
    }
    std::fs::write(dir.join(images), i).unwrap();
    std::fs::write(dir.join(labels), l).unwrap();
}

#[test]
fn reads_raw_and_gzip_idx() {
    let d = tmp("idx");
    let bytes = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    std::fs::write(d.join("a"), &bytes).unwrap();
    std::fs::write(d.join("a.gz"), gzip(&bytes)).unwrap();
    // gzip is recognised by content, so a compressed file without .gz also reads.
    std::fs::write(d.join("b"), gzip(&bytes)).unwrap();
    for f in ["a", "a.gz", "b"] {
        let a = read_idx(&d.join(f)).unwrap();
        assert_eq!(a.dims, [2, 3]);
        assert_eq!(a.data, [1, 2, 3, 4, 5, 6]);
    }
}

#[test]
fn broken_idx_files_are_rejected_with_the_file_name() {
    let p = Path::new("some/file-idx3-ubyte");
    let err = |b: &[u8]| parse_idx(b, p).unwrap_err().to_string();
    let e = err(&[1, 0, 8, 1, 0, 0, 0, 0]);
    assert!(e.contains("some/file-idx3-ubyte") && e.contains("not an IDX file"), "{e}");
    assert!(err(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).contains("element type 0x0d"));
    assert!(err(&[0, 0, 8]).contains("too short"));
    assert!(err(&[0, 0, 8, 3, 0, 0, 0, 1]).contains("truncated IDX header"));
    assert!(err(&idx_bytes(&[2, 2], &[1, 2, 3])).contains("need 4 bytes of data, the file has 3 (truncated)"));
    assert!(err(&idx_bytes(&[2], &[1, 2, 3])).contains("trailing bytes"));
    assert!(err(&[0, 0, 8, 0]).contains("0 dimensions"));
    let d = tmp("badgz");
    std::fs::write(d.join("x.gz"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    assert!(read_idx(&d.join("x.gz")).unwrap_err().to_string().contains("gzip"));
}

#[test]
fn loads_both_spellings_with_and_without_gzip() {
    for (images, labels, gz) in [
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", false),
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", true),
        ("train-images.idx3-ubyte", "train-labels.idx1-ubyte", false),
        ("train-images.idx3-ubyte.gz", "train-labels.idx1-ubyte.gz", true),
    ] {
        let d = tmp("spell");
        write_tiny(&d, images, labels, gz);
        let m = mnist::load(&d, MnistFile::Train).unwrap();
        assert_eq!((m.len(), m.rows, m.cols), (3, 2, 3));
        assert_eq!(m.labels, [7, 0, 9]);
        assert_eq!(m.image(1), [6, 7, 8, 9, 10, 11]);
        assert_eq!(m.sources[0].path, d.join(images));
        assert_eq!(m.sources[0].bytes, std::fs::metadata(d.join(images)).unwrap().len());
        assert_eq!(m.class_counts()[7], 1);
        assert_eq!(m.slice(1..3).labels, [0, 9]);
    }
}

#[test]
fn inconsistent_pairs_and_missing_files_are_explained() {
    let d = tmp("bad");
    std::fs::write(d.join("t10k-images-idx3-ubyte"), idx_bytes(&[2, 1, 1], &[0, 0])).unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx_bytes(&[3], &[0, 1, 2])).unwrap();
    let e = mnist::load(&d, MnistFile::Test).unwrap_err().to_string();
    assert!(e.contains("3 labels for 2 images"), "{e}");
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx_bytes(&[2], &[0, 10])).unwrap();
    let e = mnist::load(&d, MnistFile::Test).unwrap_err().to_string();
    assert!(e.contains("label 10 at index 1"), "{e}");
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx_bytes(&[2, 1], &[0, 1])).unwrap();
    assert!(mnist::load(&d, MnistFile::Test).unwrap_err().to_string().contains("expected 1 dimension"));
    let e = mnist::load(&d, MnistFile::Train).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("tools/setup.sh data"), "{e}");
}

fn data_dir() -> PathBuf {
    std::env::var_os("INTERVENE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".data"))
}

fn require(dir: &Path, what: &str) {
    assert!(
        dir.is_dir(),
        "{what} is missing at {}: run `bash tools/setup.sh data` (the README test command does) or set INTERVENE_DATA",
        dir.display()
    );
}

#[test]
fn real_mnist_has_the_published_label_counts() {
    let dir = data_dir().join("mnist");
    require(&dir, "MNIST");
    let train = mnist::load(&dir, MnistFile::Train).unwrap();
    assert_eq!((train.len(), train.rows, train.cols), (60_000, 28, 28));
    // DATA.md: the canonical training label counts.
    assert_eq!(train.class_counts(), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    let test = mnist::load(&dir, MnistFile::Test).unwrap();
    assert_eq!(test.class_counts(), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    // Digits are white on black: the border is background, the centre has ink.
    let mean = |f: &dyn Fn(usize, usize) -> bool| {
        let (mut s, mut n) = (0u64, 0u64);
        for i in 0..1000 {
            let img = train.image(i);
            #[allow(clippy::needless_range_loop)] // p is the pixel position, read as (row, column)
            for p in 0..784 {
                if f(p / 28, p % 28) {
                    s += img[p] as u64;
                    n += 1;
                }
            }
        }
        s as f64 / n as f64
    };
    assert!(mean(&|r, c| r == 0 || c == 0 || r == 27 || c == 27) < 1.0);
    assert!(mean(&|r, c| (10..18).contains(&r) && (10..18).contains(&c)) > 60.0);
}

#[test]
fn real_fashion_mnist_is_balanced() {
    let dir = data_dir().join("fashion-mnist");
    require(&dir, "Fashion-MNIST");
    let train = mnist::load(&dir, MnistFile::Train).unwrap();
    let test = mnist::load(&dir, MnistFile::Test).unwrap();
    assert_eq!(train.class_counts(), [6000; 10]);
    assert_eq!(test.class_counts(), [1000; 10]);
    assert!(train.sources[0].path.to_string_lossy().ends_with(".gz"));
}
