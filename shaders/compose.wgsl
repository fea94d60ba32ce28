// CGN compositing on the GPU: x = m'·f + (1 − m')·b with the mask reshaped live,
// m' = clamp((m − τ)/s + 0.5, 0, 1) (m' = m at the neutral s = 1, τ = 0.5).
// The same arithmetic as src/composite.rs (the CPU path exports and tests use), down to the u8
// conversion trunc(clamp((x + 1)/2·256, 0, 255)), so the window shows the exported pixels.

struct Params {
    // x: softness s, y: threshold τ, z: view (0 mask, 1 foreground, 2 background, 3 composite)
    shape: vec4<f32>,
    // x, y: image width and height in pixels
    size: vec4<f32>,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var mask_tex: texture_2d<f32>;
@group(0) @binding(2) var fg_tex: texture_2d<f32>;
@group(0) @binding(3) var bg_tex: texture_2d<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// One triangle that covers the viewport (egui sets the viewport to the widget's rect).
@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VertexOut {
    let x = f32((i << 1u) & 2u);
    let y = f32(i & 2u);
    var out: VertexOut;
    out.position = vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.uv = vec2<f32>(x, y);
    return out;
}

fn shaped(m: f32) -> f32 {
    let s = params.shape.x;
    let t = params.shape.y;
    if (s == 1.0 && t == 0.5) {
        return m;
    }
    return clamp((m - t) / max(s, 1e-6) + 0.5, 0.0, 1.0);
}

fn to_unorm(x: f32) -> f32 {
    return trunc(clamp((x + 1.0) / 2.0 * 256.0, 0.0, 255.0)) / 255.0;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let size = vec2<i32>(params.size.xy);
    let p = clamp(vec2<i32>(floor(in.uv * params.size.xy)), vec2<i32>(0, 0), size - vec2<i32>(1, 1));
    let m = shaped(textureLoad(mask_tex, p, 0).r);
    let f = textureLoad(fg_tex, p, 0).rgb;
    let b = textureLoad(bg_tex, p, 0).rgb;
    let view = i32(params.shape.z);
    var x: vec3<f32>;
    if (view == 0) {
        x = vec3<f32>(m * 2.0 - 1.0);
    } else if (view == 1) {
        x = f;
    } else if (view == 2) {
        x = b;
    } else {
        x = m * f + (1.0 - m) * b;
    }
    return vec4<f32>(to_unorm(x.r), to_unorm(x.g), to_unorm(x.b), 1.0);
}
