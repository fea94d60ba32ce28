#!/usr/bin/env python3
"""Colour→label predictability (RESULTS.md §4; needs Pillow, e.g. the peer venv) of an image-folder set: each image's background colour = the
mean of its 4 corner 3×3 patches, quantised per channel to 0, ½, 1 (27 bins); reports
Σ_bin max_c n(bin, c) / N (1.0: colour gives the label; 0.1: colour says nothing)."""
import sys
from collections import Counter
from pathlib import Path
from PIL import Image

for d in sys.argv[1:]:
    counts = Counter()
    n = 0
    for cdir in sorted(Path(d).iterdir()):
        if not cdir.is_dir():
            continue
        allf = sorted(cdir.glob("*.png")); files = allf[::max(1, len(allf) // 600)][:600]
        for f in files:
            im = Image.open(f).convert("RGB")
            px = im.load()
            w, h = im.size
            acc = [0, 0, 0]
            k = 0
            for (x0, y0) in [(0, 0), (w - 3, 0), (0, h - 3), (w - 3, h - 3)]:
                for x in range(x0, x0 + 3):
                    for y in range(y0, y0 + 3):
                        p = px[x, y]
                        for ch in range(3):
                            acc[ch] += p[ch]
                        k += 1
            b = tuple(min(2, int((a / k + 64) // 128)) for a in acc)
            counts[(b, cdir.name)] += 1
            n += 1
    bins = {b for b, _ in counts}
    hit = sum(max(counts[(b, c)] for (bb, c) in counts if bb == b) for b in bins)
    print(f"{d}: {n} images, colour→label accuracy {hit / n:.3f}, {len(bins)} colour bins")
