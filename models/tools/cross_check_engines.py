#!/usr/bin/env python3
"""Cross-check the packages' test vectors with engines other than TFLite: the shipped .tflite
files are converted to ONNX with tf2onnx and run with onnxruntime and with tract (PyPI
`tract`, the Python bindings of the same tract as the Rust crates, through tract-onnx).
Prints the largest absolute difference to each vector's expected outputs and fails if one
exceeds the vector's atol. Gives an idea of how far an independent engine lands from the
TFLite reference; it does not test tract-tflite itself (the Rust tests do that).

    python cross_check_engines.py

Needs (one virtual environment): tensorflow-cpu 2.21.*, keras 3.15.* (tf2onnx imports
tensorflow), tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0, tract 0.23.9, numpy.
Writes the ONNX files to a temporary folder only.
"""
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tract

PACKAGES = Path(__file__).resolve().parents[2] / "models" / "packages"


def main():
    worst_ratio = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for pkg in ["blazeface_short_range", "fer_mini_xception", "blazeface_full_range"]:
            d = PACKAGES / pkg
            man = tomllib.loads((d / "manifest.toml").read_text())
            onnx_path = Path(tmp) / (pkg + ".onnx")
            subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(d / man["file"]),
                            "--output", str(onnx_path), "--opset", "13"],
                           check=True, capture_output=True)
            shape = man["input"]["shape"]
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
            im = tract.onnx().load(str(onnx_path))
            im.set_input_fact(0, ",".join(map(str, shape)) + ",f32")
            runnable = im.into_model().into_runnable()
            for tv in man["test_vector"]:
                x = np.fromfile(d / tv["input"], "<f4").reshape(shape)
                exp = [np.fromfile(d / o, "<f4") for o in tv["outputs"]]
                got_ort = sess.run(None, {sess.get_inputs()[0].name: x})
                res = runnable.run([x])
                got_tract = [res[i].to_numpy() for i in range(len(exp))]
                line = f"{pkg}/{Path(tv['input']).name:30s} atol {tv['atol']:g}:"
                for name, got in [("onnxruntime", got_ort), ("tract-onnx", got_tract)]:
                    diff = max(float(np.abs(g.reshape(-1) - e).max()) for g, e in zip(got, exp))
                    worst_ratio = max(worst_ratio, diff / tv["atol"])
                    line += f"  {name} {diff:.3g}"
                print(line)
    print(f"largest difference / atol: {worst_ratio:.3f}")
    return 0 if worst_ratio <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
