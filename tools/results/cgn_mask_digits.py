#!/usr/bin/env python3
"""Writes a CGN's masks as digit images: the independent route to `intervene quality masks`'s
shape scores (tests/fixtures/cgn-mask-check/README.md).

A mask is 1 on the digit and 0 elsewhere, like an MNIST image padded to 32x32, so an MNIST-CNN
trained on plain MNIST (the shape judge, models/mnist-cnn-mnist) should name a good mask's class:
`intervene eval --classifier models/mnist-cnn-mnist --data OUT --json` on what this writes gives
per class what `quality masks` computes in memory.

  cgn_mask_digits.py MASK_NPY PER_CLASS OUT
      writes the masks of a mask check ([C*PER_CLASS, 1, 32, 32], classes in blocks of PER_CLASS,
      as `intervene cgn --parts` saves them) as OUT/<class>/<i>.png for `intervene eval`.
"""
import argparse
import os
import struct
import zlib

import numpy as np


def write_png(path, gray):
    """8-bit greyscale PNG, without PIL (only numpy is assumed)."""
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[y].tobytes() for y in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def masks(npy, per_class, out):
    m = np.load(npy)
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[0] % per_class:
        raise SystemExit(f"{npy}: expected [C*{per_class}, 1, H, W] masks, got {m.shape}")
    for i, mask in enumerate(m[:, 0]):
        c = i // per_class
        os.makedirs(os.path.join(out, str(c)), exist_ok=True)
        gray = np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8)
        write_png(os.path.join(out, str(c), f"{i % per_class:03d}.png"), gray)
    print(f"{m.shape[0]} masks, {m.shape[0] // per_class} classes → {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("npy")
    p.add_argument("per_class", type=int)
    p.add_argument("out")
    a = p.parse_args()
    masks(a.npy, a.per_class, a.out)


if __name__ == "__main__":
    main()
