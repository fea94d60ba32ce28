//! What every image classifier offers the explanation code: named stages that can be run one by
//! one (so a CAM can stop at any layer and take gradients from there), a pooled feature, and a
//! head. A leaf: model files implement it; the registry ([`super::classifier`]) opens them.

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
