#!/usr/bin/env bash
# How `batch --shard` scales on this machine: the same batch as 1, 2, 4 ... concurrent shards
# (each a process using every core, as a user starts them), merged, timed end to end, and
# checked against the single run's predictions.csv. Prints a Markdown table.
#
#   tools/shard-scaling.sh MODEL [COUNT [SHARDS...]]
#
# MODEL: a checkpoint (its labels file, if any, as LABELS=FILE); COUNT synthetic scans
# (`camview demo-data`, default 48); SHARDS default 1 2 4. Environment: CAMVIEW (the binary;
# default: built with `cargo build --release`), METHOD (default gradcam).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tools/shard-scaling.sh MODEL [COUNT [SHARDS...]]}
count=${2:-48}
shift $(($# < 2 ? $# : 2))
shards=("$@")
((${#shards[@]})) || shards=(1 2 4)
method=${METHOD:-gradcam}
if [[ -z "${CAMVIEW:-}" ]]; then
    cargo build --release --quiet
    CAMVIEW=target/release/camview
fi
labels=()
[[ -n "${LABELS:-}" ]] && labels=(--labels "$LABELS")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CAMVIEW" demo-data --out "$work/images" --count "$count" --seed 7 >/dev/null 2>&1
now() { date +%s.%N; }

printf '| shards | processes at once | seconds | images/s | speed-up | merged = one run |\n'
printf '|---|---|---|---|---|---|\n'
base=""
reference=""
for n in "${shards[@]}"; do
    out=$work/out-$n
    mkdir -p "$out"
    start=$(now)
    pids=()
    for ((i = 1; i <= n; i++)); do
        "$CAMVIEW" batch --model "$model" "${labels[@]}" --method "$method" --out "$out" \
            --shard "$i/$n" "$work/images" 2>"$out/.log-$i" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    "$CAMVIEW" merge "$out" 2>>"$out/.log-merge"
    seconds=$(echo "$(now) - $start" | bc -l)
    rate=$(echo "$count / $seconds" | bc -l)
    [[ -n "$base" ]] || base=$rate
    merged=$(sed "s#$out#OUT#g" "$out/predictions.csv")
    [[ -n "$reference" ]] || reference=$merged
    same=$([[ "$merged" == "$reference" ]] && echo yes || echo NO)
    printf '| %d | %d | %.1f | %.2f | %.2f | %s |\n' "$n" "$n" "$seconds" "$rate" \
        "$(echo "$rate / $base" | bc -l)" "$same"
done
