#!/usr/bin/env bash
# Reproduce models/packages/blazeface_short_range/face_detection_short_range_f32.tflite and
# models/packages/blazeface_full_range/face_detection_full_range_f32.tflite from the PyPI
# mediapipe 0.10.21 wheel, and check every step by sha256.
#
#   models/tools/fetch_blazeface.sh            # downloads into $MODELS_CACHE (default: models-cache/)
#   MODELS_CACHE=/tmp/mc PYTHON=python3.11 models/tools/fetch_blazeface.sh
#
# Needs: network access to PyPI, Python 3 with pip, numpy and ai-edge-litert==2.3.0
# (rewrite_for_tract.py), and protobuf for the graph check (mediapipe_graph_values.py).
# Leaves in $MODELS_CACHE/mediapipe-0.10.21/: the original fp16 .tflite files (which
# make_test_vectors.py runs to compute expected outputs; the full-range one is the wheel's
# face_detection_full_range_sparse.tflite, the file MediaPipe's FaceDetectionFullRange graph
# names), the rewritten fp32 files, the wheel's LICENSE, and graphs-<package>.txt (the
# face-detection graph configs embedded in the wheel).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${MODELS_CACHE:-$ROOT/models-cache}
PY=${PYTHON:-python3}

WHEEL=mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl
WHEEL_SHA256=05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3
# package  wheel member (original)  its sha256  shipped tract file  MediaPipe graph type
MODELS=(
  "blazeface_short_range mediapipe/modules/face_detection/face_detection_short_range.tflite bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8 face_detection_short_range_f32.tflite FaceDetectionShortRange"
  "blazeface_full_range mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite 2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1 face_detection_full_range_f32.tflite FaceDetectionFullRange"
)

sha() { "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }
expect() { # file sha256 what
    local got; got=$(sha "$1")
    if [ "$got" != "$2" ]; then echo "FAIL: $3: sha256 of $1 is $got, expected $2" >&2; exit 1; fi
    echo "ok   $3: $got"
}

mkdir -p "$CACHE/wheels" "$CACHE/mediapipe-0.10.21"
if [ ! -f "$CACHE/wheels/$WHEEL" ]; then
    # --python-version/--platform pick the same wheel on any host; --no-deps: only the wheel
    "$PY" -m pip download mediapipe==0.10.21 --no-deps --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux_2_28_x86_64 -d "$CACHE/wheels"
fi
expect "$CACHE/wheels/$WHEEL" "$WHEEL_SHA256" "wheel $WHEEL"

OUT=$CACHE/mediapipe-0.10.21
"$PY" - "$CACHE/wheels/$WHEEL" "$OUT" <<'EOF'
import sys, zipfile, os
wheel, out = sys.argv[1:3]
with zipfile.ZipFile(wheel) as z:
    open(os.path.join(out, "LICENSE"), "wb").write(z.read("mediapipe-0.10.21.dist-info/LICENSE"))
EOF

for entry in "${MODELS[@]}"; do
    read -r NAME MEMBER ORIG_SHA256 SHIPPED GRAPH <<< "$entry"
    PKG=$ROOT/models/packages/$NAME
    ORIG=$OUT/$(basename "$MEMBER")
    "$PY" - "$CACHE/wheels/$WHEEL" "$ORIG" "$MEMBER" <<'EOF'
import sys, zipfile
wheel, out, member = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    open(out, "wb").write(z.read(member))
EOF
    expect "$ORIG" "$ORIG_SHA256" "$NAME: original model ($MEMBER)"

    "$PY" "$ROOT/models/tools/rewrite_for_tract.py" "$ORIG" "$OUT/$SHIPPED"
    # the top-level `sha256 = ` (the tract file), not those of the [files.*] tables
    WANT=$(sed -n '/^\[/q; s/^sha256 *= *"\([0-9a-f]*\)".*/\1/p' "$PKG/manifest.toml")
    expect "$OUT/$SHIPPED" "$WANT" "$NAME: fp32 rewrite vs manifest sha256"
    if cmp -s "$OUT/$SHIPPED" "$PKG/$SHIPPED"; then
        echo "ok   $NAME: rewrite is byte-identical to $PKG/$SHIPPED"
    else
        echo "FAIL: rewrite differs from $PKG/$SHIPPED" >&2; exit 1
    fi
    # the TFLite runtime's file is the original, unchanged
    TFL=$(sed -n '/^\[files.tflite\]/,/^\[/ s/^file *= *"\(.*\)".*/\1/p' "$PKG/manifest.toml")
    if [ -n "$TFL" ]; then
        expect "$PKG/$TFL" "$ORIG_SHA256" "$NAME: [files.tflite] $TFL is the original"
    fi

    # the [ssd] table against the graph configs compiled into the wheel (needs protobuf)
    if "$PY" "$ROOT/models/tools/mediapipe_graph_values.py" "$CACHE/wheels/$WHEEL" --graph "$GRAPH" \
            --manifest "$PKG/manifest.toml" > "$OUT/graphs-$NAME.txt"; then
        echo "ok   $NAME: manifest [ssd] agrees with the wheel's $GRAPH graph ($OUT/graphs-$NAME.txt)"
    else
        tail -5 "$OUT/graphs-$NAME.txt" >&2; echo "FAIL: graph check (see $OUT/graphs-$NAME.txt)" >&2; exit 1
    fi
done
