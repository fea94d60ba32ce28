#!/usr/bin/env bash
# Ships a BigGAN-deep trained by `intervene train biggan` as a bundled model: its sample quality
# with the data set's judge (class consistency and diversity at truncation 1.0 and the studio's
# 0.4), then models/NAME/ with the hub files, components, sample sheets, run summary and a model
# card whose numbers all come from those files (card_biggan.py).
# Usage: ship_biggan.sh NAME RUN_DIR JUDGE_DIR DATA COMMAND_FILE
#   JUDGE_DIR: a classifier trained on DATA's real training images (a `train classifier` folder
#   or a shipped classifier); COMMAND_FILE: the exact training commands, as run, for the card.
# The models/index.json entry is added by hand (its summary line says what the card says).
source "$(dirname "$0")/common.sh"
name=$1; run=$2; judge=$3; data=$4; commands=$5
repo=$(cd "$(dirname "$0")/../.." && pwd)
q="$WORK/quality-$name.json"
"$INTERVENE" quality measure --generator "$run" --judge "$judge" --data "$data" --truncation 1.0 --truncation 0.4 --json "$q"
out="$repo/models/$name"
mkdir -p "$out"
cp "$run/config.json" "$run/model.safetensors" "$run/components.npz" "$run/classes.txt" "$run/train.json" "$out/"
cp "$run"/samples_t*.png "$out/"
cp "$q" "$out/quality.json"
python3 "$(dirname "$0")/run_summary.py" "$run" --json > "$out/run-summary.json"
python3 "$(dirname "$0")/card_biggan.py" "$name" "$run" "$judge" "$q" "$commands" > "$out/MODEL_CARD.md"
echo "shipped $out"
