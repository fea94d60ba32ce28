//! The checkpoint readers on the real fixture files and on hand-built streams whose every byte is
//! known: strided and offset views, fp16, int64 scalars, legacy view storages, `cuda:0` locations.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use common::pickle_writer::{f32_bytes, legacy_file, zip_file, Entry, Storage};
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
    let r = tw.report();
    assert_eq!(r.missing, vec!["nope".to_string()]);
    assert_eq!(r.unexpected, vec!["bn.num_batches_tracked".to_string(), "h".to_string()]);
    assert_eq!(r.mismatched, vec![("b.weight".to_string(), vec![4, 3], vec![3, 4])]);
    let text = r.to_string();
    assert!(text.contains("1 missing: nope") && text.contains("2 unexpected"), "{text}");
}
