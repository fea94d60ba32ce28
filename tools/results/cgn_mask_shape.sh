#!/usr/bin/env bash
# Mask shape check: do a CGN's masks draw their class's digit? Renders 20 samples per class
# (as cgn_screen.sh does), writes the masks as digits (cgn_mask_digits.py) and lets the shape
# judge, an MNIST-CNN trained on plain MNIST, read them. Appends one JSON line per model to
# $WORK/cgn-mask-shape.jsonl.
# Usage: cgn_mask_shape.sh NAME=MODEL [NAME=MODEL...]
# The judge is trained once, into $WORK/shape-judge (MNIST from $INTERVENE_DATA/mnist).
source "$(dirname "$0")/common.sh"
here=$(dirname "$0")
judge=$WORK/shape-judge
if [ ! -f "$judge/model.safetensors" ]; then
  python3 "$here/cgn_mask_digits.py" judge-data "${INTERVENE_DATA:-.data}/mnist" "$WORK/shape-judge-data" --train 60000 --test 10000
  "$INTERVENE" train classifier --arch mnist-cnn --data "$WORK/shape-judge-data/train" --epochs 3 --seed 0 --out "$judge"
fi
judge_top1=$(top1 "$judge" "$WORK/shape-judge-data/test")
classes=$(python3 -c "print(','.join(str(c) for c in range(10) for _ in range(20)))")
for spec in "$@"; do
  name=${spec%%=*}; model=${spec#*=}; d=$WORK/shape-$name
  "$INTERVENE" cgn --model "$model" --shape "$classes" --texture "$classes" --background "$classes" \
    --no-shift --seed 0 --out "$d/mask-check.png" --parts "$d/parts"
  python3 "$here/cgn_mask_digits.py" masks "$d/parts/mask.npy" 20 "$d/masks"
  "$INTERVENE" eval --classifier "$judge" --data "$d/masks" --json | python3 -c "
import json, sys
d = json.loads(sys.stdin.readline())
print(json.dumps({'model': '$name', 'judge_top1_mnist_test': round($judge_top1 / 100, 4), 'shape_top1': d['top1'],
                  'per_class': [round(c['accuracy'], 3) for c in d['per_class']]}))" | tee -a "$WORK/cgn-mask-shape.jsonl"
done
