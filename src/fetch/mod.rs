//! `intervene fetch`: the real BigGAN-deep weights by name, verified and resumable.
//!
//! The catalogue ([`KNOWN`]) holds pytorch-pretrained-BigGAN's release files
//! (`huggingface/pytorch-pretrained-BigGAN`, `model.py`'s `PRETRAINED_MODEL_ARCHIVE_MAP` and
//! `PRETRAINED_CONFIG_ARCHIVE_MAP`): `<name>-pytorch_model.bin` and `<name>-config.json` under
//! [`RELEASE_URL`]. A model is stored where the loader looks for it by name
//! ([`crate::models::biggan::load`]): `<dir>/<name>/config.json` and
//! `<dir>/<name>/pytorch_model.bin`, by default in the Python package's cache folder
//! ([`default_dir`]). When the file came from the release location itself and the server sent an
//! `ETag`, the weights are also hard-linked under the Python package's own cache name
//! (`sha256(url).sha256(etag)` plus a `.json` sidecar with the URL and ETag), so the Python
//! package finds the same copy without downloading it again: one copy on disk, two names.
//!
//! Every file goes through [`download`]: bytes stream into a hidden `.<file>.part` beside the
//! target (resumed with an HTTP `Range` request after an interruption), are checked against the
//! pinned size and SHA-256 where the catalogue has them and against the file's format always,
//! and only then renamed into place — a half-written or corrupt file never appears under the
//! final name. A cancel or a dropped connection keeps the `.part` for the next run; a file that
//! fails its check is deleted.
//!
//! Mirrors: `INTERVENE_MIRROR=URL|DIR` (or `--from`) replaces the release location with any HTTP
//! server or folder that has the same file names at its root. Proxies: `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, as ureq reads them.
//!
//! **Pins.** The release host could not be reached when this catalogue was written, so no file
//! could be hashed and every entry is [`Pin::Unpinned`]: the download prints the SHA-256 it got
//! (so a user can compare it with another copy), and is checked only for size consistency with
//! the server's headers and for its format. Pin an entry only with a hash taken from the real
//! file; never from memory.

pub mod download;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::jobs::Control;

pub use download::{download, Downloaded, Outcome};

/// Where pytorch-pretrained-BigGAN's release files live.
pub const RELEASE_URL: &str = "https://s3.amazonaws.com/models.huggingface.co/biggan";

/// The environment variable naming a mirror (an `http(s)://` URL or a folder).
pub const MIRROR_ENV: &str = "INTERVENE_MIRROR";

/// What a downloaded file must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Size in bytes and lowercase hex SHA-256 of the real file.
    Pinned { size: u64, sha256: &'static str },
    /// Not known (see the module docs): the hash obtained is printed, not checked.
    Unpinned,
}

/// What kind of content a file must have (checked whether pinned or not, so an HTML error page
/// or a truncated copy saved under the right name is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A BigGAN `config.json` that [`crate::models::biggan::BigGanConfig`] parses.
    BigGanConfig,
    /// A PyTorch or safetensors weights file ([`crate::checkpoint::detect`]).
    Weights,
}

/// One file of a known model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownFile {
    /// Its name at the release location (and at a mirror's root).
    pub remote: &'static str,
    /// Its name inside the model's folder, as the loader looks for it.
    pub local: &'static str,
    pub content: Content,
    pub pin: Pin,
}

/// A model `intervene fetch` knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    pub name: &'static str,
    pub what: &'static str,
    pub files: &'static [KnownFile],
}

macro_rules! biggan {
    ($name:literal, $what:literal) => {
        KnownModel {
            name: $name,
            what: $what,
            files: &[
                KnownFile {
                    remote: concat!($name, "-config.json"),
                    local: "config.json",
                    content: Content::BigGanConfig,
                    pin: Pin::Unpinned,
                },
                KnownFile {
                    remote: concat!($name, "-pytorch_model.bin"),
                    local: "pytorch_model.bin",
                    content: Content::Weights,
                    pin: Pin::Unpinned,
                },
            ],
        }
    };
}

/// The known models. U²-Net is not among them: its authors publish `u2net.pth` only on Google
/// Drive (behind a confirmation page, no stable direct URL), and the ImageNet CGN's `cgn.pth`
/// carries its own U²-Net weights under `u2net.`.
pub const KNOWN: &[KnownModel] = &[
    biggan!("biggan-deep-128", "BigGAN-deep 128×128 (ImageNet, 1,000 classes), pytorch-pretrained-BigGAN release"),
    biggan!("biggan-deep-256", "BigGAN-deep 256×256 (ImageNet, 1,000 classes), pytorch-pretrained-BigGAN release"),
    biggan!("biggan-deep-512", "BigGAN-deep 512×512 (ImageNet, 1,000 classes), pytorch-pretrained-BigGAN release"),
];

/// Why a name is not fetchable.
#[derive(Debug, thiserror::Error)]
#[error("unknown model '{name}': intervene fetch knows {}", known_names().join(", "))]
pub struct UnknownModel {
    pub name: String,
}

/// The names of [`KNOWN`].
pub fn known_names() -> Vec<&'static str> {
    KNOWN.iter().map(|m| m.name).collect()
}

/// The known model called `name`.
pub fn find(name: &str) -> Result<&'static KnownModel, UnknownModel> {
    KNOWN.iter().find(|m| m.name == name.trim()).ok_or_else(|| UnknownModel { name: name.to_string() })
}

/// The default folder: the Python package's cache (`$PYTORCH_PRETRAINED_BIGGAN_CACHE`, else
/// `~/.pytorch_pretrained_biggan`), which the loader searches by name.
pub fn default_dir() -> PathBuf {
    crate::models::biggan::load::python_cache_dir()
}

/// Where files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An HTTP(S) base URL; a file's URL is `<base>/<remote name>`.
    Url(String),
    /// A folder holding the files under their remote names.
    Dir(PathBuf),
}

impl Source {
    /// The release location.
    pub fn release() -> Self {
        Source::Url(RELEASE_URL.to_string())
    }

    /// `http://…` / `https://…` is a server, anything else a folder.
    pub fn parse(s: &str) -> Self {
        let t = s.trim();
        if t.starts_with("http://") || t.starts_with("https://") {
            Source::Url(t.trim_end_matches('/').to_string())
        } else {
            Source::Dir(PathBuf::from(t))
        }
    }

    /// `--from` if given, else `$INTERVENE_MIRROR`, else the release location.
    pub fn choose(flag: Option<&str>) -> Self {
        match flag {
            Some(f) => Self::parse(f),
            None => match std::env::var(MIRROR_ENV) {
                Ok(m) if !m.trim().is_empty() => Self::parse(&m),
                _ => Self::release(),
            },
        }
    }

    /// Where `remote` is at this source, for messages.
    pub fn locate(&self, remote: &str) -> String {
        match self {
            Source::Url(base) => format!("{base}/{remote}"),
            Source::Dir(d) => d.join(remote).display().to_string(),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Url(u) => write!(f, "{u}"),
            Source::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

/// Whether a known model is on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub model: &'static KnownModel,
    /// The folder holding all its files (`<dir>/<name>`), if complete.
    pub path: Option<PathBuf>,
}

/// The model folder `fetch` writes: `<dir>/<name>`.
pub fn model_dir(dir: &Path, model: &KnownModel) -> PathBuf {
    dir.join(model.name)
}

/// Every known model with whether it is on disk in `dir` (all its files present under their
/// final names; they were verified when they were put there).
pub fn list(dir: &Path) -> Vec<Status> {
    KNOWN
        .iter()
        .map(|m| {
            let folder = model_dir(dir, m);
            let complete = m.files.iter().all(|f| folder.join(f.local).is_file());
            Status { model: m, path: complete.then_some(folder) }
        })
        .collect()
}

/// What [`fetch_model`] did.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The model folder (pass it, or the model's name, to `--model`).
    pub dir: PathBuf,
    pub files: Vec<Downloaded>,
}

/// Downloads (or copies) every file of `model` from `source` into `<dir>/<name>/`, verified,
/// atomically, resuming `.part` files left by an interrupted run. Files already present and
/// passing their check are kept. Cancellable within a fraction of a second through `control`
/// (the `.part` files are kept for the next run). Progress is counted in bytes.
pub fn fetch_model(model: &KnownModel, source: &Source, dir: &Path, control: &Control) -> anyhow::Result<Fetched> {
    let folder = model_dir(dir, model);
    std::fs::create_dir_all(&folder).with_context(|| {
        format!("cannot create {} (is the folder writable? choose another with --to DIR)", folder.display())
    })?;
    control.set_status(format!("{} from {source}", model.name));
    let mut files = Vec::new();
    let mut base = download::Budget::default();
    for f in model.files {
        control.check()?;
        let got = download(f, source, &folder.join(f.local), control, &mut base)
            .with_context(|| format!("{}: {}", model.name, f.remote))?;
        control.log(got.describe());
        // Only the release URL gives the name the Python package will look for.
        if let (true, Some(etag)) = (*source == Source::release(), &got.etag) {
            let url = format!("{RELEASE_URL}/{}", f.remote);
            if let Err(e) = download::share_with_python_cache(dir, &url, etag, &got.path) {
                control.log(format!("note: not shared with the Python package's cache: {e:#}"));
            }
        }
        files.push(got);
    }
    Ok(Fetched { dir: folder, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_matches_the_release_names_and_the_loader() {
        assert_eq!(known_names(), ["biggan-deep-128", "biggan-deep-256", "biggan-deep-512"]);
        for m in KNOWN {
            let remote: Vec<&str> = m.files.iter().map(|f| f.remote).collect();
            assert_eq!(remote, [format!("{}-config.json", m.name), format!("{}-pytorch_model.bin", m.name)]);
            // The loader opens `<root>/<name>/` with config.json and one of its weight names.
            assert!(m.files.iter().any(|f| f.local == "config.json"));
            assert!(m.files.iter().any(|f| crate::models::biggan::load::WEIGHT_NAMES.contains(&f.local)));
        }
        let e = find("biggan-deep-64").unwrap_err().to_string();
        assert!(e.contains("biggan-deep-64") && e.contains("biggan-deep-128, biggan-deep-256, biggan-deep-512"), "{e}");
        assert_eq!(find(" biggan-deep-256 ").unwrap().name, "biggan-deep-256");
    }

    #[test]
    fn sources_parse() {
        assert_eq!(
            Source::parse("https://mirror.example/biggan/"),
            Source::Url("https://mirror.example/biggan".into())
        );
        assert_eq!(Source::parse("/data/weights"), Source::Dir("/data/weights".into()));
        assert_eq!(Source::choose(Some("http://h:8/x")), Source::Url("http://h:8/x".into()));
        assert_eq!(
            Source::release().locate("biggan-deep-256-config.json"),
            "https://s3.amazonaws.com/models.huggingface.co/biggan/biggan-deep-256-config.json"
        );
    }
}
