//! One file, from an HTTP(S) server or a folder, into its final name — only once verified.
//!
//! 1. A file already under the final name that passes its check is kept.
//! 2. Bytes go to a hidden `.<name>.part` beside the target. Over HTTP an existing `.part` is
//!    continued with `Range: bytes=<len>-`; a `206` reply must start exactly there, a `200` (a
//!    server that ignores Range) restarts the file from zero, a `416` means the `.part` is
//!    already whole. A connection that drops mid-body is resumed the same way, a few times,
//!    before giving up (the `.part` stays for the next run).
//! 3. The `.part` must have the size the server announced, the pinned size and SHA-256 (where
//!    the catalogue has them) and the right kind of content; otherwise it is deleted and the
//!    fetch fails naming the difference.
//! 4. `fsync`, then `rename` over the final name (atomic on one file system), then `fsync` of
//!    the folder.
//!
//! The body is read on a helper thread that hands 256 KiB chunks over a bounded channel; the
//! job's thread waits at most 100 ms for each, checks for a cancel in between and gives up on a
//! server silent for [`STALL`]. So a cancel takes effect within a fraction of a second even
//! when the server sends nothing; the helper thread ends at its next chunk or when the socket
//! gives up.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};

use super::{Content, KnownFile, Pin, Source};
use crate::jobs::Control;

/// Attempts per file when the connection drops mid-body.
const ATTEMPTS: usize = 4;
/// A server that sends nothing for this long is given up on.
pub const STALL: Duration = Duration::from_secs(60);
const CHUNK: usize = 256 * 1024;

/// How the file came to be in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was there already and passed its check.
    AlreadyPresent,
    /// Downloaded from zero.
    Downloaded,
    /// Continued from a `.part` (or a dropped connection) at this many bytes.
    Resumed { from: u64 },
    /// Copied from a mirror folder.
    Copied,
}

/// A file in place and verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Downloaded {
    pub path: PathBuf,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// Whether it was checked against a pinned hash (else the hash is only reported).
    pub pinned: bool,
    pub outcome: Outcome,
    /// The server's `ETag`, when it sent one.
    pub etag: Option<String>,
    /// Where it came from.
    pub from: String,
}

impl Downloaded {
    /// One line for the log.
    pub fn describe(&self) -> String {
        let how = match self.outcome {
            Outcome::AlreadyPresent => "already present".to_string(),
            Outcome::Downloaded => format!("downloaded from {}", self.from),
            Outcome::Resumed { from } => format!("resumed at byte {from} from {}", self.from),
            Outcome::Copied => format!("copied from {}", self.from),
        };
        let check = if self.pinned { "matches the pinned SHA-256" } else { "unpinned: no hash to check against" };
        format!("{} ({} bytes, {how}); sha256 {} ({check})", self.path.display(), self.bytes, self.sha256)
    }
}

/// Bytes of earlier files of the same job, so progress counts over the whole model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    pub done: u64,
    pub total: u64,
}

impl Budget {
    fn show(&self, control: &Control, done: u64, total: u64) {
        control.set_total(self.total + total.max(done));
        control.set_done(self.done + done);
    }

    fn finish(&mut self, control: &Control, bytes: u64) {
        self.done += bytes;
        self.total += bytes;
        self.show(control, 0, 0);
    }
}

/// Puts `file` from `source` at `dest`, verified (see the module docs).
pub fn download(
    file: &KnownFile,
    source: &Source,
    dest: &Path,
    control: &Control,
    budget: &mut Budget,
) -> anyhow::Result<Downloaded> {
    let from = source.locate(file.remote);
    if dest.is_file() {
        match verify(dest, file, None, control) {
            Ok((bytes, sha256)) => {
                budget.finish(control, bytes);
                let pinned = matches!(file.pin, Pin::Pinned { .. });
                return Ok(Downloaded {
                    path: dest.into(),
                    bytes,
                    sha256,
                    pinned,
                    outcome: Outcome::AlreadyPresent,
                    etag: None,
                    from,
                });
            }
            Err(e) if crate::jobs::is_cancelled_error(&e) => return Err(e),
            Err(e) => control.log(format!("{} is not the release file ({e:#}); fetching it again", dest.display())),
        }
    }
    let part = part_path(dest)?;
    let (outcome, announced, etag) = match source {
        Source::Dir(dir) => {
            copy_to_part(&dir.join(file.remote), &part, control, budget)?;
            (Outcome::Copied, None, None)
        }
        Source::Url(base) => {
            let url = format!("{base}/{}", file.remote);
            let got = http_to_part(&url, &part, file.pin, control, budget)?;
            (got.outcome, got.total, got.etag)
        }
    };
    let (bytes, sha256) = match verify(&part, file, announced, control) {
        Ok(v) => v,
        Err(e) if crate::jobs::is_cancelled_error(&e) => return Err(e),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e.context(format!("{from} failed its check; nothing was kept")));
        }
    };
    commit(&part, dest)?;
    budget.finish(control, bytes);
    Ok(Downloaded {
        path: dest.into(),
        bytes,
        sha256,
        pinned: matches!(file.pin, Pin::Pinned { .. }),
        outcome,
        etag,
        from,
    })
}

/// `dir/.name.part` for `dir/name`.
pub fn part_path(dest: &Path) -> anyhow::Result<PathBuf> {
    let name = dest.file_name().context("target has no file name")?.to_string_lossy();
    Ok(dest.with_file_name(format!(".{name}.part")))
}

/// Checks a complete file: the size the server announced, the pin, the kind of content.
/// Returns its size and SHA-256.
fn verify(path: &Path, file: &KnownFile, announced: Option<u64>, control: &Control) -> anyhow::Result<(u64, String)> {
    let bytes = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if let Some(n) = announced.filter(|&n| n != bytes) {
        bail!("{} bytes arrived but the server announced {n}", bytes);
    }
    if let Pin::Pinned { size, .. } = file.pin {
        if bytes != size {
            bail!("{bytes} bytes, but the release file has {size}");
        }
    }
    check_content(path, file.content)?;
    let sha256 = sha256_file(path, control)?;
    if let Pin::Pinned { sha256: want, .. } = file.pin {
        if sha256 != want {
            bail!("SHA-256 {sha256}, but the release file's is {want}");
        }
    }
    Ok((bytes, sha256))
}

fn check_content(path: &Path, content: Content) -> anyhow::Result<()> {
    let mut head = Vec::new();
    File::open(path)?.take(1 << 20).read_to_end(&mut head)?;
    match content {
        Content::BigGanConfig => {
            serde_json::from_slice::<crate::models::biggan::BigGanConfig>(&head)
                .map_err(|e| anyhow::anyhow!("not a BigGAN config.json ({e})"))?;
        }
        Content::Weights => {
            if crate::checkpoint::detect(&head).is_none() {
                let text = head.iter().take(60).all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
                let hint = if text { " (it starts with text: an error page saved as the file?)" } else { "" };
                bail!("not a PyTorch or safetensors weights file{hint}");
            }
        }
    }
    Ok(())
}

/// SHA-256 of a file in lowercase hex, reading in 1 MiB blocks (cancellable between them).
pub fn sha256_file(path: &Path, control: &Control) -> anyhow::Result<String> {
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        control.check()?;
        let n = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `fsync` the `.part`, rename it over `dest`, `fsync` the folder.
fn commit(part: &Path, dest: &Path) -> anyhow::Result<()> {
    File::open(part).and_then(|f| f.sync_all()).with_context(|| format!("cannot flush {}", part.display()))?;
    std::fs::rename(part, dest).with_context(|| format!("cannot move {} into place", dest.display()))?;
    if let Some(dir) = dest.parent() {
        // Makes the rename itself durable; not every file system lets a folder be opened.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

fn open_part(part: &Path, append: bool) -> anyhow::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).write(true);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    o.open(part).with_context(|| {
        format!("cannot write {} (read-only folder or disk full? choose another with --to DIR)", part.display())
    })
}

fn write_chunk(f: &mut File, part: &Path, chunk: &[u8]) -> anyhow::Result<()> {
    f.write_all(chunk).with_context(|| format!("cannot write {} (disk full?)", part.display()))
}

/// A mirror folder: copy in chunks (progress, cancel), no resume needed.
fn copy_to_part(src: &Path, part: &Path, control: &Control, budget: &mut Budget) -> anyhow::Result<()> {
    let mut input = File::open(src).with_context(|| format!("cannot open {} in the mirror folder", src.display()))?;
    let total = input.metadata().map(|m| m.len()).unwrap_or(0);
    let mut out = open_part(part, false)?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        if let Err(c) = control.check() {
            drop(out);
            let _ = std::fs::remove_file(part);
            return Err(c.into());
        }
        let n = input.read(&mut buf).with_context(|| format!("cannot read {}", src.display()))?;
        if n == 0 {
            break;
        }
        if let Err(e) = write_chunk(&mut out, part, &buf[..n]) {
            drop(out);
            let _ = std::fs::remove_file(part);
            return Err(e);
        }
        done += n as u64;
        budget.show(control, done, total);
    }
    Ok(())
}

struct HttpResult {
    outcome: Outcome,
    total: Option<u64>,
    etag: Option<String>,
}

/// An agent for `url`: the proxy from the environment except for this machine's own addresses
/// (a proxy cannot reach them), timeouts for connecting and for the response head.
fn agent_for(url: &str) -> ureq::Agent {
    let authority = url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let local = host == "localhost" || host == "::1" || host.starts_with("127.");
    let proxy = if local { None } else { ureq::Proxy::try_from_env() };
    ureq::Agent::config_builder()
        .proxy(proxy)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(STALL))
        .user_agent(concat!("intervene/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Why a request could not be made, in words a user can act on.
fn request_error(url: &str, e: ureq::Error) -> anyhow::Error {
    let offline = matches!(e, ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_))
        || matches!(&e, ureq::Error::Io(io) if matches!(io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::NetworkUnreachable | std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::TimedOut)
            // A failed DNS lookup reaches us as an uncategorised I/O error from getaddrinfo.
            || io.to_string().contains("lookup address"));
    if offline {
        anyhow::anyhow!(
            "cannot reach {url} ({e}). No network here? Behind a proxy, set HTTPS_PROXY; on an offline machine, \
             copy the files to a folder or a local server and use --from DIR|URL or INTERVENE_MIRROR"
        )
    } else {
        anyhow::anyhow!("request to {url} failed: {e}")
    }
}

/// `Content-Range: bytes a-b/total` → (a, total); `bytes */total` → (None, total).
fn content_range(v: &str) -> Option<(Option<u64>, Option<u64>)> {
    let r = v.trim().strip_prefix("bytes")?.trim();
    let (span, total) = r.split_once('/')?;
    let total = total.trim().parse().ok();
    let start = if span.trim() == "*" { None } else { Some(span.split_once('-')?.0.trim().parse().ok()?) };
    Some((start, total))
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Streams `url` into `part`, resuming what is there.
fn http_to_part(
    url: &str,
    part: &Path,
    pin: Pin,
    control: &Control,
    budget: &mut Budget,
) -> anyhow::Result<HttpResult> {
    let agent = agent_for(url);
    let mut first_resume = None;
    let mut restarted_416 = false;
    for attempt in 1..=ATTEMPTS {
        control.check()?;
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut req = agent.get(url);
        if have > 0 {
            req = req.header("Range", &format!("bytes={have}-"));
        }
        let resp = req.call().map_err(|e| request_error(url, e))?;
        let status = resp.status().as_u16();
        let etag = header(&resp, "etag");
        let length: Option<u64> = header(&resp, "content-length").and_then(|v| v.trim().parse().ok());
        let (start, total) = match status {
            200 => (0, length),
            206 => {
                let (start, total) = header(&resp, "content-range")
                    .as_deref()
                    .and_then(content_range)
                    .with_context(|| format!("{url}: 206 reply without a usable Content-Range"))?;
                if start != Some(have) {
                    // Not what was asked: start over rather than splice the wrong bytes.
                    let _ = std::fs::remove_file(part);
                    continue;
                }
                (have, total.or(length.map(|l| l + have)))
            }
            416 => {
                let total = header(&resp, "content-range").as_deref().and_then(content_range).and_then(|c| c.1);
                if total == Some(have) {
                    budget.show(control, have, have);
                    return Ok(HttpResult { outcome: Outcome::Resumed { from: have }, total, etag });
                }
                if restarted_416 {
                    bail!("{url}: the server refuses every range (416)");
                }
                restarted_416 = true;
                let _ = std::fs::remove_file(part);
                continue;
            }
            404 => bail!("{url} was not found (HTTP 404): does this server or mirror hold the file under that name?"),
            s => bail!("{url}: the server answered HTTP {s}"),
        };
        if let (Pin::Pinned { size, .. }, Some(t)) = (pin, total) {
            if t != size {
                let _ = std::fs::remove_file(part);
                bail!("{url} has {t} bytes, but the release file has {size}: another file, or another version?");
            }
        }
        if start > 0 && first_resume.is_none() {
            first_resume = Some(start);
            control.log(format!("resuming {} at byte {start}", part.display()));
        }
        let mut out = open_part(part, start > 0)?;
        let mut done = start;
        budget.show(control, done, total.unwrap_or(0));
        let rx = spawn_reader(resp);
        let mut last = Instant::now();
        let dropped = loop {
            if let Err(c) = control.check() {
                let _ = out.flush();
                return Err(c.into());
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(chunk)) if chunk.is_empty() => break None,
                Ok(Ok(chunk)) => {
                    write_chunk(&mut out, part, &chunk)?;
                    done += chunk.len() as u64;
                    last = Instant::now();
                    budget.show(control, done, total.unwrap_or(0));
                }
                Ok(Err(e)) => break Some(e.to_string()),
                Err(mpsc::RecvTimeoutError::Timeout) if last.elapsed() >= STALL => {
                    break Some(format!("nothing received for {} s", STALL.as_secs()));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break Some("the reader stopped".into()),
            }
        };
        out.flush().with_context(|| format!("cannot write {}", part.display()))?;
        let short = total.is_some_and(|t| done < t);
        match dropped {
            None if !short => {
                let outcome = match first_resume {
                    Some(from) => Outcome::Resumed { from },
                    None => Outcome::Downloaded,
                };
                return Ok(HttpResult { outcome, total, etag });
            }
            why => {
                let why = why.unwrap_or_else(|| "the connection closed early".into());
                let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                if attempt == ATTEMPTS {
                    bail!(
                        "the download of {url} broke off at byte {done}{of} ({why}) {ATTEMPTS} times; \
                         {} keeps what arrived: run the same command again to resume",
                        part.display()
                    );
                }
                control.log(format!("connection dropped at byte {done}{of} ({why}); resuming"));
            }
        }
    }
    bail!("{url}: no usable reply after {ATTEMPTS} attempts")
}

/// Reads the body on a helper thread, chunk by chunk; an empty chunk marks the end.
fn spawn_reader(resp: ureq::http::Response<ureq::Body>) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::sync_channel(8);
    let spawned = std::thread::Builder::new().name("intervene-fetch-body".into()).spawn(move || {
        let mut reader = resp.into_body().into_reader();
        loop {
            let mut buf = vec![0u8; CHUNK];
            let msg = match reader.read(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    Ok(buf)
                }
                Err(e) => Err(e),
            };
            let end = !matches!(&msg, Ok(b) if !b.is_empty());
            if tx.send(msg).is_err() || end {
                break;
            }
        }
    });
    if let Err(e) = spawned {
        // No thread: report it as a read error so the caller stops cleanly.
        let (tx2, rx2) = mpsc::sync_channel(1);
        let _ = tx2.send(Err(std::io::Error::other(format!("cannot start the download thread: {e}"))));
        return rx2;
    }
    rx
}

/// Also files `file` (already in place) under the Python package's own cache name for `url`,
/// as a hard link (no second copy): `<cache>/<sha256(url)>.<sha256(etag)>` and the sidecar
/// `<that>.json` = `{"url": url, "etag": etag}` (pytorch_pretrained_biggan's
/// `file_utils.url_to_filename` / `get_from_cache`). The package asks the server for the ETag
/// and then opens that name, so it finds this copy instead of downloading again.
pub fn share_with_python_cache(cache: &Path, url: &str, etag: &str, file: &Path) -> anyhow::Result<PathBuf> {
    let name = format!("{}.{}", hex(&Sha256::digest(url.as_bytes())), hex(&Sha256::digest(etag.as_bytes())));
    let target = cache.join(&name);
    if !target.exists() {
        std::fs::hard_link(file, &target)
            .with_context(|| format!("cannot link {} to {}", file.display(), target.display()))?;
    }
    let meta = serde_json::json!({ "url": url, "etag": etag });
    crate::imageio::write_atomically(&cache.join(format!("{name}.json")), |tmp| {
        std::fs::write(tmp, meta.to_string()).map_err(anyhow::Error::from)
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses() {
        assert_eq!(content_range("bytes 100-199/1000"), Some((Some(100), Some(1000))));
        assert_eq!(content_range("bytes */1000"), Some((None, Some(1000))));
        assert_eq!(content_range("bytes 5-9/*"), Some((Some(5), None)));
        assert_eq!(content_range("items 1-2/3"), None);
    }

    #[test]
    fn python_cache_names_follow_url_to_filename() {
        // url_to_filename("https://a/b", '"x"') = sha256("https://a/b") + "." + sha256('"x"').
        let dir = std::env::temp_dir().join(format!("intervene-share-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("file.bin");
        std::fs::write(&f, b"weights").unwrap();
        let t = share_with_python_cache(&dir, "https://a/b", "\"x\"", &f).unwrap();
        let name = t.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(name.len(), 64 + 1 + 64);
        assert_eq!(&name[..64], hex(&Sha256::digest(b"https://a/b")));
        assert_eq!(std::fs::read(&t).unwrap(), b"weights");
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap()).unwrap();
        assert_eq!(meta["url"], "https://a/b");
        assert_eq!(meta["etag"], "\"x\"");
        std::fs::remove_dir_all(&dir).ok();
    }
}
