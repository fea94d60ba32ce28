"""PyTorch peer of `intervene bench cam`: pytorch-grad-cam 1.5.7's GradCAM as its users run it.

For each architecture: a torchvision model with random weights in eval mode, `GradCAM` on the last
block (ResNets: `layer4[-1]`; MobileNetV2: `features[-1]`, the layers `intervene bench cam` uses),
one 224×224 input, batch 1, a full forward and backward per CAM, as many intra-op threads as
intervene uses. Prints one JSON object per architecture with the median ms per CAM.

Usage: python pt_gradcam_bench.py [--runs 10] [--warmup 2] resnet18 resnet50 mobilenet_v2
Requirements: tools/reference/requirements-peer.txt.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torchvision
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def main():
    p = argparse.ArgumentParser()
    p.add_argument("arch", nargs="+")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for arch in a.arch:
        model = getattr(torchvision.models, arch)(weights=None).eval()
        layer = model.layer4[-1] if arch.startswith("resnet") else model.features[-1]
        cam = GradCAM(model=model, target_layers=[layer])
        x = torch.randn(1, 3, 224, 224)
        targets = [ClassifierOutputTarget(1)]
        runs = []
        for i in range(a.warmup + a.runs):
            t0 = time.perf_counter()
            cam(input_tensor=x, targets=targets)
            if i >= a.warmup:
                runs.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({
            "impl": "pytorch", "what": "cam", "arch": arch, "gradcam_ms": statistics.median(runs),
            "runs_ms": runs, "threads": a.threads, "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        }))


if __name__ == "__main__":
    main()
