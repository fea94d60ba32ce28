//! `intervene export genint` through the binary with the bundled 32×32 random-weight BigGAN-deep:
//! shards and Slurm tasks give the single-machine set, a SIGKILLed run resumes to exactly the
//! uninterrupted set (both layouts), the manifest regenerates images bit for bit, WebDataset
//! shards read back with the same images and labels, and bad input is refused clearly without
//! touching what is already written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use intervene::jobs::genint_export::ManifestLine;
use intervene::jobs::image_sink::read_shard;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_intervene"))
}

fn model() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/models/biggan-deep-tiny-32").into()
}

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-genint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// 16 GANSpace components of the tiny model, computed once per test process.
fn components() -> &'static Path {
    static C: OnceLock<PathBuf> = OnceLock::new();
    C.get_or_init(|| {
        let p = fresh("components").with_extension("npz");
        ok(bin()
            .args(["pca", "--model", &model(), "--class", "207", "--samples", "600", "--components", "16", "--out"])
            .arg(&p)
            .output()
            .unwrap());
        p
    })
}

/// The export command with the test's settings (`--per-class N`), `extra` appended.
/// The test's settings; a flag in `extra` replaces the default one.
fn cmd(out: &Path, per_class: usize, extra: &[&str]) -> Command {
    let per_class = per_class.to_string();
    let comps = components().display().to_string();
    let base = [
        ("--model", model()),
        ("--components", comps),
        ("--classes", "0,207,3,999".into()),
        ("--per-class", per_class),
        ("--topk", "16".into()),
        ("--scale", "80%".into()),
        ("--seed", "3".into()),
        ("--batch", "4".into()),
    ];
    let mut c = bin();
    c.args(["export", "genint", "--out"]).arg(out);
    for (flag, value) in base {
        if !extra.contains(&flag) {
            c.args([flag, value.as_str()]);
        }
    }
    c.args(extra).env_remove("SLURM_ARRAY_TASK_ID").env_remove("SLURM_ARRAY_TASK_COUNT");
    c
}

fn export(out: &Path, per_class: usize, extra: &[&str]) -> Output {
    cmd(out, per_class, extra).output().unwrap()
}

/// Every visible file under `dir` (relative path → bytes); temporary files start with '.'.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn manifest(dir: &Path) -> Vec<ManifestLine> {
    std::fs::read_to_string(dir.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn pixels(bytes: &[u8]) -> Vec<u8> {
    image::load_from_memory(bytes).unwrap().to_rgb8().into_raw()
}

#[test]
fn the_set_has_genint_interventions_in_an_imagefolder_tree() {
    let out = fresh("tree");
    let log = ok(export(&out, 6, &[]));
    assert!(log.contains("images/s") && log.contains("manifest.jsonl"), "{log}");
    let m = manifest(&out);
    assert_eq!(m.len(), 24);
    let t = tree(&out);
    assert_eq!(t.keys().filter(|k| k.ends_with(".png")).count(), 24);
    for (i, l) in m.iter().enumerate() {
        assert_eq!(l.index, i);
        assert_eq!(l.class, [0, 207, 3, 999][i / 6]);
        // ImageNet model: the class folder is its WordNet id.
        let wnid = l.wnid.clone().unwrap();
        assert_eq!(l.file, format!("{wnid}/{i:08}.png"));
        assert!(t.contains_key(&l.file));
        // 5 distinct components among the top 16, offsets within 80 % of GenInt's ranges.
        let mut c = l.components.clone();
        c.sort();
        c.dedup();
        assert_eq!((c.len(), l.offsets.len()), (5, 5), "{l:?}");
        for (&c, &o) in l.components.iter().zip(&l.offsets) {
            let (lo, hi) = intervene::steer::edit::genint_range(c).unwrap();
            assert!(c < 16 && o >= 0.8 * lo - 1e-4 && o <= 0.8 * hi + 1e-4, "{l:?}");
        }
        assert_eq!(l.truncation, 1.0);
    }
    assert_eq!(m[6].wnid.as_deref(), Some("n02099601"), "class 207 is golden retriever");
    // Seeds differ per item; the same settings give the same set.
    let mut seeds: Vec<u64> = m.iter().map(|l| l.seed).collect();
    seeds.sort();
    seeds.dedup();
    assert_eq!(seeds.len(), 24);
    let again = fresh("tree-again");
    ok(export(&again, 6, &[]));
    assert_eq!(tree(&again), t);
    // The observational baseline: plain samples, no components.
    let obs = fresh("observational");
    ok(bin()
        .args(["export", "genint", "--model", &model(), "--classes", "1,2", "--per-class", "3"])
        .args(["--observational", "--truncation", "0.2", "--format", "jpg", "--out"])
        .arg(&obs)
        .output()
        .unwrap());
    let m = manifest(&obs);
    assert!(m.iter().all(|l| l.components.is_empty() && l.truncation == 0.2 && l.file.ends_with(".jpg")));
    assert_eq!(tree(&obs).keys().filter(|k| k.ends_with(".jpg")).count(), 6);
}

#[test]
fn shards_and_slurm_tasks_together_equal_the_single_machine_set() {
    let (full, sharded) = (fresh("full"), fresh("sharded"));
    ok(export(&full, 9, &[]));
    let t = tree(&full);
    ok(export(&sharded, 9, &["--shard", "2/3"]));
    assert!(!sharded.join("manifest.jsonl").exists(), "the manifest waits for the whole set");
    // A Slurm array task finds its shard in the environment.
    ok(cmd(&sharded, 9, &[]).env("SLURM_ARRAY_TASK_ID", "0").env("SLURM_ARRAY_TASK_COUNT", "3").output().unwrap());
    ok(export(&sharded, 9, &["--shard", "1/3"]));
    assert_eq!(tree(&sharded), t, "the union of the shards is byte-identical to the single run");
    // The same for WebDataset shards.
    let (wfull, wsharded) = (fresh("wds-full"), fresh("wds-sharded"));
    ok(export(&wfull, 9, &["--layout", "webdataset", "--samples-per-tar", "8"]));
    for s in ["1/2", "0/2"] {
        ok(export(&wsharded, 9, &["--layout", "webdataset", "--samples-per-tar", "8", "--shard", s]));
    }
    assert_eq!(tree(&wsharded), tree(&wfull));
}

/// Starts an export, SIGKILLs it once `progress(dir)` reaches `at`, resumes, and compares.
fn kill_and_resume(name: &str, per_class: usize, extra: &[&str], at: usize, progress: fn(&Path) -> usize) {
    let (full, killed) = (fresh(&format!("{name}-ref")), fresh(&format!("{name}-killed")));
    ok(export(&full, per_class, extra));
    let total = progress(&full);
    let mut child = cmd(&killed, per_class, extra).stderr(std::process::Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while progress(&killed) < at && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    let _ = child.wait();
    let partial = progress(&killed);
    assert!(partial >= at && partial < total, "killed in the middle ({partial} of {total})");
    // Every visible file is complete: images decode, shards read.
    for (k, v) in tree(&killed) {
        if k.ends_with(".png") {
            pixels(&v);
        } else if k.ends_with(".tar") {
            read_shard(&killed.join(&k)).unwrap();
        }
    }
    // Without --resume the folder is protected.
    let o = export(&killed, per_class, extra);
    assert!(!o.status.success() && err(&o).contains("--resume"), "{}", err(&o));
    let log = ok(export(&killed, per_class, &[extra, &["--resume"]].concat()));
    assert!(log.contains("already complete"), "{log}");
    assert_eq!(tree(&killed), tree(&full), "resumed set equals the uninterrupted one");
}

fn count_images(d: &Path) -> usize {
    if !d.exists() {
        return 0;
    }
    tree(d).keys().filter(|k| k.ends_with(".png")).count()
}

fn count_tars(d: &Path) -> usize {
    std::fs::read_dir(d)
        .map_or(0, |r| r.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tar")).count())
}

#[test]
fn a_killed_imagefolder_run_resumes_to_exactly_the_uninterrupted_set() {
    kill_and_resume("kill-folder", 400, &[], 300, count_images);
}

#[test]
fn a_killed_webdataset_run_resumes_to_exactly_the_uninterrupted_set() {
    kill_and_resume("kill-wds", 400, &["--layout", "webdataset", "--samples-per-tar", "100"], 3, count_tars);
}

#[test]
fn the_manifest_regenerates_images_bit_for_bit() {
    let out = fresh("replay");
    ok(export(&out, 7, &[])); // 28 images in batches of 4 per unit
    let m = manifest(&out);
    for i in [0, 5, 13, 27] {
        let img = fresh(&format!("replay-{i}")).with_extension("png");
        let log = ok(bin()
            .args(["export", "genint", "--replay"])
            .arg(out.join("manifest.jsonl"))
            .args(["--index", &i.to_string(), "--out"])
            .arg(&img)
            .output()
            .unwrap());
        assert!(log.contains("wrote"), "{log}");
        assert_eq!(std::fs::read(&img).unwrap(), std::fs::read(out.join(&m[i].file)).unwrap(), "image {i}");
    }
    let o = bin()
        .args(["export", "genint", "--replay"])
        .arg(out.join("manifest.jsonl"))
        .args(["--index", "28", "--out", "x.png"])
        .output()
        .unwrap();
    assert!(!o.status.success() && err(&o).contains("--index 28"), "{}", err(&o));

    // With --batch 1 every image is also exactly `intervene steer` of its manifest line.
    let single = fresh("replay-b1");
    ok(export(&single, 2, &["--batch", "1"]));
    for l in manifest(&single).iter().take(3) {
        let img = fresh(&format!("steer-{}", l.index)).with_extension("png");
        let mut c = bin();
        c.args(["steer", "--model", &model(), "--components"]).arg(components());
        c.args([
            "--seed",
            &l.seed.to_string(),
            "--class",
            &l.class.to_string(),
            "--truncation",
            "1",
            "--mode",
            "centred",
        ]);
        for (comp, off) in l.components.iter().zip(&l.offsets) {
            c.arg("--edit").arg(format!("{comp}:0:7:{off}")); // 7 latent slots in the 32×32 model
        }
        ok(c.arg("--out").arg(&img).output().unwrap());
        let want = pixels(&std::fs::read(single.join(&l.file)).unwrap());
        assert_eq!(pixels(&std::fs::read(&img).unwrap()), want, "steer reproduces image {}", l.index);
    }
}

#[test]
fn webdataset_shards_hold_the_same_images_and_labels() {
    let (wds, folder) = (fresh("wds"), fresh("wds-folder"));
    ok(export(&wds, 10, &["--layout", "webdataset", "--samples-per-tar", "12"]));
    ok(export(&folder, 10, &[]));
    let (m, mf) = (manifest(&wds), manifest(&folder));
    let mut tars: Vec<PathBuf> = std::fs::read_dir(&wds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    tars.sort();
    assert_eq!(tars.len(), 4, "40 samples in shards of 12");
    let mut index = 0;
    for (s, tar) in tars.iter().enumerate() {
        let samples = read_shard(tar).unwrap();
        assert_eq!(samples.len(), if s < 3 { 12 } else { 4 });
        for smp in samples {
            let line = &m[index];
            assert_eq!(smp.key, format!("{index:08}"));
            assert_eq!(line.key.as_deref(), Some(smp.key.as_str()));
            assert_eq!(line.file, tar.file_name().unwrap().to_string_lossy());
            let names: Vec<&str> = smp.members.iter().map(|(e, _)| e.as_str()).collect();
            assert_eq!(names, ["png", "cls", "json"]);
            assert_eq!(String::from_utf8(smp.members[1].1.clone()).unwrap(), line.class.to_string());
            let meta: ManifestLine = serde_json::from_slice(&smp.members[2].1).unwrap();
            assert_eq!(&meta, line);
            // Same draws and same pixels as the ImageFolder export of the same settings.
            let f = &mf[index];
            assert_eq!(
                (f.class, f.seed, &f.components, &f.offsets),
                (line.class, line.seed, &line.components, &line.offsets)
            );
            assert_eq!(
                pixels(&smp.members[0].1),
                pixels(&std::fs::read(folder.join(&f.file)).unwrap()),
                "sample {index}"
            );
            index += 1;
        }
    }
    assert_eq!(index, 40);
}

#[test]
fn folders_are_protected() {
    let out = fresh("protect");
    ok(export(&out, 2, &[]));
    let before = tree(&out);
    let o = export(&out, 2, &[]);
    assert!(!o.status.success() && err(&o).contains("--resume"), "{}", err(&o));
    let o = export(&out, 2, &["--resume", "--topk", "10"]);
    assert!(!o.status.success() && err(&o).contains("different settings"), "{}", err(&o));
    let stray = fresh("stray");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("notes.txt"), "mine").unwrap();
    let o = export(&stray, 2, &[]);
    assert!(!o.status.success() && err(&o).contains("not empty"), "{}", err(&o));
    assert_eq!(std::fs::read(stray.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(tree(&out), before, "refused runs change nothing");
}

#[test]
fn bad_input_is_explained() {
    let out = fresh("bad");
    // Values checked while parsing: exit status 2.
    for (args, msg) in [
        (vec!["--truncation", "1.5"], "truncation"),
        (vec!["--per-class", "0"], "positive"),
        (vec!["--layout", "tar"], "unknown layout"),
        (vec!["--format", "gif"], "unknown image format"),
        (vec!["--scale", "0"], "scale"),
        (vec!["--shard", "3/3"], "not a shard"),
    ] {
        let o = cmd(&out, 2, &args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(err(&o).contains(msg), "{args:?}: {}", err(&o));
    }
    // Components of another latent size.
    let other = fresh("z32").with_extension("npz");
    let zd = 32;
    let comps = intervene::steer::Components {
        act_shape: vec![1, 1],
        act_comp: vec![1.0; 8],
        act_mean: vec![0.0],
        act_stdev: vec![1.0; 8],
        lat_comp: (0..8 * zd).map(|i| if i % (zd + 1) == 0 { 1.0 } else { 0.0 }).collect(),
        lat_mean: vec![0.0; zd],
        lat_stdev: vec![1.0; 8],
        var_ratio: vec![0.1; 8],
        random_stdevs: vec![1.0; 8],
        source: "test".into(),
    };
    comps.save(&other).unwrap();
    let o = bin()
        .args(["export", "genint", "--model", &model(), "--components"])
        .arg(&other)
        .args(["--classes", "1", "--per-class", "2", "--topk", "8", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains(&other.display().to_string()) && err(&o).contains("z_dim 64"), "{}", err(&o));
    // --topk beyond the file's components.
    let o = export(&out, 2, &["--topk", "40"]);
    assert!(!o.status.success(), "topk");
    let e = err(&o);
    assert!(e.contains("--topk 40") && e.contains(&components().display().to_string()) && e.contains("(16)"), "{e}");
    // Classes outside the model.
    for (list, msg) in [("1,1000", "1000"), ("7,not a class", "not a class")] {
        let o = bin()
            .args([
                "export",
                "genint",
                "--model",
                &model(),
                "--observational",
                "--classes",
                list,
                "--per-class",
                "1",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(!o.status.success() && err(&o).contains("--classes") && err(&o).contains(msg), "{}", err(&o));
    }
    assert!(!out.exists(), "nothing was written for refused settings");
    // An output folder that cannot be created (a file is in the way).
    let blocker = fresh("blocker");
    std::fs::write(&blocker, b"keep").unwrap();
    let o = export(&blocker.join("sub"), 2, &[]);
    assert!(!o.status.success() && err(&o).contains(&blocker.display().to_string()), "{}", err(&o));
    assert_eq!(std::fs::read(&blocker).unwrap(), b"keep");
}

/// A disk that fills up mid-export (simulated with RLIMIT_FSIZE: a write past the limit fails
/// with EFBIG, as one on a full disk fails with ENOSPC): the error names the file, no partial or
/// temporary file is left, and a later --resume completes the exact set.
#[test]
fn a_failing_write_leaves_complete_files_only_and_resume_finishes() {
    use std::os::unix::process::CommandExt as _;
    let extra = ["--layout", "webdataset", "--samples-per-tar", "8"];
    let (full, cut) = (fresh("fsize-ref"), fresh("fsize"));
    ok(export(&full, 10, &extra));
    let shard_bytes = std::fs::metadata(full.join("genint-000000.tar")).unwrap().len();
    let mut c = cmd(&cut, 10, &extra);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: shard_bytes / 2, rlim_max: libc::RLIM_INFINITY };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("genint-000000.tar"), "{}", err(&o));
    let hidden: Vec<_> = std::fs::read_dir(&cut)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "temporary files left: {hidden:?}");
    assert!(tree(&cut).keys().all(|k| k == "manifest.json"), "no partial shard: {:?}", tree(&cut).keys());
    ok(export(&cut, 10, &[&extra[..], &["--resume"]].concat()));
    assert_eq!(tree(&cut), tree(&full));
}
