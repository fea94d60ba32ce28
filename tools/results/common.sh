# Shared settings of the results scripts (sourced).
set -euo pipefail
INTERVENE=${INTERVENE:-intervene}
WORK=${WORK:-./results-work}
EPOCHS=${EPOCHS:-10}
SEED=${SEED:-0}
mkdir -p "$WORK"
# top-1 of a classifier on a folder, in percent (from `intervene eval --json`).
top1() { "$INTERVENE" eval --classifier "$1" --data "$2" --json | python3 -c 'import json,sys; print("%.2f" % (100*json.loads(sys.stdin.readline())["top1"]))'; }
# trains an MNIST CNN unless its folder already holds a finished model; extra args are passed on.
train_cnn() { local out=$1; shift; if [ -f "$out/model.safetensors" ] && [ -f "$out/.done" ]; then return; fi
  local resume=; [ -f "$out/checkpoint.safetensors" ] && resume=--resume
  "$INTERVENE" train classifier --arch mnist-cnn --epochs "$EPOCHS" --seed "$SEED" --out "$out" $resume "$@" && touch "$out/.done"; }
