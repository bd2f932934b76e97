#!/usr/bin/env bash
# Cross-build emotiond for the boards on a Debian 12 (bookworm) x86_64 machine, with what
# Debian provides: its Rust 1.85 standard library for arm64/armhf (rustc-web, multiarch) and
# its cross gcc. `rustup target add` is not used.
#
#   cross/build.sh aarch64        -> target/aarch64-unknown-linux-gnu/release/emotiond        (Pi 3/4/5 64-bit, Jetson)
#   cross/build.sh armv7          -> target/armv7-unknown-linux-gnueabihf/release/emotiond    (Pi 2/3/4 32-bit)
#   cross/build.sh aarch64 --zig  -> the same, linked with cargo-zigbuild against glibc 2.31
#                                    (JetPack 5 / Ubuntu 20.04 boards; GLIBC=2.xx to choose)
#
# The board builds include Raspberry Pi GPIO support (feature rpi; off unless
# indicators.backend = "rpi"). Extra arguments go to cargo. Installs what it needs with apt-get (and,
# for --zig, pip) when run as root or with sudo; NO_INSTALL=1 skips that. The binaries of
# Debian's cross gcc need glibc >= 2.34 on the board (Debian 12, Raspberry Pi OS bookworm,
# Ubuntu 22.04 / JetPack 6); older boards need --zig.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: cross/build.sh aarch64|armv7 [--zig] [cargo args...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
arch=$1; shift
case $arch in
    aarch64|arm64)
        triple=aarch64-unknown-linux-gnu; deb=arm64; gnu=aarch64-linux-gnu; qemu=qemu-aarch64-static ;;
    armv7|armhf)
        triple=armv7-unknown-linux-gnueabihf; deb=armhf; gnu=arm-linux-gnueabihf; qemu=qemu-arm-static ;;
    *) usage ;;
esac
zig=0
if [ "${1:-}" = --zig ]; then zig=1; shift; fi

# Debian's Rust 1.85, the compiler the workspace's rust-version names (bookworm also carries
# newer rustc-web updates; the board builds stay on 1.85 until rust-version moves).
RUSTC_185=${RUSTC_185:-1.85.0+dfsg3-1~deb12u3}
log() { echo "== cross/build.sh: $*" >&2; }

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if [ "${NO_INSTALL:-0}" != 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! dpkg --print-foreign-architectures | grep -qx "$deb"; then
        log "adding dpkg architecture $deb"
        $SUDO dpkg --add-architecture "$deb"
        $SUDO apt-get update || true   # a mirror index may be mid-sync; the install below still works
    fi
    pkgs=(rustc-web="$RUSTC_185" libstd-rust-web-dev="$RUSTC_185" libstd-rust-web-1.85="$RUSTC_185"
          libstd-rust-web-dev:"$deb"="$RUSTC_185" libstd-rust-web-1.85:"$deb"="$RUSTC_185"
          # Multi-Arch: same packages must have one version on every architecture
          liblzma5 liblzma5:"$deb"
          gcc-"$gnu" libc6-dev-"$deb"-cross linux-libc-dev-"$deb"-cross qemu-user-static
          libasound2-dev libasound2-dev:"$deb" libv4l-dev:"$deb"
          libclang-dev pkg-config)
    missing=()
    for p in "${pkgs[@]}"; do
        name=${p%%=*}; want=${p#*=}; [ "$want" = "$p" ] && want=
        have=$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$name" 2>/dev/null || true)
        case $have in
            ii*) [ -z "$want" ] || [ "${have:3}" = "$want" ] || missing+=("$p") ;;
            *) missing+=("$p") ;;
        esac
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        $SUDO apt-get install -y --no-install-recommends "${missing[@]}" \
            || { $SUDO apt-get update || true; $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; }
    fi
fi

RUSTC=${RUSTC:-/usr/bin/rustc}
[ -x "$RUSTC" ] || { echo "cross/build.sh: no Debian rustc at $RUSTC (install rustc-web=$RUSTC_185)" >&2; exit 1; }
"$RUSTC" --print target-libdir --target "$triple" >/dev/null 2>&1 &&
    [ -d "$("$RUSTC" --print target-libdir --target "$triple")" ] ||
    { echo "cross/build.sh: $RUSTC has no standard library for $triple (install libstd-rust-web-dev:$deb)" >&2; exit 1; }
export RUSTC

up=$(echo "$triple" | tr 'a-z-' 'A-Z_')
under=$(echo "$triple" | tr '-' '_')
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/$gnu/pkgconfig:/usr/share/pkgconfig
export "CC_$under=$gnu-gcc" "AR_$under=$gnu-ar"
export "CARGO_TARGET_${up}_LINKER=$gnu-gcc" "CARGO_TARGET_${up}_RUNNER=$qemu"
# bindgen (v4l2-sys-mit) parses the kernel's V4L2 headers of the target, not the host's.
export "BINDGEN_EXTRA_CLANG_ARGS_$under=--sysroot=/usr/$gnu -I/usr/$gnu/include"

if [ $zig = 0 ]; then
    log "building emotiond for $triple with $("$RUSTC" --version)"
    cargo build --release --locked --target "$triple" -p emotiond --features rpi "$@"
    out=target/$triple/release/emotiond
else
    GLIBC=${GLIBC:-2.31}
    if ! command -v cargo-zigbuild >/dev/null; then
        [ "${NO_INSTALL:-0}" != 1 ] || { echo "cross/build.sh: --zig needs cargo-zigbuild (pip install ziglang==0.17.1 cargo-zigbuild==0.24.1)" >&2; exit 1; }
        log "installing ziglang and cargo-zigbuild from PyPI"
        python3 -m pip install --quiet ziglang==0.17.1 cargo-zigbuild==0.24.1
    fi
    # zig links against its own glibc stubs of the version named; libasound comes from the
    # multiarch -dev package (found through pkg-config above).
    unset "CARGO_TARGET_${up}_LINKER" "CC_$under" "AR_$under"
    log "building emotiond for $triple against glibc $GLIBC with cargo-zigbuild"
    cargo zigbuild --release --locked --target "$triple.$GLIBC" -p emotiond --features rpi "$@"
    out=target/$triple/release/emotiond
fi
[ -x "$out" ] || { echo "cross/build.sh: the build did not produce $out" >&2; exit 1; }
log "built $out ($(du -h "$out" | cut -f1)); run it here with: $qemu $out --version"
