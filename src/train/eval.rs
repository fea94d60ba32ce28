//! Evaluation of a classifier on labelled image folders: top-1, top-5, per-class accuracy and
//! the confusion matrix, per folder. Used after every training epoch and by `intervene eval`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use super::augment::Transform;
use super::data::{seed_of, ClassSet, Folder, Images};
use crate::jobs::Control;
use crate::models::classifier::{Arch, Opened, Staged};

/// Images per forward pass.
const BATCH: usize = 64;

/// Accuracy of one class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassAccuracy {
    pub class: String,
    pub label: usize,
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
}

/// The evaluation of one folder.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalReport {
    /// The folder as given.
    pub data: String,
    /// Its short name (metric names: `eval_acc/<name>`).
    pub name: String,
    pub n: usize,
    pub top1: f64,
    pub top5: f64,
    /// Classes present in the folder.
    pub per_class: Vec<ClassAccuracy>,
    /// `confusion[true][predicted]` over the labels present in the folder (`labels`).
    pub confusion: Vec<Vec<u64>>,
    /// The labels the rows and columns of `confusion` stand for.
    pub labels: Vec<usize>,
}

impl EvalReport {
    /// One line: `name: top-1 98.71 %, top-5 99.98 % (10000 images)`.
    pub fn summary(&self) -> String {
        format!("{}: top-1 {:.2} %, top-5 {:.2} % ({} images)", self.name, 100.0 * self.top1, 100.0 * self.top5, self.n)
    }
}

/// Evaluates `model` on `images` (already labelled with the model's classes).
pub fn evaluate(
    model: &dyn Staged,
    transform: &Transform,
    images: &Images,
    classes: &ClassSet,
    device: &Device,
    control: &Control,
) -> anyhow::Result<EvalReport> {
    let n = images.len();
    let s = transform.size();
    let per = 3 * s * s;
    let nc = classes.len();
    let mut correct1 = 0usize;
    let mut correct5 = 0usize;
    let mut per_n = vec![0usize; nc];
    let mut per_ok = vec![0usize; nc];
    let mut confusion = vec![vec![0u64; nc]; nc];
    let mut start = 0;
    while start < n {
        control.check()?;
        let end = (start + BATCH).min(n);
        let mut buf = vec![0f32; (end - start) * per];
        buf.par_chunks_mut(per)
            .enumerate()
            .try_for_each(|(j, out)| images.sample(start + j, transform, seed_of(&[start as u64 + j as u64]), out))?;
        let x = Tensor::from_vec(buf, (end - start, 3, s, s), device)?;
        let logits = model.logits(&x)?.to_device(&Device::Cpu)?.to_vec2::<f32>()?;
        for (j, row) in logits.iter().enumerate() {
            let truth = images.label(start + j) as usize;
            let mut order: Vec<usize> = (0..row.len()).collect();
            // Highest first; ties by lower index (stable sort), NaN last.
            let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
            order.sort_by(|&a, &b| key(row[b]).total_cmp(&key(row[a])));
            let pred = order[0];
            correct1 += usize::from(pred == truth);
            correct5 += usize::from(order.iter().take(5).any(|&c| c == truth));
            if truth < nc {
                per_n[truth] += 1;
                per_ok[truth] += usize::from(pred == truth);
                if pred < nc {
                    confusion[truth][pred] += 1;
                }
            }
        }
        start = end;
    }
    let labels: Vec<usize> = (0..nc).filter(|&l| per_n[l] > 0).collect();
    let per_class = labels
        .iter()
        .map(|&l| ClassAccuracy {
            class: classes.names[l].clone(),
            label: l,
            n: per_n[l],
            correct: per_ok[l],
            accuracy: per_ok[l] as f64 / per_n[l] as f64,
        })
        .collect();
    let confusion = labels.iter().map(|&t| labels.iter().map(|&p| confusion[t][p]).collect()).collect();
    let frac = |c: usize| if n == 0 { 0.0 } else { c as f64 / n as f64 };
    Ok(EvalReport {
        data: images.folder.root.display().to_string(),
        name: images.folder.name.clone(),
        n,
        top1: frac(correct1),
        top5: frac(correct5),
        per_class,
        confusion,
        labels,
    })
}

/// A classifier opened for evaluation: the model, its classes and its input transform.
pub struct EvalModel {
    pub opened: Opened,
    pub classes: ClassSet,
    pub transform: Transform,
}

impl EvalModel {
    /// Opens a classifier path: a training folder brings its classes and input size; a plain
    /// weights file maps folder names to its outputs by index, wnid or ImageNet name, with the
    /// architecture's standard input (MNIST CNN 32² in [−1, 1], ImageNet 224² crops).
    pub fn open(classifier: &str, arch: Option<Arch>, device: &Device) -> anyhow::Result<Self> {
        let trained = super::output::TrainedModel::find(Path::new(classifier))?;
        let opened = crate::models::classifier::open(classifier, arch, device)?;
        let (classes, transform) = match trained {
            Some(t) => (t.classes, t.transform),
            None => {
                let classes =
                    ClassSet { names: (0..opened.num_classes).map(|i| i.to_string()).collect(), by_index: true };
                let t = if opened.arch == Arch::MnistCnn {
                    Transform::Mnist { size: 32, flip: false }
                } else {
                    Transform::ImagenetEval { size: 224 }
                };
                (classes, t)
            }
        };
        if classes.len() != opened.num_classes {
            anyhow::bail!(
                "{classifier}: {} classes in config.json but {} outputs in the weights",
                classes.len(),
                opened.num_classes
            );
        }
        Ok(Self { opened, classes, transform })
    }
}

/// Evaluates a classifier on each folder (`intervene eval`).
pub fn evaluate_folders(
    model: &EvalModel,
    folders: &[PathBuf],
    device: &Device,
    control: &Control,
) -> anyhow::Result<Vec<EvalReport>> {
    let mut out = Vec::new();
    let mut loaded = Vec::new();
    for dir in folders {
        let f = Folder::open(dir, &model.classes, "--data", None)?;
        loaded.push(f);
    }
    control.set_total(loaded.iter().map(|f| f.len() as u64).sum());
    for f in loaded {
        control.set_status(format!("evaluating {}", f.name));
        let shrink = matches!(model.transform, Transform::Mnist { .. }).then_some(model.transform.size() as u32);
        let images = Images::new(f, shrink, &|l| control.log(l))?;
        let r = evaluate(model.opened.model.as_ref(), &model.transform, &images, &model.classes, device, control)
            .with_context(|| format!("evaluating {}", images.folder.root.display()))?;
        control.advance(r.n as u64);
        out.push(r);
    }
    Ok(out)
}
