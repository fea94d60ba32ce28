//! IDX files (LeCun's MNIST format), raw or gzip-compressed.
//!
//! Layout: a big-endian magic `00 00 TT NN` (TT = element type, 0x08 = u8; NN = number of
//! dimensions), then NN big-endian u32 sizes, then the elements row-major. MNIST images are
//! `0x00000803` (N×28×28), labels `0x00000801` (N). Only u8 elements are supported: every
//! MNIST-family file uses them. The file must hold exactly the elements its header announces.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::DataError;

/// The contents of one IDX file: its dimensions and its u8 elements, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes of the dimensions, outermost first.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` elements.
    pub data: Vec<u8>,
}

/// Reads an IDX file; gzip is recognised by its magic bytes (`1f 8b`), not by the extension.
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format_err(path, format!("corrupt gzip stream: {e}")))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes, path)
}

/// Parses IDX bytes (already decompressed); `name` is used in error messages.
pub fn parse_idx(bytes: &[u8], name: &Path) -> Result<IdxArray, DataError> {
    if bytes.len() < 4 {
        return Err(format_err(name, format!("{} bytes is too short for an IDX header", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format_err(
            name,
            format!(
                "not an IDX file: magic {:02x} {:02x} {:02x} {:02x} does not start with 00 00",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(format_err(
            name,
            format!("IDX element type 0x{:02x} is not supported (only 0x08, unsigned bytes)", bytes[2]),
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err(format_err(name, "IDX header announces 0 dimensions".into()));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(format_err(
            name,
            format!("truncated IDX header: {ndim} dimensions need {header} bytes, the file has {}", bytes.len()),
        ));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format_err(name, format!("IDX dimensions {dims:?} overflow")))?;
    let body = bytes.len() - header;
    if body != count {
        return Err(format_err(
            name,
            format!(
                "IDX dimensions {dims:?} need {count} bytes of data, the file has {body} ({})",
                if body < count { "truncated" } else { "trailing bytes" }
            ),
        ));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

fn format_err(path: &Path, msg: String) -> DataError {
    DataError::Format { path: PathBuf::from(path), msg }
}
