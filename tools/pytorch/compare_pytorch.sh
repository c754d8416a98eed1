#!/usr/bin/env bash
# DenseNet forward time: PyTorch eager, PyTorch channels_last and camview on this machine,
# alternating (so a busy neighbour hurts all three alike), then the medians and the ratios.
# Not part of CI: needs a Python with torch + torchvision (VENV, default /work/venv).
#
#   tools/pytorch/compare_pytorch.sh [CHECKPOINT] [ROUNDS] [REPEATS]
#
# Without a checkpoint, a DenseNet-121 with random weights (and random batch-norm statistics)
# is written to a temporary folder. Each round runs every engine in a fresh process: load,
# 3 warm-up forwards, REPEATS timed forwards of a 1x3x224x224 input (SIZE to change it).
# THREADS=n runs both with n threads (torch.set_num_threads, RAYON_NUM_THREADS); by default
# each picks its own (both use the 2 cores here).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-/work/venv}
PYTHON="$VENV/bin/python"
CHECKPOINT=${1:-}
ROUNDS=${2:-5}
REPEATS=${3:-10}
SIZE=${SIZE:-224}
if [[ -n "${THREADS:-}" ]]; then
    export THREADS RAYON_NUM_THREADS=$THREADS
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ -z "$CHECKPOINT" ]]; then
    CHECKPOINT="$work/densenet121.pth"
    "$PYTHON" tools/pytorch/make_densenet121.py "$CHECKPOINT"
fi
cargo build --release --quiet --example time_forward
CAMVIEW=target/release/examples/time_forward

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "torch: $("$PYTHON" -c 'import os, torch; os.environ.get("THREADS") and torch.set_num_threads(int(os.environ["THREADS"])); print(torch.__version__, "threads", torch.get_num_threads())'), camview threads: ${RAYON_NUM_THREADS:-default (cores)}"
echo "load before: $(uptime | sed 's/.*load average/load average/')"
for round in $(seq "$ROUNDS"); do
    "$PYTHON" tools/pytorch/time_pytorch.py "$CHECKPOINT" "$SIZE" "$REPEATS" eager \
        | grep forward_ms >>"$work/eager"
    "$PYTHON" tools/pytorch/time_pytorch.py "$CHECKPOINT" "$SIZE" "$REPEATS" channels_last \
        | grep forward_ms >>"$work/channels_last"
    "$CAMVIEW" "$CHECKPOINT" "$SIZE" "$REPEATS" >"$work/camview.out"
    grep forward_ms "$work/camview.out" >>"$work/camview"
    grep load_ms "$work/camview.out" >>"$work/camview_load"
    echo "round $round/$ROUNDS done ($(uptime | sed 's/.*load average: //'))"
done
echo "load after: $(uptime | sed 's/.*load average/load average/')"

median() { awk '{print $2}' "$1" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
eager=$(median "$work/eager")
channels_last=$(median "$work/channels_last")
camview=$(median "$work/camview")
load=$(median "$work/camview_load")
n=$(wc -l <"$work/camview")
printf 'DenseNet-121, %sx%s, batch 1, median of %s forwards each\n' "$SIZE" "$SIZE" "$n"
printf '  PyTorch eager          %8.1f ms\n' "$eager"
printf '  PyTorch channels_last  %8.1f ms\n' "$channels_last"
printf '  camview                %8.1f ms   (checkpoint load %.0f ms)\n' "$camview" "$load"
awk -v e="$eager" -v c="$channels_last" -v m="$camview" 'BEGIN {
    printf "  camview / eager = %.2f, camview / channels_last = %.2f (below 1: camview is faster)\n", m / e, m / c }'
