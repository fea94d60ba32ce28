//! The selected training job's latest sample sheet, shown live in the Jobs pane: the
//! generator trainings rewrite `samples.png` (CGN, BigGAN-deep) or write
//! `samples_observational.png` (CVAE) in their run folder, and the pane reloads the image
//! whenever the file changes.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The sheets a run folder may hold, in the order they are looked for.
const SHEETS: [&str; 2] = ["samples.png", "samples_observational.png"];

/// A loaded sheet and the file state it was loaded from.
#[derive(Default)]
pub struct SheetPreview {
    shown: Option<(PathBuf, SystemTime, egui::TextureHandle)>,
}

impl SheetPreview {
    /// Shows the newest sheet of run folder `dir`, if there is one.
    pub fn ui(&mut self, ui: &mut egui::Ui, dir: &Path) {
        let Some((path, modified)) = SHEETS.iter().find_map(|f| {
            let p = dir.join(f);
            let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((p, m))
        }) else {
            return;
        };
        let stale = self.shown.as_ref().is_none_or(|(p, m, _)| *p != path || *m != modified);
        if stale {
            // A sheet being rewritten may be half there: keep the old one until it decodes.
            if let Ok(img) = image::open(&path) {
                let rgba = img.to_rgba8();
                let size = [rgba.width() as usize, rgba.height() as usize];
                let color = egui::ColorImage::from_rgba_unmultiplied(size, rgba.as_raw());
                let tex = ui.ctx().load_texture(path.display().to_string(), color, egui::TextureOptions::NEAREST);
                self.shown = Some((path.clone(), modified, tex));
            }
        }
        if let Some((p, _, tex)) = &self.shown {
            let name = p.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
            ui.label(format!("Latest samples ({name})"));
            let size = tex.size_vec2();
            let scale = (320.0 / size.x.max(1.0)).min(2.0);
            ui.add(egui::Image::new(tex).fit_to_exact_size(size * scale)).on_hover_text(p.display().to_string());
        }
    }

    /// The file shown, if any (for tests).
    pub fn shown(&self) -> Option<&Path> {
        self.shown.as_ref().map(|(p, _, _)| p.as_path())
    }
}
