//! Image folders as the explanation tools read them: images per class (class subfolders named
//! by wnid, ImageNet name or index, or an export folder's `labels.csv`), and a classifier's
//! penultimate features of a list of files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// Images per class: subfolders `{class}/` (wnid, ImageNet name or index), or an export folder
/// with `labels.csv` (the shape class labels an image). Sorted by path.
pub fn images_by_class(dir: &Path, num_classes: usize) -> anyhow::Result<BTreeMap<usize, Vec<PathBuf>>> {
    let mut out: BTreeMap<usize, Vec<PathBuf>> = Default::default();
    let labels = dir.join("labels.csv");
    if labels.is_file() {
        for (_, file, l) in crate::jobs::cgn_export::read_labels(&labels)? {
            out.entry(l.shape).or_default().push(dir.join(file));
        }
    } else {
        let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for e in entries {
            let p = e?.path();
            if !p.is_dir() {
                continue;
            }
            let name = p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let Ok(class) = crate::classes::resolve(&name, num_classes) else {
                tracing::warn!("{}: not a class name, skipped", p.display());
                continue;
            };
            let files = out.entry(class).or_default();
            for f in std::fs::read_dir(&p)? {
                let f = f?.path();
                let ext = f.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
                if matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
                    files.push(f);
                }
            }
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out.retain(|_, v| !v.is_empty());
    if out.is_empty() {
        bail!("{} holds no images in class subfolders (or labels.csv)", dir.display());
    }
    Ok(out)
}

/// Pooled (penultimate) features of image files, `[n, F]` row-major, preprocessed as `cam` does
/// (read 16 at a time).
pub fn features(opened: &crate::models::classifier::Opened, files: &[PathBuf]) -> anyhow::Result<(Vec<f32>, usize)> {
    features_with(opened, files, &crate::jobs::Control::new())
}

/// [`features`] as part of a job: checks for a cancel between chunks and counts images.
pub fn features_with(
    opened: &crate::models::classifier::Opened,
    files: &[PathBuf],
    control: &crate::jobs::Control,
) -> anyhow::Result<(Vec<f32>, usize)> {
    let mut out = Vec::new();
    let mut f = 0;
    for chunk in files.chunks(16) {
        control.check()?;
        let imgs = chunk
            .iter()
            .map(|p| {
                let img = image::open(p).with_context(|| format!("cannot read image {}", p.display()))?.to_rgb8();
                let (w, h) = (img.width() as usize, img.height() as usize);
                Ok(crate::imageio::RgbImage { width: w, height: h, pixels: img.into_raw() })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (v, fd) = crate::explain::sweep::image_features(opened, &imgs)?;
        out.extend(v);
        f = fd;
        control.advance(chunk.len() as u64);
    }
    Ok((out, f))
}

/// The real images of `class` in `dir`: its class subfolder when `dir` has class subfolders (or
/// is an export folder), else every image directly in `dir`.
pub fn real_images(dir: &Path, class: usize, num_classes: usize) -> anyhow::Result<Vec<PathBuf>> {
    if let Ok(mut by) = images_by_class(dir, num_classes) {
        if let Some(v) = by.remove(&class) {
            return Ok(v);
        }
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
            matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
        })
        .collect();
    v.sort();
    if v.is_empty() {
        bail!("no real images of class {class} in {}", dir.display());
    }
    Ok(v)
}
