//! The MNIST CGN runtime against an independent NumPy reference
//! (`tools/reference/cgn_mnist_ref.py`, float64) on random weights with the exact key layout of
//! the authors' checkpoints (tests/fixtures/cgn-mnist-random/README.md), plus invariants of the
//! torus shift and of the counterfactual forward.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use intervene::models::cgn_mnist::{self, torus_shift, CgnMnist, MechanismInputs, Parts, Shifts};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgn-mnist-random").join(name)
}

fn model() -> CgnMnist {
    cgn_mnist::load(&fixture("weights.safetensors"), &Device::Cpu).expect("random-weight CGN")
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("golden.safetensors"), &Device::Cpu).expect("golden")
}

fn v(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn idx(t: &Tensor) -> Vec<usize> {
    t.to_dtype(DType::I64).unwrap().to_vec1::<i64>().unwrap().into_iter().map(|x| x as usize).collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    v(a).iter().zip(v(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn shifts(g: &HashMap<String, Tensor>) -> Shifts {
    Shifts {
        fg_dy: idx(&g["shift.fg_dy"]),
        fg_dx: idx(&g["shift.fg_dx"]),
        bg_dy: idx(&g["shift.bg_dy"]),
        bg_dx: idx(&g["shift.bg_dx"]),
    }
}

fn run(m: &CgnMnist, g: &HashMap<String, Tensor>) -> Parts {
    let y = &g["y"];
    m.forward_parts(&g["u"], y, y, y).unwrap()
}

#[test]
fn random_weights_match_the_numpy_reference() {
    let (m, g) = (model(), golden());
    let y = &g["y"];
    assert!(max_diff(&m.inp(&g["u"], y).unwrap(), &g["inp"]) < 1e-6);
    let p = run(&m, &g);
    let s = p.shifted(&shifts(&g)).unwrap();
    let checks: [(&str, &Tensor); 10] = [
        ("mask_raw", &p.mask_raw),
        ("mask", &p.mask),
        ("fg_pretanh", &p.fg_pretanh),
        ("bg_pretanh", &p.bg_pretanh),
        ("fg", &p.fg),
        ("bg", &p.bg),
        ("x", &p.x),
        ("shift.fg", &s.fg),
        ("shift.bg", &s.bg),
        ("shift.x", &s.x),
    ];
    for (k, t) in checks {
        let e = max_diff(t, &g[k]);
        eprintln!("{k:12} max abs error {e:.2e}");
        assert!(e < 1e-4, "{k}: max abs error {e} ≥ 1e-4");
    }
    // The mask is never shifted.
    assert_eq!(v(&s.mask), v(&p.mask));
}

#[test]
fn mask_is_the_clamped_raw_mask_and_mostly_at_the_bounds() {
    let (m, g) = (model(), golden());
    let p = run(&m, &g);
    let raw = v(&p.mask_raw);
    let mask = v(&p.mask);
    let hw = 32 * 32;
    for (i, &r) in raw.iter().enumerate() {
        let (b, q) = (i / hw, i % hw);
        let want = r.clamp(1e-4, 0.9999);
        for c in 0..3 {
            assert_eq!(mask[(b * 3 + c) * hw + q], want, "mask = clamp(mask_raw) repeated to 3 channels");
        }
    }
    // Instance norm → zero mean, unit (biased) variance per sample before the clamp.
    for b in raw.chunks(hw) {
        let mean = b.iter().map(|&x| x as f64).sum::<f64>() / hw as f64;
        let var = b.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / hw as f64;
        assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3, "mean {mean}, var {var}");
    }
    let at_bounds = mask.iter().filter(|&&x| x == 1e-4f32 || x == 0.9999f32).count() as f64 / mask.len() as f64;
    assert!(at_bounds > 0.5, "no sigmoid: most mask pixels sit at a clamp bound ({at_bounds})");
}

#[test]
fn torus_shift_is_tile_and_crop() {
    let (m, g) = (model(), golden());
    let fg = run(&m, &g).fg;
    let (b, c, h, w) = fg.dims4().unwrap();
    let sh = shifts(&g);
    // The golden shift is an exact permutation of the golden fg.
    assert_eq!(v(&torus_shift(&g["fg"], &sh.fg_dy, &sh.fg_dx).unwrap()), v(&g["shift.fg"]));
    // Literal tile 2×2 and crop at (dy, dx), written out by index.
    let src = v(&fg);
    let got = v(&torus_shift(&fg, &sh.fg_dy, &sh.fg_dx).unwrap());
    for bi in 0..b {
        let (dy, dx) = (sh.fg_dy[bi], sh.fg_dx[bi]);
        for ci in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let (ty, tx) = (y + dy, x + dx); // row/col in the 64×64 tile
                    let want = src[((bi * c + ci) * h + ty % h) * w + tx % w];
                    assert_eq!(got[((bi * c + ci) * h + y) * w + x], want);
                }
            }
        }
    }
    // 32 ≡ 0; out-of-range offsets and wrong lengths are errors.
    let s32 = torus_shift(&fg, &vec![32; b], &vec![32; b]).unwrap();
    assert_eq!(v(&s32), src);
    assert!(torus_shift(&fg, &vec![33; b], &vec![0; b]).unwrap_err().to_string().contains("outside"));
    assert!(torus_shift(&fg, &[0], &[0]).is_err());
}

#[test]
fn random_shifts_are_seeded_and_cover_zero_to_32() {
    let a = Shifts::seeded(2000, 7);
    assert_eq!(a, Shifts::seeded(2000, 7));
    assert_ne!(a, Shifts::seeded(2000, 8));
    let all: Vec<usize> = [&a.fg_dy, &a.fg_dx, &a.bg_dy, &a.bg_dx].iter().flat_map(|v| v.iter().copied()).collect();
    assert_eq!(*all.iter().max().unwrap(), 32);
    assert_eq!(*all.iter().min().unwrap(), 0);
    assert_ne!(a.fg_dy, a.bg_dy, "fg and bg offsets are independent");
}

#[test]
fn mechanisms_are_independent() {
    // Changing the texture or background class changes only that part: the mask depends on
    // (u, y_shape) alone.
    let (m, g) = (model(), golden());
    let u = &g["u"];
    let b = u.dim(0).unwrap();
    let ys = Tensor::new(vec![1u32; b].as_slice(), &Device::Cpu).unwrap();
    let y2 = Tensor::new(vec![2u32; b].as_slice(), &Device::Cpu).unwrap();
    let y7 = Tensor::new(vec![7u32; b].as_slice(), &Device::Cpu).unwrap();
    let base = m.forward_parts(u, &ys, &ys, &ys).unwrap();
    let cf = m.forward_parts(u, &ys, &y2, &y7).unwrap();
    assert_eq!(v(&cf.mask_raw), v(&base.mask_raw));
    assert!(max_diff(&cf.fg, &base.fg) > 1e-3 && max_diff(&cf.bg, &base.bg) > 1e-3);
    let only_fg = m.forward_parts(u, &y2, &y2, &y2).unwrap();
    assert_eq!(v(&cf.fg), v(&only_fg.fg), "fg depends only on (u, y_text)");
}

#[test]
fn counterfactual_forward_draws_fresh_noise_and_permutes_labels() {
    let m = model();
    let y: Vec<u32> = (0..10).collect();
    let (p, inputs) = m.counterfactual(&y, 42).unwrap();
    let (p2, _) = m.counterfactual(&y, 42).unwrap();
    assert_eq!(v(&p.x), v(&p2.x), "seeded");
    let (p3, _) = m.counterfactual(&y, 43).unwrap();
    assert_ne!(v(&p.x), v(&p3.x));
    let MechanismInputs { u_shape, u_text, u_bg, y_shape, y_text, y_bg } = &inputs;
    assert!(max_diff(u_shape, u_text) > 0.1 && max_diff(u_text, u_bg) > 0.1, "fresh u per mechanism");
    let sorted = |t: &Tensor| {
        let mut s = t.to_vec1::<u32>().unwrap();
        s.sort();
        s
    };
    assert_eq!(y_shape.to_vec1::<u32>().unwrap(), y);
    assert_eq!(sorted(y_text), y, "texture labels are a permutation of the batch's labels");
    assert_eq!(sorted(y_bg), y);
    assert_ne!(y_text.to_vec1::<u32>().unwrap(), y_bg.to_vec1::<u32>().unwrap());
    // Each part equals a plain forward with that mechanism's own noise and label.
    let shape_only = m.forward_parts(u_shape, y_shape, y_shape, y_shape).unwrap();
    assert_eq!(v(&p.mask), v(&shape_only.mask));
    let text_only = m.forward_parts(u_text, y_text, y_text, y_text).unwrap();
    assert_eq!(v(&p.fg), v(&text_only.fg));
    let bg_only = m.forward_parts(u_bg, y_bg, y_bg, y_bg).unwrap();
    assert_eq!(v(&p.bg), v(&bg_only.bg));
}

#[test]
fn checkpoint_has_the_authors_key_layout() {
    let map = intervene::checkpoint::load(&fixture("weights.safetensors")).unwrap();
    assert_eq!(map.len(), 57);
    let nbt: Vec<_> = map.iter().filter(|(k, _)| k.ends_with("num_batches_tracked")).collect();
    assert_eq!(nbt.len(), 8);
    assert!(nbt.iter().all(|(_, t)| t.dtype() == DType::I64 && t.rank() == 0));
    let params: usize = map
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked") && !k.contains("running_"))
        .map(|(_, t)| t.elem_count())
        .sum();
    assert_eq!(params, 659_992, "the authors' MNIST CGN has 659,992 parameters");
    assert!(cgn_mnist::is_cgn_mnist(&map));
}

#[test]
fn wrong_checkpoints_are_reported_by_key() {
    let mut map = intervene::checkpoint::load(&fixture("weights.safetensors")).unwrap();
    map.remove("f_text2.8.running_var");
    map.insert("extra.weight".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
    let err = cgn_mnist::from_tensors(map, Path::new("broken.pth"), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("broken.pth") && err.contains("f_text2.8.running_var"), "{err}");

    let mut map = intervene::checkpoint::load(&fixture("weights.safetensors")).unwrap();
    map.insert("f_shape.4.weight".into(), Tensor::zeros((32, 64, 5, 5), DType::F32, &Device::Cpu).unwrap());
    assert!(!cgn_mnist::is_cgn_mnist(&HashMap::new()));
    let err = cgn_mnist::from_tensors(map, Path::new("odd.pth"), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("f_shape.4.weight") && err.contains("[32, 64, 5, 5]"), "{err}");
}

/// Parity with the authors' released weights against the reference PyTorch goldens. Those
/// files are not part of the project; run with
/// `CGN_MNIST_AUTHORS=<dir with double_colored.pth, wildlife.pth> CGN_MNIST_GOLDEN=<dir with
/// golden_*.safetensors> cargo test --test cgn_mnist_parity -- --ignored`.
#[test]
#[ignore = "needs the authors' weights and goldens (CGN_MNIST_AUTHORS, CGN_MNIST_GOLDEN)"]
fn authors_weights_match_the_pytorch_goldens() {
    let dir = |k: &str| PathBuf::from(std::env::var_os(k).unwrap_or_else(|| panic!("set {k}")));
    let (wdir, gdir) = (dir("CGN_MNIST_AUTHORS"), dir("CGN_MNIST_GOLDEN"));
    for name in ["double_colored", "wildlife"] {
        let m = cgn_mnist::load(&wdir.join(format!("{name}.pth")), &Device::Cpu).unwrap();
        let g = candle_core::safetensors::load(gdir.join(format!("golden_{name}.safetensors")), &Device::Cpu).unwrap();
        let p = run(&m, &g);
        let s = p.shifted(&shifts(&g)).unwrap();
        for (k, t, tol) in [
            ("inp", &m.inp(&g["u"], &g["y"]).unwrap(), 1e-4),
            ("mask_raw", &p.mask_raw, 1e-4),
            ("mask", &p.mask, 5e-5),
            ("fg_pretanh", &p.fg_pretanh, 1e-4),
            ("bg_pretanh", &p.bg_pretanh, 1e-4),
            ("fg", &p.fg, 5e-5),
            ("bg", &p.bg, 5e-5),
            ("x", &p.x, 5e-5),
            ("shift.fg", &s.fg, 5e-5),
            ("shift.bg", &s.bg, 5e-5),
            ("shift.x", &s.x, 5e-5),
        ] {
            let e = max_diff(t, &g[k]);
            eprintln!("{name:15} {k:12} max abs error {e:.2e}");
            assert!(e < tol, "{name} {k}: {e}");
        }
    }
}
