#!/usr/bin/env bash
# The CGN study's Table 2 for one variant and one CGN: accuracy on the de-biased test set of
# classifiers trained on original / GAN (non-CF samples) / CGN counterfactuals / original + CGN.
# Usage: cgn_table2.sh double-colored models/cgn-double-colored/model.safetensors ours
#        cgn_table2.sh double-colored ../shared/fixtures/cgn-mnist-authors-weights/double_colored.pth authors
source "$(dirname "$0")/common.sh"
variant=$1; cgn=$2; label=${3:-$(basename "$(dirname "$cgn")")}
N=${N:-100000}; K=${K:-10}
data="$WORK/data/$variant"; real="$WORK/real/$variant"; w="$WORK/table2/$variant/$label"
[ -d "$data/train" ] || "$INTERVENE" data build --variant "$variant" --out "$data"
[ -d "$real/test" ] || "$INTERVENE" quality real --data "$variant" --out "$real"
# every classifier is evaluated after each epoch on the de-biased test and the in-domain one
tests=(--eval "$data/test" --eval "$real/test")
[ -f "$w/cf/labels.csv" ] || "$INTERVENE" export cgn --model "$cgn" --n "$N" --cf-per-shape "$K" --layout imagefolder --seed "$SEED" --out "$w/cf" $( [ -d "$w/cf" ] && echo --resume )
"$INTERVENE" quality samples --generator "$cgn" --per-class $((N / 10)) --seed "$SEED" --out "$w/gan"
train_cnn "$w/clf-original" --data "$data/train" "${tests[@]}"
train_cnn "$w/clf-gan" --data "$w/gan" "${tests[@]}"
train_cnn "$w/clf-cgn" --data "$w/cf" "${tests[@]}"
train_cnn "$w/clf-original+cgn" --data "$data/train" --intervened "$w/cf" --lambda1 1 --batch2 64 "${tests[@]}"
# `intervene eval --json` of each classifier on both tests (de-biased first), for docs/results
for c in original gan cgn original+cgn; do
  "$INTERVENE" eval --classifier "$w/clf-$c" --data "$data/test" --data "$real/test" --json > "$w/clf-$c/eval.json"
done
printf '| %s | %s | de-biased / in-domain top-1 |' "$variant" "$label"
for c in original gan cgn original+cgn; do
  printf ' %s |' "$(python3 -c 'import json,sys; print(" / ".join("%.2f" % (100 * json.loads(l)["top1"]) for l in open(sys.argv[1])))' "$w/clf-$c/eval.json")"
done
echo
