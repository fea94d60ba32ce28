//! Weight files in their native formats.
//!
//! [`load`] recognises the format from the file's first bytes (never from its extension):
//! - safetensors: an 8-byte little-endian header length, then a JSON header starting with `{`;
//! - PyTorch zip archives (`torch.save` since PyTorch 1.6): `PK\x03\x04`;
//! - legacy PyTorch pickles (before 1.6): pickle protocol 2 and the magic number
//!   0x1950a86a20f9469cfc6c (`80 02 8a 0a 6c fc 9c 46 f9 20 6a a8 50 19`);
//!
//! and returns a [`TensorMap`] of CPU tensors with `module.` prefixes stripped. The pickle
//! readers are our own safe subset ([`pickle`]): they rebuild tensors and containers and never
//! execute anything. The file is read once (memory-mapped) and each tensor is one copy of its
//! bytes. Bad input of any kind gives a [`CheckpointError`] naming the file and the problem;
//! no input makes the readers panic, hang, or allocate much more than the file's size.

mod elem;
mod keys;
pub mod pickle;
mod torch;
mod torch_legacy;
mod torch_zip;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

pub use elem::Elem;
pub use keys::{check_keys, KeyReport, TrackedWeights};

/// Tensors by name, as read from one checkpoint file.
pub type TensorMap = HashMap<String, Tensor>;

/// What [`load`] accepts, for error messages.
const ACCEPTED: &str = "expected safetensors, a PyTorch zip archive (torch.save ≥ 1.6) or a legacy PyTorch pickle";

/// What can go wrong while reading a checkpoint. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: the file is empty ({ACCEPTED})")]
    Empty { path: PathBuf },
    #[error("{path}: not a recognised weights file: it starts with {head} ({ACCEPTED})")]
    Unrecognised { path: PathBuf, head: String },
    #[error("{path}: {format}: {msg}")]
    Invalid { path: PathBuf, format: Format, msg: String },
    #[error("{path}: {msg}")]
    Other { path: PathBuf, msg: String },
}

/// The formats [`load`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    SafeTensors,
    TorchZip,
    TorchLegacy,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::SafeTensors => "safetensors file",
            Format::TorchZip => "PyTorch zip checkpoint",
            Format::TorchLegacy => "legacy PyTorch checkpoint",
        })
    }
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
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(CheckpointError::Other { path: path.to_path_buf(), msg: "is a folder, not a weights file".into() });
    }
    if meta.len() == 0 {
        return Err(CheckpointError::Empty { path: path.to_path_buf() });
    }
    // SAFETY: the map is read-only and dropped before returning (tensors own copies). Another
    // process truncating the file while it is mapped is the only hazard, as for any reader of
    // a shared file.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    load_bytes(&map, path)
}

/// Reads a checkpoint held in memory; `name` is used in error messages.
pub fn load_bytes(data: &[u8], name: &Path) -> Result<TensorMap, CheckpointError> {
    let path = || name.to_path_buf();
    if data.is_empty() {
        return Err(CheckpointError::Empty { path: path() });
    }
    let Some(format) = detect(data) else {
        let head = data.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        return Err(CheckpointError::Unrecognised { path: path(), head: format!("bytes {head}") });
    };
    // Tensors may legitimately take more memory than the file (tied or broadcast views, widened
    // dtypes), but not without bound.
    let budget = data.len().saturating_mul(8).max(256 << 20);
    let tensors = match format {
        Format::TorchZip => torch_zip::read(data, budget),
        Format::TorchLegacy => torch_legacy::read(data, budget),
        Format::SafeTensors => safetensors(data),
    }
    .map_err(|msg| CheckpointError::Invalid { path: path(), format, msg })?;
    strip_module_prefix(tensors).map_err(|msg| CheckpointError::Invalid { path: path(), format, msg })
}

fn safetensors(data: &[u8]) -> Result<TensorMap, String> {
    let st = safetensors::SafeTensors::deserialize(data).map_err(|e| e.to_string())?;
    let mut out = TensorMap::new();
    for (name, view) in st.iter() {
        use safetensors::Dtype as D;
        let elem = match view.dtype() {
            D::F64 => Elem::F64,
            D::F32 => Elem::F32,
            D::F16 => Elem::F16,
            D::BF16 => Elem::BF16,
            D::I64 => Elem::I64,
            D::I32 => Elem::I32,
            D::I16 => Elem::I16,
            D::I8 => Elem::I8,
            D::U32 => Elem::U32,
            D::U16 => Elem::U16,
            D::U8 => Elem::U8,
            D::BOOL => Elem::Bool,
            other => return Err(format!("{name}: unsupported dtype {other:?}")),
        };
        let t = elem::tensor_from_bytes(view.data(), elem, view.shape(), elem::Endian::Little)
            .map_err(|e| format!("{name}: {e}"))?;
        out.insert(name.to_string(), t);
    }
    Ok(out)
}

/// Removes the `module.` prefixes that `DataParallel` adds (at the start only, repeated for
/// nested wrappers); two names that become equal are an error.
fn strip_module_prefix(map: TensorMap) -> Result<TensorMap, String> {
    let mut out = TensorMap::with_capacity(map.len());
    for (k, v) in map {
        let mut short = k.as_str();
        while let Some(rest) = short.strip_prefix("module.") {
            short = rest;
        }
        if out.insert(short.to_string(), v).is_some() {
            return Err(format!("two tensors are named {short} once `module.` prefixes are removed"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_prefixes_are_stripped_at_the_start_only() {
        let t = Tensor::zeros(1, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let map: TensorMap =
            ["module.module.a", "b.module.c", "d"].iter().map(|k| (k.to_string(), t.clone())).collect();
        let mut keys: Vec<_> = strip_module_prefix(map).unwrap().into_keys().collect();
        keys.sort();
        assert_eq!(keys, vec!["a", "b.module.c", "d"]);
        let clash: TensorMap = ["module.a", "a"].iter().map(|k| (k.to_string(), t.clone())).collect();
        assert!(strip_module_prefix(clash).unwrap_err().contains("two tensors are named a"));
    }

    #[test]
    fn empty_and_unknown_files_list_the_accepted_formats() {
        let e = load_bytes(b"", Path::new("w.pth")).unwrap_err().to_string();
        assert!(e.starts_with("w.pth: the file is empty") && e.contains("legacy PyTorch pickle"), "{e}");
        let e = load_bytes(b"GIF89a..........", Path::new("w.pth")).unwrap_err().to_string();
        assert!(e.contains("47 49 46 38") && e.contains("safetensors"), "{e}");
    }
}
