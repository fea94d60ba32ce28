"""Independent NumPy (float64) reference of the CGN paper's MNIST classifier
(autonomousvision/counterfactual_generative_networks, mnists/models/classifier.py, as described
as listed here): BN(3) -> Conv5x5 3->32 p2 -> ReLU -> MaxPool(3,2,1) -> Conv3x3 32->32 p1 -> ReLU
-> Conv3x3 s2 32->64 p1 -> ReLU -> Conv3x3 64->64 p1 -> ReLU -> AvgPool(7) -> Linear(64,10) -> LogSoftmax.
Writes random weights with the authors' key names, inputs and golden outputs.

Usage: python mnist_cnn_ref.py OUT_DIR   (numpy, safetensors)
"""
import sys

import numpy as np
from safetensors.numpy import save_file

rng = np.random.default_rng(20261122)
out = sys.argv[1]


def conv(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            y[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    return y + b[None, :, None, None]


def maxpool(x, k, s, p):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = xp[:, :, i * s:i * s + k, j * s:j * s + k].max(axis=(2, 3))
    return y


def avgpool(x, k):
    n, c, h, w = x.shape
    oh, ow = (h - k) // k + 1, (w - k) // k + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = x[:, :, i * k:i * k + k, j * k:j * k + k].mean(axis=(2, 3))
    return y


def f32(a):
    return np.asarray(a, dtype=np.float32)


wts = {
    "model.0.weight": f32(rng.uniform(0.5, 1.5, 3)),
    "model.0.bias": f32(rng.normal(0, 0.2, 3)),
    "model.0.running_mean": f32(rng.normal(0, 0.3, 3)),
    "model.0.running_var": f32(rng.uniform(0.5, 2.0, 3)),
    "model.0.num_batches_tracked": np.array(7, dtype=np.int64),
}
for i, (cin, cout, k) in {1: (3, 32, 5), 4: (32, 32, 3), 6: (32, 64, 3), 8: (64, 64, 3)}.items():
    wts[f"model.{i}.weight"] = f32(rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)))
    wts[f"model.{i}.bias"] = f32(rng.normal(0, 0.05, cout))
wts["cls.0.weight"] = f32(rng.normal(0, 0.3, (10, 64)))
wts["cls.0.bias"] = f32(rng.normal(0, 0.1, 10))
x = f32(rng.uniform(-1, 1, (2, 3, 32, 32)))

d = {k: v.astype(np.float64) for k, v in wts.items()}
h = (x - d["model.0.running_mean"][None, :, None, None]) / np.sqrt(d["model.0.running_var"][None, :, None, None] + 1e-5)
h = h * d["model.0.weight"][None, :, None, None] + d["model.0.bias"][None, :, None, None]
h = np.maximum(conv(h, d["model.1.weight"], d["model.1.bias"], 1, 2), 0)
h = maxpool(h, 3, 2, 1)
h = np.maximum(conv(h, d["model.4.weight"], d["model.4.bias"], 1, 1), 0)
h = np.maximum(conv(h, d["model.6.weight"], d["model.6.bias"], 2, 1), 0)
last_conv = conv(h, d["model.8.weight"], d["model.8.bias"], 1, 1)
h = np.maximum(last_conv, 0)
pooled = avgpool(h, 7).reshape(2, -1)
logits = pooled @ d["cls.0.weight"].T + d["cls.0.bias"]
logp = logits - logits.max(axis=1, keepdims=True)
logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))

save_file(wts, f"{out}/weights.safetensors")
save_file({"input": x, "last_conv": f32(last_conv), "pooled": f32(pooled), "log_probs": f32(logp)}, f"{out}/golden.safetensors",
          metadata={"numpy": np.__version__, "seed": "20261122"})
print("ok", logp.argmax(axis=1))
