//! Dispatch between the portable candle path (any device) and the fused CPU kernels of
//! [`crate::ops`] (chosen by [`crate::ops::backend`]): on the CPU a GenBlock is four fused convolutions (BN+ReLU(+upsample)+conv,
//! bias and skip folded into the GEMM) with no intermediate BN/ReLU tensors.

use candle_core::{Device, Result, Tensor};

use super::layers::{Affine, Conv, GenBlock, SelfAttn};
use crate::ops::{self, fused_for, Conv2dArgs, CpuView, PreAct, Residual};

/// Runs one fused convolution on CPU tensors.
/// `skip`: the GenBlock input whose first channels (upsampled) are added to the output.
fn conv(x: &Tensor, conv: &Conv, pre: Option<&Affine>, up: bool, skip: Option<&Tensor>) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = if up { (2 * h, 2 * w) } else { (h, w) };
    let o = conv.out_channels();
    let x = x.contiguous()?;
    let xv = CpuView::new(&x)?;
    let wv = CpuView::new(&conv.weight)?;
    let bv = conv.bias.as_ref().map(CpuView::new).transpose()?;
    let rv = skip.map(|t| Ok::<_, candle_core::Error>((CpuView::new(t)?, t.dims4()?))).transpose()?;
    let pv =
        pre.map(|a| Ok::<_, candle_core::Error>((CpuView::new(&a.scale)?, CpuView::new(&a.shift)?))).transpose()?;
    let mut out = ops::output_buffer(b * o * oh * ow);
    let pre = match &pv {
        Some((s, t)) => Some(PreAct { scale: s.slice()?, shift: t.slice()? }),
        None => None,
    };
    let args = Conv2dArgs {
        x: xv.slice()?,
        dims: [b, c, h, w],
        pre,
        upsample2: up,
        weight: wv.slice()?,
        out_channels: o,
        kernel: conv.kernel(),
        bias: bv.as_ref().map(|v| v.slice()).transpose()?,
        residual: match &rv {
            Some((v, (_, c, h, w))) => Some(Residual::Skip { x: v.slice()?, c: *c, h: *h, w: *w }),
            None => None,
        },
        winograd_u: Some(&conv.winograd),
    };
    ops::conv2d(&args, &mut out)?;
    Tensor::from_vec(out, (b, o, oh, ow), &Device::Cpu)
}

/// A GenBlock forward.
pub fn gen_block(block: &GenBlock, x: &Tensor, a: &[Affine; 4]) -> Result<Tensor> {
    if !fused_for(x) {
        return block.forward(x, a);
    }
    let cin = x.dim(1)?;
    let cout = block.conv_3.out_channels();
    let up = block.up_sample;
    let keep = if block.drop_channels { cin / 2 } else { cin };
    if keep != cout {
        candle_core::bail!("GenBlock skip keeps {keep} channels but the block outputs {cout}");
    }
    let x = x.contiguous()?;
    let h0 = conv(&x, &block.conv_0, Some(&a[0]), false, None)?;
    let h1 = conv(&h0, &block.conv_1, Some(&a[1]), up, None)?;
    drop(h0);
    let h2 = conv(&h1, &block.conv_2, Some(&a[2]), false, None)?;
    drop(h1);
    // The skip (first `cout` channels of x, upsampled) is added while initialising conv_3's output.
    conv(&h2, &block.conv_3, Some(&a[3]), false, Some(&x))
}

/// A self-attention forward.
pub fn attention(attn: &SelfAttn, x: &Tensor) -> Result<Tensor> {
    if !fused_for(x) {
        return attn.forward(x);
    }
    let (b, c, h, w) = x.dims4()?;
    let x = x.contiguous()?;
    let xv = CpuView::new(&x)?;
    let (t, p, g, o) = (
        CpuView::new(&attn.snconv1x1_theta.weight)?,
        CpuView::new(&attn.snconv1x1_phi.weight)?,
        CpuView::new(&attn.snconv1x1_g.weight)?,
        CpuView::new(&attn.snconv1x1_o_conv.weight)?,
    );
    let mut out = ops::output_buffer(b * c * h * w);
    let args = ops::AttnArgs {
        x: xv.slice()?,
        dims: [b, c, h, w],
        theta: t.slice()?,
        phi: p.slice()?,
        g: g.slice()?,
        o: o.slice()?,
        gamma: attn.gamma as f32,
    };
    ops::self_attention(&args, &mut out)?;
    Tensor::from_vec(out, (b, c, h, w), &Device::Cpu)
}

/// Final BN → ReLU → conv_to_rgb (3 channels) → tanh.
pub fn head(conv_to_rgb: &Conv, h: &Tensor, a: &Affine) -> Result<Tensor> {
    if !fused_for(h) {
        return conv_to_rgb.forward(&a.relu(h)?)?.tanh();
    }
    conv(h, conv_to_rgb, Some(a), false, None)?.tanh()
}
