//! Data sets: MNIST-family IDX files and the three MNIST variants of the CGN paper
//! (colored, double-colored, wildlife and its data version 2, wildlife-v2), generated in memory or exported as image folders.
//!
//! | module | concern |
//! |---|---|
//! | [`idx`] | reading IDX files (raw or gzip) with checked headers |
//! | [`mnist`] | MNIST / Fashion-MNIST train and test pairs from a folder |
//! | [`variants`] | the biased (train) and de-biased (test) CGN variants at 32×32 |
//! | [`genint_colored`] | GenInt's 10-way colored MNIST (two background colours per class; confounded and causal tests) |
//! | [`textures`] | procedural striped / veined textures standing in for the DTD images |
//! | [`texture_files`] | wildlife's textures from image files (the authors' DTD layout), for `--textures` |

pub mod genint_colored;
pub mod idx;
pub mod mnist;
pub mod texture_files;
pub mod textures;
pub mod variants;

use std::path::PathBuf;

/// What can go wrong while reading or generating data. Messages name the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("{dir}: {msg}")]
    Missing { dir: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
}

/// The data folder: `$INTERVENE_DATA`, else `<source tree>/.data` (where `tools/setup.sh data`
/// puts MNIST, Fashion-MNIST and the weights the tests use).
pub fn data_dir() -> PathBuf {
    std::env::var_os("INTERVENE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.data")))
}
