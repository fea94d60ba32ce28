//! `intervene eval`: accuracy of a classifier on labelled image folders — top-1, top-5,
//! per-class accuracy and the confusion matrix per folder (engine: [`crate::train::eval`]).

use std::path::PathBuf;

use crate::models::classifier::Arch;

/// Evaluate a classifier on image folders.
#[derive(clap::Args, Debug)]
#[command(long_about = "Evaluates a classifier on labelled image folders (DIR/<class>/*.png|jpg; \
classes named by index, wnid or ImageNet name; a training output folder maps them by its own class list) \
and prints top-1 and top-5 accuracy, per-class accuracy and the confusion matrix (rows: true class, \
columns: predicted) for each folder. --json prints one object per folder per line.")]
pub struct EvalArgs {
    /// Classifier: a training output folder, a weights file, or a bundled name (mobilenet_v2).
    #[arg(long, value_name = "PATH")]
    pub classifier: String,
    /// Architecture, when the weights do not tell.
    #[arg(long, value_name = "ARCH", value_parser = super::values::named::<Arch>())]
    pub arch: Option<Arch>,
    /// A labelled image folder (repeatable).
    #[arg(long, value_name = "DIR", required = true)]
    pub data: Vec<PathBuf>,
    /// One JSON object per folder (data, n, top1, top5, per_class, confusion, labels).
    #[arg(long)]
    pub json: bool,
    /// Compute threads (0: all cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let device = candle_core::Device::Cpu;
    let model = crate::train::EvalModel::open(&a.classifier, a.arch, &device)?;
    let job = |control: &crate::jobs::Control| crate::train::evaluate_folders(&model, &a.data, &device, control);
    let reports = if a.threads == 0 {
        super::job::run("images", job)?
    } else {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(a.threads).build()?;
        pool.install(|| super::job::run("images", job))?
    };
    for r in &reports {
        if a.json {
            println!("{}", serde_json::to_string(r)?);
            continue;
        }
        println!("{}  ({})", r.summary(), r.data);
        for c in &r.per_class {
            println!("  class {:<24} {:6.2} %  ({}/{})", c.class, 100.0 * c.accuracy, c.correct, c.n);
        }
        if r.labels.len() <= 20 {
            let names: Vec<String> = r.labels.iter().map(|&l| model.classes.names[l].clone()).collect();
            let w = names
                .iter()
                .map(|n| n.len())
                .chain(r.confusion.iter().flatten().map(|v| v.to_string().len()))
                .max()
                .unwrap_or(1)
                .max(3);
            println!("  confusion (rows true, columns predicted):");
            println!("  {:>w$} {}", "", names.iter().map(|n| format!("{n:>w$}")).collect::<Vec<_>>().join(" "));
            for (n, row) in names.iter().zip(&r.confusion) {
                println!("  {n:>w$} {}", row.iter().map(|v| format!("{v:>w$}")).collect::<Vec<_>>().join(" "));
            }
        } else {
            println!("  confusion matrix: {}×{} (see --json)", r.labels.len(), r.labels.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[test]
    fn bad_values_fail_at_parse_time() {
        let parse =
            |args: &[&str]| crate::cli::Cli::try_parse_from(std::iter::once("intervene").chain(args.iter().copied()));
        assert!(parse(&["eval", "--classifier", "m", "--data", "d", "--data", "e", "--json"]).is_ok());
        let e = parse(&["eval", "--classifier", "m", "--data", "d", "--threads", "two"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        let e = parse(&["eval", "--classifier", "m", "--data", "d", "--arch", "vgg"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(parse(&["eval", "--classifier", "m"]).is_err(), "--data is required");
    }
}
