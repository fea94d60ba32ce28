#!/usr/bin/env bash
# Beyond both papers: GenInt's interventions through the small BigGAN-deep trained on
# double-colored MNIST. Does steering a BigGAN de-bias like the CGN does?
# Usage: biggan_genint.sh models/biggan-deep-double-colored-mnist-32
# SCALE (default 1): the intervention range [−SCALE, SCALE] along each of the top 20 GANSpace
# directions; PER (default 5000): intervened images per class.
source "$(dirname "$0")/common.sh"
g=$1; data="$WORK/data/double-colored"; w="$WORK/biggan-genint"
PER=${PER:-5000}
SCALE=${SCALE:-1}
tag=$([ "$SCALE" = 1 ] && echo "" || echo "-s$SCALE")
[ -d "$data/train" ] || "$INTERVENE" data build --variant double-colored --out "$data"
# In-domain = held-out test digits coloured as in training (the biased colours).
real="$WORK/real/double-colored"
[ -d "$real/test" ] || "$INTERVENE" quality real --data double-colored --out "$real"
"$INTERVENE" export genint --model "$g" --components "$g/components.npz" --classes all --per-class "$PER" \
  --topk 20 --scale "$SCALE" --truncation 1 --seed "$SEED" --out "$w/int$tag" $( [ -d "$w/int$tag" ] && echo --resume ) --cpu
train_cnn "$w/clf-original+int$tag" --data "$data/train" --intervened "$w/int$tag" --lambda1 0.5 --batch2 32
echo "| original + BigGAN interventions (scale $SCALE, λ1 0.5) | de-biased test $(top1 "$w/clf-original+int$tag" "$data/test") | in-domain $(top1 "$w/clf-original+int$tag" "$real/test") |"
