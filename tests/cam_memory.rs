//! Memory does not grow over 1,000 repeated CAMs (a known pain of pytorch-grad-cam, whose CAM
//! objects keep hooks and activations alive when created in loops).

use candle_core::Device;
use intervene::explain::cam::{compute, Method};
use intervene::models::classifier::Staged;
use intervene::models::mnist_cnn::MnistCnn;

/// Current resident set size in MiB (Linux).
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

#[test]
fn a_thousand_cams_do_not_grow_memory() {
    let m = MnistCnn::new(intervene::bench::RandomWeights::var_builder(5, &Device::Cpu), 10).unwrap();
    // Each CAM's activations and gradients total ≈ 0.4 MB (32×32 input), so keeping even one
    // iteration's tensors alive would add ≈ 400 MB over the loop.
    let x = intervene::noise::normal_noise(2, 1, 3 * 32 * 32, &Device::Cpu).unwrap().reshape((1, 3, 32, 32)).unwrap();
    let layer = m.default_cam_stage();
    let one = |i: usize| {
        let ag = m.activation_and_gradient(&x, layer, Some(i % 10)).unwrap();
        let (_, c, h, w) = ag.act.dims4().unwrap();
        let cam = compute(
            [Method::GradCam, Method::GradCamPlusPlus, Method::LayerCam, Method::EigenCam][i % 4],
            &ag.act.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &ag.grad.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            c,
            h,
            w,
            32,
            32,
        );
        assert!(cam.map.iter().all(|v| v.is_finite()));
    };
    for i in 0..100 {
        one(i);
    }
    let before = rss_mib();
    for i in 0..1000 {
        one(i);
    }
    let after = rss_mib();
    eprintln!("RSS {before:.1} MiB after 100 CAMs, {after:.1} MiB after 1,100");
    assert!(after - before < 16.0, "memory grew by {:.1} MiB over 1,000 CAMs", after - before);
}
