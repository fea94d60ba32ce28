"""EigenCAM reference projections, computed the way pytorch-grad-cam 1.5.x does
(`pytorch_grad_cam/utils/svd_on_activations.py:get_2d_projection`): NaN -> 0, activations
reshaped to (h*w, c), columns centred, float32 `np.linalg.svd(..., full_matrices=True)`,
projection = centred @ VT[0, :].

Input: the MobileNetV2 `features.18` activations stored in tests/fixtures/gradcam-mobilenet-v2.
Usage: python eigencam_ref.py OUT.safetensors   (numpy, safetensors)
"""
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

out = {}
for name in ["chelsea", "coffee"]:
    g = load_file(f"tests/fixtures/gradcam-mobilenet-v2/golden_{name}.safetensors")
    act = g["act"].astype(np.float32)
    act[np.isnan(act)] = 0
    c = act.shape[0]
    x = act.reshape(c, -1).transpose()
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=True)
    out[f"{name}.projection"] = (x @ vt[0, :]).reshape(act.shape[1:]).astype(np.float32)
    out[f"{name}.singular_values"] = s[:5].astype(np.float32)
save_file(out, sys.argv[1], metadata={"numpy": np.__version__, "method": "pytorch-grad-cam get_2d_projection"})
