//! BigGAN-deep (Brock, Donahue & Simonyan, 2019, "Large Scale GAN Training for High Fidelity
//! Natural Image Synthesis"), as ported by huggingface/pytorch-pretrained-BigGAN (`model.py`).
//!
//! Parity quirks reproduced (listed in tests/fixtures/biggan-deep-tiny-128/README.md): NHWC reshape of `gen_z`, f64 truncation with the
//! reversed statistics mix, skip-path channel drop, attention without 1/√d, conv_to_rgb sliced
//! to 3 channels (we only compute those 3).
//!
//! Steering support: a forward takes one latent per *latent slot* (`gen_z` + one per GenBlock,
//! `cfg.num_latents()`), and the stage-wise API ([`BigGan::run_stages`]) restarts from a cached
//! activation so an edit that starts late only recomputes the late layers.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::BigGanConfig;
use super::layers::{sn_weight, BigGanBatchNorm, Conv, GenBlock, SelfAttn, StatsIndex};

/// One entry of `generator.layers`.
#[derive(Debug, Clone)]
pub enum Layer {
    Block(GenBlock),
    Attention(SelfAttn),
}

/// The generator: `generator.*` keys.
#[derive(Debug, Clone)]
pub struct Generator {
    /// `gen_z.weight` folded, `(16·ch·16, cond_dim)`
    pub gen_z_weight: Tensor,
    pub gen_z_bias: Tensor,
    pub layers: Vec<Layer>,
    pub bn: BigGanBatchNorm,
    /// Only the 3 RGB output channels of `conv_to_rgb` (σ folded on the full matrix first).
    pub conv_to_rgb: Conv,
}

/// A BigGAN-deep model: class embedding + generator.
#[derive(Debug, Clone)]
pub struct BigGan {
    pub cfg: BigGanConfig,
    /// `embeddings.weight` `(z_dim, num_classes)`: a Linear without bias and without SN.
    pub embeddings: Tensor,
    pub generator: Generator,
    device: Device,
}

/// Where a stage's input comes from when resuming a forward.
#[derive(Debug, Clone, Copy)]
pub struct Resume<'a> {
    /// The stage to start at (0 = gen_z, s ≥ 1 = `generator.layers[s − 1]`, `num_stages()` = the head).
    pub stage: usize,
    /// The activation entering that stage (the output of stage `stage − 1`); unused for stage 0.
    pub input: Option<&'a Tensor>,
}

impl BigGan {
    /// Builds the model from a VarBuilder over the checkpoint's tensors (keys as in the hub files).
    pub fn new(vb: VarBuilder, cfg: &BigGanConfig) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let ch = cfg.channel_width;
        let cond = cfg.cond_dim();
        let embeddings = vb.get((cfg.z_dim, cfg.num_classes), "embeddings.weight")?;
        let g = vb.pp("generator");
        let gen_z_weight = sn_weight(&g.pp("gen_z"), (16 * ch * 16, cond))?;
        let gen_z_bias = g.pp("gen_z").get(16 * ch * 16, "bias")?;
        let mut layers = Vec::with_capacity(cfg.layers.len() + 1);
        let lv = g.pp("layers");
        for (i, l) in cfg.layers.iter().enumerate() {
            if i == cfg.attention_layer_position {
                layers.push(Layer::Attention(SelfAttn::new(lv.pp(layers.len()), l.1 * ch)?));
            }
            let block =
                GenBlock::new(lv.pp(layers.len()), l.1 * ch, l.2 * ch, l.upsample(), cond, cfg.n_stats, cfg.eps)?;
            layers.push(Layer::Block(block));
        }
        if cfg.attention_layer_position == cfg.layers.len() {
            let c = cfg.layers.last().map_or(ch, |l| l.2 * ch);
            layers.push(Layer::Attention(SelfAttn::new(lv.pp(layers.len()), c)?));
        }
        let bn = BigGanBatchNorm::plain(g.pp("bn"), ch, cfg.n_stats, cfg.eps)?;
        let conv_to_rgb = Conv::sn(g.pp("conv_to_rgb"), ch, ch, 3, true)?.keep_outputs(3)?;
        Ok(Self {
            cfg: cfg.clone(),
            embeddings,
            generator: Generator { gen_z_weight, gen_z_bias, layers, bn, conv_to_rgb },
            device: vb.device().clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Parameters as loaded (spectral norm folded, only the 3 RGB output channels kept).
    pub fn num_parameters(&self) -> usize {
        let t = |x: &Tensor| x.elem_count();
        let g = &self.generator;
        let mut n = t(&self.embeddings) + t(&g.gen_z_weight) + t(&g.gen_z_bias);
        for l in &g.layers {
            n += match l {
                Layer::Block(b) => b.param_bytes() / 4,
                Layer::Attention(a) => a.param_bytes() / 4,
            };
        }
        n
    }

    /// gen_z + every `generator.layers` entry (attention included).
    pub fn num_stages(&self) -> usize {
        self.generator.layers.len() + 1
    }

    /// The latent slot that conditions `stage`, if any (attention takes none).
    pub fn latent_of_stage(&self, stage: usize) -> Option<usize> {
        if stage == 0 {
            return Some(0);
        }
        let layer = self.generator.layers.get(stage - 1)?;
        match layer {
            Layer::Attention(_) => None,
            Layer::Block(_) => {
                let blocks_before =
                    self.generator.layers[..stage - 1].iter().filter(|l| matches!(l, Layer::Block(_))).count();
                Some(blocks_before + 1)
            }
        }
    }

    /// The first stage that reads latent slot `slot` (an edit starting at `slot` changes nothing
    /// before it, so activations of earlier stages can be reused).
    pub fn first_stage_of_latent(&self, slot: usize) -> usize {
        (0..self.num_stages()).find(|&s| self.latent_of_stage(s) == Some(slot)).unwrap_or(self.num_stages())
    }

    /// `class_vec (b, num_classes) → embed (b, z_dim)`; soft vectors interpolate classes.
    pub fn embed(&self, class_vec: &Tensor) -> Result<Tensor> {
        class_vec.matmul(&self.embeddings.t()?)
    }

    /// One condition vector `cat(z_i, embed)` per latent slot.
    pub fn conditions(&self, latents: &[Tensor], class_vec: &Tensor) -> Result<Vec<Tensor>> {
        if latents.len() != self.cfg.num_latents() {
            candle_core::bail!(
                "BigGAN takes {} latents (gen_z + one per GenBlock), got {}",
                self.cfg.num_latents(),
                latents.len()
            );
        }
        let embed = self.embed(class_vec)?;
        latents.iter().map(|z| Tensor::cat(&[z, &embed], 1)).collect()
    }

    /// `G(z, class_vec, truncation) → (b, 3, H, W)` in [−1, 1], the same z for every layer.
    pub fn forward(&self, z: &Tensor, class_vec: &Tensor, truncation: f64) -> Result<Tensor> {
        let latents = vec![z.clone(); self.cfg.num_latents()];
        self.forward_latents(&latents, class_vec, truncation)
    }

    /// The forward with one latent per slot (GANSpace's per-layer latents).
    pub fn forward_latents(&self, latents: &[Tensor], class_vec: &Tensor, truncation: f64) -> Result<Tensor> {
        let conds = self.conditions(latents, class_vec)?;
        self.run_stages(&conds, truncation, Resume { stage: 0, input: None }, None)
    }

    /// Runs the generator from `resume` to the output. When `record` is given, the output of
    /// every stage that runs is pushed to it (index = stage − resume.stage).
    pub fn run_stages(
        &self,
        conds: &[Tensor],
        truncation: f64,
        resume: Resume,
        mut record: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let stats = StatsIndex::new(truncation, self.cfg.n_stats)?;
        let n = self.num_stages();
        if resume.stage > n {
            candle_core::bail!("cannot resume at stage {} of {n}", resume.stage);
        }
        let mut h = match (resume.stage, resume.input) {
            (0, _) => None,
            (_, Some(x)) => Some(x.clone()),
            (s, None) => candle_core::bail!("resuming at stage {s} needs its input activation"),
        };
        for stage in resume.stage..n {
            if record.is_none() {
                if let Some(x) = h.as_ref().filter(|x| split_here(x)) {
                    return self.finish_per_sample(stage, x, conds, stats);
                }
            }
            let out = self.run_stage(stage, h.as_ref(), conds, stats)?;
            if let Some(r) = record.as_deref_mut() {
                r.push(out.clone());
            }
            h = Some(out);
        }
        let Some(h) = h else { candle_core::bail!("no activation reached the output head") };
        self.head(&h, stats)
    }

    /// One stage: gen_z (stage 0) or `generator.layers[stage − 1]`.
    /// Runs stages `stage..` and the head one sample at a time and stacks the images. On the
    /// CPU, past the small maps (where a batch shares its weight traffic, see `ops::conv`), a
    /// sample's activations fit in the cache and a batch's do not: at batch 8 the large maps
    /// ran at up to half the per-sample speed, bound by memory.
    fn finish_per_sample(&self, stage: usize, h: &Tensor, conds: &[Tensor], stats: StatsIndex) -> Result<Tensor> {
        let b = h.dim(0)?;
        let mut images = Vec::with_capacity(b);
        for i in 0..b {
            let mut x = h.narrow(0, i, 1)?;
            let conds_i = conds.iter().map(|c| c.narrow(0, i, 1)).collect::<Result<Vec<_>>>()?;
            for s in stage..self.num_stages() {
                x = self.run_stage(s, Some(&x), &conds_i, stats)?;
            }
            images.push(self.head(&x, stats)?);
        }
        Tensor::cat(&images, 0)
    }

    pub fn run_stage(&self, stage: usize, h: Option<&Tensor>, conds: &[Tensor], stats: StatsIndex) -> Result<Tensor> {
        let cond = |slot: usize| {
            conds.get(slot).ok_or_else(|| candle_core::Error::Msg(format!("missing condition for latent slot {slot}")))
        };
        if stage == 0 {
            return self.gen_z(cond(0)?);
        }
        let Some(h) = h else { candle_core::bail!("stage {stage} needs an input activation") };
        match &self.generator.layers[stage - 1] {
            Layer::Attention(a) => crate::models::biggan::fast::attention(a, h),
            Layer::Block(b) => {
                let slot = self.latent_of_stage(stage).unwrap_or(0);
                let affines = b.affines(stats, cond(slot)?)?;
                crate::models::biggan::fast::gen_block(b, h, &affines)
            }
        }
    }

    /// `gen_z`: SN-Linear, then the **NHWC** reshape `(b, 4, 4, 16ch)` permuted to NCHW.
    pub fn gen_z(&self, cond: &Tensor) -> Result<Tensor> {
        let b = cond.dim(0)?;
        let c = 16 * self.cfg.channel_width;
        let y = cond.matmul(&self.generator.gen_z_weight.t()?)?.broadcast_add(&self.generator.gen_z_bias)?;
        y.reshape((b, 4, 4, c))?.permute((0, 3, 1, 2))?.contiguous()
    }

    /// `gen_z`'s SN-Linear output `(b, 16·ch·16)` before the NHWC reshape: the activation
    /// GANSpace's PCA reads at `generator.gen_z`.
    pub fn gen_z_raw(&self, cond: &Tensor) -> Result<Tensor> {
        cond.matmul(&self.generator.gen_z_weight.t()?)?.broadcast_add(&self.generator.gen_z_bias)
    }

    /// Final BN → ReLU → conv_to_rgb (3 channels) → tanh.
    pub fn head(&self, h: &Tensor, stats: StatsIndex) -> Result<Tensor> {
        let b = h.dim(0)?;
        let dummy = Tensor::zeros((b, 1), DType::F32, h.device())?;
        let a = self.generator.bn.affine(stats, &dummy)?;
        crate::models::biggan::fast::head(&self.generator.conv_to_rgb, h, &a)
    }
}

/// Whether a batch's remaining stages should run one sample at a time: on the CPU, once a
/// sample's activation reaches 1 MB (deep-128: the 16×16 maps of 1,024 channels on).
/// `INTERVENE_SPLIT_KB` overrides the size (0: never split), for tuning.
fn split_here(x: &Tensor) -> bool {
    static KB: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let kb = crate::ops::knob(&KB, "INTERVENE_SPLIT_KB", 1024);
    let b = x.dim(0).unwrap_or(1);
    kb > 0 && b > 1 && x.device().is_cpu() && x.elem_count() / b * 4 >= kb * 1024
}
