//! `intervene export cgn` through the binary with the random-weight MNIST CGN fixture: the
//! job properties a cluster user relies on (shards, kill + resume, layouts, labels).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_intervene"))
}

fn model() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cgn-mnist-random/weights.safetensors").into()
}

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn export(out: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["export", "cgn", "--model", &model(), "--n", "600", "--cf-per-shape", "5", "--seed", "3", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
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

#[test]
fn shards_together_equal_the_single_machine_set() {
    let (full, sharded) = (fresh("full"), fresh("sharded"));
    let log = ok(export(&full, &[]));
    assert!(log.contains("images/s"), "{log}");
    let t = tree(&full);
    assert_eq!(t.keys().filter(|k| k.ends_with(".png")).count(), 600);
    ok(export(&sharded, &["--shard", "0/3"]));
    assert!(!sharded.join("labels.csv").exists(), "labels wait for the whole set");
    ok(export(&sharded, &["--shard", "2/3"]));
    ok(export(&sharded, &["--shard", "1/3"]));
    assert_eq!(tree(&sharded), t, "the union of the shards is byte-identical to the single run");
}

#[test]
fn a_killed_run_resumes_to_exactly_the_uninterrupted_set() {
    let (full, killed) = (fresh("ref"), fresh("killed"));
    ok(export(&full, &[]));
    let mut child = bin()
        .args(["export", "cgn", "--model", &model(), "--n", "600", "--cf-per-shape", "5", "--seed", "3", "--out"])
        .arg(&killed)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let n = std::fs::read_dir(killed.join("images")).map(|d| d.count()).unwrap_or(0);
        if n >= 100 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    let _ = child.wait();
    let partial = tree(&killed).keys().filter(|k| k.ends_with(".png")).count();
    assert!(partial < 600, "killed before the end ({partial} images)");
    // Without --resume the folder is protected.
    let o = export(&killed, &[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--resume"));
    let log = ok(export(&killed, &["--resume"]));
    assert!(log.contains("already complete"), "{log}");
    assert_eq!(tree(&killed), tree(&full), "resumed set equals the uninterrupted one");
}

#[test]
fn imagefolder_layout_and_labels_agree() {
    let out = fresh("folder");
    ok(export(&out, &["--layout", "imagefolder"]));
    let labels = intervene::jobs::cgn_export::read_labels(&out.join("labels.csv")).unwrap();
    assert_eq!(labels.len(), 600);
    let mut per_class = [0usize; 10];
    for (i, file, l) in &labels {
        assert_eq!(file, &format!("{}/{i:08}.png", l.shape), "ImageFolder: the folder is the label (shape class)");
        assert!(out.join(file).is_file());
        per_class[l.shape] += 1;
    }
    // One mask per shape draw: the 5 counterfactuals of a draw share the shape class.
    for chunk in labels.chunks(5) {
        assert!(chunk.iter().all(|(_, _, l)| l.shape == chunk[0].2.shape));
    }
    // Uniform class draws: every class appears (120 draws over 10 classes).
    assert!(per_class.iter().all(|&c| c > 0), "{per_class:?}");
    // A different layout is a different export: the folder refuses it.
    let o = export(&out, &["--resume"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("different settings"));
}

#[test]
fn bad_arguments_are_explained() {
    let out = fresh("bad");
    for (args, msg) in [(vec!["--shard", "3/3"], "not a shard"), (vec!["--layout", "tar"], "unknown layout")] {
        let o = export(&out, &args);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains(msg), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let o = bin().args(["export", "cgn", "--model", "/no/such.pth", "--n", "5", "--out"]).arg(&out).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("/no/such.pth"));
}
