#!/usr/bin/env bash
# Runs the real studio window under Xvfb and saves a screenshot.
#   tools/screenshot.sh [OUT.png] [-- intervene gui args...]
# Needs: xvfb xauth imagemagick (installed when missing). Uses the release binary if built, else debug.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/assets/screenshot.png}; shift || true
[ "${1:-}" = "--" ] && shift
for p in xvfb xauth imagemagick; do dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$p" >/dev/null; }; done
bin=$repo/target/release/intervene; [ -x "$bin" ] || bin=$repo/target/debug/intervene
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
display=:$((90 + RANDOM % 9))
Xvfb "$display" -screen 0 1400x900x24 >/dev/null 2>&1 & xvfb=$!
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}; chmod 700 "$XDG_RUNTIME_DIR"
trap 'kill $app $xvfb 2>/dev/null || true' EXIT
sleep 1
DISPLAY=$display "$bin" gui "$@" & app=$!
sleep "${SCREENSHOT_WAIT:-8}"
DISPLAY=$display import -window root "$out"
echo "wrote $out"
