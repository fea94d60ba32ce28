"""PyTorch peer of `intervene bench biggan`: BigGAN-deep forward time with random weights.

Runs huggingface/pytorch-pretrained-BigGAN's `BigGAN` the way a performance-minded PyTorch user
would on the same machine: eval mode, `torch.inference_mode()`, float32, spectral norm folded into
the weights once (`remove_spectral_norm`), `conv_to_rgb` computing only the 3 channels the model
keeps, as many intra-op threads as intervene uses (all cores unless --threads). Batch-norm running
statistics are set to a benign range so random weights give finite activations.

Prints one JSON object: the median ms per image over --runs timed forwards after --warmup, the
individual runs, and the versions. `tools/bench.sh` calls it interleaved with `intervene bench`.

Usage: python pt_biggan_bench.py --res 128 --batch 1 [--runs 5] [--warmup 2] [--device cpu|cuda]
Requirements: tools/reference/requirements-peer.txt (jemalloc via LD_PRELOAD as bench.sh sets it).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import time

import torch
from pytorch_pretrained_biggan import BigGAN, BigGANConfig

# GenBlock lists (up, in-multiplier, out-multiplier) of the released configs; the same presets as
# intervene's `BigGanConfig::deep_128/256/512` (src/models/biggan/config.rs).
_BASE = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8)]
LAYERS = {
    128: _BASE + [(True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
    256: _BASE + [(True, 8, 8), (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
}
LAYERS[512] = LAYERS[256] + [(False, 1, 1), (True, 1, 1)]


def build(res, device):
    cfg = BigGANConfig(output_dim=res, z_dim=128, class_embed_dim=128, channel_width=128, num_classes=1000,
                       layers=LAYERS[res], attention_layer_position=8, eps=1e-4, n_stats=51)
    model = BigGAN(cfg).eval()
    for module in model.modules():
        if hasattr(module, "weight_orig"):
            torch.nn.utils.remove_spectral_norm(module)
        for stat in ("running_means", "running_vars"):
            if hasattr(module, stat):
                getattr(module, stat).data.uniform_(0.5, 1.5)
    # Keep only the RGB channels of the last convolution (the model discards the other 125).
    full = model.generator.conv_to_rgb
    rgb = torch.nn.Conv2d(full.in_channels, 3, kernel_size=3, padding=1)
    rgb.weight.data.copy_(full.weight.data[:3])
    rgb.bias.data.copy_(full.bias.data[:3])

    class Rgb(torch.nn.Module):
        """conv_to_rgb as the generator slices it afterwards: [:, :3]."""

        def __init__(self):
            super().__init__()
            self.rgb = rgb

        def forward(self, x):
            y = self.rgb(x)
            return torch.nn.functional.pad(y, (0, 0, 0, 0, 0, full.out_channels - 3))

    model.generator.conv_to_rgb = Rgb()
    return model.to(device)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--res", type=int, default=128, choices=sorted(LAYERS))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", default="cpu")
    p.add_argument("--truncation", type=float, default=0.4)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    model = build(a.res, device)
    z = (torch.randn(a.batch, 128).clamp(-2, 2) * a.truncation).to(device)
    y = torch.zeros(a.batch, 1000)
    y[:, 207] = 1
    y = y.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    runs = []
    with torch.inference_mode():
        for i in range(a.warmup + a.runs):
            sync()
            t0 = time.perf_counter()
            model(z, y, a.truncation)
            sync()
            if i >= a.warmup:
                runs.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(runs)
    print(json.dumps({
        "impl": "pytorch", "what": "biggan", "config": f"deep-{a.res}", "batch": a.batch,
        "device": "CUDA" if device.type == "cuda" else "CPU",
        "ms_per_image": med / a.batch, "ms_per_batch": med, "runs_ms": runs, "threads": a.threads,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch": torch.__version__, "python": platform.python_version(),
        "jemalloc": "jemalloc" in os.environ.get("LD_PRELOAD", ""),
    }))


if __name__ == "__main__":
    main()
