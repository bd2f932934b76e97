#!/usr/bin/env bash
# TFLite + XNNPACK: the Rust engine against Python's interpreter on the same model files, in one
# run, both pinned to the same core. Needs models/tools/fetch_runtimes.sh and
# `python3 -m pip install "ai-edge-litert==2.3.0" numpy`.
#
# QUICK=1 (CI: so that the script cannot rot): a few runs on each side; the Rust side is the
# bench binary that `cargo test --workspace` builds (no release build, nothing rebuilt), run in
# criterion's benchmark mode with --quick; installs the Python packages into target/pyref when
# they are missing. Its figures mean nothing; it must run and find every model.
set -euo pipefail
cd "$(dirname "$0")/.."
core=${CORE:-0}
mkdir -p target
py_args=""; cargo=(cargo bench -p emotiond --bench pipeline --); crit_args=""
if [ "${QUICK:-0}" = 1 ]; then
    py_args="--runs 5 --warmup 1"; crit_args="--quick --warm-up-time 0.1 --measurement-time 0.2"
    # the workspace's test build (same features, same profile), told to benchmark
    cargo=(cargo test --workspace --locked --bench pipeline -- --bench)
    if ! python3 -c 'import ai_edge_litert, numpy' 2>/dev/null; then
        python3 -m pip install --quiet --target target/pyref "ai-edge-litert==2.3.0" numpy
        export PYTHONPATH="$PWD/target/pyref${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi
taskset -c "$core" python3 benches/tflite_reference.py $py_args >target/tflite_reference.jsonl
taskset -c "$core" "${cargo[@]}" $crit_args 'infer_.*/tflite\+xnnpack' \
    | tee target/tflite_rust.txt
python3 - <<'PY'
import json, re
ref = {j["model"]: j["median_ms"] for j in map(json.loads, open("target/tflite_reference.jsonl"))}
txt = open("target/tflite_rust.txt").read()
rows = 0
print("| model | Python (ai-edge-litert) + XNNPACK | emotiond tflite+xnnpack | difference |")
print("|---|---|---|---|")
for m in re.finditer(r"infer_(\w+)/tflite\+xnnpack\s+time:\s+\[\S+ \S+ (\S+) (\S+)", txt):
    name, v, unit = m.group(1), float(m.group(2)), m.group(3)
    ms = v / 1000 if unit == "µs" else v
    r = ref.get(name)
    if r:
        print(f"| {name} | {r:.3f} ms | {ms:.3f} ms | {100 * (ms - r) / r:+.1f} % |")
        rows += 1
if rows == 0 or rows != len(ref):
    raise SystemExit(f"compare_reference: {rows} rows for {len(ref)} reference models")
PY
