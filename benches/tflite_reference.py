#!/usr/bin/env python3
"""Reference timings for `cargo bench`'s `infer_<model>/tflite+xnnpack`: Python's TFLite
interpreter (ai-edge-litert, the successor of tflite_runtime; or tflite_runtime if that is
what is installed) with XNNPACK on one thread, on the same .tflite files the TFLite engine
runs (each package's [files.tflite]), fed each package's first test vector (int8/uint8 packages: quantised and dequantised inside the
timed loop, as the engine does).

    python3 -m pip install "ai-edge-litert==2.3.0" numpy
    python3 benches/tflite_reference.py            # one JSON object per line

Timed like criterion's loop: set_tensor + invoke + get_tensor for every output, median of
`--runs` after `--warmup` runs.
"""
import argparse, json, pathlib, statistics, time, tomllib

import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter
    runtime = "ai-edge-litert"
except ImportError:  # pragma: no cover
    from tflite_runtime.interpreter import Interpreter
    runtime = "tflite_runtime"

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=500)
ap.add_argument("--warmup", type=int, default=50)
args = ap.parse_args()

for pkg in sorted((root / "models" / "packages").iterdir()):
    mf = pkg / "manifest.toml"
    if not mf.is_file():
        continue
    m = tomllib.loads(mf.read_text())
    model = m.get("files", {}).get("tflite", {}).get("file", m["file"])
    if not model.endswith(".tflite"):
        continue  # an ONNX-only package (the Silero VAD): no TFLite file to compare
    it = Interpreter(model_path=str(pkg / model), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = np.fromfile(pkg / m["test_vector"][0]["input"], dtype="<f4").reshape(inp["shape"])
    outs = it.get_output_details()
    # a full-integer (int8/uint8) package: the engine quantises the f32 input and dequantises
    # the outputs inside its run, so this loop does the same inside the timing
    quant = inp["dtype"] in (np.int8, np.uint8)
    if quant:
        scale, zp = inp["quantization"]
        info = np.iinfo(inp["dtype"])
    times = []
    for i in range(args.warmup + args.runs):
        t = time.perf_counter()
        if quant:
            xq = np.clip(np.round(x / scale + zp), info.min, info.max).astype(inp["dtype"])
            it.set_tensor(inp["index"], xq)
        else:
            it.set_tensor(inp["index"], x)
        it.invoke()
        for o in outs:
            y = it.get_tensor(o["index"])
            if o["dtype"] in (np.int8, np.uint8):
                s_, z_ = o["quantization"]
                (y.astype(np.float32) - z_) * s_
        if i >= args.warmup:
            times.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({
        "model": m["name"], "file": model, "runtime": runtime, "threads": 1,
        "median_ms": round(statistics.median(times), 4),
        "mean_ms": round(statistics.fmean(times), 4), "runs": args.runs,
    }))
