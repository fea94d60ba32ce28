#!/usr/bin/env python3
"""Writes the model card of a BigGAN-deep trained by `intervene train biggan`, from the files the
jobs wrote: the run folder (train.json, metrics.jsonl), the judge's training folder (its test
accuracy per epoch in metrics.jsonl) and the `intervene quality measure --json` report.
Every number in the card comes from one of those files.

Usage: card_biggan.py NAME RUN_DIR JUDGE_DIR QUALITY_JSON COMMAND_FILE > MODEL_CARD.md
(COMMAND_FILE holds the exact commands that were run, one per line.)"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run_summary import summary  # noqa: E402


def short(path: str) -> str:
    """The last three components of a path: the scratch folder's own location says nothing."""
    return "/".join(Path(path).parts[-3:])


def judge_evals(judge: Path) -> tuple[list[tuple[str, float]], int]:
    """(evaluation folder, top-1) of the judge's last epoch, and that epoch. The judge is a
    `train classifier` output folder (metrics.jsonl) or a shipped classifier (epochs.jsonl)."""
    last = None
    log = judge / "metrics.jsonl"
    if not log.exists():
        log = judge / "epochs.jsonl"
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if r.get("end_of_epoch") and r.get("eval"):
            last = r
    if last is None:
        raise SystemExit(f"{judge}: no end-of-epoch evaluation in metrics.jsonl")
    return [(e["data"], e["top1"]) for e in last["eval"]], last["epoch"]


def source_name(source: str) -> str:
    """The data set as the card names it: `double-colored` → `double-colored MNIST`."""
    return source if source in ("mnist", "fashion-mnist") or "/" in source else f"{source} MNIST"


def quality_table(q: dict, consistency: str) -> list[str]:
    """The consistency / diversity table of a `quality measure --json` report."""
    rows = [f"| truncation | {consistency} | samples per class | diversity: samples | diversity: real |", "|---|---|---|---|---|"]
    for c, d in zip(q["consistency"], q["diversity"]):
        rows.append(f"| {c['truncation']} | {100 * c['accuracy']:.1f} % | {c['samples_per_class']} | {d['samples_mean']:.4f} | {d['real_mean']:.4f} |")
    return rows


def loss_lines(s: dict) -> list[str]:
    """The losses section from a run summary."""
    return ["\n## Losses (means over the first and last 10 % of the steps)\n"] + [
        f"- {k}: {s['first_10pct'][k]:.3f} → {s['last_10pct'][k]:.3f}" for k in s["first_10pct"]
    ]


def main() -> None:
    name, run, judge, quality, commands = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
    s = summary(run)
    train = json.loads((run / "train.json").read_text())
    cfg, st, data = train["config"], train["settings"], train["data"]
    q = json.loads(quality.read_text())
    evals, je = judge_evals(judge)
    jt = evals[0][1]
    classes = data["classes"]
    out = []
    w = out.append
    w(f"# {name}\n")
    w(f"A small class-conditional BigGAN-deep ({cfg['output_dim']}×{cfg['output_dim']}, channel width "
      f"{cfg['channel_width']}, z {cfg['z_dim']}, {cfg['num_classes']} classes) trained by intervene's own "
      f"`intervene train biggan` on **{source_name(data['source'])}** ({data['images']:,} training images). Hub layout "
      "(`config.json` + `model.safetensors` with `weight_orig/u/v` and 51-row standing-statistics tables), "
      "so every BigGAN tool opens it unchanged. `components.npz`: its GANSpace directions "
      "(`intervene pca`, run by the training job). `classes.txt`: the class names in class order.\n")
    if data["source"] == "fashion-mnist":
        w("- **Licence**: our own weights (same licence as intervene). Data: Fashion-MNIST, MIT (Zalando Research).\n")
    else:
        w("- **Licence**: our own weights (same licence as intervene). Data: MNIST (Yann LeCun and Corinna "
          "Cortes, CC BY-SA 3.0)" + ("" if data["source"] == "mnist" else ", coloured by intervene's `data build`") + ".\n")
    w(f"- **Classes**: {', '.join(f'{i} {c}' for i, c in enumerate(classes))}.\n")
    w(f"- **Training**: {s['steps']:,} generator steps at batch {st['batch']} (1 D step each), hinge loss, "
      f"spectral norm with one power iteration per step, projection discriminator (width {st['d_ch']}), "
      f"Adam β=({st['beta1']}, {st['beta2']}) lr G {st['lr_g']:g} / D {st['lr_d']:g}, EMA of G "
      f"(decay {st['ema_decay']}, from step {st['ema_start']}); seed {st['seed']}. "
      f"Device: CPU, one thread, on the shared 2-core VM (other jobs ran beside it). "
      f"Wall time of the steps: {s['wall_hours']:.2f} h (median {s['median_s_per_step']:.2f} s/step).\n")
    w("- **Exact commands**:\n\n```sh\n" + commands.read_text().strip() + "\n```\n")
    if data["source"] == "fashion-mnist":
        w(f"- **Judge**: an MNIST CNN (the CGN paper's classifier and recipe) trained on the {data['images']:,} "
          f"real training images, {je} epochs: **{100 * jt:.2f} %** top-1 on the 10,000 real test images.\n")
    else:
        w(f"- **Judge**: an MNIST CNN (the CGN paper's classifier and recipe) trained {je} "
          f"epoch{'' if je == 1 else 's'} on the data set's real (biased) training images; top-1 "
          + ", ".join(f"{100 * t:.2f} % on `{short(d)}`" for d, t in evals) + ". A judge trained on "
          "biased data reads the colours, so consistency below says how often a sample carries its "
          "class's colours; the sample sheets show the digits.\n")
    w("\n## Sample quality (`intervene quality measure`)\n")
    out.extend(quality_table(q, "class consistency (judge top-1 on samples)"))
    w("\nDiversity = mean pairwise RMS pixel distance within a class ([0, 1] scale), for samples and for "
      "as many real training images of the class.\n")
    w("Per-class consistency at each truncation:\n")
    w("| truncation | " + " | ".join(classes) + " |")
    w("|---|" + "---|" * len(classes))
    for c in q["consistency"]:
        w(f"| {c['truncation']} | " + " | ".join(f"{100 * a:.0f}" for a in c["per_class"]) + " |")
    w("\n## Samples\n")
    w("Rows are classes, EMA generator, standing statistics of the row's truncation:\n")
    for t in ("1.0", "0.7", "0.4"):
        w(f"![samples at truncation {t}](samples_t{t}.png)\n")
    out.extend(loss_lines(s))
    print("\n".join(out))


if __name__ == "__main__":
    main()
