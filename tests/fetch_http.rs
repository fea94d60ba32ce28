//! `intervene fetch` against a real HTTP server on 127.0.0.1 (tests/common/http_server.rs):
//! a complete download, a connection dropped mid-file and resumed (within one run and across
//! runs), a server that ignores Range, a wrong size, a wrong hash, a 404, slow and stalled
//! servers cancelled, a mirror folder, bad cache folders and a wrong file under the right
//! name. After each, the model folder holds the verified file or nothing under the final
//! names (a cancelled or broken-off download keeps only its hidden `.part` for the next run).
//!
//! The files served are the tiny BigGAN fixture's `config.json` and `pytorch_model.bin`
//! (3.8 MB), under the release's names.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::http_server::{Mode, Server};
use intervene::fetch::{self, download::part_path, Content, KnownFile, KnownModel, Outcome, Pin, Source};
use intervene::jobs::{is_cancelled_error, Control};

const NAME: &str = "biggan-deep-tiny";
const CONFIG: &str = "biggan-deep-tiny-config.json";
const WEIGHTS: &str = "biggan-deep-tiny-pytorch_model.bin";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/biggan-deep-tiny-128").join(name)).unwrap()
}

fn files() -> HashMap<String, Vec<u8>> {
    HashMap::from([(CONFIG.to_string(), fixture("config.json")), (WEIGHTS.to_string(), fixture("pytorch_model.bin"))])
}

fn sha256_hex(b: &[u8]) -> &'static str {
    use sha2::Digest;
    let s: String = sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect();
    Box::leak(s.into_boxed_str())
}

/// The tiny model as a catalogue entry; `weights_pin` for the 3.8 MB file.
fn model(weights_pin: Pin) -> &'static KnownModel {
    let files = vec![
        KnownFile { remote: CONFIG, local: "config.json", content: Content::BigGanConfig, pin: Pin::Unpinned },
        KnownFile { remote: WEIGHTS, local: "pytorch_model.bin", content: Content::Weights, pin: weights_pin },
    ];
    Box::leak(Box::new(KnownModel { name: NAME, what: "test", files: Box::leak(files.into_boxed_slice()) }))
}

fn right_pin() -> Pin {
    let w = fixture("pytorch_model.bin");
    Pin::Pinned { size: w.len() as u64, sha256: sha256_hex(&w) }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("intervene-fetch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn final_path(dir: &Path) -> PathBuf {
    dir.join(NAME).join("pytorch_model.bin")
}

/// The invariant after every run: the final name holds exactly the real file, or nothing.
fn final_is_verified_or_absent(dir: &Path) -> bool {
    let p = final_path(dir);
    !p.exists() || std::fs::read(&p).unwrap() == fixture("pytorch_model.bin")
}

/// Every file in the model folder (names), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(NAME))
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn fetch(m: &KnownModel, server: &Server, dir: &Path, control: &Control) -> anyhow::Result<fetch::Fetched> {
    fetch::fetch_model(m, &Source::Url(server.url("biggan")), dir, control)
}

#[test]
fn complete_download_lands_where_the_loader_looks() {
    let dir = tmp("complete");
    let server = Server::start("biggan", files(), Mode::Normal, Some("\"abc\""));
    let c = Control::new();
    let got = fetch(model(right_pin()), &server, &dir, &c).unwrap();
    assert_eq!(listing(&dir), ["config.json", "pytorch_model.bin"]);
    assert!(final_is_verified_or_absent(&dir) && final_path(&dir).exists());
    assert!(got.files.iter().all(|f| f.outcome == Outcome::Downloaded));
    assert!(got.files[1].pinned && !got.files[0].pinned);
    assert_eq!(got.files[1].sha256, sha256_hex(&fixture("pytorch_model.bin")));
    // Progress was counted in bytes over both files.
    let p = c.progress();
    let total = (fixture("config.json").len() + fixture("pytorch_model.bin").len()) as u64;
    assert_eq!((p.done, p.total), (total, total));
    // The loader opens the folder; --list reports it; a second run keeps what is there.
    let files = intervene::models::biggan::load::locate(dir.join(NAME).to_str().unwrap()).unwrap();
    intervene::models::biggan::load::open(&files, &candle_core::Device::Cpu).unwrap();
    let again = fetch(model(right_pin()), &server, &dir, &Control::new()).unwrap();
    assert!(again.files.iter().all(|f| f.outcome == Outcome::AlreadyPresent));
    let n_requests = server.log().len();
    assert_eq!(n_requests, 2, "nothing is downloaded again: {:?}", server.log());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn list_marks_models_on_disk() {
    let dir = tmp("list");
    let s = fetch::list(&dir);
    assert_eq!(s.len(), 3);
    assert!(s.iter().all(|s| s.path.is_none()));
    let folder = dir.join("biggan-deep-256");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("config.json"), b"{}").unwrap();
    assert!(fetch::list(&dir)[1].path.is_none(), "one file of two is not on disk");
    std::fs::write(folder.join("pytorch_model.bin"), b"x").unwrap();
    assert_eq!(fetch::list(&dir)[1].path.as_deref(), Some(folder.as_path()));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn dropped_connection_resumes_with_range_in_the_same_run() {
    let dir = tmp("drop-once");
    let server = Server::start("biggan", files(), Mode::DropAfter { after: 1 << 20, times: 1 }, None);
    let c = Control::new();
    let m = model(right_pin());
    // The config is shorter than the drop point, so the one drop hits the weights at 1 MiB.
    let got = fetch(m, &server, &dir, &c).unwrap();
    assert!(final_is_verified_or_absent(&dir) && final_path(&dir).exists());
    assert_eq!(got.files[1].outcome, Outcome::Resumed { from: 1 << 20 });
    let log = server.log();
    assert!(log.iter().any(|l| l.contains(WEIGHTS) && l.contains("[Range: bytes=1048576-]")), "{log:?}");
    assert_eq!(listing(&dir), ["config.json", "pytorch_model.bin"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn broken_off_download_is_resumed_by_the_next_run() {
    let dir = tmp("drop-always");
    let bad = Server::start("biggan", files(), Mode::DropAfter { after: 300_000, times: 1000 }, None);
    let m = model(right_pin());
    let err = format!("{:#}", fetch(m, &bad, &dir, &Control::new()).unwrap_err());
    assert!(err.contains("broke off") && err.contains("run the same command again"), "{err}");
    assert!(!final_path(&dir).exists(), "nothing under the final name");
    let part = part_path(&final_path(&dir)).unwrap();
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0, "the .part keeps what arrived");
    // The config (under the drop point) was complete and is in place.
    assert_eq!(listing(&dir), [".pytorch_model.bin.part", "config.json"]);
    let good = Server::start("biggan", files(), Mode::Normal, None);
    let got = fetch(m, &good, &dir, &Control::new()).unwrap();
    assert_eq!(got.files[1].outcome, Outcome::Resumed { from: kept });
    assert!(good.log().iter().any(|l| l.contains(&format!("[Range: bytes={kept}-]"))), "{:?}", good.log());
    assert!(final_is_verified_or_absent(&dir) && final_path(&dir).exists());
    assert_eq!(listing(&dir), ["config.json", "pytorch_model.bin"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn server_that_ignores_range_restarts_the_file() {
    let dir = tmp("ignore-range");
    let w = fixture("pytorch_model.bin");
    let folder = dir.join(NAME);
    std::fs::create_dir_all(&folder).unwrap();
    // A .part from an earlier run: the first half of the real file.
    std::fs::write(part_path(&final_path(&dir)).unwrap(), &w[..w.len() / 2]).unwrap();
    let server = Server::start("biggan", files(), Mode::IgnoreRange, None);
    let got = fetch(model(right_pin()), &server, &dir, &Control::new()).unwrap();
    assert_eq!(got.files[1].outcome, Outcome::Downloaded, "a 200 reply restarts from zero");
    assert!(server.log().iter().any(|l| l.contains("[Range: bytes=")), "{:?}", server.log());
    assert_eq!(std::fs::read(final_path(&dir)).unwrap(), w, "not appended to the old half");
    assert_eq!(listing(&dir), ["config.json", "pytorch_model.bin"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_size_is_refused_and_nothing_kept() {
    let dir = tmp("wrong-size");
    let server = Server::start("biggan", files(), Mode::Normal, None);
    let w = fixture("pytorch_model.bin");
    let pin = Pin::Pinned { size: w.len() as u64 + 1, sha256: sha256_hex(&w) };
    let err = format!("{:#}", fetch(model(pin), &server, &dir, &Control::new()).unwrap_err());
    assert!(err.contains(&format!("has {} bytes, but the release file has {}", w.len(), w.len() + 1)), "{err}");
    assert_eq!(listing(&dir), ["config.json"], "no weights, no .part");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_hash_is_refused_and_nothing_kept() {
    let dir = tmp("wrong-hash");
    let server = Server::start("biggan", files(), Mode::Normal, None);
    let w = fixture("pytorch_model.bin");
    let pin = Pin::Pinned {
        size: w.len() as u64,
        sha256: "00000000000000000000000000000000000000000000000000000000deadbeef",
    };
    let err = format!("{:#}", fetch(model(pin), &server, &dir, &Control::new()).unwrap_err());
    assert!(err.contains("SHA-256") && err.contains("deadbeef") && err.contains("nothing was kept"), "{err}");
    assert_eq!(listing(&dir), ["config.json"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn not_found_is_a_clear_error() {
    let dir = tmp("404");
    let mut only_config = files();
    only_config.remove(WEIGHTS);
    let server = Server::start("biggan", only_config, Mode::Normal, None);
    let err = format!("{:#}", fetch(model(Pin::Unpinned), &server, &dir, &Control::new()).unwrap_err());
    assert!(err.contains("404") && err.contains(WEIGHTS), "{err}");
    assert_eq!(listing(&dir), ["config.json"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// Cancels after `after` and returns how long the fetch took to stop once cancelled.
fn cancel_during(mode: Mode, name: &str) -> (anyhow::Error, Duration, PathBuf) {
    let dir = tmp(name);
    let server = Server::start("biggan", files(), mode, None);
    let c = Control::new();
    let c2 = c.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        c2.cancel();
        Instant::now()
    });
    let err = fetch(model(right_pin()), &server, &dir, &c).unwrap_err();
    let stopped = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    (err, stopped.saturating_duration_since(cancelled_at), dir)
}

#[test]
fn slow_server_is_cancelled_within_a_second() {
    let (err, took, dir) = cancel_during(Mode::Slow { chunk: 16 * 1024, every: Duration::from_millis(50) }, "slow");
    assert!(is_cancelled_error(&err), "{err:#}");
    assert!(took < Duration::from_secs(1), "stopped {took:?} after the cancel");
    assert!(final_is_verified_or_absent(&dir) && !final_path(&dir).exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stalled_server_is_cancelled_within_a_second() {
    let (err, took, dir) = cancel_during(Mode::Stall, "stall");
    assert!(is_cancelled_error(&err), "{err:#}");
    assert!(took < Duration::from_secs(1), "stopped {took:?} after the cancel");
    assert!(!final_path(&dir).exists() && !dir.join(NAME).join("config.json").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unreachable_server_says_so() {
    let dir = tmp("offline");
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let src = Source::Url(format!("http://127.0.0.1:{port}/biggan"));
    let err = format!("{:#}", fetch::fetch_model(model(Pin::Unpinned), &src, &dir, &Control::new()).unwrap_err());
    assert!(err.contains("cannot reach") && err.contains("INTERVENE_MIRROR"), "{err}");
    assert!(listing(&dir).is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mirror_folder_is_copied_and_checked() {
    let dir = tmp("mirror-dir");
    let mirror = tmp("mirror-src");
    for (n, b) in files() {
        std::fs::write(mirror.join(n), b).unwrap();
    }
    let got = fetch::fetch_model(model(right_pin()), &Source::Dir(mirror.clone()), &dir, &Control::new()).unwrap();
    assert!(got.files.iter().all(|f| f.outcome == Outcome::Copied));
    assert!(final_is_verified_or_absent(&dir) && final_path(&dir).exists());
    // A mirror holding an error page under the weights' name: refused, nothing kept.
    let dir2 = tmp("mirror-bad");
    std::fs::write(mirror.join(WEIGHTS), b"<html><body>403 Forbidden</body></html>\n").unwrap();
    let err = format!(
        "{:#}",
        fetch::fetch_model(model(Pin::Unpinned), &Source::Dir(mirror.clone()), &dir2, &Control::new()).unwrap_err()
    );
    assert!(err.contains("not a PyTorch or safetensors weights file") && err.contains("error page"), "{err}");
    assert_eq!(listing(&dir2), ["config.json"]);
    for d in [dir, dir2, mirror] {
        std::fs::remove_dir_all(&d).ok();
    }
}

#[test]
fn wrong_file_under_the_right_name_is_replaced() {
    let dir = tmp("wrong-content");
    std::fs::create_dir_all(dir.join(NAME)).unwrap();
    std::fs::write(final_path(&dir), b"PK\x03\x04 not really a checkpoint").unwrap();
    std::fs::write(dir.join(NAME).join("config.json"), b"{\"not\": \"a config\"}").unwrap();
    let server = Server::start("biggan", files(), Mode::Normal, None);
    let c = Control::new();
    let got = fetch(model(right_pin()), &server, &dir, &c).unwrap();
    assert!(got.files.iter().all(|f| f.outcome == Outcome::Downloaded));
    assert!(c.log_lines().iter().any(|l| l.contains("is not the release file")), "{:?}", c.log_lines());
    assert!(final_is_verified_or_absent(&dir) && final_path(&dir).exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unwritable_cache_folder_is_a_clear_error() {
    let base = tmp("unwritable");
    // A regular file where the folder should be: not creatable even for root (tests may run
    // as root, for whom a read-only mode bit is no obstacle).
    let blocker = base.join("cache");
    std::fs::write(&blocker, b"a file").unwrap();
    let server = Server::start("biggan", files(), Mode::Normal, None);
    let err = format!("{:#}", fetch(model(Pin::Unpinned), &server, &blocker, &Control::new()).unwrap_err());
    assert!(err.contains("cannot create") && err.contains("--to"), "{err}");
    assert!(server.log().is_empty(), "nothing was requested");
    #[cfg(unix)]
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let ro = base.join("ro");
        std::fs::create_dir_all(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let err = format!("{:#}", fetch(model(Pin::Unpinned), &server, &ro, &Control::new()).unwrap_err());
        assert!(err.contains("cannot create"), "{err}");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::remove_dir_all(&base).ok();
}
