#!/usr/bin/env bash
# intervene's benchmarks and the PyTorch peers, side by side on this machine, in one run.
#
# Every measurement is taken once per round, intervene and PyTorch back to back, and the rounds
# repeat the whole list (interleaved), so slow drift of a shared machine hits both alike. Each
# cell of the report is the median over rounds of each run's own median (tools/bench_report.py).
# Writes benches/results/<date>-<machine>-bench.jsonl (every run of every round plus a meta line:
# CPU, cores, memory, OS, rustc, intervene commit, torch, allocator) and rewrites README's
# performance section between <!-- bench:begin --> and <!-- bench:end -->.
#
#   tools/bench.sh             the full set, 3 rounds (≈ 25 min on 2 cores): run it on a quiet machine
#   tools/bench.sh --quick     one round of a small subset into a temporary folder (checks the script)
#   tools/bench.sh --only train  the training rows alone (after a training-kernel change), into
#                              <date>-<arch>-cpu-train.jsonl; README's other rows stay those of the
#                              newest full run, and the table says which file each row comes from
#
# Options: --rounds N, --out DIR (results folder), --readme FILE, --python PY (the peer's
# interpreter; default $PEER_PYTHON, else python3), --no-peer (intervene only).
# Peer requirements: tools/reference/requirements-peer.txt; jemalloc (libjemalloc2) is preloaded
# for PyTorch when installed, as a tuned PyTorch CPU deployment runs.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

rounds=3 quick=0 peer=1 only=
out=benches/results readme=README.md
py=${PEER_PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds=$2; shift ;;
    --out) out=$2; shift ;;
    --readme) readme=$2; shift ;;
    --python) py=$2; shift ;;
    --no-peer) peer=0 ;;
    --only) only=$2; [ "$only" = train ] || { echo "--only takes: train" >&2; exit 2; }; shift ;;
    *) echo "usage: tools/bench.sh [--quick] [--only train] [--rounds N] [--out DIR] [--readme FILE] [--python PY] [--no-peer]" >&2; exit 2 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  rounds=1
  tmp=$(mktemp -d)
  [ "$out" = benches/results ] && out=$tmp
  [ "$readme" = README.md ] && { cp README.md "$tmp/README.md"; readme=$tmp/README.md; }
fi
mkdir -p "$out"
say() { printf '[bench] %s\n' "$*" >&2; }

[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
say "building intervene (release)"
cargo build --release --locked --bin intervene >&2
bin=${CARGO_TARGET_DIR:-target}/release/intervene

if [ "$peer" = 1 ] && ! "$py" -c "import torch, torchvision, pytorch_pretrained_biggan, pytorch_grad_cam" 2>/dev/null; then
  echo "the PyTorch peer needs: $py -m pip install -r tools/reference/requirements-peer.txt (or pass --python PY, or --no-peer)" >&2
  exit 1
fi
jemalloc=
for j in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2; do
  [ -f "$j" ] && { jemalloc=$j; break; }
done
[ "$peer" = 1 ] && [ -z "$jemalloc" ] && say "no libjemalloc2: PyTorch runs with glibc malloc (slower than tuned; apt-get install libjemalloc2)"
peer_run() {
  if [ -n "$jemalloc" ]; then
    LD_PRELOAD=$jemalloc MALLOC_CONF="retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1" "$py" "$@"
  else
    "$py" "$@"
  fi
}

host=$(hostname -s 2>/dev/null || echo host)
base=$(ls -t "$out"/*-cpu-bench.jsonl 2>/dev/null | head -1 || true)
file=$out/$(date -u +%Y-%m-%d)-$(uname -m)-cpu-${only:-bench}.jsonl
threads=$(nproc)
torch_v=$([ "$peer" = 1 ] && "$py" -c "import torch; print(torch.__version__)" 2>/dev/null || echo "")
python3 - "$file" "$rounds" "$threads" "$torch_v" "$([ -n "$jemalloc" ] && echo 1 || echo 0)" "$host" <<'PY'
import json, os, platform, subprocess, sys, datetime
f, rounds, threads, torch, jem, host = sys.argv[1:]
def sh(*c):
    try: return subprocess.run(c, capture_output=True, text=True).stdout.strip()
    except OSError: return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
meta = {"kind": "meta", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "memory": f"{int(mem) / 1024 / 1024:.0f} GiB",
        "os": f"Linux {platform.release()}", "rustc": sh("rustc", "--version").replace("rustc ", ""),
        "intervene": sh("git", "describe", "--always", "--dirty"), "torch": torch or None,
        "jemalloc": jem == "1", "threads": int(threads), "rounds": int(rounds), "host": host,
        "avx512": "avx512f" in open("/proc/cpuinfo").read()}
open(f, "w").write(json.dumps(meta) + "\n")
PY
say "results → $file"

# tag ROUND IMPL WHAT: adds the fields to every JSON line of stdin and appends them to $file.
tag() {
  python3 -c '
import json, sys
r, impl, what = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        o = json.loads(line); o.update(round=r, impl=impl, what=what); print(json.dumps(o))
' "$1" "$2" "$3" >> "$file"
}

# The measurements: intervene (and the peer, where PyTorch has one), per round.
if [ "$quick" = 1 ]; then
  biggan=("deep-128 1") cams=(resnet18) runs=1 warm=0 steer_cfgs=(models/biggan-deep-tiny-32/config.json)
else
  biggan=("deep-128 1" "deep-128 8" "deep-256 1" "deep-256 8" "deep-512 1") cams=(resnet18 resnet50 mobilenet_v2)
  runs=5 warm=2 steer_cfgs=(deep-128 models/biggan-deep-tiny-32/config.json)
fi
# The export benchmark runs both sides on the same weights: a random-weight deep-128 with
# converged spectral-norm vectors and calibrated batch norm, so the PNGs look like real samples
# (tools/reference/make_bench_biggan.py; ~200 MB in a temporary folder, not committed).
export_batch=8 export_images=$([ "$quick" = 1 ] && echo 8 || echo 32)
export_dir=${BENCH_BIGGAN:-${TMPDIR:-/tmp}/intervene-bench-biggan-128}
export_model=(--config deep-128)
if [ "$peer" = 1 ] && [ -z "$only" ]; then
  [ -f "$export_dir/pytorch_model.bin" ] || { say "making the export benchmark's model in $export_dir"; "$py" tools/reference/make_bench_biggan.py "$export_dir" --res 128 >&2; }
  export_model=(--model "$export_dir")
fi
train_workloads=$([ "$quick" = 1 ] && echo mnist-cnn || echo mnist-cnn,resnet18,cgn-gan)
train_steps=$([ "$quick" = 1 ] && echo 3 || echo 10)
for r in $(seq 1 "$rounds"); do
  say "round $r of $rounds"
  if [ -z "$only" ]; then
  for cb in "${biggan[@]}"; do
    set -- $cb
    say "  biggan $1 batch $2"
    "$bin" bench biggan --config "$1" --batch "$2" --runs "$runs" --warmup "$warm" --json --cpu | tag "$r" intervene biggan
    [ "$peer" = 1 ] && peer_run tools/reference/pt_biggan_bench.py --res "${1#deep-}" --batch "$2" --runs "$runs" --warmup "$warm" --threads "$threads" | tag "$r" pytorch biggan
  done
  say "  cam ${cams[*]}"
  "$bin" bench cam --arch "$(IFS=,; echo "${cams[*]}")" --runs "$((runs * 2))" --json | tag "$r" intervene cam
  [ "$peer" = 1 ] && peer_run tools/reference/pt_gradcam_bench.py --runs "$((runs * 2))" --warmup "$warm" --threads "$threads" "${cams[@]}" | tag "$r" pytorch cam
  for s in "${steer_cfgs[@]}"; do
    say "  steer $s"
    "$bin" bench steer --config "$s" --runs "$((runs * 2))" --json --cpu | tag "$r" intervene steer
  done
  say "  export (GenInt loop: BigGAN forward + PNG write), batch $export_batch"
  "$bin" bench export "${export_model[@]}" --batch "$export_batch" --images "$export_images" --json | tag "$r" intervene export
  if [ "$peer" = 1 ]; then
    "$py" tools/reference/pt_export_bench.py --model "$export_dir" --batch "$export_batch" --images "$export_images" --variant reference --threads "$threads" | tag "$r" pytorch export
    [ -n "$jemalloc" ] && peer_run tools/reference/pt_export_bench.py --model "$export_dir" --batch "$export_batch" --images "$export_images" --variant tuned --threads "$threads" | tag "$r" pytorch export
  fi
  fi
  say "  train (s/step, 1 thread each)"
  "$bin" bench train --workload "$train_workloads" --steps "$train_steps" --threads 1 --json | tag "$r" intervene train
  [ "$peer" = 1 ] && peer_run tools/reference/pt_train_bench.py --workload "$train_workloads" --steps "$train_steps" --threads 1 | tag "$r" pytorch train
  if [ "$quick" = 0 ] && [ -z "$only" ]; then
    say "  cgn frame"
    "$bin" bench cgn --runs 50 --json | tag "$r" intervene cgn || say "  (bench cgn needs the default gui feature; skipped)"
  fi
done

if [ -z "$only" ]; then
  say "ui under load (window frames while a classifier trains)"
  cargo bench --locked --bench ui_under_load -- --json 2>/dev/null | tag 1 intervene ui
fi

cuda=()
for f in benches/results/*cuda*.jsonl; do [ -f "$f" ] && cuda+=(--cuda "$f"); done
results=(--results "$file")
[ -n "$only" ] && [ -n "$base" ] && results=(--results "$base" --results "$file")
python3 tools/bench_report.py "${results[@]}" "${cuda[@]}" --readme "$readme" --summary "${file%.jsonl}.summary.jsonl"
say "README section rewritten: $readme"
[ "$quick" = 1 ] && { say "quick run: results and README copy in $out"; sed -n '/bench:begin/,/bench:end/p' "$readme"; }
exit 0
