//! Dispatch between the portable candle path (any device) and the fused CPU kernels of
//! [`crate::ops`]. Interim: everything runs the portable path until the CPU kernels land.

use candle_core::{Result, Tensor};

use super::layers::{Affine, Conv, GenBlock, SelfAttn};

/// A GenBlock forward.
pub fn gen_block(block: &GenBlock, x: &Tensor, a: &[Affine; 4]) -> Result<Tensor> {
    block.forward(x, a)
}

/// A self-attention forward.
pub fn attention(attn: &SelfAttn, x: &Tensor) -> Result<Tensor> {
    attn.forward(x)
}

/// Final BN → ReLU → conv_to_rgb (3 channels) → tanh.
pub fn head(conv_to_rgb: &Conv, h: &Tensor, a: &Affine) -> Result<Tensor> {
    conv_to_rgb.forward(&a.relu(h)?)?.tanh()
}
