#!/usr/bin/env bash
# Beyond both papers: GenInt's interventions through the small BigGAN-deep trained on
# double-colored MNIST. Does steering a BigGAN de-bias like the CGN does?
# Usage: biggan_genint.sh models/biggan-double-colored-mnist-32
source "$(dirname "$0")/common.sh"
g=$1; data="$WORK/data/double-colored"; w="$WORK/biggan-genint"
PER=${PER:-5000}
[ -d "$data/train" ] || "$INTERVENE" data build --variant double-colored --out "$data"
"$INTERVENE" export genint --model "$g" --components "$g/components.npz" --classes all --per-class "$PER" \
  --topk 20 --scale 1 --truncation 1 --seed "$SEED" --out "$w/int" $( [ -d "$w/int" ] && echo --resume ) --cpu
train_cnn "$w/clf-original+int" --data "$data/train" --intervened "$w/int" --lambda1 0.5 --batch2 32
echo "| original + BigGAN interventions (λ1 0.5) | de-biased test $(top1 "$w/clf-original+int" "$data/test") | in-domain $(top1 "$w/clf-original+int" "$data/train") |"
