#!/usr/bin/env bash
# Interleaved side-by-side training benchmark: R rounds of `intervene bench train` and
# `pt_train_bench.py` alternating (same workloads, steps and thread count), all JSON lines into
# one file. Absolute times on a shared VM drift by ±15 % over an hour; compare the two within
# the same run.
#
# Usage: tools/reference/train_bench_side_by_side.sh OUT.jsonl [ROUNDS=3] [STEPS=10] [THREADS=1]
# Env: INTERVENE (binary, default target/release/intervene), PYTHON (default python3 with torch).
set -euo pipefail
out=$1
rounds=${2:-3}
steps=${3:-10}
threads=${4:-1}
bin=${INTERVENE:-target/release/intervene}
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
: > "$out"
for r in $(seq 1 "$rounds"); do
  "$bin" bench train --json --steps "$steps" --threads "$threads" | sed "s/\"round\":0/\"round\":$r/" >> "$out"
  "$py" "$here/pt_train_bench.py" --steps "$steps" --threads "$threads" | sed "s/\"round\": 0/\"round\": $r/" >> "$out"
done
cat "$out"
