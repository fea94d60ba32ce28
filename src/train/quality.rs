//! Sample quality of a trained generator (issue 14 §3), measured with a **judge**: an MNIST-CNN
//! trained on the real training images of the generator's data set.
//!
//! - **class consistency**: the judge's top-1 accuracy on `per_class` samples of every class,
//!   per truncation (BigGAN: z = t·truncnorm(−2, 2) with the statistics row of t; CGN: u ~ N(0, 1),
//!   shape = texture = background class, no texture shift). Samples are quantised to 8 bits as
//!   a saved PNG would be, then given to the judge as it reads images (`/255·2 − 1`).
//! - **diversity**: the mean pairwise pixel distance within a class, `mean_{i<j} RMS(a_i − a_j)` on
//!   [0, 1] RGB, over `diversity_per_class` samples and as many real training images of the
//!   class, side by side (a collapsed generator scores far below the real images).
//!
//! `real_folders` writes a data set's real images as image folders (`train/`, `test/`, class
//! sub-folders) for `intervene train classifier` to train the judge on: for the CGN variants the
//! test folder holds the held-out digits coloured as in training (in-domain), since the judge
//! measures whether samples look like their class *in the training distribution*.

use std::path::Path;

use anyhow::{bail, Context as _};
use candle_core::{Device, Tensor};
use serde::Serialize;

use super::eval::EvalModel;
use super::gan_data::{DataSource, GanData};
use crate::jobs::Control;

/// A generator to measure.
pub enum Generator {
    BigGan(Box<crate::models::biggan::BigGan>),
    Cgn(Box<crate::models::cgn_mnist::CgnMnist>),
}

impl Generator {
    /// Opens a BigGAN folder (config.json + weights), an MNIST CGN weights file / folder
    /// (`model.safetensors` inside), or a bundled model by its `models/index.json` name.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let dev = Device::Cpu;
        let bundled;
        let path = if path.exists() {
            path
        } else if let Some(e) = path.to_str().and_then(crate::bundled::find) {
            bundled = e.dir();
            bundled.as_path()
        } else {
            bail!(
                "no generator at '{}': give a BigGAN folder, an MNIST CGN weights file or folder, or a bundled model's name (models/index.json)",
                path.display()
            )
        };
        if path.is_dir() && path.join("config.json").is_file() {
            return Ok(Self::BigGan(Box::new(crate::models::biggan::load::load(&path.display().to_string(), &dev)?)));
        }
        let file = if path.is_dir() { path.join("model.safetensors") } else { path.to_path_buf() };
        match crate::models::cgn::CgnModel::open(&file, &dev)? {
            crate::models::cgn::CgnModel::Mnist(m) => Ok(Self::Cgn(Box::new(m))),
            _ => bail!("{}: only MNIST CGNs and BigGANs are measured here", file.display()),
        }
    }

    pub fn num_classes(&self) -> usize {
        match self {
            Self::BigGan(m) => m.cfg.num_classes,
            Self::Cgn(m) => m.config.n_classes,
        }
    }

    /// `n` samples of class `c` in [−1, 1], `(n, 3, 32, 32)`.
    pub fn sample(&self, c: usize, n: usize, truncation: f64, seed: u64) -> anyhow::Result<Tensor> {
        let dev = Device::Cpu;
        match self {
            Self::BigGan(m) => {
                let z = crate::noise::truncated_noise(seed, n, m.cfg.z_dim, truncation, &dev)?;
                let cv = crate::classes::one_hot(&vec![c; n], m.cfg.num_classes, &dev)?;
                Ok(m.forward(&z, &cv, truncation)?)
            }
            Self::Cgn(m) => {
                let u = (crate::noise::normal_noise(seed, n, m.config.latent_sz, &dev)? * truncation)?;
                let y = Tensor::from_vec(vec![c as u32; n], n, &dev)?;
                Ok(m.forward_parts(&u, &y, &y, &y)?.x)
            }
        }
    }
}

/// The judge's accuracy on the samples of one truncation.
#[derive(Debug, Clone, Serialize)]
pub struct Consistency {
    pub truncation: f64,
    pub accuracy: f64,
    pub per_class: Vec<f64>,
    pub samples_per_class: usize,
}

/// Within-class pixel diversity of samples and real images.
#[derive(Debug, Clone, Serialize)]
pub struct Diversity {
    pub truncation: f64,
    pub samples: Vec<f64>,
    pub real: Vec<f64>,
    pub samples_mean: f64,
    pub real_mean: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    pub generator: String,
    pub judge: String,
    pub data: String,
    pub consistency: Vec<Consistency>,
    pub diversity: Vec<Diversity>,
}

/// `[−1, 1]` → 8 bits (`imageio::to_u8`) → `[−1, 1]` as the judge reads a PNG.
fn as_png(x: &Tensor) -> anyhow::Result<Tensor> {
    let v: Vec<f32> = x
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|&a| crate::imageio::to_u8(a) as f32 / 255.0 * 2.0 - 1.0)
        .collect();
    Ok(Tensor::from_vec(v, x.shape(), x.device())?)
}

/// Top-1 predictions of the judge.
fn predict(judge: &EvalModel, x: &Tensor) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for i in (0..x.dim(0)?).step_by(100) {
        let b = x.narrow(0, i, 100.min(x.dim(0)? - i))?;
        out.extend(judge.opened.model.logits(&b)?.argmax(1)?.to_vec1::<u32>()?);
    }
    Ok(out)
}

/// `mean_{i<j} RMS(a_i − a_j)` of `(n, 3, 32, 32)` images in [−1, 1], on the [0, 1] scale.
pub fn mean_pairwise_rms(x: &Tensor) -> anyhow::Result<f64> {
    let n = x.dim(0)?;
    let d = x.elem_count() / n.max(1);
    let v: Vec<f32> = x.flatten_all()?.to_vec1::<f32>()?.iter().map(|a| (a + 1.0) / 2.0).collect();
    let (mut sum, mut pairs) = (0f64, 0usize);
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = (&v[i * d..(i + 1) * d], &v[j * d..(j + 1) * d]);
            let s: f64 = a.iter().zip(b).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
            sum += (s / d as f64).sqrt();
            pairs += 1;
        }
    }
    Ok(if pairs == 0 { 0.0 } else { sum / pairs as f64 })
}

/// Measures `gen` with `judge` against the real images of `data`.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    gen: &Generator,
    gen_name: &str,
    judge: &EvalModel,
    judge_name: &str,
    data: &GanData,
    per_class: usize,
    diversity_per_class: usize,
    truncations: &[f64],
    seed: u64,
    control: &Control,
) -> anyhow::Result<QualityReport> {
    let nc = gen.num_classes();
    if judge.classes.len() != nc {
        bail!(
            "the judge has {} classes but the generator {nc}: train the judge on the generator's data set",
            judge.classes.len()
        );
    }
    if data.num_classes() != nc {
        bail!("the data set has {} classes but the generator {nc}", data.num_classes());
    }
    control.set_total((truncations.len() * nc) as u64);
    let mut consistency = Vec::new();
    let mut diversity = Vec::new();
    for &t in truncations {
        let mut per = Vec::with_capacity(nc);
        let mut div = Vec::with_capacity(nc);
        let mut real_div = Vec::with_capacity(nc);
        for c in 0..nc {
            control.check()?;
            control.set_status(format!("truncation {t}, class {c}"));
            let seed_c = crate::train::data::seed_of(&[seed, c as u64, t.to_bits()]);
            let mut correct = 0;
            let mut first: Option<Tensor> = None;
            for start in (0..per_class).step_by(200) {
                let n = 200.min(per_class - start);
                let x = as_png(&gen.sample(c, n, t, crate::train::data::seed_of(&[seed_c, start as u64]))?)?;
                correct += predict(judge, &x)?.iter().filter(|&&p| p as usize == c).count();
                if first.is_none() {
                    first = Some(x);
                }
            }
            per.push(correct as f64 / per_class.max(1) as f64);
            let s = match first {
                Some(x) if x.dim(0)? >= diversity_per_class => x.narrow(0, 0, diversity_per_class)?,
                _ => as_png(&gen.sample(c, diversity_per_class, t, seed_c)?)?,
            };
            div.push(mean_pairwise_rms(&s)?);
            let idx = data.of_class(c as u32, diversity_per_class);
            let (r, _) = data.batch(&idx, &Device::Cpu)?;
            real_div.push(mean_pairwise_rms(&r)?);
            control.advance(1);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        consistency.push(Consistency {
            truncation: t,
            accuracy: mean(&per),
            per_class: per,
            samples_per_class: per_class,
        });
        diversity.push(Diversity {
            truncation: t,
            samples_mean: mean(&div),
            real_mean: mean(&real_div),
            samples: div,
            real: real_div,
        });
        control.log(format!(
            "truncation {t}: class consistency {:.2} %, diversity {:.4} (real {:.4})",
            100.0 * consistency.last().map_or(0.0, |c| c.accuracy),
            diversity.last().map_or(0.0, |d| d.samples_mean),
            diversity.last().map_or(0.0, |d| d.real_mean)
        ));
    }
    Ok(QualityReport {
        generator: gen_name.into(),
        judge: judge_name.into(),
        data: data.source.name(),
        consistency,
        diversity,
    })
}

/// The real test images of a data set: MNIST / Fashion-MNIST `t10k`; a CGN variant's held-out
/// digits coloured as in training (in-domain).
pub fn test_split(source: &DataSource, data_dir: &Path) -> anyhow::Result<GanData> {
    use crate::data::variants::{self, Split, TestSource, Variant, VariantConfig};
    match source {
        DataSource::Mnist | DataSource::FashionMnist => {
            let dir = data_dir.join(if *source == DataSource::Mnist { "mnist" } else { "fashion-mnist" });
            let m = crate::data::mnist::load(&dir, crate::data::mnist::MnistFile::Test)?;
            let train = GanData::load(source, data_dir)?;
            let mut images = vec![0u8; m.len() * 32 * 32 * 3];
            for (i, dst) in images.chunks_exact_mut(32 * 32 * 3).enumerate() {
                let src = m.image(i);
                for r in 0..28 {
                    for c in 0..28 {
                        let p = ((r + 2) * 32 + c + 2) * 3;
                        let v = src[r * 28 + c];
                        dst[p..p + 3].copy_from_slice(&[v, v, v]);
                    }
                }
            }
            Ok(GanData {
                source: source.clone(),
                images,
                labels: m.labels.iter().map(|&l| l as u32).collect(),
                classes: train.classes,
            })
        }
        DataSource::Variant(name) => {
            let v: Variant = name.parse()?;
            let (_, test) = variants::source_splits(&data_dir.join("mnist"), TestSource::Holdout, None)?;
            // Train-style colouring of the held-out digits: in-domain test images.
            let set = variants::generate(&VariantConfig::new(v, 1), Split::Train, &test)?;
            let labels = set.labels().iter().map(|&l| l as u32).collect();
            Ok(GanData {
                source: source.clone(),
                images: set.images,
                labels,
                classes: (0..10).map(|d| d.to_string()).collect(),
            })
        }
        DataSource::Folder(d) => {
            bail!("{}: give the test images of a folder data set as their own folder", d.display())
        }
    }
}

/// Writes `data` as `dir/<label index>/NNNNN.png` (existing files are kept).
pub fn write_folder(data: &GanData, dir: &Path, control: &Control) -> anyhow::Result<u64> {
    let mut written = 0;
    for i in 0..data.len() {
        if i % 1000 == 0 {
            control.check()?;
        }
        // Folders named by label index, so a judge trained on them keeps the generator's order.
        let d = dir.join(data.labels[i].to_string());
        let p = d.join(format!("{i:05}.png"));
        if p.is_file() {
            continue;
        }
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        let px = data.images[i * 3072..(i + 1) * 3072].to_vec();
        crate::imageio::save_image(&crate::imageio::RgbImage { width: 32, height: 32, pixels: px }, &p)?;
        written += 1;
        control.add_written(1);
    }
    Ok(written)
}

/// Writes the real `train/` and `test/` folders of `source` under `out` (for the judge).
pub fn real_folders(source: &DataSource, out: &Path, control: &Control) -> anyhow::Result<(u64, u64)> {
    let dd = crate::data::data_dir();
    control.set_status("train images");
    let train = GanData::load(source, &dd)?;
    let a = write_folder(&train, &out.join("train"), control)?;
    control.set_status("test images");
    let test = test_split(source, &dd)?;
    let b = write_folder(&test, &out.join("test"), control)?;
    Ok((a, b))
}

/// Writes `per_class` samples of every class as `dir/<class>/NNNNN.png` (8-bit, as the judge and
/// the classifier trainer read them): the non-counterfactual "GAN" training set of the CGN study
/// (all three mechanisms of a CGN on the same class), or a BigGAN's observational set.
/// Files that exist are kept, so an interrupted run continues.
pub fn write_samples(
    gen: &Generator,
    dir: &Path,
    per_class: usize,
    truncation: f64,
    seed: u64,
    control: &Control,
) -> anyhow::Result<u64> {
    let nc = gen.num_classes();
    control.set_total((nc * per_class) as u64);
    let mut written = 0;
    for c in 0..nc {
        let d = dir.join(c.to_string());
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        for start in (0..per_class).step_by(200) {
            control.check()?;
            let n = 200.min(per_class - start);
            if (start..start + n).all(|i| d.join(format!("{i:05}.png")).is_file()) {
                control.skip(n as u64);
                continue;
            }
            let x = gen.sample(c, n, truncation, crate::train::data::seed_of(&[seed, c as u64, start as u64]))?;
            for (k, img) in crate::imageio::images_from_tensor(&x)?.iter().enumerate() {
                let p = d.join(format!("{:05}.png", start + k));
                if !p.is_file() {
                    crate::imageio::save_image(img, &p)?;
                    written += 1;
                }
            }
            control.advance(n as u64);
        }
    }
    Ok(written)
}
