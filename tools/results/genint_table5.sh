#!/usr/bin/env bash
# GenInt's Table 5 on 10-way colored MNIST with our CVAE (train it with
# `intervene train cvae --out DIR --write-data`). Usage: genint_table5.sh runs/cvae
source "$(dirname "$0")/common.sh"
cvae=$1; d="$cvae/data"; w="$WORK/table5"
train_cnn "$w/clf-original" --data "$d/train"
train_cnn "$w/clf-observational" --data "$cvae/samples/observational"
train_cnn "$w/clf-interventional" --data "$cvae/samples/interventional"
echo "| train on | confounded test | causal test |"
for c in original observational interventional; do
  echo "| $c | $(top1 "$w/clf-$c" "$d/test-confounded") | $(top1 "$w/clf-$c" "$d/test-causal") |"
done
