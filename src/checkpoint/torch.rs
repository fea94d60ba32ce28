//! Turning an unpickled PyTorch object into tensors: storages (persistent ids), tensor
//! rebuild calls with offsets and strides, and state-dict traversal.

use candle_core::{DType, Device, Tensor};

use super::pickle::Value;

/// A storage's element type, from its pickled class name.
pub fn storage_dtype(class: &str) -> Option<(DType, usize)> {
    let name = class.rsplit('.').next().unwrap_or(class);
    Some(match name {
        "FloatStorage" => (DType::F32, 4),
        "HalfStorage" => (DType::F16, 2),
        "BFloat16Storage" => (DType::BF16, 2),
        "DoubleStorage" => (DType::F64, 8),
        "LongStorage" => (DType::I64, 8),
        "IntStorage" => (DType::I32, 4),
        "ShortStorage" => (DType::I16, 2),
        "ByteStorage" | "BoolStorage" => (DType::U8, 1),
        _ => return None,
    })
}

/// A persistent storage reference: `('storage', class, key, location, numel[, view])`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: DType,
    pub elem_size: usize,
    pub numel: usize,
    /// Legacy view storages: `(view key, element offset into the root storage, size)`; `key` is the root's.
    pub view: Option<(String, usize, usize)>,
}

impl StorageRef {
    pub fn parse(pid: &Value) -> Result<Self, String> {
        let items = pid.items().ok_or("a persistent id is not a tuple")?;
        if items.first().and_then(Value::as_str) != Some("storage") || items.len() < 5 {
            return Err("a persistent id is not a storage reference".into());
        }
        let class = match &items[1] {
            Value::Global(g) => g.clone(),
            Value::Str(s) => s.clone(),
            _ => return Err("storage class is not a name".into()),
        };
        let (dtype, elem_size) = storage_dtype(&class).ok_or_else(|| format!("unsupported storage type {class}"))?;
        let key = match &items[2] {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => return Err("storage key is not a string".into()),
        };
        let numel = items[4]
            .as_int()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or("storage size is not a non-negative integer")?;
        let view = match items.get(5) {
            Some(Value::Tuple(v)) if v.len() == 3 => {
                let vk = v[0]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| v[0].as_int().map(|i| i.to_string()))
                    .ok_or("bad view key")?;
                let off = v[1].as_int().and_then(|n| usize::try_from(n).ok()).ok_or("bad view offset")?;
                let size = v[2].as_int().and_then(|n| usize::try_from(n).ok()).ok_or("bad view size")?;
                Some((vk, off, size))
            }
            _ => None,
        };
        Ok(Self { key, dtype, elem_size, numel, view })
    }
}

/// A tensor to be built: a strided view into a storage.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// Interprets `_rebuild_tensor_v2(storage, offset, size, stride, …)` (and `_rebuild_parameter`
/// around it); anything else is not a tensor.
pub fn tensor_ref(v: &Value) -> Result<Option<TensorRef>, String> {
    let Value::Call(call) = v else {
        return Ok(None);
    };
    let (name, args) = call.as_ref();
    match name.as_str() {
        "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => match args.first() {
            Some(inner) => tensor_ref(inner),
            None => Err("_rebuild_parameter without data".into()),
        },
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
            if args.len() < 4 {
                return Err(format!("{name} with {} arguments", args.len()));
            }
            let Value::Persistent(pid) = &args[0] else {
                return Err("tensor storage is not a persistent reference".into());
            };
            let storage = StorageRef::parse(pid)?;
            let offset = args[1].as_int().and_then(|n| usize::try_from(n).ok()).ok_or("bad storage offset")?;
            let dims = |v: &Value, what: &str| -> Result<Vec<usize>, String> {
                v.items()
                    .ok_or(format!("{what} is not a tuple"))?
                    .iter()
                    .map(|d| d.as_int().and_then(|n| usize::try_from(n).ok()).ok_or(format!("bad {what} entry")))
                    .collect()
            };
            let shape = dims(&args[2], "size")?;
            let stride = dims(&args[3], "stride")?;
            if shape.len() != stride.len() {
                return Err("size and stride have different lengths".into());
            }
            Ok(Some(TensorRef { storage, offset, shape, stride }))
        }
        _ => Ok(None),
    }
}

/// Walks the unpickled root (a state dict, possibly nested under `state_dict`/`model`) and
/// returns `(name, tensor)` pairs. Non-tensor entries are skipped.
pub fn collect_tensors(root: &Value) -> Result<Vec<(String, TensorRef)>, String> {
    let mut out = Vec::new();
    walk(root, "", &mut out, 0)?;
    if out.is_empty() {
        return Err("no tensors found (not a state dict?)".into());
    }
    Ok(out)
}

fn walk(v: &Value, prefix: &str, out: &mut Vec<(String, TensorRef)>, depth: usize) -> Result<(), String> {
    if depth > 8 {
        return Ok(());
    }
    if let Some(t) = tensor_ref(v)? {
        out.push((prefix.to_string(), t));
        return Ok(());
    }
    if let Value::Dict(d) = v {
        for (k, val) in d.borrow().iter() {
            let key = match k {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                _ => continue,
            };
            let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
            walk(val, &name, out, depth + 1)?;
        }
    }
    Ok(())
}

/// Builds a tensor from raw little-endian storage bytes (the whole storage) for a strided view.
pub fn materialize(t: &TensorRef, bytes: &[u8]) -> Result<Tensor, String> {
    let es = t.storage.elem_size;
    let numel_storage = bytes.len() / es;
    let n: usize = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("tensor size overflows")?;
    if n == 0 {
        return from_le_bytes(&[], t.storage.dtype, &t.shape);
    }
    // Highest element index touched, checked against the storage.
    let last = t.shape.iter().zip(&t.stride).try_fold(t.offset, |acc, (&d, &s)| {
        if d == 0 {
            Some(acc)
        } else {
            acc.checked_add((d - 1).checked_mul(s)?)
        }
    });
    if last.is_none_or(|l| l >= numel_storage) {
        return Err(format!(
            "view (offset {}, size {:?}, stride {:?}) reaches past its storage of {numel_storage} elements",
            t.offset, t.shape, t.stride
        ));
    }
    let contiguous = {
        let mut expect = 1usize;
        t.shape.iter().zip(&t.stride).rev().all(|(&d, &s)| {
            let ok = d == 1 || s == expect;
            expect = expect.saturating_mul(d);
            ok
        })
    };
    let data: Vec<u8> = if contiguous {
        bytes[t.offset * es..(t.offset + n) * es].to_vec()
    } else {
        let mut data = Vec::with_capacity(n * es);
        let mut idx = vec![0usize; t.shape.len()];
        for _ in 0..n {
            let e: usize = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
            data.extend_from_slice(&bytes[e * es..(e + 1) * es]);
            for ax in (0..idx.len()).rev() {
                idx[ax] += 1;
                if idx[ax] < t.shape[ax] {
                    break;
                }
                idx[ax] = 0;
            }
        }
        data
    };
    from_le_bytes(&data, t.storage.dtype, &t.shape)
}

/// A CPU tensor from little-endian bytes.
pub fn from_le_bytes(data: &[u8], dtype: DType, shape: &[usize]) -> Result<Tensor, String> {
    let dev = &Device::Cpu;
    let e = |e: candle_core::Error| e.to_string();
    macro_rules! typed {
        ($t:ty, $n:expr) => {{
            let v: Vec<$t> =
                data.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $n]))).collect();
            Tensor::from_vec(v, shape, dev).map_err(e)
        }};
    }
    match dtype {
        DType::F32 => typed!(f32, 4),
        DType::F64 => typed!(f64, 8),
        DType::I64 => typed!(i64, 8),
        DType::I32 => typed!(i32, 4),
        DType::I16 => typed!(i16, 2),
        DType::U8 => Tensor::from_vec(data.to_vec(), shape, dev).map_err(e),
        DType::F16 => {
            let v: Vec<half::f16> = data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]])).collect();
            Tensor::from_vec(v, shape, dev).map_err(e)
        }
        DType::BF16 => {
            let v: Vec<half::bf16> = data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]])).collect();
            Tensor::from_vec(v, shape, dev).map_err(e)
        }
        other => Err(format!("unsupported dtype {other:?}")),
    }
}
