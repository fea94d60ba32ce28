//! The jobs the window can start, as plain requests, and how each becomes a job on the
//! [`Board`]: every request calls the same library function as its `intervene` subcommand.

use std::path::PathBuf;
use std::sync::Arc;

use crate::jobs::{AlreadyRunning, Board, Control, JobSpec, Outcome};
use crate::steer::{Components, PcaConfig};
use crate::ui::command::{Command, Commands, DialogKind};

/// A job the window starts.
#[derive(Debug, Clone)]
pub enum JobRequest {
    /// GANSpace's PCA for a model and class, written to `out` (`intervene pca`).
    Pca { model: String, class: usize, cfg: PcaConfig, out: PathBuf, cpu: bool },
    /// Loading a component file.
    LoadComponents { path: PathBuf },
    /// GenInt's strategy sweep (`intervene sweep`).
    Sweep {
        model: String,
        components: Arc<Components>,
        classifier: String,
        real: PathBuf,
        cfg: crate::explain::sweep::SweepConfig,
    },
    /// The counterfactual export (`intervene export cgn`), resumed when the folder holds it.
    CgnExport { settings: crate::jobs::cgn_export::Settings, out: PathBuf },
    /// An interpolation sheet of the counterfactual mode.
    CgnSheet { request: crate::counterfactual::CgnRequest, shape: crate::composite::MaskShape, out: PathBuf },
    /// GenInt's intervened (or observational) data set (`intervene export genint`).
    GenintExport(crate::jobs::genint_export::Request),
    /// GenInt's CVAE sets (`intervene export cvae`).
    CvaeExport(crate::jobs::cvae_export::Request),
    /// GenInt's transfer step with AdaIN (`intervene export transfer`).
    Transfer(crate::jobs::transfer::Request),
    /// A classifier trained with the GenInt objective (`intervene train classifier`).
    TrainClassifier { settings: Box<crate::train::TrainSettings>, out: PathBuf, resume: bool },
    /// A generator trained on its recipe (`intervene train biggan`).
    TrainBiggan { settings: Box<crate::train::biggan::BigGanSettings>, out: PathBuf, resume: bool },
    /// The MNIST CGN (`intervene train cgn`).
    TrainCgn { settings: Box<crate::train::cgn::CgnSettings>, out: PathBuf, resume: bool },
    /// GenInt's CVAE and its two sets (`intervene train cvae`).
    TrainCvae { settings: Box<crate::train::cvae::CvaeSettings>, out: PathBuf, resume: bool },
    /// Real weights by name (`intervene fetch`); the window opens the model when it is done.
    Fetch { name: String, to: PathBuf, from: Option<String> },
}

impl JobRequest {
    /// The job's name on the board (one job per name runs at a time).
    pub fn name(&self) -> String {
        match self {
            Self::Pca { model, class, .. } => format!("PCA {} class {class}", short(model)),
            Self::LoadComponents { .. } => "load components".into(),
            Self::Sweep { .. } => "strategy sweep".into(),
            Self::CgnExport { .. } => "counterfactual export".into(),
            Self::CgnSheet { .. } => "interpolation sheet".into(),
            Self::GenintExport(r) => format!("GenInt export to {}", short(&r.out.display().to_string())),
            Self::CvaeExport(r) => format!("CVAE sets to {}", short(&r.out.display().to_string())),
            Self::Transfer(r) => format!("transfer to {}", short(&r.out.display().to_string())),
            Self::TrainClassifier { out, .. }
            | Self::TrainBiggan { out, .. }
            | Self::TrainCgn { out, .. }
            | Self::TrainCvae { out, .. } => format!("train {}", short(&out.display().to_string())),
            Self::Fetch { name, .. } => format!("get {name}"),
        }
    }

    fn spec(&self) -> JobSpec {
        let name = self.name();
        match self {
            Self::Pca { .. } => JobSpec::new("PCA", name, "samples"),
            Self::LoadComponents { .. } => JobSpec::new("load", name, "files"),
            Self::Sweep { .. } => JobSpec::new("sweep", name, "settings").background(),
            Self::CgnExport { .. } => JobSpec::new("export", name, "images").background(),
            Self::CgnSheet { .. } => JobSpec::new("sheet", name, "images"),
            Self::GenintExport(r) => JobSpec::new("export", name, "images").background().output(&r.out),
            Self::CvaeExport(r) => JobSpec::new("export", name, "images").background().output(&r.out),
            Self::Transfer(r) => JobSpec::new("transfer", name, "images").background().output(&r.out),
            Self::TrainClassifier { out, .. }
            | Self::TrainBiggan { out, .. }
            | Self::TrainCgn { out, .. }
            | Self::TrainCvae { out, .. } => JobSpec::new("train", name, "steps").background().output(out),
            Self::Fetch { name: model, to, .. } => JobSpec::new("fetch", name, "bytes").output(to.join(model)),
        }
    }

    /// Queues the job. Its result type is the one the requesting pane takes back by name.
    pub fn submit(self, board: &mut Board) -> Result<Control, AlreadyRunning> {
        let spec = self.spec();
        match self {
            Self::Pca { model, class, cfg, out, cpu } => board.submit(spec, move |c: &Control| {
                let device = crate::device::select(cpu);
                c.set_status("loading the model");
                let m = crate::models::biggan::load::load(&model, &device)?;
                let r = crate::steer::pca_job::run(&m, class.min(m.cfg.num_classes - 1), &cfg, &out, c)?;
                Ok(Arc::new(r.output.components))
            }),
            Self::LoadComponents { path } => board.submit(spec, move |c: &Control| {
                c.set_total(1);
                let comps = crate::steer::pca_job::load(&path)?;
                c.advance(1);
                Ok(Arc::new(comps))
            }),
            Self::Sweep { model, components, classifier, real, cfg } => board.submit(spec, move |c: &Control| {
                let device = candle_core::Device::Cpu;
                c.set_status("loading the models");
                let m = crate::models::biggan::load::load(&model, &device)?;
                let clf = crate::models::classifier::open(&classifier, None, &device)?;
                crate::explain::sweep::run_job(&m, &components, &clf, &real, &cfg, c)
            }),
            Self::CgnExport { settings, out } => board.submit(spec, move |c: &Control| {
                let device = candle_core::Device::Cpu;
                let m = crate::models::cgn::CgnModel::open_named(&settings.model, &device)?;
                let report =
                    crate::jobs::cgn_export::export(m, settings, &out, crate::jobs::Shard::default(), true, device, c)?;
                let s = &report.summary;
                Ok(format!(
                    "exported {} images to {} ({:.1} images/s)",
                    s.files_written,
                    out.display(),
                    s.files_written as f64 / s.elapsed.as_secs_f64().max(1e-9)
                ))
            }),
            Self::CgnSheet { request, shape, out } => board.submit(spec, move |_: &Control| {
                let mut r = crate::counterfactual::CgnRenderer::default();
                crate::counterfactual::interpolation_sheet(&mut r, &request, shape, 8, &out)?;
                Ok(out)
            }),
            Self::GenintExport(req) => board.submit(spec, move |c: &Control| {
                let device = candle_core::Device::Cpu;
                let r = crate::jobs::genint_export::export(&req, &device, c)?;
                Ok(finished_line(&r.summary, &req.out, r.manifest.is_some()))
            }),
            Self::CvaeExport(req) => board.submit(spec, move |c: &Control| {
                let s = crate::jobs::cvae_export::export(&req, c)?;
                Ok(format!("wrote {} of {} images to {}", s.written, s.total, req.out.display()))
            }),
            Self::Transfer(req) => board.submit(spec, move |c: &Control| {
                let r = crate::jobs::transfer::run(&req, c)?;
                Ok(finished_line(&r.summary, &req.out, r.finished))
            }),
            Self::TrainClassifier { settings, out, resume } => board.submit(spec, move |c: &Control| {
                // Per-class accuracy of the first evaluation folder, refreshed every epoch.
                let per_class = |r: &crate::train::EpochReport| {
                    if let Some(e) = r.eval.first() {
                        let values = e.per_class.iter().map(|p| (p.class.clone(), p.accuracy)).collect();
                        c.set_bars(format!("per-class accuracy on {} (epoch {})", e.name, r.epoch), values);
                    }
                };
                let hooks = crate::train::Hooks { on_epoch: Some(&per_class), ..Default::default() };
                let s = crate::train::train_classifier(&settings, &out, resume, &hooks, c)?;
                let last = s.last_epoch.as_ref().map_or(String::new(), |e| {
                    let evals: Vec<String> = e.eval.iter().map(|r| format!("{} top-1 {:.4}", r.name, r.top1)).collect();
                    format!(": epoch {}/{}, train loss {:.4}, {}", e.epoch, e.epochs, e.train_loss, evals.join(", "))
                });
                Ok(format!("trained {} in {:.0} s{last}", out.display(), s.seconds))
            }),
            Self::TrainBiggan { settings, out, resume } => board.submit(spec, move |c: &Control| {
                let r = crate::train::biggan::train_biggan(&settings, &out, resume, Default::default(), c)?;
                Ok(trained_line("BigGAN-deep", r.steps, r.finished, r.sec_per_step, &out))
            }),
            Self::TrainCgn { settings, out, resume } => board.submit(spec, move |c: &Control| {
                let r = crate::train::cgn::train_cgn(&settings, &out, resume, None, c)?;
                Ok(trained_line(&format!("{} CGN", settings.variant), r.steps, r.finished, r.sec_per_step, &out))
            }),
            Self::TrainCvae { settings, out, resume } => board.submit(spec, move |c: &Control| {
                let r = crate::train::cvae::train_cvae(&settings, &out, resume, None, c)?;
                Ok(trained_line("CVAE", r.steps, r.finished, r.sec_per_step, &out))
            }),
            Self::Fetch { name, to, from } => board.submit(spec, move |c: &Control| {
                let model = crate::fetch::find(&name)?;
                let source = crate::fetch::Source::choose(from.as_deref());
                Ok(crate::fetch::fetch_model(model, &source, &to, c)?.dir)
            }),
        }
    }
}

/// What a finished generator training says in the status bar.
fn trained_line(what: &str, steps: u64, finished: bool, sec_per_step: f64, out: &std::path::Path) -> String {
    let state = if finished { "finished" } else { "stopped; start it again with resume to continue" };
    format!("trained the {what} to step {steps} ({sec_per_step:.2} s/step) in {}: {state}", out.display())
}

/// What a finished export or transfer says in the log.
fn finished_line(s: &crate::jobs::Summary, out: &std::path::Path, complete: bool) -> String {
    let rate = s.files_written as f64 / s.elapsed.as_secs_f64().max(1e-9);
    let state = if complete { "the set is complete" } else { "other shards are still missing" };
    format!("wrote {} images to {} ({rate:.1} images/s); {state}", s.files_written, out.display())
}

/// A model path's last component (for job names).
fn short(model: &str) -> String {
    std::path::Path::new(model).file_name().map_or(model.to_string(), |s| s.to_string_lossy().into_owned())
}

/// What the window does when a job started from the launcher ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// Puts its result line in the status bar, its failure on screen.
    Report,
    /// Opens the downloaded model.
    OpenModel,
}

impl JobRequest {
    /// Whether the app follows this job to its end.
    pub fn follow_up(&self) -> Option<FollowUp> {
        match self {
            Self::GenintExport(_)
            | Self::CvaeExport(_)
            | Self::Transfer(_)
            | Self::TrainClassifier { .. }
            | Self::TrainBiggan { .. }
            | Self::TrainCgn { .. }
            | Self::TrainCvae { .. } => Some(FollowUp::Report),
            Self::Fetch { .. } => Some(FollowUp::OpenModel),
            _ => None,
        }
    }
}

impl FollowUp {
    /// Takes the outcome of job `name` once it ended; returns whether it is settled.
    pub fn take(self, name: &str, board: &mut Board, commands: &mut Commands) -> bool {
        if board.is_active(name) {
            return false;
        }
        let failed =
            |commands: &mut Commands, e: anyhow::Error| commands.error(format!("{name} failed"), format!("{e:#}"));
        let cancelled = |commands: &mut Commands| {
            commands
                .status(format!("{name} cancelled; what is written is complete, start it again with resume to finish"))
        };
        match self {
            FollowUp::Report => match board.take::<String>(name) {
                Some(Outcome::Done(m)) => commands.status(m),
                Some(Outcome::Cancelled) => cancelled(commands),
                Some(Outcome::Failed(e)) => failed(commands, e),
                None => {}
            },
            FollowUp::OpenModel => match board.take::<PathBuf>(name) {
                Some(Outcome::Done(dir)) => {
                    commands.status(format!("{name}: verified; opening {}", dir.display()));
                    commands.push(Command::Open(DialogKind::ModelFolder, dir));
                }
                Some(Outcome::Cancelled) => cancelled(commands),
                Some(Outcome::Failed(e)) => failed(commands, e),
                None => {}
            },
        }
        true
    }
}
