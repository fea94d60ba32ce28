"""PyTorch goldens for the training engine (src/train/): every custom backward, the optimisers,
the LR schedules and one training step of each trainable architecture.

Usage: python train_goldens.py OUT_DIR
Requirements: tools/reference/requirements-train.txt (torch 2.x CPU, torchvision, safetensors, numpy).

Writes
- ops.safetensors: convolutions (dense, strided, 1x1, depthwise; grouped-sample paths), max/avg
  pooling, training-mode batch norm (+ReLU), LeakyReLU, nearest x2 upsampling, instance norm. Inputs are float32; references are computed in
  float64 from those float32 values by torch autograd.
- optim.safetensors: SGD (momentum, weight decay), Adam (weight decay), Adadelta in float32,
  parameters after each of 6 steps; LR schedules (StepLR, CosineAnnealingLR) per epoch.
- nets.safetensors: one forward/backward in training mode (CE loss, batch statistics) of the
  CGN MNIST CNN (full gradients), torchvision resnet18 and mobilenet_v2 (dropout off; per
  parameter the gradient's sum, L2 norm and first 8 values), with "formula" weights that the Rust
  test rebuilds from the key names (see `formula` below), and the BN running statistics after.
"""
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

torch.manual_seed(20261129)
out = sys.argv[1]
f32 = torch.float32
f64 = torch.float64


def rnd(*shape):
    return torch.randn(*shape, dtype=f32)


# ---------------------------------------------------------------- ops
ops = {}


def conv_case(name, b, c, h, w, o, k, s, p, bias, depthwise=False, up=False):
    x = rnd(b, c, h, w)
    wt = rnd(o, 1 if depthwise else c, k, k) * 0.5
    bb = rnd(o) if bias else None
    xd, wd = x.double().requires_grad_(), wt.double().requires_grad_()
    bd = bb.double().requires_grad_() if bias else None
    # up: the generators' nearest x2 upsampling before the convolution (one fused op in Rust).
    xs = F.interpolate(xd, scale_factor=2, mode="nearest") if up else xd
    y = F.conv2d(xs, wd, bd, stride=s, padding=p, groups=c if depthwise else 1)
    dy = rnd(*y.shape)
    y.backward(dy.double())
    ops[f"{name}.x"] = x
    ops[f"{name}.w"] = wt
    ops[f"{name}.dy"] = dy
    ops[f"{name}.y"] = y.detach().to(f32)
    ops[f"{name}.dx"] = xd.grad.to(f32)
    ops[f"{name}.dw"] = wd.grad.to(f32)
    ops[f"{name}.cfg"] = torch.tensor([s, p, int(depthwise)] + ([1] if up else []), dtype=torch.int64)
    if bias:
        ops[f"{name}.b"] = bb
        ops[f"{name}.db"] = bd.grad.to(f32)


conv_case("c3s1", 2, 3, 9, 9, 4, 3, 1, 1, True)
conv_case("c5p2", 2, 3, 8, 8, 5, 5, 1, 2, True)
conv_case("c3s2", 3, 4, 9, 7, 6, 3, 2, 1, False)
conv_case("c1s1", 2, 5, 6, 6, 3, 1, 1, 0, False)
conv_case("c1big", 2, 4, 24, 24, 3, 1, 1, 0, True)
conv_case("c1s2", 2, 4, 7, 7, 6, 1, 2, 0, False)
conv_case("c7s2", 2, 3, 16, 16, 4, 7, 2, 3, False)
conv_case("c3big", 2, 3, 30, 30, 4, 3, 1, 1, True)
conv_case("c3rem", 6, 2, 12, 12, 3, 3, 1, 1, True)
conv_case("dw3s1", 2, 6, 7, 7, 6, 3, 1, 1, False, depthwise=True)
conv_case("dw3s2", 2, 6, 8, 8, 6, 3, 2, 1, False, depthwise=True)
# Small maps (at most 16 pixels) take the im2col gather-table path (more than 4 outputs).
conv_case("c3t2", 3, 5, 2, 2, 6, 3, 1, 1, True)
conv_case("c3t4", 2, 3, 4, 4, 5, 3, 1, 1, False)
conv_case("c1t3", 2, 4, 3, 3, 6, 1, 1, 0, False)
# A remainder sample group on the im2col path (c3rem, with 3 outputs, runs the direct path).
conv_case("c3remo6", 6, 2, 12, 12, 6, 3, 1, 1, True)
# At most 4 outputs, stride 1, same size: the direct few-output path (also c3s1, c1s1, c3big, c3rem).
conv_case("c5few", 2, 3, 8, 8, 2, 5, 1, 2, True)
conv_case("c3few1", 3, 7, 10, 6, 1, 3, 1, 1, False)
# Stride 1 whose output is not the input's size (col2im input gradient; same-size ones use the
# adjoint convolution): the MNIST CNN's unpadded 3x3, a 5x5 with padding 1, padding k-1, an even kernel.
conv_case("c3v", 2, 6, 9, 8, 7, 3, 1, 0, True)
conv_case("c5p1", 2, 5, 9, 9, 6, 5, 1, 1, False)
conv_case("c3p2", 2, 5, 6, 7, 6, 3, 1, 2, False)
conv_case("c4p1", 3, 5, 7, 7, 6, 4, 1, 1, True)
# The adjoint-convolution input gradient (same size, at least 16 inputs; fewer outputs than
# inputs, or a map of at most 16 pixels).
conv_case("c3adjo", 2, 20, 9, 9, 6, 3, 1, 1, True)
conv_case("c5adjo", 3, 16, 6, 5, 8, 5, 1, 2, False)
conv_case("c3adjt", 3, 17, 4, 4, 24, 3, 1, 1, False)
# Upsample x2 then convolve, fused (cfg's 4th entry): the col2im, few-output and adjoint input
# gradients. Drawn from a saved RNG state so the goldens after these keep their values.
rng = torch.random.get_rng_state()
torch.manual_seed(20261130)
conv_case("up3", 2, 5, 6, 5, 6, 3, 1, 1, True, up=True)
conv_case("up3few", 3, 6, 5, 4, 1, 3, 1, 1, False, up=True)
conv_case("up3adj", 2, 20, 4, 4, 6, 3, 1, 1, True, up=True)
torch.random.set_rng_state(rng)


def pool_case(name, x, kind, k, s, p):
    xd = x.double().requires_grad_()
    y = F.max_pool2d(xd, k, s, p) if kind == "max" else F.avg_pool2d(xd, k, s, p)
    dy = rnd(*y.shape)
    y.backward(dy.double())
    ops[f"{name}.x"] = x
    ops[f"{name}.dy"] = dy
    ops[f"{name}.y"] = y.detach().to(f32)
    ops[f"{name}.dx"] = xd.grad.to(f32)
    ops[f"{name}.cfg"] = torch.tensor([k, s, p], dtype=torch.int64)


pool_case("mp3s2p1", rnd(2, 3, 9, 9), "max", 3, 2, 1)
# after a ReLU: many tied zeros, the first maximum of a window takes the gradient
pool_case("mp3s2p1relu", rnd(2, 3, 8, 8).relu(), "max", 3, 2, 1)
pool_case("mp2s2", rnd(2, 2, 6, 6), "max", 2, 2, 0)
pool_case("ap7", rnd(2, 3, 8, 8), "avg", 7, 7, 0)
pool_case("ap2s1", rnd(1, 2, 5, 5), "avg", 2, 1, 0)


def bn_case(name, act):
    x = rnd(4, 3, 5, 5) * 2 + 0.5
    g = rnd(3)
    b = rnd(3)
    xd, gd, bd = (t.double().requires_grad_() for t in (x, g, b))
    y = F.batch_norm(xd, None, None, gd, bd, training=True, eps=1e-5)
    if act == "relu":
        y = y.relu()
    elif act == "lrelu":
        y = F.leaky_relu(y, 0.2)
    dy = rnd(*y.shape)
    y.backward(dy.double())
    for k, v in dict(x=x, g=g, b=b, dy=dy, y=y.detach(), dx=xd.grad, dg=gd.grad, db=bd.grad).items():
        ops[f"{name}.{k}"] = v.to(f32)


bn_case("bn", None)
bn_case("bnrelu", "relu")


def unary_case(name, x, f):
    xd = x.double().requires_grad_()
    y = f(xd)
    dy = rnd(*y.shape)
    y.backward(dy.double())
    ops[f"{name}.x"] = x
    ops[f"{name}.dy"] = dy
    ops[f"{name}.y"] = y.detach().to(f32)
    ops[f"{name}.dx"] = xd.grad.to(f32)


unary_case("lrelu", rnd(2, 3, 5, 5), lambda t: F.leaky_relu(t, 0.2))
unary_case("up2", rnd(2, 3, 4, 5), lambda t: F.interpolate(t, scale_factor=2, mode="nearest"))
unary_case("inorm", rnd(2, 3, 6, 6) * 3 + 1, lambda t: F.instance_norm(t, eps=1e-5))
# Batch norm with a fused LeakyReLU(0.2) (the CGN generators'); drawn last so the cases above
# keep their random inputs.
bn_case("bnlrelu", "lrelu")
save_file({k: v.contiguous() for k, v in ops.items()}, f"{out}/ops.safetensors")

# ---------------------------------------------------------------- optimisers and schedules
opt = {}
n = 7
p0 = rnd(n)
grads = rnd(6, n)
opt["p0"] = p0
opt["grads"] = grads
cases = {
    "sgd": lambda p: torch.optim.SGD([p], lr=0.1),
    "sgd_momentum_wd": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-2),
    "adam": lambda p: torch.optim.Adam([p], lr=0.01),
    "adam_wd": lambda p: torch.optim.Adam([p], lr=0.01, betas=(0.5, 0.999), weight_decay=1e-2),
    "adadelta": lambda p: torch.optim.Adadelta([p], lr=1.0, rho=0.9, eps=1e-6),
    "adadelta_wd": lambda p: torch.optim.Adadelta([p], lr=0.5, rho=0.9, eps=1e-6, weight_decay=1e-2),
}
for name, make in cases.items():
    p = nn.Parameter(p0.clone())
    o = make(p)
    steps = []
    for t in range(6):
        o.zero_grad()
        p.grad = grads[t].clone()
        o.step()
        steps.append(p.detach().clone())
    opt[name] = torch.stack(steps)


def lrs(make_sched, lr, epochs):
    p = nn.Parameter(torch.zeros(1))
    o = torch.optim.SGD([p], lr=lr)
    s = make_sched(o)
    out = []
    for _ in range(epochs):
        out.append(o.param_groups[0]["lr"])
        o.step()
        s.step()
    return torch.tensor(out, dtype=f64)


opt["lr_steplr_1_0.7"] = lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 1, gamma=0.7), 1.0, 10)
opt["lr_steplr_3_0.1"] = lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, gamma=0.1), 0.1, 10)
opt["lr_cosine_10"] = lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10), 0.1, 10)
save_file(opt, f"{out}/optim.safetensors")


# ---------------------------------------------------------------- networks
M64 = (1 << 64) - 1


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & M64
    return h


def signed(key, n):
    """v_i = 2u_i - 1 of the repo's formula weights (src/models/formula.rs, salt 0): u_i = top 24 bits
    of splitmix64(fnv1a64(key) ^ i*phi) / 2^24. Exact in float32."""
    seed = np.uint64(fnv1a64(key.encode()))
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = seed ^ (i * np.uint64(0x9E3779B97F4A7C15))
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return np.float32(2.0) * u - np.float32(1.0)


def formula(key, shape, is_bn):
    """Deterministic weights from the key name (mirrored in tests/train_nets.rs): uniform v in
    [-1, 1) from `signed`; BN weight 1 + 0.2v, biases 0.1v, running stats 0/1, other weights
    v*sqrt(6/fan_in) (variance 2/fan_in, as He initialisation). All in float32."""
    numel = int(np.prod(shape)) if len(shape) else 1
    v = signed(key, numel)
    leaf = key.rsplit(".", 1)[1]
    if leaf == "running_mean":
        v = np.zeros(numel, dtype=np.float32)
    elif leaf == "running_var":
        v = np.ones(numel, dtype=np.float32)
    elif is_bn and leaf == "weight":
        v = np.float32(1.0) + np.float32(0.2) * v
    elif leaf == "bias":
        v = np.float32(0.1) * v
    else:
        fan_in = numel // shape[0]
        v = v * np.float32(np.sqrt(6.0 / fan_in))
    return torch.from_numpy(v.reshape(shape).astype(np.float32))


def load_formula(model):
    sd = model.state_dict()
    bn = {k.rsplit(".", 1)[0] for k in sd if k.endswith("running_mean")}
    new = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            new[k] = v
        else:
            new[k] = formula(k, tuple(v.shape), k.rsplit(".", 1)[0] in bn)
    model.load_state_dict(new)


class MnistCnn(nn.Module):
    # CGN repo mnists/models/classifier.py, same attribute names.
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(
            nn.BatchNorm2d(3), nn.Conv2d(3, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(7), nn.Flatten())
        self.cls = nn.Sequential(nn.Linear(64, 10), nn.LogSoftmax(dim=1))

    def forward(self, x):
        return self.cls(self.model(x))


nets = {}


def net_case(name, model, x, classes, full):
    """One step in float64 (the reference is exact to float32 rounding of its inputs)."""
    load_formula(model)
    model.double().train()
    x = x.double()
    y = torch.arange(x.shape[0]) % classes
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    nets[f"{name}.loss"] = loss.detach().reshape(1).to(f32)
    nets[f"{name}.logits"] = logits.detach().to(f32)
    for k, p in model.named_parameters():
        g = p.grad
        if full:
            nets[f"{name}.grad.{k}"] = g.to(f32)
        else:
            nets[f"{name}.gsum.{k}"] = g.double().sum().reshape(1)
            nets[f"{name}.gnorm.{k}"] = g.double().norm().reshape(1)
            nets[f"{name}.ghead.{k}"] = g.flatten()[:8].to(f32)
    for k, v in model.state_dict().items():
        if k.endswith("running_mean") or k.endswith("running_var"):
            if full or "layer4" in k or k.startswith("bn1") or k.startswith("features.18"):
                nets[f"{name}.state.{k}"] = v.to(f32)


def formula_input(shape):
    """The formula's uniform values of the key "input" (mirrored in the Rust test)."""
    return torch.from_numpy(signed("input", int(np.prod(shape))).reshape(shape))


net_case("mnist_cnn", MnistCnn(), formula_input((4, 3, 32, 32)), 10, True)
net_case("resnet18", torchvision.models.resnet18(num_classes=10), formula_input((4, 3, 64, 64)), 10, False)
mb = torchvision.models.mobilenet_v2(num_classes=10)
mb.classifier[0].p = 0.0
net_case("mobilenet_v2", mb, formula_input((4, 3, 64, 64)), 10, False)
save_file({k: v.contiguous() for k, v in nets.items()}, f"{out}/nets.safetensors")
print("wrote", out)
