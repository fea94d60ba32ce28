//! The classifier registry: which architecture a checkpoint's keys identify, and opening it as
//! a [`Staged`] model (weights file, bundled name, or a training output folder).

pub use super::staged::{ActGrad, Staged};

/// Architectures `intervene cam` (and the Explain pane) can open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    ResNet18,
    ResNet34,
    ResNet50,
    MobileNetV2,
    MnistCnn,
    /// The CGN classifier ensemble (ResNet-50 trunk + shape/texture/background heads; CAMs of the average).
    CgnEnsemble,
}

crate::named_enum!(Arch, "architecture", {
    ResNet18 => "resnet18",
    ResNet34 => "resnet34",
    ResNet50 => "resnet50",
    MobileNetV2 => "mobilenet_v2",
    MnistCnn => "mnist-cnn",
    CgnEnsemble => "cgn-ensemble",
});

impl Arch {
    /// The architecture a checkpoint's keys identify, if any.
    pub fn detect(map: &crate::checkpoint::TensorMap) -> Option<Self> {
        let has = |k: &str| map.contains_key(k);
        if super::cgn_ensemble::CgnEnsemble::matches(&has) {
            return Some(Self::CgnEnsemble);
        }
        if super::mnist_cnn::MnistCnn::matches(&has) {
            return Some(Self::MnistCnn);
        }
        if has("features.18.0.weight") && has("classifier.1.weight") {
            return Some(Self::MobileNetV2);
        }
        super::resnet::detect(&has, "").map(|c| match (c.bottleneck, c.blocks[2]) {
            (true, _) => Self::ResNet50,
            (false, 6) => Self::ResNet34,
            _ => Self::ResNet18,
        })
    }

    /// The input side the architecture expects from an image file.
    pub fn input_size(self) -> usize {
        if self == Self::MnistCnn {
            32
        } else {
            224
        }
    }

    /// The input pipeline the architecture expects (see [`crate::preprocess`]): torchvision's
    /// ImageNet evaluation transform, or the MNIST CNN's 32×32 [−1, 1]. Returns the
    /// `[1, 3, side, side]` tensor and the RGB pixels it shows.
    pub fn preprocess(self, img: &image::RgbImage) -> anyhow::Result<(candle_core::Tensor, Vec<u8>)> {
        if self == Self::MnistCnn {
            crate::preprocess::small(img, 32)
        } else {
            crate::preprocess::imagenet(img)
        }
    }
}

/// An opened classifier.
pub struct Opened {
    pub model: Box<dyn Staged + Send + Sync>,
    pub arch: Arch,
    pub num_classes: usize,
    pub source: std::path::PathBuf,
}

/// Opens a classifier from a weights file (any supported format, torchvision / authors' key
/// names), a training output folder (`intervene train classifier --out DIR`: its `config.json`
/// names the architecture, its `model.safetensors` holds the weights) or a folder name in the
/// bundled `models/` (e.g. `mobilenet_v2`). Keys it does not use other than batch-norm counters
/// are reported as a warning; missing or mis-shaped keys are errors.
pub fn open(path_or_name: &str, arch: Option<Arch>, device: &candle_core::Device) -> anyhow::Result<Opened> {
    use anyhow::Context as _;
    let mut path = std::path::PathBuf::from(path_or_name);
    let mut arch = arch;
    if let Some(run) = crate::train::output::TrainedModel::find(&path)? {
        arch = arch.or(Some(run.arch.inference()));
        path = run.weights;
    } else if !path.exists() {
        let dir = crate::bundled_models_dir().join(path_or_name);
        let file = std::fs::read_dir(&dir).ok().and_then(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("pth" | "pt" | "bin" | "safetensors")))
        });
        path = file.with_context(|| {
            format!(
                "no classifier at '{path_or_name}': give a weights file, a training output folder, or a folder name in {}",
                crate::bundled_models_dir().display()
            )
        })?;
    } else if path.is_dir() {
        anyhow::bail!(
            "{} is a folder but not a training output (no config.json with model.safetensors): give a weights file",
            path.display()
        );
    }
    let map = crate::checkpoint::load(&path)?;
    open_map(map, arch, &path, device)
}

/// Builds a classifier from a state dict already in memory (`source` names it in messages).
pub fn open_map(
    map: crate::checkpoint::TensorMap,
    arch: Option<Arch>,
    source: &std::path::Path,
    device: &candle_core::Device,
) -> anyhow::Result<Opened> {
    let path = source.to_path_buf();
    let arch = match arch.or_else(|| Arch::detect(&map)) {
        Some(a) => a,
        None => anyhow::bail!(
            "cannot tell the architecture of {} from its keys; give --arch (resnet18, resnet34, resnet50, mobilenet_v2, mnist-cnn, cgn-ensemble)",
            path.display()
        ),
    };
    let rows = |k: &str| map.get(k).map(|w| w.dims()[0]);
    let num_classes = match arch {
        Arch::MobileNetV2 => rows("classifier.1.weight"),
        Arch::MnistCnn => rows("cls.0.weight"),
        Arch::CgnEnsemble => rows("m_shape.1.weight"),
        _ => rows("fc.weight"),
    }
    .unwrap_or(1000);
    let tracked = crate::checkpoint::TrackedWeights::new(map);
    let vb = tracked.var_builder(candle_core::DType::F32, device);
    let built: candle_core::Result<Box<dyn Staged + Send + Sync>> = match arch {
        Arch::MobileNetV2 => super::mobilenet_v2::MobileNetV2::new(vb, num_classes).map(|m| Box::new(m) as _),
        Arch::MnistCnn => super::mnist_cnn::MnistCnn::new(vb, num_classes).map(|m| Box::new(m) as _),
        Arch::CgnEnsemble => super::cgn_ensemble::CgnEnsemble::new(vb, num_classes).map(|m| Box::new(m) as _),
        a => {
            let cfg = match a {
                Arch::ResNet34 => super::resnet::ResNetConfig::resnet34(),
                Arch::ResNet50 => super::resnet::ResNetConfig::resnet50(),
                _ => super::resnet::ResNetConfig::resnet18(),
            };
            super::resnet::ResNet::new(vb, &super::resnet::ResNetConfig { num_classes, ..cfg })
                .map(|m| Box::new(m) as _)
        }
    };
    let report = tracked.report();
    let model = built.map_err(|e| anyhow::anyhow!("{}: cannot build {arch:?}: {e} ({report})", path.display()))?;
    if !report.missing.is_empty() || !report.mismatched.is_empty() {
        anyhow::bail!("{}: the weights do not fit {arch:?}: {report}", path.display());
    }
    if report.unexpected.iter().any(|k| !k.ends_with("num_batches_tracked")) {
        tracing::warn!("{}: {report}", path.display());
    }
    Ok(Opened { model, arch, num_classes, source: path })
}
