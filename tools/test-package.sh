#!/usr/bin/env bash
# Tests camview's Debian package as a user's machine gets it: builds it (tools/package-deb.sh),
# checks its files, desktop entry (desktop-file-validate) and file types, then installs it with
# apt into a fresh Debian root (debootstrap: nothing of this machine's libraries), starts the
# installed viewer there under Xvfb with no arguments and with a BMP, takes a screenshot of
# each, checks the log file and the MIME database, and removes the package again.
#
#   sudo tools/test-package.sh            # screenshots in target/debian/test/
#
# Needs root (debootstrap, chroot, mounts), and (Debian): cargo-deb, dpkg-dev, debootstrap,
# desktop-file-utils, xvfb, imagemagick (import). The fresh root is cached in
# ~/.cache/camview-package-root.tar (delete it to start from scratch); SUITE (default
# bookworm) and MIRROR (default: this machine's apt source) choose what it is made of.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
suite=${SUITE:-bookworm}
mirror=${MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
mirror=${mirror:-http://deb.debian.org/debian}
results=$repo/target/debian/test
mkdir -p "$results"
fail() { echo "test-package.sh: FAILED: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

deb=$(tools/package-deb.sh)
pass "built $deb ($(du -h "$deb" | cut -f1))"

# The package's files and control fields.
files=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/camview ./usr/share/applications/camview.desktop \
    ./usr/share/icons/hicolor/scalable/apps/camview.svg \
    ./usr/share/icons/hicolor/256x256/apps/camview.png ./usr/share/doc/camview/copyright; do
    grep -qx "$f" <<<"$files" || fail "$f is not in the package"
done
pass "files: binary, desktop entry, icons, copyright"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libx11-6 libxkbcommon-x11-0 libwayland-client0 libegl1 libvulkan1; do
    grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
pass "Depends: $depends"

# The desktop entry as installed.
unpacked=$(mktemp -d)
work=$(mktemp -d)
dpkg-deb -x "$deb" "$unpacked"
desktop=$unpacked/usr/share/applications/camview.desktop
desktop-file-validate "$desktop" || fail "desktop-file-validate refused the desktop entry"
grep -qx 'Name=camview — class activation maps' "$desktop" || fail "the entry's name"
mime=$(sed -n 's/^MimeType=//p' "$desktop")
for type in image/bmp image/png image/tiff application/dicom; do
    grep -q "$type;" <<<"$mime" || fail "MimeType lacks $type"
done
pass "desktop entry valid; MimeType=$mime"
"$unpacked/usr/bin/camview" --version >/dev/null || fail "the packaged binary does not run"

# A fresh Debian root, then the package installed into it by apt (which fetches its
# dependencies: the test of what Depends declares).
root=$work/root
cache=${HOME}/.cache/camview-package-root-$suite.tar
mkdir -p "$root"
if [[ -f $cache ]]; then
    tar -C "$root" -xf "$cache"
else
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail "$work/debootstrap.log"; fail "debootstrap"; }
    mkdir -p "$(dirname "$cache")"
    tar -C "$root" -cf "$cache" .
fi
mounted=()
cleanup() {
    [[ -n "${xvfb_pid:-}" ]] && kill "$xvfb_pid" 2>/dev/null || true
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
    rm -rf "$work" "$unpacked"
}
trap cleanup EXIT
bind() { mkdir -p "$root$1"; mount --bind "$1" "$root$1"; mounted+=("$root$1"); }
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
bind /dev
bind /tmp/.X11-unix 2>/dev/null || { mkdir -p /tmp/.X11-unix; bind /tmp/.X11-unix; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
cp "$deb" "$root/tmp/camview.deb"
in_root apt-get update -qq >"$work/apt.log" 2>&1 || { tail "$work/apt.log"; fail "apt-get update"; }
# desktop-file-utils: what builds the MIME cache on a desktop (not a dependency of camview).
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    desktop-file-utils >>"$work/apt.log" 2>&1 || { tail "$work/apt.log"; fail "desktop-file-utils"; }
before=$(in_root dpkg-query -W -f='${Package}\n' | wc -l)
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    /tmp/camview.deb >>"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log"; fail "apt-get install ./camview.deb"; }
after=$(in_root dpkg-query -W -f='${Package}\n' | wc -l)
pass "apt installed camview and $((after - before - 1)) packages it depends on into a fresh $suite root"
[[ $(in_root sh -c 'command -v camview') == /usr/bin/camview ]] || fail "camview is not on the PATH"
for type in image/bmp image/png image/tiff application/dicom; do
    grep -q "^$type=.*camview.desktop" "$root/usr/share/applications/mimeinfo.cache" ||
        fail "the MIME cache does not offer camview for $type"
done
pass "the MIME cache offers camview for BMP, PNG, TIFF and DICOM"

# The installed viewer under Xvfb, with no arguments and with a BMP, as a menu starts it
# (no terminal: stdin, stdout and stderr are not one).
display=:71
Xvfb "$display" -screen 0 1440x900x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
sleep 2
cp tests/fixtures/images/rgb24.bmp "$root/tmp/scan.bmp"
log=$root/root/.local/state/camview/camview.log
shot() { # name, how many heat maps the log holds once it is drawn, then camview's arguments
    local name=$1 maps=$2
    shift 2
    in_root env DISPLAY=$display XDG_RUNTIME_DIR=/tmp CAMVIEW_WINDOW_SIZE=1440x900 \
        CAMVIEW_TIMING=1 camview "$@" </dev/null >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 120); do
        [[ $(grep -c "first heat map" "$log" 2>/dev/null) -ge $maps ]] && break
        sleep 1
    done
    sleep 2
    DISPLAY=$display import -window root "$results/$name.png"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pass "screenshot $results/$name.png"
}
shot no-arguments 1
shot bmp 2 /tmp/scan.bmp
grep -q "camview .* started: camview /tmp/scan.bmp" "$log" || fail "the log file lacks the start"
[[ $(grep -c "first heat map on screen" "$log") -eq 2 ]] || fail "the log file: $(cat "$log")"
pass "the log file ~/.local/state/camview/camview.log: $(wc -l <"$log") lines"
# A start that fails: no display (logged), and no graphics driver (WGPU_BACKEND names one this
# system has not): logged, and shown in a message box (zenity, which camview recommends).
in_root env DISPLAY=:99 XDG_RUNTIME_DIR=/tmp camview </dev/null >/dev/null 2>&1 && fail "camview started without a display"
grep -q "the viewer could not start: cannot open the viewer window" "$log" || fail "the failed start is not logged"
pass "no display: logged: $(grep 'could not start' "$log" | tail -1 | cut -c1-160)"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zenity \
    >>"$work/apt.log" 2>&1 || fail "zenity"
failed_before=$(grep -c 'could not start' "$log")
in_root env DISPLAY=$display XDG_RUNTIME_DIR=/tmp WGPU_BACKEND=metal camview </dev/null >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 30); do
    [[ $(grep -c 'could not start' "$log") -gt $failed_before ]] && break
    sleep 1
done
sleep 3
DISPLAY=$display import -window root "$results/no-driver.png"
kill "$pid" 2>/dev/null || true
pkill -f zenity 2>/dev/null || true
wait "$pid" 2>/dev/null || true
[[ $(grep -c 'could not start' "$log") -gt $failed_before ]] || fail "the failed start (no driver) is not logged"
pass "no graphics driver: logged, message box in $results/no-driver.png: $(grep 'could not start' "$log" | tail -1 | cut -c1-160)"

in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq camview >>"$work/apt.log" 2>&1 || fail "apt-get remove"
[[ ! -e $root/usr/bin/camview ]] || fail "camview is still installed"
! grep -q camview "$root/usr/share/applications/mimeinfo.cache" || fail "the MIME cache still names camview"
pass "removed: no binary, no MIME association left"
