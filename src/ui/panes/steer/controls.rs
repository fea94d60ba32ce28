//! The generator controls: model, class search, seed, truncation, grid.

use super::SteerPane;
use crate::ui::command::{Command, DialogKind};
use crate::ui::panes::PaneCtx;
use crate::ui::StudioState;

impl SteerPane {
    /// The left panel of the steering mode.
    pub fn controls_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PaneCtx<'_>) {
        ui.heading("Generator");
        ui.horizontal(|ui| {
            let l = ui.label("Model");
            ui.add(egui::TextEdit::singleline(&mut ctx.state.model).desired_width(150.0)).labelled_by(l.id);
            if ui.button("Open…").on_hover_text("open a BigGAN-deep folder (config.json + weights)").clicked() {
                ctx.commands.push(Command::OpenDialog(DialogKind::ModelFolder));
            }
        });
        if let Some(i) = &self.info {
            ui.small(format!(
                "{}×{} · {} classes · {:.2} M params · {} latent slots",
                i.resolution,
                i.resolution,
                i.num_classes,
                i.parameters as f64 / 1e6,
                i.num_latents
            ));
        }
        ui.separator();
        self.class_ui(ui, ctx.state);
        ui.separator();
        let state = &mut *ctx.state;
        ui.horizontal(|ui| {
            let l = ui.label("Seed");
            if ui.button("Prev").on_hover_text("previous seed").clicked() {
                state.seed = state.seed.saturating_sub(1);
            }
            ui.add(egui::DragValue::new(&mut state.seed)).labelled_by(l.id);
            if ui.button("Next").on_hover_text("next seed").clicked() {
                state.seed += 1;
            }
            if ui.button("Random").on_hover_text("a random seed").clicked() {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
                state.seed = crate::imageio::fnv1a(&t.to_le_bytes()) % 1_000_000;
            }
        });
        ui.add(egui::Slider::new(&mut state.truncation, 0.02..=1.0).text("Truncation"));
        ui.checkbox(&mut state.snap_truncation, "Snap truncation to the 0.02 grid");
        if state.snap_truncation {
            state.truncation = StudioState::snapped(state.truncation);
        }
        state.truncation = state.truncation.clamp(1e-3, 1.0);
        ui.add(egui::Slider::new(&mut state.batch, 1..=9).text("Grid (consecutive seeds)"));
    }

    fn class_ui(&self, ui: &mut egui::Ui, state: &mut StudioState) {
        let n = self.info.as_ref().map_or(1000, |i| i.num_classes);
        let named = self.info.as_ref().filter(|i| !i.class_names.is_empty());
        ui.horizontal(|ui| {
            ui.label("Class");
            let name = match named {
                Some(i) => i.class_name(state.class),
                None if n == 1000 => crate::classes::imagenet().get(state.class).map(|c| c.name().to_string()),
                None => None,
            };
            ui.strong(name.map_or_else(|| state.class.to_string(), |name| format!("{} {name}", state.class)));
        });
        ui.horizontal(|ui| {
            let l = ui.label("Search");
            ui.add(
                egui::TextEdit::singleline(&mut state.class_query)
                    .hint_text("name, wnid or index")
                    .id_salt("class search"),
            )
            .labelled_by(l.id);
        });
        egui::ScrollArea::vertical().id_salt("classes").max_height(160.0).show(ui, |ui| {
            let q = state.class_query.trim().to_lowercase();
            if let Some(info) = named {
                for (i, name) in info.class_names.iter().enumerate().take(n) {
                    if (q.is_empty() || i.to_string().starts_with(&q) || name.to_lowercase().contains(&q))
                        && ui.selectable_label(state.class == i, format!("{i} {name}")).clicked()
                    {
                        state.class = i;
                    }
                }
            } else if n == 1000 {
                for c in crate::classes::search(&state.class_query, 50) {
                    if ui.selectable_label(state.class == c.index, format!("{} {}", c.index, c.name())).clicked() {
                        state.class = c.index;
                    }
                }
            } else {
                for i in (0..n).filter(|i| q.is_empty() || i.to_string().starts_with(&q)).take(200) {
                    if ui.selectable_label(state.class == i, format!("class {i}")).clicked() {
                        state.class = i;
                    }
                }
            }
        });
        if state.class >= n {
            state.class = n - 1;
        }
    }
}
