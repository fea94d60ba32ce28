#!/usr/bin/env bash
# One run on a lent CUDA machine (a few minutes): parity on the GPU, BigGAN-deep speed next to
# PyTorch eager on the same GPU, one CGN-ImageNet render, and the toolkit/driver versions — all
# written to benches/results/ (and copied to $OUT when set, as the device tool returns $OUT).
#
#   tools/gpu-check.sh            from the repository root on the GPU machine
#
# What it needs there, in order of preference:
# - cargo and nvcc: it builds `--features cuda` itself (release) and runs the parity tests;
# - otherwise INTERVENE_BIN=path to a CUDA build of intervene (see tools/cuda-portable.md for
#   carrying one built against another CUDA major version): then only `intervene selftest`
#   (BigGAN parity on the GPU) and the benchmarks run, and the log says the tests were skipped.
# - python3 with torch (CUDA) and pytorch-pretrained-biggan for the PyTorch column
#   (tools/reference/requirements-peer.txt); without them that column is recorded as missing.
# Parity tests run with INTERVENE_TEST_DEVICE=cuda: tests/biggan_portable_parity.rs (every stage
# of the portable path, the one CUDA runs) and tests/cgn_imagenet_parity.rs (the full ImageNet
# CGN on formula weights: four BigGAN-deep-256 and two U²-Net passes, i.e. the CGN-ImageNet
# render); tests/biggan_parity.rs, classifiers_parity.rs and cam_mobilenet_v2.rs pin the CPU and
# are run as a check of the build only.
#
# Written without a GPU at hand: not yet run on one.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
stamp=$(date -u +%Y-%m-%d)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
tag=$(echo "${gpu:-unknown-gpu}" | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-' | sed 's/^nvidia-//')
res=benches/results
mkdir -p "$res"
log=$res/$stamp-$tag-gpu-check.log
env_json=$res/$stamp-$tag-cuda-env.json
bench_json=$res/$stamp-$tag-cuda-biggan.jsonl
: > "$log"
say() { printf '[gpu-check] %s\n' "$*" | tee -a "$log" >&2; }
status=0

# 1. Versions: driver, CUDA (driver's and toolkit's), GPU, torch.
python3 - "$env_json" <<'PY' || say "could not write the environment record"
import json, subprocess, sys, datetime, shutil
def sh(*c):
    try:
        return subprocess.run(c, capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception as e:
        return f"unavailable ({e.__class__.__name__})"
q = sh("nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader")
smi = sh("nvidia-smi")
cuda_driver = next((l.split("CUDA Version:")[1].split()[0] for l in smi.splitlines() if "CUDA Version:" in l), None)
torch = sh("python3", "-c", "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.is_available())")
rec = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
       "gpu": q, "cuda_driver_api": cuda_driver,
       "nvcc": sh("nvcc", "--version").splitlines()[-1] if shutil.which("nvcc") else None,
       "cublas": [l.strip() for l in sh("ldconfig", "-p").splitlines() if "libcublas.so" in l],
       "torch_cuda_cudnn_available": torch, "rustc": sh("rustc", "--version") if shutil.which("rustc") else None,
       "intervene": sh("git", "describe", "--always", "--dirty")}
open(sys.argv[1], "w").write(json.dumps(rec, indent=1) + "\n")
print(json.dumps(rec))
PY
cat "$env_json" >> "$log" 2>/dev/null

# 2. The binary: build here when a toolchain is present, else take INTERVENE_BIN.
bin=${INTERVENE_BIN:-}
built=0
if command -v cargo >/dev/null && command -v nvcc >/dev/null; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
  say "building --features cuda (CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$cap})"
  if CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$cap} cargo build --release --no-default-features --features cuda --bin intervene >>"$log" 2>&1; then
    bin=${CARGO_TARGET_DIR:-target}/release/intervene
    built=1
  else
    say "the CUDA build failed (see the log)"; status=1
  fi
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  say "no CUDA binary: install cargo + nvcc here or set INTERVENE_BIN"; status=1
fi

# 3. Parity on the GPU.
if [ -n "$bin" ] && [ -x "$bin" ]; then
  say "intervene selftest (BigGAN-deep parity on the GPU, all three weight formats)"
  "$bin" selftest >>"$log" 2>&1 || { say "selftest FAILED"; status=1; }
fi
if [ "$built" = 1 ]; then
  say "parity tests with INTERVENE_TEST_DEVICE=cuda (portable BigGAN path, full CGN-ImageNet render)"
  INTERVENE_TEST_DEVICE=cuda CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$cap} cargo test --release --no-default-features --features cuda \
    --test biggan_portable_parity --test cgn_imagenet_parity -- --nocapture >>"$log" 2>&1 \
    || { say "GPU parity tests FAILED"; status=1; }
  say "CPU-pinned parity tests of the same build (BigGAN, classifiers, CAMs)"
  CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$cap} cargo test --release --no-default-features --features cuda \
    --test biggan_parity --test classifiers_parity --test cam_mobilenet_v2 >>"$log" 2>&1 \
    || { say "CPU parity tests FAILED"; status=1; }
else
  say "cargo test skipped (no toolchain here): only selftest ran"
fi

# 4. Speed: intervene and PyTorch eager on the same GPU, interleaved per configuration.
: > "$bench_json"
peer=0
python3 -c "import torch, pytorch_pretrained_biggan; assert torch.cuda.is_available()" 2>/dev/null && peer=1
[ "$peer" = 1 ] || say "no CUDA torch + pytorch-pretrained-biggan here: the PyTorch column stays empty"
for cfg in deep-128 deep-256 deep-512; do
  for b in 1 8; do
    if [ -n "$bin" ] && [ -x "$bin" ]; then
      "$bin" bench biggan --config "$cfg" --batch "$b" --runs 20 --warmup 3 --json 2>>"$log" \
        | python3 -c 'import json,sys
for l in sys.stdin:
    if l.startswith("{"): o=json.loads(l); o.update(impl="intervene", what="biggan", round=1); print(json.dumps(o))' >>"$bench_json"
    fi
    if [ "$peer" = 1 ]; then
      python3 tools/reference/pt_biggan_bench.py --res "${cfg#deep-}" --batch "$b" --runs 20 --warmup 3 --device cuda \
        2>>"$log" | sed 's/"impl": "pytorch"/"impl": "pytorch", "round": 1/' >>"$bench_json"
    fi
  done
done
python3 tools/bench_report.py --cuda "$bench_json" >>"$log" 2>&1

# 5. Hand the results back.
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/benches/results" && cp "$env_json" "$bench_json" "$log" "$OUT/benches/results/"
fi
say "done (status $status): $env_json, $bench_json, $log"
exit $status
