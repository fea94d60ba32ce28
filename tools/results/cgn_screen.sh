#!/usr/bin/env bash
# Seed screening for the MNIST CGN. The study (its §4.1 and Figure 2) trained each variant many
# times because some trials learn inverted masks for some digits (the background mechanism draws
# the digit); about 2/3 of its double-colored and wildlife trials were good, none for colored.
# The orientation is settled early, so this trains each seed for a few steps, checks the masks
# of 20 samples per class (`intervene quality masks`: frame orientation, and shape score with the
# bundled shape judge) and logs the result; the best seed is then
# continued with `intervene train cgn --resume --steps 46875` in its folder.
# Usage: cgn_screen.sh VARIANT STEPS SEED [SEED...]   (runs in $WORK/screen-VARIANT[-TAG]-sSEED)
# Output: one JSON line per seed appended to $WORK/screen-VARIANT[-TAG].jsonl.
# Optional: TEXTURES=DIR trains wildlife on texture images (`train cgn --textures`), TAG names
# such a screen apart. TRAIN_ARGS="..." adds arguments to `train cgn` (e.g. "--mask-size 0.05,0.3");
# give such a screen its own TAG too.
source "$(dirname "$0")/common.sh"
variant=$1; steps=$2; shift 2
tag=${TAG:+-$TAG}
extra=(); [ -n "${TEXTURES:-}" ] && extra=(--textures "$TEXTURES")
read -r -a more <<< "${TRAIN_ARGS:-}"; extra+=("${more[@]}")
for seed in "$@"; do
  run="$WORK/screen-$variant$tag-s$seed"
  resume=; [ -f "$run/checkpoint.safetensors" ] && resume=--resume
  "$INTERVENE" train cgn --variant "$variant" --seed "$seed" --steps "$steps" --sample-every 0 \
    --checkpoint-every 500 --threads 1 --out "$run" $resume "${extra[@]}"
  "$INTERVENE" quality masks --generator "$run" --json "$run/mask-check.json"
  check=$(python3 -c "import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))" "$run/mask-check.json")
  echo "{\"variant\": \"$variant$tag\", \"seed\": $seed, \"steps\": $steps, \"check\": $check}" | tee -a "$WORK/screen-$variant$tag.jsonl"
done
