#!/usr/bin/env python3
"""Independent NumPy reference of the MNIST counterfactual generator (CGN, Sauer & Geiger 2021).

Written from the CGN paper's MNIST architecture (as listed below), not from the Rust code and not from the authors' code. Evaluates in float64.

    inp     = cat(u, label_emb.weight[y])                                # [B, 42]
    f_shape : Linear 42→4096 → [B,64,8,8] → IN → up2 → conv3 64→32 (no bias) → BN → LReLU(.2)
              → IN → up2 → conv3 32→1 (no bias) → BN → LReLU(.2) → IN      = mask_raw
    f_text* : Linear 42→4096 → [B,64,8,8] → up2 → conv3 64→64 → BN → LReLU → up2 → conv3 64→32
              → BN → LReLU → conv3 32→3 (+bias) → BN                     = *_pretanh → tanh
    mask    = clamp(mask_raw, f32(1e-4), f32(0.9999)) repeated to 3 channels
    x       = mask·fg + (1−mask)·bg
    shift   : tile the texture 2×2 (64×64) and crop 32×32 at row dy, column dx (0..=32)

IN = instance norm (biased variance, eps 1e-5, no affine); BN = eval-mode batch norm (eps 1e-5).

Commands (needs only numpy and safetensors: `pip install numpy safetensors`):

    cgn_mnist_ref.py verify --weights ckp.pth --golden golden_double_colored.safetensors
        Loads a PyTorch zip checkpoint (or safetensors) without torch and prints the max abs
        error of every golden tensor.
    cgn_mnist_ref.py make-fixture --seed 20240607 --out tests/fixtures/cgn-mnist-random
        Writes weights.safetensors (random weights, the exact 57 keys) and golden.safetensors.
"""

import argparse
import io
import pickle
import sys
import zipfile

import numpy as np
from safetensors.numpy import load_file, save_file

# ----------------------------------------------------------------------------------------------
# Reading a PyTorch zip checkpoint without torch: a restricted Unpickler.


class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype


_STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
}


def _rebuild_tensor_v2(storage, offset, size, stride, *_rest):
    item = storage.itemsize
    if len(size) == 0:
        return storage[offset].copy()
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, *_rest):
    return data


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, data, archive, prefix):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGES:
            return _Storage(_STORAGES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel); the location (e.g. cuda:0) is ignored.
        kind, stype, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        raw = self.archive.read(f"{self.prefix}/data/{key}")
        arr = np.frombuffer(raw, dtype=np.dtype(stype.dtype).newbyteorder("<"))
        if arr.size != numel:
            raise pickle.UnpicklingError(f"storage {key}: {arr.size} elements, expected {numel}")
        return arr


def load_weights(path):
    """state dict {name: ndarray} from a PyTorch zip checkpoint or a safetensors file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl")]
            if len(pkl) != 1:
                raise ValueError(f"{path}: expected one data.pkl, found {pkl}")
            prefix = pkl[0][: -len("/data.pkl")]
            sd = _TorchUnpickler(z.read(pkl[0]), z, prefix).load()
        return {k.removeprefix("module."): np.asarray(v) for k, v in sd.items()}
    return dict(load_file(path))


# ----------------------------------------------------------------------------------------------
# The network, float64.

EPS = 1e-5
LO = float(np.float32(1e-4))
HI = float(np.float32(0.9999))


def linear(x, w, b):
    return x @ w.T + b


def conv3x3(x, w, b=None):
    """Zero-padded 3×3 convolution, stride 1. x [B,C,H,W], w [O,C,3,3]."""
    B, C, H, W = x.shape
    xp = np.zeros((B, C, H + 2, W + 2), dtype=x.dtype)
    xp[:, :, 1:-1, 1:-1] = x
    out = np.zeros((B, w.shape[0], H, W), dtype=x.dtype)
    for ky in range(3):
        for kx in range(3):
            patch = xp[:, :, ky : ky + H, kx : kx + W]  # [B,C,H,W]
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, ky, kx])
    if b is not None:
        out += b[None, :, None, None]
    return out


def up2(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


def instance_norm(x):
    mean = x.mean(axis=(2, 3), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + EPS)


def batch_norm(x, sd, p):
    c = lambda a: a[None, :, None, None]
    mean, var = sd[p + ".running_mean"], sd[p + ".running_var"]
    return (x - c(mean)) / np.sqrt(c(var) + EPS) * c(sd[p + ".weight"]) + c(sd[p + ".bias"])


def lrelu(x):
    return np.where(x >= 0, x, 0.2 * x)


def f_shape(sd, inp):
    g = lambda k: sd["f_shape." + k]
    h = linear(inp, g("0.weight"), g("0.bias")).reshape(-1, 64, 8, 8)
    h = up2(instance_norm(h))
    h = lrelu(batch_norm(conv3x3(h, g("4.weight")), sd, "f_shape.5"))
    h = up2(instance_norm(h))
    h = lrelu(batch_norm(conv3x3(h, g("9.weight")), sd, "f_shape.10"))
    return instance_norm(h)


def f_text(sd, name, inp):
    g = lambda k: sd[f"{name}.{k}"]
    h = linear(inp, g("0.weight"), g("0.bias")).reshape(-1, 64, 8, 8)
    h = lrelu(batch_norm(conv3x3(up2(h), g("3.weight")), sd, name + ".4"))
    h = lrelu(batch_norm(conv3x3(up2(h), g("7.weight")), sd, name + ".8"))
    return batch_norm(conv3x3(h, g("10.weight"), g("10.bias")), sd, name + ".11")


def torus_shift(t, dy, dx):
    """Literal tile-2×2-and-crop, one sample at a time."""
    out = np.empty_like(t)
    for b in range(t.shape[0]):
        tiled = np.tile(t[b], (1, 2, 2))
        out[b] = tiled[:, dy[b] : dy[b] + 32, dx[b] : dx[b] + 32]
    return out


def forward(sd, u, y, shifts=None):
    sd = {k: np.asarray(v, dtype=np.float64) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    inp = np.concatenate([u.astype(np.float64), sd["label_emb.weight"][y]], axis=1)
    out = {"inp": inp}
    out["mask_raw"] = f_shape(sd, inp)
    out["mask"] = np.repeat(np.clip(out["mask_raw"], LO, HI), 3, axis=1)
    out["fg_pretanh"] = f_text(sd, "f_text1", inp)
    out["bg_pretanh"] = f_text(sd, "f_text2", inp)
    out["fg"] = np.tanh(out["fg_pretanh"])
    out["bg"] = np.tanh(out["bg_pretanh"])
    m = out["mask"]
    out["x"] = m * out["fg"] + (1 - m) * out["bg"]
    if shifts is not None:
        out["shift.fg"] = torus_shift(out["fg"], shifts["fg_dy"], shifts["fg_dx"])
        out["shift.bg"] = torus_shift(out["bg"], shifts["bg_dy"], shifts["bg_dx"])
        out["shift.x"] = m * out["shift.fg"] + (1 - m) * out["shift.bg"]
    return out


# ----------------------------------------------------------------------------------------------
# Commands.


def cmd_verify(args):
    sd = load_weights(args.weights)
    golden = load_file(args.golden)
    shifts = {k.split(".", 1)[1]: golden[k] for k in golden if k.startswith("shift.") and k[-3:] in ("_dy", "_dx")}
    out = forward(sd, golden["u"], golden["y"], shifts)
    worst = 0.0
    for k in sorted(out):
        err = float(np.abs(out[k] - golden[k].astype(np.float64)).max())
        worst = max(worst, err)
        print(f"{k:12s} max abs error {err:.3e}")
    print(f"keys in checkpoint: {len(sd)}; parameters: {sum(v.size for k, v in sd.items() if v.dtype != np.int64 and 'running' not in k)}")
    return 0 if worst < args.atol else 1


# The key layout of the released checkpoints: (name, shape) for the 57 entries.
def checkpoint_layout():
    keys = [("label_emb.weight", (10, 10)), ("f_shape.0.weight", (4096, 42)), ("f_shape.0.bias", (4096,))]

    def bn(p, c):
        return [
            (p + ".weight", (c,)),
            (p + ".bias", (c,)),
            (p + ".running_mean", (c,)),
            (p + ".running_var", (c,)),
            (p + ".num_batches_tracked", ()),
        ]

    keys += [("f_shape.4.weight", (32, 64, 3, 3))] + bn("f_shape.5", 32)
    keys += [("f_shape.9.weight", (1, 32, 3, 3))] + bn("f_shape.10", 1)
    for t in ("f_text1", "f_text2"):
        keys += [(t + ".0.weight", (4096, 42)), (t + ".0.bias", (4096,))]
        keys += [(t + ".3.weight", (64, 64, 3, 3))] + bn(t + ".4", 64)
        keys += [(t + ".7.weight", (32, 64, 3, 3))] + bn(t + ".8", 32)
        keys += [(t + ".10.weight", (3, 32, 3, 3)), (t + ".10.bias", (3,))] + bn(t + ".11", 3)
    return keys


def bf16_exact(a):
    """Round to the nearest bfloat16 value (kept as float32), so the file compresses well."""
    bits = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def random_weights(seed):
    rng = np.random.default_rng(seed)
    sd = {}
    for name, shape in checkpoint_layout():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        if name.endswith("num_batches_tracked"):
            sd[name] = np.array(int(rng.integers(1, 100000)), dtype=np.int64)
            continue
        if name == "label_emb.weight":
            v = rng.standard_normal(shape)
        elif name.endswith("running_var"):
            v = rng.uniform(0.25, 2.0, shape)
        elif name.endswith("running_mean"):
            v = 0.3 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            v = 0.2 * rng.standard_normal(shape)
        elif len(shape) == 1:  # BN weight
            v = rng.uniform(0.5, 1.5, shape)
        else:
            # Linear / conv weights (99 % of the file): about unit-variance outputs, on a grid of
            # nine levels {-2, -1.5, …, 2}·2^-e so that git stores the 2.6 MB file in ~0.4 MB.
            scale = 2.0 ** np.round(np.log2(1.0 / np.sqrt(fan_in)))
            v = np.clip(np.round(2.0 * rng.standard_normal(shape)), -4, 4) / 2.0 * scale
        sd[name] = bf16_exact(v)
    return sd


def cmd_make_fixture(args):
    import os

    sd = random_weights(args.seed)
    rng = np.random.default_rng(args.seed + 1)
    b = args.batch
    u = rng.standard_normal((b, 32)).astype(np.float32)
    y = rng.integers(0, 10, b).astype(np.int64)
    shifts = {k: rng.integers(0, 33, b).astype(np.int64) for k in ("fg_dy", "fg_dx", "bg_dy", "bg_dx")}
    # Make sure the edge cases 0 and 32 (≡ 0) are covered.
    shifts["fg_dy"][0], shifts["fg_dx"][0], shifts["bg_dy"][-1], shifts["bg_dx"][-1] = 0, 32, 32, 0
    out = forward(sd, u, y, shifts)
    golden = {"u": u, "y": y}
    golden.update({k: v.astype(np.float32) for k, v in out.items()})
    golden.update({"shift." + k: v for k, v in shifts.items()})
    os.makedirs(args.out, exist_ok=True)
    meta = {"seed": str(args.seed), "tool": "tools/reference/cgn_mnist_ref.py make-fixture", "precision": "float64"}
    save_file(sd, os.path.join(args.out, "weights.safetensors"), metadata=meta)
    save_file({k: np.ascontiguousarray(v) for k, v in golden.items()}, os.path.join(args.out, "golden.safetensors"), metadata=meta)
    m = out["mask"][:, 0]
    print(f"wrote {args.out}: mask at lower bound {np.mean(m == LO):.2f}, at upper bound {np.mean(m == HI):.2f}")
    for k in ("mask_raw", "fg_pretanh", "bg_pretanh", "x"):
        print(f"  {k}: [{out[k].min():.3f}, {out[k].max():.3f}]")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--weights", required=True)
    v.add_argument("--golden", required=True)
    v.add_argument("--atol", type=float, default=1e-4)
    m = sub.add_parser("make-fixture")
    m.add_argument("--seed", type=int, default=20240607)
    m.add_argument("--batch", type=int, default=4)
    m.add_argument("--out", required=True)
    a = ap.parse_args()
    return cmd_verify(a) if a.cmd == "verify" else cmd_make_fixture(a)


if __name__ == "__main__":
    sys.exit(main())
