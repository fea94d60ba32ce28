//! Convolution and attention kernels on BigGAN-deep-128's layer shapes (batch 1), GFLOP/s.
//! `cargo bench --bench conv`. Under `cargo test` (no `--bench` flag) it runs one quick pass
//! of each shape as a smoke test.

use intervene::ops::{conv2d, conv_flops, self_attention, AttnArgs, Conv2dArgs, PreAct};

fn data(n: usize, s: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * s) % 1000) as f32 / 1000.0 - 0.5) * 0.2).collect()
}

fn main() {
    intervene::bench::tune_allocator();
    let bench = std::env::args().any(|a| a == "--bench");
    let reps = if bench { 10 } else { 1 };
    // (c, o, k, h, w, upsample): the 3×3 and 1×1 convs of deep-128's blocks and conv_to_rgb.
    let shapes = [
        (512usize, 512usize, 3usize, 4usize, 4usize, true),
        (512, 512, 3, 8, 8, false),
        (256, 256, 3, 16, 16, true),
        (256, 256, 3, 32, 32, false),
        (128, 128, 3, 32, 32, true),
        (128, 128, 3, 64, 64, false),
        (64, 64, 3, 64, 64, true),
        (64, 64, 3, 128, 128, false),
        (256, 64, 1, 64, 64, false),
        (64, 128, 1, 128, 128, false),
        (128, 3, 3, 128, 128, false),
    ];
    let (mut total_ms, mut zero_total) = (0.0, 0.0);
    for &(c, o, k, h, w, up) in &shapes {
        let x = data(c * h * w, 7919);
        let wt = data(o * c * k * k, 104_729);
        let bias = vec![0.1f32; o];
        let (sc, sh) = (vec![1.0f32; c], vec![0.1f32; c]);
        let (oh, ow) = if up { (2 * h, 2 * w) } else { (h, w) };
        let mut out = vec![0f32; o * oh * ow];
        let pre = Some(PreAct { scale: &sc, shift: &sh });
        let a = Conv2dArgs {
            x: &x,
            dims: [1, c, h, w],
            pre,
            upsample2: up,
            weight: &wt,
            out_channels: o,
            kernel: k,
            bias: Some(&bias),
            residual: None,
        };
        conv2d(&a, &mut out).expect("conv");
        let t = std::time::Instant::now();
        for _ in 0..reps {
            conv2d(&a, &mut out).expect("conv");
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        total_ms += ms;
        let f = conv_flops(1, c, o, k, oh, ow);
        // The zeroed output buffer the fused path allocates per call (`ops::output_buffer`): its
        // cost next to the kernel's (zeroed rather than uninitialised, for soundness).
        let t = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(intervene::ops::output_buffer(o * oh * ow));
        }
        let zero_ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        zero_total += zero_ms;
        println!(
            "conv c{c:<4} o{o:<4} k{k} {oh:>3}x{ow:<3} up={up:<5} {ms:7.2} ms {:6.1} GFLOP/s  (zeroed output buffer {:.3} ms)",
            f / ms / 1e6,
            zero_ms
        );
    }
    let (c, h, w) = (256usize, 64usize, 64usize);
    let x = data(c * h * w, 7919);
    let (t, p, g, o) = (data(c / 8 * c, 31), data(c / 8 * c, 37), data(c / 2 * c, 41), data(c * c / 2, 43));
    let mut out = vec![0f32; c * h * w];
    let a = AttnArgs { x: &x, dims: [1, c, h, w], theta: &t, phi: &p, g: &g, o: &o, gamma: 0.5 };
    self_attention(&a, &mut out).expect("attention");
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        self_attention(&a, &mut out).expect("attention");
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!("attention 256ch 64x64            {ms:7.2} ms");
    println!(
        "sum of the listed kernels: {:.1} ms; their zeroed output buffers: {:.3} ms ({:.2} %)",
        total_ms + ms,
        zero_total,
        100.0 * zero_total / (total_ms + ms)
    );
}
