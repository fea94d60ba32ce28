#!/usr/bin/env python3
"""Ships a classifier trained by `intervene train classifier` as a bundled model: copies its
weights and config.json into models/NAME/, its end-of-epoch lines of metrics.jsonl as
epochs.jsonl and its `intervene eval --json` report (the de-biased test first, then the
in-domain one) as eval.json, and writes MODEL_CARD.md. Every number in the card comes from
those files; ROLE is one sentence on what the classifier is (its table row, what it judges).

TEST_NAMES (optional, comma-separated) names the test sets of EVAL_JSON's lines in order
(default "de-biased,in-domain"; a judge of plain MNIST has one, "MNIST").

Usage: ship_classifier.py NAME CLF_DIR EVAL_JSON ROLE COMMAND_FILE [TEST_NAMES]"""
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from card_biggan import short  # noqa: E402


def main() -> None:
    name, clf, eval_json, role, commands = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
    tests = (sys.argv[6] if len(sys.argv) > 6 else "de-biased,in-domain").split(",")
    out = REPO / "models" / name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(clf / "model.safetensors", out / "model.safetensors")
    shutil.copy(clf / "config.json", out / "config.json")
    shutil.copy(eval_json, out / "eval.json")
    epochs = [l for l in (clf / "metrics.jsonl").read_text().splitlines() if json.loads(l).get("end_of_epoch")]
    (out / "epochs.jsonl").write_text("".join(l + "\n" for l in epochs))
    cfg = json.loads((clf / "config.json").read_text())
    st = cfg["settings"]
    evals = [json.loads(l) for l in eval_json.read_text().splitlines() if l.strip()]
    last = json.loads(epochs[-1]) if epochs else {}
    opt = st["optimizer"]
    sched = st["schedule"]
    mix = ""
    if st.get("intervened"):
        e = st["intervened"]
        mix = (f" Each step also takes {e['batch']} images from `{e['dir']}` ({cfg['images']['intervened']:,} "
               f"images) with weight λ1 = {e['lambda']:g} (GenInt's objective, one shared forward pass).")
    w = [f"# {name}\n", role + "\n",
         "- **Licence**: our own weights (same licence as intervene). Data: MNIST (CC BY-SA 3.0), made into "
         "the training folders by the commands below.",
         f"- **Training**: `intervene train classifier --arch {st['arch']}`: {opt['name']} lr {st['lr']:g}, "
         f"{sched['name']} schedule (×{sched.get('gamma', 1)} every {sched.get('every', '-')} epoch), batch {st['batch']}, "
         f"{st['epochs']} epochs ({cfg['total_steps']:,} steps) on {cfg['images']['data']:,} images of `{short(st['data'])}`, "
         f"seed {st['seed']}, CPU, {st['threads']} thread.{mix}",
         "- **Exact commands**:\n\n```sh\n" + commands.read_text().strip() + "\n```\n",
         "- **Metrics** of the shipped weights (`eval.json`, `intervene eval --json`): "
         + ", ".join(f"**{100 * e['top1']:.2f} %** top-1 on the {what} test set (`{short(e['data'])}`, {e['n']:,} images)"
                   for what, e in zip(tests, evals))
         + (f"; after epoch {last.get('epoch')} in `epochs.jsonl`." if last else "."),
         f"- **Per class** (top-1, {tests[0]} test set): "
         + ", ".join(f"{c['class']}: {100 * c['accuracy']:.1f} %" for c in evals[0]["per_class"]) + ".",
         f"- **Use**: `intervene cam --classifier models/{name} --image digit.png --out cam.png`, or the "
         "Explain pane, next to another classifier for side-by-side heatmaps."]
    (out / "MODEL_CARD.md").write_text("\n".join(w) + "\n")
    print(f"shipped {out}")


if __name__ == "__main__":
    main()
