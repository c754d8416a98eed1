#!/usr/bin/env bash
# Every map method at every layer: pytorch-grad-cam against camview on this machine, same
# model, same input, same threads, alternating (so a busy neighbour hurts both alike), then a
# markdown table of the medians and their ratios. Not part of CI: needs a Python with torch,
# torchvision and pytorch-grad-cam (`pip install grad-cam==1.5.7`; VENV, default /work/venv).
#
#   tools/pytorch/compare_methods.sh [CHECKPOINT] [IMAGE]
#
# Without a checkpoint, a DenseNet-121 with random weights (and random batch-norm statistics)
# and CLASSES outputs (default 2) is written to a temporary folder; without an image,
# tests/fixtures/images/photo.jpg resized to SIZE x SIZE (default 224). camview reads the image
# (its default preprocessing: ImageNet normalisation, no resize at the input size), Python the
# same image as torchvision's normalised tensor (.npy).
# Each round runs pytorch-grad-cam (tools/pytorch/time_gradcam.py), then camview
# (examples/time_methods.rs), each in a fresh process: load, 2 plain forwards, then per method
# and layer one warm-up call and REPEATS timed calls, each the whole per-image work for one
# class (CLASS, default 0): forward pass, backward pass if the method has one, the map.
# Environment:
#   THREADS=n      both run n threads (torch.set_num_threads, RAYON_NUM_THREADS); by default
#                  each picks its own
#   ROUNDS=3       alternating rounds; REPEATS=3 timed calls per method and layer and round
#   METHODS=gradcam,gradcam++,xgradcam,hirescam,layercam,eigencam (METHODS= with SCORECAM=1:
#                  Score-CAM alone)
#   LAYERS=denseblock1,transition1,denseblock2,transition2,denseblock3,transition3,denseblock4,norm5
#   SCORECAM=1     also Score-CAM with every channel (pytorch-grad-cam's definition; ~1.5 min
#                  per call at norm5 for PyTorch) at SCORECAM_LAYERS (default norm5,transition1),
#                  SCORECAM_REPEATS (default 1) calls per round, no warm-up call
#   RAW=dir        keep every timing there (pytorch.txt, camview.txt: `map_ms METHOD LAYER MS`)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-/work/venv}
PYTHON="$VENV/bin/python"
CHECKPOINT=${1:-}
IMAGE=${2:-}
ROUNDS=${ROUNDS:-3}
REPEATS=${REPEATS:-3}
SIZE=${SIZE:-224}
CLASSES=${CLASSES:-2}
CLASS=${CLASS:-0}
METHODS=${METHODS-gradcam,gradcam++,xgradcam,hirescam,layercam,eigencam}
LAYERS=${LAYERS-denseblock1,transition1,denseblock2,transition2,denseblock3,transition3,denseblock4,norm5}
SCORECAM_LAYERS=${SCORECAM_LAYERS:-norm5,transition1}
[[ "${SCORECAM:-}" == 1 ]] || SCORECAM_LAYERS=""
if [[ -n "${THREADS:-}" ]]; then
    export THREADS RAYON_NUM_THREADS=$THREADS
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ -z "$CHECKPOINT" ]]; then
    CHECKPOINT="$work/densenet121.pth"
    "$PYTHON" tools/pytorch/make_densenet121.py "$CHECKPOINT" "$CLASSES"
fi
if [[ -z "$IMAGE" ]]; then
    IMAGE="$work/input.png"
    "$PYTHON" -c 'import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").resize((int(sys.argv[3]),) * 2, Image.BILINEAR).save(sys.argv[2])' \
        tests/fixtures/images/photo.jpg "$IMAGE" "$SIZE"
fi
# the same image as the network's input tensor, normalised as camview's default preprocessing
# does (ToTensor + ImageNet mean and std; a 224 x 224 image is not resized)
INPUT="$work/input.npy"
"$PYTHON" -c 'import sys, numpy
from PIL import Image
from torchvision import transforms as T
x = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(Image.open(sys.argv[1]).convert("RGB"))
numpy.save(sys.argv[2], x[None].numpy())' "$IMAGE" "$INPUT"
cargo build --release --quiet --example time_methods
CAMVIEW=target/release/examples/time_methods
options=(--methods "$METHODS" --layers "$LAYERS"
    --scorecam "$SCORECAM_LAYERS" --scorecam-repeats "${SCORECAM_REPEATS:-1}" --class "$CLASS")

machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
torch_info=$("$PYTHON" -c 'import os, torch, importlib.metadata as md; os.environ.get("THREADS") and torch.set_num_threads(int(os.environ["THREADS"])); print("torch", torch.__version__, "+ grad-cam", md.version("grad-cam"), "threads", torch.get_num_threads())')
load_before=$(uptime | sed 's/.*load average: //')
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for round in $(seq "$ROUNDS"); do
    "$PYTHON" tools/pytorch/time_gradcam.py "$CHECKPOINT" "$INPUT" "$REPEATS" "${options[@]}" \
        | grep '^map_ms' >>"$work/pytorch"
    "$CAMVIEW" "$CHECKPOINT" "$IMAGE" "$REPEATS" "${options[@]}" | grep '^map_ms' >>"$work/camview"
    echo "round $round/$ROUNDS done ($(uptime | sed 's/.*load average: //'))" >&2
done
load_after=$(uptime | sed 's/.*load average: //')
if [[ -n "${RAW:-}" ]]; then
    mkdir -p "$RAW" && cp "$work/pytorch" "$RAW/pytorch.txt" && cp "$work/camview" "$RAW/camview.txt"
fi

# The median (and the fastest) of each method and layer's timings (lines
# `map_ms METHOD LAYER MS`), in the order they ran: `METHOD LAYER MEDIAN FASTEST CALLS`.
medians() {
    awk '{ key = $2 " " $3; if (!(key in n)) order[++k] = key; t[key, ++n[key]] = $4 }
        END { for (i = 1; i <= k; i++) {
                key = order[i]; m = n[key]
                for (a = 1; a <= m; a++) v[a] = t[key, a]
                for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++)
                    if (v[b] < v[a]) { x = v[a]; v[a] = v[b]; v[b] = x }
                med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
                print key, med, v[1], m } }' "$1"
}
# A markdown table of column COL (3: the medians, 4: the fastest calls) of both sides.
table() {
    echo "| method | layer | pytorch-grad-cam | camview | camview / pytorch-grad-cam |"
    echo "| --- | --- | --- | --- | --- |"
    awk -v col="$1" 'NR == FNR { cv[$1 " " $2] = $col; next }
        { key = $1 " " $2
          if (key in cv) printf "| %s | %s | %s | %s | %.2f |\n", $1, $2, pretty($col), pretty(cv[key]), cv[key] / $col
          else printf "| %s | %s | %s | - | - |\n", $1, $2, pretty($col) }
        function pretty(ms) { return ms >= 1000 ? sprintf("%.2f s", ms / 1000) : sprintf("%.1f ms", ms) }' \
        "$work/camview.med" "$work/pytorch.med"
}
medians "$work/pytorch" >"$work/pytorch.med"
medians "$work/camview" >"$work/camview.med"

echo "Maps of one class, DenseNet-121 ($CLASSES classes), ${SIZE}x${SIZE} input, batch 1; median of"
echo "$ROUNDS rounds x $REPEATS calls (Score-CAM: x ${SCORECAM_REPEATS:-1}), each call the whole per-image"
echo "work (forward pass, backward pass if any, the map)."
echo
echo "- machine: $machine"
echo "- $torch_info; camview threads: ${RAYON_NUM_THREADS:-default (cores)}"
echo "- started $started; load average before: $load_before; after: $load_after"
echo
table 3
echo
echo "(below 1: camview is faster)"
echo
echo "The fastest call of each (less sensitive to a busy neighbour than the median):"
echo
table 4
