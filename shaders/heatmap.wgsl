// CAM overlay on the GPU, pytorch-grad-cam's show_cam_on_image with a heatmap weight α:
// out = (α·jet(map) + (1 − α)·img) / max, u8 by truncation. jet is OpenCV's COLORMAP_JET as
// src/explain/cam.rs computes it (each channel clamp(1.5 − |4x − c|, 0, 1), rounded to u8, with
// x = u8(map·255)/255). The maximum over the whole blend is a reduction: the CPU computes it
// (explain::cam::blend) and passes it in, so both paths give the same pixels.

struct Params {
    // x: α, y: max of the blend, zw: image width and height
    v: vec4<f32>,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var image_tex: texture_2d<f32>;
@group(0) @binding(2) var map_tex: texture_2d<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VertexOut {
    let x = f32((i << 1u) & 2u);
    let y = f32(i & 2u);
    var out: VertexOut;
    out.position = vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.uv = vec2<f32>(x, y);
    return out;
}

fn jet_channel(x: f32, c: f32) -> f32 {
    return round(clamp(1.5 - abs(4.0 * x - c), 0.0, 1.0) * 255.0);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let size = vec2<i32>(params.v.zw);
    let p = clamp(vec2<i32>(floor(in.uv * params.v.zw)), vec2<i32>(0, 0), size - vec2<i32>(1, 1));
    let img = textureLoad(image_tex, p, 0).rgb;        // rgba8unorm: u8 / 255, exact
    let m = textureLoad(map_tex, p, 0).r;
    let x = trunc(m * 255.0) / 255.0;
    let heat = vec3<f32>(jet_channel(x, 3.0), jet_channel(x, 2.0), jet_channel(x, 1.0)) / 255.0;
    let a = params.v.x;
    let f = a * heat + (1.0 - a) * img;
    let out = trunc(255.0 * f / params.v.y);
    return vec4<f32>(out / 255.0, 1.0);
}
