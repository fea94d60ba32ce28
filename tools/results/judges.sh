#!/usr/bin/env bash
# Judges for the sample-quality figures: an MNIST CNN per data set, trained on its real training
# images; prints its accuracy on the real test images.  Usage: judges.sh fashion-mnist double-colored
source "$(dirname "$0")/common.sh"
for data in "$@"; do
  real="$WORK/real/$data"
  [ -d "$real/test" ] || "$INTERVENE" quality real --data "$data" --out "$real"
  train_cnn "$WORK/judges/$data" --data "$real/train" --eval "$real/test"
  echo "judge $data: test top-1 $(top1 "$WORK/judges/$data" "$real/test") %"
done
