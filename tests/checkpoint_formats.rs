//! The checkpoint readers on the real fixture files and on hand-built streams whose every byte is
//! known: strided and offset views, fp16, int64 scalars, legacy view storages, `cuda:0` locations.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use common::pickle_writer::{f32_bytes, legacy_file, zip_file, zip_members, Entry, Storage, P};
use intervene::checkpoint::{self, Format, TensorMap};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/biggan-deep-tiny-128").join(name)
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn three_formats_hold_identical_tensors() {
    let st = checkpoint::load(&fixture("model.safetensors")).unwrap();
    let legacy = checkpoint::load(&fixture("pytorch_model.bin")).unwrap();
    let zip = checkpoint::load(&fixture("pytorch_model_zip.bin")).unwrap();
    assert_eq!(st.len(), 506);
    for other in [&legacy, &zip] {
        assert_eq!(other.len(), 506);
        for (k, v) in &st {
            let o = other.get(k).unwrap_or_else(|| panic!("{k} missing"));
            assert_eq!(o.dims(), v.dims(), "{k}");
            assert_eq!(bits(o), bits(v), "{k} differs");
        }
    }
    assert_eq!(st["embeddings.weight"].dims(), &[64, 1000]);
    assert_eq!(st["generator.gen_z.weight_orig"].dims(), &[2048, 128]);
    assert_eq!(st["generator.layers.8.gamma"].dims(), &[1]);
    assert_eq!(st["generator.conv_to_rgb.weight_v"].dims(), &[72]);
    assert_eq!(checkpoint::detect(&std::fs::read(fixture("pytorch_model.bin")).unwrap()), Some(Format::TorchLegacy));
    assert_eq!(checkpoint::detect(&std::fs::read(fixture("pytorch_model_zip.bin")).unwrap()), Some(Format::TorchZip));
    assert_eq!(checkpoint::detect(&std::fs::read(fixture("model.safetensors")).unwrap()), Some(Format::SafeTensors));
}

/// Storages: f32 [0..12), fp16 [1.5, −2, 0.25], int64 [44025], plus a legacy view into the f32
/// storage. Tensors: a transposed (non-contiguous) view with an offset, a plain one, a scalar.
fn sample() -> (Vec<Storage>, Vec<Entry>) {
    let f: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let half: Vec<u8> = [1.5f32, -2.0, 0.25].iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
    let storages = vec![
        Storage {
            class: "FloatStorage",
            key: "94809350075872".into(),
            location: "cuda:0",
            numel: 12,
            bytes: f32_bytes(&f),
            view: None,
        },
        Storage { class: "HalfStorage", key: "1".into(), location: "cpu", numel: 3, bytes: half, view: None },
        Storage {
            class: "LongStorage",
            key: "2".into(),
            location: "cuda:0",
            numel: 1,
            bytes: 44025i64.to_le_bytes().to_vec(),
            view: None,
        },
    ];
    let entries = vec![
        // offset 2, size (2,3), stride (1,2): rows are [2,4,6], [3,5,7]
        Entry { name: "module.a.weight".into(), storage: 0, offset: 2, size: vec![2, 3], stride: vec![1, 2] },
        Entry { name: "module.b.weight".into(), storage: 0, offset: 0, size: vec![3, 4], stride: vec![4, 1] },
        Entry { name: "module.h".into(), storage: 1, offset: 0, size: vec![3], stride: vec![1] },
        Entry { name: "module.bn.num_batches_tracked".into(), storage: 2, offset: 0, size: vec![], stride: vec![] },
    ];
    (storages, entries)
}

fn check_sample(m: &TensorMap) {
    assert_eq!(m.len(), 4, "module. prefixes stripped: {:?}", m.keys().collect::<Vec<_>>());
    assert_eq!(m["a.weight"].to_vec2::<f32>().unwrap(), vec![vec![2.0, 4.0, 6.0], vec![3.0, 5.0, 7.0]]);
    assert_eq!(m["b.weight"].to_vec2::<f32>().unwrap()[2], vec![8.0, 9.0, 10.0, 11.0]);
    assert_eq!(m["h"].dtype(), DType::F16);
    assert_eq!(m["h"].to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap(), vec![1.5, -2.0, 0.25]);
    let n = &m["bn.num_batches_tracked"];
    assert_eq!((n.dtype(), n.dims().len()), (DType::I64, 0));
    assert_eq!(n.to_scalar::<i64>().unwrap(), 44025);
}

#[test]
fn legacy_stream_with_views_strides_fp16_and_int64() {
    let (s, e) = sample();
    let bytes = legacy_file(&s, &e);
    check_sample(&checkpoint::load_bytes(&bytes, Path::new("legacy.pth")).unwrap());
}

#[test]
fn zip_archive_with_cuda_locations_and_large_keys() {
    let (s, e) = sample();
    let bytes = zip_file(&s, &e);
    check_sample(&checkpoint::load_bytes(&bytes, Path::new("zip.pth")).unwrap());
}

/// Pre-1.6 view storages: `('storage', cls, root, loc, root_numel, (view_key, offset, size))`.
#[test]
fn legacy_view_storage() {
    let f: Vec<f32> = (0..10).map(|i| i as f32 * 0.5).collect();
    let root = Storage {
        class: "FloatStorage",
        key: "root".into(),
        location: "cpu",
        numel: 10,
        bytes: f32_bytes(&f),
        view: None,
    };
    let view = Storage {
        class: "FloatStorage",
        key: "root".into(),
        location: "cpu",
        numel: 10,
        bytes: vec![],
        view: Some(("v1".into(), 4, 5)),
    };
    let entries = vec![Entry { name: "w".into(), storage: 1, offset: 1, size: vec![2, 2], stride: vec![2, 1] }];
    let bytes = legacy_file(&[root, view], &entries);
    let m = checkpoint::load_bytes(&bytes, Path::new("view.pth")).unwrap();
    // view = root[4..9] = [2, 2.5, 3, 3.5, 4]; tensor offset 1 → [[2.5, 3], [3.5, 4]]
    assert_eq!(m["w"].to_vec2::<f32>().unwrap(), vec![vec![2.5, 3.0], vec![3.5, 4.0]]);
}

#[test]
fn a_view_past_its_storage_is_refused_with_the_tensor_name() {
    let (s, mut e) = sample();
    e[0].offset = 9; // reaches element 9 + 1 + 2·2 = 14 > 11
    let err = checkpoint::load_bytes(&legacy_file(&s, &e), Path::new("bad.pth")).unwrap_err().to_string();
    assert!(err.contains("bad.pth") && err.contains("a.weight") && err.contains("past its storage"), "{err}");
}

#[test]
fn tracked_weights_report_unused_missing_and_misshaped_keys() {
    let (s, e) = sample();
    let m = checkpoint::load_bytes(&zip_file(&s, &e), Path::new("x")).unwrap();
    let tw = checkpoint::TrackedWeights::new(m);
    let vb = tw.var_builder(DType::F32, &candle_core::Device::Cpu);
    assert!(vb.get((2, 3), "a.weight").is_ok());
    let err = vb.get((4, 3), "b.weight").unwrap_err().to_string();
    assert!(err.contains("b.weight") && err.contains("[4, 3]") && err.contains("[3, 4]"), "{err}");
    assert!(vb.get(5, "nope").is_err());
    assert_eq!(tw.requested(), vec![("a.weight".to_string(), vec![2, 3])]);
    let r = tw.report();
    assert_eq!(r.missing, vec!["nope".to_string()]);
    assert_eq!(r.unexpected, vec!["bn.num_batches_tracked".to_string(), "h".to_string()]);
    assert_eq!(r.mismatched, vec![("b.weight".to_string(), vec![4, 3], vec![3, 4])]);
    let text = r.to_string();
    assert!(text.contains("1 missing: nope") && text.contains("2 unexpected"), "{text}");
}

/// Legacy storages of every other element type PyTorch checkpoints use: f64, i32, u8, bool, int8
/// (int8 is widened to i16: candle has no i8).
#[test]
fn legacy_storages_of_other_dtypes() {
    let st = |class, key: &str, numel, bytes: Vec<u8>| Storage {
        class,
        key: key.into(),
        location: "cpu",
        numel,
        bytes,
        view: None,
    };
    let storages = vec![
        st("DoubleStorage", "0", 2, [0.1f64, -3.0].iter().flat_map(|x| x.to_le_bytes()).collect()),
        st("IntStorage", "1", 2, [-7i32, 1 << 20].iter().flat_map(|x| x.to_le_bytes()).collect()),
        st("ByteStorage", "2", 3, vec![0, 128, 255]),
        st("BoolStorage", "3", 2, vec![1, 0]),
        st("CharStorage", "4", 2, vec![0xff, 0x7f]),
    ];
    let e = |name: &str, storage, n| Entry { name: name.into(), storage, offset: 0, size: vec![n], stride: vec![1] };
    let entries = vec![e("f64", 0, 2), e("i32", 1, 2), e("u8", 2, 3), e("bool", 3, 2), e("i8", 4, 2)];
    let m = checkpoint::load_bytes(&legacy_file(&storages, &entries), Path::new("dtypes.pth")).unwrap();
    assert_eq!(m["f64"].to_vec1::<f64>().unwrap(), vec![0.1, -3.0]);
    assert_eq!(m["i32"].to_vec1::<i32>().unwrap(), vec![-7, 1 << 20]);
    assert_eq!(m["u8"].to_vec1::<u8>().unwrap(), vec![0, 128, 255]);
    assert_eq!(m["bool"].to_vec1::<u8>().unwrap(), vec![1, 0]);
    assert_eq!(m["i8"].to_vec1::<i16>().unwrap(), vec![-1, 127]);
}

/// `torch.save({'state_dict': sd, 'epoch': 3})` where `sd` holds a Parameter
/// (`_rebuild_parameter(_rebuild_tensor_v2(...), True, OrderedDict())`), the same Parameter
/// again under a second name (pickle memo: tied weights), and a tensor with Python state
/// (`_rebuild_from_type_v2(_rebuild_tensor_v2, torch.Tensor, args, {})`).
#[test]
fn parameters_tied_weights_tensor_subclasses_and_nested_dicts() {
    let f: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
    let s = Storage {
        class: "FloatStorage",
        key: "0".into(),
        location: "cuda:0",
        numel: 6,
        bytes: f32_bytes(&f),
        view: None,
    };
    let whole = Entry { name: String::new(), storage: 0, offset: 0, size: vec![2, 3], stride: vec![3, 1] };
    let tail = Entry { name: String::new(), storage: 0, offset: 4, size: vec![2], stride: vec![1] };
    let mut p = P::default();
    p.proto2().op(b'}').mark();
    p.str("state_dict").global("collections", "OrderedDict").op(b')').op(b'R').mark();
    // 'w': Parameter(tensor), memoised as 50
    p.str("w").global("torch._utils", "_rebuild_parameter").mark();
    p.tensor(&s, &whole).op(0x88).global("collections", "OrderedDict").op(b')').op(b'R').tuple().op(b'R').put(50);
    // 'tied': the same object
    p.str("tied").get(50);
    // 's': _rebuild_from_type_v2(func, type, args, state)
    p.str("s").global("torch._tensor", "_rebuild_from_type_v2").mark();
    p.global("torch._utils", "_rebuild_tensor_v2").global("torch", "Tensor").mark();
    p.storage(&s).int(4).int_tuple(&tail.size).int_tuple(&tail.stride).op(0x89);
    p.global("collections", "OrderedDict").op(b')').op(b'R').tuple();
    p.op(b'}').tuple().op(b'R');
    p.op(b'u').str("epoch").int(3).op(b'u').stop();
    let bytes = zip_members(&[("model/data.pkl".into(), p.0), ("model/data/0".into(), s.bytes.clone())]);
    let m = checkpoint::load_bytes(&bytes, Path::new("nested.pth")).unwrap();
    let mut keys: Vec<_> = m.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["state_dict.s", "state_dict.tied", "state_dict.w"]);
    assert_eq!(m["state_dict.w"].to_vec2::<f32>().unwrap(), vec![vec![-2.5, -1.5, -0.5], vec![0.5, 1.5, 2.5]]);
    assert_eq!(bits(&m["state_dict.tied"]), bits(&m["state_dict.w"]));
    assert_eq!(m["state_dict.s"].to_vec1::<f32>().unwrap(), vec![1.5, 2.5]);
}

/// A protocol-4 pickle (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL), as
/// `torch.save(..., pickle_protocol=4)` writes, in an archive whose `byteorder` says `big`:
/// storages are then big-endian and must be swapped.
#[test]
fn protocol_4_pickles_and_big_endian_archives() {
    let mut p = P::default();
    p.0.extend_from_slice(&[0x80, 4, 0x95]);
    p.0.extend_from_slice(&0u64.to_le_bytes()); // frame length: not needed by a reader
    p.stack_global("collections", "OrderedDict").op(b')').op(b'R').op(0x94).mark();
    p.short_str("x").stack_global("torch._utils", "_rebuild_tensor_v2").mark();
    p.mark().short_str("storage").stack_global("torch", "HalfStorage").short_str("7").short_str("cpu").int(2);
    p.tuple().op(b'Q').int(0).int_tuple(&[2]).int_tuple(&[1]).op(0x89);
    p.stack_global("collections", "OrderedDict").op(b')').op(b'R').tuple().op(b'R');
    p.short_str("y").stack_global("torch._utils", "_rebuild_tensor_v2").mark();
    p.mark().short_str("storage").stack_global("torch", "LongStorage").short_str("8").short_str("cpu").int(1);
    p.tuple().op(b'Q').int(0).int_tuple(&[]).int_tuple(&[]).op(0x89);
    p.stack_global("collections", "OrderedDict").op(b')').op(b'R').tuple().op(b'R');
    p.op(b'u').stop();
    let half_be: Vec<u8> = [0.5f32, -4.0].iter().flat_map(|&x| half::f16::from_f32(x).to_be_bytes()).collect();
    let bytes = zip_members(&[
        ("a/data.pkl".into(), p.0),
        ("a/byteorder".into(), b"big".to_vec()),
        ("a/data/7".into(), half_be),
        ("a/data/8".into(), (-5i64).to_be_bytes().to_vec()),
    ]);
    let m = checkpoint::load_bytes(&bytes, Path::new("p4.pth")).unwrap();
    assert_eq!(m["x"].to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap(), vec![0.5, -4.0]);
    assert_eq!(m["y"].to_scalar::<i64>().unwrap(), -5);
}

#[test]
fn check_keys_against_expected_shapes() {
    let m = checkpoint::load(&fixture("model.safetensors")).unwrap();
    let mut expected: Vec<(&str, &[usize])> = vec![
        ("embeddings.weight", &[64, 1000]),
        ("generator.gen_z.weight_orig", &[2048, 128]),
        ("generator.conv_to_rgb.weight_orig", &[8, 8, 3, 3]),
        ("generator.bn.running_means", &[51, 8]),
        ("generator.layers.8.gamma", &[2]),
        ("generator.nonexistent", &[1]),
    ];
    let r = checkpoint::check_keys(&m, expected.iter().copied());
    assert_eq!(r.missing, vec!["generator.nonexistent"]);
    assert_eq!(r.mismatched, vec![("generator.layers.8.gamma".to_string(), vec![2], vec![1])]);
    assert_eq!(r.unexpected.len(), 506 - 5, "all but the five expected names that exist");
    expected.truncate(4);
    assert!(checkpoint::check_keys(&m, expected).mismatched.is_empty());
}
