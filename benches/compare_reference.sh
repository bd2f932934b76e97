#!/bin/sh
# TFLite + XNNPACK: the Rust engine against Python's interpreter on the same model files, in one
# run, both pinned to the same core. Needs models/tools/fetch_runtimes.sh and
# `python3 -m pip install "ai-edge-litert==2.3.0" numpy`.
set -eu
cd "$(dirname "$0")/.."
core=${CORE:-0}
taskset -c "$core" python3 benches/tflite_reference.py >target/tflite_reference.jsonl
taskset -c "$core" cargo bench -p emotiond --bench pipeline -- 'infer_.*/tflite\+xnnpack' \
    | tee target/tflite_rust.txt
python3 - <<'PY'
import json, re
ref = {j["model"]: j["median_ms"] for j in map(json.loads, open("target/tflite_reference.jsonl"))}
txt = open("target/tflite_rust.txt").read()
print("| model | Python (ai-edge-litert) + XNNPACK | emotiond tflite+xnnpack | difference |")
print("|---|---|---|---|")
for m in re.finditer(r"infer_(\w+)/tflite\+xnnpack\s+time:\s+\[\S+ \S+ (\S+) (\S+)", txt):
    name, v, unit = m.group(1), float(m.group(2)), m.group(3)
    ms = v / 1000 if unit == "µs" else v
    r = ref.get(name)
    if r:
        print(f"| {name} | {r:.3f} ms | {ms:.3f} ms | {100 * (ms - r) / r:+.1f} % |")
PY
