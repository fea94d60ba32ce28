//! `intervene pca` and `intervene steer` on the tiny BigGAN fixture, checked against edits the
//! test computes itself from the `.npz` arrays (GANSpace additive and GenInt centred semantics,
//! as src/steer/edit.rs states them), and the file layout GANSpace reads.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use intervene::models::biggan::load;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_intervene"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-steer-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn model_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/biggan-deep-tiny-128").to_string()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
}

/// Every array of an .npz as (name, shape, descr, little-endian f32 values), parsed here from
/// the zip and the .npy headers — independently of the library's reader.
fn read_npz(p: &Path) -> Vec<(String, Vec<usize>, String, Vec<f32>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(p).unwrap()).unwrap();
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let name = e.name().unwrap().trim_end_matches(".npy").to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        assert_eq!(&b[..6], b"\x93NUMPY");
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        let header = std::str::from_utf8(&b[10..10 + hl]).unwrap().to_string();
        let descr = header.split("'descr': '").nth(1).unwrap().split('\'').next().unwrap().to_string();
        let shape_s = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
        let shape: Vec<usize> =
            shape_s.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
        assert!(header.contains("'fortran_order': False"));
        let data = b[10 + hl..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.push((name, shape, descr, data));
    }
    out
}

fn get<'a>(arrs: &'a [(String, Vec<usize>, String, Vec<f32>)], k: &str) -> &'a [f32] {
    &arrs.iter().find(|a| a.0 == k).unwrap().3
}

fn npy(path: &Path) -> Tensor {
    intervene::imageio::load_npy(path).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn pca_file(name: &str, components: usize, seed: u64) -> PathBuf {
    let out = tmp(name);
    run(bin().args(["pca", "--model", &model_dir(), "--class", "207", "--samples", "1500", "--components"]).args([
        &components.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]));
    out
}

#[test]
fn pca_writes_ganspace_layout_with_orthonormal_components_deterministically() {
    let p = pca_file("layout.npz", 12, 5);
    let a = read_npz(&p);
    let names: Vec<&str> = a.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        names,
        ["act_comp", "act_mean", "act_stdev", "lat_comp", "lat_mean", "lat_stdev", "var_ratio", "random_stdevs"]
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}/config.json", model_dir())).unwrap()).unwrap();
    let z_dim = cfg["z_dim"].as_u64().unwrap() as usize;
    let d = 16 * 16 * cfg["channel_width"].as_u64().unwrap() as usize; // gen_z: 4·4·16·ch
    let shapes: Vec<Vec<usize>> = a.iter().map(|x| x.1.clone()).collect();
    assert_eq!(
        shapes,
        vec![vec![12, 1, d], vec![1, d], vec![12], vec![12, 1, z_dim], vec![1, z_dim], vec![12], vec![12], vec![12]]
    );
    assert!(a.iter().all(|x| x.2 == "<f4"), "all float32");
    // Activation components orthonormal; latent rows unit length; variance descending.
    let ac = get(&a, "act_comp");
    for i in 0..12 {
        for j in 0..12 {
            let dot: f64 = (0..d).map(|k| ac[i * d + k] as f64 * ac[j * d + k] as f64).sum();
            assert!((dot - f64::from(i == j)).abs() < 1e-4, "act_comp {i}·{j} = {dot}");
        }
        let lc = &get(&a, "lat_comp")[i * z_dim..(i + 1) * z_dim];
        let n: f64 = lc.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        assert!((n - 1.0).abs() < 1e-5, "lat_comp row {i} has norm {n}");
    }
    let vr = get(&a, "var_ratio");
    assert!(vr.windows(2).all(|w| w[0] >= w[1]) && vr.iter().sum::<f32>() < 1.0 && vr[0] > 0.0, "{vr:?}");
    let sd = get(&a, "act_stdev");
    assert!(sd.windows(2).all(|w| w[0] >= w[1]));
    assert!(get(&a, "lat_stdev").iter().all(|v| *v == 1.0), "BigGAN's lat_stdev is all ones");
    // The leading direction explains more variance than a random one.
    assert!(sd[0] > get(&a, "random_stdevs")[0]);
    // Same seed, same bytes.
    let q = pca_file("layout-again.npz", 12, 5);
    assert_eq!(read_npz(&q), a, "deterministic from the seed");
}

/// Per-slot latents under `edits`, computed here from the .npz arrays in f64.
fn edited_latents(
    z: &[f32],
    slots: usize,
    a: &[(String, Vec<usize>, String, Vec<f32>)],
    edits: &[(usize, usize, usize, f32)],
    centred: bool,
) -> Vec<Vec<f32>> {
    let zd = get(a, "lat_mean").len();
    let (lc, mean, sd) = (get(a, "lat_comp"), get(a, "lat_mean"), get(a, "lat_stdev"));
    (0..slots)
        .map(|slot| {
            let mut v: Vec<f64> = z.iter().map(|x| *x as f64).collect();
            for &(c, s, e, strength) in edits {
                if !(s..e).contains(&slot) {
                    continue;
                }
                let dir = &lc[c * zd..(c + 1) * zd];
                if centred {
                    let nn: f64 = dir.iter().map(|d| (*d as f64).powi(2)).sum::<f64>() + 1e-8;
                    let proj: f64 = (0..zd).map(|k| (v[k] - mean[k] as f64) * dir[k] as f64).sum::<f64>() / nn;
                    for k in 0..zd {
                        v[k] += -proj * dir[k] as f64 + dir[k] as f64 * strength as f64 * sd[c] as f64;
                    }
                } else {
                    for k in 0..zd {
                        v[k] += strength as f64 * sd[c] as f64 * dir[k] as f64;
                    }
                }
            }
            v.iter().map(|x| *x as f32).collect()
        })
        .collect()
}

fn check_steer(edits: &[(usize, usize, usize, f32)], centred: bool) {
    let comps = pca_file(&format!("steer-{centred}.npz"), 10, 1);
    let a = read_npz(&comps);
    let model = load::load(&model_dir(), &Device::Cpu).unwrap();
    let slots = model.cfg.num_latents();
    let zd = model.cfg.z_dim;
    let z = intervene::noise::truncated_noise(42, 1, zd, 0.5, &Device::Cpu).unwrap();
    let zv = z.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let latents = edited_latents(&zv, slots, &a, edits, centred);
    let lat_t: Vec<Tensor> =
        latents.iter().map(|l| Tensor::from_vec(l.clone(), (1, zd), &Device::Cpu).unwrap()).collect();
    let cv = intervene::classes::one_hot(&[207], 1000, &Device::Cpu).unwrap();
    let expected = model.forward_latents(&lat_t, &cv, 0.5).unwrap();

    let raw = tmp(&format!("steer-{centred}.npy"));
    let mut cmd = bin();
    cmd.args([
        "steer",
        "--model",
        &model_dir(),
        "--components",
        comps.to_str().unwrap(),
        "--seed",
        "42",
        "--class",
        "207",
    ]);
    cmd.args([
        "--truncation",
        "0.5",
        "--mode",
        if centred { "centred" } else { "additive" },
        "--raw",
        raw.to_str().unwrap(),
    ]);
    for (c, s, e, v) in edits {
        cmd.arg("--edit").arg(format!("{c}:{s}:{e}:{v}"));
    }
    run(&mut cmd);
    let got = npy(&raw);
    let err = max_abs_diff(&got, &expected);
    assert!(err < 1e-4, "steer vs independently edited latents: max |Δ| = {err}");
    let unedited = model.forward(&z, &cv, 0.5).unwrap();
    assert!(max_abs_diff(&got, &unedited) > 1e-2, "the edits change the image");
}

#[test]
fn steer_additive_equals_forward_with_independently_edited_latents() {
    check_steer(&[(0, 0, 4, 2.5), (3, 2, 11, -1.5), (0, 6, 11, 0.7)], false);
}

#[test]
fn steer_centred_equals_forward_with_independently_edited_latents() {
    check_steer(&[(1, 0, 11, 2.0), (4, 5, 9, -3.0)], true);
}

#[test]
fn an_edit_on_every_slot_equals_generate_with_the_edited_z() {
    let comps = pca_file("all-slots.npz", 6, 2);
    let a = read_npz(&comps);
    let zd = get(&a, "lat_mean").len();
    let z = intervene::noise::truncated_noise(7, 2, zd, 0.4, &Device::Cpu).unwrap();
    let zpath = tmp("all-z.npy");
    intervene::imageio::save_npy(&z, &zpath).unwrap();
    // The edited z, for both rows, written for `generate`.
    let zv = z.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut edited = Vec::new();
    for row in zv.chunks(zd) {
        edited.extend(edited_latents(row, 1, &a, &[(2, 0, 1, -4.0)], false).remove(0));
    }
    let ez = tmp("edited-z.npy");
    intervene::imageio::save_npy(&Tensor::from_vec(edited, (2, zd), &Device::Cpu).unwrap(), &ez).unwrap();
    let (g, s) = (tmp("gen.npy"), tmp("steer-all.npy"));
    run(bin().args([
        "generate",
        "--model",
        &model_dir(),
        "--z",
        ez.to_str().unwrap(),
        "--class",
        "1",
        "--truncation",
        "0.4",
        "--raw",
        g.to_str().unwrap(),
    ]));
    run(bin()
        .args([
            "steer",
            "--model",
            &model_dir(),
            "--components",
            comps.to_str().unwrap(),
            "--z",
            zpath.to_str().unwrap(),
        ])
        .args(["--class", "1", "--truncation", "0.4", "--edit", "2:0:11:-4", "--raw", s.to_str().unwrap()]));
    let err = max_abs_diff(&npy(&g), &npy(&s));
    assert!(err < 1e-4, "steer over all slots vs generate with edited z: {err}");
}

#[test]
fn bad_edits_and_files_are_clear_errors() {
    let comps = pca_file("errs.npz", 4, 3);
    let out = tmp("never.png");
    for (edit, msg) in
        [("9:0:11:1", "component 9 does not exist"), ("0:5:3:1", "latent range"), ("0:0:11", "COMP:START:END:STRENGTH")]
    {
        let o = bin()
            .args(["steer", "--model", &model_dir(), "--components", comps.to_str().unwrap(), "--edit", edit, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(msg), "{edit}: {err}");
    }
    let bogus = tmp("bogus.npz");
    std::fs::write(&bogus, b"PK\x03\x04 not really").unwrap();
    let o = bin()
        .args(["steer", "--model", &model_dir(), "--components", bogus.to_str().unwrap(), "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("bogus.npz"));
    assert!(!out.exists(), "nothing written on failure");
}
