//! NumPy `.npy` arrays and `.npz` archives (zip of `{key}.npy`), as float32.
//!
//! Writing reproduces `numpy.savez_compressed` at the `.npy` level byte for byte: format 1.0,
//! the header dict `{'descr': '<f4', 'fortran_order': False, 'shape': (…), }` padded with
//! spaces and a final newline to a multiple of 64 bytes, little-endian data; zip entries are
//! DEFLATE-compressed. Reading accepts f4/f8 in either byte order (converted to f32), format
//! versions 1–3, stored or deflated entries.
//!
//! Files are untrusted input: every size taken from a header (the header length, the shape's
//! element count, its byte count, a zip entry's declared size) is checked for overflow and
//! against the bytes actually present *before* anything is allocated from it, so a hostile
//! header gives an error, never a panic, a wrapped size or a multi-gigabyte allocation.
//!
//! Why not the `npyz` crate (issue 11 §8 asked): npyz 0.8.4, the current release, multiplies
//! the shape without an overflow check when it parses the header, before a caller can look at
//! it. Fed the first hostile header of the tests below (shape `(2³², 2³²)`), it panics with
//! "attempt to multiply with overflow" in a debug build and, in a release build, wraps to 0 and
//! returns an empty array as if the file were valid (checked with a scratch program on
//! 2026-11-29). Its `.npz` support also pins `zip` 0.6 next to our `zip` 9. What we need is
//! small (float arrays, C order), so the reader stays here, with the checks.

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
        (element_count(&shape) == Some(data.len())).then_some(Self { shape, data })
    }
}

/// A zip entry's `.npy` bytes are read up to this size at most (4 GiB): larger declared sizes
/// are refused rather than trusted for an allocation.
pub const MAX_ENTRY_BYTES: u64 = 4 << 30;

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
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        2 | 3 => return Err(bad("truncated header".into())),
        v => return Err(bad(format!("unsupported .npy format version {v}"))),
    };
    let end = start.checked_add(hlen).filter(|&e| e <= bytes.len()).ok_or_else(|| {
        bad(format!("header claims {hlen} bytes but the array holds {} after the preamble", bytes.len() - start))
    })?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text".into()))?;
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
    let (size, little, float64) = match descr {
        "<f4" | "=f4" | "|f4" => (4usize, true, false),
        ">f4" => (4, false, false),
        "<f8" | "=f8" | "|f8" => (8, true, true),
        ">f8" => (8, false, true),
        other => return Err(bad(format!("dtype {other} is not supported (expected float32 '<f4' or float64 '<f8')"))),
    };
    // Element and byte counts from the header, checked: a hostile shape must not wrap around
    // to a small number (and then index out of bounds) or ask for an absurd allocation.
    let n =
        element_count(&shape).ok_or_else(|| bad(format!("shape {shape:?} has more elements than fit in memory")))?;
    let nbytes =
        n.checked_mul(size).ok_or_else(|| bad(format!("shape {shape:?} of {descr} overflows the byte count")))?;
    let body = &bytes[end..];
    if body.len() < nbytes {
        return Err(bad(format!("data holds {} bytes, shape {shape:?} of {descr} needs {nbytes}", body.len())));
    }
    let data = body[..nbytes]
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

/// The product of the dimensions, `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Reads a `.npy` file (see [`parse_npy`]).
pub fn load_npy(path: &Path) -> Result<NpyArray, NpzError> {
    let bytes = std::fs::read(path)?;
    let key = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    parse_npy(&key, &bytes)
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
        // The declared size is only a hint from the archive: never allocate from it unchecked,
        // and never read more than it (a deflate stream can expand far beyond its claim).
        let declared = entry.size();
        if declared > MAX_ENTRY_BYTES {
            return Err(NpzError::Npy { key, msg: format!("entry declares {declared} bytes (more than 4 GiB)") });
        }
        let mut bytes = Vec::with_capacity((declared as usize).min(64 << 20));
        (&mut entry)
            .take(declared)
            .read_to_end(&mut bytes)
            .map_err(|e| NpzError::Npy { key: key.clone(), msg: e.to_string() })?;
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
    /// A `.npy` with the given version, raw header text and body.
    fn raw_npy(version: u8, header: &str, body: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[version, 0]);
        if version == 1 {
            b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            b.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(body);
        b
    }

    fn shape_header(shape: &str) -> String {
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n")
    }

    /// Hostile headers: sizes that overflow, lie about the data, or point past the end. Each
    /// must be an error naming the fault (no panic, no wrapped size, no huge allocation).
    #[test]
    fn hostile_headers_are_errors() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            // 2^32 · 2^32 elements: wraps to 0 in a plain product (and then "fits" an empty body).
            ("product overflow", raw_npy(1, &shape_header("(4294967296, 4294967296)"), &[]), "more elements"),
            // 2^62 elements: fits usize, but × 4 bytes overflows.
            (
                "byte count overflow",
                raw_npy(1, &shape_header("(4611686018427387904,)"), &[]),
                "overflows the byte count",
            ),
            // usize::MAX + 1 does not parse.
            ("dimension too large", raw_npy(1, &shape_header("(18446744073709551616,)"), &[]), "cannot parse shape"),
            ("negative dimension", raw_npy(1, &shape_header("(-1, 4)"), &[0; 16]), "cannot parse shape"),
            // A believable shape with no data behind it: refused before allocating 4 GB.
            ("shape larger than data", raw_npy(1, &shape_header("(1073741824,)"), &[0; 8]), "needs 4294967296"),
            (
                "header past the end (v1)",
                {
                    let mut b = raw_npy(1, &shape_header("(2,)"), &[]);
                    b[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
                    b
                },
                "header claims 65535 bytes",
            ),
            (
                "header length u32::MAX (v2)",
                {
                    let mut b = raw_npy(2, &shape_header("(2,)"), &[0; 8]);
                    b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
                    b
                },
                "header claims 4294967295 bytes",
            ),
            ("v2 without length field", b"\x93NUMPY\x02\x00\x10\x00".to_vec(), "truncated header"),
            ("bad magic", b"\x93NUMPX\x01\x00\x00\x00".to_vec(), "bad magic"),
            ("not text", raw_npy(1, "\u{0}\u{0}\u{80}", &[]), ""),
        ];
        for (what, bytes, want) in cases {
            let err = match parse_npy("x", &bytes) {
                Ok(a) => panic!("{what}: accepted with shape {:?}", a.shape),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(want), "{what}: {err}");
        }
        // Byte-by-byte truncations of a valid file are errors too, never panics.
        let good = npy_bytes(&NpyArray::new(vec![2, 3], vec![1.0; 6]).unwrap());
        for cut in 0..good.len() {
            assert!(parse_npy("x", &good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(element_count(&[usize::MAX, 2]), None);
        assert_eq!(element_count(&[]), Some(1));
        assert!(NpyArray::new(vec![usize::MAX, 2], vec![]).is_none());
    }

    /// A zip entry that declares more than [`MAX_ENTRY_BYTES`] is refused without allocating,
    /// and an entry whose `.npy` header lies about its data is an error naming the key.
    #[test]
    fn hostile_npz_entries_are_errors() {
        let dir = std::env::temp_dir().join(format!("intervene-npz-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("lying.npz");
        {
            let f = std::fs::File::create(&p).unwrap();
            let mut zip = zip::ZipWriter::new(f);
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
            zip.start_file("act_stdev.npy", opts).unwrap();
            zip.write_all(&raw_npy(1, &shape_header("(4294967296, 4294967296)"), &[])).unwrap();
            zip.finish().unwrap();
        }
        let err = load_npz(&p).unwrap_err().to_string();
        assert!(err.contains("act_stdev") && err.contains("more elements"), "{err}");
        // A valid entry whose declared uncompressed size is patched to 2^32 − 1 (zip32's largest)
        // in the central directory: reading must neither trust it for an allocation nor panic.
        {
            let f = std::fs::File::create(&p).unwrap();
            let mut zip = zip::ZipWriter::new(f);
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
            zip.start_file("a.npy", opts).unwrap();
            zip.write_all(&npy_bytes(&NpyArray::new(vec![2], vec![1.0, 2.0]).unwrap())).unwrap();
            zip.finish().unwrap();
        }
        let mut bytes = std::fs::read(&p).unwrap();
        let cd = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
        bytes[cd + 24..cd + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        if let Ok(arrays) = load_npz(&p) {
            assert_eq!(arrays[0].1.data, [1.0, 2.0]);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
