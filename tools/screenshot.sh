#!/usr/bin/env bash
# Starts the real viewer under a virtual X server, waits for the first heat map, takes a
# screenshot of the screen and writes it to docs/screenshot.png (or $OUT).
#
#   tools/screenshot.sh                      # the demo model on a demo image
#   tools/screenshot.sh --model m.pth a.png  # anything `camview` accepts
#
# Needs (Debian): xvfb xauth libxkbcommon-x11-0 libegl1 libgl1-mesa-dri imagemagick.
# Environment: CAMVIEW (the binary; default: built with `cargo build --release`), OUT, SIZE
# (the screen, default 1440x900), DISPLAY_NUMBER (default 57), SETTLE (seconds to wait after the
# first heat map, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/screenshot.png}
SIZE=${SIZE:-1440x900}
DISPLAY_NUMBER=${DISPLAY_NUMBER:-57}
SETTLE=${SETTLE:-1}
if [[ -z "${CAMVIEW:-}" ]]; then
    cargo build --release --quiet
    CAMVIEW=target/release/camview
fi
for tool in Xvfb import; do
    command -v "$tool" >/dev/null || { echo "screenshot.sh: $tool is missing (apt-get install xvfb imagemagick)" >&2; exit 1; }
done

work=$(mktemp -d)
xvfb_pid=""
app_pid=""
cleanup() {
    [[ -n "$app_pid" ]] && kill "$app_pid" 2>/dev/null || true
    [[ -n "$xvfb_pid" ]] && kill "$xvfb_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

Xvfb ":$DISPLAY_NUMBER" -screen 0 "${SIZE}x24" -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 50); do
    [[ -e "/tmp/.X11-unix/X$DISPLAY_NUMBER" ]] && break
    sleep 0.1
done

# A fresh settings folder, so the screenshot never depends on a previous run.
width=${SIZE%x*}
height=${SIZE#*x}
env -u WAYLAND_DISPLAY DISPLAY=":$DISPLAY_NUMBER" XDG_DATA_HOME="$work/data" HOME="$work" \
    CAMVIEW_TIMING=1 CAMVIEW_WINDOW_SIZE="${width}x${height}" \
    "$CAMVIEW" "$@" >"$work/app.log" 2>&1 &
app_pid=$!

for _ in $(seq 600); do
    grep -q "first heat map" "$work/app.log" && break
    if ! kill -0 "$app_pid" 2>/dev/null; then
        echo "screenshot.sh: camview exited:" >&2
        cat "$work/app.log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! grep -q "first heat map" "$work/app.log"; then
    echo "screenshot.sh: no heat map after 60 s; camview said:" >&2
    cat "$work/app.log" >&2
fi
sleep "$SETTLE"
mkdir -p "$(dirname "$OUT")"
DISPLAY=":$DISPLAY_NUMBER" import -window root "$OUT"
grep "first heat map" "$work/app.log" || true
echo "wrote $OUT"
