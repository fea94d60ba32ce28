"""Reads an `intervene export genint --layout webdataset` folder with the `webdataset` loader
(pip install webdataset; checked with 1.0.2) the way a training script would, and checks every
sample against the export's manifest.jsonl and, when given, the ImageFolder export of the same
settings (same pixels, same labels).

Usage:
    python tools/reference/wds_check.py WDS_DIR [IMAGEFOLDER_DIR]

Prints one JSON line: samples read, shards, classes, and the number of pixel mismatches.
Exits 1 on any mismatch.
"""
import glob
import json
import os
import sys

import numpy as np
import webdataset as wds
from PIL import Image


def main():
    wds_dir = sys.argv[1]
    folder = sys.argv[2] if len(sys.argv) > 2 else None
    manifest = [json.loads(l) for l in open(os.path.join(wds_dir, "manifest.jsonl"))]
    shards = sorted(glob.glob(os.path.join(wds_dir, "genint-*.tar")))
    # The pipeline a PyTorch training script uses: decode to PIL, take (image, class, metadata).
    ds = wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("__key__", "png;jpg", "cls", "json")
    seen, bad = 0, []
    for key, img, cls, meta in ds:
        i = int(key)
        line = manifest[i]
        if meta != line or cls != line["class"] or line["key"] != key:
            bad.append(f"{key}: metadata differs from manifest line {i}")
        if folder is not None:
            ref = os.path.join(folder, manifest_folder_file(folder, i))
            if not np.array_equal(np.asarray(img.convert("RGB")), np.asarray(Image.open(ref).convert("RGB"))):
                bad.append(f"{key}: pixels differ from {ref}")
        seen += 1
    if seen != len(manifest):
        bad.append(f"read {seen} samples, the manifest has {len(manifest)}")
    print(json.dumps({"samples": seen, "shards": len(shards), "classes": len({m["class"] for m in manifest}),
                      "mismatches": len(bad), "webdataset": wds.__version__ if hasattr(wds, "__version__") else "?"}))
    for b in bad[:10]:
        print(b, file=sys.stderr)
    sys.exit(1 if bad else 0)


_folder_manifest = {}


def manifest_folder_file(folder, i):
    if folder not in _folder_manifest:
        _folder_manifest[folder] = [json.loads(l)["file"] for l in open(os.path.join(folder, "manifest.jsonl"))]
    return _folder_manifest[folder][i]


if __name__ == "__main__":
    main()
