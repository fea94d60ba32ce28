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
    /// MNIST variant (colored, double-colored, wildlife) where it applies.
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
}
