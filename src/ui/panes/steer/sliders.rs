//! The right panel of the steering mode: component source (file or a PCA job), edit mode,
//! latent range, the component sliders, and saved directions.

use super::SteerPane;
use crate::ui::command::{Command, DialogKind};
use crate::ui::panes::{job_progress_ui, PaneCtx};
use crate::ui::state::{SavedDirection, MAX_SLIDERS};
use crate::ui::StudioState;

impl SteerPane {
    /// Components and edit settings (above the sliders); `extra` draws more sections (the sweep).
    pub fn steering_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut PaneCtx<'_>,
        extra: impl FnOnce(&mut egui::Ui, &mut PaneCtx<'_>),
    ) {
        ui.heading("Steering");
        self.components_ui(ui, ctx);
        let Some(comps) = self.components.clone() else { return };
        let num_latents = self.info.as_ref().map_or(1, |i| i.num_latents);
        let state = &mut *ctx.state;
        ui.separator();
        ui.horizontal(|ui| {
            ui.label("Edit");
            ui.radio_value(&mut state.centred, false, "additive").on_hover_text("GANSpace: z + s·σ·ĉ");
            ui.radio_value(&mut state.centred, true, "centred")
                .on_hover_text("GenInt: set the coordinate along ĉ (around the mean) to s·σ");
        });
        let (mut start, mut end) = state.layer_range(num_latents);
        ui.add(egui::Slider::new(&mut start, 0..=num_latents - 1).text("Layer start"));
        ui.add(egui::Slider::new(&mut end, 1..=num_latents).text("Layer end"));
        if end <= start {
            end = start + 1;
        }
        (state.layer_start, state.layer_end) = (start, end);
        ui.horizontal(|ui| {
            if ui.button("Reset").on_hover_text("all sliders to 0").clicked() {
                state.sliders.iter_mut().for_each(|s| *s = 0.0);
            }
            let active = state.sliders.iter().filter(|s| **s != 0.0).count();
            ui.label(format!("{active} active"));
        });
        if ui
            .button("Export intervened set…")
            .on_hover_text("GenInt's export with this model, these components and this class (Jobs pane)")
            .clicked()
        {
            ctx.commands.push(Command::PrepareExport {
                model: state.model.clone(),
                components: Some(comps.source.clone()),
                class: state.class,
            });
        }
        self.saved_ui(ui, state, num_latents);
        extra(ui, ctx);
        ui.separator();
        let n = comps.num_components().min(MAX_SLIDERS);
        egui::ScrollArea::vertical().id_salt("sliders").show(ui, |ui| {
            for c in 0..n {
                let label = format!("PC{c} ({:.1}%)", 100.0 * comps.var_ratio[c]);
                ui.add(egui::Slider::new(&mut ctx.state.sliders[c], -10.0..=10.0).step_by(0.1).text(label));
            }
        });
    }

    fn components_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PaneCtx<'_>) {
        match &self.components {
            Some(c) => {
                let name = std::path::Path::new(&c.source)
                    .file_name()
                    .map_or(c.source.clone(), |s| s.to_string_lossy().into());
                ui.label(format!("{} components · {}", c.num_components(), name)).on_hover_text(&c.source);
            }
            None => {
                ui.label("No components loaded: open a GANSpace .npz or compute them for this model and class.");
            }
        }
        let pca_running = self.pca_job.as_deref().is_some_and(|n| ctx.board.is_active(n));
        ui.horizontal(|ui| {
            if ui.button("Open .npz…").clicked() {
                ctx.commands.push(Command::OpenDialog(DialogKind::Components));
            }
            if !pca_running
                && ui.button("Compute PCA").on_hover_text("GANSpace PCA at gen_z, in the background").clicked()
            {
                self.start_pca(ctx);
            }
            ui.add(egui::DragValue::new(&mut ctx.state.pca_samples).range(200..=1_000_000).prefix("N = "));
        });
        if let Some(name) = self.pca_job.clone() {
            job_progress_ui(ui, ctx, &name, "Cancel");
        }
        if self.load_job.as_deref().is_some_and(|n| ctx.board.is_active(n)) {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("loading components…");
            });
        }
    }

    fn saved_ui(&mut self, ui: &mut egui::Ui, state: &mut StudioState, num_latents: usize) {
        egui::CollapsingHeader::new("Saved directions").default_open(false).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut self.new_direction_name).hint_text("name").desired_width(120.0));
                let strongest = state
                    .sliders
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| **s != 0.0)
                    .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                    .map(|(c, s)| (c, *s));
                let save = ui.add_enabled(strongest.is_some(), egui::Button::new("Save"));
                if save.on_hover_text("saves the strongest active slider with the current layer range").clicked() {
                    if let Some((component, strength)) = strongest {
                        let (start, end) = state.layer_range(num_latents);
                        let name = if self.new_direction_name.trim().is_empty() {
                            format!("PC{component} {start}-{end} {strength:+.1}")
                        } else {
                            self.new_direction_name.trim().to_string()
                        };
                        state.saved.push(SavedDirection { name, component, start, end, strength });
                        self.new_direction_name.clear();
                    }
                }
            });
            let mut remove = None;
            for (i, d) in state.saved.clone().into_iter().enumerate() {
                ui.horizontal(|ui| {
                    if ui.button("Apply").on_hover_text("set this slider and the layer range").clicked() {
                        if let Some(s) = state.sliders.get_mut(d.component) {
                            *s = d.strength;
                        }
                        state.layer_start = d.start;
                        state.layer_end = d.end;
                    }
                    if ui.small_button("x").on_hover_text("forget").clicked() {
                        remove = Some(i);
                    }
                    ui.label(format!("{} (PC{} {}..{} {:+.1})", d.name, d.component, d.start, d.end, d.strength));
                });
            }
            if let Some(i) = remove {
                state.saved.remove(i);
            }
        });
    }
}
