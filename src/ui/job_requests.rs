//! The jobs the window can start, as plain requests, and how each becomes a job on the
//! [`Board`]: every request calls the same library function as its `intervene` subcommand.

use std::path::PathBuf;
use std::sync::Arc;

use crate::jobs::{AlreadyRunning, Board, Control, JobSpec};
use crate::steer::{Components, PcaConfig};

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
        }
    }
}

/// A model path's last component (for job names).
fn short(model: &str) -> String {
    std::path::Path::new(model).file_name().map_or(model.to_string(), |s| s.to_string_lossy().into_owned())
}
