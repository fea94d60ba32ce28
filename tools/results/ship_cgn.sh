#!/usr/bin/env bash
# Ships an MNIST CGN trained by `intervene train cgn` as a bundled model: a snapshot of the run's
# weights, Table 2's "ours" cells for it (cgn_table2.sh, whose original-data classifier is the
# variant's judge), its sample quality with that judge, and models/cgn-VARIANT/ with the
# weights, their mask check (masks.json, which the studio shows), sample sheets, run summary and a model card
# (with its mask-check section) whose numbers all come from those files.
# Usage: ship_cgn.sh VARIANT RUN_DIR COMMAND_FILE [NAME]
#   COMMAND_FILE holds the exact training commands, as they were run, for the card.
#   NAME: the bundled model's name [default: cgn-VARIANT]; the Table 2 work folder and the
#   docs/results files are named after it (cells labelled `ours` for cgn-VARIANT, else NAME).
# The models/index.json entry is added by hand (its summary line says what the card says).
source "$(dirname "$0")/common.sh"
variant=$1; run=$2; commands=$3; name=${4:-cgn-$variant}
label=ours; tag=ours
[ "$name" = "cgn-$variant" ] || { label=$name; tag="ours-$name"; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
steps=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["step"])' "$run/metrics.jsonl")
snap="$WORK/snap/$name-$steps.safetensors"
mkdir -p "$WORK/snap"
cp "$run/model.safetensors" "$snap"
"$(dirname "$0")/cgn_table2.sh" "$variant" "$snap" "$label"
judge="$WORK/table2/$variant/$label/clf-original"
q="$WORK/quality-$name-$steps.json"
"$INTERVENE" quality measure --generator "$snap" --judge "$judge" --data "$variant" --truncation 1.0 --json "$q"
out="$repo/models/$name"
mkdir -p "$out"
cp "$snap" "$out/model.safetensors"
cp "$run/train.json" "$run/parts.png" "$run/counterfactuals.png" "$out/"
cp "$q" "$out/quality.json"
"$INTERVENE" quality masks --generator "$out/model.safetensors" --json "$out/masks.json"
python3 "$(dirname "$0")/run_summary.py" "$run" --json > "$out/run-summary.json"
python3 "$(dirname "$0")/card_cgn.py" "$name" "$run" "$judge" "$q" "$commands" > "$out/MODEL_CARD.md"
python3 "$(dirname "$0")/card_masks.py" "$out"
for c in original gan cgn original+cgn; do
  cp "$WORK/table2/$variant/$label/clf-$c/eval.json" "$repo/docs/results/table2-$variant-$c-$tag-step$steps-eval.json"
done
echo "shipped $out (step $steps)"
