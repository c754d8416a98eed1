#!/usr/bin/env bash
# Builds camview's Debian package: target/debian/camview_<version>_amd64.deb (the viewer and
# the commands on the PATH, the desktop entry, the icon, the file types it opens; what goes in
# is [package.metadata.deb] in Cargo.toml). The binary is stripped (35 MB instead of 240): its
# debug information goes to camview-dbgsym_<version>_amd64.ddeb beside it, for backtraces with
# file and line (a panic's own message names its place without it).
#
#   tools/package-deb.sh            # prints the package's path
#
# Needs cargo-deb (once: `cargo install cargo-deb --locked`) and dpkg-dev (dpkg-shlibdeps).
# Nothing is downloaded while packaging beyond what `cargo build --locked` fetches for the
# build itself: cargo-deb only builds, strips and archives.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deb >/dev/null; then
    echo "package-deb.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
    exit 1
fi
command -v dpkg-shlibdeps >/dev/null || {
    echo "package-deb.sh: dpkg-shlibdeps is missing: apt-get install dpkg-dev" >&2
    exit 1
}
cargo deb --locked --quiet --dbgsym --compress-debug-symbols=zlib >&2
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
deb=target/debian/camview_${version}_$(dpkg --print-architecture).deb
[[ -f $deb ]] || { echo "package-deb.sh: $deb was not written" >&2; exit 1; }
echo "$deb"
