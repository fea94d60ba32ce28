//! A convolution followed by training-mode batch norm (and its fused activation) as one op.
//!
//! As two ops, the convolution's output is a graph node of its own, and candle's backward
//! pass gives every node's gradient a zero-filled buffer and adds the incoming gradient onto
//! it: a `memset` and an add over an output-sized tensor for each of ResNet-18's 20
//! convolution → batch-norm edges, with nothing to sum (the convolution has one consumer). Here
//! the convolution's output is kept inside the op, the batch norm's input gradient is handed
//! straight to the convolution's backward, and the graph sees one node. The arithmetic is
//! exactly the two ops' ([`super::conv`], [`super::norm`]), so the results are bitwise equal.
//!
//! The batch norm's weight and bias travel as one `(2c)` tensor (candle's custom ops take at
//! most three arguments); the concatenation is `c`-sized.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::conv::Conv;
use super::f32_slice;
use super::norm::{backward, forward_planes, BatchStats, BnAct};
use super::ConvCfg;

/// What the forward pass keeps for the backward pass.
struct Saved {
    /// The convolution's output (the batch norm's input).
    z: Tensor,
    stats: BatchStats,
}

struct ConvBn {
    conv: Conv,
    eps: f64,
    act: BnAct,
    saved: Arc<Mutex<Option<Saved>>>,
}

impl CustomOp3 for ConvBn {
    fn name(&self) -> &'static str {
        "intervene-conv2d-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (z, shape) = self.conv.fwd((s1, l1), (s2, l2), None)?;
        let CpuStorage::F32(z) = z else { candle_core::bail!("conv_bn: the convolution did not give f32") };
        let &[b, c, h, w] = shape.dims() else { candle_core::bail!("conv_bn: expected a 4-D output, got {shape:?}") };
        let gb = f32_slice(s3, l3, "conv_bn weight and bias")?;
        if gb.len() != 2 * c {
            candle_core::bail!("conv_bn: {c} channels but {} batch-norm weights and biases", gb.len());
        }
        let (y, stats) = forward_planes(&z, (b, c, h * w), &gb[..c], &gb[c..], self.eps, self.act)?;
        let z = Tensor::from_vec(z, shape.clone(), &candle_core::Device::Cpu)?;
        *self.saved.lock().map_err(|_| candle_core::Error::Msg("conv_bn: state poisoned".into()))? =
            Some(Saved { z, stats });
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        gb: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (z, stats) = {
            let saved = self.saved.lock().map_err(|_| candle_core::Error::Msg("conv_bn: state poisoned".into()))?;
            let s = saved.as_ref().ok_or_else(|| candle_core::Error::Msg("conv_bn: backward before forward".into()))?;
            (s.z.clone(), s.stats.clone())
        };
        let c = z.dim(1)?;
        let gamma = gb.narrow(0, 0, c)?.to_vec1::<f32>()?;
        let need_dz = x.track_op() || w.track_op();
        let (dz, dg, db) = backward(&z, y, dy, stats, gamma, self.eps, self.act, need_dz)?;
        let (dx, dw) = match dz {
            Some(dz) => self.conv.grads(x, w, &dz)?,
            None => (None, None),
        };
        let dgb = if gb.track_op() { Some(Tensor::from_vec([dg, db].concat(), 2 * c, x.device())?) } else { None };
        Ok((dx, dw, dgb))
    }
}

/// `batch_norm_train(conv2d(x, w), γ, β)` followed by `act`, one op on the CPU (no bias: a
/// batch norm cancels it). Returns the output and the batch statistics.
pub fn conv_bn_train(
    x: &Tensor,
    w: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    cfg: ConvCfg,
    eps: f64,
    act: BnAct,
) -> Result<(Tensor, BatchStats)> {
    let saved = Arc::new(Mutex::new(None));
    let op = ConvBn { conv: Conv { cfg, up: false }, eps, act, saved: saved.clone() };
    let gb = Tensor::cat(&[gamma.flatten_all()?, beta.flatten_all()?], 0)?;
    let y = x.contiguous()?.apply_op3(&w.contiguous()?, &gb, op)?;
    let stats = saved
        .lock()
        .map_err(|_| candle_core::Error::Msg("conv_bn: state poisoned".into()))?
        .as_ref()
        .map(|s| s.stats.clone())
        .unwrap_or_default();
    Ok((y, stats))
}
