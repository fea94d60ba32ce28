#!/usr/bin/env bash
# The CGN study's Figure 3: GradCAM heatmaps (last convolutional layer, model.8; target = the
# classifier's top-1 class, as pytorch-grad-cam's default) of double-colored MNIST classifiers.
# Rows: the digit's shape 0–9; columns: the colour theme 0–9 (the in-domain digit/background
# colours of that class). Each cell is the first de-biased test image with that shape and theme
# (`data build` records every image's factors in test/factors.csv). One panel per classifier,
# side by side; the top-1 accuracy over the 100 cells is printed per panel.
# Needs ImageMagick's `montage` for the grids.
# Usage: figure3_cams.sh DATA_DIR OUT.png LABEL=CLASSIFIER_DIR...
#   e.g. figure3_cams.sh work/data/double-colored docs/results/figure3.png \
#          original=work/clf-original cf-authors=work/clf-cgn-authors cf-ours=work/clf-cgn-ours
source "$(dirname "$0")/common.sh"
data=$1; out=$2; shift 2
w="$WORK/figure3"; mkdir -p "$w"
# "shape theme file" for the 100 cells, theme t = digit colour and background of class t.
python3 - "$data/test/factors.csv" > "$w/cells.txt" <<'EOF'
import csv, sys
first = {}
for r in csv.DictReader(open(sys.argv[1])):
    if r["texture"] == r["background"]:
        first.setdefault((int(r["shape"]), int(r["texture"])), r["file"])
missing = [(s, t) for s in range(10) for t in range(10) if (s, t) not in first]
if missing:
    sys.exit(f"no test image with shape/theme {missing[:5]}...: use a larger test split")
for s in range(10):
    for t in range(10):
        print(s, t, first[(s, t)])
EOF
panels=()
for spec in "$@"; do
  label=${spec%%=*}; clf=${spec#*=}; d="$w/$label"; mkdir -p "$d"; right=0
  while read -r s t file; do
    pred=$("$INTERVENE" cam --classifier "$clf" --image "$data/test/$file" --out "$d/$s-$t.png" 2>&1 | sed -n 's/.*: target \([0-9]*\) .*/\1/p')
    [ "$pred" = "$s" ] && right=$((right + 1))
  done < "$w/cells.txt"
  echo "$label: top-1 on the 100 cells $right %"
  montage $(for s in $(seq 0 9); do for t in $(seq 0 9); do echo "$d/$s-$t.png"; done; done) \
    -tile 10x10 -filter point -geometry 64x64+1+1 -background white "$d.png"
  montage -label "$label ($right/100 right)" "$d.png" -geometry +0+0 -pointsize 18 -background white "$d-labelled.png"
  panels+=("$d-labelled.png")
done
montage "${panels[@]}" -tile "${#panels[@]}x1" -geometry +12+6 -background white "$out"
echo "wrote $out"
