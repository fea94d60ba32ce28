//! BigGAN-deep's projection discriminator (Miyato & Koyama, 2018; Brock et al., 2019;
//! BigGAN-PyTorch `BigGANdeep.py`), sized for 32×32: only training needs it, so its keys are
//! ours (`discriminator.*`) and it is never exported.
//!
//! - `conv_in`: SN 3×3, 3 → `w[0]`;
//! - `blocks.{i}` (DBlock, bottleneck 4): `conv_0` 1×1 in → in/4, ReLU, `conv_1` 3×3, ReLU,
//!   `conv_2` 3×3, ReLU, [avg-pool 2×2], `conv_3` 1×1 → out (input ReLU'd first); skip: [avg-pool],
//!   then, when out > in, `cat(x, conv_sc(x))` with `conv_sc` 1×1 in → out − in;
//! - head: ReLU, sum over H×W, `linear` (SN, → 1, bias) + `⟨embed(y), h⟩` with `embed` an SN
//!   embedding `(classes, C)`.

use candle_core::{Result, Tensor};

use super::biggan_g::{sn_param, SnConv, SnLinear};
use super::layers::Builder;
use super::sn::{SnBuffers, SnWeight};
use crate::train::ops::{self, Pool};

/// One DBlock.
#[derive(Debug, Clone)]
pub struct DBlock {
    pub conv: [SnConv; 4],
    pub sc: Option<SnConv>,
    pub down: bool,
}

impl DBlock {
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let pool = Pool { k: 2, stride: 2, padding: 0 };
        let h = self.conv[0].forward(&ops::relu(x)?, train)?;
        let h = self.conv[1].forward(&ops::relu(&h)?, train)?;
        let h = self.conv[2].forward(&ops::relu(&h)?, train)?;
        let mut h = ops::relu(&h)?;
        if self.down {
            h = ops::avg_pool2d(&h, pool)?;
        }
        let h = self.conv[3].forward(&h, train)?;
        let mut s = if self.down { ops::avg_pool2d(x, pool)? } else { x.clone() };
        if let Some(sc) = &self.sc {
            s = Tensor::cat(&[&s, &sc.forward(&s, train)?], 1)?;
        }
        h + s
    }
}

/// The discriminator's widths: `conv_in` gives `base`; then per block (out multiple, downsample).
pub fn default_blocks() -> Vec<(usize, bool)> {
    vec![(2, true), (2, false), (4, true), (4, false), (8, true), (8, false)]
}

/// The projection discriminator.
#[derive(Debug, Clone)]
pub struct Discriminator {
    pub conv_in: SnConv,
    pub blocks: Vec<DBlock>,
    pub linear: SnLinear,
    pub embed: SnWeight,
    pub sn: Vec<std::sync::Arc<SnBuffers>>,
}

impl Discriminator {
    /// `base` channels after the input convolution, `blocks` as [`default_blocks`], `classes`
    /// for the projection, SN eps `eps`.
    pub fn new(b: &mut Builder, base: usize, blocks: &[(usize, bool)], classes: usize, eps: f64) -> Result<Self> {
        let mut sn = Vec::new();
        b.scope("discriminator", |d| {
            let conv_in = SnConv::new(d, "conv_in", 3, base, 3, true, eps, &mut sn)?;
            let mut cin = base;
            let mut out_blocks = Vec::new();
            d.scope("blocks", |bs| {
                for (i, &(mult, down)) in blocks.iter().enumerate() {
                    let cout = mult * base;
                    if cout < cin {
                        candle_core::bail!("discriminator block {i}: channels may not shrink ({cin} → {cout})");
                    }
                    let mid = (cin / 4).max(1);
                    let blk = bs.scope(i, |s| {
                        Ok(DBlock {
                            conv: [
                                SnConv::new(s, "conv_0", cin, mid, 1, true, eps, &mut sn)?,
                                SnConv::new(s, "conv_1", mid, mid, 3, true, eps, &mut sn)?,
                                SnConv::new(s, "conv_2", mid, mid, 3, true, eps, &mut sn)?,
                                SnConv::new(s, "conv_3", mid, cout, 1, true, eps, &mut sn)?,
                            ],
                            sc: if cout > cin {
                                Some(SnConv::new(s, "conv_sc", cin, cout - cin, 1, true, eps, &mut sn)?)
                            } else {
                                None
                            },
                            down,
                        })
                    })?;
                    out_blocks.push(blk);
                    cin = cout;
                }
                Ok(())
            })?;
            let linear = SnLinear::new(d, "linear", cin, 1, true, eps, &mut sn)?;
            let embed = d.scope("embed", |e| sn_param(e, &[classes, cin], eps, &mut sn))?;
            Ok(Self { conv_in, blocks: out_blocks, linear, embed, sn })
        })
    }

    /// Scores `(b)` of images `x (b, 3, h, w)` with labels `y (b)` (u32).
    pub fn forward(&self, x: &Tensor, y: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x, train)?;
        for blk in &self.blocks {
            h = blk.forward(&h, train)?;
        }
        let h = ops::relu(&h)?.sum((2, 3))?;
        let out = self.linear.forward(&h, train)?.squeeze(1)?;
        let e = self.embed.weight(train)?.index_select(y, 0)?;
        out + (e * h)?.sum(1)?
    }
}
