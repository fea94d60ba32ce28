//! Weight files in their native formats.
//!
//! [`load`] detects the format from the file's first bytes (never from its extension):
//! - safetensors (8-byte little-endian header length, then a JSON header),
//! - PyTorch zip archives (`torch.save`, PyTorch ≥ 1.6; `.bin`/`.pth` starting with `PK`),
//! - legacy PyTorch pickles (PyTorch < 1.6; pickle protocol 2 starting `80 02 8a 0a`),
//!
//! and returns a [`TensorMap`] of CPU tensors with `module.` prefixes stripped. The pickle
//! readers are our own safe subset ([`pickle`]): they rebuild tensors and containers and never
//! execute anything. Bad input of any kind gives a [`CheckpointError`] naming the file.

mod keys;
pub mod pickle;
mod torch;
mod torch_legacy;
mod torch_zip;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

pub use keys::{KeyReport, TrackedWeights};

/// Tensors by name, as read from one checkpoint file.
pub type TensorMap = HashMap<String, Tensor>;

/// What can go wrong while reading a checkpoint. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
}

/// The formats [`load`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    SafeTensors,
    TorchZip,
    TorchLegacy,
}

/// Recognises a checkpoint from its first bytes.
pub fn detect(data: &[u8]) -> Option<Format> {
    if torch_zip::sniff(data) {
        Some(Format::TorchZip)
    } else if torch_legacy::sniff(data) {
        Some(Format::TorchLegacy)
    } else if data.len() >= 9 && data[8] == b'{' {
        Some(Format::SafeTensors)
    } else {
        None
    }
}

/// Reads every tensor of a checkpoint file, whatever its format.
pub fn load(path: &Path) -> Result<TensorMap, CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.is_dir() {
        return Err(CheckpointError::Format {
            path: path.to_path_buf(),
            msg: "is a folder, not a weights file".into(),
        });
    }
    // SAFETY: the map is read-only and dropped before returning; a file truncated by another
    // process while mapped is the only hazard, as with any reader of a shared file.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    load_bytes(&map, path)
}

/// Reads a checkpoint held in memory; `name` is used in error messages.
pub fn load_bytes(data: &[u8], name: &Path) -> Result<TensorMap, CheckpointError> {
    let fmt = |msg: String| CheckpointError::Format { path: name.to_path_buf(), msg };
    if data.is_empty() {
        return Err(fmt("the file is empty".into()));
    }
    let tensors = match detect(data) {
        Some(Format::TorchZip) => torch_zip::read(data).map_err(|m| fmt(format!("PyTorch zip checkpoint: {m}")))?,
        Some(Format::TorchLegacy) => {
            torch_legacy::read(data).map_err(|m| fmt(format!("legacy PyTorch checkpoint: {m}")))?
        }
        Some(Format::SafeTensors) => safetensors(data).map_err(|m| fmt(format!("safetensors: {m}")))?,
        None => return Err(fmt(
            "not a recognised weights file (expected safetensors, a PyTorch zip archive, or a legacy PyTorch pickle)"
                .into(),
        )),
    };
    Ok(strip_module_prefix(tensors))
}

fn safetensors(data: &[u8]) -> Result<TensorMap, String> {
    let st = safetensors::SafeTensors::deserialize(data).map_err(|e| e.to_string())?;
    let mut out = TensorMap::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => candle_core::DType::F32,
            safetensors::Dtype::F16 => candle_core::DType::F16,
            safetensors::Dtype::BF16 => candle_core::DType::BF16,
            safetensors::Dtype::F64 => candle_core::DType::F64,
            safetensors::Dtype::I64 => candle_core::DType::I64,
            safetensors::Dtype::I32 => candle_core::DType::I32,
            safetensors::Dtype::I16 => candle_core::DType::I16,
            safetensors::Dtype::U8 | safetensors::Dtype::BOOL => candle_core::DType::U8,
            other => return Err(format!("{name}: unsupported dtype {other:?}")),
        };
        let t = torch::from_le_bytes(view.data(), dtype, view.shape()).map_err(|e| format!("{name}: {e}"))?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Removes the `module.` prefix that `DataParallel` checkpoints add.
fn strip_module_prefix(map: TensorMap) -> TensorMap {
    map.into_iter().map(|(k, v)| (k.strip_prefix("module.").map(str::to_string).unwrap_or(k), v)).collect()
}
