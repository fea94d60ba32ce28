//! GenInt's intervened training set (Mao et al., 2021, §4.2), as a resumable,
//! shardable job: for each (class, n) of `classes × per_class` a BigGAN sample whose per-layer
//! latents carry a random intervention — 5 distinct components among the top k, each offset
//! drawn uniformly in `scale ×` GenInt's reference range of that component, applied with the
//! centred edit on every latent slot. The sampler is [`crate::explain::sweep::intervention`],
//! the one the strategy sweep scores; `observational` writes plain samples (GenInt's baseline).
//!
//! **Determinism.** Item `i` is (class `classes[i / per_class]`, n = `i % per_class`); its seed
//! [`sample_seed`] depends only on (seed, class, n). z = `truncation · truncnorm(−2, 2)` from
//! that seed (as `intervene steer --seed`) and the intervention from the same seed: no draw
//! depends on which items run together. Items are rendered in fixed batches of `batch`
//! consecutive items, aligned to the unit's start, so the float arithmetic of the batched
//! forward is the same in a single, sharded or resumed run (and in [`replay`]).
//!
//! **Units** (the resume and shard granularity): one batch for `imagefolder`, one tar shard of
//! `samples_per_tar` items for `webdataset`.
//!
//! **Layouts.** `imagefolder`: `{class folder}/{index:08}.png` with the class folder named by
//! its WordNet id for 1000-class (ImageNet) models and by its index otherwise — torchvision's
//! `ImageFolder` reads it. `webdataset`: `genint-{unit:06}.tar`, each sample `KEY.png` +
//! `KEY.cls` (the class index as text) + `KEY.json` (its manifest line), KEY = `{index:08}`:
//! the layout the `webdataset` loader reads. Beside either: `manifest.json` (the settings; a
//! resumed run must match them) and `manifest.jsonl`, one line per image (index, file, class,
//! seed, components, offsets, truncation), written by the run that completes the set.
//!
//! **Regenerating an image**: [`replay`] (`intervene export genint --replay manifest.jsonl
//! --index I --out IMG.png`) re-renders an item's batch from the manifest lines and the model
//! and components named in `manifest.json`, bit for bit on the same kind of device.

use std::io::{BufRead as _, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use candle_core::{Device, Tensor};

use super::image_sink::{ImageFormat, Sink};
use super::{Control, Job, Shard};
use crate::imageio::RgbImage;
use crate::models::biggan::BigGan;
use crate::noise::Rng;
use crate::steer::edit::edit_latents;
use crate::steer::{Components, Edit, EditMode};

/// Components GenInt intervenes on per sample (drawn without replacement from the top k).
pub const COMPONENTS_PER_SAMPLE: usize = 5;
/// Default forward batch.
pub const DEFAULT_BATCH: usize = 8;
/// Default samples per WebDataset shard.
pub const DEFAULT_SAMPLES_PER_TAR: usize = 1000;
/// Name of the per-image manifest.
pub const MANIFEST: &str = "manifest.jsonl";
/// Version of the file layout, part of the settings.
const FORMAT_VERSION: u32 = 1;

/// Where the images go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `{class}/{index:08}.png` (torchvision `ImageFolder`).
    #[default]
    ImageFolder,
    /// Tar shards of `samples_per_tar` samples (`KEY.png`, `KEY.cls`, `KEY.json`).
    WebDataset,
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "imagefolder" | "image-folder" => Ok(Self::ImageFolder),
            "webdataset" | "wds" => Ok(Self::WebDataset),
            _ => Err(format!("unknown layout '{s}': use imagefolder or webdataset")),
        }
    }
}

/// Everything that determines the exported files (written to `manifest.json`; a resumed run or
/// another shard must have exactly these).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// The model as opened (an absolute path where it is one, else a hub/bundled name).
    pub model: String,
    /// The component file (absolute path); `None` for observational exports.
    pub components: Option<String>,
    /// Class indices, in export order.
    pub classes: Vec<usize>,
    pub per_class: usize,
    /// Components are drawn among the top k.
    pub top_k: usize,
    /// Offset ranges are GenInt's reference ranges × scale (1.0 = 100 %).
    pub scale: f64,
    pub truncation: f64,
    pub seed: u64,
    /// Plain samples, no intervention.
    pub observational: bool,
    pub format: ImageFormat,
    pub layout: Layout,
    /// Samples per tar shard (webdataset).
    pub samples_per_tar: usize,
    /// Items per forward.
    pub batch: usize,
    pub format_version: u32,
}

impl Settings {
    /// Settings with the defaults for everything but the essentials.
    pub fn new(model: &str, components: Option<&Path>, classes: Vec<usize>, per_class: usize) -> Self {
        Self {
            model: absolute(model),
            components: components.map(|p| absolute(&p.display().to_string())),
            classes,
            per_class,
            top_k: 60,
            scale: 1.0,
            truncation: 1.0,
            seed: 0,
            observational: components.is_none(),
            format: ImageFormat::Png,
            layout: Layout::ImageFolder,
            samples_per_tar: DEFAULT_SAMPLES_PER_TAR,
            batch: DEFAULT_BATCH,
            format_version: FORMAT_VERSION,
        }
    }

    /// Images in the whole set.
    pub fn total(&self) -> usize {
        self.classes.len() * self.per_class
    }

    /// Items per unit.
    pub fn unit_size(&self) -> usize {
        match self.layout {
            Layout::ImageFolder => self.batch,
            Layout::WebDataset => self.samples_per_tar,
        }
    }

    /// Items of unit `u`.
    pub fn unit_range(&self, u: usize) -> Range<usize> {
        let (n, t) = (self.unit_size(), self.total());
        (u * n).min(t)..((u + 1) * n).min(t)
    }

    /// The forward batch item `index` is rendered in.
    pub fn batch_range(&self, index: usize) -> Range<usize> {
        let unit = self.unit_range(index / self.unit_size());
        let start = unit.start + (index - unit.start) / self.batch * self.batch;
        start..(start + self.batch).min(unit.end)
    }

    /// Checks the values against each other (model and components are checked on opening).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.classes.is_empty() {
            bail!("--classes names no class");
        }
        if self.per_class == 0 {
            bail!("--per-class must be at least 1");
        }
        if self.batch == 0 || self.samples_per_tar == 0 {
            bail!("--batch and --samples-per-tar must be at least 1");
        }
        if !(self.truncation > 0.0 && self.truncation <= 1.0) {
            bail!("--truncation must lie in (0, 1], got {}", self.truncation);
        }
        if !self.observational {
            if self.top_k == 0 {
                bail!("--topk must be at least 1");
            }
            if !(self.scale.is_finite() && self.scale > 0.0) {
                bail!("--scale must be a positive number (1 = 100 % of GenInt's ranges), got {}", self.scale);
            }
            if self.components.is_none() {
                bail!("interventions need --components (or pass --observational for plain samples)");
            }
        }
        let mut seen = vec![false; self.classes.iter().max().map_or(0, |m| m + 1)];
        for &c in &self.classes {
            if std::mem::replace(&mut seen[c], true) {
                bail!("--classes lists class {c} twice");
            }
        }
        Ok(())
    }
}

/// `p` made absolute when it names an existing file or folder; names are kept as given.
fn absolute(p: &str) -> String {
    std::fs::canonicalize(p).map(|a| a.display().to_string()).unwrap_or_else(|_| p.to_string())
}

/// The seed of item (class, n): z and the intervention are both drawn from it.
pub fn sample_seed(seed: u64, class: usize, n: usize) -> u64 {
    let base = Rng::new(seed ^ 0x6E17_0000_0000_0000).next_u64();
    Rng::new(base ^ (class as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
        .next_u64()
}

/// One image of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub index: usize,
    pub class: usize,
    /// Position within its class.
    pub n: usize,
    pub seed: u64,
    /// Centred edits on every latent slot (empty when observational).
    pub edits: Vec<Edit>,
}

/// One line of `manifest.jsonl` (and the `.json` of a WebDataset sample).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestLine {
    pub index: usize,
    /// The file holding the image, relative to the export folder (the tar for webdataset).
    pub file: String,
    /// The sample key inside the tar (webdataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub class: usize,
    /// WordNet id (ImageNet models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wnid: Option<String>,
    /// Seed of z (`intervene steer --seed`) and of the intervention.
    pub seed: u64,
    pub components: Vec<usize>,
    /// Offsets the coordinates along `components` are set to (centred edits on every slot).
    pub offsets: Vec<f32>,
    pub truncation: f64,
}

/// Renders items with a model and components: the arithmetic shared by the export and [`replay`].
pub struct Renderer<'a> {
    pub model: &'a BigGan,
    pub components: Option<&'a Components>,
    pub truncation: f64,
}

impl Renderer<'_> {
    /// One image per `(class, seed, edits)`, in one batched forward.
    pub fn render(&self, items: &[(usize, u64, Vec<Edit>)]) -> anyhow::Result<Vec<RgbImage>> {
        let cfg = &self.model.cfg;
        let (zd, slots) = (cfg.z_dim, cfg.num_latents());
        let mut per_slot: Vec<Vec<f32>> = vec![Vec::with_capacity(items.len() * zd); slots];
        for (_, seed, edits) in items {
            let z = crate::noise::truncated_noise(*seed, 1, zd, self.truncation, &Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let latents = match self.components {
                Some(c) if !edits.is_empty() => edit_latents(&z, zd, slots, c, edits, EditMode::Centred)?,
                _ if edits.is_empty() => vec![z; slots],
                _ => bail!("edits need components"),
            };
            for (dst, l) in per_slot.iter_mut().zip(latents) {
                dst.extend(l);
            }
        }
        let dev = self.model.device();
        let b = items.len();
        let latents =
            per_slot.into_iter().map(|v| Tensor::from_vec(v, (b, zd), dev)).collect::<candle_core::Result<Vec<_>>>()?;
        let classes: Vec<usize> = items.iter().map(|i| i.0).collect();
        let cv = crate::classes::one_hot(&classes, cfg.num_classes, dev)?;
        let x = self.model.forward_latents(&latents, &cv, self.truncation)?;
        crate::imageio::images_from_tensor(&x)
    }
}

/// The export as a [`Job`].
pub struct GenintExport {
    pub settings: Settings,
    pub out: PathBuf,
    model: BigGan,
    components: Option<Components>,
    sink: Option<Sink>,
    control: Control,
    /// Encode and write on a second thread.
    pub background: bool,
}

impl GenintExport {
    /// Checks the model and components against the settings (clear errors naming the file or
    /// setting) and prepares the job. Nothing is written yet.
    pub fn new(
        model: BigGan,
        components: Option<Components>,
        settings: Settings,
        out: PathBuf,
        control: Control,
    ) -> anyhow::Result<Self> {
        settings.validate()?;
        let nc = model.cfg.num_classes;
        if let Some(&c) = settings.classes.iter().find(|&&c| c >= nc) {
            bail!("--classes: class {c} is outside the model {} ({nc} classes: 0..{})", settings.model, nc - 1);
        }
        if !settings.observational {
            let comps = components.as_ref().context("interventions need --components")?;
            if comps.z_dim() != model.cfg.z_dim {
                bail!(
                    "--components {}: its latent directions have {} dimensions but the model {} has z_dim {}",
                    comps.source,
                    comps.z_dim(),
                    settings.model,
                    model.cfg.z_dim
                );
            }
            if settings.top_k > comps.num_components() {
                bail!(
                    "--topk {} is larger than the number of components in {} ({})",
                    settings.top_k,
                    comps.source,
                    comps.num_components()
                );
            }
        }
        Ok(Self { settings, out, model, components, sink: None, control, background: true })
    }

    /// Item `i`.
    pub fn item(&self, index: usize) -> Item {
        let s = &self.settings;
        let (class, n) = (s.classes[index / s.per_class], index % s.per_class);
        let seed = sample_seed(s.seed, class, n);
        let edits = if s.observational {
            Vec::new()
        } else {
            let slots = self.model.cfg.num_latents();
            crate::explain::sweep::intervention(seed, s.top_k, COMPONENTS_PER_SAMPLE, s.scale, slots)
        };
        Item { index, class, n, seed, edits }
    }

    /// The class folder name: WordNet id for 1000-class models, else the index.
    pub fn class_folder(&self, class: usize) -> String {
        wnid(self.model.cfg.num_classes, class).unwrap_or_else(|| class.to_string())
    }

    /// Path of image `index` (imagefolder).
    pub fn image_path(&self, index: usize, class: usize) -> PathBuf {
        self.out.join(self.class_folder(class)).join(format!("{index:08}.{}", self.settings.format.extension()))
    }

    /// Path of tar shard `unit` (webdataset).
    pub fn shard_path(&self, unit: usize) -> PathBuf {
        self.out.join(shard_name(unit))
    }

    /// The manifest line of `item`.
    pub fn manifest_line(&self, item: &Item) -> ManifestLine {
        let (file, key) = match self.settings.layout {
            Layout::ImageFolder => {
                let p = self.image_path(item.index, item.class);
                (p.strip_prefix(&self.out).unwrap_or(&p).display().to_string(), None)
            }
            Layout::WebDataset => {
                (shard_name(item.index / self.settings.samples_per_tar), Some(format!("{:08}", item.index)))
            }
        };
        ManifestLine {
            index: item.index,
            file,
            key,
            class: item.class,
            wnid: wnid(self.model.cfg.num_classes, item.class),
            seed: item.seed,
            components: item.edits.iter().map(|e| e.component).collect(),
            offsets: item.edits.iter().map(|e| e.strength).collect(),
            truncation: self.settings.truncation,
        }
    }

    fn render(&self, items: &[Item]) -> anyhow::Result<Vec<RgbImage>> {
        let r =
            Renderer { model: &self.model, components: self.components.as_ref(), truncation: self.settings.truncation };
        r.render(&items.iter().map(|i| (i.class, i.seed, i.edits.clone())).collect::<Vec<_>>())
    }

    /// Whether every unit of the whole set (all shards) is on disk.
    pub fn is_finished(&self) -> bool {
        (0..self.units()).all(|u| self.is_complete(u))
    }

    /// Writes `manifest.jsonl` for the whole set (deterministic: any run may write it).
    pub fn write_manifest(&self) -> anyhow::Result<PathBuf> {
        let path = self.out.join(MANIFEST);
        crate::imageio::write_atomically(&path, |tmp| {
            let mut w = std::io::BufWriter::new(std::fs::File::create(tmp)?);
            for i in 0..self.settings.total() {
                serde_json::to_writer(&mut w, &self.manifest_line(&self.item(i)))?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            Ok(())
        })
        .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    fn sink(&mut self) -> anyhow::Result<&mut Sink> {
        if self.sink.is_none() {
            self.sink = Some(Sink::new(self.background)?);
        }
        self.sink.as_mut().context("no sink")
    }

    /// Waits for every queued file to be written.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        match self.sink.take() {
            Some(s) => s.finish(),
            None => Ok(()),
        }
    }

    fn run_folder_unit(&mut self, range: Range<usize>) -> anyhow::Result<u64> {
        let items: Vec<Item> = range.map(|i| self.item(i)).collect();
        let todo: Vec<bool> = items.iter().map(|it| !self.image_path(it.index, it.class).is_file()).collect();
        if !todo.contains(&true) {
            return Ok(0);
        }
        let images = self.render(&items)?;
        let format = self.settings.format;
        let mut written = 0;
        for ((it, img), todo) in items.iter().zip(images).zip(todo) {
            if todo {
                let path = self.image_path(it.index, it.class);
                self.sink()?.image(path, img, format)?;
                written += 1;
            }
        }
        Ok(written)
    }

    fn run_tar_unit(&mut self, unit: usize) -> anyhow::Result<u64> {
        let range = self.settings.unit_range(unit);
        let path = self.shard_path(unit);
        self.sink()?.tar_begin(path)?;
        let format = self.settings.format;
        let mut start = range.start;
        while start < range.end {
            if self.control.is_cancelled() {
                self.sink()?.tar_abort()?;
                return Err(cancelled_error());
            }
            let batch = self.settings.batch_range(start);
            let items: Vec<Item> = batch.clone().map(|i| self.item(i)).collect();
            let images = self.render(&items)?;
            for (it, img) in items.iter().zip(images) {
                let line = self.manifest_line(it);
                let json = serde_json::to_vec(&line)?;
                let key = line.key.clone().unwrap_or_else(|| format!("{:08}", it.index));
                let rest = vec![("cls".to_string(), it.class.to_string().into_bytes()), ("json".to_string(), json)];
                self.sink()?.tar_sample(key, img, format, rest)?;
            }
            start = batch.end;
        }
        self.sink()?.tar_end()?;
        Ok(range.len() as u64)
    }
}

/// `genint-{unit:06}.tar`.
pub fn shard_name(unit: usize) -> String {
    format!("genint-{unit:06}.tar")
}

fn wnid(num_classes: usize, class: usize) -> Option<String> {
    (num_classes == 1000).then(|| crate::classes::imagenet().get(class).map(|c| c.wnid.clone())).flatten()
}

impl Job for GenintExport {
    fn units(&self) -> usize {
        self.settings.total().div_ceil(self.settings.unit_size())
    }

    /// Progress and rate count images, not batches or tar shards.
    fn unit_items(&self, unit: usize) -> u64 {
        self.settings.unit_range(unit).len() as u64
    }

    fn is_complete(&self, unit: usize) -> bool {
        match self.settings.layout {
            Layout::ImageFolder => self.settings.unit_range(unit).all(|i| {
                let s = &self.settings;
                self.image_path(i, s.classes[i / s.per_class]).is_file()
            }),
            Layout::WebDataset => self.shard_path(unit).is_file(),
        }
    }

    fn run_unit(&mut self, unit: usize) -> anyhow::Result<u64> {
        match self.settings.layout {
            Layout::ImageFolder => self.run_folder_unit(self.settings.unit_range(unit)),
            Layout::WebDataset => {
                if self.shard_path(unit).is_file() {
                    return Ok(0);
                }
                self.run_tar_unit(unit)
            }
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub summary: super::Summary,
    /// Every image of the whole set is on disk (this run wrote `manifest.jsonl`).
    pub finished: bool,
    pub manifest: Option<PathBuf>,
}

/// Runs the export: claims `out` (settings must match on resume), runs this shard's units,
/// waits for the writer, and writes `manifest.jsonl` when the whole set is present. A cancel
/// leaves only complete files and returns the cancel error after flushing.
pub fn run(
    model: BigGan,
    components: Option<Components>,
    settings: Settings,
    out: &Path,
    shard: Shard,
    resume: bool,
    control: &Control,
) -> anyhow::Result<Report> {
    run_with_writer(model, components, settings, out, shard, resume, true, control)
}

/// [`run`] with the choice of encoding and writing on a second thread (`background`, the
/// default) or between batches on the rendering thread (for measurements).
#[allow(clippy::too_many_arguments)]
pub fn run_with_writer(
    model: BigGan,
    components: Option<Components>,
    settings: Settings,
    out: &Path,
    shard: Shard,
    resume: bool,
    background: bool,
    control: &Control,
) -> anyhow::Result<Report> {
    let mut job = GenintExport::new(model, components, settings, out.to_path_buf(), control.clone())?;
    job.background = background;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create the output folder {}", out.display()))?;
    // Shards share the folder by design: an existing manifest with the same settings is theirs.
    super::claim_directory(out, &serde_json::to_value(&job.settings)?, resume || shard.count > 1)
        .with_context(|| format!("cannot use the output folder {}", out.display()))?;
    let result = super::run(&mut job, shard, resume || shard.count > 1, control, &mut |_| {});
    let flushed = job.flush();
    let summary = result?;
    flushed?;
    if summary.cancelled {
        return Err(cancelled_error());
    }
    let finished = job.is_finished();
    let manifest = if finished { Some(job.write_manifest()?) } else { None };
    Ok(Report { summary, finished, manifest })
}

/// The error a cancelled job returns.
pub(crate) fn cancelled_error() -> anyhow::Error {
    anyhow::Error::from(super::Cancelled).context("the files written so far are complete; --resume finishes the set")
}

/// Reads `manifest.json` (the settings) of an export folder.
pub fn read_settings(dir: &Path) -> anyhow::Result<Settings> {
    let p = dir.join("manifest.json");
    let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not the settings of a GenInt export", p.display()))
}

/// Reads the manifest lines with index in `range` (in order).
pub fn read_manifest_lines(manifest: &Path, range: Range<usize>) -> anyhow::Result<Vec<ManifestLine>> {
    let f = std::fs::File::open(manifest).with_context(|| format!("cannot open {}", manifest.display()))?;
    let mut out = Vec::with_capacity(range.len());
    for (no, line) in std::io::BufReader::new(f).lines().enumerate() {
        if no >= range.end {
            break;
        }
        let line = line.with_context(|| format!("cannot read {}", manifest.display()))?;
        if no >= range.start {
            let l: ManifestLine = serde_json::from_str(&line)
                .with_context(|| format!("{} line {}: not a manifest line", manifest.display(), no + 1))?;
            if l.index != no {
                bail!(
                    "{} line {} holds index {} (the lines must be in index order)",
                    manifest.display(),
                    no + 1,
                    l.index
                );
            }
            out.push(l);
        }
    }
    if out.len() != range.len() {
        bail!(
            "{} has no line for index {} (it holds {} images)",
            manifest.display(),
            range.end - 1,
            range.start + out.len()
        );
    }
    Ok(out)
}

/// Regenerates image `index` of an export from its `manifest.jsonl` (and the `manifest.json`
/// beside it, which names the model and components): the batch the export rendered it in is
/// rendered again from the manifest's seeds, components and offsets.
pub fn replay(manifest: &Path, index: usize, device: &Device) -> anyhow::Result<RgbImage> {
    let dir = manifest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let settings = read_settings(dir)?;
    if index >= settings.total() {
        bail!("--index {index} is outside the export ({} images: 0..{})", settings.total(), settings.total() - 1);
    }
    let model = crate::models::biggan::load::load(&settings.model, device)
        .with_context(|| format!("cannot open the export's model {}", settings.model))?;
    let components = match &settings.components {
        Some(p) if !settings.observational => {
            let c = Components::load(Path::new(p))?;
            c.check_z_dim(model.cfg.z_dim)?;
            Some(c)
        }
        _ => None,
    };
    let batch = settings.batch_range(index);
    let lines = read_manifest_lines(manifest, batch.clone())?;
    let slots = model.cfg.num_latents();
    let items: Vec<(usize, u64, Vec<Edit>)> = lines
        .iter()
        .map(|l| {
            anyhow::ensure!(
                l.components.len() == l.offsets.len(),
                "index {}: components and offsets differ in length",
                l.index
            );
            let edits = l
                .components
                .iter()
                .zip(&l.offsets)
                .map(|(&component, &strength)| Edit { component, start: 0, end: slots, strength })
                .collect();
            Ok((l.class, l.seed, edits))
        })
        .collect::<anyhow::Result<_>>()?;
    let r = Renderer { model: &model, components: components.as_ref(), truncation: settings.truncation };
    let mut images = r.render(&items)?;
    Ok(images.swap_remove(index - batch.start))
}

/// An export as both faces give it: the [`Settings`] (model and components by path or name,
/// every option with its default), the classes still as typed, and where and how to run it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Everything but the classes; `settings.classes` is filled by [`export`].
    pub settings: Settings,
    /// `all`, or indices, WordNet ids or names separated by commas.
    pub classes: String,
    pub out: PathBuf,
    pub shard: Shard,
    pub resume: bool,
}

impl Request {
    /// An export of `per_class` images of `classes` with GenInt's defaults for the rest
    /// (observational when there are no components).
    pub fn new(model: &str, components: Option<PathBuf>, classes: &str, per_class: usize, out: PathBuf) -> Self {
        Self {
            settings: Settings::new(model, components.as_deref(), Vec::new(), per_class),
            classes: classes.to_string(),
            out,
            shard: Shard::default(),
            resume: false,
        }
    }
}

/// Opens the model and components a [`Request`] names, resolves its classes, and runs the
/// export ([`run`]): the one entry point of `intervene export genint` and the window.
pub fn export(req: &Request, device: &Device, control: &Control) -> anyhow::Result<Report> {
    let mut s = req.settings.clone();
    if !s.observational && s.components.is_none() {
        bail!("interventions need --components C.npz (or pass --observational for plain samples)");
    }
    if s.per_class == 0 {
        bail!("--per-class must be at least 1");
    }
    control.set_status(format!("opening {}", s.model));
    let model = crate::models::biggan::load::load(&s.model, device)?;
    s.classes = resolve_classes(&req.classes, model.cfg.num_classes)?;
    if s.observational {
        s.components = None;
    }
    let components = s.components.as_ref().map(|p| Components::load(Path::new(p))).transpose()?;
    control.set_status("");
    run(model, components, s, &req.out, req.shard, req.resume, control)
}

/// Resolves `--classes`: `all`, or a comma-separated list of indices, WordNet ids or names.
pub fn resolve_classes(list: &str, num_classes: usize) -> anyhow::Result<Vec<usize>> {
    if list.trim().eq_ignore_ascii_case("all") {
        return Ok((0..num_classes).collect());
    }
    let classes = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| crate::classes::resolve(s, num_classes).map_err(|e| anyhow::anyhow!("--classes: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if classes.is_empty() {
        bail!("--classes '{list}' names no class: give indices, wnids or names separated by commas, or all");
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(layout: Layout, total_classes: usize, per_class: usize) -> Settings {
        let mut s = Settings::new("m", Some(Path::new("c.npz")), (0..total_classes).collect(), per_class);
        s.layout = layout;
        s.batch = 4;
        s.samples_per_tar = 10;
        s
    }

    #[test]
    fn batches_tile_units_from_their_start() {
        let s = settings(Layout::WebDataset, 3, 9); // 27 items, tars of 10, batches of 4
        assert_eq!(s.unit_range(2), 20..27);
        assert_eq!(s.batch_range(0), 0..4);
        assert_eq!(s.batch_range(9), 8..10, "a batch never crosses a tar");
        assert_eq!(s.batch_range(10), 10..14);
        assert_eq!(s.batch_range(26), 24..27);
        let f = settings(Layout::ImageFolder, 3, 9);
        assert_eq!(f.unit_size(), 4);
        assert_eq!(f.batch_range(26), 24..27);
    }

    #[test]
    fn seeds_depend_on_seed_class_and_position_only() {
        let a = sample_seed(3, 5, 7);
        assert_eq!(a, sample_seed(3, 5, 7));
        let mut all: Vec<u64> = (0..50).flat_map(|c| (0..50).map(move |n| sample_seed(3, c, n))).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 2500, "distinct per (class, n)");
        assert_ne!(a, sample_seed(4, 5, 7));
    }

    #[test]
    fn settings_catch_bad_values() {
        let mut s = settings(Layout::ImageFolder, 2, 3);
        s.classes = vec![1, 4, 1];
        assert!(s.validate().unwrap_err().to_string().contains("twice"));
        let mut s = settings(Layout::ImageFolder, 2, 3);
        s.scale = 0.0;
        assert!(s.validate().unwrap_err().to_string().contains("--scale"));
        let mut s = settings(Layout::ImageFolder, 2, 3);
        s.observational = false;
        s.components = None;
        assert!(s.validate().unwrap_err().to_string().contains("--components"));
    }

    #[test]
    fn classes_resolve_by_index_wnid_and_name() {
        assert_eq!(resolve_classes("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(resolve_classes("207, n02110185 ,Siberian husky", 1000).unwrap(), vec![207, 250, 250]);
        let e = resolve_classes("3,12", 10).unwrap_err().to_string();
        assert!(e.contains("--classes") && e.contains("12"), "{e}");
    }
}
