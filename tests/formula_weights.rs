//! The formula-weight generator (`common::formula`) against the fixture's key list:
//! roles derived from the keys equal the listed roles, the section sizes match the README, and
//! regenerated tensors hash to the listed SHA-256 (bit-for-bit weights).
//! Spec: tests/fixtures/formula-weights/FORMULA.md.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use common::formula::{read_section, FormulaDict, Listed, SALT_SHARED};
use sha2::{Digest, Sha256};

fn keys_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formula-weights/KEYS.txt")
}

fn sha256_hex(t: &Tensor) -> String {
    let mut h = Sha256::new();
    match t.dtype() {
        DType::F32 => t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().for_each(|x| h.update(x.to_le_bytes())),
        DType::I64 => t.flatten_all().unwrap().to_vec1::<i64>().unwrap().iter().for_each(|x| h.update(x.to_le_bytes())),
        d => panic!("unexpected dtype {d:?}"),
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Regenerates the keys passing `keep` and checks shape, dtype and hash of each.
fn check_hashes(listed: &[Listed], keep: impl Fn(&str) -> bool) -> usize {
    let dict = FormulaDict::from_listed(listed).unwrap();
    let tensors = dict.generate(SALT_SHARED, &keep).unwrap();
    let want: HashMap<&str, &Listed> = listed.iter().map(|l| (l.key.as_str(), l)).collect();
    let mut n = 0;
    for (key, t) in &tensors {
        let l = want[key.as_str()];
        assert_eq!(t.dims(), l.shape.as_slice(), "{key}: shape");
        let dtype = if t.dtype() == DType::F32 { "float32" } else { "int64" };
        assert_eq!(dtype, l.dtype, "{key}: dtype");
        assert_eq!(sha256_hex(t), l.sha256, "{key}: the regenerated tensor differs from the listed one");
        n += 1;
    }
    assert_eq!(n, listed.iter().filter(|l| keep(&l.key)).count(), "every selected key was generated");
    n
}

#[test]
fn derived_roles_equal_the_listed_roles() {
    for section in ["u2net", "cgn", "ensemble"] {
        let listed = read_section(&keys_file(), section).unwrap();
        let dict = FormulaDict::from_listed(&listed).unwrap();
        for (e, l) in dict.entries().iter().zip(&listed) {
            assert_eq!(e.role.name(), l.role, "[{section}] {}", l.key);
        }
    }
}

#[test]
fn section_sizes_match_the_readme() {
    let size = |section: &str| {
        let listed = read_section(&keys_file(), section).unwrap();
        let values: usize = listed.iter().map(|l| l.shape.iter().product::<usize>()).sum();
        let params: usize = listed
            .iter()
            .filter(|l| !l.key.contains("running_") && !l.key.ends_with("num_batches_tracked"))
            .map(|l| l.shape.iter().product::<usize>())
            .sum();
        (listed.len(), values, params)
    };
    assert_eq!(size("u2net"), (798, 44_038_781, 44_009_869));
    let (keys, values, _) = size("cgn");
    assert_eq!((keys, values), (3206, 278_331_521));
    for prefix in ["biggan_GT.", "f_shape.", "f_text.", "f_bg."] {
        let listed = read_section(&keys_file(), "cgn").unwrap();
        assert_eq!(listed.iter().filter(|l| l.key.starts_with(prefix)).count(), 602, "{prefix}");
    }
}

/// The whole standalone U²-Net (44 M values) hashes as listed.
#[test]
fn u2net_weights_are_bit_exact() {
    let listed = read_section(&keys_file(), "u2net").unwrap();
    assert_eq!(check_hashes(&listed, |_| true), 798);
}

/// A sample of the CGN dict: every key of one generator's last GenBlock and attention layer
/// (SN vectors of 1×1 and 3×3 convs and the conditional BN linears), the embeddings, gen_z (the
/// largest SN matrix, 32768×256), the final BN, and one U²-Net stage under its `u2net.` prefix.
#[test]
fn cgn_weight_sample_is_bit_exact() {
    let listed = read_section(&keys_file(), "cgn").unwrap();
    let keep = |k: &str| {
        k.starts_with("f_text.generator.layers.12.")
            || k.starts_with("f_text.generator.layers.8.")
            || k.starts_with("f_text.generator.gen_z.")
            || k.starts_with("f_text.generator.bn.")
            || k == "biggan_GT.embeddings.weight"
            || k.starts_with("u2net.stage6.")
            || k.starts_with("u2net.side")
    };
    let n = check_hashes(&listed, keep);
    assert!(n > 100, "only {n} keys sampled");
}
