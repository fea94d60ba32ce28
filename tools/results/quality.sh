#!/usr/bin/env bash
# Class consistency and diversity of a generator with the judge of its data set (run judges.sh first).
# Usage: quality.sh models/biggan-fashion-mnist-32 fashion-mnist 1.0 0.5
source "$(dirname "$0")/common.sh"
gen=$1; data=$2; shift 2
ts=(); for t in "${@:-1.0}"; do ts+=(--truncation "$t"); done
"$INTERVENE" quality measure --generator "$gen" --judge "$WORK/judges/$data" --data "$data" "${ts[@]}" \
  --json "$WORK/quality-$(basename "$gen").json"
