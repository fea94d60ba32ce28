#!/usr/bin/env bash
# Mask shape check: do a CGN's masks draw their class's digit? `intervene quality masks` renders
# 20 samples per class and lets the bundled shape judge (models/mnist-cnn-mnist, an MNIST-CNN on
# plain MNIST) read each mask as a digit. Appends one JSON line per model to
# $WORK/cgn-mask-shape.jsonl. JUDGE=PATH reads with another judge.
# Usage: cgn_mask_shape.sh NAME=MODEL [NAME=MODEL...]
# (tools/results/cgn_mask_digits.py writes the masks as PNGs, for `intervene eval` to check it.)
source "$(dirname "$0")/common.sh"
judge_arg=(); [ -n "${JUDGE:-}" ] && judge_arg=(--judge "$JUDGE")
for spec in "$@"; do
  name=${spec%%=*}; model=${spec#*=}
  "$INTERVENE" quality masks --generator "$model" "${judge_arg[@]}" --json "$WORK/shape-$name.json"
  python3 -c "
import json
r = json.load(open('$WORK/shape-$name.json'))
s = [c['shape'] for c in r['classes']]
print(json.dumps({'model': '$name', 'judge': r['shape_judge'], 'shape_top1': round(sum(s) / len(s), 4),
                  'per_class': s, 'frame': [round(c['frame'], 4) for c in r['classes']]}))" | tee -a "$WORK/cgn-mask-shape.jsonl"
done
