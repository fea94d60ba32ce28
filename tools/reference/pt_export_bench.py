"""The reference Python loop for a GenInt export, timed: what `gen_intervene_data_withfix_seed.py`
does per batch, on pytorch-pretrained-biggan (random weights, the same BigGAN-deep config as
`intervene bench export`):

    z = truncation · truncnorm(−2, 2)                      (the package's truncated_noise_sample)
    per sample: 5 distinct components among the top k, offset ~ U[min, max] · scale,
                z ← z − ((z − μ)·ĉ)ĉ + ĉ·offset              (the centred edit; numpy, float64)
    x = G(z, one_hot(class), truncation)                   (eval, no_grad, fp32)
    convert_to_images(x) → PIL .save(PNG)                  (Pillow's default zlib level 6)

Variants: `--variant reference` is the package as GenInt uses it (eval mode, spectral norm
computed each forward, 128-channel conv_to_rgb); `--variant tuned` folds spectral norm and
computes only the 3 kept RGB channels (run it with jemalloc via LD_PRELOAD for the tuned
allocator, as a tuned PyTorch CPU deployment runs). Threads: --threads (default 2, the cores of the dev VM).

Prints one JSON line: images, seconds, images_per_s, ms_per_image, mean PNG size.

Requirements: torch, pytorch-pretrained-biggan==0.1.1, scipy, numpy, pillow
(`pip install torch pytorch-pretrained-biggan scipy numpy pillow`).

Usage: python tools/reference/pt_export_bench.py --model /tmp/bench-biggan-128 --batch 8 --images 32
"""
import argparse
import json
import os
import shutil
import time

import numpy as np
import torch
import PIL.Image  # noqa: F401 (convert_to_images uses PIL.Image without importing it)
from pytorch_pretrained_biggan import BigGAN, BigGANConfig
from pytorch_pretrained_biggan.utils import convert_to_images, truncated_noise_sample

L128 = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 4), (False, 4, 4),
        (True, 4, 2), (False, 2, 2), (True, 2, 1)]
L256 = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8), (False, 8, 8),
        (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)]
# GenInt's reference offset ranges of components 0..19 (GenInt's released ranges, as in src/explain/sweep.rs); the bench draws among the top 20.
RANGES = [(-3, 3), (-4, 2), (-3, 3), (-4, 3), (-3, 5), (-4, 4), (-5, 5), (-5, 5), (-6, 6), (-6, 6), (-7, 7), (-8, 8),
          (-8, 10), (-10, 7), (-10, 10), (-8, 8), (-10, 10), (-10, 10), (-5, 10), (-10, 8)]


def model(res, variant, path):
    if path:
        m = BigGAN.from_pretrained(path).eval()
    else:
        cfg = BigGANConfig(output_dim=res, z_dim=128, class_embed_dim=128, channel_width=128, num_classes=1000,
                           layers=L128 if res == 128 else L256, attention_layer_position=8, eps=1e-4, n_stats=51)
        m = BigGAN(cfg).eval()
        for mod in m.modules():  # random running stats: keep the numbers finite
            for name in ("running_means", "running_vars"):
                if hasattr(mod, name):
                    getattr(mod, name).data.uniform_(0.5, 1.5)
            if mod.__class__.__name__ == "BigGANBatchNorm" and getattr(mod, "weight", None) is not None:
                mod.weight.data.fill_(1.0)
                mod.bias.data.zero_()
    if variant == "tuned":
        for mod in m.modules():
            if hasattr(mod, "weight_orig"):
                torch.nn.utils.remove_spectral_norm(mod)
        rgb = m.generator.conv_to_rgb
        cut = torch.nn.Conv2d(rgb.in_channels, 3, 3, padding=1)
        cut.weight.data = rgb.weight.data[:3].clone()
        cut.bias.data = rgb.bias.data[:3].clone()

        class Three(torch.nn.Module):
            def __init__(s, c):
                super().__init__()
                s.c = c

            def forward(s, x):
                y = s.c(x)
                return torch.cat([y, y.new_zeros(y.shape[0], rgb.out_channels - 3, *y.shape[2:])], 1)

        m.generator.conv_to_rgb = Three(cut)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a model folder (config.json + pytorch_model.bin), e.g. from make_bench_biggan.py; "
                    "default: random weights in memory (their images are NaN: PNGs are unrealistically small)")
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--images", type=int, default=32, help="timed images (after one warm-up batch)")
    ap.add_argument("--truncation", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", choices=["reference", "tuned"], default="reference")
    ap.add_argument("--out", default="/tmp/pt-export-bench")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rng = np.random.RandomState(0)
    m = model(a.res, a.variant, a.model)
    res = m.config.output_dim
    # 20 random unit latent directions and a mean, standing in for a GANSpace file.
    comps = rng.randn(20, 128)
    comps /= np.linalg.norm(comps, axis=1, keepdims=True)
    mean = rng.randn(128) * 0.01
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)

    def batch(b, seed, save):
        z = truncated_noise_sample(batch_size=b, dim_z=128, truncation=a.truncation, seed=seed).astype(np.float64)
        for i in range(b):
            for c in rng.choice(20, 5, replace=False):
                lo, hi = RANGES[c]
                off = rng.uniform(lo, hi)
                n = comps[c] / np.sqrt(comps[c] @ comps[c] + 1e-8)
                z[i] = z[i] - ((z[i] - mean) @ n) * n + comps[c] * off
        y = torch.zeros(b, 1000)
        y[torch.arange(b), torch.from_numpy(rng.randint(0, 1000, b))] = 1
        with torch.no_grad():
            x = m(torch.from_numpy(z.astype(np.float32)), y, a.truncation)
        if save:
            for i, img in enumerate(convert_to_images(x)):
                img.save(os.path.join(a.out, f"{seed:06}_{i:02}.png"))

    batch(a.batch, 999999, False)  # warm-up
    t0 = time.perf_counter()
    done, seed = 0, 0
    while done < a.images:
        b = min(a.batch, a.images - done)
        batch(b, seed, True)
        done += b
        seed += 1
    dt = time.perf_counter() - t0
    sizes = [os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out)]
    print(json.dumps({
        "tool": "pytorch", "variant": a.variant, "res": res, "model": a.model or "random", "batch": a.batch, "images": done, "seconds": dt,
        "images_per_s": done / dt, "ms_per_image": 1000 * dt / done, "png_kb": sum(sizes) / len(sizes) / 1024,
        "threads": a.threads, "torch": torch.__version__,
        "jemalloc": "jemalloc" in os.environ.get("LD_PRELOAD", ""),
    }))


if __name__ == "__main__":
    main()
