//! GenInt's intervention-strategy sweep (Mao et al., Figure 6): how log P(x|z) changes with the
//! truncation t, the number k of top components interventions draw from, and the scale s of
//! their offset ranges. Each setting generates a dictionary of intervened images of one class
//! the way `gen_intervene_data_withfix_seed.py` does (per seed: 5 distinct components among the
//! top k, each offset ~ U[s·min, s·max] of GenInt's reference range, centred edits on every
//! latent slot), embeds it with a classifier's penultimate features, and scores the real images
//! of that class against it ([`super::bound`]). One knob moves at a time around a base setting
//! (the paper's best: t = 1, k = 60, s = 100 %), giving three curves.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::bound::{estimate, Variant};
use crate::jobs::Control;
use crate::models::biggan::BigGan;
use crate::models::classifier::Opened;
use crate::noise::Rng;
use crate::steer::edit::genint_range;
use crate::steer::{Components, Edit, EditMode, Steerer};

/// Which knob a point varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Knob {
    Truncation,
    TopK,
    Scale,
}

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub class: usize,
    /// Generated images per setting (the dictionary).
    pub per_setting: usize,
    pub truncations: Vec<f64>,
    pub top_ks: Vec<usize>,
    pub scales: Vec<f64>,
    /// The base setting the other knobs keep: (t, k, s).
    pub base: (f64, usize, f64),
    /// Components per intervened sample (GenInt: 5).
    pub components_per_sample: usize,
    pub seed: u64,
    pub variant: Variant,
}

/// One evaluated setting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepPoint {
    pub knob: Knob,
    pub truncation: f64,
    pub top_k: usize,
    pub scale: f64,
    pub estimate: f64,
}

impl SweepConfig {
    /// Every (knob, t, k, s) to evaluate, in order.
    pub fn settings(&self) -> Vec<(Knob, f64, usize, f64)> {
        let (t0, k0, s0) = self.base;
        let mut v: Vec<_> = self.truncations.iter().map(|&t| (Knob::Truncation, t, k0, s0)).collect();
        v.extend(self.top_ks.iter().map(|&k| (Knob::TopK, t0, k, s0)));
        v.extend(self.scales.iter().map(|&s| (Knob::Scale, t0, k0, s)));
        v
    }
}

/// GenInt's range of a component; components past the published table get ±12 (its typical width).
fn range(c: usize) -> (f32, f32) {
    genint_range(c).unwrap_or((-12.0, 12.0))
}

/// The intervention of sample `seed`: `m` distinct components among the top `k`, offsets drawn in
/// the scaled ranges, applied to every latent slot.
pub fn intervention(seed: u64, k: usize, m: usize, scale: f64, slots: usize) -> Vec<Edit> {
    let mut rng = Rng::new(seed ^ 0x6E_1A7E);
    let mut pool: Vec<usize> = (0..k).collect();
    let m = m.min(k);
    for i in 0..m {
        let j = i + rng.below((k - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool[..m]
        .iter()
        .map(|&c| {
            let (lo, hi) = range(c);
            let u = rng.uniform() as f32;
            let offset = (lo + u * (hi - lo)) * scale as f32;
            Edit { component: c, start: 0, end: slots, strength: offset }
        })
        .collect()
}

/// Penultimate features of images (RGB u8) through a classifier, preprocessed as `intervene cam`.
pub fn image_features(c: &Opened, images: &[crate::imageio::RgbImage]) -> anyhow::Result<(Vec<f32>, usize)> {
    let n = c.model.stage_names().len();
    let mut out = Vec::new();
    let mut f = 0;
    for chunk in images.chunks(16) {
        let xs = chunk
            .iter()
            .map(|img| {
                let im = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels.clone())
                    .ok_or_else(|| anyhow::anyhow!("image buffer has the wrong size"))?;
                let (x, _) = c.arch.preprocess(&im)?;
                Ok(x)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let pooled = c.model.pooled(&c.model.run_range_nograd(0, n, &Tensor::cat(&xs, 0)?)?)?;
        f = pooled.dim(1)?;
        out.extend(pooled.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((out, f))
}

/// The sweep as a job, as `intervene sweep` and the window run it: the real images of the class
/// in `real_dir` (class subfolders, an export folder, or a plain folder of that class) are
/// embedded, then every setting is generated and scored. Progress counts settings.
pub fn run_job(
    model: &BigGan,
    comps: &Components,
    classifier: &Opened,
    real_dir: &Path,
    cfg: &SweepConfig,
    control: &Control,
) -> anyhow::Result<SweepResult> {
    comps.check_z_dim(model.cfg.z_dim)?;
    if cfg.per_setting == 0 {
        anyhow::bail!("images per setting must be at least 1");
    }
    let files = super::folders::real_images(real_dir, cfg.class, classifier.num_classes.max(model.cfg.num_classes))?;
    control.set_status(format!("embedding {} real images", files.len()));
    let (real, _) = super::folders::features_with(classifier, &files, &Control::new())?;
    let points = run(model, comps, classifier, &real, cfg, control)?;
    Ok(SweepResult { points, real_images: files.len() })
}

/// What [`run_job`] gives back.
#[derive(Debug, Clone)]
pub struct SweepResult {
    pub points: Vec<SweepPoint>,
    /// Real images of the class that were scored.
    pub real_images: usize,
}

/// Runs the sweep. `real` are the real images' features `[n, f]`. Progress counts settings; a
/// cancel is seen between samples.
pub fn run(
    model: &BigGan,
    comps: &Components,
    classifier: &Opened,
    real: &[f32],
    cfg: &SweepConfig,
    control: &Control,
) -> anyhow::Result<Vec<SweepPoint>> {
    let settings = cfg.settings();
    control.set_total(settings.len() as u64);
    let slots = model.cfg.num_latents();
    let nc = model.cfg.num_classes;
    let cv = crate::classes::one_hot(&[cfg.class.min(nc - 1)], nc, &Device::Cpu)?;
    let mut steerer = Steerer::new(model.clone());
    let mut out = Vec::with_capacity(settings.len());
    for &(knob, t, k, s) in &settings {
        let k = k.clamp(1, comps.num_components());
        control.set_status(format!("{knob:?}: t={t} k={k} s={s}"));
        let mut images = Vec::with_capacity(cfg.per_setting);
        for j in 0..cfg.per_setting {
            control.check()?;
            let seed = cfg.seed + j as u64;
            let z = crate::noise::truncated_noise(seed, 1, model.cfg.z_dim, t, &Device::Cpu)?;
            steerer.set_base(&z, &cv, t)?;
            let edits = intervention(seed, k, cfg.components_per_sample, s, slots);
            let x = steerer.render(comps, &edits, EditMode::Centred)?;
            images.extend(crate::imageio::images_from_tensor(&x)?);
        }
        let (d, f) = image_features(classifier, &images)?;
        let b = estimate(real, &d, f, cfg.variant)?;
        control.metric(&format!("log P(x|z) vs {knob:?}"), knob_value(knob, t, k, s), b.estimate);
        out.push(SweepPoint { knob, truncation: t, top_k: k, scale: s, estimate: b.estimate });
        control.advance(1);
    }
    Ok(out)
}

fn knob_value(knob: Knob, t: f64, k: usize, s: f64) -> f64 {
    match knob {
        Knob::Truncation => t,
        Knob::TopK => k as f64,
        Knob::Scale => s,
    }
}

/// The best point of each curve.
pub fn best_per_knob(points: &[SweepPoint]) -> Vec<&SweepPoint> {
    [Knob::Truncation, Knob::TopK, Knob::Scale]
        .iter()
        .filter_map(|k| points.iter().filter(|p| p.knob == *k).max_by(|a, b| a.estimate.total_cmp(&b.estimate)))
        .collect()
}

/// CSV: `knob,truncation,top_k,scale,log_p,best`.
pub fn to_csv(points: &[SweepPoint]) -> String {
    let best = best_per_knob(points);
    let mut s = String::from("knob,truncation,top_k,scale,log_p,best\n");
    for p in points {
        let is_best = best.iter().any(|b| std::ptr::eq(*b, p));
        let knob = match p.knob {
            Knob::Truncation => "truncation",
            Knob::TopK => "top_k",
            Knob::Scale => "scale",
        };
        s.push_str(&format!("{knob},{},{},{},{},{}\n", p.truncation, p.top_k, p.scale, p.estimate, u8::from(is_best)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interventions_draw_distinct_components_in_scaled_ranges() {
        for seed in 0..200 {
            let e = intervention(seed, 60, 5, 0.5, 11);
            assert_eq!(e.len(), 5);
            let mut cs: Vec<usize> = e.iter().map(|x| x.component).collect();
            cs.sort();
            cs.dedup();
            assert_eq!(cs.len(), 5, "distinct");
            for x in &e {
                let (lo, hi) = range(x.component);
                assert!(x.component < 60 && (x.start, x.end) == (0, 11));
                assert!(x.strength >= 0.5 * lo - 1e-4 && x.strength <= 0.5 * hi + 1e-4, "{x:?}");
            }
        }
        assert_eq!(intervention(3, 2, 5, 1.0, 11).len(), 2, "at most k components");
        assert_eq!(intervention(7, 60, 5, 1.0, 11), intervention(7, 60, 5, 1.0, 11), "deterministic");
    }
}
