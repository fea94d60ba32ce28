//! Where exports put their images: PNG/JPEG encoding and atomic writes, as loose files
//! (ImageFolder trees) or as WebDataset tar shards, optionally on a second thread so the next
//! batch renders while this one is compressed and written.
//!
//! Every file appears complete or not at all: loose images go through
//! [`crate::imageio::write_atomically`]; a tar shard is streamed into a hidden temporary file
//! beside its final name and renamed when its last sample is in. A failure (full disk,
//! unwritable folder) removes the temporary file, is remembered, and is returned by the next
//! [`Sink::send`] or by [`Sink::finish`]: files written before it stay as they were.
//!
//! Encoding is deterministic (fixed PNG compression and filter, fixed JPEG quality, tar headers
//! with fixed owner, mode and time), so a resumed or sharded export is byte-identical to an
//! uninterrupted one.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context as _;

use crate::imageio::RgbImage;

/// JPEG quality of exported `.jpg` files.
pub const JPEG_QUALITY: u8 = 95;

/// The image file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Lossless; the `image` crate's fast deflate with adaptive filtering.
    #[default]
    Png,
    /// Baseline JPEG at quality [`JPEG_QUALITY`].
    Jpg,
}

impl std::str::FromStr for ImageFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(Self::Png),
            "jpg" | "jpeg" => Ok(Self::Jpg),
            _ => Err(format!("unknown image format '{s}': use png or jpg")),
        }
    }
}

impl ImageFormat {
    /// File extension without the dot (also the WebDataset member suffix).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpg => "jpg",
        }
    }

    /// The encoded file.
    pub fn encode(self, img: &RgbImage) -> anyhow::Result<Vec<u8>> {
        use image::ImageEncoder as _;
        anyhow::ensure!(img.pixels.len() == img.width * img.height * 3, "image buffer has the wrong size");
        let mut out = Vec::with_capacity(img.pixels.len() / 2 + 1024);
        let (w, h) = (img.width as u32, img.height as u32);
        match self {
            Self::Png => image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            )
            .write_image(&img.pixels, w, h, image::ExtendedColorType::Rgb8)?,
            Self::Jpg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).write_image(
                &img.pixels,
                w,
                h,
                image::ExtendedColorType::Rgb8,
            )?,
        }
        Ok(out)
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::imageio::write_atomically(path, |tmp| Ok(std::fs::write(tmp, bytes)?))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// One WebDataset sample: its key and its members (`KEY.ext` → bytes), in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub key: String,
    pub members: Vec<(String, Vec<u8>)>,
}

/// What the writer does.
enum Msg {
    /// Encode and write one image file.
    Image { path: PathBuf, img: RgbImage, format: ImageFormat },
    /// Start the tar shard `path` (a temporary file until [`Msg::TarEnd`]).
    TarBegin { path: PathBuf },
    /// Append a sample whose first member is the encoded image.
    TarSample { key: String, img: RgbImage, format: ImageFormat, rest: Vec<(String, Vec<u8>)> },
    /// Finish the shard and rename it into place.
    TarEnd,
    /// Drop the unfinished shard (a cancel in the middle of it).
    TarAbort,
}

/// A tar shard being written.
struct OpenTar {
    path: PathBuf,
    tmp: PathBuf,
    builder: tar::Builder<std::io::BufWriter<std::fs::File>>,
}

impl OpenTar {
    fn begin(path: PathBuf) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let name = path.file_name().context("shard path has no file name")?.to_string_lossy().into_owned();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let builder = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, f));
        Ok(Self { path, tmp, builder })
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).with_context(|| format!("bad tar member name {name}"))?;
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        self.builder.append(&h, bytes).with_context(|| format!("cannot write {}", self.path.display()))
    }

    fn finish(self) -> anyhow::Result<()> {
        let Self { path, tmp, builder } = self;
        let res = (|| -> anyhow::Result<()> {
            let mut w = builder.into_inner()?;
            w.flush()?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        })()
        .with_context(|| format!("cannot write {}", path.display()));
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    fn abort(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// The state the writer keeps between messages.
#[derive(Default)]
struct Writer {
    tar: Option<OpenTar>,
}

impl Writer {
    fn handle(&mut self, msg: Msg) -> anyhow::Result<()> {
        match msg {
            Msg::Image { path, img, format } => write_file(&path, &format.encode(&img)?),
            Msg::TarBegin { path } => {
                if let Some(t) = self.tar.take() {
                    t.abort();
                }
                self.tar = Some(OpenTar::begin(path)?);
                Ok(())
            }
            Msg::TarSample { key, img, format, rest } => {
                let tar = self.tar.as_mut().context("a sample arrived outside a shard")?;
                let res = (|| {
                    tar.append(&format!("{key}.{}", format.extension()), &format.encode(&img)?)?;
                    for (ext, bytes) in &rest {
                        tar.append(&format!("{key}.{ext}"), bytes)?;
                    }
                    Ok(())
                })();
                if res.is_err() {
                    if let Some(t) = self.tar.take() {
                        t.abort();
                    }
                }
                res
            }
            Msg::TarEnd => self.tar.take().context("no shard to finish")?.finish(),
            Msg::TarAbort => {
                if let Some(t) = self.tar.take() {
                    t.abort();
                }
                Ok(())
            }
        }
    }

    fn abort(&mut self) {
        if let Some(t) = self.tar.take() {
            t.abort();
        }
    }
}

/// Messages in flight at most (back-pressure: rendering waits when the writer falls behind).
const QUEUE: usize = 64;

/// Encodes and writes images in order, on a background thread or inline.
pub struct Sink {
    tx: Option<SyncSender<Msg>>,
    worker: Option<JoinHandle<()>>,
    /// The first error the background writer hit.
    error: Arc<Mutex<Option<anyhow::Error>>>,
    /// The writer itself when running inline.
    inline: Option<Writer>,
}

impl Sink {
    /// A sink that encodes and writes on its own thread (`background`) or on the caller's.
    pub fn new(background: bool) -> anyhow::Result<Self> {
        let error: Arc<Mutex<Option<anyhow::Error>>> = Arc::default();
        if !background {
            return Ok(Self { tx: None, worker: None, error, inline: Some(Writer::default()) });
        }
        let (tx, rx): (SyncSender<Msg>, Receiver<Msg>) = sync_channel(QUEUE);
        let err = error.clone();
        let worker = std::thread::Builder::new()
            .name("intervene-writer".into())
            .spawn(move || {
                let mut w = Writer::default();
                for msg in rx {
                    let failed = err.lock().map(|e| e.is_some()).unwrap_or(true);
                    if failed {
                        continue; // drain: nothing more is written after a failure
                    }
                    if let Err(e) = w.handle(msg) {
                        w.abort();
                        if let Ok(mut slot) = err.lock() {
                            *slot = Some(e);
                        }
                    }
                }
                w.abort();
            })
            .context("cannot start the writer thread")?;
        Ok(Self { tx: Some(tx), worker: Some(worker), error, inline: None })
    }

    fn take_error(&self) -> Option<anyhow::Error> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    fn send(&mut self, msg: Msg) -> anyhow::Result<()> {
        if let Some(w) = self.inline.as_mut() {
            return w.handle(msg).inspect_err(|_| w.abort());
        }
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        let tx = self.tx.as_ref().context("the writer has finished")?;
        if tx.send(msg).is_err() {
            return Err(self.take_error().unwrap_or_else(|| anyhow::anyhow!("the writer thread stopped")));
        }
        Ok(())
    }

    /// Writes `img` to `path` as `format`.
    pub fn image(&mut self, path: PathBuf, img: RgbImage, format: ImageFormat) -> anyhow::Result<()> {
        self.send(Msg::Image { path, img, format })
    }

    /// Starts the tar shard `path`.
    pub fn tar_begin(&mut self, path: PathBuf) -> anyhow::Result<()> {
        self.send(Msg::TarBegin { path })
    }

    /// Appends `KEY.{format}` (the image) and `KEY.{ext}` for each of `rest`.
    pub fn tar_sample(
        &mut self,
        key: String,
        img: RgbImage,
        format: ImageFormat,
        rest: Vec<(String, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        self.send(Msg::TarSample { key, img, format, rest })
    }

    /// Finishes the shard (renamed into place once complete).
    pub fn tar_end(&mut self) -> anyhow::Result<()> {
        self.send(Msg::TarEnd)
    }

    /// Drops the shard in progress.
    pub fn tar_abort(&mut self) -> anyhow::Result<()> {
        self.send(Msg::TarAbort)
    }

    /// Waits until everything sent is written; returns the first error.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            w.join().map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
        }
        match self.take_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        if let Some(w) = self.inline.as_mut() {
            w.abort();
        }
    }
}

/// Reads a WebDataset shard back: samples in archive order, members grouped by key (the part of
/// the member name before its first dot, as the `webdataset` loader groups them).
pub fn read_shard(path: &Path) -> anyhow::Result<Vec<Sample>> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let mut out: Vec<Sample> = Vec::new();
    for e in ar.entries().with_context(|| format!("{} is not a tar archive", path.display()))? {
        let mut e = e.with_context(|| format!("{}: bad tar entry", path.display()))?;
        let name = e.path()?.to_string_lossy().into_owned();
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        let (key, ext) =
            base.split_once('.').with_context(|| format!("{}: member {name} has no extension", path.display()))?;
        let mut bytes = Vec::with_capacity(e.size() as usize);
        e.read_to_end(&mut bytes)?;
        match out.last_mut() {
            Some(s) if s.key == key => s.members.push((ext.to_string(), bytes)),
            _ => out.push(Sample { key: key.to_string(), members: vec![(ext.to_string(), bytes)] }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("intervene-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn img(v: u8) -> RgbImage {
        RgbImage { width: 4, height: 3, pixels: (0..36).map(|i| v.wrapping_add(i)).collect() }
    }

    #[test]
    fn shards_round_trip_and_are_deterministic() {
        let d = fresh("tar");
        let mut bytes = Vec::new();
        for background in [true, false] {
            let p = d.join(format!("s-{background}.tar"));
            let mut s = Sink::new(background).unwrap();
            s.tar_begin(p.clone()).unwrap();
            for k in 0..3u8 {
                s.tar_sample(
                    format!("{k:08}"),
                    img(k),
                    ImageFormat::Png,
                    vec![("cls".into(), format!("{k}").into_bytes())],
                )
                .unwrap();
            }
            s.tar_end().unwrap();
            s.finish().unwrap();
            let samples = read_shard(&p).unwrap();
            assert_eq!(samples.len(), 3);
            for (k, smp) in samples.iter().enumerate() {
                assert_eq!(smp.key, format!("{k:08}"));
                assert_eq!(smp.members[0].0, "png");
                let dec = image::load_from_memory(&smp.members[0].1).unwrap().to_rgb8();
                assert_eq!(dec.into_raw(), img(k as u8).pixels);
                assert_eq!(smp.members[1], ("cls".to_string(), format!("{k}").into_bytes()));
            }
            bytes.push(std::fs::read(&p).unwrap());
        }
        assert_eq!(bytes[0], bytes[1], "same bytes from either writer");
        let hidden = std::fs::read_dir(&d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'));
        assert_eq!(hidden.count(), 0, "no temporary files left");
    }

    #[test]
    fn an_unwritable_target_is_reported_and_leaves_nothing() {
        let d = fresh("bad");
        let blocker = d.join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let mut s = Sink::new(true).unwrap();
        s.image(blocker.join("a.png"), img(1), ImageFormat::Png).unwrap();
        let err = s.finish().unwrap_err();
        assert!(format!("{err:#}").contains("file"), "{err:#}");
        assert_eq!(std::fs::read(&blocker).unwrap(), b"x");
    }

    #[test]
    fn an_aborted_shard_leaves_no_file() {
        let d = fresh("abort");
        let mut s = Sink::new(false).unwrap();
        s.tar_begin(d.join("x.tar")).unwrap();
        s.tar_sample("00000000".into(), img(0), ImageFormat::Jpg, vec![]).unwrap();
        s.tar_abort().unwrap();
        s.finish().unwrap();
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
    }
}
