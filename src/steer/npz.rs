//! NumPy `.npy` arrays and `.npz` archives (zip of `{key}.npy`), as float32.
//!
//! Writing reproduces `numpy.savez_compressed` at the `.npy` level byte for byte: format 1.0,
//! the header dict `{'descr': '<f4', 'fortran_order': False, 'shape': (…), }` padded with
//! spaces and a final newline to a multiple of 64 bytes, little-endian data; zip entries are
//! DEFLATE-compressed. Reading accepts f4/f8 in either byte order (converted to f32), format
//! versions 1–3, stored or deflated entries.

use std::io::{Read, Write};
use std::path::Path;

/// A float32 array with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl NpyArray {
    /// An array; `None` when `data` does not fill `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Option<Self> {
        (shape.iter().product::<usize>() == data.len()).then_some(Self { shape, data })
    }
}

/// Why an array or archive could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a zip archive: {0}")]
    Zip(String),
    #[error("array '{key}': {msg}")]
    Npy { key: String, msg: String },
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// The `.npy` header numpy writes for a little-endian float32 C-order array.
pub fn npy_header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // numpy: padlen = 64 − ((magic+version 8 + length field 2 + len(dict) + newline) mod 64).
    let hlen = dict.len() + 1;
    let pad = 64 - ((8 + 2 + hlen) % 64);
    let mut out = Vec::with_capacity(10 + hlen + pad);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&((hlen + pad) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// Serialises an array as `.npy` bytes.
pub fn npy_bytes(a: &NpyArray) -> Vec<u8> {
    let mut out = npy_header(&a.shape);
    out.reserve(a.data.len() * 4);
    for v in &a.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Parses `.npy` bytes (f4/f8, any byte order, C order) into float32.
pub fn parse_npy(key: &str, bytes: &[u8]) -> Result<NpyArray, NpzError> {
    let bad = |msg: String| NpzError::Npy { key: key.to_string(), msg };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy array (bad magic)".into()));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(bad(format!("unsupported .npy format version {v}"))),
    };
    let header = bytes.get(start..start + hlen).ok_or_else(|| bad("truncated header".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text".into()))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad(format!("no 'descr' in header {header:?}")))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order").unwrap_or("False");
    if fortran.trim() != "False" {
        return Err(bad("Fortran-ordered arrays are not supported (save with C order)".into()));
    }
    let shape_s = dict_value(header, "shape").ok_or_else(|| bad(format!("no 'shape' in header {header:?}")))?;
    let shape = shape_s
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad(format!("cannot parse shape {shape_s}")))?;
    let n: usize = shape.iter().product();
    let body = &bytes[start + hlen..];
    let (size, little, float64) = match descr {
        "<f4" | "=f4" | "|f4" => (4, true, false),
        ">f4" => (4, false, false),
        "<f8" | "=f8" | "|f8" => (8, true, true),
        ">f8" => (8, false, true),
        other => return Err(bad(format!("dtype {other} is not supported (expected float32 '<f4' or float64 '<f8')"))),
    };
    if body.len() < n * size {
        return Err(bad(format!("data holds {} bytes, shape {shape:?} of {descr} needs {}", body.len(), n * size)));
    }
    let data = body[..n * size]
        .chunks_exact(size)
        .map(|b| match (float64, little) {
            (false, true) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (false, false) => f32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            (true, true) => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
            (true, false) => f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
        })
        .collect();
    Ok(NpyArray { shape, data })
}

/// The text after `'key':` in a header dict, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let k =
        [format!("'{key}'"), format!("\"{key}\"")].into_iter().find_map(|k| header.find(&k).map(|i| i + k.len()))?;
    let rest = header[k..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    Some(rest.trim())
}

/// Writes `entries` as a DEFLATE-compressed `.npz` (numpy's `savez_compressed`) to `w`.
pub fn write_npz<W: Write + std::io::Seek>(w: W, entries: &[(&str, &NpyArray)]) -> Result<(), NpzError> {
    let mut zip = zip::ZipWriter::new(w);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    for (key, arr) in entries {
        zip.start_file(format!("{key}.npy"), opts).map_err(|e| NpzError::Zip(e.to_string()))?;
        zip.write_all(&npy_bytes(arr))?;
    }
    let mut inner = zip.finish().map_err(|e| NpzError::Zip(e.to_string()))?;
    inner.flush()?;
    Ok(())
}

/// Writes an `.npz` file (see [`write_npz`]).
/// The file appears complete or not at all: written to a temporary name beside it, then renamed.
pub fn save_npz(path: &Path, entries: &[(&str, &NpyArray)]) -> Result<(), NpzError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .map_err(NpzError::from)
        .and_then(|f| write_npz(std::io::BufWriter::new(f), entries))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(NpzError::from));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Reads every array of an `.npz` file, in archive order.
pub fn load_npz(path: &Path) -> Result<Vec<(String, NpyArray)>, NpzError> {
    let f = std::fs::File::open(path)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|e| NpzError::Zip(e.to_string()))?;
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| NpzError::Zip(e.to_string()))?;
        let name = entry.name().map_err(|e| NpzError::Zip(e.to_string()))?.to_string();
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|e| NpzError::Npy { key: key.clone(), msg: e.to_string() })?;
        let arr = parse_npy(&key, &bytes)?;
        out.push((key, arr));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_numpy() {
        // np.save of a float32 array of shape (80,) writes this exact 64-byte-aligned header.
        let h = npy_header(&[80]);
        assert_eq!(h.len() % 64, 0);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (80,), }"));
        assert!(text.ends_with(" \n"));
        assert_eq!(h.len(), 128);
        let h3 = npy_header(&[80, 1, 32768]);
        assert!(std::str::from_utf8(&h3[10..]).unwrap().contains("'shape': (80, 1, 32768), }"));
    }

    #[test]
    fn parses_what_it_writes_and_float64() {
        let a = NpyArray::new(vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-3, 7.0]).unwrap();
        assert_eq!(parse_npy("a", &npy_bytes(&a)).unwrap(), a);
        let npy = |descr: &str| {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2,), }}          \n");
            b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            b.extend_from_slice(dict.as_bytes());
            b.extend_from_slice(&1.5f64.to_be_bytes());
            b.extend_from_slice(&(-2.0f64).to_be_bytes());
            b
        };
        assert_eq!(parse_npy("b", &npy(">f8")).unwrap().data, vec![1.5, -2.0]);
        assert!(parse_npy("b", &npy("<i8")).unwrap_err().to_string().contains("<i8"));
    }
}
