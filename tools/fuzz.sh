#!/usr/bin/env bash
# Runs camview's fuzz targets (fuzz/, cargo fuzz on the nightly toolchain) for SECONDS each and
# prints one row per target: executions, executions per second, edges covered, corpus size,
# and the crashes, timeouts and out-of-memory cases found (their inputs are in
# fuzz/artifacts/<target>/; each one found becomes a regression test under tests/).
#
#   tools/fuzz.sh SECONDS [TARGET...]     (all targets when none is named)
#
# Each corpus (fuzz/corpus/<target>, not committed) is seeded from the committed fixtures and
# fuzz/seeds/<target>, and grows from run to run. Built without a sanitizer (`-s none`:
# camview forbids unsafe code, so AddressSanitizer would watch only dependencies' C; without
# it a run is about twice as fast) and with debug assertions (integer overflow panics).
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: tools/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
flags=(-s none --debug-assertions)
(cd fuzz && cargo +nightly fuzz build "${flags[@]}" >&2)

# Seeds: files of the fixtures, the formats each target reads (by their first bytes where
# the extension does not tell), up to 256 KiB each.
seed() { # target, then find's arguments
    local target=$1 dir=fuzz/corpus/$1
    shift
    mkdir -p "$dir"
    find tests/fixtures "$@" -type f -size -256k -print0 | while IFS= read -r -d '' f; do
        case $target in
            checkpoint_zip) [[ $(head -c 2 "$f") == PK ]] || continue ;;
            checkpoint_legacy) [[ $(head -c 1 "$f" | od -An -tx1 | tr -d ' ') == 80 ]] || continue ;;
        esac
        cp "$f" "$dir/seed-$(sha1sum "$f" | cut -c1-16)"
    done
    if [[ -d fuzz/seeds/$target ]]; then
        cp fuzz/seeds/"$target"/* "$dir"/
    fi
}
checkpoints=( \( -name '*.pth' -o -name '*.pt' -o -name '*.tar' -o -name '*.bin' -o -name '*.safetensors' \) )
for target in "${targets[@]}"; do
    case $target in
        checkpoint_zip | checkpoint_legacy) seed "$target" "${checkpoints[@]}" ;;
        safetensors) seed "$target" -name '*.safetensors' ;;
        image) seed "$target" -path '*/images/*' ;;
        dicom) seed "$target" \( -name '*.dcm' -o -path '*/dicom/damaged/*' -o -name 'ct_implicit_bare' \) ;;
        model_sidecar) seed "$target" -path '*/models/*' -name '*.json' ;;
        *) seed "$target" -name 'no fixture is a seed of this target' ;;
    esac
done

printf '| target | seconds | executions | exec/s | edges | corpus | crashes | timeouts | OOM |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for target in "${targets[@]}"; do
    log=fuzz/artifacts/$target.log
    mkdir -p "fuzz/artifacts/$target"
    # -rss_limit_mb: a read held to its bound (fuzz/src/lib.rs) stays far below 2 GB.
    # -timeout: a read of a few KB that takes 10 s is a hang.
    (cd fuzz && cargo +nightly fuzz run "${flags[@]}" "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -artifact_prefix="artifacts/$target/") >"$log" 2>&1 || true
    count() { find "fuzz/artifacts/$target" -name "$1-*" | wc -l; }
    # fork mode's status lines: "#N: cov: C ft: F corp: K exec/s: E oom/timeout/crash: a/b/c time: T"
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
    execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$last")
    edges=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    rate=$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$last")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" \
        "${execs:-?}" "${rate:-?}" "${edges:-?}" "$corpus" \
        "$(count crash)" "$(count timeout)" "$(count oom)"
done
