//! BigGAN-deep configuration facts of the released models (pytorch-pretrained-BigGAN's hub
//! configs): presets, FLOP counts, parameter counts.

use candle_core::Device;
use intervene::bench::RandomWeights;
use intervene::models::biggan::{BigGan, BigGanConfig};

/// "Useful GFLOP" per image: multiply–adds × 2 over every layer of the released configs,
/// counting only the 3 RGB channels of conv_to_rgb that the model keeps.
#[test]
fn flops_match_the_reference_table() {
    for (cfg, want) in
        [(BigGanConfig::deep_128(), 17.92), (BigGanConfig::deep_256(), 58.80), (BigGanConfig::deep_512(), 75.99)]
    {
        let got = cfg.flops_per_image() / 1e9;
        assert!((got - want).abs() < 0.02 * want, "{}: {got:.2} GFLOP vs {want}", cfg.output_dim);
    }
}

/// Parameter counts of the real models (50.39 M / 55.88 M / 56.16 M), built from random weights:
/// proves the layer list, bottleneck widths and attention placement.
#[test]
fn parameter_counts_match_the_real_models() {
    for (cfg, want_m) in [(BigGanConfig::deep_128(), 50.39), (BigGanConfig::deep_256(), 55.88)] {
        // Count the parameters the builder asks for.
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        struct Counting(RandomWeights, std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl candle_nn::var_builder::SimpleBackend for Counting {
            fn get(
                &self,
                s: candle_core::Shape,
                n: &str,
                h: candle_nn::Init,
                d: candle_core::DType,
                dev: &Device,
            ) -> candle_core::Result<candle_core::Tensor> {
                // Parameters only: the statistics tables and the SN vectors are buffers in PyTorch.
                let buffer = ["running_means", "running_vars", "weight_u", "weight_v"].iter().any(|b| n.ends_with(b));
                if !buffer {
                    self.1.fetch_add(s.elem_count(), std::sync::atomic::Ordering::Relaxed);
                }
                self.0.get(s, n, h, d, dev)
            }
            fn get_unchecked(
                &self,
                n: &str,
                d: candle_core::DType,
                dev: &Device,
            ) -> candle_core::Result<candle_core::Tensor> {
                self.0.get_unchecked(n, d, dev)
            }
            fn contains_tensor(&self, n: &str) -> bool {
                self.0.contains_tensor(n)
            }
        }
        let vb = candle_nn::VarBuilder::from_backend(
            Box::new(Counting(RandomWeights::new(3), counter.clone())),
            candle_core::DType::F32,
            Device::Cpu,
        );
        let m = BigGan::new(vb, &cfg).expect("builds");
        let got = counter.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6;
        assert!((got - want_m).abs() < 0.005, "{}: {got:.3} M parameters vs {want_m} M", cfg.output_dim);
        assert_eq!(m.cfg.num_latents(), cfg.layers.len() + 1);
    }
}

#[test]
fn presets_validate_and_bad_configs_are_refused() {
    for c in [BigGanConfig::deep_128(), BigGanConfig::deep_256(), BigGanConfig::deep_512()] {
        c.validate().expect("preset is valid");
    }
    assert_eq!(BigGanConfig::deep_128().num_latents(), 11);
    assert_eq!(BigGanConfig::deep_256().num_latents(), 13);
    assert_eq!(BigGanConfig::deep_512().num_latents(), 15);
    let mut c = BigGanConfig::deep_128();
    c.output_dim = 256;
    assert!(c.validate().unwrap_err().to_string().contains("output_dim"));
    let mut c = BigGanConfig::deep_128();
    c.layers[3].1 = 8;
    assert!(c.validate().is_err());
    let mut c = BigGanConfig::deep_128();
    c.attention_layer_position = 99;
    assert!(c.validate().is_err());
}
