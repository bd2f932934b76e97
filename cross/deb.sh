#!/usr/bin/env bash
# Debian package of emotiond, built with cargo-deb from the metadata in daemon/Cargo.toml:
#
#   cross/deb.sh                 -> target/debian/emotiond_<version>-1_amd64.deb   (this machine)
#   cross/deb.sh aarch64         -> target/debian/emotiond_<version>-1_arm64.deb   (cross/build.sh aarch64 first)
#   cross/deb.sh armv7           -> target/debian/emotiond_<version>-1_armhf.deb
#
# NO_BUILD=1 packages the binary already built (target/[<triple>/]release/emotiond).
# Installs cargo-deb (crates.io, pinned) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
arch=${1:-native}
log() { echo "== cross/deb.sh: $*" >&2; }

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    log "installing cargo-deb $CARGO_DEB_VERSION"
    # no xz/lzma C library needed: cargo-deb compresses with gzip/zstd in Rust then
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --no-default-features
fi

case $arch in
    native|x86_64)
        [ "${NO_BUILD:-0}" = 1 ] || cargo build --release --locked -p emotiond
        cargo deb -p emotiond --no-build --output target/debian/ ;;
    aarch64|arm64|armv7|armhf)
        case $arch in
            aarch64|arm64) triple=aarch64-unknown-linux-gnu ;;
            *) triple=armv7-unknown-linux-gnueabihf ;;
        esac
        [ "${NO_BUILD:-0}" = 1 ] || cross/build.sh "$arch"
        # dpkg-shlibdeps reads the target's libraries from the multiarch packages that
        # cross/build.sh installed; the cross binutils strip the binary.
        cargo deb -p emotiond --no-build --target "$triple" --output target/debian/ ;;
    *) echo "usage: cross/deb.sh [x86_64|aarch64|armv7]" >&2; exit 2 ;;
esac
ls -1 target/debian/*.deb
