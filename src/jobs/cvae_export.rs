//! Training sets from a trained GenInt CVAE (Mao et al., 2021, supplementary §7;
//! GENINT-MNIST.md §3): `intervene export cvae`, and the last stage of `intervene train cvae`.
//!
//! Two arms, `per_class` images per digit each:
//! - **observational**: `z ~ N(0, I)`, the prior, decoded with each label (GenInt's "GAN
//!   augmentation" arm);
//! - **interventional**, two ways:
//!   - `pca` (the paper's description, the default): `z = m + a·s₁·e₁ + b·s₂·e₂` with
//!     `(a, b) ~ U[−scale, scale]²`, where `e₁, e₂` are the top-2 principal directions of the
//!     posterior means of the training images (`latent_pca.json`), `s₁, s₂` their standard
//!     deviations and `m` their mean;
//!   - `grid` (the reference code, `ColorMNIST/train_vae.py`): a `width × width` grid over the
//!     first two raw latent axes at the N(0, 1) quantiles `k / (width + 1)`, `k = 1..width`
//!     (77 → ±2.2316, 5,929 images per digit), whatever `per_class` says.
//!
//! `stretch` saves each image min–max stretched to [0, 1] over all its channels, as the
//! reference's `save_image(normalize=True)` does; without it an image is saved as decoded.
//!
//! **Determinism.** The latents of digit `c` come from the seed `(seed, arm tag, c)`, so a set
//! is the same whichever digits a run writes first, and `intervene export cvae --model RUN`
//! rewrites the sets `intervene train cvae` wrote into RUN, image for image.
//!
//! **Layout.** `DIR/<digit>/NNNNN.png` (torchvision `ImageFolder`), and `DIR/set.json`: the
//! settings and the model's SHA-256. A set folder is only ever continued with the settings it
//! was started with (files already written are kept); other settings are refused, naming the
//! difference, so no set silently mixes two recipes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::Control;
use crate::imageio::RgbImage;
use crate::named::Named as _;
use crate::noise::Rng;
use crate::train::data::seed_of;
use crate::train::nets::cvae::CvaeDecoder;
use crate::train::nets::Builder;

/// The settings file of a set folder.
pub const SET_MANIFEST: &str = "set.json";
/// The weights file of a CVAE folder (a training run's or a shipped model's).
pub const MODEL: &str = "model.safetensors";
/// The latent PCA beside it.
pub const LATENT_PCA: &str = "latent_pca.json";
const FORMAT: u32 = 1;
/// Seed tags of the two arms (as `intervene train cvae` has always used).
const TAG_OBS: u64 = 4;
const TAG_INT: u64 = 5;
/// The reference code's grid width (`vis_width`).
pub const REFERENCE_GRID_WIDTH: usize = 77;

/// Which generated set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Observational,
    Interventional,
}

crate::named_enum!(Arm, "arm", { Observational => "observational", Interventional => "interventional" });

/// How the interventional arm moves the latent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interventions {
    /// Uniform within ±scale standard deviations along the top-2 principal directions.
    #[default]
    Pca,
    /// The reference code's quantile grid over the first two latent axes.
    Grid,
}

crate::named_enum!(Interventions, "interventions", { Pca => "pca", Grid => "grid" });

/// The top principal directions of the posterior means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentPca {
    pub mean: Vec<f64>,
    /// Unit directions, largest variance first.
    pub components: Vec<Vec<f64>>,
    pub stdev: Vec<f64>,
    pub explained_variance_ratio: Vec<f64>,
}

/// One generated set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetSpec {
    pub arm: Arm,
    /// Images per digit (the grid has `grid_width²` instead).
    pub per_class: usize,
    pub interventions: Interventions,
    /// `pca`: ± this many standard deviations.
    pub scale: f64,
    /// `grid`: points per axis.
    pub grid_width: usize,
    /// Min–max stretch each image (`save_image(normalize=True)`).
    pub stretch: bool,
    pub seed: u64,
}

impl SetSpec {
    /// The paper's arm as `intervene train cvae` writes it.
    pub fn paper(arm: Arm, per_class: usize, scale: f64, seed: u64) -> Self {
        Self {
            arm,
            per_class,
            interventions: Interventions::Pca,
            scale,
            grid_width: REFERENCE_GRID_WIDTH,
            stretch: false,
            seed,
        }
    }

    fn uses_grid(&self) -> bool {
        self.arm == Arm::Interventional && self.interventions == Interventions::Grid
    }

    /// Images per digit this set holds.
    pub fn images_per_class(&self) -> usize {
        if self.uses_grid() {
            self.grid_width * self.grid_width
        } else {
            self.per_class
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.images_per_class() == 0 {
            bail!("a set needs at least one image per digit (--per-class, --grid-width)");
        }
        if self.arm == Arm::Interventional
            && self.interventions == Interventions::Pca
            && !(self.scale.is_finite() && self.scale > 0.0)
        {
            bail!("--scale must be a positive number, not {}", self.scale);
        }
        Ok(())
    }

    /// The spec with the fields that do not shape this arm's images set to fixed values (the
    /// observational arm has no interventions; the grid ignores `per_class` and `scale`, the
    /// PCA `grid_width`), so that only a real difference refuses a set folder.
    pub fn canonical(&self) -> Self {
        let mut c = self.clone();
        match (self.arm, self.interventions) {
            (Arm::Observational, _) => {
                c.interventions = Interventions::Pca;
                c.scale = 0.0;
                c.grid_width = 0;
            }
            (Arm::Interventional, Interventions::Pca) => c.grid_width = 0,
            (Arm::Interventional, Interventions::Grid) => {
                c.per_class = 0;
                c.scale = 0.0;
            }
        }
        c
    }

    /// What `set.json` records in words, for refusals.
    fn describe(&self) -> String {
        let how = match (self.arm, self.interventions) {
            (Arm::Observational, _) => "z from the prior".to_string(),
            (_, Interventions::Pca) => format!("pca ±{} sd", self.scale),
            (_, Interventions::Grid) => format!("grid {0}×{0}", self.grid_width),
        };
        format!(
            "{} ({how}), {} per digit, seed {}{}",
            self.arm.name(),
            self.images_per_class(),
            self.seed,
            if self.stretch { ", min–max stretched" } else { "" }
        )
    }
}

/// A trained decoder and the latent PCA of its training run.
pub struct Sampler {
    pub decoder: CvaeDecoder,
    pub pca: Option<LatentPca>,
    /// SHA-256 of the weights file (hex), recorded in each set's `set.json`.
    pub model_sha256: String,
}

impl Sampler {
    /// Opens a CVAE folder: `model.safetensors` (the full CVAE or only its decoder, any float
    /// type) and, for the `pca` interventions, `latent_pca.json`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MODEL);
        let bytes = std::fs::read(&path).with_context(|| {
            format!("cannot read {} (a CVAE folder holds {MODEL} and {LATENT_PCA})", path.display())
        })?;
        let map: HashMap<String, Tensor> = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .with_context(|| format!("{} is not a safetensors file", path.display()))?;
        let shape =
            CvaeDecoder::shape_of(&map).with_context(|| format!("{} does not hold a CVAE decoder", path.display()))?;
        let mut b = Builder::from_map(&map, &Device::Cpu);
        let decoder = CvaeDecoder::new(&mut b, shape).with_context(|| format!("in {}", path.display()))?;
        let pca_path = dir.join(LATENT_PCA);
        let pca = if pca_path.is_file() {
            let text = std::fs::read(&pca_path).with_context(|| format!("cannot read {}", pca_path.display()))?;
            let pca: LatentPca =
                serde_json::from_slice(&text).with_context(|| format!("cannot parse {}", pca_path.display()))?;
            if pca.mean.len() != shape.z_dim || pca.components.iter().any(|c| c.len() != shape.z_dim) {
                bail!(
                    "{} is for a {}-d latent; the decoder's is {}-d",
                    pca_path.display(),
                    pca.mean.len(),
                    shape.z_dim
                );
            }
            Some(pca)
        } else {
            None
        };
        Ok(Self { decoder, pca, model_sha256: sha256_hex(&bytes) })
    }

    /// Images `(n, 3, 32, 32)`-flattened in [0, 1] for latents `z` (`n × z_dim`) of digit `y`.
    fn decode(&self, z: Vec<f32>, y: u32) -> anyhow::Result<Vec<f32>> {
        let zd = self.decoder.shape.z_dim;
        let n = z.len() / zd;
        let dev = Device::Cpu;
        let x =
            self.decoder.decode(&Tensor::from_vec(z, (n, zd), &dev)?, &Tensor::new(vec![y; n].as_slice(), &dev)?)?;
        Ok(x.flatten_all()?.to_vec1::<f32>()?)
    }

    /// The latents of digit `class` for `spec`, `images_per_class × z_dim`.
    pub fn latents(&self, spec: &SetSpec, class: u32) -> anyhow::Result<Vec<f32>> {
        let zd = self.decoder.shape.z_dim;
        let n = spec.images_per_class();
        Ok(match (spec.arm, spec.interventions) {
            (Arm::Observational, _) => {
                let mut rng = Rng::new(seed_of(&[spec.seed, TAG_OBS, class as u64]));
                (0..n * zd).map(|_| rng.normal() as f32).collect()
            }
            (Arm::Interventional, Interventions::Pca) => {
                let pca = self.pca.as_ref().context(
                    "the pca interventions need latent_pca.json beside the model (written by `intervene train cvae`)",
                )?;
                pca_latents(pca, n, spec.scale, seed_of(&[spec.seed, TAG_INT, class as u64]))
            }
            (Arm::Interventional, Interventions::Grid) => grid_latents(spec.grid_width, zd),
        })
    }
}

/// `count` latents `m + Σ a_k·s_k·e_k`, `a_k ~ U[−scale, scale]`, from `seed`.
pub fn pca_latents(pca: &LatentPca, count: usize, scale: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut z = Vec::with_capacity(count * pca.mean.len());
    for _ in 0..count {
        let mut v = pca.mean.clone();
        for (c, s) in pca.components.iter().zip(&pca.stdev) {
            let a = (2.0 * rng.uniform() - 1.0) * scale;
            v.iter_mut().zip(c).for_each(|(x, e)| *x += a * s * e);
        }
        z.extend(v.iter().map(|&x| x as f32));
    }
    z
}

/// The reference's grid: `torch.meshgrid(eps, −eps)` with `eps = Φ⁻¹(k / (width + 1))`,
/// `k = 1..width`; image `i·width + j` has latent `(eps[i], −eps[j], 0, …)`.
pub fn grid_latents(width: usize, z_dim: usize) -> Vec<f32> {
    let eps: Vec<f64> = (1..=width).map(|k| probit(k as f64 / (width + 1) as f64)).collect();
    let mut z = Vec::with_capacity(width * width * z_dim);
    for &a in &eps {
        for &b in &eps {
            z.push(a as f32);
            z.push(-b as f32);
            z.extend(std::iter::repeat_n(0.0, z_dim.saturating_sub(2)));
        }
    }
    z
}

/// Φ⁻¹(p), the standard normal quantile, for 0 < p < 1 (Acklam's rational approximation,
/// relative error below 1.2e-9; ample for latents stored as f32).
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -39.69683028665376,
        220.9460984245205,
        -275.9285104469687,
        138.357751867269,
        -30.66479806614716,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
    const C: [f64; 6] = [
        -0.007784894002430293,
        -0.3223964580411365,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
    const LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// One decoded image `(3, 32, 32)` in [0, 1] as 8-bit RGB: `·255 + 0.5`, clamped (PyTorch's
/// `save_image`), after a min–max stretch over all channels if `stretch`.
pub fn to_rgb(img: &[f32], stretch: bool) -> RgbImage {
    let hw = img.len() / 3;
    let (lo, hi) = img.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    // torchvision's norm_ip: clamp to [lo, hi], subtract lo, divide by max(hi − lo, 1e-5).
    let (off, div) = if stretch { (lo, (hi - lo).max(1e-5)) } else { (0.0, 1.0) };
    let mut px = vec![0u8; 3 * hw];
    for p in 0..hw {
        for ch in 0..3 {
            px[p * 3 + ch] = (((img[ch * hw + p] - off) / div) * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
    let side = (hw as f64).sqrt() as usize;
    RgbImage { width: side, height: side, pixels: px }
}

/// A sheet of 10 images per digit of the set `spec`, one row per digit: images spread over
/// the set (the first ten of a random set's draws are as random as any; across the grid).
pub fn write_sheet(sampler: &Sampler, spec: &SetSpec, path: &Path) -> anyhow::Result<()> {
    let classes = sampler.decoder.shape.classes;
    let zd = sampler.decoder.shape.z_dim;
    let n = spec.images_per_class();
    let mut images = Vec::with_capacity(classes * 10);
    for c in 0..classes as u32 {
        let z = sampler.latents(spec, c)?;
        let pick: Vec<f32> = (0..10).flat_map(|k| z[(k * n / 10) * zd..(k * n / 10 + 1) * zd].to_vec()).collect();
        images.extend(sampler.decode(pick, c)?.chunks(3072).map(|img| to_rgb(img, spec.stretch)));
    }
    crate::train::gan_common::save_image_grid(&images, 10, 2, path)
}

/// Writes (or continues) the set `spec` into `dir` (`<digit>/NNNNN.png` + `set.json`) and, if
/// `sheet` is given, a sheet of 10 images per digit, one row per digit. Returns the images
/// written by this call. Images count in `control`'s files written, and also as its items
/// when `items` (an export; a training counts steps there).
pub fn write_set(
    sampler: &Sampler,
    spec: &SetSpec,
    dir: &Path,
    sheet: Option<&Path>,
    items: bool,
    control: &Control,
) -> anyhow::Result<u64> {
    spec.validate()?;
    let classes = sampler.decoder.shape.classes as u32;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    claim(dir, spec, &sampler.model_sha256)?;
    if let Some(sheet) = sheet {
        write_sheet(sampler, spec, sheet)?;
    }
    let n = spec.images_per_class();
    let mut written = 0;
    for c in 0..classes {
        control.check()?;
        let d = dir.join(c.to_string());
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        let todo: Vec<usize> = (0..n).filter(|i| !d.join(format!("{i:05}.png")).is_file()).collect();
        if items {
            control.skip((n - todo.len()) as u64);
        }
        if todo.is_empty() {
            continue;
        }
        let z = sampler.latents(spec, c)?;
        let zd = sampler.decoder.shape.z_dim;
        // Decode in chunks of 1,000 (the decoder's activations: 1,000 × 3,072 floats).
        for chunk in todo.chunks(1000) {
            control.check()?;
            let zs: Vec<f32> = chunk.iter().flat_map(|&i| z[i * zd..(i + 1) * zd].iter().copied()).collect();
            let x = sampler.decode(zs, c)?;
            for (k, &i) in chunk.iter().enumerate() {
                let rgb = to_rgb(&x[k * 3072..(k + 1) * 3072], spec.stretch);
                crate::imageio::save_image(&rgb, &d.join(format!("{i:05}.png")))?;
            }
            written += chunk.len() as u64;
            control.add_written(chunk.len() as u64);
            if items {
                control.advance(chunk.len() as u64);
            }
        }
    }
    Ok(written)
}

#[derive(Serialize, Deserialize, PartialEq)]
struct Manifest {
    format: u32,
    model_sha256: String,
    #[serde(flatten)]
    spec: SetSpec,
}

/// Records `spec` in `dir/set.json`, or checks that the set already there was made with it.
fn claim(dir: &Path, spec: &SetSpec, model_sha256: &str) -> anyhow::Result<()> {
    let path = dir.join(SET_MANIFEST);
    let want = Manifest { format: FORMAT, model_sha256: model_sha256.to_string(), spec: spec.canonical() };
    if path.is_file() {
        let have: Manifest = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("cannot parse {}; delete the folder to start the set again", path.display()))?;
        if have.model_sha256 != want.model_sha256 {
            bail!(
                "{} holds a set from another model (SHA-256 {}…); choose another output folder",
                dir.display(),
                &have.model_sha256[..12.min(have.model_sha256.len())]
            );
        }
        if have != want {
            bail!(
                "{} holds a set made with other settings ({}; now {}); choose another output folder",
                dir.display(),
                have.spec.describe(),
                spec.describe()
            );
        }
        return Ok(());
    }
    let foreign = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .any(|e| e.path().is_dir() || e.path().extension().is_some_and(|x| x == "png"));
    if foreign {
        bail!("{} already holds images but no {SET_MANIFEST}; choose an empty or new output folder", dir.display());
    }
    crate::imageio::write_atomically(&path, |tmp| Ok(std::fs::write(tmp, serde_json::to_vec_pretty(&want)?)?))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    crate::fetch::download::hex(&sha2::Sha256::digest(bytes))
}

/// A CVAE folder from a name: an existing folder as given, else a bundled CVAE
/// (`models/index.json`).
pub fn resolve_model(m: &str) -> anyhow::Result<PathBuf> {
    use crate::bundled::{find, index, Kind};
    let p = PathBuf::from(m.trim());
    if p.is_dir() {
        return Ok(p);
    }
    match find(m.trim()) {
        Some(e) if e.kind == Kind::Cvae => Ok(e.dir()),
        Some(e) => bail!("bundled model {m} is a {:?} model, not a CVAE", e.kind),
        None => {
            let known: Vec<String> = index().into_iter().filter(|e| e.kind == Kind::Cvae).map(|e| e.name).collect();
            bail!("{m}: no such folder, and not a bundled CVAE (bundled: {})", known.join(", "))
        }
    }
}

/// `intervene export cvae`: sets from a CVAE folder.
#[derive(Debug, Clone)]
pub struct Request {
    /// A CVAE folder (a training run, or a bundled model's folder).
    pub model: PathBuf,
    /// Each set goes to `out/<arm>/`, its sheet to `out/samples_<arm>.png`.
    pub out: PathBuf,
    pub sets: Vec<SetSpec>,
}

impl Request {
    /// One set per arm in `arms`, each with `like`'s other settings.
    pub fn new(model: PathBuf, out: PathBuf, arms: &[Arm], like: &SetSpec) -> Self {
        Self { model, out, sets: arms.iter().map(|&arm| SetSpec { arm, ..like.clone() }).collect() }
    }
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    pub written: u64,
    pub total: u64,
    pub dirs: Vec<PathBuf>,
}

pub fn export(req: &Request, control: &Control) -> anyhow::Result<Summary> {
    if req.sets.is_empty() {
        bail!("nothing to export: choose --arm observational, interventional or both");
    }
    req.sets.iter().try_for_each(SetSpec::validate)?;
    control.set_status("loading the CVAE");
    let sampler = Sampler::open(&req.model)?;
    let classes = sampler.decoder.shape.classes as u64;
    let total: u64 = req.sets.iter().map(|s| s.images_per_class() as u64 * classes).sum();
    control.set_total(total);
    let mut written = 0;
    let mut dirs = Vec::new();
    for spec in &req.sets {
        control.set_status(format!("writing the {} set", spec.arm.name()));
        let dir = req.out.join(spec.arm.name());
        let sheet = req.out.join(format!("samples_{}.png", spec.arm.name()));
        written += write_set(&sampler, spec, &dir, Some(&sheet), true, control)?;
        dirs.push(dir);
    }
    Ok(Summary { written, total, dirs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_matches_known_quantiles() {
        // Python's `statistics.NormalDist().inv_cdf(p)` (Wichura's AS241, ~1e-16).
        for (p, want) in [
            (0.5, 0.0),
            (0.975, 1.9599639845400536),
            (0.025, -1.9599639845400538),
            (1.0 / 78.0, -2.231605835260923),
            (0.001, -3.090232306167813),
        ] {
            assert!((probit(p) - want).abs() < 1e-8, "Φ⁻¹({p}) = {} ≠ {want}", probit(p));
        }
    }

    #[test]
    fn grid_covers_the_reference_range_in_meshgrid_order() {
        let z = grid_latents(77, 2);
        assert_eq!(z.len(), 77 * 77 * 2);
        assert!((z[0] as f64 + 2.2316058).abs() < 1e-5 && (z[1] as f64 - 2.2316058).abs() < 1e-5);
        // image 1 moves the second axis, image 77 the first.
        assert_eq!(z[2], z[0]);
        assert!(z[3] < z[1]);
        assert!(z[77 * 2] > z[0] && z[77 * 2 + 1] == z[1]);
        assert!(z[38 * 77 * 2 + 38 * 2].abs() < 1e-7, "the middle of the grid is the origin");
    }

    #[test]
    fn stretch_maps_each_image_to_the_full_range() {
        let img: Vec<f32> = (0..3072).map(|i| 0.2 + 0.5 * (i % 7) as f32 / 6.0).collect();
        let plain = to_rgb(&img, false);
        let s = to_rgb(&img, true);
        assert_eq!(*plain.pixels.iter().max().unwrap(), 179);
        assert_eq!((*s.pixels.iter().min().unwrap(), *s.pixels.iter().max().unwrap()), (0, 255));
    }
}
