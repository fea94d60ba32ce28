//! `intervene export transfer` (GenInt's transfer step by AdaIN) through the binary: inputs are
//! checked before anything is written; with the real weights (in `$INTERVENE_DATA/weights`,
//! fetched by `tools/setup.sh`) the job keeps the content's tree, pairs styles from the seed,
//! equals the library's transfer, and has the export semantics (shards, SIGKILL + resume,
//! refusals). Without the weights those parts say so and pass without checking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_intervene"))
}

fn data_dir() -> PathBuf {
    std::env::var_os("INTERVENE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".data"))
}

fn have_weights() -> bool {
    let w = data_dir().join("weights");
    let ok = w.join("vgg_normalized.pth").is_file() && w.join("decoder.pth").is_file();
    if !ok {
        eprintln!(
            "SKIPPED (AdaIN weights): no vgg_normalized.pth / decoder.pth in {} (run `bash tools/setup.sh data`)",
            w.display()
        );
    }
    ok
}

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-transfer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn fixture(name: &str) -> image::RgbImage {
    image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adain").join(name)).unwrap().to_rgb8()
}

/// `n` content images in two class folders and `m` style images (variations of the fixtures).
fn inputs(name: &str, n: usize, m: usize) -> (PathBuf, PathBuf) {
    let (c, s) = (fresh(&format!("{name}-content")), fresh(&format!("{name}-style")));
    for i in 0..n {
        let base = fixture(if i % 2 == 0 { "content_0.png" } else { "content_1.png" });
        let img = image::imageops::rotate90(&image::imageops::crop_imm(&base, (i % 5) as u32, 0, 56, 48).to_image());
        let dir = c.join(if i % 3 == 0 { "cat" } else { "cup" });
        std::fs::create_dir_all(&dir).unwrap();
        img.save(dir.join(format!("img{i:03}.{}", if i % 4 == 0 { "jpg" } else { "png" }))).unwrap();
    }
    std::fs::create_dir_all(s.join("n02099601")).unwrap();
    for j in 0..m {
        let base = fixture(if j % 2 == 0 { "style_0.png" } else { "style_1.png" });
        image::imageops::crop_imm(&base, j as u32, j as u32, 40, 40)
            .to_image()
            .save(s.join(format!("n02099601/{j:08}.png")))
            .unwrap();
    }
    (c, s)
}

fn cmd(content: &Path, style: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["export", "transfer", "--content"]).arg(content).arg("--style").arg(style).arg("--out").arg(out);
    for (flag, value) in [("--size", "32"), ("--alpha", "0.8"), ("--seed", "5")] {
        if !extra.contains(&flag) {
            c.args([flag, value]);
        }
    }
    c.args(extra);
    c.env("INTERVENE_DATA", data_dir()).env_remove("SLURM_ARRAY_TASK_ID").env_remove("SLURM_ARRAY_TASK_COUNT");
    c
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with('.') {
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
fn inputs_without_readable_images_are_refused_before_anything_is_written() {
    let (content, style) = inputs("bad", 3, 2);
    let out = fresh("bad-out");
    let empty = fresh("empty");
    std::fs::create_dir_all(empty.join("sub")).unwrap();
    std::fs::write(empty.join("sub/readme.txt"), "no images here").unwrap();
    let o = cmd(&content, &empty, &out, &[]).output().unwrap();
    assert!(!o.status.success() && err(&o).contains("--style") && err(&o).contains("holds no image"), "{}", err(&o));
    let o = cmd(&empty, &style, &out, &[]).output().unwrap();
    assert!(
        !o.status.success() && err(&o).contains("--content") && err(&o).contains(&empty.display().to_string()),
        "{}",
        err(&o)
    );
    let broken = fresh("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("a.png"), b"not a png").unwrap();
    let o = cmd(&content, &broken, &out, &[]).output().unwrap();
    assert!(!o.status.success() && err(&o).contains("a.png"), "{}", err(&o));
    let o = cmd(&content, &style.join("missing"), &out, &[]).output().unwrap();
    assert!(!o.status.success() && err(&o).contains("is not a folder"), "{}", err(&o));
    assert!(!out.exists(), "nothing written");
    // Values checked while parsing.
    for (args, msg) in
        [(["--alpha", "1.5"], "[0, 1]"), (["--size", "30"], "multiple of 8"), (["--shard", "2/2"], "not a shard")]
    {
        let o = cmd(&content, &style, &out, &args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(err(&o).contains(msg), "{args:?}: {}", err(&o));
    }
}

#[test]
fn transferred_images_keep_the_content_tree_and_equal_the_library() {
    if !have_weights() {
        return;
    }
    let (content, style) = inputs("tree", 6, 5);
    let out = fresh("tree-out");
    let log = ok(cmd(&content, &style, &out, &[]).output().unwrap());
    assert!(log.contains("manifest.jsonl"), "{log}");
    let lines: Vec<intervene::jobs::transfer::ManifestLine> = std::fs::read_to_string(out.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let net = intervene::models::adain::Adain::open(&data_dir().join("weights")).unwrap();
    for l in &lines {
        // The label folder carries over; the file gets the output format's extension.
        assert_eq!(Path::new(&l.file).parent(), Path::new(&l.content).parent());
        assert!(l.file.ends_with(".png") && l.alpha == 0.8);
        let c = intervene::jobs::transfer::load_square(&content.join(&l.content), 32, "c").unwrap();
        let s = intervene::jobs::transfer::load_square(&style.join(&l.style), 32, "s").unwrap();
        let (x, d) = net.transfer(&c, &s, 0.8).unwrap();
        let want = intervene::models::adain::to_image(&x, d);
        let got = image::open(out.join(&l.file)).unwrap().to_rgb8();
        assert_eq!((got.width(), got.height()), (32, 32));
        assert_eq!(got.into_raw(), want.pixels, "{}", l.file);
    }
    // Another seed pairs differently; the same seed gives the same files.
    let again = fresh("tree-again");
    ok(cmd(&content, &style, &again, &[]).output().unwrap());
    assert_eq!(tree(&again), tree(&out));
    // Changed inputs are other settings: a resume refuses them.
    image::RgbImage::new(20, 20).save(content.join("cat/new.png")).unwrap();
    let o = cmd(&content, &style, &out, &["--resume"]).output().unwrap();
    assert!(!o.status.success() && err(&o).contains("different settings"), "{}", err(&o));
}

#[test]
fn shards_and_a_killed_run_give_exactly_the_single_run_set() {
    if !have_weights() {
        return;
    }
    let (content, style) = inputs("jobs", 40, 7);
    let (full, sharded, killed) = (fresh("jobs-full"), fresh("jobs-sharded"), fresh("jobs-killed"));
    ok(cmd(&content, &style, &full, &[]).output().unwrap());
    let t = tree(&full);
    assert_eq!(t.keys().filter(|k| k.ends_with(".png")).count(), 40);
    for s in ["1/3", "2/3", "0/3"] {
        ok(cmd(&content, &style, &sharded, &["--shard", s]).output().unwrap());
    }
    assert_eq!(tree(&sharded), t);
    let mut child = cmd(&content, &style, &killed, &[]).stderr(std::process::Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    let count = |d: &Path| tree(d).keys().filter(|k| k.ends_with(".png")).count();
    while count(&killed) < 6 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let partial = count(&killed);
    assert!((6..40).contains(&partial), "killed in the middle ({partial})");
    let o = cmd(&content, &style, &killed, &[]).output().unwrap();
    assert!(!o.status.success() && err(&o).contains("--resume"));
    ok(cmd(&content, &style, &killed, &["--resume"]).output().unwrap());
    assert_eq!(tree(&killed), t);
}
