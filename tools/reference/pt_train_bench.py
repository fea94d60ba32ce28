"""PyTorch peer of `intervene bench train`: seconds per optimiser step, same models, batches and
optimisers, one thread by default, compute only (one random batch reused).

  mnist-cnn  CGN MNIST classifier (mnists/models/classifier.py), 32x32x3, batch 64, CE, Adadelta lr 1
  resnet18   torchvision resnet18 (1000 classes), 64x64, batch 32, CE, SGD lr .1 momentum .9 wd 1e-4
  cgn-gan    CGN MNIST generator (mnists/models/cgn.py layout) + conditional MLP discriminator,
             batch 16: G step (LSGAN + 0.1 mask binary entropy, no VGG Gram loss) and D step,
             Adam 2e-4 (0.5, 0.999)

Usage: python pt_train_bench.py [--workload mnist-cnn,resnet18,cgn-gan] [--steps 10] [--warmup 2]
                                [--rounds 1] [--threads 1]
Prints one JSON line per workload and round (impl, workload, batch, round, s_per_step = median, best).
Requirements: tools/reference/requirements-train.txt.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class MnistCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(
            nn.BatchNorm2d(3), nn.Conv2d(3, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(7), nn.Flatten())
        self.cls = nn.Sequential(nn.Linear(64, 10), nn.LogSoftmax(dim=1))

    def forward(self, x):
        return self.cls(self.model(x))


class Shape(nn.Sequential):
    def __init__(self, inp, ngf=32):
        super().__init__(
            nn.Linear(inp, 2 * ngf * 64), nn.Unflatten(1, (2 * ngf, 8, 8)), nn.InstanceNorm2d(2 * ngf),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(ngf),
            nn.LeakyReLU(0.2), nn.InstanceNorm2d(ngf), nn.Upsample(scale_factor=2),
            nn.Conv2d(ngf, 1, 3, 1, 1, bias=False), nn.BatchNorm2d(1), nn.LeakyReLU(0.2), nn.InstanceNorm2d(1))


class Texture(nn.Sequential):
    def __init__(self, inp, ngf=32):
        super().__init__(
            nn.Linear(inp, 2 * ngf * 64), nn.Unflatten(1, (2 * ngf, 8, 8)), nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, 2 * ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * ngf), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(ngf),
            nn.LeakyReLU(0.2), nn.Conv2d(ngf, 3, 3, 1, 1), nn.BatchNorm2d(3), nn.Tanh())


class Cgn(nn.Module):
    def __init__(self):
        super().__init__()
        self.label_emb = nn.Embedding(10, 10)
        self.f_shape = Shape(42)
        self.f_text1 = Texture(42)
        self.f_text2 = Texture(42)

    def forward(self, u, y):
        inp = torch.cat([u, self.label_emb(y)], 1)
        mask = self.f_shape(inp).clamp(1e-4, 0.9999).repeat(1, 3, 1, 1)
        out = []
        for f in (self.f_text1, self.f_text2):
            t = f(inp)
            # The authors' patch shuffler: a RandomCrop(32) of the 2×2 tiling per sample, i.e.
            # a torus shift drawn per sample, as one gather.
            b = t.shape[0]
            dy, dx = torch.randint(0, 32, (b,)), torch.randint(0, 32, (b,))
            ar = torch.arange(32)
            rows, cols = (ar[None] + dy[:, None]) % 32, (ar[None] + dx[:, None]) % 32
            idx = (rows[:, :, None] * 32 + cols[:, None, :]).view(b, 1, 1024).expand(b, 3, 1024)
            out.append(t.reshape(b, 3, 1024).gather(2, idx).view(b, 3, 32, 32))
        fg, bg = out
        return mask, fg, bg, mask * fg + (1 - mask) * bg


class Disc(nn.Module):
    def __init__(self):
        super().__init__()
        self.label_embedding = nn.Embedding(10, 10)
        self.model = nn.Sequential(
            nn.Linear(3072 + 10, 512), nn.LeakyReLU(0.2), nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2),
            nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2), nn.Linear(512, 1))

    def forward(self, x, y):
        return self.model(torch.cat([x.flatten(1), self.label_embedding(y)], 1))


def binary_entropy(m):
    return -(m * torch.log2(m) + (1 - m) * torch.log2(1 - m)).mean()


def classifier_step(model, x, y, opt):
    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def prepare(name):
    g = torch.Generator().manual_seed(7)
    if name == "mnist-cnn":
        m = MnistCnn().train()
        x = torch.rand(64, 3, 32, 32, generator=g) * 2 - 1
        y = torch.randint(0, 10, (64,), generator=g)
        return classifier_step(m, x, y, torch.optim.Adadelta(m.parameters(), lr=1.0))
    if name == "resnet18":
        m = torchvision.models.resnet18().train()
        x = torch.rand(32, 3, 64, 64, generator=g) * 4 - 2
        y = torch.randint(0, 1000, (32,), generator=g)
        return classifier_step(m, x, y, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))
    if name == "cgn-gan":
        G, D = Cgn().train(), Disc().train()
        opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        x_real = torch.rand(16, 3, 32, 32, generator=g) * 2 - 1
        y_real = torch.randint(0, 10, (16,), generator=g)

        def step():
            u = torch.randn(16, 32)
            y = torch.randint(0, 10, (16,))
            opt_g.zero_grad(set_to_none=True)
            mask, fg, bg, x = G(u, y)
            loss_g = F.mse_loss(D(x, y), torch.ones(16, 1)) + 0.1 * binary_entropy(mask)
            loss_g.backward()
            opt_g.step()
            opt_d.zero_grad(set_to_none=True)
            real = F.mse_loss(D(x_real, y_real), torch.ones(16, 1))
            fake = F.mse_loss(D(x.detach(), y), torch.zeros(16, 1))
            loss_d = (real + fake) / 2
            loss_d.backward()
            opt_d.step()
            return loss_g.item() + loss_d.item()
        return step
    raise SystemExit(f"unknown workload {name}")


BATCH = {"mnist-cnn": 64, "resnet18": 32, "cgn-gan": 16}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="mnist-cnn,resnet18,cgn-gan")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    steps = {w: prepare(w) for w in a.workload.split(",")}
    for s in steps.values():
        for _ in range(a.warmup):
            s()
    for r in range(a.rounds):
        for w, s in steps.items():
            t = []
            for _ in range(a.steps):
                t0 = time.perf_counter()
                v = s()
                t.append(time.perf_counter() - t0)
                assert math.isfinite(v)
            print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "workload": w, "batch": BATCH[w], "round": r,
                              "s_per_step": statistics.median(t), "best": min(t), "steps": a.steps,
                              "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
