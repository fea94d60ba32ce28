//! The bundled models (`models/index.json`): what the studio opens on with no download, and
//! what its "Bundled models" menu and `--model NAME` offer. Each entry is a folder under
//! `models/` named like the model, with a model card.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a bundled model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Biggan,
    Cgn,
    Cvae,
    Classifier,
}

/// One entry of `models/index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    /// Folder (relative to `models/`).
    pub path: String,
    pub dataset: String,
    /// MNIST variant (colored, double-colored, wildlife, wildlife-v2) where it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// For classifiers: original, gan, cgn, original+cgn, observational, interventional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_on: Option<String>,
    /// The model card (relative to `models/`).
    pub card: String,
    /// The first model of its kind the studio opens.
    #[serde(default)]
    pub default: bool,
    /// Kept for tests and benchmarks; never the first thing shown.
    #[serde(default)]
    pub testing: bool,
    /// GANSpace components shipped beside a generator (relative to `models/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<String>,
    /// The class a generator opens on (else the studio's default class, clamped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_class: Option<usize>,
    /// The classifier that explains this generator's images by default (an index name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
    /// One line for menus.
    #[serde(default)]
    pub summary: String,
}

impl Entry {
    /// The model's folder.
    pub fn dir(&self) -> PathBuf {
        crate::bundled_models_dir().join(&self.path)
    }

    /// The components file, if one is shipped.
    pub fn components_path(&self) -> Option<PathBuf> {
        self.components.as_ref().map(|c| crate::bundled_models_dir().join(c))
    }
}

/// The bundled index, in file order (empty when `models/index.json` is missing or unreadable;
/// the reason is logged).
pub fn index() -> Vec<Entry> {
    let path = crate::bundled_models_dir().join("index.json");
    let parsed =
        std::fs::read(&path).map_err(anyhow::Error::from).and_then(|b| Ok(serde_json::from_slice::<Vec<Entry>>(&b)?));
    match parsed {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("cannot read {}: {e:#}", path.display());
            Vec::new()
        }
    }
}

/// The two classifiers the Explain pane compares for the images of CGN `cgn`: the variant's
/// original-data classifier and its counterfactual-trained one (the CGN study's Figure 3), or
/// the original one twice when no counterfactual-trained one is shipped. `None` when the
/// variant has no shipped classifier.
pub fn explain_pair(idx: &[Entry], cgn: &Entry) -> Option<(String, String)> {
    let trained_on = |t: &str| {
        idx.iter()
            .find(|c| {
                c.kind == Kind::Classifier
                    && c.variant.is_some()
                    && c.variant == cgn.variant
                    && c.trained_on.as_deref() == Some(t)
            })
            .map(|c| c.name.clone())
    };
    let original = trained_on("original")?;
    let cf = trained_on("cgn").unwrap_or_else(|| original.clone());
    Some((original, cf))
}

/// The entry called `name`.
pub fn find(name: &str) -> Option<Entry> {
    index().into_iter().find(|e| e.name == name)
}

/// The model of `kind` the studio opens first: the one marked default, else the first that is
/// not kept only for tests, else the first.
pub fn default_of(kind: Kind) -> Option<Entry> {
    let of_kind: Vec<Entry> = index().into_iter().filter(|e| e.kind == kind).collect();
    of_kind
        .iter()
        .find(|e| e.default)
        .or_else(|| of_kind.iter().find(|e| !e.testing))
        .or_else(|| of_kind.first())
        .cloned()
}

/// The default model name of `kind`, or `fallback`.
pub fn default_name(kind: Kind, fallback: &str) -> String {
    default_of(kind).map_or_else(|| fallback.to_string(), |e| e.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgn_opens_explain_on_its_variants_original_and_counterfactual_classifiers() {
        let entry = |name: &str, kind: Kind, variant: Option<&str>, trained_on: Option<&str>| Entry {
            name: name.into(),
            kind,
            path: name.into(),
            dataset: "mnist".into(),
            variant: variant.map(Into::into),
            trained_on: trained_on.map(Into::into),
            card: String::new(),
            default: false,
            testing: false,
            components: None,
            default_class: None,
            classifier: None,
            summary: String::new(),
        };
        let idx = vec![
            entry("cgn-w", Kind::Cgn, Some("wildlife"), None),
            entry("clf-w-cf", Kind::Classifier, Some("wildlife"), Some("cgn")),
            entry("clf-c-orig", Kind::Classifier, Some("colored"), Some("original")),
            entry("clf-w-orig", Kind::Classifier, Some("wildlife"), Some("original")),
            entry("cgn-c", Kind::Cgn, Some("colored"), None),
            entry("cgn-r", Kind::Cgn, None, None),
        ];
        assert_eq!(explain_pair(&idx, &idx[0]), Some(("clf-w-orig".into(), "clf-w-cf".into())));
        assert_eq!(explain_pair(&idx, &idx[4]), Some(("clf-c-orig".into(), "clf-c-orig".into())));
        assert_eq!(explain_pair(&idx, &idx[5]), None, "a CGN without a variant matches no classifier");
        // Every shipped CGN trained on a variant has its original-data classifier shipped.
        let shipped = index();
        for e in shipped.iter().filter(|e| e.kind == Kind::Cgn && !e.testing) {
            assert!(explain_pair(&shipped, e).is_some(), "{}: a shipped classifier of its variant", e.name);
        }
    }

    #[test]
    fn the_shipped_index_lists_existing_folders_and_cards() {
        let idx = index();
        assert!(!idx.is_empty(), "models/index.json is read");
        for e in &idx {
            assert!(e.dir().is_dir(), "{}: no folder {}", e.name, e.dir().display());
            assert!(crate::bundled_models_dir().join(&e.card).is_file(), "{}: no card {}", e.name, e.card);
            if let Some(c) = e.components_path() {
                assert!(c.is_file(), "{}: no components {}", e.name, c.display());
            }
        }
        let names: std::collections::BTreeSet<&str> = idx.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names.len(), idx.len(), "names are unique");
        for kind in [Kind::Biggan, Kind::Cgn, Kind::Classifier] {
            assert!(default_of(kind).is_some(), "a default {kind:?}");
        }
    }

    /// Every shipped classifier opens by its index name, with the classes its card's data set has
    /// (10 for the MNIST family, 1,000 for ImageNet).
    #[test]
    fn every_shipped_classifier_opens_by_name() {
        for e in index().into_iter().filter(|e| e.kind == Kind::Classifier) {
            let m = crate::train::eval::EvalModel::open(&e.name, None, &candle_core::Device::Cpu)
                .unwrap_or_else(|err| panic!("{}: {err:#}", e.name));
            let want = if e.dataset == "imagenet" { 1000 } else { 10 };
            assert_eq!(m.classes.len(), want, "{}: classes", e.name);
        }
    }

    /// Every shipped (non-test) generator opens, names as many classes as it has, and draws
    /// its classes: the classifier its entry names (trained on the real images of the same
    /// data set) recognises its samples at the truncation the studio opens on.
    #[test]
    fn the_shipped_generators_draw_the_classes_their_classifier_recognises() {
        use crate::train::quality::Generator;
        let shipped: Vec<Entry> = index().into_iter().filter(|e| e.kind == Kind::Biggan && !e.testing).collect();
        assert!(!shipped.is_empty(), "a trained BigGAN-deep is shipped");
        assert!(!default_of(Kind::Biggan).expect("a default BigGAN").testing, "the studio opens on a trained model");
        for e in shipped {
            let gen = Generator::open(&e.dir()).unwrap_or_else(|err| panic!("{}: {err:#}", e.name));
            let nc = gen.num_classes();
            let names = crate::models::biggan::load::class_names(&e.dir().display().to_string()).unwrap();
            assert_eq!(names.len(), nc, "{}: classes.txt names every class", e.name);
            assert!(e.default_class.is_none_or(|c| c < nc), "{}: default class in range", e.name);
            let clf = e.classifier.clone().unwrap_or_else(|| panic!("{}: names its classifier", e.name));
            let judge = crate::train::eval::EvalModel::open(&clf, None, &candle_core::Device::Cpu).unwrap();
            assert_eq!(judge.classes.len(), nc, "{}: classifier {clf} has the generator's classes", e.name);
            let per = 20;
            let mut correct = 0;
            for c in 0..nc {
                let x = gen.sample(c, per, 0.4, 7).unwrap();
                let pred = judge.opened.model.logits(&x).unwrap().argmax(1).unwrap().to_vec1::<u32>().unwrap();
                correct += pred.iter().filter(|&&p| p as usize == c).count();
            }
            let acc = correct as f64 / (per * nc) as f64;
            // The model card reports the 1,000-per-class figure; 20 per class leaves room for
            // sampling noise around it.
            assert!(acc >= 0.8, "{}: {clf} recognises {:.1} % of its samples at truncation 0.4", e.name, 100.0 * acc);
        }
    }
}
