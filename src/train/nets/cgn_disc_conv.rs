//! The wildlife variant's convolutional discriminator of the MNIST CGN (reference:
//! autonomousvision/counterfactual_generative_networks `mnists/models/discriminator.py`,
//! `DiscConv`): the label becomes a fourth input channel
//! (`label_embedding (classes, 1)` broadcast over the image), then
//! `[Conv(k, s, no bias) → BN → LeakyReLU 0.2]` × 4 with (4→ndf, 3, 1), (ndf→2ndf, 3, 1),
//! (2ndf→4ndf, 4, 2), (4ndf→4ndf, 4, 2), `AvgPool(3)` and a 1×1 conv to one score
//! (`model.{0,1,3,4,6,7,9,10,13}`). On 32×32: 30, 28, 13, 5, then the pool keeps the top-left
//! 3×3 window (1×1). `init_net` default: conv weights N(0, 0.02), BN weights N(1, 0.02), bias 0;
//! the embedding keeps PyTorch's N(0, 1).

use candle_core::{Result, Tensor};

use super::layers::{BatchNorm, Builder, Conv, Init};
use crate::train::ops::{self, ConvCfg, Pool};

/// `DiscConv`.
pub struct CgnDiscConv {
    emb: Tensor,
    blocks: Vec<(Conv, BatchNorm)>,
    out: Conv,
}

impl CgnDiscConv {
    pub fn new(b: &mut Builder, ndf: usize) -> Result<Self> {
        let emb = b.scope("label_embedding", |s| s.param("weight", &[10, 1], Init::Normal(1.0)))?;
        let spec =
            [(0, 4, ndf, 3, 1), (3, ndf, 2 * ndf, 3, 1), (6, 2 * ndf, 4 * ndf, 4, 2), (9, 4 * ndf, 4 * ndf, 4, 2)];
        let (blocks, out) = b.scope("model", |m| {
            let mut blocks = Vec::new();
            for (i, cin, cout, k, s) in spec {
                let conv = m.scope(i, |c| c.conv(cin, cout, k, ConvCfg::new(s, 0), false, Init::Normal(0.02)))?;
                let bn = m.scope(i + 1, |n| n.batch_norm(cout))?;
                blocks.push((conv, bn));
            }
            let out = m.scope(13, |c| c.conv(4 * ndf, 1, 1, ConvCfg::new(1, 0), false, Init::Normal(0.02)))?;
            Ok((blocks, out))
        })?;
        // init_net: BN weights N(1, 0.02).
        let draws: Option<Vec<Vec<f32>>> = b.rng().map(|rng| {
            blocks
                .iter()
                .map(|(_, bn)| (0..bn.weight.elem_count()).map(|_| (1.0 + 0.02 * rng.normal()) as f32).collect())
                .collect()
        });
        for ((_, bn), d) in blocks.iter().zip(draws.unwrap_or_default()) {
            let key = format!("{}.weight", bn.buf.prefix);
            if let Some((_, v)) = b.vars().iter().find(|(k, _)| *k == key) {
                v.set(&Tensor::from_vec(d, bn.weight.shape(), bn.weight.device())?)?;
            }
        }
        Ok(Self { emb, blocks, out })
    }

    /// Scores `(b)` of `x (b, 3, h, w)` with labels `y (b)`; batch norms in training mode when
    /// `train`.
    pub fn forward(&self, x: &Tensor, y: &Tensor, train: bool) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let e = self.emb.index_select(y, 0)?.reshape((b, 1, 1, 1))?.broadcast_as((b, 1, h, w))?.contiguous()?;
        let mut t = Tensor::cat(&[x, &e], 1)?;
        for (conv, bn) in &self.blocks {
            t = bn.forward_act(&conv.forward(&t)?, train, ops::BnAct::Leaky(0.2))?;
        }
        let t = crate::train::ops::avg_pool2d(&t, Pool { k: 3, stride: 3, padding: 0 })?;
        self.out.forward(&t)?.flatten_all()
    }
}
