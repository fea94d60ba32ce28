//! Legacy PyTorch serialisation (PyTorch < 1.6, e.g. the 2019 BigGAN-deep hub files and
//! torchvision's MobileNetV2): a stream of five pickles — the magic number
//! 0x1950a86a20f9469cfc6c, the protocol version 1001, sys_info, the object (storages as
//! persistent ids), the sorted list of storage keys — followed, for each key in that order, by
//! the storage's element count as a little-endian u64 and its raw bytes. PyTorch writes those
//! bytes little-endian whatever the machine, so sys_info's byte order is not consulted.

use std::borrow::Cow;
use std::collections::HashMap;

use super::elem::{Elem, Endian};
use super::pickle::{self, Object, Value};
use super::torch::{build_all, collect_tensors, StorageRef};
use super::TensorMap;

/// The magic number as the LONG1 payload PyTorch pickles.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Whether `data` starts like a legacy PyTorch file: PROTO 2, LONG1 of 10 bytes, the magic number.
pub fn sniff(data: &[u8]) -> bool {
    data.len() >= 14 && data[..4] == [0x80, 0x02, 0x8a, 0x0a] && data[4..14] == MAGIC
}

/// Reads every tensor of a legacy PyTorch checkpoint.
pub fn read(data: &[u8], budget: usize) -> Result<TensorMap, String> {
    let (magic, p) = pickle::load(data, 0).map_err(|e| format!("magic number: {e}"))?;
    if !matches!(&magic.root, Value::BigInt(b) if **b == MAGIC) {
        return Err("wrong magic number".into());
    }
    let (proto, p) = pickle::load(data, p).map_err(|e| format!("protocol version: {e}"))?;
    if proto.root.as_int() != Some(1001) {
        return Err(format!("unsupported legacy protocol version {:?}", proto.root));
    }
    let (_sys_info, p) = pickle::load(data, p).map_err(|e| format!("sys_info: {e}"))?;
    let (obj, p) = pickle::load(data, p).map_err(|e| format!("object: {e}"))?;
    let (keys, mut p) = pickle::load(data, p).map_err(|e| format!("storage key list: {e}"))?;
    let keys = keys.seq(&keys.root).ok_or("the storage key list is not a list")?.to_vec();
    let refs = collect_tensors(&obj)?;

    // Every storage the object references, used by a tensor or not: its element type decides
    // how many bytes to skip.
    let mut declared: HashMap<String, (Elem, usize)> = HashMap::new();
    for &id in &obj.persistent_ids {
        let Some(Object::Persistent(pid)) = obj.objects.get(id) else { continue };
        let is_storage = obj.seq(pid).and_then(|t| t.first()).and_then(Value::as_str) == Some("storage");
        if !is_storage {
            continue; // ('module', …) source records of whole-model pickles
        }
        let s = StorageRef::parse(&obj, pid)?;
        match declared.insert(s.key.clone(), (s.elem, s.numel)) {
            Some(prev) if prev != (s.elem, s.numel) => {
                return Err(format!("storage {} is declared twice, as {prev:?} and {:?}", s.key, (s.elem, s.numel)));
            }
            _ => {}
        }
    }

    let mut storages: HashMap<String, Cow<[u8]>> = HashMap::new();
    for k in &keys {
        let key = match k {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => return Err("a storage key is neither a string nor an integer".into()),
        };
        let &(elem, numel) =
            declared.get(&key).ok_or_else(|| format!("storage {key} is listed but never referenced"))?;
        let head = data.get(p..p.saturating_add(8)).ok_or_else(|| format!("the file ends before storage {key}"))?;
        let mut count = [0u8; 8];
        count.copy_from_slice(head);
        let count = u64::from_le_bytes(count);
        p += 8;
        // Checked against the bytes left before anything is allocated.
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(elem.size()))
            .filter(|&l| l <= data.len() - p)
            .ok_or_else(|| {
                format!("storage {key} declares {count} elements of {} bytes, more than the file holds", elem.size())
            })?;
        if usize::try_from(count).ok() != Some(numel) {
            return Err(format!("storage {key} holds {count} elements but its reference declares {numel}"));
        }
        storages.insert(key, Cow::Borrowed(&data[p..p + len]));
        p += len;
    }
    build_all(refs, &storages, Endian::Little, budget)
}
