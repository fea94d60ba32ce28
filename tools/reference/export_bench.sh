#!/usr/bin/env bash
# `intervene bench export` next to its PyTorch peer (tools/reference/pt_export_bench.py), interleaved
# in rounds on the same machine, one JSON line per run appended to benches/results/<date>-cpu-export.jsonl.
#   ROUNDS=3 RES=128 BATCH=8 IMAGES=32 bash tools/reference/export_bench.sh
# Variants per round: intervene (writes on a second thread), intervene --inline-writes, PyTorch as
# GenInt runs it (reference), PyTorch tuned (spectral norm folded, 3-channel RGB conv, jemalloc
# when /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 exists). Needs a release build
# (cargo build --release --no-default-features) and a Python with torch, pytorch-pretrained-biggan,
# scipy, numpy and pillow ($PYTHON).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${INTERVENE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/intervene}
py=${PYTHON:-python3}
rounds=${ROUNDS:-3} res=${RES:-128} batch=${BATCH:-8} images=${IMAGES:-32}
# One random-weight model with realistic images for both sides (not committed; ~200 MB).
model=${MODEL:-/tmp/bench-biggan-$res}
[ -f "$model/pytorch_model.bin" ] || "$py" "$repo/tools/reference/make_bench_biggan.py" "$model" --res "$res"
out=$repo/benches/results/$(date +%F)-cpu-export.jsonl
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
host="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
tag() { "$py" -c 'import json,sys; d=json.loads(sys.stdin.read()); d.update(round=int(sys.argv[1]), date=sys.argv[2], host=sys.argv[3]); print(json.dumps(d))' "$@"; }
for r in $(seq "$rounds"); do
  "$bin" bench export --model "$model" --batch "$batch" --images "$images" --json | tag "$r" "$(date -Is)" "$host" | tee -a "$out"
  "$bin" bench export --model "$model" --batch "$batch" --images "$images" --inline-writes --json | tag "$r" "$(date -Is)" "$host" | tee -a "$out"
  "$py" "$repo/tools/reference/pt_export_bench.py" --model "$model" --batch "$batch" --images "$images" --variant reference \
    | tag "$r" "$(date -Is)" "$host" | tee -a "$out"
  if [ -f "$jemalloc" ]; then
    LD_PRELOAD=$jemalloc MALLOC_CONF="retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1" \
      "$py" "$repo/tools/reference/pt_export_bench.py" --model "$model" --batch "$batch" --images "$images" --variant tuned \
      | tag "$r" "$(date -Is)" "$host" | tee -a "$out"
  fi
done
echo "appended to $out" >&2
