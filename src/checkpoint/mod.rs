//! Weight files in their native formats.
//!
//! Every model loads through [`load`], which detects the format from the file's first bytes:
//! - safetensors (`*.safetensors`),
//! - PyTorch zip archives (`torch.save`, PyTorch ≥ 1.6: `.bin`/`.pth` starting with `PK`),
//! - legacy PyTorch pickles (PyTorch < 1.6: pickle protocol 2 stream, `80 02 8a 0a` magic).
//!
//! The result is a [`TensorMap`]: names (with `module.` prefixes stripped) to CPU tensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

/// Tensors by name, as read from one checkpoint file.
pub type TensorMap = HashMap<String, Tensor>;

/// What can go wrong while reading a checkpoint. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
}

/// Reads every tensor of a checkpoint file, whatever its format.
pub fn load(path: &Path) -> Result<TensorMap, CheckpointError> {
    // Interim implementation; replaced by the format readers in this module.
    let fmt = |msg: String| CheckpointError::Format {
        path: path.to_path_buf(),
        msg,
    };
    let is_st = path.extension().is_some_and(|e| e == "safetensors");
    let list = if is_st {
        candle_core::safetensors::load(path, &candle_core::Device::Cpu)
            .map_err(|e| fmt(e.to_string()))?
            .into_iter()
            .collect::<Vec<_>>()
    } else {
        candle_core::pickle::read_all(path).map_err(|e| fmt(e.to_string()))?
    };
    Ok(list
        .into_iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("module.").map(str::to_string).unwrap_or(k),
                v,
            )
        })
        .collect())
}
