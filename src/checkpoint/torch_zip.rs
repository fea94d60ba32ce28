//! PyTorch zip archives (`torch.save` since 1.6): `<archive>/data.pkl` holds the object with
//! storages as persistent ids `('storage', class, key, location, numel)`, and each storage is the
//! member `<archive>/data/<key>` (keys may be large integers such as `94809350075872`). The
//! archive folder's name varies. `<archive>/byteorder`, when present, says `little` or `big`.
//! Locations such as `cuda:0` are ignored.
//!
//! PyTorch stores members uncompressed, so storages are sliced straight out of the file (one
//! copy, into the tensor); compressed members are inflated with a bounded size.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read};

use super::elem::Endian;
use super::pickle;
use super::torch::{build_all, collect_tensors};
use super::TensorMap;

/// Whether `data` starts like a zip archive.
pub fn sniff(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04")
}

type Zip<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Reads every tensor of a PyTorch zip checkpoint.
pub fn read(data: &[u8], budget: usize) -> Result<TensorMap, String> {
    let mut zip = Zip::new(Cursor::new(data)).map_err(|e| format!("bad zip archive: {e}"))?;
    // `<archive>/data.pkl`: one folder level, whatever its name.
    let pkl_name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.split('/').count() == 2 && n.ends_with("/data.pkl"))
        .map(|n| n.into_owned())
        .ok_or("the archive has no <folder>/data.pkl member (not a PyTorch checkpoint)")?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let endian = match zip.index_for_name(&format!("{prefix}byteorder")) {
        None => Endian::Little,
        Some(_) => match member(&mut zip, &format!("{prefix}byteorder"), data)?.as_ref() {
            b"little" => Endian::Little,
            b"big" => Endian::Big,
            other => return Err(format!("{prefix}byteorder says {:?}", String::from_utf8_lossy(other))),
        },
    };
    let pkl = member(&mut zip, &pkl_name, data)?;
    let (p, _) = pickle::load(&pkl, 0).map_err(|e| format!("{pkl_name}: {e}"))?;
    let refs = collect_tensors(&p)?;
    let mut storages: HashMap<String, Cow<[u8]>> = HashMap::new();
    for (_, t) in &refs {
        let key = &t.storage.key;
        if !storages.contains_key(key) {
            let bytes = member(&mut zip, &format!("{prefix}data/{key}"), data)?;
            storages.insert(key.clone(), bytes);
        }
    }
    build_all(refs, &storages, endian, budget)
}

/// A member's bytes: a slice of the archive when stored uncompressed, else inflated, refusing
/// sizes larger than the archive could legitimately expand to.
fn member<'a>(zip: &mut Zip<'a>, name: &str, data: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
    let e = |err: zip::result::ZipError| format!("member {name}: {err}");
    let index = zip.index_for_name(name).ok_or_else(|| format!("member {name} is missing"))?;
    let raw = zip.by_index_raw(index).map_err(e)?;
    let (size, csize) = (raw.size(), raw.compressed_size());
    if raw.encrypted() {
        return Err(format!("member {name} is encrypted"));
    }
    if raw.compression() == zip::CompressionMethod::Stored {
        if size != csize {
            return Err(format!("member {name} is stored with inconsistent sizes ({csize} and {size})"));
        }
        let start = raw.data_start().ok_or_else(|| format!("member {name}: no data offset"))?;
        let range = usize::try_from(start)
            .ok()
            .and_then(|s| Some(s..s.checked_add(usize::try_from(size).ok()?)?))
            .filter(|r| r.end <= data.len())
            .ok_or_else(|| format!("member {name} ({size} bytes at offset {start}) lies outside the file"))?;
        return Ok(Cow::Borrowed(&data[range]));
    }
    drop(raw);
    let limit = (data.len() as u64).saturating_mul(64);
    if size > limit {
        return Err(format!("member {name} claims {size} bytes, more than the archive can expand to"));
    }
    let mut f = zip.by_index(index).map_err(e)?;
    let mut buf = Vec::with_capacity((size as usize).min(data.len()));
    f.by_ref().take(size).read_to_end(&mut buf).map_err(|err| format!("member {name}: {err}"))?;
    if buf.len() as u64 != size {
        return Err(format!("member {name} is truncated"));
    }
    Ok(Cow::Owned(buf))
}
