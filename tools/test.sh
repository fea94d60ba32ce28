#!/usr/bin/env bash
# The whole test suite on a fresh Debian/Ubuntu machine: installs what it needs, then runs every test.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash tools/setup.sh test
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# Headless UI tests render through wgpu on a software driver (lavapipe).
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}; chmod 700 "$XDG_RUNTIME_DIR"
export INTERVENE_DATA=${INTERVENE_DATA:-$repo/.data}
# Benchmarks run once as smoke tests first.
cargo test --locked --benches 2>&1
cargo test --locked --lib --bins --tests 2>&1
# The cluster build: no window, no egui/wgpu (`--no-default-features`).
cargo build --locked --no-default-features --lib --bins 2>&1
# Lints last, on every target, warnings as errors: keep it clean in every file you touch.
cargo clippy --locked --all-targets -- -D warnings 2>&1
