//! Element types as stored in checkpoint files, and turning raw bytes of them into CPU tensors
//! with one copy.

use candle_core::{DType, Device, Tensor};

/// Byte order of the stored elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// An element type as a file stores it. Types candle lacks are widened losslessly
/// (int8 → i16, uint16 → i32, bool → u8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U32,
    U16,
    U8,
    Bool,
}

impl Elem {
    /// Bytes per element in the file.
    pub fn size(self) -> usize {
        match self {
            Elem::F64 | Elem::I64 => 8,
            Elem::F32 | Elem::I32 | Elem::U32 => 4,
            Elem::F16 | Elem::BF16 | Elem::I16 | Elem::U16 => 2,
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
        }
    }

    /// The tensor's dtype.
    pub fn dtype(self) -> DType {
        match self {
            Elem::F64 => DType::F64,
            Elem::F32 => DType::F32,
            Elem::F16 => DType::F16,
            Elem::BF16 => DType::BF16,
            Elem::I64 => DType::I64,
            Elem::I32 | Elem::U16 => DType::I32,
            Elem::I16 | Elem::I8 => DType::I16,
            Elem::U32 => DType::U32,
            Elem::U8 | Elem::Bool => DType::U8,
        }
    }

    /// The element type of a PyTorch storage class (`FloatStorage`, `torch.cuda.HalfStorage`, …).
    pub fn from_storage_class(class: &str) -> Option<Self> {
        Some(match class.rsplit('.').next().unwrap_or(class) {
            "FloatStorage" => Elem::F32,
            "DoubleStorage" => Elem::F64,
            "HalfStorage" => Elem::F16,
            "BFloat16Storage" => Elem::BF16,
            "LongStorage" => Elem::I64,
            "IntStorage" => Elem::I32,
            "ShortStorage" => Elem::I16,
            "CharStorage" => Elem::I8,
            "ByteStorage" => Elem::U8,
            "BoolStorage" => Elem::Bool,
            _ => return None,
        })
    }
}

/// Whether the host is little-endian (the copy is then a plain memcpy).
const NATIVE: Endian = if cfg!(target_endian = "little") { Endian::Little } else { Endian::Big };

/// Copies `data` into a new vector of `T`, swapping bytes when the file's order is not the host's.
/// `T` is a plain number type whose every bit pattern is valid.
fn collect<T: bytemuck::Pod>(data: &[u8], endian: Endian, swap: fn(T) -> T) -> Vec<T> {
    let n = data.len() / std::mem::size_of::<T>();
    let mut v = vec![T::zeroed(); n];
    bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(&data[..n * std::mem::size_of::<T>()]);
    if endian != NATIVE {
        v.iter_mut().for_each(|x| *x = swap(*x));
    }
    v
}

/// A CPU tensor of `shape` from the raw bytes of exactly `shape.iter().product()` elements.
pub fn tensor_from_bytes(data: &[u8], elem: Elem, shape: &[usize], endian: Endian) -> Result<Tensor, String> {
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("tensor size overflows")?;
    if numel.checked_mul(elem.size()) != Some(data.len()) {
        return Err(format!("{} bytes for {numel} elements of {} bytes", data.len(), elem.size()));
    }
    let dev = &Device::Cpu;
    let t = match elem {
        Elem::F64 => {
            Tensor::from_vec(collect(data, endian, |x: f64| f64::from_bits(x.to_bits().swap_bytes())), shape, dev)
        }
        Elem::F32 => {
            Tensor::from_vec(collect(data, endian, |x: f32| f32::from_bits(x.to_bits().swap_bytes())), shape, dev)
        }
        Elem::I64 => Tensor::from_vec(collect(data, endian, i64::swap_bytes), shape, dev),
        Elem::I32 => Tensor::from_vec(collect(data, endian, i32::swap_bytes), shape, dev),
        Elem::I16 => Tensor::from_vec(collect(data, endian, i16::swap_bytes), shape, dev),
        Elem::U32 => Tensor::from_vec(collect(data, endian, u32::swap_bytes), shape, dev),
        Elem::U8 | Elem::Bool => Tensor::from_vec(data.to_vec(), shape, dev),
        Elem::F16 => {
            let v: Vec<half::f16> =
                collect(data, endian, u16::swap_bytes).into_iter().map(half::f16::from_bits).collect();
            Tensor::from_vec(v, shape, dev)
        }
        Elem::BF16 => {
            let v: Vec<half::bf16> =
                collect(data, endian, u16::swap_bytes).into_iter().map(half::bf16::from_bits).collect();
            Tensor::from_vec(v, shape, dev)
        }
        Elem::U16 => {
            let v: Vec<i32> = collect(data, endian, u16::swap_bytes).into_iter().map(i32::from).collect();
            Tensor::from_vec(v, shape, dev)
        }
        Elem::I8 => Tensor::from_vec(data.iter().map(|&b| b as i8 as i16).collect::<Vec<i16>>(), shape, dev),
    };
    t.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_orders_and_widening() {
        let le: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let be: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_be_bytes()).collect();
        for (bytes, e) in [(&le, Endian::Little), (&be, Endian::Big)] {
            let t = tensor_from_bytes(bytes, Elem::F32, &[2], e).unwrap();
            assert_eq!(t.to_vec1::<f32>().unwrap(), vec![1.5, -2.0]);
        }
        let t = tensor_from_bytes(&[0xff, 0x7f], Elem::I8, &[2], Endian::Little).unwrap();
        assert_eq!(t.to_vec1::<i16>().unwrap(), vec![-1, 127]);
        let t = tensor_from_bytes(&[0xff, 0xff], Elem::U16, &[], Endian::Little).unwrap();
        assert_eq!(t.to_scalar::<i32>().unwrap(), 65535);
        let t = tensor_from_bytes(&[0x3c, 0x00], Elem::F16, &[1], Endian::Big).unwrap();
        assert_eq!(t.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap(), vec![1.0]);
        assert!(tensor_from_bytes(&[0; 7], Elem::F32, &[2], Endian::Little).is_err());
    }
}
