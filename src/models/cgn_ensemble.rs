//! The CGN classifier ensemble (Sauer & Geiger, 2021; reference:
//! autonomousvision/counterfactual_generative_networks, `imagenet/models/classifier_ensemble.py`,
//! `InvariantEnsemble('resnet50', cut=1)`): a ResNet-50 trunk (`backbone.*`, the torchvision
//! children without `fc`) and three linear heads on the pooled 2048-d feature — `m_shape.1`,
//! `m_texture.1`, `m_bg.1` (each `Sequential(Flatten, Linear(2048, 1000))`).
//!
//! The CAM head is selectable: one mechanism's logits, or the ensemble averages the paper
//! evaluates (`avg` = (shape + texture + bg)/3, `shape_texture` = (shape + texture)/2).

use candle_core::{Module as _, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::resnet::{ResNetConfig, ResNetTrunk, TrunkKeys};

/// Which logits the ensemble reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnsembleHead {
    Shape,
    Texture,
    Background,
    #[default]
    Average,
    ShapeTexture,
}

/// The ensemble.
#[derive(Debug, Clone)]
pub struct CgnEnsemble {
    pub backbone: ResNetTrunk,
    pub m_shape: Linear,
    pub m_texture: Linear,
    pub m_bg: Linear,
    pub head: EnsembleHead,
}

impl CgnEnsemble {
    pub fn new(vb: VarBuilder, num_classes: usize) -> Result<Self> {
        let cfg = ResNetConfig { num_classes, ..ResNetConfig::resnet50() };
        let backbone = ResNetTrunk::new(vb.pp("backbone"), &cfg, TrunkKeys::Sequential)?;
        let lin = |n: &str| candle_nn::linear(2048, num_classes, vb.pp(n).pp(1));
        Ok(Self {
            backbone,
            m_shape: lin("m_shape")?,
            m_texture: lin("m_texture")?,
            m_bg: lin("m_bg")?,
            head: EnsembleHead::Average,
        })
    }

    /// Whether a checkpoint has the ensemble's keys.
    pub fn matches(keys: &dyn Fn(&str) -> bool) -> bool {
        keys("backbone.0.weight") && keys("m_shape.1.weight") && keys("m_bg.1.weight")
    }

    /// The three heads' logits `(shape, texture, background)` from pooled features.
    pub fn heads(&self, pooled: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        Ok((self.m_shape.forward(pooled)?, self.m_texture.forward(pooled)?, self.m_bg.forward(pooled)?))
    }
}

impl super::staged::Staged for CgnEnsemble {
    fn stage_names(&self) -> Vec<String> {
        self.backbone.stage_names()
    }
    fn run_stage(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        self.backbone.run_stage(i, x)
    }
    fn run_stage_nograd(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        self.backbone.run_stage_nograd(i, x)
    }
    fn pooled(&self, x: &Tensor) -> Result<Tensor> {
        self.backbone.pooled(x)
    }
    fn head(&self, pooled: &Tensor) -> Result<Tensor> {
        let (s, t, b) = self.heads(pooled)?;
        match self.head {
            EnsembleHead::Shape => Ok(s),
            EnsembleHead::Texture => Ok(t),
            EnsembleHead::Background => Ok(b),
            EnsembleHead::Average => ((s + t)? + b)? / 3.0,
            EnsembleHead::ShapeTexture => (s + t)? / 2.0,
        }
    }
    fn default_cam_stage(&self) -> usize {
        self.backbone.stage_names().len() - 1
    }
    fn resolve_layer(&self, name: &str) -> Option<usize> {
        self.backbone.resolve(name)
    }
}
