//! `intervene fetch NAME | --list [--to DIR] [--from URL|DIR]`: the real BigGAN-deep weights by
//! name ([`crate::fetch`]).

use std::path::PathBuf;

use crate::fetch::{self, Pin, Source};

/// Download the real BigGAN-deep 128/256/512 weights by name, verified, resumable, into the
/// folder `--model NAME` searches.
///
/// Files come from pytorch-pretrained-BigGAN's release location (or a mirror: --from, or the
/// INTERVENE_MIRROR variable, an http(s) URL or a folder holding the same file names), stream into
/// a hidden .part file that a later run resumes, are checked (size, SHA-256 where pinned, format),
/// and only then appear under their final names. HTTPS_PROXY / NO_PROXY are honoured.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  intervene fetch --list\n  intervene fetch biggan-deep-256\n  \
intervene generate --model biggan-deep-256 --class 207 --out dog.png\n  \
INTERVENE_MIRROR=/shared/weights intervene fetch biggan-deep-512 --to /scratch/models")]
pub struct FetchArgs {
    /// The model to download: biggan-deep-128, biggan-deep-256 or biggan-deep-512 (see --list).
    #[arg(value_name = "NAME", required_unless_present = "list", value_parser = parse_name)]
    pub name: Option<String>,
    /// List the known models, whether each is on disk, and their pinned hashes.
    #[arg(long, conflicts_with = "name")]
    pub list: bool,
    /// Folder to store models in (as DIR/NAME/config.json + pytorch_model.bin) [default:
    /// $PYTORCH_PRETRAINED_BIGGAN_CACHE or ~/.pytorch_pretrained_biggan, where --model NAME looks].
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Take the files from this server (http:// or https://) or folder instead of the release
    /// location; overrides INTERVENE_MIRROR.
    #[arg(long, value_name = "URL|DIR")]
    pub from: Option<String>,
}

/// A known model name (bad names exit with 2 and the list).
fn parse_name(s: &str) -> Result<String, String> {
    fetch::find(s).map(|m| m.name.to_string()).map_err(|e| e.to_string())
}

pub fn run(a: FetchArgs) -> anyhow::Result<()> {
    let dir = a.to.clone().unwrap_or_else(fetch::default_dir);
    if a.list {
        print_list(&dir);
        return Ok(());
    }
    let Some(name) = a.name.as_deref() else { anyhow::bail!("give a model name or --list") };
    let model = fetch::find(name)?;
    let source = Source::choose(a.from.as_deref());
    eprintln!("fetching {} from {source} into {}", model.name, fetch::model_dir(&dir, model).display());
    let got = super::job::run("bytes", |control| fetch::fetch_model(model, &source, &dir, control))?;
    for f in &got.files {
        println!("{}", f.describe());
    }
    if got.files.iter().any(|f| !f.pinned) {
        println!(
            "note: intervene has no pinned SHA-256 for these files yet (the release host could not be reached when the \
             catalogue was written); compare the hashes above with another copy if you need to be sure."
        );
    }
    println!("ready: --model {} (or --model {})", model.name, got.dir.display());
    Ok(())
}

fn print_list(dir: &std::path::Path) {
    println!("models known to intervene fetch (folder: {}):", dir.display());
    for s in fetch::list(dir) {
        let state = match &s.path {
            Some(p) => format!("on disk: {}", p.display()),
            None => "not on disk".to_string(),
        };
        let pins: Vec<String> = s
            .model
            .files
            .iter()
            .map(|f| match f.pin {
                Pin::Pinned { size, sha256 } => format!("{} {size} B sha256 {sha256}", f.remote),
                Pin::Unpinned => format!("{} unpinned", f.remote),
            })
            .collect();
        println!("  {:<16} {state}\n  {:<16} {}\n  {:<16} {}", s.model.name, "", s.model.what, "", pins.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        f: FetchArgs,
    }

    #[test]
    fn names_are_checked_at_parse_time() {
        let e = Cli::try_parse_from(["fetch", "biggan-deep-64"]).err().expect("unknown name refused");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("biggan-deep-128, biggan-deep-256, biggan-deep-512"), "{msg}");
        assert!(Cli::try_parse_from(["fetch"]).is_err(), "a name or --list is needed");
        assert!(Cli::try_parse_from(["fetch", "--list", "biggan-deep-128"]).is_err());
        let ok = Cli::try_parse_from(["fetch", "biggan-deep-512", "--to", "/tmp/x", "--from", "http://m/b"]).unwrap();
        assert_eq!(ok.f.name.as_deref(), Some("biggan-deep-512"));
        assert!(Cli::try_parse_from(["fetch", "--list"]).unwrap().f.list);
    }
}
