//! Legacy PyTorch serialisation (PyTorch < 1.6, e.g. the 2019 BigGAN-deep hub files and
//! torchvision's MobileNetV2): a stream of pickles — magic number, protocol version, sys_info,
//! the object (storages as persistent ids), the sorted list of storage keys — followed, for
//! each key in that order, by a little-endian u64 element count and the raw storage bytes.

use std::collections::HashMap;

use super::pickle::{self, Value};
use super::torch::{collect_tensors, materialize};
use super::TensorMap;

/// `0x1950a86a20f9469cfc6c`, pickled as a LONG1 of 10 bytes.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Whether `data` starts like a legacy PyTorch file.
pub fn sniff(data: &[u8]) -> bool {
    data.len() >= 14 && data[0] == 0x80 && data[1] == 0x02 && data[2] == 0x8a && data[3] == 0x0a && data[4..14] == MAGIC
}

pub fn read(data: &[u8]) -> Result<TensorMap, String> {
    let (magic, p) = pickle::load(data, 0).map_err(|e| format!("magic number: {e}"))?;
    if !matches!(&magic, Value::Bytes(b) if b.as_slice() == MAGIC) {
        return Err("not a legacy PyTorch file (wrong magic number)".into());
    }
    let (proto, p) = pickle::load(data, p).map_err(|e| format!("protocol version: {e}"))?;
    if proto.as_int() != Some(1001) {
        return Err(format!("unsupported legacy protocol version {proto:?}"));
    }
    let (_sys_info, p) = pickle::load(data, p).map_err(|e| format!("sys_info: {e}"))?;
    let (root, p) = pickle::load(data, p).map_err(|e| format!("object: {e}"))?;
    let (keys, mut p) = pickle::load(data, p).map_err(|e| format!("storage key list: {e}"))?;
    let keys = keys.items().ok_or("the storage key list is not a list")?;
    let tensors = collect_tensors(&root)?;
    // Element sizes of the root storages the tensors (or their views) refer to.
    let mut elem_size: HashMap<String, usize> = HashMap::new();
    for (_, t) in &tensors {
        elem_size.insert(t.storage.key.clone(), t.storage.elem_size);
    }
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for k in &keys {
        let key = k
            .as_str()
            .map(str::to_string)
            .or_else(|| k.as_int().map(|i| i.to_string()))
            .ok_or("a storage key is not a string")?;
        let head = data.get(p..p + 8).ok_or_else(|| format!("truncated before storage {key}"))?;
        let count = u64::from_le_bytes(head.try_into().map_err(|_| "bad storage header")?);
        p += 8;
        // An unknown key (no tensor uses it) still has to be skipped: assume 4-byte elements
        // only if nothing else is known, and verify the sizes of those we use.
        let es = elem_size.get(&key).copied().unwrap_or(4) as u64;
        let len = count
            .checked_mul(es)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l <= data.len() - p.min(data.len()));
        let Some(len) = len else {
            return Err(format!("storage {key} declares {count} elements, more than the file holds"));
        };
        storages.insert(key, &data[p..p + len]);
        p += len;
    }
    let mut out = TensorMap::new();
    for (name, t) in tensors {
        // The pickled key is the root storage's; a view is `root[offset .. offset + size]`.
        let root_key = t.storage.key.clone();
        let (elem_off, size) = match &t.storage.view {
            Some((_, off, size)) => (*off, *size),
            None => (0, t.storage.numel),
        };
        let bytes =
            storages.get(&root_key).ok_or_else(|| format!("{name}: storage {root_key} is missing from the file"))?;
        let es = t.storage.elem_size;
        let region = bytes
            .get(elem_off * es..(elem_off + size) * es)
            .ok_or_else(|| format!("{name}: view of storage {root_key} is out of range"))?;
        let tensor = materialize(&t, region).map_err(|e| format!("{name}: {e}"))?;
        out.insert(name, tensor);
    }
    Ok(out)
}
