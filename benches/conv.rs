//! Convolution and attention kernels on BigGAN-deep-128's layer shapes, GFLOP/s per shape and
//! the total per image over the generator's whole layer list (each shape times its count).
//! `cargo bench --bench conv [-- --batch N]` (default batch 1). Under `cargo test` (no `--bench`
//! flag) it runs one quick pass of each shape as a smoke test.

use intervene::ops::{conv2d, conv_flops, self_attention, AttnArgs, Conv2dArgs, PreAct, Residual};

fn data(n: usize, s: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * s) % 1000) as f32 / 1000.0 - 0.5) * 0.2).collect()
}

/// (count, c, o, k, input h = w, upsample): every convolution of deep-128's ten GenBlocks
/// (channel widths 16·ch … 1·ch with ch = 128, bottleneck ¼) and conv_to_rgb's 3 kept outputs.
const SHAPES: [(usize, usize, usize, usize, usize, bool); 22] = [
    (1, 512, 512, 3, 4, false),
    (1, 512, 512, 3, 4, true),
    (3, 512, 512, 3, 8, false),
    (1, 512, 512, 3, 8, true),
    (1, 512, 512, 3, 16, false),
    (1, 256, 256, 3, 16, false),
    (1, 256, 256, 3, 16, true),
    (1, 256, 256, 3, 32, false),
    (1, 128, 128, 3, 32, false),
    (1, 128, 128, 3, 32, true),
    (1, 128, 128, 3, 64, false),
    (1, 64, 64, 3, 64, false),
    (1, 64, 64, 3, 64, true),
    (1, 64, 64, 3, 128, false),
    (3, 2048, 512, 1, 4, false),
    (2, 512, 2048, 1, 4, false),
    (1, 2048, 512, 1, 8, false),
    (1, 512, 2048, 1, 8, false),
    (2, 1024, 256, 1, 16, false),
    (2, 512, 128, 1, 32, false),
    (2, 256, 64, 1, 64, false),
    (1, 128, 3, 3, 128, false),
];
// The 1×1 convolutions that widen the bottleneck back (listed apart to keep the table short).
const WIDEN: [(usize, usize, usize, usize, usize, bool); 4] = [
    (1, 512, 1024, 1, 16, false),
    (1, 256, 1024, 1, 16, false),
    (2, 256, 512, 1, 32, false),
    (2, 128, 256, 1, 64, false),
];
const WIDEN_128: (usize, usize, usize, usize, usize, bool) = (1, 64, 128, 1, 128, false);

fn main() {
    intervene::bench::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let batch = args
        .iter()
        .position(|a| a == "--batch")
        .and_then(|i| args.get(i + 1))
        .map_or(1, |v| v.parse().expect("--batch N"));
    let reps = if bench { 10 } else { 1 };
    let (mut total_ms, mut flops) = (0.0, 0.0);
    for &(count, c, o, k, h, up) in SHAPES.iter().chain(&WIDEN).chain([&WIDEN_128]) {
        let w = h;
        let b = batch;
        let x = data(b * c * h * w, 7919);
        let wt = data(o * c * k * k, 104_729);
        let bias = vec![0.1f32; o];
        let (sc, sh) = (vec![1.0f32; b * c], vec![0.1f32; b * c]);
        let (oh, ow) = if up { (2 * h, 2 * w) } else { (h, w) };
        let mut out = vec![0f32; b * o * oh * ow];
        let pre = Some(PreAct { scale: &sc, shift: &sh });
        // As a loaded layer keeps it (the first call, untimed, makes it).
        let winograd = std::sync::OnceLock::new();
        let a = Conv2dArgs {
            x: &x,
            dims: [b, c, h, w],
            pre,
            upsample2: up,
            weight: &wt,
            out_channels: o,
            kernel: k,
            bias: Some(&bias),
            residual: None,
            winograd_u: Some(&winograd),
        };
        conv2d(&a, &mut out).expect("conv");
        let t = std::time::Instant::now();
        for _ in 0..reps {
            conv2d(&a, &mut out).expect("conv");
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        let f = conv_flops(b, c, o, k, oh, ow);
        total_ms += count as f64 * ms / b as f64;
        flops += count as f64 * f / b as f64;
        println!(
            "conv ×{count} c{c:<4} o{o:<4} k{k} {oh:>3}x{ow:<3} up={up:<5} batch {b}: {:7.3} ms/image {:6.1} GFLOP/s",
            ms / b as f64,
            f / ms / 1e6,
        );
    }
    // The blocks' last 1×1 convolutions read their skip in place (×2 upsampled in upsampling
    // blocks): (c, o, h, skip channels, skip side).
    for &(c, o, h, sc, sh) in
        &[(64usize, 128usize, 128usize, 256usize, 64usize), (64, 256, 64, 256, 64), (128, 256, 64, 512, 32)]
    {
        let b = batch;
        let (x, wt, skip) = (data(b * c * h * h, 7919), data(o * c, 104_729), data(b * sc * sh * sh, 31));
        let (sc_, sh_) = (vec![1.0f32; b * c], vec![0.1f32; b * c]);
        let bias = vec![0.1f32; o];
        let mut out = vec![0f32; b * o * h * h];
        let a = Conv2dArgs {
            x: &x,
            dims: [b, c, h, h],
            pre: Some(PreAct { scale: &sc_, shift: &sh_ }),
            upsample2: false,
            weight: &wt,
            out_channels: o,
            kernel: 1,
            bias: Some(&bias),
            residual: Some(Residual::Skip { x: &skip, c: sc, h: sh, w: sh }),
            winograd_u: None,
        };
        conv2d(&a, &mut out).expect("conv");
        let t = std::time::Instant::now();
        for _ in 0..reps {
            conv2d(&a, &mut out).expect("conv");
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        let f = conv_flops(b, c, o, 1, h, h);
        println!(
            "conv c{c:<4} o{o:<4} k1 {h:>3}x{h:<3} + skip ({sc}, {sh}²) batch {b}: {:7.3} ms/image {:6.1} GFLOP/s",
            ms / b as f64,
            f / ms / 1e6
        );
    }
    let (c, h, w) = (256usize, 64usize, 64usize);
    let x = data(batch * c * h * w, 7919);
    let (t, p, g, o) = (data(c / 8 * c, 31), data(c / 8 * c, 37), data(c / 2 * c, 41), data(c * c / 2, 43));
    let mut out = vec![0f32; batch * c * h * w];
    let a = AttnArgs { x: &x, dims: [batch, c, h, w], theta: &t, phi: &p, g: &g, o: &o, gamma: 0.5 };
    self_attention(&a, &mut out).expect("attention");
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        self_attention(&a, &mut out).expect("attention");
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3 / reps as f64 / batch as f64;
    println!("attention 256ch 64x64 batch {batch}: {ms:7.2} ms/image");
    println!(
        "convolutions: {total_ms:.1} ms/image, {:.1} GFLOP/s over {:.2} GFLOP/image; with attention {:.1} ms/image",
        flops / total_ms / 1e6,
        flops / 1e9,
        total_ms + ms
    );
}
