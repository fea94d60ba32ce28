#!/usr/bin/env python3
"""Do a CGN's masks draw the digit of their class? (a shape check beside cgn_mask_check.py)

The frame check (cgn_mask_check.py, `intervene quality masks`) tells a digit mask from an
inverted one, but a class-blind blob in the middle of the image passes it too. This reads the
masks as MNIST digits: a mask is 1 on the digit and 0 elsewhere, like an MNIST image padded to
32x32, so an MNIST-CNN trained on plain MNIST (the "shape judge") should name a good mask's class.

  cgn_mask_digits.py judge-data MNIST_DIR OUT [--train N] [--test N]
      writes plain MNIST, padded to 32x32, as OUT/train/<class>/*.png and OUT/test/<class>/*.png
      (the first N images of each idx file) for `intervene train classifier --arch mnist-cnn`.
  cgn_mask_digits.py masks MASK_NPY PER_CLASS OUT
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


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)
    if magic == 2049:
        return np.frombuffer(data, np.uint8, offset=8)
    raise SystemExit(f"{path}: not an MNIST idx file (magic {magic})")


def judge_data(mnist, out, counts):
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(os.path.join(mnist, f"{prefix}-images-idx3-ubyte"))[: counts[split]]
        y = read_idx(os.path.join(mnist, f"{prefix}-labels-idx1-ubyte"))[: counts[split]]
        for c in range(10):
            os.makedirs(os.path.join(out, split, str(c)), exist_ok=True)
        for i, (img, c) in enumerate(zip(x, y)):
            write_png(os.path.join(out, split, str(c), f"{i:05d}.png"), np.pad(img, 2))
        print(f"{split}: {len(y)} images → {os.path.join(out, split)}")


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
    sub = p.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("judge-data")
    j.add_argument("mnist")
    j.add_argument("out")
    j.add_argument("--train", type=int, default=20000)
    j.add_argument("--test", type=int, default=2000)
    k = sub.add_parser("masks")
    k.add_argument("npy")
    k.add_argument("per_class", type=int)
    k.add_argument("out")
    a = p.parse_args()
    if a.cmd == "judge-data":
        judge_data(a.mnist, a.out, {"train": a.train, "test": a.test})
    else:
        masks(a.npy, a.per_class, a.out)


if __name__ == "__main__":
    main()
