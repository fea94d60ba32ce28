//! What the studio remembers across restarts (eframe storage), and the pieces of it that are
//! plain data: saved directions and the edit list the sliders stand for.

use serde::{Deserialize, Serialize};

use crate::composite::MaskShape;
use crate::counterfactual::SoftClass;
use crate::explain::pipeline::ExplainSlot;
use crate::models::cgn::DEFAULT_CGN;
use crate::steer::{Edit, EditMode};

/// Number of component sliders shown (GANSpace's viewer shows up to 80).
pub const MAX_SLIDERS: usize = 80;

/// A named direction the user saved: one component on a latent range with a strength.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedDirection {
    pub name: String,
    pub component: usize,
    pub start: usize,
    pub end: usize,
    pub strength: f32,
}

/// Settings that persist across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StudioState {
    pub model: String,
    pub recent_models: Vec<String>,
    pub class_query: String,
    pub class: usize,
    pub seed: u64,
    /// Grid size 1–9 (consecutive seeds).
    pub batch: usize,
    pub truncation: f64,
    /// Snap truncation to the 0.02 grid (k/50 exactly, as the BN tables are indexed).
    pub snap_truncation: bool,
    /// Component file in use (None: none loaded).
    pub components: Option<String>,
    /// One strength per component slider.
    pub sliders: Vec<f32>,
    /// Latent slots the sliders act on: `layer_start..layer_end`.
    pub layer_start: usize,
    pub layer_end: usize,
    pub centred: bool,
    pub pca_samples: usize,
    pub saved: Vec<SavedDirection>,
    /// Whether the bottom panel (performance, jobs, log) is shown.
    pub show_perf: bool,
    pub bottom_tab: super::app::BottomTab,
    pub capture_dir: Option<String>,
    /// Counterfactual (CGN) mode instead of BigGAN steering.
    pub cgn_mode: bool,
    pub cgn: CgnState,
    pub explain: ExplainState,
    /// Real images for the strategy sweep.
    pub sweep_real: Option<String>,
    pub sweep_per_setting: usize,
}

impl Default for StudioState {
    /// Opens on the bundled default generator (`models/index.json`), its shipped components and
    /// the classifier that matches it.
    fn default() -> Self {
        let biggan = crate::bundled::default_of(crate::bundled::Kind::Biggan);
        let mut explain = ExplainState::default();
        if let Some(c) = biggan.as_ref().and_then(|e| e.classifier.clone()) {
            explain.slots[0].classifier = c.clone();
            explain.slots[1].classifier = c;
        }
        Self {
            model: biggan.as_ref().map_or_else(|| crate::DEFAULT_BIGGAN.to_string(), |e| e.name.clone()),
            recent_models: Vec::new(),
            class_query: String::new(),
            class: biggan.as_ref().and_then(|e| e.default_class).unwrap_or(207),
            seed: 0,
            batch: 1,
            truncation: 0.4,
            snap_truncation: true,
            components: biggan.as_ref().and_then(|e| e.components_path()).map(|p| p.display().to_string()),
            sliders: vec![0.0; MAX_SLIDERS],
            layer_start: 0,
            layer_end: usize::MAX,
            centred: false,
            pca_samples: 20_000,
            saved: Vec::new(),
            show_perf: true,
            bottom_tab: Default::default(),
            capture_dir: None,
            cgn_mode: false,
            cgn: Default::default(),
            explain,
            sweep_real: None,
            sweep_per_setting: 50,
        }
    }
}

/// Persisted settings of the counterfactual mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CgnState {
    pub model: String,
    pub classes: [SoftClass; 3],
    pub lock: bool,
    pub seed: u64,
    pub truncation: f64,
    pub mask: MaskShape,
    pub export_n: usize,
    pub export_k: usize,
    pub export_dir: Option<String>,
}

impl Default for CgnState {
    fn default() -> Self {
        let c = SoftClass::plain;
        Self {
            model: crate::bundled::default_name(crate::bundled::Kind::Cgn, DEFAULT_CGN),
            classes: [c(3), c(5), c(7)],
            lock: false,
            seed: 0,
            truncation: 0.5,
            mask: MaskShape::default(),
            export_n: 1000,
            export_k: 10,
            export_dir: None,
        }
    }
}

/// Persisted Explain settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExplainState {
    pub enabled: bool,
    pub two: bool,
    pub slots: [ExplainSlot; 2],
    /// Explain this image file instead of the generated frame.
    pub image_file: Option<String>,
    /// Heatmap weight of the overlay (pytorch-grad-cam 0.5; GenInt's figures 0.4).
    pub alpha: f32,
}

impl Default for ExplainState {
    fn default() -> Self {
        let second = ExplainSlot { method: "gradcam++".into(), ..Default::default() };
        Self { enabled: false, two: false, slots: [ExplainSlot::default(), second], image_file: None, alpha: 0.5 }
    }
}

impl StudioState {
    /// Opens the steering mode on the bundled BigGAN-deep `e`: its default class, its GANSpace
    /// components (`components` names the file; the menu also asks the pane to load it at once)
    /// and its matching classifier in both Explain slots (else the default classifier).
    pub fn open_bundled_biggan(&mut self, e: &crate::bundled::Entry) {
        self.cgn_mode = false;
        self.model = e.name.clone();
        if let Some(c) = e.default_class {
            self.class = c;
        }
        self.sliders.iter_mut().for_each(|s| *s = 0.0);
        self.components = e.components_path().map(|p| p.display().to_string());
        let clf = e
            .classifier
            .clone()
            .unwrap_or_else(|| crate::bundled::default_name(crate::bundled::Kind::Classifier, "mobilenet_v2"));
        for s in &mut self.explain.slots {
            s.classifier = clf.clone();
        }
    }

    /// Opens the counterfactual mode on the bundled CGN `e`, with Explain set to its variant's
    /// original-data classifier beside its counterfactual-trained one (one method, side by
    /// side) when one is shipped ([`crate::bundled::explain_pair`]).
    pub fn open_bundled_cgn(&mut self, e: &crate::bundled::Entry) {
        self.cgn_mode = true;
        self.cgn.model = e.name.clone();
        if let Some((original, cf)) = crate::bundled::explain_pair(&crate::bundled::index(), e) {
            if original != cf {
                self.explain.two = true;
                self.explain.slots[1].method = self.explain.slots[0].method.clone();
            }
            self.explain.slots[0].classifier = original;
            self.explain.slots[1].classifier = cf;
        }
    }

    pub fn mode(&self) -> EditMode {
        if self.centred {
            EditMode::Centred
        } else {
            EditMode::Additive
        }
    }

    /// The latent range clamped to a model with `num_latents` slots (never empty).
    pub fn layer_range(&self, num_latents: usize) -> (usize, usize) {
        let n = num_latents.max(1);
        let start = self.layer_start.min(n - 1);
        let end = self.layer_end.clamp(start + 1, n);
        (start, end)
    }

    /// The edits the sliders stand for: every non-zero slider on the current latent range.
    pub fn edits(&self, num_components: usize, num_latents: usize) -> Vec<Edit> {
        let (start, end) = self.layer_range(num_latents);
        self.sliders
            .iter()
            .enumerate()
            .take(num_components)
            .filter(|(_, s)| **s != 0.0)
            .map(|(component, &strength)| Edit { component, start, end, strength })
            .collect()
    }

    /// Remembers `model` at the front of the recent list (at most 8, no duplicates).
    pub fn push_recent(&mut self, model: &str) {
        self.recent_models.retain(|m| m != model);
        self.recent_models.insert(0, model.to_string());
        self.recent_models.truncate(8);
    }

    /// `t` on the 0.02 grid: `round(50·t) / 50`, the same double as the literal (e.g. 0.06).
    pub fn snapped(t: f64) -> f64 {
        ((t * 50.0).round() / 50.0).clamp(0.02, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapping_gives_the_same_double_as_the_decimal_literal() {
        for k in 1..=50u32 {
            let literal: f64 = format!("{:.2}", k as f64 / 50.0).parse().unwrap_or(f64::NAN);
            assert_eq!(StudioState::snapped(literal + 0.004).to_bits(), literal.to_bits(), "k = {k}");
        }
    }

    #[test]
    fn edits_are_the_non_zero_sliders_on_the_clamped_range() {
        let mut s = StudioState::default();
        s.sliders[3] = 1.5;
        s.sliders[70] = -2.0;
        s.layer_start = 2;
        let e = s.edits(80, 5);
        assert_eq!(
            e,
            vec![
                Edit { component: 3, start: 2, end: 5, strength: 1.5 },
                Edit { component: 70, start: 2, end: 5, strength: -2.0 }
            ]
        );
        // Components beyond the file's count are ignored.
        assert_eq!(s.edits(10, 5).len(), 1);
    }

    #[test]
    fn opening_a_bundled_biggan_brings_its_components_and_classifier() {
        // From a state on another model (the default, Fashion-MNIST), as `--model NAME` and the
        // menu do: the components and the Explain classifier must follow the model.
        let mut s = StudioState::default();
        let e = crate::bundled::find("biggan-deep-double-colored-mnist-32").expect("shipped");
        s.open_bundled_biggan(&e);
        assert_eq!(s.model, e.name);
        assert!(!s.cgn_mode);
        let c = s.components.clone().unwrap_or_default();
        assert!(c.contains("biggan-deep-double-colored-mnist-32"), "its own components: {c}");
        assert!(s.explain.slots.iter().all(|x| x.classifier == "mnist-cnn-double-colored-original"));
    }

    #[test]
    fn opening_the_colored_cgn_compares_its_original_and_counterfactual_classifiers() {
        let mut s = StudioState::default();
        s.explain.slots[0].method = "gradcam".into();
        let e = crate::bundled::find("cgn-colored").expect("cgn-colored is shipped");
        s.open_bundled_cgn(&e);
        assert!(s.cgn_mode && s.cgn.model == "cgn-colored");
        assert_eq!(s.explain.slots[0].classifier, "mnist-cnn-colored-original");
        assert_eq!(s.explain.slots[1].classifier, "mnist-cnn-colored-cgn");
        assert!(s.explain.two, "side by side");
        assert_eq!(s.explain.slots[1].method, "gradcam", "one method for both");
        // Without a counterfactual-trained classifier (none is shipped for double-colored), both
        // slots show the original one.
        let mut s = StudioState::default();
        s.open_bundled_cgn(&crate::bundled::find("cgn-double-colored").expect("cgn-double-colored is shipped"));
        assert_eq!(s.explain.slots[0].classifier, "mnist-cnn-double-colored-original");
        assert_eq!(s.explain.slots[1].classifier, "mnist-cnn-double-colored-original");
        assert!(!s.explain.two);
        // Both wildlife CGNs share the variant's pair (the counterfactual classifier was trained
        // on cgn-wildlife-frozen-shape's counterfactuals).
        for name in ["cgn-wildlife", "cgn-wildlife-frozen-shape"] {
            let mut s = StudioState::default();
            s.open_bundled_cgn(&crate::bundled::find(name).expect("shipped"));
            assert_eq!(s.explain.slots[0].classifier, "mnist-cnn-wildlife-original", "{name}");
            assert_eq!(s.explain.slots[1].classifier, "mnist-cnn-wildlife-cgn", "{name}");
            assert!(s.explain.two, "{name}");
        }
        // Data version 2 has its own pair.
        let mut s = StudioState::default();
        s.open_bundled_cgn(&crate::bundled::find("cgn-wildlife-v2").expect("cgn-wildlife-v2 is shipped"));
        assert_eq!(s.explain.slots[0].classifier, "mnist-cnn-wildlife-v2-original");
        assert_eq!(s.explain.slots[1].classifier, "mnist-cnn-wildlife-v2-cgn");
        assert!(s.explain.two);
    }
}
