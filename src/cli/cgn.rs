//! `intervene cgn`: counterfactual images from a Counterfactual Generative Network — a shape
//! (mask), a texture (foreground) and a background mechanism, each with its own class.
//!
//! The model kind is detected from the checkpoint's keys ([`CgnModel::open`]): the MNIST CGN
//! ([`crate::models::cgn_mnist`]) or the ImageNet CGN ([`crate::models::cgn_imagenet`]: four
//! BigGAN-deep-256 generators and U²-Net, the authors' `cgn.pth` layout).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use candle_core::{DType, Tensor};

use crate::imageio;
use crate::models::cgn::CgnModel;
use crate::models::cgn_imagenet::CgnOptions;
use crate::models::cgn_mnist::{self, Parts, Shifts};

/// Generate counterfactual images from a CGN: choose the class of the shape, the texture and
/// the background separately.
///
/// The noise u ~ N(0, 1) comes from --seed (row i from seed + i) or from --u. Like the original
/// generator, textures are torus-shifted by a random offset per image (seeded by --seed) unless
/// --shift or --no-shift is given; the mask is never shifted.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: intervene cgn --model double_colored.pth --shape 3 --texture 0,1,2,3 --background 7 --batch 4 --out cf.png --parts parts/"
)]
pub struct CgnArgs {
    /// CGN checkpoint: the authors' ckp.pth (PyTorch zip) or safetensors with the same keys.
    #[arg(long, value_name = "PATH", help_heading = "Model")]
    pub model: PathBuf,
    /// Class of the shape (mask) mechanism: one class for all samples or a comma list of B.
    #[arg(long, value_name = "C[,C…]", help_heading = "Classes")]
    pub shape: String,
    /// Class of the texture (foreground) mechanism: one or B classes.
    #[arg(long, value_name = "C[,C…]", help_heading = "Classes")]
    pub texture: String,
    /// Class of the background mechanism: one or B classes.
    #[arg(long, value_name = "C[,C…]", help_heading = "Classes")]
    pub background: String,
    /// Seed of the noise u (and of the random texture shifts).
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Noise")]
    pub seed: u64,
    /// Noise vectors, float32 [B, 32] `.npy` (instead of drawing them from --seed).
    #[arg(long, value_name = "U.npy", help_heading = "Noise")]
    pub u: Option<PathBuf>,
    /// Number of samples [default: the longest class list, or the rows of --u].
    #[arg(long, value_name = "B", help_heading = "Noise", value_parser = super::values::positive)]
    pub batch: Option<usize>,
    /// Shift both textures of every sample by DX columns and DY rows (each 0..=32) instead of a
    /// random shift.
    #[arg(long, value_name = "DX,DY", conflicts_with = "no_shift", help_heading = "Texture shift")]
    pub shift: Option<String>,
    /// Do not shift the textures.
    #[arg(long, help_heading = "Texture shift")]
    pub no_shift: bool,
    /// Image to write: the composites (a grid when B > 1; PNG/JPEG by extension).
    #[arg(long, value_name = "IMG.png", help_heading = "Output")]
    pub out: PathBuf,
    /// Also write mask/foreground/background/composite as float32 NCHW `.npy` (mask in [0, 1],
    /// the rest in [−1, 1]) and PNG grids, plus the noise u.npy and the shifts, into DIR.
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub parts: Option<PathBuf>,
    /// Run on the CPU even when a GPU is available.
    /// Truncation of the noise and the BN tables (ImageNet CGN only; the authors use 0.5).
    #[arg(long, value_name = "T", default_value_t = 0.5, help_heading = "Noise", value_parser = super::values::truncation)]
    pub truncation: f64,
    #[arg(long, help_heading = "Device")]
    pub cpu: bool,
}

/// The random texture shifts `intervene cgn` applies without --shift/--no-shift: drawn from
/// the noise seed (on a stream of their own).
pub fn default_shifts(seed: u64, batch: usize) -> Shifts {
    Shifts::for_seed(seed, batch)
}

/// Parses "3" or "0,1,2" into classes below `n`.
fn parse_classes(s: &str, what: &str, n: usize) -> anyhow::Result<Vec<u32>> {
    s.split(',')
        .map(|t| {
            let t = t.trim();
            let k: u32 = if n == 1000 {
                crate::classes::resolve(t, n).map_err(|e| anyhow::anyhow!("--{what}: {e}"))? as u32
            } else {
                t.parse().with_context(|| format!("--{what}: {t:?} is not a class index"))?
            };
            if k as usize >= n {
                bail!("--{what}: class {k} is out of range (the model has classes 0..{})", n - 1);
            }
            Ok(k)
        })
        .collect()
}

/// Repeats a single class to `b`, or checks a list has `b` entries.
fn broadcast(v: Vec<u32>, b: usize, what: &str) -> anyhow::Result<Vec<u32>> {
    match v.len() {
        1 => Ok(vec![v[0]; b]),
        n if n == b => Ok(v),
        n => bail!("--{what} lists {n} classes for a batch of {b} (give one class or {b})"),
    }
}

fn parse_shift(s: &str) -> anyhow::Result<(usize, usize)> {
    let (dx, dy) = s.split_once(',').context("--shift takes DX,DY (e.g. 5,12)")?;
    let p = |t: &str| -> anyhow::Result<usize> {
        let v: usize = t.trim().parse().with_context(|| format!("--shift: {t:?} is not an offset"))?;
        if v > 32 {
            bail!("--shift: offset {v} is outside 0..=32");
        }
        Ok(v)
    };
    Ok((p(dx)?, p(dy)?))
}

/// Runs `intervene cgn`.
pub fn run(a: CgnArgs) -> anyhow::Result<()> {
    let device = crate::device::select(a.cpu);
    let model = CgnModel::open(&a.model, &device)?;
    let n = model.num_classes();
    let (ys, yt, yb) = (
        parse_classes(&a.shape, "shape", n)?,
        parse_classes(&a.texture, "texture", n)?,
        parse_classes(&a.background, "background", n)?,
    );
    let u_file = match &a.u {
        Some(p) => {
            let u = imageio::load_npy(p)?;
            Some(if u.rank() == 1 { u.unsqueeze(0)? } else { u })
        }
        None => None,
    };
    let rows = u_file.as_ref().map(|u| u.dim(0)).transpose()?;
    let b = a.batch.or(rows).unwrap_or_else(|| ys.len().max(yt.len()).max(yb.len()));
    if b == 0 {
        bail!("--batch must be at least 1");
    }
    if let Some(r) = rows.filter(|&r| r != b) {
        bail!("--u has {r} rows but the batch is {b}");
    }
    let (ys, yt, yb) = (broadcast(ys, b, "shape")?, broadcast(yt, b, "texture")?, broadcast(yb, b, "background")?);
    let shifts = if a.no_shift {
        Shifts::none(b)
    } else if let Some(s) = &a.shift {
        let (dx, dy) = parse_shift(s)?;
        Shifts::uniform(b, dy, dx)
    } else {
        default_shifts(a.seed, b)
    };
    match &model {
        CgnModel::Mnist(m) => {
            let latent = m.config.latent_sz;
            let u = match u_file {
                Some(u) => u.to_device(&device)?,
                None => crate::noise::normal_noise(a.seed, b, latent, &device)?,
            };
            let cols = u.dims2().context("--u must be a 2-D array [B, 32]")?.1;
            if cols != latent {
                bail!("--u has {cols} columns but the model's noise has {latent}");
            }
            let y = |v: &[u32]| Tensor::new(v, &device);
            let parts = m.forward_parts(&u, &y(&ys)?, &y(&yt)?, &y(&yb)?)?.shifted(&shifts)?;
            save_grid(&parts.x, &a.out)?;
            if let Some(dir) = &a.parts {
                write_parts(&parts, &u, &shifts, &[&ys, &yt, &yb], dir)?;
            }
        }
        CgnModel::ImageNet(m) => {
            if a.shift.is_some() {
                bail!("--shift applies to the MNIST CGN's texture shift; the ImageNet CGN has none");
            }
            let zd = m.f_shape.cfg.z_dim;
            let u = match u_file {
                Some(u) => u.to_dtype(DType::F32)?.to_device(&device)?,
                None => crate::noise::truncated_noise(a.seed, b, zd, a.truncation, &device)?,
            };
            let cols = u.dims2().context("--u must be a 2-D array [B, z_dim]")?.1;
            if cols != zd {
                bail!("--u has {cols} columns but the generators' z_dim is {zd}");
            }
            let nc = m.f_shape.cfg.num_classes;
            let oh =
                |v: &[u32]| crate::classes::one_hot(&v.iter().map(|&c| c as usize).collect::<Vec<_>>(), nc, &device);
            let out = m.forward(&u, &oh(&ys)?, &oh(&yt)?, &oh(&yb)?, a.truncation, CgnOptions::default())?;
            save_grid(&out.x_gen, &a.out)?;
            if let Some(dir) = &a.parts {
                let parts = [
                    ("mask", &out.mask),
                    ("foreground", &out.foreground),
                    ("background", &out.background),
                    ("composite", &out.x_gen),
                ];
                write_plain_parts(&parts, &u, &[&ys, &yt, &yb], a.truncation, dir)?;
            }
        }
    }
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

/// `t` [B,C,H,W] in [−1, 1] → a PNG grid.
fn save_grid(t: &Tensor, path: &Path) -> anyhow::Result<()> {
    imageio::save_image(&imageio::grid(&imageio::images_from_tensor(t)?), path)
}

/// `--parts` for models without a texture shift: float32 NCHW `.npy` + PNG per part.
fn write_plain_parts(
    parts: &[(&str, &Tensor); 4],
    u: &Tensor,
    labels: &[&Vec<u32>; 3],
    truncation: f64,
    dir: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, t) in parts {
        let t = t.to_dtype(DType::F32)?;
        imageio::save_npy(&t, &dir.join(format!("{name}.npy")))?;
        // The mask lies in [0, 1]; show it black..white.
        let shown = if *name == "mask" { ((&t * 2.0)? - 1.0)? } else { t };
        save_grid(&shown, &dir.join(format!("{name}.png")))?;
    }
    imageio::save_npy(&u.to_dtype(DType::F32)?, &dir.join("u.npy"))?;
    let meta = serde_json::json!({ "shape": labels[0], "texture": labels[1], "background": labels[2], "truncation": truncation });
    let p: PathBuf = dir.join("inputs.json");
    std::fs::write(&p, serde_json::to_string_pretty(&meta)? + "\n")
        .with_context(|| format!("cannot write {}", p.display()))
}

fn write_parts(parts: &Parts, u: &Tensor, shifts: &Shifts, labels: &[&Vec<u32>; 3], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The mask is one channel; its PNG maps [0, 1] to black..white.
    let mask = parts.mask_raw.clamp(cgn_mnist::MASK_MIN, cgn_mnist::MASK_MAX)?;
    imageio::save_npy(&mask, &dir.join("mask.npy"))?;
    save_grid(&((&mask * 2.0)? - 1.0)?, &dir.join("mask.png"))?;
    for (name, t) in [("foreground", &parts.fg), ("background", &parts.bg), ("composite", &parts.x)] {
        imageio::save_npy(&t.to_dtype(DType::F32)?, &dir.join(format!("{name}.npy")))?;
        save_grid(t, &dir.join(format!("{name}.png")))?;
    }
    imageio::save_npy(&u.to_dtype(DType::F32)?, &dir.join("u.npy"))?;
    let meta = serde_json::json!({
        "shape": labels[0], "texture": labels[1], "background": labels[2],
        "shift": { "fg_dy": shifts.fg_dy, "fg_dx": shifts.fg_dx, "bg_dy": shifts.bg_dy, "bg_dx": shifts.bg_dx },
    });
    let p: PathBuf = dir.join("inputs.json");
    std::fs::write(&p, serde_json::to_string_pretty(&meta)? + "\n")
        .with_context(|| format!("cannot write {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_lists_broadcast_and_validate() {
        assert_eq!(broadcast(parse_classes("3", "shape", 10).unwrap(), 4, "shape").unwrap(), [3, 3, 3, 3]);
        assert_eq!(parse_classes("0, 1,9", "shape", 10).unwrap(), [0, 1, 9]);
        assert!(parse_classes("10", "shape", 10).unwrap_err().to_string().contains("out of range"));
        assert!(broadcast(vec![1, 2], 3, "texture").unwrap_err().to_string().contains("2 classes for a batch of 3"));
        assert_eq!(parse_shift("5,32").unwrap(), (5, 32));
        assert!(parse_shift("33,0").is_err());
    }
}
