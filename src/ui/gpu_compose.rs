//! GPU compositing of a CGN's parts inside the egui frame (`shaders/compose.wgsl`): the mask,
//! the textures and the composite are drawn from three float textures, so moving the mask
//! softness / threshold sliders re-composes on the GPU without running any network.
//!
//! The parts are uploaded once per new network result (float32, exact values); each view is
//! one paint callback with its own uniform buffer.

use std::sync::Arc;

use eframe::egui_wgpu::{self, wgpu};

use crate::composite::{MaskShape, PartsImage, View};

const SHADER: &str = include_str!("../../shaders/compose.wgsl");

/// Pipeline and per-view state, kept in egui-wgpu's callback resources.
pub struct ComposeResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: Vec<wgpu::Buffer>,
    bind_groups: Vec<wgpu::BindGroup>,
    version: u64,
}

/// A uniform buffer at binding 0 and `textures` unfilterable float textures at 1.., drawn by a
/// full-viewport triangle (`vs_main` / `fs_main` of `source`): shared by the WGSL pipelines.
pub(super) fn fullscreen_pipeline(
    rs: &egui_wgpu::RenderState,
    label: &str,
    source: &str,
    textures: u32,
) -> (wgpu::RenderPipeline, wgpu::BindGroupLayout) {
    let device = &rs.device;
    let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }];
    entries.extend((1..=textures).map(|binding| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    }));
    let layout =
        device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries: &entries });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(label),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &shader,
            entry_point: Some("vs_main"),
            buffers: &[],
            compilation_options: Default::default(),
        },
        fragment: Some(wgpu::FragmentState {
            module: &shader,
            entry_point: Some("fs_main"),
            targets: &[Some(rs.target_format.into())],
            compilation_options: Default::default(),
        }),
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        multiview_mask: None,
        cache: None,
    });
    (pipeline, layout)
}

/// A uniform buffer of `size` bytes.
pub(super) fn uniform_buffer(device: &wgpu::Device, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("intervene-params"),
        size,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Creates the pipeline; call once with the app's render state.
pub fn install(rs: &egui_wgpu::RenderState) {
    let device = &rs.device;
    let (pipeline, layout) = fullscreen_pipeline(rs, "cgn-compose", SHADER, 3);
    let uniforms = (0..4).map(|_| uniform_buffer(device, 32)).collect();
    rs.renderer.write().callback_resources.insert(ComposeResources {
        pipeline,
        layout,
        uniforms,
        bind_groups: Vec::new(),
        version: u64::MAX,
    });
}

/// One view of the parts, drawn into a rect.
pub struct ComposeCallback {
    pub parts: Arc<PartsImage>,
    /// Changes whenever `parts` does (new textures are uploaded then).
    pub version: u64,
    pub shape: MaskShape,
    pub view: View,
}

fn upload(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    p: &PartsImage,
    channels: usize,
    data: &[f32],
) -> wgpu::TextureView {
    upload_f32(device, queue, p.width, p.height, channels, data)
}

/// An unfilterable float texture from planar data: 1 channel → R32Float, 3 (CHW) → Rgba32Float.
pub(super) fn upload_f32(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    width: usize,
    height: usize,
    channels: usize,
    data: &[f32],
) -> wgpu::TextureView {
    struct Dims {
        width: usize,
        height: usize,
    }
    let p = Dims { width, height };
    let size = wgpu::Extent3d { width: p.width as u32, height: p.height as u32, depth_or_array_layers: 1 };
    let format = if channels == 1 { wgpu::TextureFormat::R32Float } else { wgpu::TextureFormat::Rgba32Float };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("cgn-part"),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let n = p.width * p.height;
    // Planar CHW → interleaved RGBA for the texture.
    let texels: Vec<f32> = if channels == 1 {
        data.to_vec()
    } else {
        (0..n).flat_map(|i| [data[i], data[n + i], data[2 * n + i], 1.0]).collect()
    };
    let texel_bytes = if channels == 1 { 4 } else { 16 };
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: &texture,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        bytemuck::cast_slice(&texels),
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some((p.width * texel_bytes) as u32),
            rows_per_image: Some(p.height as u32),
        },
        size,
    );
    texture.create_view(&wgpu::TextureViewDescriptor::default())
}

impl egui_wgpu::CallbackTrait for ComposeCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<ComposeResources>() else { return Vec::new() };
        if res.version != self.version || res.bind_groups.is_empty() {
            let p = &self.parts;
            let views = [
                upload(device, queue, p, 1, &p.mask),
                upload(device, queue, p, 3, &p.foreground),
                upload(device, queue, p, 3, &p.background),
            ];
            res.bind_groups = res
                .uniforms
                .iter()
                .map(|u| {
                    device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("cgn-compose"),
                        layout: &res.layout,
                        entries: &[
                            wgpu::BindGroupEntry { binding: 0, resource: u.as_entire_binding() },
                            wgpu::BindGroupEntry {
                                binding: 1,
                                resource: wgpu::BindingResource::TextureView(&views[0]),
                            },
                            wgpu::BindGroupEntry {
                                binding: 2,
                                resource: wgpu::BindingResource::TextureView(&views[1]),
                            },
                            wgpu::BindGroupEntry {
                                binding: 3,
                                resource: wgpu::BindingResource::TextureView(&views[2]),
                            },
                        ],
                    })
                })
                .collect();
            res.version = self.version;
        }
        let params: [f32; 8] = [
            self.shape.softness,
            self.shape.threshold,
            self.view as i32 as f32,
            0.0,
            self.parts.width as f32,
            self.parts.height as f32,
            0.0,
            0.0,
        ];
        queue.write_buffer(&res.uniforms[self.view as usize], 0, bytemuck::cast_slice(&params));
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(res) = resources.get::<ComposeResources>() else { return };
        let Some(bg) = res.bind_groups.get(self.view as usize) else { return };
        render_pass.set_pipeline(&res.pipeline);
        render_pass.set_bind_group(0, bg, &[]);
        render_pass.draw(0..3, 0..1);
    }
}
