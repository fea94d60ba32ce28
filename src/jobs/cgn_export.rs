//! Counterfactual data sets from a CGN, the authors' procedure (`mnists/generate_data.py`,
//! `imagenet/generate_data.py`): draw a shape class and its mask once, then K counterfactual
//! texture/background draws on that mask; the label is the shape class.
//!
//! Determinism: everything about shape draw `i` (its class, noise, the K texture and
//! background classes and noises, MNIST's texture shifts) comes from `Rng(seed, i)`, so a
//! draw's images do not depend on which other draws run with it. Draws are processed in fixed
//! chunks of [`CHUNK`] (the unit of resume and sharding), so even the float arithmetic of a
//! batched forward is the same in a sharded, resumed or single run.
//!
//! One difference from the authors, on purpose: they permute the batch's shape labels to get
//! texture/background labels; we draw them uniformly per image. Both give uniform, (nearly)
//! independent classes; ours does not tie an image to its batch neighbours.
//!
//! Layouts: `cgn` — `images/{index:08}.png` + `labels.csv` (index, file, shape, texture,
//! background); `imagefolder` — `{shape}/{index:08}.png` (torchvision `ImageFolder`) + the same
//! `labels.csv`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use candle_core::{Device, Tensor};

use super::{Control, Job, Shard, Summary};
use crate::imageio::{self, RgbImage};
use crate::models::cgn::CgnModel;
use crate::models::cgn_imagenet::mask_from_premask;
use crate::models::cgn_mnist::{self, Shifts};
use crate::noise::Rng;

/// Shape draws per unit (a batched forward; also the resume / shard granularity).
pub const CHUNK: usize = 16;

/// Where images go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Cgn,
    ImageFolder,
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cgn" => Ok(Self::Cgn),
            "imagefolder" | "image-folder" => Ok(Self::ImageFolder),
            _ => Err(format!("unknown layout '{s}': use cgn or imagefolder")),
        }
    }
}

/// The labels of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels {
    pub shape: usize,
    pub texture: usize,
    pub background: usize,
}

/// Settings of an export (also its `manifest.json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub model: String,
    /// Images in total: `shape_draws · cf_per_shape` (rounded up to whole shape draws).
    pub n: usize,
    pub cf_per_shape: usize,
    pub seed: u64,
    pub layout: Layout,
    /// ImageNet CGN truncation (ignored for MNIST).
    pub truncation: f64,
    pub format_version: u32,
}

impl Settings {
    pub fn shape_draws(&self) -> usize {
        self.n.div_ceil(self.cf_per_shape.max(1))
    }
}

/// The CGN export as a [`Job`].
pub struct CgnExport {
    pub settings: Settings,
    pub out: PathBuf,
    model: CgnModel,
    device: Device,
    num_classes: usize,
}

/// Per-draw random choices.
struct Draw {
    shape: usize,
    /// (texture, background) per counterfactual.
    cf: Vec<(usize, usize)>,
    rng_seed: u64,
}

impl CgnExport {
    pub fn new(model: CgnModel, settings: Settings, out: PathBuf, device: Device) -> Self {
        let num_classes = model.num_classes();
        Self { settings, out, model, device, num_classes }
    }

    /// The seed of draw `i`'s stream.
    fn draw_seed(&self, i: usize) -> u64 {
        let mut r = Rng::new(self.settings.seed ^ 0xC6E0_0000_0000);
        r.next_u64() ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn draw(&self, i: usize) -> Draw {
        let rng_seed = self.draw_seed(i);
        let mut r = Rng::new(rng_seed);
        let n = self.num_classes as u64;
        let shape = r.below(n) as usize;
        let cf = (0..self.settings.cf_per_shape).map(|_| (r.below(n) as usize, r.below(n) as usize)).collect();
        Draw { shape, cf, rng_seed }
    }

    /// Labels of every image, in index order.
    pub fn labels(&self) -> Vec<Labels> {
        (0..self.settings.shape_draws())
            .flat_map(|i| {
                let d = self.draw(i);
                d.cf.into_iter().map(move |(t, b)| Labels { shape: d.shape, texture: t, background: b })
            })
            .collect()
    }

    /// Path of image `index` with shape class `shape`.
    pub fn image_path(&self, index: usize, shape: usize) -> PathBuf {
        match self.settings.layout {
            Layout::Cgn => self.out.join("images").join(format!("{index:08}.png")),
            Layout::ImageFolder => self.out.join(format!("{shape}")).join(format!("{index:08}.png")),
        }
    }

    fn draws_of(&self, unit: usize) -> std::ops::Range<usize> {
        let total = self.settings.shape_draws();
        (unit * CHUNK).min(total)..((unit + 1) * CHUNK).min(total)
    }

    /// Writes `labels.csv` for the whole set (deterministic, so shards may all write it).
    pub fn write_labels(&self) -> anyhow::Result<PathBuf> {
        let mut s = String::from("index,file,shape,texture,background\n");
        for (i, l) in self.labels().iter().enumerate() {
            let p = self.image_path(i, l.shape);
            let rel = p.strip_prefix(&self.out).unwrap_or(&p);
            s.push_str(&format!("{i},{},{},{},{}\n", rel.display(), l.shape, l.texture, l.background));
        }
        let path = self.out.join("labels.csv");
        imageio::write_atomically(&path, |tmp| Ok(std::fs::write(tmp, &s)?))?;
        Ok(path)
    }

    /// Whether every image of the whole set exists.
    pub fn is_finished(&self) -> bool {
        (0..self.units()).all(|u| self.is_complete(u))
    }

    /// Renders draws `range`: one image per counterfactual, in index order.
    fn render(&self, draws: &[Draw]) -> anyhow::Result<Vec<RgbImage>> {
        let k = self.settings.cf_per_shape;
        match &self.model {
            CgnModel::Mnist(m) => {
                let latent = m.config.latent_sz;
                let (mut u_shape, mut u_text, mut u_bg) = (Vec::new(), Vec::new(), Vec::new());
                let (mut ys, mut yt, mut yb) = (Vec::new(), Vec::new(), Vec::new());
                let mut shifts = Shifts::default();
                for d in draws {
                    let mut r = Rng::new(d.rng_seed ^ 0x5EED);
                    let u0: Vec<f32> = (0..latent).map(|_| r.normal() as f32).collect();
                    for &(t, b) in &d.cf {
                        u_shape.extend_from_slice(&u0);
                        u_text.extend((0..latent).map(|_| r.normal() as f32));
                        u_bg.extend((0..latent).map(|_| r.normal() as f32));
                        ys.push(d.shape as u32);
                        yt.push(t as u32);
                        yb.push(b as u32);
                        let s = Shifts::random(1, &mut r);
                        shifts.fg_dy.extend(s.fg_dy);
                        shifts.fg_dx.extend(s.fg_dx);
                        shifts.bg_dy.extend(s.bg_dy);
                        shifts.bg_dx.extend(s.bg_dx);
                    }
                }
                let b = ys.len();
                let t = |v: Vec<f32>| Tensor::from_vec(v, (b, latent), &self.device);
                let y = |v: &[u32]| Tensor::new(v, &self.device);
                let inputs = cgn_mnist::MechanismInputs {
                    u_shape: t(u_shape)?,
                    u_text: t(u_text)?,
                    u_bg: t(u_bg)?,
                    y_shape: y(&ys)?,
                    y_text: y(&yt)?,
                    y_bg: y(&yb)?,
                };
                let parts = m.forward_mechanisms(&inputs)?.shifted(&shifts)?;
                imageio::images_from_tensor(&parts.x)
            }
            CgnModel::ImageNet(m) => {
                let t = self.settings.truncation;
                let (zd, nc) = (m.f_shape.cfg.z_dim, m.f_shape.cfg.num_classes);
                let mut out = Vec::with_capacity(draws.len() * k);
                // ImageNet generators are heavy: one shape draw (1 mask + K textures) per forward.
                for d in draws {
                    let mut r = Rng::new(d.rng_seed ^ 0x5EED);
                    let mut noise = || -> candle_core::Result<Tensor> {
                        let v: Vec<f32> = (0..zd).map(|_| (t * r.truncated_normal(-2.0, 2.0)) as f32).collect();
                        Tensor::from_vec(v, (1, zd), &self.device)
                    };
                    let u0 = noise()?;
                    let oh = |c: &[usize]| crate::classes::one_hot(c, nc, &self.device);
                    let mask = mask_from_premask(&m.u2net, &m.f_shape.forward(&u0, &oh(&[d.shape])?, t)?)?;
                    let us: Vec<Tensor> = (0..d.cf.len()).map(|_| noise()).collect::<candle_core::Result<_>>()?;
                    let u = Tensor::cat(&us, 0)?;
                    let tex: Vec<usize> = d.cf.iter().map(|c| c.0).collect();
                    let bgs: Vec<usize> = d.cf.iter().map(|c| c.1).collect();
                    let fg = m.f_text.forward(&u, &oh(&tex)?, t)?;
                    let bg = m.f_bg.forward(&u, &oh(&bgs)?, t)?;
                    let mask = mask.repeat((d.cf.len(), 1, 1, 1))?;
                    let x = crate::models::cgn_imagenet::compose(&mask, &fg, &bg)?;
                    out.extend(imageio::images_from_tensor(&x)?);
                }
                Ok(out)
            }
        }
    }
}

impl Job for CgnExport {
    fn units(&self) -> usize {
        self.settings.shape_draws().div_ceil(CHUNK)
    }

    fn unit_items(&self, unit: usize) -> u64 {
        (self.draws_of(unit).len() * self.settings.cf_per_shape) as u64
    }

    fn is_complete(&self, unit: usize) -> bool {
        let k = self.settings.cf_per_shape;
        self.draws_of(unit).all(|i| {
            let shape = self.draw(i).shape;
            (0..k).all(|j| self.image_path(i * k + j, shape).is_file())
        })
    }

    fn run_unit(&mut self, unit: usize) -> anyhow::Result<u64> {
        let k = self.settings.cf_per_shape;
        let range = self.draws_of(unit);
        let draws: Vec<Draw> = range.clone().map(|i| self.draw(i)).collect();
        let images = self.render(&draws)?;
        let mut written = 0;
        for (n, img) in images.iter().enumerate() {
            let (i, j) = (range.start + n / k, n % k);
            let path = self.image_path(i * k + j, draws[n / k].shape);
            if path.is_file() {
                continue; // complete from an earlier run
            }
            imageio::save_image(img, &path).with_context(|| format!("cannot write {}", path.display()))?;
            written += 1;
        }
        Ok(written)
    }
}

/// Reads `labels.csv` back (for tests and tools).
pub fn read_labels(path: &Path) -> anyhow::Result<Vec<(usize, String, Labels)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            anyhow::ensure!(f.len() == 5, "{}: bad line '{l}'", path.display());
            let p = |s: &str| s.parse::<usize>().with_context(|| format!("{}: bad number in '{l}'", path.display()));
            Ok((p(f[0])?, f[1].to_string(), Labels { shape: p(f[2])?, texture: p(f[3])?, background: p(f[4])? }))
        })
        .collect()
}

/// What an export run did.
#[derive(Debug)]
pub struct ExportReport {
    pub summary: Summary,
    /// `labels.csv`, written by the run that completes the set.
    pub labels: Option<PathBuf>,
}

/// The CGN export as the command line and the window run it: claims `out` (a folder made with
/// other settings is refused; one made with the same settings needs `resume`, which shards imply),
/// runs this shard's units, and writes `labels.csv` once every image exists. A cancel returns
/// the typed [`super::Cancelled`] (the files written so far are complete; resume finishes them).
pub fn export(
    model: CgnModel,
    settings: Settings,
    out: &Path,
    shard: Shard,
    resume: bool,
    device: Device,
    control: &Control,
) -> anyhow::Result<ExportReport> {
    if settings.n == 0 || settings.cf_per_shape == 0 {
        anyhow::bail!("the number of images and of counterfactuals per shape must be at least 1");
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    // Shards share the folder by design: an existing manifest with the same settings is theirs.
    let resume = resume || shard.count > 1;
    super::claim_directory(out, &serde_json::to_value(&settings)?, resume)?;
    let mut job = CgnExport::new(model, settings, out.to_path_buf(), device);
    let summary = super::run(&mut job, shard, resume, control, &mut |_| {})?;
    if summary.cancelled {
        return Err(anyhow::Error::from(super::Cancelled)
            .context(format!("{} images written; rerun with --resume to finish", summary.files_written)));
    }
    let labels = if job.is_finished() { Some(job.write_labels()?) } else { None };
    Ok(ExportReport { summary, labels })
}
