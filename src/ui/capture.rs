//! Capturing what is on screen so the CLI can regenerate it bit for bit: the image(s), the grid,
//! the base latents `z.npy`, and a JSON record of class, truncation, edits and the exact
//! `intervene steer` / `generate` command line.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use candle_core::{Device, Tensor};

use crate::steer::render::Rendered;

/// Default folder for captures: `$INTERVENE_CAPTURES`, else `~/intervene-captures`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("INTERVENE_CAPTURES").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join("intervene-captures")
    })
}

/// A unique stem in `dir` for this frame: `seed{S}-class{C}-{unix ms}`.
pub fn stem(dir: &Path, r: &Rendered) -> PathBuf {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    dir.join(format!("seed{}-class{}-{ms}", r.request.seed, r.request.class))
}

/// The command that regenerates `r` from the files written next to `stem`.
pub fn command_line(r: &Rendered, z_path: &Path, out: &Path) -> String {
    let q = |s: &str| {
        if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=".contains(c)) {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let req = &r.request;
    let common = format!(
        "--model {} --z {} --class {} --truncation {} --out {}",
        q(&req.model),
        q(&z_path.to_string_lossy()),
        req.class,
        req.truncation,
        q(&out.to_string_lossy())
    );
    match (&req.components, req.edits.is_empty()) {
        (Some(c), false) => {
            let mode = match req.mode {
                crate::steer::EditMode::Additive => "additive",
                crate::steer::EditMode::Centred => "centred",
            };
            let edits: Vec<String> = req.edits.iter().map(|e| format!("--edit {e}")).collect();
            format!("intervene steer {common} --components {} --mode {mode} {}", q(&c.source), edits.join(" "))
        }
        _ => format!("intervene generate {common}"),
    }
}

/// Writes `<stem>.png` (the grid, or the single image), `<stem>_{i}.png` per image of a grid,
/// `<stem>_z.npy` and `<stem>.json`.
/// Returns the JSON path.
pub fn save(r: &Rendered, stem: &Path) -> anyhow::Result<PathBuf> {
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let png = stem.with_extension("png");
    let z_path = PathBuf::from(format!("{}_z.npy", stem.display()));
    let json_path = stem.with_extension("json");
    crate::imageio::save_image(&crate::imageio::grid(&r.images), &png)?;
    if r.images.len() > 1 {
        for (i, img) in r.images.iter().enumerate() {
            crate::imageio::save_image(img, &PathBuf::from(format!("{}_{i}.png", stem.display())))?;
        }
    }
    let batch = r.images.len();
    let z = Tensor::from_vec(r.z.clone(), (batch, r.info.z_dim), &Device::Cpu)?;
    crate::imageio::save_npy(&z, &z_path)?;
    let req = &r.request;
    let record = serde_json::json!({
        "model": req.model,
        "class": req.class,
        "class_name": r.info.class_name(req.class),
        "seed": req.seed,
        "batch": batch,
        "truncation": req.truncation,
        "components": req.components.as_ref().map(|c| c.source.clone()),
        "mode": format!("{:?}", req.mode).to_lowercase(),
        "edits": req.edits.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "z": z_path.file_name().map(|s| s.to_string_lossy().into_owned()),
        "image": png.file_name().map(|s| s.to_string_lossy().into_owned()),
        "command": command_line(r, &z_path, &stem.with_extension("regenerated.png")),
    });
    crate::imageio::write_atomically(&json_path, |tmp| {
        std::fs::write(tmp, serde_json::to_vec_pretty(&record)?)?;
        Ok(())
    })?;
    Ok(json_path)
}

/// Saves an RGBA screenshot of the window.
pub fn save_screenshot(img: &egui::ColorImage, path: &Path) -> anyhow::Result<()> {
    let [w, h] = img.size;
    let rgba: Vec<u8> = img.pixels.iter().flat_map(|p| p.to_array()).collect();
    let buf = image::RgbaImage::from_raw(w as u32, h as u32, rgba).context("screenshot has the wrong size")?;
    crate::imageio::write_atomically(path, |tmp| {
        buf.save_with_format(tmp, image::ImageFormat::Png)?;
        Ok(())
    })
}
