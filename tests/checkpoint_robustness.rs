//! Bad weight files never panic, never hang, and always name the file: truncations at many
//! offsets, seeded byte flips, and hand-made hostile streams, for all three formats.

mod common;

use std::path::Path;

use common::pickle_writer::{f32_bytes, legacy_file, zip_file, Entry, Storage, P};
use intervene::checkpoint::load_bytes;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/biggan-deep-tiny-128").join(name)).unwrap()
}

/// Loads `bytes`; a panic fails the test, an error must name the file.
fn must_not_panic(bytes: &[u8], what: &str) -> bool {
    let name = Path::new("mutant.bin");
    let r = std::panic::catch_unwind(|| load_bytes(bytes, name));
    match r {
        Err(_) => panic!("{what}: the reader panicked"),
        Ok(Err(e)) => {
            assert!(e.to_string().contains("mutant.bin"), "{what}: error does not name the file: {e}");
            false
        }
        Ok(Ok(_)) => true,
    }
}

/// xorshift for reproducible mutations.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn truncated_files_give_errors() {
    for name in ["model.safetensors", "pytorch_model.bin", "pytorch_model_zip.bin"] {
        let full = fixture(name);
        let mut offsets: Vec<usize> = (0..400.min(full.len())).collect();
        offsets.extend((400..full.len()).step_by(full.len() / 150));
        offsets.push(full.len() - 1);
        for &cut in &offsets {
            let ok = must_not_panic(&full[..cut], &format!("{name} cut at {cut}"));
            assert!(!ok, "{name} cut at {cut} of {} loaded as if whole", full.len());
        }
    }
}

#[test]
fn byte_flips_never_panic() {
    let mut seed = 0x5eed_1234_u64;
    for name in ["model.safetensors", "pytorch_model.bin", "pytorch_model_zip.bin"] {
        let full = fixture(name);
        for i in 0..500 {
            let mut m = full.clone();
            // Mostly near the start (headers and pickles), sometimes anywhere.
            let span = if i % 3 == 0 { m.len() } else { 4096.min(m.len()) };
            for _ in 0..1 + (rng(&mut seed) % 4) {
                let at = (rng(&mut seed) as usize) % span;
                m[at] ^= 1 << (rng(&mut seed) % 8);
            }
            must_not_panic(&m, &format!("{name} flip #{i}"));
        }
    }
}

#[test]
fn empty_and_foreign_files_are_named_clearly() {
    let e = load_bytes(b"", Path::new("empty.pth")).unwrap_err().to_string();
    assert!(e.contains("empty.pth") && e.contains("empty"), "{e}");
    let e = load_bytes(b"\x89PNG\r\n\x1a\n....", Path::new("cat.png")).unwrap_err().to_string();
    assert!(e.contains("cat.png") && e.contains("not a recognised weights file"), "{e}");
}

fn one_storage() -> (Vec<Storage>, Vec<Entry>) {
    let s = vec![Storage {
        class: "FloatStorage",
        key: "0".into(),
        location: "cpu",
        numel: 4,
        bytes: f32_bytes(&[1.0, 2.0, 3.0, 4.0]),
        view: None,
    }];
    let e = vec![Entry { name: "w".into(), storage: 0, offset: 0, size: vec![4], stride: vec![1] }];
    (s, e)
}

#[test]
fn hostile_legacy_streams_are_refused() {
    // A storage that claims 2^60 elements must be refused before any allocation.
    let (mut s, e) = one_storage();
    let mut bytes = legacy_file(&s, &e);
    let n = bytes.len();
    let count_at = n - 16 - 8;
    bytes[count_at..count_at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let err = load_bytes(&bytes, Path::new("huge.pth")).unwrap_err().to_string();
    assert!(err.contains("more than the file holds"), "{err}");

    // A global outside the allow-list is never called: the tensor depending on it fails cleanly.
    let mut p = P::default();
    p.proto2().op(b'}').str("w").global("os", "system").mark().str("echo pwned").tuple().op(b'R').op(b's').stop();
    let mut stream = legacy_file(&s, &e);
    let obj_start = find_state_dict(&stream);
    stream.splice(obj_start.0..obj_start.1, p.0);
    let err = load_bytes(&stream, Path::new("evil.pth")).unwrap_err().to_string();
    assert!(err.contains("evil.pth") && err.contains("no tensors"), "{err}");

    // Deep nesting (100k lists in lists) neither overflows the native stack while reading nor
    // when dropped; it holds no tensor, so the file is refused.
    let mut p = P::default();
    p.proto2();
    for _ in 0..100_000 {
        p.op(b']');
    }
    for _ in 0..99_999 {
        p.op(b'a');
    }
    p.stop();
    let err = with_object(&s, &e, p.0, "deep.pth");
    assert!(err.contains("deep.pth") && err.contains("no tensors"), "{err}");

    // Nesting built after the fact, through the memo (list i appended into list i-1), which no
    // depth count at construction sees: still harmless.
    let mut p = P::default();
    p.proto2().op(b']');
    for i in 0..50_000u32 {
        p.op(b']').op(b'r');
        p.0.extend_from_slice(&i.to_le_bytes());
        p.op(b'0');
    }
    for i in 1..50_000u32 {
        p.op(b'j');
        p.0.extend_from_slice(&(i - 1).to_le_bytes());
        p.op(b'j');
        p.0.extend_from_slice(&i.to_le_bytes());
        p.op(b'a').op(b'0');
    }
    p.stop();
    let err = with_object(&s, &e, p.0, "chain.pth");
    assert!(err.contains("no tensors"), "{err}");

    // A dict holding itself under 10k keys: each container is visited once.
    let mut p = P::default();
    p.proto2().op(b'}').put(0).mark();
    for i in 0..10_000 {
        p.int(i).get(0);
    }
    p.op(b'u').stop();
    let err = with_object(&s, &e, p.0, "cycle.pth");
    assert!(err.contains("no tensors"), "{err}");

    // REDUCE with the same 100k-item argument tuple 200k times: arguments are shared, not copied.
    let mut p = P::default();
    p.proto2().mark();
    for _ in 0..100_000 {
        p.op(b'N');
    }
    p.tuple().put(1).op(b'0').global("torch._utils", "_rebuild_tensor_v2").put(2).op(b'0').op(b']');
    for _ in 0..200_000 {
        p.get(2).get(1).op(b'R').op(b'a');
    }
    p.stop();
    // (Copying the arguments would take ~2·10^10 steps and tens of GB: the test would not end.)
    let err = with_object(&s, &e, p.0, "args.pth");
    assert!(err.contains("args.pth") && err.contains("storage"), "{err}");

    // A memo read of an index never written.
    let mut p = P::default();
    p.proto2().op(b'h').op(7).stop();
    let mut stream = legacy_file(&s, &e);
    let obj = find_state_dict(&stream);
    stream.splice(obj.0..obj.1, p.0);
    let err = load_bytes(&stream, Path::new("memo.pth")).unwrap_err().to_string();
    assert!(err.contains("memo entry 7"), "{err}");

    // A storage listed after the object but referenced nowhere in it: its element size, hence
    // where the next storage starts, is unknown.
    let mut extra = s.clone();
    extra.push(Storage { key: "9".into(), ..s[0].clone() });
    let err = load_bytes(&legacy_file(&extra, &e), Path::new("extra.pth")).unwrap_err().to_string();
    assert!(err.contains("storage 9 is listed but never referenced"), "{err}");

    // A storage whose element count differs from its reference's.
    let mut short = s.clone();
    short[0].bytes.truncate(12);
    short[0].numel = 3;
    let mut bytes = legacy_file(&short, &e);
    let n = bytes.len();
    bytes[n - 12 - 8..n - 12].copy_from_slice(&3u64.to_le_bytes());
    let at = bytes.windows(2).position(|w| w == [b'K', 3]).unwrap(); // numel in the persistent id
    bytes[at + 1] = 4;
    let err = load_bytes(&bytes, Path::new("count.pth")).unwrap_err().to_string();
    assert!(err.contains("storage 0 holds 3 elements but its reference declares 4"), "{err}");

    // A storage with an unknown class.
    s[0].class = "EvilStorage";
    let err = load_bytes(&legacy_file(&s, &e), Path::new("cls.pth")).unwrap_err().to_string();
    assert!(err.contains("unsupported storage type"), "{err}");
}

#[test]
fn tensors_that_cannot_be_rebuilt_are_errors_naming_them() {
    let (s, e) = one_storage();
    // A tensor whose storage is the result of an unknown call.
    let mut p = P::default();
    p.proto2().op(b'}').str("w").global("torch._utils", "_rebuild_tensor_v2").mark();
    p.global("os", "system").mark().str("echo pwned").tuple().op(b'R');
    p.int(0).int_tuple(&[1]).int_tuple(&[1]).tuple().op(b'R').op(b's').stop();
    let err = with_object(&s, &e, p.0, "evil2.pth");
    assert!(err.contains("w: the tensor's storage comes from os.system"), "{err}");
    // A tensor kind we do not rebuild (quantized).
    let mut p = P::default();
    p.proto2().op(b'}').str("q").global("torch._utils", "_rebuild_qtensor").op(b')').op(b'R').op(b's').stop();
    let err = with_object(&s, &e, p.0, "q.pth");
    assert!(err.contains("q: unsupported tensor kind (torch._utils._rebuild_qtensor)"), "{err}");
    // `torch.save(model)`: the module object itself (NEWOBJ of __main__.Net, BUILD with its __dict__).
    let mut p = P::default();
    p.proto2().global("__main__", "Net").op(b')').op(0x81).op(b'}').op(b'b').stop();
    let err = with_object(&s, &e, p.0, "model.pth");
    assert!(err.contains("pickled __main__.Net object, not a state dict"), "{err}");
    // A zero-stride view repeating one element 2^40 times: refused before allocating.
    let mut e2 = e;
    e2[0].size = vec![1 << 40];
    e2[0].stride = vec![0];
    let err = load_bytes(&legacy_file(&s, &e2), Path::new("bcast.pth")).unwrap_err().to_string();
    assert!(err.contains("w: shape [1099511627776] needs more memory than the file can justify"), "{err}");
}

/// The error for a legacy file whose object pickle is replaced by `object`.
fn with_object(s: &[Storage], e: &[Entry], object: Vec<u8>, name: &str) -> String {
    let mut stream = legacy_file(s, e);
    let obj = find_state_dict(&stream);
    stream.splice(obj.0..obj.1, object);
    load_bytes(&stream, Path::new(name)).unwrap_err().to_string()
}

/// Byte range of the 4th pickle (the object) in a legacy stream made by `legacy_file`.
fn find_state_dict(stream: &[u8]) -> (usize, usize) {
    let mut pos = 0;
    let mut bounds = Vec::new();
    for _ in 0..4 {
        let (_, end) = intervene::checkpoint::pickle::load(stream, pos).unwrap();
        bounds.push((pos, end));
        pos = end;
    }
    bounds[3]
}

#[test]
fn hostile_zip_archives_are_refused() {
    let (s, e) = one_storage();
    // Missing data member.
    let mut s2 = s.clone();
    s2[0].key = "0".into();
    let full = zip_file(&s2, &e);
    let renamed = replace_bytes(&full, b"archive/data/0", b"archive/data/X");
    let err = load_bytes(&renamed, Path::new("nodata.pth")).unwrap_err().to_string();
    assert!(err.contains("nodata.pth") && err.contains("archive/data/0"), "{err}");
    // No data.pkl at all.
    let err = load_bytes(&replace_bytes(&full, b"archive/data.pkl", b"archive/data.pkX"), Path::new("nopkl.pth"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nopkl.pth") && err.contains("no <folder>/data.pkl"), "{err}");
    // Declared storage larger than its member.
    let mut big = s.clone();
    big[0].numel = 1000;
    let err = load_bytes(&zip_file(&big, &e), Path::new("short.pth")).unwrap_err().to_string();
    assert!(err.contains("declared"), "{err}");
}

#[test]
fn hostile_safetensors_are_refused() {
    // Header length larger than the file.
    let mut b = (1u64 << 40).to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    let err = load_bytes(&b, Path::new("len.safetensors")).unwrap_err().to_string();
    assert!(err.contains("len.safetensors"), "{err}");
    // Offsets out of range.
    let header = br#"{"w":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header);
    b.extend_from_slice(&[0u8; 16]);
    let err = load_bytes(&b, Path::new("off.safetensors")).unwrap_err().to_string();
    assert!(err.contains("off.safetensors"), "{err}");
}

fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = hay.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    out
}
