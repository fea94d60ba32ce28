//! `intervene inspect`: what a weights file holds.

use std::path::PathBuf;

/// List the tensors of a weights file (any supported format): names, shapes, dtypes.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Weights file: safetensors, PyTorch zip (.bin/.pth), or legacy PyTorch pickle.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print only the summary line.
    #[arg(long)]
    pub summary: bool,
}

pub fn run(a: InspectArgs) -> anyhow::Result<()> {
    let data = std::fs::read(&a.file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.file.display()))?;
    let format = crate::checkpoint::detect(&data);
    let map = crate::checkpoint::load_bytes(&data, &a.file)?;
    let mut names: Vec<_> = map.keys().cloned().collect();
    names.sort();
    let values: usize = map.values().map(|t| t.elem_count()).sum();
    if !a.summary {
        for n in &names {
            let t = &map[n];
            println!("{n}\t{:?}\t{:?}", t.dtype(), t.dims());
        }
    }
    println!(
        "{}: {:?}, {} tensors, {values} values",
        a.file.display(),
        format.map_or("unknown".into(), |f| format!("{f:?}")),
        names.len()
    );
    Ok(())
}
