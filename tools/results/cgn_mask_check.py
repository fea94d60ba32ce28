#!/usr/bin/env python3
"""Per-class mask orientation of an MNIST CGN: is the shape mechanism's mask the digit?

MNIST digits are centred and leave a 4-pixel frame empty (after padding to 32), so a mask
that is the digit is near 0 on that frame. An inverted mask (the background mechanism draws
the digit; the study's "faulty masks", its Figure 2) is near 1 there. We report, per class,
the mean mask value on the frame and inside it, and call a class inverted when the frame mean
exceeds 0.5.

Usage: cgn_mask_check.py MASK.npy N_PER_CLASS [--json]
MASK.npy comes from `intervene cgn --parts DIR` with classes 0..9 repeated N_PER_CLASS times.
"""
import ast
import json
import sys
from array import array


def load_npy_f32(path):
    """A little-endian float32 .npy (what `intervene cgn --parts` writes), without numpy."""
    raw = open(path, "rb").read()
    assert raw[:6] == b"\x93NUMPY", f"{path}: not a .npy file"
    hlen = int.from_bytes(raw[8:10], "little")
    header = ast.literal_eval(raw[10:10 + hlen].decode("latin1"))
    assert header["descr"] == "<f4" and not header["fortran_order"], f"{path}: want <f4, C order"
    data = array("f")
    data.frombytes(raw[10 + hlen:])
    return data, header["shape"]


data, (b, ch, h, w) = load_npy_f32(sys.argv[1])
per = int(sys.argv[2])
frame = [y < 4 or y >= h - 4 or x < 4 or x >= w - 4 for y in range(h) for x in range(w)]
rows = []
for c in range(b // per):
    edge_sum = inner_sum = 0.0
    for i in range(c * per, (c + 1) * per):
        plane = data[i * ch * h * w:(i * ch + 1) * h * w]  # channel 0
        for v, f in zip(plane, frame):
            if f:
                edge_sum += v
            else:
                inner_sum += v
    n_frame = sum(frame)
    edge = edge_sum / (per * n_frame)
    inner = inner_sum / (per * (h * w - n_frame))
    rows.append({"class": c, "frame": round(edge, 3), "inner": round(inner, 3),
                 "inverted": edge > 0.5})
bad = [r["class"] for r in rows if r["inverted"]]
if "--json" in sys.argv:
    print(json.dumps({"classes": rows, "inverted": bad}))
else:
    for r in rows:
        print(f'class {r["class"]}: frame {r["frame"]:.3f} inner {r["inner"]:.3f}'
              f'{"  INVERTED" if r["inverted"] else ""}')
    print(f"inverted classes: {bad if bad else 'none'}")
