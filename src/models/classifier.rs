//! What every image classifier offers the explanation code: named stages that can be run one by
//! one (so a CAM can stop at any layer and take gradients from there), a pooled feature, and a
//! head.

use candle_core::{Result, Tensor, Var};

/// A classifier as a list of named stages followed by global pooling and a linear head.
pub trait Staged {
    /// Layer names in PyTorch notation (`features.18`, `layer4.1`).
    fn stage_names(&self) -> Vec<String>;
    /// Runs stage `i` on `x`.
    fn run_stage(&self, i: usize, x: &Tensor) -> Result<Tensor>;
    /// The penultimate feature (`(b, c, h, w) → (b, c)`), used by the log P(x|z) estimate.
    fn pooled(&self, x: &Tensor) -> Result<Tensor>;
    /// The linear classifier on pooled features.
    fn head(&self, pooled: &Tensor) -> Result<Tensor>;
    /// The default CAM layer (ResNet `layer4[-1]`, MobileNet `features[-1]`).
    fn default_cam_stage(&self) -> usize;

    /// Index of a stage by name.
    fn stage_index(&self, name: &str) -> Option<usize> {
        self.stage_names().iter().position(|n| n == name)
    }

    /// Index of a stage by any name the model accepts (aliases like `layer4[-1]` included).
    fn resolve_layer(&self, name: &str) -> Option<usize> {
        self.stage_index(name)
    }

    /// Runs stage `i` where no gradient is needed (a faster CPU path where the model has one).
    fn run_stage_nograd(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        self.run_stage(i, x)
    }

    /// Runs stages `[from, to)` (differentiable).
    fn run_range(&self, from: usize, to: usize, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for i in from..to {
            h = self.run_stage(i, &h)?;
        }
        Ok(h)
    }

    /// Runs stages `[from, to)` without gradients.
    fn run_range_nograd(&self, from: usize, to: usize, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for i in from..to {
            h = self.run_stage_nograd(i, &h)?;
        }
        Ok(h)
    }

    /// Logits of an input.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.stage_names().len();
        let h = self.run_range_nograd(0, n, x)?;
        self.head(&self.pooled(&h)?)
    }

    /// The activation after stage `layer`, and the gradient of `logit[class]` with respect to it —
    /// the backward pass stops at that activation (nothing before it is differentiated).
    fn activation_and_gradient(&self, x: &Tensor, layer: usize, class: Option<usize>) -> Result<ActGrad> {
        let n = self.stage_names().len();
        let act = self.run_range_nograd(0, layer + 1, x)?.detach();
        let var = Var::from_tensor(&act)?;
        let rest = self.run_range(layer + 1, n, var.as_tensor())?;
        let logits = self.head(&self.pooled(&rest)?)?;
        let row = logits.get(0)?;
        let class = match class {
            Some(c) => c,
            None => row.argmax(0)?.to_scalar::<u32>()? as usize,
        };
        let target = row.get(class)?;
        let grads = target.backward()?;
        let grad = grads
            .get(var.as_tensor())
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg("no gradient reached the target layer".into()))?;
        Ok(ActGrad { act, grad, logits: logits.detach(), class })
    }
}

/// An activation, its gradient, the logits and the class the gradient is for.
#[derive(Debug, Clone)]
pub struct ActGrad {
    /// `(1, c, h, w)`
    pub act: Tensor,
    /// `(1, c, h, w)`
    pub grad: Tensor,
    /// `(1, classes)`
    pub logits: Tensor,
    pub class: usize,
}

/// Architectures `intervene cam` (and the Explain pane) can open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "resnet18")]
    ResNet18,
    #[value(name = "resnet34")]
    ResNet34,
    #[value(name = "resnet50")]
    ResNet50,
    #[value(name = "mobilenet_v2")]
    MobileNetV2,
    #[value(name = "mnist-cnn")]
    MnistCnn,
    /// The CGN classifier ensemble (ResNet-50 trunk + shape/texture/background heads; CAMs of the average).
    #[value(name = "cgn-ensemble")]
    CgnEnsemble,
}

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
