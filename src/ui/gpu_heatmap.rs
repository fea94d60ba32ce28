//! The CAM overlay drawn on the GPU (`shaders/heatmap.wgsl`): the image and the map are uploaded
//! once per explanation, the heatmap weight α moves live. The blend's maximum (a reduction) comes
//! from the CPU path `explain::cam::blend`, so the window shows exactly the exported pixels.

use std::sync::Arc;

use eframe::egui_wgpu::{self, wgpu};

use super::gpu_compose::{fullscreen_pipeline, uniform_buffer, upload_f32};

const SHADER: &str = include_str!("../../shaders/heatmap.wgsl");
/// Explain columns.
const SLOTS: usize = 2;

pub struct HeatmapResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: Vec<wgpu::Buffer>,
    bind_groups: Vec<Option<wgpu::BindGroup>>,
    versions: Vec<u64>,
}

/// Creates the pipeline; call once with the app's render state.
pub fn install(rs: &egui_wgpu::RenderState) {
    let (pipeline, layout) = fullscreen_pipeline(rs, "cam-heatmap", SHADER, 2);
    let uniforms = (0..SLOTS).map(|_| uniform_buffer(&rs.device, 16)).collect();
    rs.renderer.write().callback_resources.insert(HeatmapResources {
        pipeline,
        layout,
        uniforms,
        bind_groups: vec![None; SLOTS],
        versions: vec![u64::MAX; SLOTS],
    });
}

pub use crate::explain::pipeline::HeatmapInput;

pub struct HeatmapCallback {
    pub input: Arc<HeatmapInput>,
    pub version: u64,
    pub slot: usize,
    pub alpha: f32,
    /// Maximum of the blend for this α (from the CPU).
    pub max: f32,
}

impl egui_wgpu::CallbackTrait for HeatmapCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<HeatmapResources>() else { return Vec::new() };
        let slot = self.slot.min(SLOTS - 1);
        if res.versions[slot] != self.version || res.bind_groups[slot].is_none() {
            let i = &self.input;
            let n = i.width * i.height;
            // Planar [0, 1] channels, exactly `u8 as f32 / 255.0` as the CPU path computes them.
            let planar: Vec<f32> = (0..3)
                .flat_map(|c| (0..n).map(move |p| (c, p)))
                .map(|(c, p)| i.image[p * 3 + c] as f32 / 255.0)
                .collect();
            let img = upload_f32(device, queue, i.width, i.height, 3, &planar);
            let map = upload_f32(device, queue, i.width, i.height, 1, &i.map);
            res.bind_groups[slot] = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("cam-heatmap"),
                layout: &res.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: res.uniforms[slot].as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&img) },
                    wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&map) },
                ],
            }));
            res.versions[slot] = self.version;
        }
        let params = [self.alpha, self.max, self.input.width as f32, self.input.height as f32];
        queue.write_buffer(&res.uniforms[slot], 0, bytemuck::cast_slice(&params));
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(res) = resources.get::<HeatmapResources>() else { return };
        let Some(Some(bg)) = res.bind_groups.get(self.slot) else { return };
        render_pass.set_pipeline(&res.pipeline);
        render_pass.set_bind_group(0, bg, &[]);
        render_pass.draw(0..3, 0..1);
    }
}
