//! BigGAN-deep's generator in training mode (Brock et al., 2019), with exactly the hub
//! checkpoint's structure and key names (`pytorch_pretrained_biggan/model.py`), so
//! what it learns opens in [`crate::models::biggan`] unchanged:
//!
//! - `embeddings.weight (z_dim, classes)`: a Linear without bias and without SN;
//!   `cond = cat(z, embed(y))`;
//! - `generator.gen_z`: SN-Linear `2·z_dim → 4·4·16·ch`, reshaped **NHWC** then permuted;
//! - `generator.layers.{i}`: bottleneck GenBlocks (conditional BN → ReLU → conv, reduction 4,
//!   nearest ×2 inside when upsampling, skip = first `out` channels) and one self-attention layer
//!   inserted at `attention_layer_position`;
//! - `generator.bn` (plain) → ReLU → `generator.conv_to_rgb` (SN 3×3, `ch` outputs of which the
//!   first 3 are used) → tanh.
//!
//! While training every batch norm normalises with the **batch** statistics (biased variance,
//! eps = `cfg.eps`) and every spectral norm runs one power iteration per forward. The hub's
//! per-truncation tables `running_means`/`running_vars [n_stats, C]` do not exist during
//! training: [`Generator::forward`] can record each batch norm's batch statistics, which is how
//! the standing statistics that fill the tables are computed (`crate::train::biggan`).
//!
//! Initialisation follows BigGAN-PyTorch's `ortho`: every weight orthogonal, biases 0, the
//! attention γ 0, the plain BN weight 1 and bias 0.

use candle_core::{DType, Result, Tensor, D};

use super::init_ext::{self, WInit};
use super::layers::{Builder, Init};
use super::sn::{SnBuffers, SnWeight};
use crate::models::biggan::BigGanConfig;
use crate::train::ops::{self, BatchStats, ConvCfg, Pool};

/// A spectrally normalised convolution (stride 1, "same" padding).
#[derive(Debug, Clone)]
pub struct SnConv {
    pub w: SnWeight,
    pub b: Option<Tensor>,
    pub k: usize,
}

impl SnConv {
    pub fn new(
        b: &mut Builder,
        name: impl ToString,
        cin: usize,
        cout: usize,
        k: usize,
        bias: bool,
        eps: f64,
        sn: &mut Vec<std::sync::Arc<SnBuffers>>,
    ) -> Result<Self> {
        b.scope(name, |s| {
            let w = sn_param(s, &[cout, cin, k, k], eps, sn)?;
            let bias = if bias { Some(s.param("bias", &[cout], Init::Const(0.0))?) } else { None };
            Ok(Self { w, b: bias, k })
        })
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        ops::conv2d(x, &self.w.weight(train)?, self.b.as_ref(), ConvCfg::new(1, self.k / 2))
    }
    /// The convolution of `x` upsampled ×2 (nearest), as one op.
    pub fn forward_up2(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        ops::conv2d_up2(x, &self.w.weight(train)?, self.b.as_ref(), ConvCfg::new(1, self.k / 2))
    }

    /// Only the first `n` output channels (σ still from the whole matrix).
    pub fn forward_first(&self, x: &Tensor, n: usize, train: bool) -> Result<Tensor> {
        let w = self.w.weight(train)?.narrow(0, 0, n)?;
        let b = self.b.as_ref().map(|b| b.narrow(0, 0, n)).transpose()?;
        ops::conv2d(x, &w, b.as_ref(), ConvCfg::new(1, self.k / 2))
    }
}

/// `weight_orig` (orthogonal) with its SN buffers.
pub fn sn_param(
    b: &mut Builder,
    shape: &[usize],
    eps: f64,
    sn: &mut Vec<std::sync::Arc<SnBuffers>>,
) -> Result<SnWeight> {
    SnWeight::new(b, shape, WInit::Orthogonal(1.0), eps, sn)
}

/// A spectrally normalised Linear `y = x·Wᵀ (+ b)`.
#[derive(Debug, Clone)]
pub struct SnLinear {
    pub w: SnWeight,
    pub b: Option<Tensor>,
}

impl SnLinear {
    pub fn new(
        b: &mut Builder,
        name: impl ToString,
        cin: usize,
        cout: usize,
        bias: bool,
        eps: f64,
        sn: &mut Vec<std::sync::Arc<SnBuffers>>,
    ) -> Result<Self> {
        b.scope(name, |s| {
            let w = sn_param(s, &[cout, cin], eps, sn)?;
            let bias = if bias { Some(s.param("bias", &[cout], Init::Const(0.0))?) } else { None };
            Ok(Self { w, b: bias })
        })
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        crate::train::ops::linear(x, &self.w.weight(train)?, self.b.as_ref())
    }
}

/// Where batch statistics go when recorded (standing statistics): one entry per batch norm, in
/// forward order.
pub type Record<'a> = Option<&'a mut Vec<BatchStats>>;

/// Batch-statistics normalisation `(x − μ_B)/√(σ²_B + eps)` (biased variance), differentiable.
pub fn normalize_batch(x: &Tensor, eps: f64, rec: &mut Record) -> Result<Tensor> {
    let c = x.dim(1)?;
    let dev = x.device();
    let (y, stats) = ops::batch_norm_train(
        x,
        &Tensor::ones(c, DType::F32, dev)?,
        &Tensor::zeros(c, DType::F32, dev)?,
        eps,
        ops::BnAct::Identity,
    )?;
    if let Some(r) = rec.as_deref_mut() {
        r.push(stats);
    }
    Ok(y)
}

/// Conditional batch norm (`BigGANBatchNorm` with `conditional=True`) in training mode:
/// `x̂·(1 + scale(cond)) + offset(cond)`, scale/offset SN-Linear without bias.
#[derive(Debug, Clone)]
pub struct CondBn {
    pub scale: SnLinear,
    pub offset: SnLinear,
    pub eps: f64,
}

impl CondBn {
    pub fn new(
        b: &mut Builder,
        name: impl ToString,
        c: usize,
        cond_dim: usize,
        eps: f64,
        sn: &mut Vec<std::sync::Arc<SnBuffers>>,
    ) -> Result<Self> {
        b.scope(name, |s| {
            Ok(Self {
                scale: SnLinear::new(s, "scale", cond_dim, c, false, eps, sn)?,
                offset: SnLinear::new(s, "offset", cond_dim, c, false, eps, sn)?,
                eps,
            })
        })
    }

    /// `x (b, c, h, w)`, `cond (b, cond_dim)`; ReLU after when `relu`.
    pub fn forward(&self, x: &Tensor, cond: &Tensor, relu: bool, train: bool, rec: &mut Record) -> Result<Tensor> {
        let (b, c) = (x.dim(0)?, x.dim(1)?);
        let xh = normalize_batch(x, self.eps, rec)?;
        let gain = (self.scale.forward(cond, train)? + 1.0)?.reshape((b, c, 1, 1))?;
        let off = self.offset.forward(cond, train)?.reshape((b, c, 1, 1))?;
        let y = xh.broadcast_mul(&gain)?.broadcast_add(&off)?;
        if relu {
            ops::relu(&y)
        } else {
            Ok(y)
        }
    }
}

/// The bottleneck GenBlock.
#[derive(Debug, Clone)]
pub struct GenBlock {
    pub bn: [CondBn; 4],
    pub conv: [SnConv; 4],
    pub up: bool,
    pub cout: usize,
}

impl GenBlock {
    pub fn forward(&self, x: &Tensor, cond: &Tensor, train: bool, rec: &mut Record) -> Result<Tensor> {
        let h = self.conv[0].forward(&self.bn[0].forward(x, cond, true, train, rec)?, train)?;
        let h = self.bn[1].forward(&h, cond, true, train, rec)?;
        // Upsample → conv fused: the 4×-sized activation never enters the graph.
        let h = if self.up { self.conv[1].forward_up2(&h, train)? } else { self.conv[1].forward(&h, train)? };
        let h = self.conv[2].forward(&self.bn[2].forward(&h, cond, true, train, rec)?, train)?;
        let h = self.conv[3].forward(&self.bn[3].forward(&h, cond, true, train, rec)?, train)?;
        let mut skip = if x.dim(1)? != self.cout { x.narrow(1, 0, self.cout)?.contiguous()? } else { x.clone() };
        if self.up {
            skip = ops::pointwise::upsample2(&skip)?;
        }
        h + skip
    }
}

/// Self-attention (`SelfAttn`, SAGAN): no 1/√d in the softmax, φ and g max-pooled 2×2.
#[derive(Debug, Clone)]
pub struct SelfAttn {
    pub theta: SnConv,
    pub phi: SnConv,
    pub g: SnConv,
    pub o: SnConv,
    pub gamma: Tensor,
}

impl SelfAttn {
    pub fn new(b: &mut Builder, c: usize, eps: f64, sn: &mut Vec<std::sync::Arc<SnBuffers>>) -> Result<Self> {
        Ok(Self {
            theta: SnConv::new(b, "snconv1x1_theta", c, c / 8, 1, false, eps, sn)?,
            phi: SnConv::new(b, "snconv1x1_phi", c, c / 8, 1, false, eps, sn)?,
            g: SnConv::new(b, "snconv1x1_g", c, c / 2, 1, false, eps, sn)?,
            o: SnConv::new(b, "snconv1x1_o_conv", c / 2, c, 1, false, eps, sn)?,
            gamma: b.param("gamma", &[1], Init::Const(0.0))?,
        })
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = h * w;
        let pool = Pool { k: 2, stride: 2, padding: 0 };
        let theta = self.theta.forward(x, train)?.reshape((b, c / 8, n))?;
        let phi = ops::max_pool2d(&self.phi.forward(x, train)?, pool)?.reshape((b, c / 8, n / 4))?;
        let attn = theta.transpose(1, 2)?.contiguous()?.matmul(&phi)?;
        let attn = candle_nn::ops::softmax(&attn, D::Minus1)?;
        let g = ops::max_pool2d(&self.g.forward(x, train)?, pool)?.reshape((b, c / 2, n / 4))?;
        let ag = g.matmul(&attn.transpose(1, 2)?.contiguous()?)?.reshape((b, c / 2, h, w))?;
        let o = self.o.forward(&ag, train)?;
        x + o.broadcast_mul(&self.gamma.reshape((1, 1, 1, 1))?)?
    }
}

#[derive(Debug, Clone)]
pub enum Layer {
    Block(Box<GenBlock>),
    Attention(Box<SelfAttn>),
}

/// The trainable generator and its class embedding.
#[derive(Debug, Clone)]
pub struct Generator {
    pub cfg: BigGanConfig,
    /// `embeddings.weight (z_dim, classes)`.
    pub embeddings: Tensor,
    pub gen_z: SnLinear,
    pub layers: Vec<Layer>,
    /// The final plain BN's `weight`, `bias`.
    pub bn_weight: Tensor,
    pub bn_bias: Tensor,
    pub conv_to_rgb: SnConv,
    pub sn: Vec<std::sync::Arc<SnBuffers>>,
}

impl Generator {
    /// Builds the generator for `cfg` (fresh from the builder's seed, or read from its map).
    pub fn new(b: &mut Builder, cfg: &BigGanConfig) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let (ch, cond, eps) = (cfg.channel_width, cfg.cond_dim(), cfg.eps);
        let mut sn = Vec::new();
        let embeddings = b.scope("embeddings", |s| {
            init_ext::param(s, "weight", &[cfg.z_dim, cfg.num_classes], WInit::Orthogonal(1.0))
        })?;
        let (gen_z, layers, bn_weight, bn_bias, conv_to_rgb) = b.scope("generator", |g| {
            let gen_z = SnLinear::new(g, "gen_z", cond, 16 * ch * 16, true, eps, &mut sn)?;
            let mut layers = Vec::new();
            g.scope("layers", |lv| {
                for (i, l) in cfg.layers.iter().enumerate() {
                    if i == cfg.attention_layer_position {
                        let idx = layers.len();
                        layers.push(Layer::Attention(Box::new(
                            lv.scope(idx, |a| SelfAttn::new(a, l.1 * ch, eps, &mut sn))?,
                        )));
                    }
                    let idx = layers.len();
                    let (cin, cout) = (l.1 * ch, l.2 * ch);
                    let mid = cin / 4;
                    let block = lv.scope(idx, |bl| {
                        Ok(GenBlock {
                            bn: [
                                CondBn::new(bl, "bn_0", cin, cond, eps, &mut sn)?,
                                CondBn::new(bl, "bn_1", mid, cond, eps, &mut sn)?,
                                CondBn::new(bl, "bn_2", mid, cond, eps, &mut sn)?,
                                CondBn::new(bl, "bn_3", mid, cond, eps, &mut sn)?,
                            ],
                            conv: [
                                SnConv::new(bl, "conv_0", cin, mid, 1, true, eps, &mut sn)?,
                                SnConv::new(bl, "conv_1", mid, mid, 3, true, eps, &mut sn)?,
                                SnConv::new(bl, "conv_2", mid, mid, 3, true, eps, &mut sn)?,
                                SnConv::new(bl, "conv_3", mid, cout, 1, true, eps, &mut sn)?,
                            ],
                            up: l.upsample(),
                            cout,
                        })
                    })?;
                    layers.push(Layer::Block(Box::new(block)));
                }
                if cfg.attention_layer_position == cfg.layers.len() {
                    let c = cfg.layers.last().map_or(ch, |l| l.2 * ch);
                    let idx = layers.len();
                    layers.push(Layer::Attention(Box::new(lv.scope(idx, |a| SelfAttn::new(a, c, eps, &mut sn))?)));
                }
                Ok(())
            })?;
            let (bw, bb) = g.scope("bn", |n| {
                Ok((n.param("weight", &[ch], Init::Const(1.0))?, n.param("bias", &[ch], Init::Const(0.0))?))
            })?;
            let rgb = SnConv::new(g, "conv_to_rgb", ch, ch, 3, true, eps, &mut sn)?;
            Ok((gen_z, layers, bw, bb, rgb))
        })?;
        Ok(Self { cfg: cfg.clone(), embeddings, gen_z, layers, bn_weight, bn_bias, conv_to_rgb, sn })
    }

    /// `cat(z, embed(y))` for labels `y (b)` (u32).
    pub fn condition(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        let emb = self.embeddings.t()?.contiguous()?.index_select(y, 0)?;
        Tensor::cat(&[z, &emb], 1)
    }

    /// `G(z, y) (b, 3, H, W)` in [−1, 1]. Batch norms use the batch statistics (recorded in
    /// `rec` when given, in forward order: each block's bn_0..bn_3, then the final bn).
    pub fn forward(&self, z: &Tensor, y: &Tensor, train: bool, mut rec: Record) -> Result<Tensor> {
        let b = z.dim(0)?;
        let cond = self.condition(z, y)?;
        let c = 16 * self.cfg.channel_width;
        let mut h = self.gen_z.forward(&cond, train)?.reshape((b, 4, 4, c))?.permute((0, 3, 1, 2))?.contiguous()?;
        for l in &self.layers {
            h = match l {
                Layer::Block(blk) => blk.forward(&h, &cond, train, &mut rec)?,
                Layer::Attention(a) => a.forward(&h, train)?,
            };
        }
        let ch = self.cfg.channel_width;
        let hn = normalize_batch(&h, self.cfg.eps, &mut rec)?;
        let h = hn
            .broadcast_mul(&self.bn_weight.reshape((1, ch, 1, 1))?)?
            .broadcast_add(&self.bn_bias.reshape((1, ch, 1, 1))?)?;
        let h = ops::relu(&h)?;
        self.conv_to_rgb.forward_first(&h, 3, train)?.tanh()
    }

    /// Every spectrally normalised weight.
    pub fn all_sn(&self) -> Vec<&SnWeight> {
        let mut out = vec![&self.gen_z.w];
        for l in &self.layers {
            match l {
                Layer::Attention(a) => out.extend([&a.theta.w, &a.phi.w, &a.g.w, &a.o.w]),
                Layer::Block(b) => {
                    for bn in &b.bn {
                        out.extend([&bn.scale.w, &bn.offset.w]);
                    }
                    out.extend(b.conv.iter().map(|c| &c.w));
                }
            }
        }
        out.push(&self.conv_to_rgb.w);
        out
    }

    /// The key prefixes of the batch norms in [`Self::forward`]'s recording order, with their
    /// widths.
    pub fn bn_prefixes(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let ch = self.cfg.channel_width;
        let mut bi = 0;
        for (i, l) in self.layers.iter().enumerate() {
            if let Layer::Block(_) = l {
                let spec = self.cfg.layers[bi];
                let (cin, mid) = (spec.1 * ch, spec.1 * ch / 4);
                for (k, c) in [cin, mid, mid, mid].into_iter().enumerate() {
                    out.push((format!("generator.layers.{i}.bn_{k}"), c));
                }
                bi += 1;
            }
        }
        out.push(("generator.bn".to_string(), ch));
        out
    }
}
