//! Turning an unpickled PyTorch object into tensors: storage references (persistent ids),
//! tensor rebuild calls with offsets and strides, state-dict traversal, and materialising each
//! (possibly strided) view from the storage bytes.

use std::borrow::Cow;
use std::collections::HashMap;

use candle_core::Tensor;

use super::elem::{tensor_from_bytes, Elem, Endian};
use super::pickle::{Global, ObjId, Object, Pickle, Value};
use super::TensorMap;

/// A persistent storage reference: `('storage', class, key, location, numel[, view])`.
/// The location (`cpu`, `cuda:0`, …) is ignored: everything is read to the CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// The (root) storage's key: a zip member name under `data/`, or a legacy storage key.
    pub key: String,
    pub elem: Elem,
    /// Elements in the root storage.
    pub numel: usize,
    /// Legacy view storages (PyTorch < 1.0): `(view key, element offset into the root, size)`.
    pub view: Option<(String, usize, usize)>,
}

fn key_string(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

impl StorageRef {
    /// Interprets a persistent id.
    pub fn parse(p: &Pickle, pid: &Value) -> Result<Self, String> {
        let items = p.seq(pid).ok_or("a persistent id is not a tuple")?;
        if items.first().and_then(Value::as_str) != Some("storage") || items.len() < 5 {
            return Err("a persistent id is not a storage reference".into());
        }
        let class = match &items[1] {
            Value::Global(Global::Storage(s)) => s.to_string(),
            Value::Global(g) => return Err(format!("unsupported storage type {}", g.name())),
            Value::Str(s) => s.to_string(),
            _ => return Err("the storage type is not a class name".into()),
        };
        let elem = Elem::from_storage_class(&class).ok_or_else(|| format!("unsupported storage type {class}"))?;
        let key = key_string(&items[2]).ok_or("a storage key is neither a string nor an integer")?;
        let numel = items[4].as_usize().ok_or("a storage size is not a non-negative integer")?;
        let view = match items.get(5) {
            None | Some(Value::None) => None,
            Some(v) => {
                let m = p.seq(v).filter(|m| m.len() == 3).ok_or("bad storage view metadata")?;
                let vk = key_string(&m[0]).ok_or("bad storage view key")?;
                let off = m[1].as_usize().ok_or("bad storage view offset")?;
                let size = m[2].as_usize().ok_or("bad storage view size")?;
                Some((vk, off, size))
            }
        };
        Ok(Self { key, elem, numel, view })
    }
}

/// A tensor to be built: a strided view into a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The rebuild call's object, so that a tensor referenced twice (tied weights) is built once.
    pub id: ObjId,
    pub storage: StorageRef,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// Rebuilder wrappers followed before giving up (`_rebuild_parameter(_rebuild_from_type_v2(…))`).
const MAX_WRAPPERS: usize = 8;

/// Interprets `v` as a tensor: `_rebuild_tensor_v2(storage, offset, size, stride, …)`, possibly
/// wrapped in `_rebuild_parameter` / `_rebuild_from_type_v2`. `Ok(None)` if it is no tensor; an
/// error if it is a tensor that cannot be rebuilt (an unsupported kind, or built from an opaque value).
pub fn tensor_ref(p: &Pickle, v: &Value) -> Result<Option<TensorRef>, String> {
    let Value::Obj(id) = v else {
        return Ok(None);
    };
    let (mut func, mut args) = match p.objects.get(*id) {
        Some(Object::Call { func, args }) => (func.clone(), args.clone()),
        Some(Object::Opaque { name, .. }) if name.contains("._rebuild_") => {
            return Err(format!("unsupported tensor kind ({name})"));
        }
        _ => return Ok(None),
    };
    for _ in 0..MAX_WRAPPERS {
        let a = p.seq(&args).ok_or("tensor rebuild arguments are not a tuple")?;
        match func {
            Global::RebuildTensor => return rebuild(p, *id, a).map(Some),
            Global::RebuildParameter => {
                let inner = a.first().ok_or("_rebuild_parameter without data")?;
                (func, args) = match p.object(inner) {
                    Some(Object::Call { func, args }) => (func.clone(), args.clone()),
                    _ => return Err("a parameter's data is not a tensor".into()),
                };
            }
            Global::RebuildFromType => {
                let (Some(Value::Global(f)), Some(inner)) = (a.first(), a.get(2)) else {
                    return Err("_rebuild_from_type_v2 with unexpected arguments".into());
                };
                (func, args) = (f.clone(), inner.clone());
            }
            other => return Err(format!("unsupported tensor kind ({})", other.name())),
        }
    }
    Err("tensor rebuild calls nested too deeply".into())
}

fn rebuild(p: &Pickle, id: ObjId, a: &[Value]) -> Result<TensorRef, String> {
    if a.len() < 4 {
        return Err(format!("_rebuild_tensor_v2 with {} arguments", a.len()));
    }
    let storage = match p.object(&a[0]) {
        Some(Object::Persistent(pid)) => StorageRef::parse(p, pid)?,
        Some(Object::Opaque { name, .. }) => return Err(format!("the tensor's storage comes from {name}")),
        _ => return Err("the tensor's storage is not a persistent reference".into()),
    };
    let offset = a[1].as_usize().ok_or("bad storage offset")?;
    let dims = |v: &Value, what: &str| -> Result<Vec<usize>, String> {
        p.seq(v)
            .ok_or(format!("the tensor {what} is not a tuple"))?
            .iter()
            .map(|d| d.as_usize().ok_or(format!("bad tensor {what} entry")))
            .collect()
    };
    let shape = dims(&a[2], "size")?;
    let stride = dims(&a[3], "stride")?;
    if shape.len() != stride.len() {
        return Err(format!("size {shape:?} and stride {stride:?} have different lengths"));
    }
    Ok(TensorRef { id, storage, offset, shape, stride })
}

/// Containers nested deeper than this are not searched for tensors (a state dict is 1–3 deep).
const MAX_WALK_DEPTH: usize = 16;

/// Finds the tensors of the unpickled object: the entries of a state dict, or of dicts, lists
/// and tuples nested in it (named `outer.inner`, list items by index). Other values are skipped;
/// each container is visited once, so shared or cyclic structures cost nothing extra.
pub fn collect_tensors(p: &Pickle) -> Result<Vec<(String, TensorRef)>, String> {
    let mut out = Vec::new();
    let mut seen = vec![false; p.objects.len()];
    walk(p, &p.root, String::new(), &mut seen, &mut out, 0)?;
    if out.is_empty() {
        return Err(match p.object(&p.root) {
            // `torch.save(model)` pickles the module object itself, whose tensors live in state
            // that only running the model's Python code would restore.
            Some(Object::Opaque { name, .. }) => {
                format!("no tensors found: the file holds a pickled {name} object, not a state dict")
            }
            _ => "no tensors found (not a state dict?)".into(),
        });
    }
    Ok(out)
}

fn walk(
    p: &Pickle,
    v: &Value,
    name: String,
    seen: &mut [bool],
    out: &mut Vec<(String, TensorRef)>,
    depth: usize,
) -> Result<(), String> {
    let shown = || if name.is_empty() { "the root object".to_string() } else { name.clone() };
    if let Some(t) = tensor_ref(p, v).map_err(|e| format!("{}: {e}", shown()))? {
        out.push((name, t));
        return Ok(());
    }
    let Value::Obj(id) = v else {
        return Ok(());
    };
    if depth >= MAX_WALK_DEPTH || std::mem::replace(&mut seen[*id], true) {
        return Ok(());
    }
    let join = |k: String| if name.is_empty() { k } else { format!("{name}.{k}") };
    match &p.objects[*id] {
        Object::Dict(items) | Object::Opaque { items, .. } => {
            for (k, val) in items {
                if let Some(k) = key_string(k) {
                    walk(p, val, join(k), seen, out, depth + 1)?;
                }
            }
        }
        Object::List(items) | Object::Tuple(items) => {
            for (i, val) in items.iter().enumerate() {
                walk(p, val, join(i.to_string()), seen, out, depth + 1)?;
            }
        }
        Object::Call { .. } | Object::Persistent(_) => {}
    }
    Ok(())
}

/// Builds every tensor from its storage's bytes (whole root storages by key).
///
/// `budget` bounds the bytes materialised in total, so that a hostile view (a zero stride
/// repeating one element 2^40 times) cannot allocate without limit.
pub fn build_all(
    refs: Vec<(String, TensorRef)>,
    storages: &HashMap<String, Cow<'_, [u8]>>,
    endian: Endian,
    mut budget: usize,
) -> Result<TensorMap, String> {
    let mut built: HashMap<ObjId, Tensor> = HashMap::new();
    let mut out = TensorMap::with_capacity(refs.len());
    for (name, t) in refs {
        if let Some(done) = built.get(&t.id) {
            out.insert(name, done.clone());
            continue;
        }
        let key = &t.storage.key;
        let bytes = storages.get(key).ok_or_else(|| format!("{name}: storage {key} is missing"))?;
        let tensor = materialize(&t, bytes, endian, &mut budget).map_err(|e| format!("{name}: {e}"))?;
        built.insert(t.id, tensor.clone());
        if out.insert(name.clone(), tensor).is_some() {
            return Err(format!("{name}: the name occurs twice"));
        }
    }
    Ok(out)
}

/// Builds one tensor from its root storage's bytes: selects a legacy view's range, then copies
/// the strided view (checked against the storage) into a contiguous tensor.
pub fn materialize(t: &TensorRef, root: &[u8], endian: Endian, budget: &mut usize) -> Result<Tensor, String> {
    let es = t.storage.elem.size();
    let declared = t.storage.numel.checked_mul(es).filter(|&b| b <= root.len()).ok_or_else(|| {
        format!(
            "storage {} holds {} bytes, fewer than its {} declared elements of {es} bytes",
            t.storage.key,
            root.len(),
            t.storage.numel
        )
    })?;
    let root = &root[..declared];
    let storage = match &t.storage.view {
        None => root,
        Some((vk, off, size)) => off
            .checked_add(*size)
            .and_then(|end| root.get(off.checked_mul(es)?..end.checked_mul(es)?))
            .ok_or_else(|| format!("view storage {vk} (offset {off}, size {size}) is outside its root storage"))?,
    };
    let numel_storage = storage.len() / es;
    let n = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("tensor size overflows")?;
    let nbytes = n.checked_mul(es).filter(|&b| b <= *budget).ok_or_else(|| {
        format!("shape {:?} needs more memory than the file can justify ({} bytes left)", t.shape, *budget)
    })?;
    *budget -= nbytes;
    if n == 0 {
        return tensor_from_bytes(&[], t.storage.elem, &t.shape, endian);
    }
    // The highest element the view touches must lie inside the storage.
    let last =
        t.shape.iter().zip(&t.stride).try_fold(t.offset, |acc, (&d, &s)| acc.checked_add((d - 1).checked_mul(s)?));
    if last.is_none_or(|l| l >= numel_storage) {
        return Err(format!(
            "view (offset {}, size {:?}, stride {:?}) reaches past its storage of {numel_storage} elements",
            t.offset, t.shape, t.stride
        ));
    }
    if is_contiguous(&t.shape, &t.stride) {
        return tensor_from_bytes(&storage[t.offset * es..(t.offset + n) * es], t.storage.elem, &t.shape, endian);
    }
    // Strided copy, innermost dimension as a run of elements.
    let mut data = Vec::with_capacity(nbytes);
    let rank = t.shape.len();
    let (inner_n, inner_s) = (t.shape[rank - 1], t.stride[rank - 1]);
    let mut idx = vec![0usize; rank - 1];
    loop {
        let base = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        if inner_s == 1 {
            data.extend_from_slice(&storage[base * es..(base + inner_n) * es]);
        } else {
            for j in 0..inner_n {
                let e = (base + j * inner_s) * es;
                data.extend_from_slice(&storage[e..e + es]);
            }
        }
        // Next index over the outer dimensions, last fastest.
        let mut ax = rank - 1;
        loop {
            if ax == 0 {
                return tensor_from_bytes(&data, t.storage.elem, &t.shape, endian);
            }
            ax -= 1;
            idx[ax] += 1;
            if idx[ax] < t.shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
}

/// Row-major contiguity (dimensions of size 1 may have any stride).
fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expect = 1usize;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expect {
            return false;
        }
        expect = expect.saturating_mul(d);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tref(offset: usize, shape: &[usize], stride: &[usize], numel: usize) -> TensorRef {
        TensorRef {
            id: 0,
            storage: StorageRef { key: "0".into(), elem: Elem::F32, numel, view: None },
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    #[test]
    fn strided_views_match_index_arithmetic() {
        let data = bytes(24);
        // A [2,3,2] view with strides (12, 1, 3) at offset 1: element (i,j,k) = 1 + 12i + j + 3k.
        let t = tref(1, &[2, 3, 2], &[12, 1, 3], 24);
        let m = materialize(&t, &data, Endian::Little, &mut 1000).unwrap();
        let got = m.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut want = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..2 {
                    want.push((1 + 12 * i + j + 3 * k) as f32);
                }
            }
        }
        assert_eq!(got, want);
        // Zero strides broadcast one element.
        let t = tref(5, &[2, 2], &[0, 0], 24);
        let m = materialize(&t, &data, Endian::Little, &mut 1000).unwrap();
        assert_eq!(m.to_vec2::<f32>().unwrap(), vec![vec![5.0; 2]; 2]);
    }

    #[test]
    fn views_past_the_storage_and_over_budget_are_refused() {
        let data = bytes(6);
        let e = materialize(&tref(3, &[2, 2], &[2, 1], 6), &data, Endian::Little, &mut 1000).unwrap_err();
        assert!(e.contains("reaches past"), "{e}");
        let e = materialize(&tref(0, &[1 << 40], &[0], 6), &data, Endian::Little, &mut 1000).unwrap_err();
        assert!(e.contains("more memory"), "{e}");
        let e = materialize(&tref(usize::MAX, &[2], &[1], 6), &data, Endian::Little, &mut 1000).unwrap_err();
        assert!(e.contains("reaches past"), "{e}");
    }
}
