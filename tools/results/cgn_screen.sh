#!/usr/bin/env bash
# Seed screening for the MNIST CGN. The study (its §4.1 and Figure 2) trained each variant many
# times because some trials learn inverted masks for some digits (the background mechanism draws
# the digit); about 2/3 of its double-colored and wildlife trials were good, none for colored.
# The orientation is settled early, so this trains each seed for a few steps, checks the masks
# of 20 samples per class (cgn_mask_check.py) and logs the result; the best seed is then
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
classes=$(python3 -c "print(','.join(str(c) for c in range(10) for _ in range(20)))")
for seed in "$@"; do
  run="$WORK/screen-$variant$tag-s$seed"
  resume=; [ -f "$run/checkpoint.safetensors" ] && resume=--resume
  "$INTERVENE" train cgn --variant "$variant" --seed "$seed" --steps "$steps" --sample-every 0 \
    --checkpoint-every 500 --threads 1 --out "$run" $resume "${extra[@]}"
  "$INTERVENE" cgn --model "$run/model.safetensors" --shape "$classes" --texture "$classes" \
    --background "$classes" --no-shift --seed 0 --out "$run/mask-check.png" --parts "$run/mask-check"
  check=$(python3 "$(dirname "$0")/cgn_mask_check.py" "$run/mask-check/mask.npy" 20 --json)
  echo "{\"variant\": \"$variant$tag\", \"seed\": $seed, \"steps\": $steps, \"check\": $check}" | tee -a "$WORK/screen-$variant$tag.jsonl"
done
