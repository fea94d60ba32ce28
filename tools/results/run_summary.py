#!/usr/bin/env python3
"""Summarise a generator training folder for its model card: steps, wall time (sum of the
per-step seconds in metrics.jsonl), median s/step, and the mean of each loss over the first and
last 10 % of the steps.  Usage: run_summary.py RUN_DIR [--json]"""
import json, statistics, sys
from pathlib import Path

def summary(run: Path) -> dict:
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    train = json.loads((run / "train.json").read_text())
    keys = [k for k in lines[0] if k not in ("step", "sec")]
    n = len(lines)
    k = max(1, n // 10)
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)
    return {
        "format": train.get("format"),
        "settings": train.get("settings"),
        "data": train.get("data"),
        "steps": lines[-1]["step"],
        "wall_hours": sum(r["sec"] for r in lines) / 3600,
        "median_s_per_step": statistics.median(r["sec"] for r in lines),
        "min_s_per_step": min(r["sec"] for r in lines),
        "first_10pct": {key: mean(lines[:k], key) for key in keys},
        "last_10pct": {key: mean(lines[-k:], key) for key in keys},
    }

if __name__ == "__main__":
    s = summary(Path(sys.argv[1]))
    if "--json" in sys.argv:
        print(json.dumps(s, indent=2))
    else:
        print(f"{s['format']}: {s['steps']} steps, {s['wall_hours']:.2f} h of steps, median {s['median_s_per_step']:.2f} s/step (min {s['min_s_per_step']:.2f})")
        for key in s["first_10pct"]:
            print(f"  {key}: {s['first_10pct'][key]:.4f} → {s['last_10pct'][key]:.4f}")
