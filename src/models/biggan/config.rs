//! BigGAN-deep configuration, read from the hub's `config.json`.
//!
//! Presets copy the files of huggingface/pytorch-pretrained-BigGAN
//! (`https://s3.amazonaws.com/models.huggingface.co/biggan/biggan-deep-{128,256,512}-config.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One entry of `layers`: `[upsample, in_mult, out_mult]` (channels are multiples of `channel_width`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec(pub bool, pub usize, pub usize);

impl LayerSpec {
    /// Whether the block doubles the resolution.
    pub fn upsample(&self) -> bool {
        self.0
    }
}

/// The hub `config.json` of a BigGAN-deep model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BigGanConfig {
    pub output_dim: usize,
    pub z_dim: usize,
    /// Present in the hub files but unused by the math: the class embedding is `z_dim` wide.
    #[serde(default)]
    pub class_embed_dim: usize,
    pub channel_width: usize,
    pub num_classes: usize,
    pub layers: Vec<LayerSpec>,
    pub attention_layer_position: usize,
    pub eps: f64,
    pub n_stats: usize,
}

/// Why a configuration cannot describe a working generator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a BigGAN config.json: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("invalid BigGAN config: {0}")]
    Invalid(String),
}

impl BigGanConfig {
    /// Reads and validates a hub `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: p.clone(), source })?;
        let cfg: Self = serde_json::from_str(&text).map_err(|source| ConfigError::Parse { path: p, source })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the invariants the generator relies on (channel schedule, resolution, attention slot).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.z_dim == 0 || self.channel_width == 0 || self.num_classes == 0 {
            return bad("z_dim, channel_width and num_classes must be positive".into());
        }
        if self.n_stats < 2 {
            return bad(format!("n_stats must be at least 2, got {}", self.n_stats));
        }
        if self.layers.is_empty() {
            return bad("layers is empty".into());
        }
        if self.attention_layer_position > self.layers.len() {
            return bad(format!(
                "attention_layer_position {} is past the {} layers",
                self.attention_layer_position,
                self.layers.len()
            ));
        }
        let mut prev = 16;
        for (i, l) in self.layers.iter().enumerate() {
            if l.1 != prev {
                return bad(format!("layer {i} takes {}·ch channels but the previous layer gives {prev}·ch", l.1));
            }
            if l.1 != l.2 && l.1 != 2 * l.2 {
                return bad(format!("layer {i}: out_mult must equal in_mult or in_mult/2 (got {} → {})", l.1, l.2));
            }
            if !(l.1 * self.channel_width).is_multiple_of(4) {
                return bad(format!(
                    "layer {i}: {} channels are not divisible by the bottleneck factor 4",
                    l.1 * self.channel_width
                ));
            }
            prev = l.2;
        }
        // The reference's final BN and conv_to_rgb take `channel_width` channels.
        if let Some(l) = self.layers.last().filter(|l| l.2 != 1) {
            return bad(format!(
                "the last layer must end at 1·ch (the final BN and conv_to_rgb take ch channels), got {}·ch",
                l.2
            ));
        }
        let res = 4usize << self.layers.iter().filter(|l| l.upsample()).count();
        if res != self.output_dim {
            return bad(format!("the layers produce {res}×{res} images but output_dim is {}", self.output_dim));
        }
        Ok(())
    }

    /// Number of per-layer latents an edit can address: one for `gen_z` and one per GenBlock.
    pub fn num_latents(&self) -> usize {
        self.layers.len() + 1
    }

    /// Width of the conditioning vector `cat(z, embed)`.
    pub fn cond_dim(&self) -> usize {
        2 * self.z_dim
    }

    fn deep(output_dim: usize, layers: &[(bool, usize, usize)]) -> Self {
        Self {
            output_dim,
            z_dim: 128,
            class_embed_dim: 128,
            channel_width: 128,
            num_classes: 1000,
            layers: layers.iter().map(|&(u, i, o)| LayerSpec(u, i, o)).collect(),
            attention_layer_position: 8,
            eps: 1e-4,
            n_stats: 51,
        }
    }

    /// `biggan-deep-128`.
    #[rustfmt::skip]
    pub fn deep_128() -> Self {
        Self::deep(128, &[
            (false, 16, 16), (true, 16, 16), (false, 16, 16), (true, 16, 8), (false, 8, 8),
            (true, 8, 4), (false, 4, 4), (true, 4, 2), (false, 2, 2), (true, 2, 1),
        ])
    }

    /// `biggan-deep-256`.
    #[rustfmt::skip]
    pub fn deep_256() -> Self {
        Self::deep(256, &[
            (false, 16, 16), (true, 16, 16), (false, 16, 16), (true, 16, 8), (false, 8, 8),
            (true, 8, 8), (false, 8, 8), (true, 8, 4), (false, 4, 4), (true, 4, 2),
            (false, 2, 2), (true, 2, 1),
        ])
    }

    /// `biggan-deep-512`.
    pub fn deep_512() -> Self {
        let mut c = Self::deep_256();
        c.output_dim = 512;
        c.layers.push(LayerSpec(false, 1, 1));
        c.layers.push(LayerSpec(true, 1, 1));
        c
    }

    /// A preset by its hub name (`deep-128`, `biggan-deep-256`, …).
    pub fn preset(name: &str) -> Option<Self> {
        match name.trim_start_matches("biggan-") {
            "deep-128" => Some(Self::deep_128()),
            "deep-256" => Some(Self::deep_256()),
            "deep-512" => Some(Self::deep_512()),
            _ => None,
        }
    }

    /// Multiply–add FLOPs (×2) of one image, counting only the 3 RGB channels that are kept.
    pub fn flops_per_image(&self) -> f64 {
        let ch = self.channel_width as f64;
        let mut res = 4.0f64;
        let conv = |cin: f64, cout: f64, k: f64, hw: f64| 2.0 * cin * cout * k * k * hw;
        let mut f = 2.0 * self.cond_dim() as f64 * 16.0 * 16.0 * ch; // gen_z
        for (i, l) in self.layers.iter().enumerate() {
            if i == self.attention_layer_position {
                let c = l.1 as f64 * ch;
                let hw = res * res;
                f += conv(c, c / 8.0, 1.0, hw) * 2.0 + conv(c, c / 2.0, 1.0, hw);
                f += 2.0 * hw * (hw / 4.0) * (c / 8.0) + 2.0 * hw * (hw / 4.0) * (c / 2.0);
                f += conv(c / 2.0, c, 1.0, hw);
            }
            let (cin, cout) = (l.1 as f64 * ch, l.2 as f64 * ch);
            let mid = cin / 4.0;
            let hw_in = res * res;
            if l.upsample() {
                res *= 2.0;
            }
            let hw = res * res;
            f += conv(cin, mid, 1.0, hw_in) + conv(mid, mid, 3.0, hw) * 2.0 + conv(mid, cout, 1.0, hw);
        }
        f + conv(ch, 3.0, 3.0, res * res)
    }
}
