#!/usr/bin/env python3
"""Ships a CVAE trained by `intervene train cvae` as a bundled model: models/NAME/ gets the
decoder only (`fc3`, `fc4`, `label_emb`, all that sampling needs) in float16 — 6 MB instead of
the full CVAE's 25 MB in float32 —, the run's latent_pca.json, train.json, sample sheets, run
summary, the `intervene eval --json` reports of the three Table 5 classifiers, and a model card
whose numbers all come from those files.

Usage: ship_cvae.py NAME RUN_DIR TABLE5_DIR COMMAND_FILE
  TABLE5_DIR: genint_table5.sh's work folder (clf-original, clf-observational,
  clf-interventional, each with eval.json = `intervene eval --json` on test-confounded then
  test-causal). No numpy or safetensors needed: the format is a JSON header and raw arrays."""
import json
import shutil
import struct
import subprocess
import sys
from array import array
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEEP = ("fc3.", "fc4.", "label_emb.")


def read_safetensors(path: Path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        vals = array("f")
        vals.frombytes(body[a:b])
        out[k] = (v["shape"], vals)
    return out


def write_f16(tensors, path: Path) -> None:
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        shape, vals = tensors[k]
        blob = struct.pack(f"<{len(vals)}e", *vals)
        header[k] = {"dtype": "F16", "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def evals(path: Path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def main() -> None:
    name, run, t5, commands = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    out = REPO / "models" / name
    out.mkdir(parents=True, exist_ok=True)
    full = read_safetensors(run / "model.safetensors")
    dec = {k: v for k, v in full.items() if k.startswith(KEEP)}
    write_f16(dec, out / "model.safetensors")
    for f in ("latent_pca.json", "train.json", "samples_observational.png", "samples_interventional.png"):
        shutil.copy(run / f, out / f)
    summary = json.loads(subprocess.check_output([sys.executable, str(Path(__file__).parent / "run_summary.py"), str(run), "--json"]))
    (out / "run-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = {}
    for arm in ("original", "observational", "interventional"):
        e = evals(t5 / f"clf-{arm}" / "eval.json")
        shutil.copy(t5 / f"clf-{arm}" / "eval.json", out / f"table5-{arm}-eval.json")
        rows[arm] = {r["name"]: r["top1"] for r in e}
    train = json.loads((run / "train.json").read_text())
    st = train.get("settings", train)
    pca = json.loads((run / "latent_pca.json").read_text())
    params_full = sum(len(v[1]) for v in full.values())
    params_dec = sum(len(v[1]) for v in dec.values())
    size = (out / "model.safetensors").stat().st_size
    sh = st["shape"]
    w = [
        f"# {name}\n",
        "GenInt's conditional VAE (Mao et al., 2021, supplementary §7) trained by intervene's own "
        "`intervene train cvae` on **10-way colored MNIST** with two background colours per class (the confounder). "
        "It is the generator of GenInt's Table 5: its observational set (z from the prior) and its interventional "
        "set (z moved along the top-2 principal directions of the posterior means) train the classifiers "
        "`mnist-cnn-genint-colored-observational` and `-interventional`.\n",
        "- **Licence**: our own weights (same licence as intervene). Data: MNIST (CC BY-SA 3.0), coloured by "
        "intervene (`intervene train cvae --write-data` writes the splits).\n",
        f"- **Network**: encoder 3072 → {sh['hidden']} → μ, log σ² ({sh['z_dim']}-d, not conditioned on the label); "
        f"decoder [z ‖ label embedding {sh['emb']}] → {sh['hidden']} → 3072, sigmoid (the reference "
        "`ColorMNIST/train_vae.py`).\n",
        f"- **Shipped**: the decoder only ({params_dec:,} of the CVAE's {params_full:,} parameters) in float16, "
        f"{size / 1e6:.1f} MB; `latent_pca.json` (mean {', '.join(f'{m:.3f}' for m in pca['mean'])}; "
        f"standard deviations {', '.join(f'{s:.3f}' for s in pca['stdev'])}; explained variance "
        f"{', '.join(f'{r:.3f}' for r in pca['explained_variance_ratio'])}). Float16 moves a pixel of a decoded "
        "image by at most 2/255 against the float32 run (`tests/train_cgn_cvae.rs` checks this on a small CVAE).\n",
        f"- **Training**: {summary['steps']:,} steps ({summary['steps'] * st['batch'] // train['data']['images']} epochs) at batch {st['batch']}, BCE(sum) + KL, "
        f"Adam lr {st['lr']:g}, seed {st['seed']}, data seed {st['data_seed']}. Device: CPU, one thread, on the "
        f"shared 2-core VM (another training ran beside it). Wall time of the steps: "
        f"{summary['wall_hours']:.2f} h (median {summary['median_s_per_step']:.3f} s/step).\n",
        "- **Exact commands**:\n",
        "```sh\n" + commands.read_text().strip() + "\n```\n",
        "- **Sets from this model** (with `--seed 1`, the training run's latents; float16 keeps each pixel within 2/255 of the run's images):\n",
        "```sh\nintervene export cvae --model " + name + " --out cvae-sets   # observational + interventional (±3 sd), 2,000 per digit\n"
        "intervene export cvae --model " + name + " --arm interventional --interventions grid --stretch --out grid   # the reference code's 77×77 grid\n```\n",
        "\n## GenInt Table 5 with this model (`tools/results/genint_table5.sh`, one seed per cell)\n",
        "| classifier trained on | confounded test | causal test | paper (confounded / causal) |\n|---|---|---|---|\n",
    ]
    paper = {"original": "99.45 / 8.26", "observational": "59.95 / 11.26", "interventional": "58.48 / 29.62"}
    for arm, r in rows.items():
        w.append(f"| {arm} | {100 * r['test-confounded']:.2f} % | {100 * r['test-causal']:.2f} % | {paper[arm]} % |\n")
    w += [
        "\nWhat the numbers mean, and why the interventional gain does not reproduce: docs/RESULTS.md §4.\n",
        "\n## Samples (rows are digits)\n",
        "![observational](samples_observational.png)\n\n![interventional](samples_interventional.png)\n",
        "\nFiles here besides the model: `train.json` (every setting), `run-summary.json` "
        "(`tools/results/run_summary.py` over the run's metrics), `table5-*-eval.json` (`intervene eval --json` of "
        "each Table 5 classifier on the confounded and causal tests).\n",
    ]
    (out / "MODEL_CARD.md").write_text("".join(w))
    print(f"shipped {out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
