#!/bin/sh
# Fetch the run-time-loaded inference libraries the tests and benchmarks use, from package
# registries only, check their hashes and unpack them into a cache folder:
#
#   $RUNTIMES_CACHE/tflite/libtensorflowlite_c.so         TFLite C API 2.6 + XNNPACK (x86_64),
#       from the crates.io package tflitec 0.4.0 (build-res/docsrs_res.zip)
#   $RUNTIMES_CACHE/onnxruntime/libonnxruntime.so.1.32.0  ONNX Runtime 1.32.0 (x86_64),
#       from the PyPI wheel onnxruntime 1.32.0 (onnxruntime/capi/)
#
# RUNTIMES_CACHE defaults to runtimes-cache/ at the repository root (ignored by git).
# The daemon never downloads anything; on a board these libraries come from the board's
# vendor (see docs/models.md, "Engines").
set -eu

here=$(cd "$(dirname "$0")/../.." && pwd)
cache=${RUNTIMES_CACHE:-$here/runtimes-cache}
mkdir -p "$cache/tflite" "$cache/onnxruntime"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check() { # file sha256
    got=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$got" != "$2" ]; then
        echo "fetch_runtimes: $1: sha256 $got, expected $2" >&2
        exit 1
    fi
}

arch=$(uname -m)
if [ "$arch" != x86_64 ]; then
    echo "fetch_runtimes: the registry libraries here are x86_64 builds; this machine is $arch" >&2
    exit 1
fi

TFLITEC_CRATE_SHA=0fe0aa057fe93932b1d65c151cf8f613c0e2c23eb16d23957f51afca65f49fff
TFLITE_SO_SHA=003736565e81f4de1eaa9e4551791bc3938567338a3f752cd993217050f8fd81
ORT_WHEEL=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d

if [ -f "$cache/tflite/libtensorflowlite_c.so" ] &&
    [ "$(sha256sum "$cache/tflite/libtensorflowlite_c.so" | cut -d' ' -f1)" = "$TFLITE_SO_SHA" ]; then
    echo "fetch_runtimes: $cache/tflite/libtensorflowlite_c.so present"
else
    # cargo is the crates.io client: a throwaway project depending on tflitec =0.4.0, then
    # `cargo fetch` puts the .crate in cargo's own cache (nothing is built).
    mkdir -p "$work/p/src"
    cat >"$work/p/Cargo.toml" <<'EOF'
[package]
name = "fetch-tflitec"
version = "0.0.0"
edition = "2021"
[dependencies]
tflitec = "=0.4.0"
EOF
    echo 'fn main() {}' >"$work/p/src/main.rs"
    (cd "$work/p" && cargo fetch --quiet)
    crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/tflitec-0.4.0.crate | head -n1)
    check "$crate" "$TFLITEC_CRATE_SHA"
    tar -xzf "$crate" -C "$work" tflitec-0.4.0/build-res/docsrs_res.zip
    python3 - "$work/tflitec-0.4.0/build-res/docsrs_res.zip" "$cache/tflite" <<'EOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("libtensorflowlite_c.so", sys.argv[2])
EOF
    check "$cache/tflite/libtensorflowlite_c.so" "$TFLITE_SO_SHA"
    echo "fetch_runtimes: $cache/tflite/libtensorflowlite_c.so (TensorFlow Lite 2.6, tflitec 0.4.0)"
fi

if [ -f "$cache/onnxruntime/libonnxruntime.so.1.32.0" ]; then
    echo "fetch_runtimes: $cache/onnxruntime/libonnxruntime.so.1.32.0 present"
else
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_28_x86_64 \
        -d "$work/whl" onnxruntime==1.32.0
    check "$work/whl/$ORT_WHEEL" "$ORT_WHEEL_SHA"
    python3 - "$work/whl/$ORT_WHEEL" "$cache/onnxruntime" <<'EOF'
import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for m in ("libonnxruntime.so.1.32.0", "libonnxruntime_providers_shared.so"):
    with z.open("onnxruntime/capi/" + m) as src, open(os.path.join(sys.argv[2], m), "wb") as dst:
        dst.write(src.read())
EOF
    echo "fetch_runtimes: $cache/onnxruntime/libonnxruntime.so.1.32.0 (PyPI onnxruntime 1.32.0)"
fi
