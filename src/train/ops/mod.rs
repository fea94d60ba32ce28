//! Differentiable layers for training, on the CPU as candle custom ops with their own backward
//! (im2col/col2im + GEMM convolutions, fused batch norm + ReLU, pooling with PyTorch's
//! semantics), and on other devices through candle's built-in ops.
//!
//! candle 0.11.1's CPU training path is 5–8× slower than PyTorch's (see
//! `shared/reference/TRAINING.md`): the convolution's input gradient is a naive
//! `conv_transpose2d` loop, the kernel gradient is always computed, `max_pool2d` has no padding
//! and no backward when the window differs from the stride, and `avg_pool2d`'s backward is wrong
//! when windows do not tile. Custom ops replace exactly those pieces without forking candle.
//!
//! | module | op |
//! |---|---|
//! | [`conv`] | dense convolution, any kernel / stride / padding, optional bias |
//! | [`conv_few`], [`conv_tiny`] | its paths for layers of at most 4 outputs and for maps of at most 16 pixels |
//! | [`depthwise`] | depthwise convolution (direct loops) |
//! | [`norm`] | training-mode batch norm, optionally fused with ReLU |
//! | [`conv_bn`] | a convolution and the batch norm after it, as one node |
//! | [`pool`] | max pooling with padding, average pooling |
//! | [`act`] | ReLU with a one-pass backward |
//! | [`pointwise`] | LeakyReLU, nearest ×2 upsampling, instance norm |
//! | [`linear`] | fully connected layer with contiguous gradients |
//! | [`gemm`] | row-major GEMM views over the `gemm` crate |

pub mod act;
pub mod conv;
pub mod conv_bn;
pub mod conv_few;
pub mod conv_tiny;
pub mod depthwise;
pub mod gemm;
pub mod linear;
pub mod norm;
mod norm_loops;
pub mod pointwise;
pub mod pool;
pub mod reduce;
pub mod taps;
pub mod transpose;

use candle_core::{CpuStorage, Layout, Result, Tensor};

pub use conv::ConvCfg;
pub use linear::linear;
pub use norm::{BatchStats, BnAct};
pub use pool::Pool;

/// The f32 values of a contiguous storage (the ops make their inputs contiguous first).
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what} must be f32, got {:?}", candle_core::backend::BackendStorage::dtype(s))
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

/// Grows a scratch buffer to at least `n` values (never shrinks: buffers are reused).
pub(crate) fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Runs `f(index, chunk)` over the `per`-long chunks of `out` (planes, usually), across rayon's
/// pool when it has more than one thread. Each chunk is written by one call, so results do not
/// depend on the thread count.
pub(crate) fn for_each_chunk(out: &mut [f32], per: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    use rayon::prelude::*;
    if rayon::current_num_threads() > 1 {
        out.par_chunks_mut(per).enumerate().for_each(|(i, p)| f(i, p));
    } else {
        out.chunks_mut(per).enumerate().for_each(|(i, p)| f(i, p));
    }
}

/// Convolution: the custom op on the CPU, candle's `conv2d` elsewhere.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, cfg: ConvCfg) -> Result<Tensor> {
    if x.device().is_cpu() {
        return conv::conv2d(x, w, bias, cfg);
    }
    let groups = if cfg.depthwise { x.dim(1)? } else { 1 };
    let y = x.conv2d(w, cfg.padding, cfg.stride, 1, groups)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

/// `conv2d(upsample2(x), w) + bias` (nearest ×2), fused on the CPU ([`conv::conv2d_up2`]).
pub fn conv2d_up2(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, cfg: ConvCfg) -> Result<Tensor> {
    if x.device().is_cpu() {
        return conv::conv2d_up2(x, w, bias, cfg);
    }
    conv2d(&pointwise::upsample2(x)?, w, bias, cfg)
}

/// ReLU.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        act::relu(x)
    } else {
        x.relu()
    }
}

/// `relu(a + b)`, one node on the CPU ([`act::add_relu`]).
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.device().is_cpu() {
        act::add_relu(a, b)
    } else {
        (a + b)?.relu()
    }
}

/// Training-mode batch norm (+ ReLU or LeakyReLU) and the batch statistics.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: BnAct,
) -> Result<(Tensor, BatchStats)> {
    if x.device().is_cpu() {
        return norm::batch_norm_train(x, gamma, beta, eps, act);
    }
    // Other devices: candle ops, statistics over every axis but the channel one.
    let c = x.dim(1)?;
    let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
    let shape: Vec<usize> = x.dims().iter().enumerate().map(|(i, &d)| if i == 1 { d } else { 1 }).collect();
    let mean = x.mean_keepdim(dims.as_slice())?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(dims.as_slice())?;
    let y = centred
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_mul(&gamma.reshape(shape.as_slice())?)?
        .broadcast_add(&beta.reshape(shape.as_slice())?)?;
    let y = match act {
        BnAct::Identity => y,
        BnAct::Relu => y.relu()?,
        BnAct::Leaky(a) => pointwise::leaky_relu(&y, a)?,
    };
    let n = x.elem_count() / c;
    let stats =
        BatchStats { mean: mean.detach().flatten_all()?.to_vec1()?, var: var.detach().flatten_all()?.to_vec1()?, n };
    Ok((y, stats))
}

/// `batch_norm_train(conv2d(x, w), γ, β, eps, act)` without a convolution bias: one op on the
/// CPU ([`conv_bn::conv_bn_train`]), the two ops elsewhere.
pub fn conv_bn_train(
    x: &Tensor,
    w: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    cfg: ConvCfg,
    eps: f64,
    act: BnAct,
) -> Result<(Tensor, BatchStats)> {
    if x.device().is_cpu() {
        return conv_bn::conv_bn_train(x, w, gamma, beta, cfg, eps, act);
    }
    batch_norm_train(&conv2d(x, w, None, cfg)?, gamma, beta, eps, act)
}

/// Max pooling with padding (−∞ never wins).
pub fn max_pool2d(x: &Tensor, p: Pool) -> Result<Tensor> {
    if x.device().is_cpu() {
        return pool::max_pool2d(x, p);
    }
    // Other devices: the maximum over the k² strided shifts of the −∞-padded input
    // (differentiable with candle's `maximum`).
    let (_, _, h, w) = x.dims4()?;
    let out = |n: usize| (n + 2 * p.padding - p.k) / p.stride + 1;
    let (oh, ow) = (out(h), out(w));
    let big = -3.0e38f64;
    let pad_to = |t: Tensor, dim: usize, before: usize, total: usize| -> Result<Tensor> {
        let n = t.dim(dim)?;
        let after = total.saturating_sub(before + n);
        let mut parts = Vec::new();
        let shape = |len: usize| -> Vec<usize> {
            t.dims().iter().enumerate().map(|(i, &d)| if i == dim { len } else { d }).collect()
        };
        if before > 0 {
            parts.push((Tensor::ones(shape(before), t.dtype(), t.device())? * big)?);
        }
        parts.push(t.clone());
        if after > 0 {
            parts.push((Tensor::ones(shape(after), t.dtype(), t.device())? * big)?);
        }
        Tensor::cat(&parts, dim)
    };
    let xp = pad_to(x.clone(), 2, p.padding, p.stride * oh + p.k)?;
    let xp = pad_to(xp, 3, p.padding, p.stride * ow + p.k)?;
    let (b, c, _, _) = xp.dims4()?;
    let mut best: Option<Tensor> = None;
    for ky in 0..p.k {
        for kx in 0..p.k {
            let v = xp.narrow(2, ky, p.stride * oh)?.narrow(3, kx, p.stride * ow)?;
            let v = v
                .reshape((b, c, oh, p.stride, ow, p.stride))?
                .narrow(3, 0, 1)?
                .narrow(5, 0, 1)?
                .reshape((b, c, oh, ow))?;
            best = Some(match best {
                None => v,
                Some(m) => m.maximum(&v)?,
            });
        }
    }
    best.ok_or_else(|| candle_core::Error::Msg("max_pool2d: empty window".into()))
}

/// Average pooling without padding (floor mode).
pub fn avg_pool2d(x: &Tensor, p: Pool) -> Result<Tensor> {
    if x.device().is_cpu() {
        return pool::avg_pool2d(x, p);
    }
    if p.padding != 0 || p.k != p.stride {
        candle_core::bail!("avg_pool2d: only windows equal to the stride without padding off the CPU");
    }
    // candle's backward is only right when the windows tile the input: cut it to the covered part.
    let (_, _, h, w) = x.dims4()?;
    let (oh, ow) = ((h - p.k) / p.stride + 1, (w - p.k) / p.stride + 1);
    let covered = |o: usize| (o - 1) * p.stride + p.k;
    x.narrow(2, 0, covered(oh))?.narrow(3, 0, covered(ow))?.contiguous()?.avg_pool2d_with_stride(p.k, p.stride)
}
