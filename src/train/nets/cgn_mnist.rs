//! The MNIST CGN's generator in training mode and its discriminator (Sauer & Geiger, 2021;
//! reference: autonomousvision/counterfactual_generative_networks, `mnists/models/cgn.py` and
//! `mnists/models/discriminator.py`), with the checkpoint's key names
//! (`label_emb`, `f_shape.{0,4,5,9,10}`, `f_text{1,2}.{0,3,4,7,8,10,11}`) so trained weights open
//! in [`crate::models::cgn_mnist`]. Batch norms use batch statistics; the textures are rolled on
//! the torus by a seeded random shift, as the original does inside `forward`.
//!
//! Used by `intervene bench train` (one GAN step) and meant for a later `train cgn`.

use candle_core::{Result, Tensor};

use super::layers::{BatchNorm, Builder, Conv, Init, Linear};
use crate::train::ops::{self, pointwise, ConvCfg};

const LATENT: usize = 32;
const CLASSES: usize = 10;
const NGF: usize = 32;
/// The generator's batch norms are followed by LeakyReLU(0.2), fused into them.
const LEAKY: ops::BnAct = ops::BnAct::Leaky(0.2);

fn conv3(b: &mut Builder, name: &str, cin: usize, cout: usize, bias: bool) -> Result<Conv> {
    b.scope(name, |s| s.conv(cin, cout, 3, ConvCfg::new(1, 1), bias, Init::torch_default(cin * 9)))
}

fn lin(b: &mut Builder, name: &str, cin: usize, cout: usize) -> Result<Linear> {
    b.scope(name, |s| s.linear(cin, cout, Init::torch_default(cin), Init::torch_default(cin)))
}

struct Shape {
    l0: Linear,
    c4: Conv,
    bn5: BatchNorm,
    c9: Conv,
    bn10: BatchNorm,
}

struct Texture {
    l0: Linear,
    c3: Conv,
    bn4: BatchNorm,
    c7: Conv,
    bn8: BatchNorm,
    c10: Conv,
    bn11: BatchNorm,
}

/// The generator's three mechanisms and the label embedding.
pub struct CgnGenerator {
    emb: Tensor,
    shape: Shape,
    text: [Texture; 2],
}

/// A generated batch: mask (3 channels), foreground, background, composite.
pub struct Generated {
    pub mask: Tensor,
    pub fg: Tensor,
    pub bg: Tensor,
    pub x: Tensor,
}

/// Rolls each sample `i` of `x (b, c, h, w)` on the torus by `shifts[i] = (dy, dx)`: output
/// `(y, x)` = input `((y + dy) mod h, (x + dx) mod w)`, the reference's RandomCrop(32) of the
/// 2×2 tiling, which draws an offset per sample. One gather, so the gradient flows back.
fn torus_roll_each(x: &Tensor, shifts: &[(usize, usize)]) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if shifts.len() != b {
        candle_core::bail!("{} texture shifts for a batch of {b}", shifts.len());
    }
    if shifts.iter().all(|&s| s == (0, 0)) {
        return Ok(x.clone());
    }
    let mut idx = Vec::with_capacity(b * c * h * w);
    for &(dy, dx) in shifts {
        let plane: Vec<u32> =
            (0..h).flat_map(|y| (0..w).map(move |xx| (((y + dy) % h) * w + (xx + dx) % w) as u32)).collect();
        for _ in 0..c {
            idx.extend_from_slice(&plane);
        }
    }
    let idx = Tensor::from_vec(idx, (b, c, h * w), x.device())?;
    x.contiguous()?.reshape((b, c, h * w))?.gather(&idx, 2)?.reshape((b, c, h, w))
}

impl CgnGenerator {
    pub fn new(b: &mut Builder) -> Result<Self> {
        let ch = 2 * NGF;
        let inp = LATENT + CLASSES;
        let emb = b.scope("label_emb", |s| s.param("weight", &[CLASSES, CLASSES], Init::Normal(1.0)))?;
        let shape = b.scope("f_shape", |s| {
            Ok(Shape {
                l0: lin(s, "0", inp, ch * 64)?,
                c4: conv3(s, "4", ch, NGF, false)?,
                bn5: s.scope("5", |n| n.batch_norm(NGF))?,
                c9: conv3(s, "9", NGF, 1, false)?,
                bn10: s.scope("10", |n| n.batch_norm(1))?,
            })
        })?;
        let mut tex = |name: &str| {
            b.scope(name, |s| {
                Ok(Texture {
                    l0: lin(s, "0", inp, ch * 64)?,
                    c3: conv3(s, "3", ch, ch, false)?,
                    bn4: s.scope("4", |n| n.batch_norm(ch))?,
                    c7: conv3(s, "7", ch, NGF, false)?,
                    bn8: s.scope("8", |n| n.batch_norm(NGF))?,
                    c10: conv3(s, "10", NGF, 3, true)?,
                    bn11: s.scope("11", |n| n.batch_norm(3))?,
                })
            })
        };
        let text = [tex("f_text1")?, tex("f_text2")?];
        Ok(Self { emb, shape, text })
    }

    /// `u (b, 32)`, labels `y (b)` (u32); `shifts[t][i]` = (dy, dx) of texture `t` (0 the
    /// foreground, 1 the background) for sample `i`, the torus roll.
    pub fn forward(&self, u: &Tensor, y: &Tensor, shifts: &[Vec<(usize, usize)>; 2], train: bool) -> Result<Generated> {
        let b = u.dim(0)?;
        let inp = Tensor::cat(&[u, &self.emb.index_select(y, 0)?], 1)?;
        let s = &self.shape;
        let h = s.l0.forward(&inp)?.reshape((b, 2 * NGF, 8, 8))?;
        // Upsample → conv pairs run fused (`forward_up2`).
        let h = s.bn5.forward_act(&s.c4.forward_up2(&pointwise::instance_norm(&h, 1e-5)?)?, train, LEAKY)?;
        let h = s.bn10.forward_act(&s.c9.forward_up2(&pointwise::instance_norm(&h, 1e-5)?)?, train, LEAKY)?;
        let m = pointwise::instance_norm(&h, 1e-5)?
            .clamp(crate::models::cgn_mnist::MASK_MIN, crate::models::cgn_mnist::MASK_MAX)?;
        let mask = m.repeat((1, 3, 1, 1))?;
        let mut tex = Vec::with_capacity(2);
        for (t, sh) in self.text.iter().zip(shifts) {
            let h = t.l0.forward(&inp)?.reshape((b, 2 * NGF, 8, 8))?;
            let h = t.bn4.forward_act(&t.c3.forward_up2(&h)?, train, LEAKY)?;
            let h = t.bn8.forward_act(&t.c7.forward_up2(&h)?, train, LEAKY)?;
            let h = t.bn11.forward(&t.c10.forward(&h)?, train, false)?.tanh()?;
            tex.push(torus_roll_each(&h, sh)?);
        }
        let (fg, bg) = (tex[0].clone(), tex[1].clone());
        // mask·fg + (1 − mask)·bg, the reference's form.
        let x = ((&mask * &fg)? + ((1.0 - &mask)? * &bg)?)?;
        Ok(Generated { mask, fg, bg, x })
    }
}

/// The conditional MLP discriminator of the colored / double-colored variants:
/// `[x (3072) ‖ emb(y) (10)]` → 512 → LReLU → 512 → Dropout(0.4) → LReLU → 512 → Dropout(0.4) →
/// LReLU → 1 (`model.{0,2,5}`, output `model.8`; embedding `label_embedding`).
pub struct CgnDiscriminator {
    emb: Tensor,
    layers: [Linear; 4],
}

impl CgnDiscriminator {
    pub fn new(b: &mut Builder) -> Result<Self> {
        let emb = b.scope("label_embedding", |s| s.param("weight", &[CLASSES, CLASSES], Init::Normal(1.0)))?;
        let layers = b.scope("model", |m| {
            Ok([
                lin(m, "0", 3 * 32 * 32 + CLASSES, 512)?,
                lin(m, "2", 512, 512)?,
                lin(m, "5", 512, 512)?,
                lin(m, "8", 512, 1)?,
            ])
        })?;
        Ok(Self { emb, layers })
    }

    /// Validity `(b, 1)` of images `x (b, 3, 32, 32)` with labels `y`; dropout masks from `seed`
    /// when training.
    pub fn forward(&self, x: &Tensor, y: &Tensor, train: bool, seed: u64) -> Result<Tensor> {
        let h = Tensor::cat(&[&x.flatten_from(1)?, &self.emb.index_select(y, 0)?], 1)?;
        let mut h = pointwise::leaky_relu(&self.layers[0].forward(&h)?, 0.2)?;
        for (i, l) in self.layers[1..3].iter().enumerate() {
            h = l.forward(&h)?;
            if train {
                h = super::dropout(&h, 0.4, seed.wrapping_add(i as u64))?;
            }
            h = pointwise::leaky_relu(&h, 0.2)?;
        }
        self.layers[3].forward(&h)
    }
}

/// `mean(−(m·log2 m + (1 − m)·log2(1 − m)))`: the mask's binary entropy (pushes masks to 0/1).
pub fn binary_entropy(m: &Tensor) -> Result<Tensor> {
    let l2 = std::f64::consts::LN_2;
    let a = (m * m.log()?)?;
    let b = ((1.0 - m)? * (1.0 - m)?.log()?)?;
    ((a + b)? / -l2)?.mean_all()
}

/// LSGAN loss `mean((v − target)²)`.
pub fn mse_to(v: &Tensor, target: f64) -> Result<Tensor> {
    (v - target)?.sqr()?.mean_all()
}
