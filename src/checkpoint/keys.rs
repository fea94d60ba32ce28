//! Which checkpoint keys a model used: missing, unexpected and mis-shaped keys by name.

use std::collections::BTreeMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use super::TensorMap;

/// The outcome of matching a checkpoint against what a model asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyReport {
    /// Names the model asked for that the checkpoint lacks.
    pub missing: Vec<String>,
    /// Names in the checkpoint the model never asked for (sorted).
    pub unexpected: Vec<String>,
    /// `(key, expected shape, found shape)`.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl KeyReport {
    /// Whether every key matched.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl std::fmt::Display for KeyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_clean() {
            return write!(f, "all keys match");
        }
        let list = |v: &[String]| {
            v.iter().take(20).cloned().collect::<Vec<_>>().join(", ") + if v.len() > 20 { ", …" } else { "" }
        };
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("{} missing: {}", self.missing.len(), list(&self.missing)));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("{} unexpected: {}", self.unexpected.len(), list(&self.unexpected)));
        }
        for (k, want, got) in &self.mismatched {
            parts.push(format!("{k}: expected shape {want:?}, found {got:?}"));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// Compares a checkpoint with the `(name, shape)` pairs a model expects: names the model expects
/// but the file lacks, names the file has but the model does not expect, and shape mismatches.
pub fn check_keys<'a>(map: &TensorMap, expected: impl IntoIterator<Item = (&'a str, &'a [usize])>) -> KeyReport {
    let mut report = KeyReport::default();
    let mut wanted = std::collections::HashSet::new();
    for (name, shape) in expected {
        wanted.insert(name);
        match map.get(name) {
            None => report.missing.push(name.to_string()),
            Some(t) if t.dims() != shape => {
                report.mismatched.push((name.to_string(), shape.to_vec(), t.dims().to_vec()))
            }
            Some(_) => {}
        }
    }
    report.unexpected = map.keys().filter(|k| !wanted.contains(k.as_str())).cloned().collect();
    report.unexpected.sort();
    report
}

/// A VarBuilder backend over a [`TensorMap`] that records every request, so that after a model
/// is built the checkpoint can be checked for unused or missing keys. Tensors are handed out
/// (and removed) as they are requested, so the checkpoint's copy is freed as the model takes it.
pub struct TrackedWeights {
    state: Mutex<State>,
}

struct State {
    remaining: TensorMap,
    used: BTreeMap<String, Vec<usize>>,
    missing: Vec<String>,
    mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl TrackedWeights {
    /// Wraps a checkpoint's tensors.
    pub fn new(map: TensorMap) -> Self {
        Self {
            state: Mutex::new(State {
                remaining: map,
                used: BTreeMap::new(),
                missing: Vec::new(),
                mismatched: Vec::new(),
            }),
        }
    }

    /// A VarBuilder over these weights (must outlive it: the builder borrows them).
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'_> {
        VarBuilder::from_backend(Box::new(Ref(self)), dtype, device.clone())
    }

    /// What was missing, mis-shaped, or left unused.
    pub fn report(&self) -> KeyReport {
        let s = self.lock();
        let mut unexpected: Vec<String> = s.remaining.keys().cloned().collect();
        unexpected.sort();
        KeyReport { missing: s.missing.clone(), unexpected, mismatched: s.mismatched.clone() }
    }

    /// The names handed out so far, with their shapes (sorted by name).
    pub fn requested(&self) -> Vec<(String, Vec<usize>)> {
        self.lock().used.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The state, also after a panic elsewhere while it was held (it stays consistent: every
    /// update is a single insert or push).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Ref<'a>(&'a TrackedWeights);

impl SimpleBackend for Ref<'_> {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut st = self.0.lock();
        let t = match st.remaining.remove(name) {
            Some(t) => t,
            None => match st.used.get(name) {
                Some(_) => candle_core::bail!("{name} was requested twice (each checkpoint tensor is handed out once)"),
                None => {
                    st.missing.push(name.to_string());
                    candle_core::bail!("the checkpoint has no tensor {name} (expected shape {:?})", s.dims())
                }
            },
        };
        if t.dims() != s.dims() {
            st.mismatched.push((name.to_string(), s.dims().to_vec(), t.dims().to_vec()));
            candle_core::bail!("{name}: expected shape {:?}, found {:?}", s.dims(), t.dims());
        }
        st.used.insert(name.to_string(), t.dims().to_vec());
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut st = self.0.lock();
        let Some(t) = st.remaining.remove(name) else { candle_core::bail!("the checkpoint has no tensor {name}") };
        st.used.insert(name.to_string(), t.dims().to_vec());
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let s = self.0.lock();
        s.remaining.contains_key(name) || s.used.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_keys_names_missing_unexpected_and_misshaped() {
        let z = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
        let map: TensorMap = [("a", z(&[2, 3])), ("b", z(&[4])), ("extra", z(&[1]))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let r = check_keys(&map, [("a", &[2usize, 3][..]), ("b", &[5][..]), ("c", &[1][..])]);
        assert_eq!(r.missing, vec!["c"]);
        assert_eq!(r.unexpected, vec!["extra"]);
        assert_eq!(r.mismatched, vec![("b".to_string(), vec![5], vec![4])]);
        assert_eq!(r.to_string(), "1 missing: c; 1 unexpected: extra; b: expected shape [5], found [4]");
        assert!(check_keys(&map, [("a", &[2usize, 3][..]), ("b", &[4][..]), ("extra", &[1][..])]).is_clean());
    }
}
