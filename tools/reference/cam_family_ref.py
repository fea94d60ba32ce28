"""HiResCAM and LayerCAM goldens from pytorch-grad-cam 1.5.7 on torchvision's real MobileNetV2.

The network input is the exact preprocessed tensor stored in
tests/fixtures/gradcam-mobilenet-v2/golden_{image}.safetensors (key `input`), so these goldens
do not depend on image decoding or resizing. Each case runs the library's own classes
(`HiResCAM`, `LayerCAM`) as a user would, `cam(input_tensor=x, targets=[ClassifierOutputTarget(k)])`,
and also records the raw per-layer map before any normalisation (`get_cam_image` on the
activations and gradients the same call captured).

Also stored: the reference's activation and gradients at `features.13`, and for each spatial site of
`features.14`'s expand convolution the smallest |pre-activation| of its ReLU6 over the channels.

Layers: `features.18` (the default CAM layer; its gradient is spatially uniform, so HiResCAM
equals GradCAM there) and `features.13` (96×14×14, spatially varying gradients: HiResCAM and
LayerCAM differ from GradCAM). Targets: the top-1 class and the class at rank 500 (negative
raw entries, so the ReLU in the normalisation matters).

Usage (from the repository root, with the torch venv):
  python tools/reference/cam_family_ref.py WEIGHTS.pth tests/fixtures/cam-family-mobilenet-v2/golden.safetensors
Requirements: tools/reference/requirements-cam.txt
"""
import sys

import numpy as np
import torch
import torchvision
import pytorch_grad_cam
from pytorch_grad_cam import HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from safetensors.numpy import load_file, save_file

weights, out_path = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
model = torchvision.models.mobilenet_v2()
model.load_state_dict(torch.load(weights, map_location="cpu"))
model.eval()

CASES = {
    # image: [(layer index, targets)]
    "chelsea": [(18, ("top1", "rank500")), (13, ("top1", "rank500"))],
    "coffee": [(18, ("top1",)), (13, ("top1",))],
}

out = {}
for image, layers in CASES.items():
    g = load_file(f"tests/fixtures/gradcam-mobilenet-v2/golden_{image}.safetensors")
    x = torch.from_numpy(g["input"].astype(np.float32))
    with torch.no_grad():
        logits = model(x)[0].numpy()
    order = np.argsort(-logits, kind="stable")
    target_of = {"top1": int(order[0]), "rank500": int(order[500])}
    for layer_idx, targets in layers:
        layer = model.features[layer_idx]
        for tname in targets:
            k = target_of[tname]
            out[f"{image}.features.{layer_idx}.{tname}.target_class"] = np.array([k], dtype=np.int64)
            for mname, cls in (("hirescam", HiResCAM), ("layercam", LayerCAM)):
                cam = cls(model=model, target_layers=[layer])
                targets_ = [ClassifierOutputTarget(k)]
                final = cam(input_tensor=x, targets=targets_)[0]
                act = cam.activations_and_grads.activations[0].cpu().numpy()
                grad = cam.activations_and_grads.gradients[0].cpu().numpy()
                raw = cam.get_cam_image(x, layer, targets_, act, grad, eigen_smooth=False)[0]
                key = f"{image}.features.{layer_idx}.{tname}.{mname}"
                out[f"{key}.cam_raw"] = raw.astype(np.float32)
                out[f"{key}.map"] = final.astype(np.float32)
                cam.activations_and_grads.release()
            if layer_idx == 13:
                # The reference's own activation and gradient: the CAM formulas are checked on
                # these exactly, apart from the network's backward (see the README on ReLU6 ties).
                out[f"{image}.features.13.act"] = act[0].astype(np.float32)
                out[f"{image}.features.13.{tname}.grad"] = grad[0].astype(np.float32)
            if layer_idx == 13 and tname == "top1":
                # Pre-activations of the expand ReLU6 that follows the layer: how close each
                # spatial site comes to the kink at 0 (a float-rounding coin flip for the gradient).
                store = {}
                hook = model.features[14].conv[0][1].register_forward_hook(lambda mod, i, o: store.update(bn=o.detach().clone()))
                with torch.no_grad():
                    model(x)
                hook.remove()
                bn = store["bn"][0]
                out[f"{image}.features.14.expand_preact_min_abs"] = bn.abs().amin(dim=0).numpy().astype(np.float32)
meta = {
    "torch": torch.__version__,
    "torchvision": torchvision.__version__,
    "grad-cam": getattr(pytorch_grad_cam, "__version__", "1.5.7"),
    "numpy": np.__version__,
    "input": "tests/fixtures/gradcam-mobilenet-v2/golden_{image}.safetensors key input",
}
save_file(out, out_path, metadata=meta)
print(f"wrote {len(out)} tensors to {out_path}")
