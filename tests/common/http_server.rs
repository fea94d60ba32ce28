//! A small HTTP/1.1 file server on 127.0.0.1 for the `fetch` tests, on std's TcpListener, with
//! the behaviours the tests need: byte ranges (`Range: bytes=N-` → 206 / 416), a server that
//! ignores Range, connections dropped mid-body, slow and stalled bodies, ETags, 404s, and an
//! HTTP CONNECT proxy mode. It logs every request line and Range header.
//!
//! Bounded in count and time: it serves at most [`MAX_CONNECTIONS`] connections and stops by
//! itself after [`LIFETIME`] or when the handle is dropped; it listens on loopback only.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MAX_CONNECTIONS: usize = 64;
pub const LIFETIME: Duration = Duration::from_secs(120);

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Ranges honoured.
    Normal,
    /// Always 200 with the whole file, whatever Range asks.
    IgnoreRange,
    /// The first `times` bodies longer than `after` bytes are cut off after `after` bytes (the
    /// connection closes mid-body).
    DropAfter { after: usize, times: usize },
    /// The body comes in `chunk`-byte pieces every `every`.
    Slow { chunk: usize, every: Duration },
    /// Headers, then nothing (until the client gives up or the lifetime ends).
    Stall,
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<String>>,
    drops_done: AtomicUsize,
    connections: AtomicUsize,
}

pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Server {
    /// Serves `files` (name → bytes) at `/<prefix>/<name>`; `etag` adds an ETag header.
    pub fn start(prefix: &str, files: HashMap<String, Vec<u8>>, mode: Mode, etag: Option<&str>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let files = Arc::new(files);
        let prefix = format!("/{}/", prefix.trim_matches('/'));
        let etag = etag.map(str::to_string);
        let (stop2, shared2) = (stop.clone(), shared.clone());
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !stop2.load(Ordering::SeqCst) && t0.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((sock, _)) => {
                        if shared2.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                            break;
                        }
                        let (files, prefix, etag, shared, stop) =
                            (files.clone(), prefix.clone(), etag.clone(), shared2.clone(), stop2.clone());
                        std::thread::spawn(move || {
                            let _ = serve(sock, &files, &prefix, mode, etag.as_deref(), &shared, &stop);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { port, stop, shared }
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, prefix.trim_matches('/'))
    }

    /// Request lines and Range headers seen so far.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    sock: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    prefix: &str,
    mode: Mode,
    etag: Option<&str>,
    shared: &Shared,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(sock.try_clone()?);
    let mut sock = sock;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let request = line.trim().to_string();
        let mut range = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.trim().eq_ignore_ascii_case("range") {
                    range = Some(v.trim().to_string());
                }
            }
        }
        shared.log.lock().unwrap().push(match &range {
            Some(r) => format!("{request} [Range: {r}]"),
            None => request.clone(),
        });
        // Proxy mode: accept the tunnel, then read the real request on the same socket.
        if request.starts_with("CONNECT ") {
            sock.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            continue;
        }
        let path = request.split_whitespace().nth(1).unwrap_or("");
        let name = path.strip_prefix(prefix).unwrap_or("");
        let Some(body) = files.get(name) else {
            sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")?;
            continue;
        };
        let len = body.len();
        let start = match (mode, &range) {
            (Mode::IgnoreRange, _) | (_, None) => None,
            (_, Some(r)) => {
                r.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse::<usize>().ok())
            }
        };
        let tag = etag.map(|e| format!("ETag: {e}\r\n")).unwrap_or_default();
        let slice = match start {
            Some(s) if s >= len => {
                write!(
                    sock,
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n"
                )?;
                continue;
            }
            Some(s) => {
                write!(
                    sock,
                    "HTTP/1.1 206 Partial Content\r\n{tag}Content-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n\r\n",
                    len - 1,
                    len - s
                )?;
                &body[s..]
            }
            None => {
                write!(sock, "HTTP/1.1 200 OK\r\n{tag}Accept-Ranges: bytes\r\nContent-Length: {len}\r\n\r\n")?;
                &body[..]
            }
        };
        match mode {
            Mode::DropAfter { after, times }
                if after < slice.len() && shared.drops_done.load(Ordering::SeqCst) < times =>
            {
                shared.drops_done.fetch_add(1, Ordering::SeqCst);
                sock.write_all(&slice[..after.min(slice.len())])?;
                sock.flush()?;
                return Ok(()); // the connection closes mid-body
            }
            Mode::Slow { chunk, every } => {
                for piece in slice.chunks(chunk) {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    sock.write_all(piece)?;
                    sock.flush()?;
                    std::thread::sleep(every);
                }
            }
            Mode::Stall => {
                let t0 = Instant::now();
                while !stop.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(30) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return Ok(());
            }
            _ => sock.write_all(slice)?,
        }
        sock.flush()?;
        // Keep-alive: the loop reads the next request line from the same connection.
    }
}
