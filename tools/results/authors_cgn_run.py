#!/usr/bin/env python3
"""Run the CGN authors' own MNIST training code for a few steps, as an A/B against
`intervene train cgn` (is a mask-orientation outcome ours, or the recipe's?).

The authors' code is not part of this repository. Pass a folder holding their `mnists/`,
`shared/` and `utils/` (autonomousvision/counterfactual_generative_networks; the wildlife
textures come with it under mnists/data/textures). Their perceptual loss needs torchvision's
ImageNet VGG-16, which cannot be obtained offline, so this script swaps in the substitute
intervene uses (src/train/nets/vgg_gram.rs): the normalised VGG-19 (`vgg_normalized.pth`) on
(x+1)/2, zero padding, tapped at relu1_2, relu2_2, relu3_3, relu4_3. Everything else (model,
losses, data loader, optimisers, update order) is the authors' code, run unchanged through
their `main(cfg)`; the run stops after --steps generator steps and saves the generator's
state dict, which `intervene quality masks --generator FILE` checks.

Usage: authors_cgn_run.py --repo DIR --cfg mnists/experiments/cgn_wildlife_MNIST/cfg.yaml \
         --vgg $INTERVENE_DATA/weights/vgg_normalized.pth --mnist $INTERVENE_DATA/mnist \
         --steps 1500 --seed 1 --out run.pth
Needs torch, torchvision, numpy, tqdm, yacs, repackage (pip).
"""
import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

# (checkpoint index, cin, cout, max-pool after) of the 3x3 convolutions up to conv4_3 of the
# normalised VGG-19; the taps are the ReLUs after conv1_2, conv2_2, conv3_3, conv4_3.
CONVS = [(2, 3, 64, False), (5, 64, 64, True), (9, 64, 128, False), (12, 128, 128, True),
         (16, 128, 256, False), (19, 256, 256, False), (22, 256, 256, False), (25, 256, 256, True),
         (29, 256, 512, False), (32, 512, 512, False), (35, 512, 512, False), (38, 512, 512, False)]
TAPS = [1, 3, 6, 10]


class ToUnit(nn.Module):
    def forward(self, x):
        return (x + 1) / 2


def vgg19_features(path):
    """The substitute feature net and the indices of its four tap ReLUs."""
    sd = torch.load(path, map_location="cpu")
    color = nn.Conv2d(3, 3, 1)
    color.weight.data, color.bias.data = sd["0.weight"].float(), sd["0.bias"].float()
    layers, taps = [ToUnit(), color], []
    for j, (i, cin, cout, pool) in enumerate(CONVS):
        conv = nn.Conv2d(cin, cout, 3, padding=1)
        conv.weight.data, conv.bias.data = sd[f"{i}.weight"].float(), sd[f"{i}.bias"].float()
        layers += [conv, nn.ReLU()]
        if j in TAPS:
            taps.append(len(layers) - 1)
        if pool:
            layers.append(nn.MaxPool2d(2, 2))
    net = nn.Sequential(*layers).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, taps


class Limited:
    """The first `n` batches of a data loader; len() stays the loader's (the authors' step count)."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for i, b in enumerate(self.loader):
            if i >= self.n:
                return
            yield b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True, help="folder with the authors' mnists/, shared/, utils/")
    ap.add_argument("--cfg", required=True, help="their cfg.yaml, relative to --repo")
    ap.add_argument("--vgg", required=True, help="vgg_normalized.pth")
    ap.add_argument("--mnist", required=True, help="folder with the four raw MNIST IDX files")
    ap.add_argument("--steps", type=int, required=True, help="generator steps (at most one epoch, 3,125)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="where to save the generator's state dict (.pth)")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    vgg, mnist = Path(a.vgg).resolve(), Path(a.mnist).resolve()
    os.chdir(a.repo)  # their code reads and writes relative to the repository root
    sys.path.insert(0, str(Path(a.repo).resolve()))
    raw = Path("mnists/data/MNIST/raw")
    raw.mkdir(parents=True, exist_ok=True)
    for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]:
        if not (raw / f).exists():
            (raw / f).symlink_to(mnist / f)
    torch.set_num_threads(1)
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)

    import shared.losses as losses
    import mnists.train_cgn as tr
    from mnists.config import get_cfg_defaults

    def perceptual_init(self, cont_wgts=[0, 0, 0, 0], style_wgts=[0, 0, 0, 0]):
        nn.Module.__init__(self)
        net, taps = vgg19_features(vgg)
        self.model = losses.PerceptualLossModel(net, taps, cont_wgts, style_wgts)

    losses.PerceptualLoss.__init__ = perceptual_init
    tr.PerceptualLoss = losses.PerceptualLoss

    fit = tr.fit

    def fit_then_save(cfg, cgn, discriminator, dataloader, opts, losses_, device):
        fit(cfg, cgn, discriminator, Limited(dataloader, a.steps), opts, losses_, device)
        torch.save(cgn.state_dict(), out)
        print(f"saved the generator after {a.steps} steps to {out}")

    tr.fit = fit_then_save
    cfg = get_cfg_defaults()
    cfg.merge_from_file(a.cfg)
    cfg.TRAIN.EPOCHS = 1
    cfg.TRAIN.WORKERS = 0
    cfg.LOG.SAVE_ITER = 10**9
    cfg.LOG.LOSSES = False
    cfg.MODEL_NAME = f"ab-seed{a.seed}"
    tr.main(cfg)


if __name__ == "__main__":
    main()
