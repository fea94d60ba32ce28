//! Classifier training end to end (`intervene::train`): a real MNIST run reaching a stated
//! accuracy, `--resume` continuing bit for bit (also across a GenInt mixed batch and with two
//! threads), the output folder opening as a classifier, and clear errors for bad input.

use std::path::{Path, PathBuf};

use candle_core::Device;
use intervene::jobs::Control;
use intervene::train::augment::Transform;
use intervene::train::nets::TrainArch;
use intervene::train::optim::OptimizerKind;
use intervene::train::schedule::Schedule;
use intervene::train::{train_classifier, Extra, Hooks, TrainSettings};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small synthetic image folder: class k is a square of colour k at a jittered position.
fn synthetic(dir: &Path, classes: usize, per_class: usize, seed: u64) {
    let mut rng = intervene::noise::Rng::new(seed);
    for k in 0..classes {
        let cd = dir.join(k.to_string());
        std::fs::create_dir_all(&cd).unwrap();
        for i in 0..per_class {
            let (ox, oy) = (rng.below(12) as u32, rng.below(12) as u32);
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let inside = x >= ox && x < ox + 14 && y >= oy && y < oy + 14;
                let noise = (rng.below(40)) as u8;
                if inside {
                    image::Rgb(
                        [[220, 30, 30], [30, 220, 30], [30, 30, 220], [220, 220, 30]][k % 4]
                            .map(|c: u8| c.saturating_add(noise)),
                    )
                } else {
                    image::Rgb([noise; 3])
                }
            });
            img.save(cd.join(format!("{i:04}.png"))).unwrap();
        }
    }
}

fn small_settings(data: &Path) -> TrainSettings {
    TrainSettings { epochs: 2, batch: 16, threads: 1, ..TrainSettings::recipe(TrainArch::MnistCnn, data.to_path_buf()) }
}

fn weights(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let map = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = map
        .into_iter()
        .map(|(k, t)| {
            let bytes = match t.dtype() {
                candle_core::DType::I64 => {
                    t.flatten_all().unwrap().to_vec1::<i64>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect()
                }
                _ => t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (k, bytes)
        })
        .collect();
    v.sort();
    v
}

fn step_lines(dir: &Path) -> Vec<serde_json::Value> {
    intervene::train::output::read_metrics(dir)
        .unwrap()
        .into_iter()
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

#[test]
fn resume_continues_bit_for_bit_and_threads_do_not_matter() {
    let root = tmp("resume");
    let (data, int, eval) = (root.join("data"), root.join("int"), root.join("eval"));
    synthetic(&data, 4, 20, 1);
    synthetic(&int, 4, 9, 2);
    synthetic(&eval, 4, 5, 3);
    let mut s = small_settings(&data);
    s.intervened = Some(Extra { dir: int, lambda: 0.3, batch: 4 });
    s.transform = Transform::Mnist { size: 32, flip: true };
    s.eval = vec![eval];
    // 80 images / 16 = 5 steps per epoch, 10 steps in all.
    let a = root.join("a");
    let sum = train_classifier(&s, &a, false, &Hooks::default(), &Control::new()).unwrap();
    assert!(sum.finished && sum.steps == 10);
    // Interrupted twice: mid-epoch (step 3), then across the epoch boundary (step 7).
    let b = root.join("b");
    for (resume, stop) in [(false, Some(3)), (true, Some(4)), (true, None)] {
        let hooks = Hooks { stop_after_steps: stop, ..Default::default() };
        let r = train_classifier(&s, &b, resume, &hooks, &Control::new()).unwrap();
        assert_eq!(r.finished, stop.is_none());
    }
    assert!(weights(&a) == weights(&b), "resumed weights differ from the uninterrupted run");
    assert_eq!(step_lines(&a), step_lines(&b), "metrics.jsonl differs");
    // The same run on two threads gives the same bits.
    let mut s2 = s.clone();
    s2.threads = 2;
    let c = root.join("c");
    train_classifier(&s2, &c, false, &Hooks::default(), &Control::new()).unwrap();
    assert!(weights(&a) == weights(&c), "two threads changed the weights");
    // A cancel checkpoints and reports the typed error; resume then finishes the same run.
    let d = root.join("d");
    let control = Control::new();
    control.cancel();
    let e = train_classifier(&s, &d, false, &Hooks::default(), &control).unwrap_err();
    assert!(intervene::jobs::is_cancelled_error(&e), "{e:#}");
    train_classifier(&s, &d, true, &Hooks::default(), &Control::new()).unwrap();
    assert!(weights(&a) == weights(&d));
    // Progress and curves went to the control.
    let control = Control::new();
    let e2 = root.join("e");
    train_classifier(&s, &e2, false, &Hooks::default(), &control).unwrap();
    let p = control.progress();
    assert_eq!((p.done, p.total), (10, 10));
    control.with_metrics(|m| {
        assert_eq!(m["loss"].len(), 10);
        assert_eq!(m["eval_acc/eval"].len(), 2);
    });
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn output_folder_opens_as_a_classifier_and_bad_arch_is_named() {
    let root = tmp("open");
    let data = root.join("data");
    synthetic(&data, 3, 6, 4);
    let mut s = small_settings(&data);
    s.epochs = 1;
    let out = root.join("out");
    train_classifier(&s, &out, false, &Hooks::default(), &Control::new()).unwrap();
    for f in ["config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["settings"]["seed"], 0);
    assert_eq!(cfg["num_classes"], 3);
    let o = intervene::models::classifier::open(out.to_str().unwrap(), None, &Device::Cpu).unwrap();
    assert_eq!((o.arch, o.num_classes), (intervene::models::classifier::Arch::MnistCnn, 3));
    let e = intervene::models::classifier::open(
        out.to_str().unwrap(),
        Some(intervene::models::classifier::Arch::ResNet18),
        &Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(format!("{e:#}").contains("model.safetensors"), "{e:#}");
    // Evaluating the folder through the library reports the classes by name.
    let m = intervene::train::EvalModel::open(out.to_str().unwrap(), None, &Device::Cpu).unwrap();
    let r = intervene::train::evaluate_folders(&m, std::slice::from_ref(&data), &Device::Cpu, &Control::new()).unwrap();
    assert_eq!(r[0].n, 18);
    assert_eq!(r[0].per_class.len(), 3);
    assert_eq!(r[0].confusion.iter().flatten().sum::<u64>(), 18);
    assert!(r[0].top5 == 1.0);
    let _ = std::fs::remove_dir_all(&root);
}

fn err(s: &TrainSettings, out: &Path, resume: bool) -> String {
    format!("{:#}", train_classifier(s, out, resume, &Hooks::default(), &Control::new()).unwrap_err())
}

#[test]
fn bad_input_gives_clear_errors() {
    let root = tmp("bad");
    let data = root.join("data");
    synthetic(&data, 3, 4, 5);
    let s = small_settings(&data);
    // Missing and empty folders.
    let e = err(&small_settings(&root.join("nope")), &root.join("o1"), false);
    assert!(e.contains("nope") && e.contains("not a folder"), "{e}");
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let e = err(&small_settings(&root.join("empty")), &root.join("o2"), false);
    assert!(e.contains("no class subfolders"), "{e}");
    let holes = root.join("holes");
    synthetic(&holes, 3, 2, 6);
    std::fs::create_dir_all(holes.join("7")).unwrap();
    let e = err(&small_settings(&holes), &root.join("o3"), false);
    assert!(e.contains("7") && e.contains("holds no images"), "{e}");
    // Class sets that disagree.
    let int = root.join("int");
    synthetic(&int, 2, 2, 7);
    let mut si = s.clone();
    si.intervened = Some(Extra { dir: int.clone(), lambda: 0.1, batch: 2 });
    let e = err(&si, &root.join("o4"), false);
    assert!(e.contains("--intervened") && e.contains("missing here: 2"), "{e}");
    let ev = root.join("ev");
    synthetic(&ev, 5, 1, 8);
    let mut se = s.clone();
    se.eval = vec![ev];
    let e = err(&se, &root.join("o5"), false);
    assert!(e.contains("--eval") && e.contains("not in the training data: 3, 4"), "{e}");
    // An unreadable image is named.
    let broken = root.join("broken");
    synthetic(&broken, 2, 2, 9);
    std::fs::write(broken.join("1/0001.png"), b"not a png").unwrap();
    let e = err(&small_settings(&broken), &root.join("o6"), false);
    assert!(e.contains("0001.png"), "{e}");
    // --out that is not a training folder; a second run without --resume.
    std::fs::create_dir_all(root.join("busy")).unwrap();
    std::fs::write(root.join("busy/file.txt"), b"x").unwrap();
    let e = err(&s, &root.join("busy"), false);
    assert!(e.contains("not empty"), "{e}");
    let out = root.join("run");
    let mut one = s.clone();
    one.epochs = 1;
    train_classifier(&one, &out, false, &Hooks::default(), &Control::new()).unwrap();
    let before = std::fs::read(out.join("model.safetensors")).unwrap();
    let e = err(&one, &out, false);
    assert!(e.contains("--resume"), "{e}");
    // Resuming with other settings names them; nothing written is touched.
    let mut other = one.clone();
    other.batch = 8;
    let e = err(&other, &out, true);
    assert!(e.contains("batch"), "{e}");
    let mut arch = one.clone();
    arch.arch = TrainArch::ResNet18;
    arch.transform = Transform::ImagenetEval { size: 32 };
    let e = err(&arch, &out, true);
    assert!(e.contains("arch"), "{e}");
    assert_eq!(before, std::fs::read(out.join("model.safetensors")).unwrap());
    // A diverging run stops with a clear error and keeps the last checkpoint.
    let mut nan = s.clone();
    nan.optimizer = OptimizerKind::Sgd { momentum: 0.0, weight_decay: 0.0 };
    nan.schedule = Schedule::Constant;
    nan.lr = 1e30;
    let e = err(&nan, &root.join("nan"), false);
    assert!(e.contains("loss became"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}

/// MNIST as PNG class folders (the first `n` images of a file).
fn mnist_folder(src: &intervene::data::mnist::Mnist, n: usize, dir: &Path) {
    for i in 0..n {
        let cd = dir.join(src.labels[i].to_string());
        std::fs::create_dir_all(&cd).unwrap();
        let img = image::GrayImage::from_raw(src.cols as u32, src.rows as u32, src.image(i).to_vec()).unwrap();
        image::DynamicImage::ImageLuma8(img).to_rgb8().save(cd.join(format!("{i:05}.png"))).unwrap();
    }
}

#[test]
fn mnist_cnn_learns_real_mnist() {
    use intervene::data::mnist::{self, MnistFile};
    let dir = intervene::data::data_dir().join("mnist");
    if !dir.is_dir() {
        eprintln!("SKIPPED mnist_cnn_learns_real_mnist: MNIST is missing at {} (run `bash tools/setup.sh data` or set INTERVENE_DATA)", dir.display());
        return;
    }
    let root = tmp("mnist");
    let (train, test) = (mnist::load(&dir, MnistFile::Train).unwrap(), mnist::load(&dir, MnistFile::Test).unwrap());
    mnist_folder(&train, 4000, &root.join("train"));
    mnist_folder(&test, 1000, &root.join("test"));
    // The CGN recipe (Adadelta lr 1.0, ×0.7 per epoch, batch 64), 3 epochs on 4,000 digits.
    let s = TrainSettings {
        epochs: 3,
        eval: vec![root.join("test")],
        ..TrainSettings::recipe(TrainArch::MnistCnn, root.join("train"))
    };
    let t = std::time::Instant::now();
    let sum = train_classifier(&s, &root.join("out"), false, &Hooks::default(), &Control::new()).unwrap();
    let acc = sum.last_epoch.as_ref().unwrap().eval[0].top1;
    eprintln!(
        "MNIST CNN, 4,000 training digits, 3 epochs ({} steps): test accuracy {:.2} % on 1,000 t10k digits, {:.1} s",
        sum.steps,
        100.0 * acc,
        t.elapsed().as_secs_f64()
    );
    // PyTorch on the same recipe and digits (tools/reference/mnist_recipe_ref.py) ends at 57.1 %
    // (seed 0) and 69.3 % (seed 1): Adadelta's first steps are small, so 189 steps are early in
    // training. Chance is 10 %; a broken gradient stays near it.
    assert!(acc >= 0.45, "accuracy {acc} (PyTorch on this recipe: 0.57–0.69)");
    let _ = std::fs::remove_dir_all(&root);
}
