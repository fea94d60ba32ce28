//! GANSpace component files (`.npz`), read and written in GANSpace's own layout so published
//! files (`biggan-512-husky_generator.gen_z_ipca_c80_n1000000.npz`, …) load unchanged and ours
//! load in GANSpace.
//!
//! Keys, in the order `decomposition.py` writes them with `np.savez_compressed`, all float32:
//!
//! | key | shape | meaning |
//! |---|---|---|
//! | `act_comp` | `[C, *S]` (S = per-sample activation shape, `[1, D]` for gen_z) | principal directions in activation space |
//! | `act_mean` | `S` | activation mean |
//! | `act_stdev` | `[C]` | √explained variance |
//! | `lat_comp` | `[C, 1, z_dim]` | unit latent directions (regressed back to z) |
//! | `lat_mean` | `[1, z_dim]` | mean latent of the regression samples |
//! | `lat_stdev` | `[C]` | latent scale per component (all ones for BigGAN) |
//! | `var_ratio` | `[C]` | explained variance ratio |
//! | `random_stdevs` | `[C]` | stdev of the activations along random unit directions (baseline) |
//!
//! float64 arrays and `[C, z_dim]` / `[z_dim]` latent shapes are accepted when reading.

use std::path::Path;

use crate::npy::{self as npz, NpyArray, NpzError};

/// The keys of a component file, in GANSpace's order.
pub const KEYS: [&str; 8] =
    ["act_comp", "act_mean", "act_stdev", "lat_comp", "lat_mean", "lat_stdev", "var_ratio", "random_stdevs"];

/// Why a component file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ComponentsError {
    #[error("cannot open components {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{path} is not a GANSpace component file (.npz): {msg}")]
    Format { path: String, msg: String },
    #[error("{path} lacks the array '{key}' (a GANSpace component file holds {all}; found: {found})")]
    MissingKey { path: String, key: String, all: String, found: String },
    #[error("{path}: '{key}' has shape {got:?} but {expected} is needed")]
    Shape { path: String, key: String, got: Vec<usize>, expected: String },
    #[error("the components in {path} are for latents of {file} dimensions but the model's z_dim is {model}")]
    ZDim { path: String, file: usize, model: usize },
    #[error("{path}: '{key}' contains NaN or infinite values")]
    NotFinite { path: String, key: String },
}

/// A set of principal components (GANSpace's `.npz` contents).
#[derive(Debug, Clone, PartialEq)]
pub struct Components {
    /// Per-sample activation shape as stored (`act_mean`'s shape): `[1, D]` for gen_z,
    /// `[1, C, H, W]` for a GenBlock output.
    pub act_shape: Vec<usize>,
    /// `C × D`, row-major.
    pub act_comp: Vec<f32>,
    /// `D`.
    pub act_mean: Vec<f32>,
    /// `C`.
    pub act_stdev: Vec<f32>,
    /// `C × z_dim`, unit rows.
    pub lat_comp: Vec<f32>,
    /// `z_dim`.
    pub lat_mean: Vec<f32>,
    /// `C`.
    pub lat_stdev: Vec<f32>,
    /// `C`.
    pub var_ratio: Vec<f32>,
    /// `C`.
    pub random_stdevs: Vec<f32>,
    /// Where the components came from (a path, or `<memory>`), for messages.
    pub source: String,
}

impl Components {
    /// Number of components C.
    pub fn num_components(&self) -> usize {
        self.act_stdev.len()
    }

    /// Width of the latent directions.
    pub fn z_dim(&self) -> usize {
        self.lat_mean.len()
    }

    /// Width of the activation directions.
    pub fn act_dim(&self) -> usize {
        self.act_mean.len()
    }

    /// Latent direction `c` (unit length).
    pub fn lat_dir(&self, c: usize) -> &[f32] {
        let z = self.z_dim();
        &self.lat_comp[c * z..(c + 1) * z]
    }

    /// Activation direction `c`.
    pub fn act_dir(&self, c: usize) -> &[f32] {
        let d = self.act_dim();
        &self.act_comp[c * d..(c + 1) * d]
    }

    /// Checks that every array has the length the others imply and holds finite numbers.
    pub fn validate(&self) -> Result<(), ComponentsError> {
        let (c, d, z) = (self.num_components(), self.act_dim(), self.z_dim());
        let shape = |key: &str, got: usize, expected: String| ComponentsError::Shape {
            path: self.source.clone(),
            key: key.into(),
            got: vec![got],
            expected,
        };
        if c == 0 {
            return Err(shape("act_stdev", 0, "at least one component".into()));
        }
        if self.act_shape.iter().product::<usize>() != d {
            return Err(shape(
                "act_mean",
                d,
                format!("{} values (shape {:?})", self.act_shape.iter().product::<usize>(), self.act_shape),
            ));
        }
        if self.act_comp.len() != c * d {
            return Err(shape("act_comp", self.act_comp.len(), format!("{c}·{d} values")));
        }
        if self.lat_comp.len() != c * z {
            return Err(shape("lat_comp", self.lat_comp.len(), format!("{c}·{z} values")));
        }
        for (key, v) in
            [("lat_stdev", &self.lat_stdev), ("var_ratio", &self.var_ratio), ("random_stdevs", &self.random_stdevs)]
        {
            if v.len() != c {
                return Err(shape(key, v.len(), format!("[{c}] (one per component)")));
            }
        }
        for (key, v) in self.arrays_flat() {
            if v.iter().any(|x| !x.is_finite()) {
                return Err(ComponentsError::NotFinite { path: self.source.clone(), key: key.into() });
            }
        }
        Ok(())
    }

    fn arrays_flat(&self) -> [(&'static str, &Vec<f32>); 8] {
        [
            ("act_comp", &self.act_comp),
            ("act_mean", &self.act_mean),
            ("act_stdev", &self.act_stdev),
            ("lat_comp", &self.lat_comp),
            ("lat_mean", &self.lat_mean),
            ("lat_stdev", &self.lat_stdev),
            ("var_ratio", &self.var_ratio),
            ("random_stdevs", &self.random_stdevs),
        ]
    }

    /// Errors unless the latent directions fit a model with `z_dim`.
    pub fn check_z_dim(&self, z_dim: usize) -> Result<(), ComponentsError> {
        if self.z_dim() != z_dim {
            return Err(ComponentsError::ZDim { path: self.source.clone(), file: self.z_dim(), model: z_dim });
        }
        Ok(())
    }

    /// The arrays with GANSpace's shapes, in GANSpace's key order.
    pub fn to_arrays(&self) -> Vec<(&'static str, NpyArray)> {
        let (c, z) = (self.num_components(), self.z_dim());
        let mut act_comp_shape = vec![c];
        act_comp_shape.extend_from_slice(&self.act_shape);
        let arr = |shape: Vec<usize>, data: &Vec<f32>| NpyArray { shape, data: data.clone() };
        vec![
            ("act_comp", arr(act_comp_shape, &self.act_comp)),
            ("act_mean", arr(self.act_shape.clone(), &self.act_mean)),
            ("act_stdev", arr(vec![c], &self.act_stdev)),
            ("lat_comp", arr(vec![c, 1, z], &self.lat_comp)),
            ("lat_mean", arr(vec![1, z], &self.lat_mean)),
            ("lat_stdev", arr(vec![c], &self.lat_stdev)),
            ("var_ratio", arr(vec![c], &self.var_ratio)),
            ("random_stdevs", arr(vec![c], &self.random_stdevs)),
        ]
    }

    /// Writes the `.npz` (compressed, GANSpace's layout) to `path`. Callers that must not leave
    /// a partial file wrap this in `imageio::write_atomically`.
    pub fn save(&self, path: &Path) -> Result<(), ComponentsError> {
        self.validate()?;
        let arrays = self.to_arrays();
        let entries: Vec<(&str, &NpyArray)> = arrays.iter().map(|(k, a)| (*k, a)).collect();
        npz::save_npz(path, &entries).map_err(|e| map_npz(path, e))
    }

    /// Reads and validates a component file.
    pub fn load(path: &Path) -> Result<Self, ComponentsError> {
        let arrays = npz::load_npz(path).map_err(|e| map_npz(path, e))?;
        Self::from_arrays(&path.display().to_string(), arrays)
    }

    /// Builds components from named arrays (GANSpace's keys), checking every shape.
    pub fn from_arrays(source: &str, arrays: Vec<(String, NpyArray)>) -> Result<Self, ComponentsError> {
        let found: Vec<String> = arrays.iter().map(|(k, _)| k.clone()).collect();
        let mut map: std::collections::HashMap<String, NpyArray> = arrays.into_iter().collect();
        let mut take = |key: &str| {
            map.remove(key).ok_or_else(|| ComponentsError::MissingKey {
                path: source.into(),
                key: key.into(),
                all: KEYS.join(", "),
                found: if found.is_empty() { "nothing".into() } else { found.join(", ") },
            })
        };
        let [act_comp, act_mean, act_stdev, lat_comp, lat_mean, lat_stdev, var_ratio, random_stdevs] =
            KEYS.map(&mut take);
        let (act_comp, act_mean, act_stdev) = (act_comp?, act_mean?, act_stdev?);
        let (lat_comp, lat_mean, lat_stdev) = (lat_comp?, lat_mean?, lat_stdev?);
        let (var_ratio, random_stdevs) = (var_ratio?, random_stdevs?);
        let bad = |key: &str, a: &NpyArray, expected: String| ComponentsError::Shape {
            path: source.into(),
            key: key.into(),
            got: a.shape.clone(),
            expected,
        };
        if act_stdev.shape.len() != 1 || act_stdev.shape[0] == 0 {
            return Err(bad("act_stdev", &act_stdev, "[C] with C ≥ 1".into()));
        }
        let c = act_stdev.shape[0];
        if act_comp.shape.len() < 2 || act_comp.shape[0] != c {
            return Err(bad("act_comp", &act_comp, format!("[{c}, …] (C = {c} from act_stdev)")));
        }
        let d: usize = act_comp.shape[1..].iter().product();
        if act_mean.data.len() != d {
            return Err(bad(
                "act_mean",
                &act_mean,
                format!("{:?} ({d} values, as act_comp's rows)", &act_comp.shape[1..]),
            ));
        }
        let z = match lat_comp.shape.as_slice() {
            [n, 1, z] | [n, z] if *n == c => *z,
            _ => return Err(bad("lat_comp", &lat_comp, format!("[{c}, 1, z_dim]"))),
        };
        if !matches!(lat_mean.shape.as_slice(), [1, n] | [n] if *n == z) {
            return Err(bad("lat_mean", &lat_mean, format!("[1, {z}]")));
        }
        for (key, a) in [("lat_stdev", &lat_stdev), ("var_ratio", &var_ratio), ("random_stdevs", &random_stdevs)] {
            if a.shape.as_slice() != [c] {
                return Err(bad(key, a, format!("[{c}]")));
            }
        }
        let comps = Self {
            act_shape: act_mean.shape,
            act_comp: act_comp.data,
            act_mean: act_mean.data,
            act_stdev: act_stdev.data,
            lat_comp: lat_comp.data,
            lat_mean: lat_mean.data,
            lat_stdev: lat_stdev.data,
            var_ratio: var_ratio.data,
            random_stdevs: random_stdevs.data,
            source: source.into(),
        };
        comps.validate()?;
        Ok(comps)
    }
}

fn map_npz(path: &Path, e: NpzError) -> ComponentsError {
    let p = path.display().to_string();
    match e {
        NpzError::Io(err) => ComponentsError::Io { path: p, err },
        NpzError::Zip(msg) => ComponentsError::Format { path: p, msg },
        NpzError::Npy { key, msg } => ComponentsError::Format { path: p, msg: format!("array '{key}': {msg}") },
    }
}
