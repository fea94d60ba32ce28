//! PyTorch zip archives (`torch.save` since 1.6): `<archive>/data.pkl` holds the object with
//! storages as persistent ids `('storage', class, key, location, numel)`, and each storage is
//! the raw little-endian member `<archive>/data/<key>`. Locations such as `cuda:0` are ignored.

use std::io::{Cursor, Read};

use super::pickle;
use super::torch::{collect_tensors, materialize};
use super::TensorMap;

pub fn sniff(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04")
}

pub fn read(data: &[u8]) -> Result<TensorMap, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| format!("bad zip archive: {e}"))?;
    let pkl_name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.into_owned())
        .ok_or("the archive has no data.pkl (not a PyTorch checkpoint)")?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let pkl = read_member(&mut zip, &pkl_name, data.len())?;
    let (root, _) = pickle::load(&pkl, 0).map_err(|e| format!("{pkl_name}: {e}"))?;
    let tensors = collect_tensors(&root)?;
    let mut cache: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    let mut out = TensorMap::new();
    for (name, t) in tensors {
        let key = t.storage.key.clone();
        if !cache.contains_key(&key) {
            let member = format!("{prefix}data/{key}");
            let bytes = read_member(&mut zip, &member, data.len())?;
            cache.insert(key.clone(), bytes);
        }
        let bytes = &cache[&key];
        // Checked per tensor: two references to one storage may declare different sizes.
        let want = t.storage.numel.checked_mul(t.storage.elem_size).filter(|&w| w <= bytes.len());
        let Some(want) = want else {
            return Err(format!(
                "data/{key} holds {} bytes but {} elements of {} bytes are declared",
                bytes.len(),
                t.storage.numel,
                t.storage.elem_size
            ));
        };
        let tensor = materialize(&t, &bytes[..want]).map_err(|e| format!("{name}: {e}"))?;
        out.insert(name, tensor);
    }
    Ok(out)
}

/// Reads one member, refusing sizes larger than the archive could expand to legitimately.
fn read_member(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, archive_len: usize) -> Result<Vec<u8>, String> {
    let mut f = zip.by_name(name).map_err(|e| format!("member {name}: {e}"))?;
    let size = f.size();
    // PyTorch stores members uncompressed; allow compression but bound the expansion.
    let limit =
        (archive_len as u64).saturating_mul(if f.compression() == zip::CompressionMethod::Stored { 1 } else { 16 });
    if size > limit {
        return Err(format!("member {name} claims {size} bytes, more than the archive can hold"));
    }
    let mut buf = Vec::with_capacity((size as usize).min(archive_len));
    f.by_ref().take(size).read_to_end(&mut buf).map_err(|e| format!("member {name}: {e}"))?;
    if (buf.len() as u64) != size {
        return Err(format!("member {name} is truncated"));
    }
    Ok(buf)
}
