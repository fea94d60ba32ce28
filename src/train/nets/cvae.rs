//! GenInt's conditional VAE for colored MNIST (Mao et al., 2021, §7; reference
//! cvlab-columbia/GenInt `ColorMNIST/train_vae.py`; GENINT-MNIST.md §2):
//!
//! - encoder (not conditioned on the label): `fc1` 3072 → 1000, ReLU; `fc21` → μ (z_dim),
//!   `fc22` → log σ² (z_dim);
//! - decoder: `[z ‖ label_emb(y)]` (z_dim + 5) → `fc3` 1000, ReLU → `fc4` 3072 → sigmoid;
//! - loss per batch: `BCE(sum) + KL(sum)`, KL = −½ Σ(1 + log σ² − μ² − σ²).
//!
//! The decoder returns logits and the reconstruction term is computed from them
//! (`softplus(l) − x·l`), which equals PyTorch's `binary_cross_entropy(sigmoid(l), x)` except
//! where it clamps log at −100 (|l| > 100). PyTorch's default Linear/Embedding initialisation.

use candle_core::{Result, Tensor};

use super::layers::{Builder, Init, Linear};

/// Sizes: input 3·32·32, hidden 1000, latent 2, label embedding 5 (the reference's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CvaeShape {
    pub input: usize,
    pub hidden: usize,
    pub z_dim: usize,
    pub emb: usize,
    pub classes: usize,
}

impl Default for CvaeShape {
    fn default() -> Self {
        Self { input: 3 * 32 * 32, hidden: 1000, z_dim: 2, emb: 5, classes: 10 }
    }
}

pub struct Cvae {
    pub shape: CvaeShape,
    fc1: Linear,
    fc21: Linear,
    fc22: Linear,
    pub decoder: CvaeDecoder,
}

/// The generative half (`fc3`, `fc4`, `label_emb`): all that sampling needs, and all a shipped
/// model must hold.
#[derive(Clone)]
pub struct CvaeDecoder {
    pub shape: CvaeShape,
    fc3: Linear,
    fc4: Linear,
    emb: Tensor,
}

impl CvaeDecoder {
    pub fn new(b: &mut Builder, shape: CvaeShape) -> Result<Self> {
        Ok(Self {
            fc3: lin(b, "fc3", shape.z_dim + shape.emb, shape.hidden)?,
            fc4: lin(b, "fc4", shape.hidden, shape.input)?,
            emb: b.scope("label_emb", |s| s.param("weight", &[shape.classes, shape.emb], Init::Normal(1.0)))?,
            shape,
        })
    }

    /// The shape of the decoder weights in `map` (`fc3.weight` is `[hidden, z_dim + emb]`,
    /// `fc4.weight` `[input, hidden]`, `label_emb.weight` `[classes, emb]`).
    pub fn shape_of(map: &std::collections::HashMap<String, Tensor>) -> Result<CvaeShape> {
        let dims = |k: &str| -> Result<(usize, usize)> {
            map.get(k).ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {k}")))?.dims2()
        };
        let (hidden, zin) = dims("fc3.weight")?;
        let (input, _) = dims("fc4.weight")?;
        let (classes, emb) = dims("label_emb.weight")?;
        if zin <= emb {
            candle_core::bail!("fc3.weight takes {zin} inputs, not more than the label embedding's {emb}");
        }
        Ok(CvaeShape { input, hidden, z_dim: zin - emb, emb, classes })
    }

    /// Logits `(b, input)` of latents `z (b, z_dim)` and labels `y (b)` (u32).
    pub fn logits(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        let e = self.emb.index_select(y, 0)?;
        let h = self.fc3.forward(&Tensor::cat(&[z, &e], 1)?)?.relu()?;
        self.fc4.forward(&h)
    }

    /// Images in [0, 1], `(b, input)`.
    pub fn decode(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.logits(z, y)?)
    }
}

fn lin(b: &mut Builder, name: &str, cin: usize, cout: usize) -> Result<Linear> {
    b.scope(name, |s| s.linear(cin, cout, Init::torch_default(cin), Init::torch_default(cin)))
}

impl Cvae {
    pub fn new(b: &mut Builder, shape: CvaeShape) -> Result<Self> {
        Ok(Self {
            fc1: lin(b, "fc1", shape.input, shape.hidden)?,
            fc21: lin(b, "fc21", shape.hidden, shape.z_dim)?,
            fc22: lin(b, "fc22", shape.hidden, shape.z_dim)?,
            decoder: CvaeDecoder::new(b, shape)?,
            shape,
        })
    }

    /// `x (b, 3072)` in [0, 1] → (μ, log σ²).
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.fc1.forward(x)?.relu()?;
        Ok((self.fc21.forward(&h)?, self.fc22.forward(&h)?))
    }

    /// Decoder logits `(b, 3072)` of latents `z (b, z_dim)` and labels `y (b)` (u32).
    pub fn decode_logits(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.decoder.logits(z, y)
    }

    /// Images in [0, 1].
    pub fn decode(&self, z: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.decoder.decode(z, y)
    }

    /// The summed loss `(BCE, KL)` of a batch with reparameterisation noise `eps (b, z_dim)`.
    pub fn loss(&self, x: &Tensor, y: &Tensor, eps: &Tensor) -> Result<(Tensor, Tensor)> {
        let (mu, logvar) = self.encode(x)?;
        let z = (&mu + (eps * (&logvar * 0.5)?.exp()?)?)?;
        let l = self.decode_logits(&z, y)?;
        let bce = bce_with_logits_sum(&l, x)?;
        let kl = ((((&logvar + 1.0)? - mu.sqr()?)? - logvar.exp()?)?.sum_all()? * -0.5)?;
        Ok((bce, kl))
    }
}

/// `Σ softplus(l) − x·l`, softplus written stably as `relu(l) + log(1 + exp(−|l|))`.
pub fn bce_with_logits_sum(l: &Tensor, x: &Tensor) -> Result<Tensor> {
    let sp = (l.relu()? + ((l.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
    (sp - (x * l)?)?.sum_all()
}
