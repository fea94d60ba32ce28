//! GenInt's transfer step (Mao et al., 2021, §4.3, X_itr): carry generated interventions onto
//! real images by style transfer — content = a real image, style = a random intervened image,
//! label = the real image's. We use AdaIN ([`crate::models::adain`], the real VGG-19 encoder
//! and trained decoder) as the fast transfer with the same intent as GenInt's Gatys optimisation
//! (content = a real image, style = a random intervened image, label = the real image's).
//!
//! Inputs: `content` and `style` are folders of images (`.png`, `.jpg`, `.jpeg`, searched
//! recursively, hidden files skipped, sorted by relative path) — typically an ImageFolder of
//! real images and a `intervene export genint` ImageFolder export. Both are resized
//! (torchvision's `Resize(size)`, PIL's antialiased bilinear) and centre-cropped to `size²`.
//!
//! Output: the content's tree, each image at its relative path with the output format's
//! extension (so class folders, i.e. labels, carry over); `manifest.json` (settings, including
//! a fingerprint of both file lists, so a resume on changed folders is refused) and, once the
//! set is complete, `manifest.jsonl` (index, file, content, style, alpha).
//!
//! Determinism and job semantics as the GenInt export: the style of content image `i` is
//! drawn from (seed, i) only; units of [`CHUNK`] content images; atomic files; resume; shards.

use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::image_sink::{ImageFormat, Sink};
use super::{Control, Job, Shard};
use crate::imageio::RgbImage;
use crate::models::adain::{to_chw01, to_image, Adain};
use crate::noise::Rng;

/// Content images per unit.
pub const CHUNK: usize = 4;
/// Default side of the transferred images.
pub const DEFAULT_SIZE: u32 = 256;
const FORMAT_VERSION: u32 = 1;
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Everything that determines the output (`manifest.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub content: String,
    pub style: String,
    /// Content and style image counts and a fingerprint of both sorted file lists.
    pub content_images: usize,
    pub style_images: usize,
    pub listing_fnv64: String,
    pub alpha: f32,
    pub size: u32,
    pub seed: u64,
    pub format: ImageFormat,
    /// Folder of `vgg_normalized.pth` and `decoder.pth`.
    pub weights: String,
    pub format_version: u32,
}

/// One line of `manifest.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestLine {
    pub index: usize,
    /// Output file, relative to the output folder.
    pub file: String,
    /// Content and style images, relative to their folders.
    pub content: String,
    pub style: String,
    pub alpha: f32,
}

/// What to transfer (plain arguments for the command line and the window).
#[derive(Debug, Clone)]
pub struct Request {
    pub content: PathBuf,
    pub style: PathBuf,
    pub out: PathBuf,
    pub alpha: f32,
    pub size: u32,
    pub seed: u64,
    pub format: ImageFormat,
    pub weights: PathBuf,
    pub shard: Shard,
    pub resume: bool,
}

/// Image files under `dir`, recursively, sorted by relative path; hidden entries skipped.
pub fn list_images(dir: &Path, what: &str) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{what} {} is not a folder", dir.display());
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot read {what} folder {}", d.display()))? {
            let p = e?.path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
            {
                out.push(p.strip_prefix(dir).unwrap_or(&p).to_path_buf());
            }
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("{what} {} holds no image (.png, .jpg, .jpeg)", dir.display());
    }
    Ok(out)
}

/// FNV-1a over the relative paths of both lists (a changed folder changes the settings).
fn fingerprint(content: &[PathBuf], style: &[PathBuf]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in content.iter().chain([PathBuf::from("\0")].iter()).chain(style) {
        for b in p.to_string_lossy().bytes().chain([0u8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Reads an image as RGB, resized (shorter side `size`, PIL bilinear) and centre-cropped to `size²`.
pub fn load_square(path: &Path, size: u32, what: &str) -> anyhow::Result<RgbImage> {
    let img = image::open(path).with_context(|| format!("cannot read {what} image {}", path.display()))?.to_rgb8();
    anyhow::ensure!(img.width() > 0 && img.height() > 0, "{what} image {} is empty", path.display());
    let (nw, nh) = crate::preprocess::resize_shorter_side(img.width(), img.height(), size);
    let r = crate::preprocess::pil_resize_bilinear(&img, nw, nh);
    let (top, left) = crate::preprocess::center_crop_origin(nw, nh, size, size);
    let crop = image::imageops::crop_imm(&r, left, top, size, size).to_image();
    Ok(RgbImage { width: size as usize, height: size as usize, pixels: crop.into_raw() })
}

/// The transfer as a [`Job`].
pub struct Transfer {
    pub settings: Settings,
    pub out: PathBuf,
    content_dir: PathBuf,
    style_dir: PathBuf,
    content: Vec<PathBuf>,
    style: Vec<PathBuf>,
    net: Adain,
    sink: Option<Sink>,
}

impl Transfer {
    /// Lists both folders, opens the weights and reads the first content and style images (so a
    /// folder of unreadable files fails before anything is written).
    pub fn new(req: &Request) -> anyhow::Result<Self> {
        if !(req.alpha.is_finite() && (0.0..=1.0).contains(&req.alpha)) {
            bail!("--alpha must lie in [0, 1], got {}", req.alpha);
        }
        if req.size < 16 || !req.size.is_multiple_of(8) {
            bail!("--size must be a multiple of 8 and at least 16, got {}", req.size);
        }
        let content = list_images(&req.content, "--content")?;
        let style = list_images(&req.style, "--style")?;
        let mut outputs = std::collections::HashMap::new();
        for c in &content {
            if let Some(prev) = outputs.insert(c.with_extension(""), c) {
                bail!(
                    "--content has {} and {}: both would be written as {}",
                    prev.display(),
                    c.display(),
                    c.with_extension(req.format.extension()).display()
                );
            }
        }
        load_square(&req.content.join(&content[0]), req.size, "--content")?;
        load_square(&req.style.join(&style[0]), req.size, "--style")?;
        let net = Adain::open(&req.weights)?;
        let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
        let settings = Settings {
            content: abs(&req.content),
            style: abs(&req.style),
            content_images: content.len(),
            style_images: style.len(),
            listing_fnv64: fingerprint(&content, &style),
            alpha: req.alpha,
            size: req.size,
            seed: req.seed,
            format: req.format,
            weights: abs(&req.weights),
            format_version: FORMAT_VERSION,
        };
        Ok(Self {
            settings,
            out: req.out.clone(),
            content_dir: req.content.clone(),
            style_dir: req.style.clone(),
            content,
            style,
            net,
            sink: None,
        })
    }

    /// The style image paired with content image `i`.
    pub fn style_of(&self, i: usize) -> usize {
        let mut r = Rng::new(self.settings.seed ^ 0x57_1E00_0000 ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.below(self.style.len() as u64) as usize
    }

    /// Output path of content image `i`.
    pub fn output_path(&self, i: usize) -> PathBuf {
        self.out.join(self.content[i].with_extension(self.settings.format.extension()))
    }

    fn range(&self, unit: usize) -> Range<usize> {
        let n = self.content.len();
        (unit * CHUNK).min(n)..((unit + 1) * CHUNK).min(n)
    }

    /// Whether every output of the whole set exists.
    pub fn is_finished(&self) -> bool {
        (0..self.units()).all(|u| self.is_complete(u))
    }

    /// The manifest line of content image `i`.
    pub fn manifest_line(&self, i: usize) -> ManifestLine {
        let p = self.output_path(i);
        ManifestLine {
            index: i,
            file: p.strip_prefix(&self.out).unwrap_or(&p).display().to_string(),
            content: self.content[i].display().to_string(),
            style: self.style[self.style_of(i)].display().to_string(),
            alpha: self.settings.alpha,
        }
    }

    /// Writes `manifest.jsonl` for the whole set.
    pub fn write_manifest(&self) -> anyhow::Result<PathBuf> {
        let path = self.out.join("manifest.jsonl");
        crate::imageio::write_atomically(&path, |tmp| {
            let mut w = std::io::BufWriter::new(std::fs::File::create(tmp)?);
            for i in 0..self.content.len() {
                serde_json::to_writer(&mut w, &self.manifest_line(i))?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            Ok(())
        })
        .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// The transferred image of content `i` (as written).
    pub fn render(&self, i: usize) -> anyhow::Result<RgbImage> {
        let size = self.settings.size;
        let c = load_square(&self.content_dir.join(&self.content[i]), size, "--content")?;
        let s = load_square(&self.style_dir.join(&self.style[self.style_of(i)]), size, "--style")?;
        let (fc, dc) = self.net.encode(&to_chw01(&c), c.height, c.width)?;
        let (fs, _) = self.net.encode(&to_chw01(&s), s.height, s.width)?;
        let (out, dims) = self.net.decode_mix(&fc, dc, &fs, self.settings.alpha)?;
        Ok(to_image(&out, dims))
    }

    /// Waits for queued writes.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        match self.sink.take() {
            Some(s) => s.finish(),
            None => Ok(()),
        }
    }
}

impl Job for Transfer {
    fn units(&self) -> usize {
        self.content.len().div_ceil(CHUNK)
    }

    /// Progress and rate count images, not chunks.
    fn unit_items(&self, unit: usize) -> u64 {
        self.range(unit).len() as u64
    }

    fn is_complete(&self, unit: usize) -> bool {
        self.range(unit).all(|i| self.output_path(i).is_file())
    }

    fn run_unit(&mut self, unit: usize) -> anyhow::Result<u64> {
        let mut written = 0;
        for i in self.range(unit) {
            let path = self.output_path(i);
            if path.is_file() {
                continue;
            }
            let img = self.render(i)?;
            if self.sink.is_none() {
                self.sink = Some(Sink::new(true)?);
            }
            self.sink.as_mut().context("no sink")?.image(path, img, self.settings.format)?;
            written += 1;
        }
        Ok(written)
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub summary: super::Summary,
    pub finished: bool,
    pub manifest: Option<PathBuf>,
}

/// Runs the transfer: checks the inputs, claims `out`, runs this shard's units, flushes, and
/// writes `manifest.jsonl` when the whole set is present.
pub fn run(req: &Request, control: &Control) -> anyhow::Result<Report> {
    let mut job = Transfer::new(req)?;
    let out = &req.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let shared = req.resume || req.shard.count > 1;
    super::claim_directory(out, &serde_json::to_value(&job.settings)?, shared)
        .with_context(|| format!("cannot use the output folder {}", out.display()))?;
    let result = super::run(&mut job, req.shard, shared, control, &mut |_| {});
    let flushed = job.flush();
    let summary = result?;
    flushed?;
    if summary.cancelled {
        return Err(super::genint_export::cancelled_error());
    }
    let finished = job.is_finished();
    let manifest = if finished { Some(job.write_manifest()?) } else { None };
    Ok(Report { summary, finished, manifest })
}
