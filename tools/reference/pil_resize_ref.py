"""Golden outputs of PIL's antialiased bilinear resize (what torchvision's Resize does to a PIL
image), for tests/preprocess_torchvision.rs. Run: python3 tools/reference/pil_resize_ref.py OUT_DIR
(needs pillow and numpy). Inputs are seeded noise + gradients, so the fixture is ours to commit."""
import os, sys
import numpy as np
from PIL import Image

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20261122)
inputs = {
    "noise37x23": rng.integers(0, 256, (23, 37, 3), dtype=np.uint8),
    "noise5x97": rng.integers(0, 256, (97, 5, 3), dtype=np.uint8),
}
yy, xx = np.mgrid[0:61, 0:90]
grad = np.stack([(xx * 255 // 89), (yy * 255 // 60), ((xx + yy) % 256)], -1).astype(np.uint8)
inputs["grad90x61"] = grad
targets = [(11, 7), (37, 23), (80, 50), (3, 200), (1, 1), (37, 9), (64, 64), (150, 99)]
lines = []
for name, a in inputs.items():
    im = Image.fromarray(a, "RGB")
    im.save(os.path.join(out, f"{name}.png"))
    for (w, h) in targets:
        r = im.resize((w, h), Image.BILINEAR)
        r.save(os.path.join(out, f"{name}_{w}x{h}.png"))
        lines.append(f"{name} -> {w}x{h}")
print("\n".join(lines))
