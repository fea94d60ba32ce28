#!/usr/bin/env bash
# GenInt's Table 5 on 10-way colored MNIST with our CVAE (train it with
# `intervene train cvae --out DIR --write-data`). Usage: genint_table5.sh runs/cvae
# Classifier recipe as GenInt's evaluate_cnn_classification.py: Adam lr 1e-3 (default betas),
# batch 64, 5 epochs (EPOCHS overrides); the network is our MNIST CNN (`--arch mnist-cnn`, the
# CGN paper's), not GenInt's 3-conv/2-FC CNN with dropout.
EPOCHS=${EPOCHS:-5}
source "$(dirname "$0")/common.sh"
cvae=$1; d="$cvae/data"; w="$WORK/table5"
adam=(--optimizer adam --lr 0.001 --schedule constant --eval "$d/test-confounded" --eval "$d/test-causal")
train_cnn "$w/clf-original" --data "$d/train" "${adam[@]}"
train_cnn "$w/clf-observational" --data "$cvae/samples/observational" "${adam[@]}"
train_cnn "$w/clf-interventional" --data "$cvae/samples/interventional" "${adam[@]}"
echo "| train on | confounded test | causal test |"
for c in original observational interventional; do
  echo "| $c | $(top1 "$w/clf-$c" "$d/test-confounded") | $(top1 "$w/clf-$c" "$d/test-causal") |"
done
