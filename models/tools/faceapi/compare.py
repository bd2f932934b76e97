#!/usr/bin/env python3
"""Compare faceapi_expression_f32.tflite with the original TF.js FaceExpressionNet.

1. writes scikit-image's astronaut photo (public domain) as raw RGB into WORKDIR,
2. runs `node run_tfjs.js WORKDIR` (the original model through face-api 1.7.15, tfjs CPU backend),
   which writes per case the 112x112 tensor face-api builds, the normalised input and the outputs,
3. runs the .tflite (ai-edge-litert) on the same normalised inputs and reports the largest absolute
   difference of the 7 probabilities per case.

Usage (from this folder, after `npm ci`):
    python3 compare.py [--tflite PATH] [--work DIR] [--vectors PKGDIR]
--vectors writes the package test vectors (inputs + TF.js outputs) into PKGDIR/vectors/.
Needs: numpy, ai-edge-litert, scikit-image; node >= 18.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MEAN = np.array([122.782, 117.001, 104.298], dtype=np.float32)
LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
# Cases written to the package as test vectors (name in the package, case name).
VECTORS = [("astronaut_face", "astronaut_face_tight"), ("gradient", "gradient")]


def read_f32(path, shape):
    a = np.fromfile(path, dtype="<f4")
    return a.reshape(shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tflite", default="/work/shared/models/faceapi_expression_f32.tflite")
    ap.add_argument("--work", default=os.path.join(HERE, "work"))
    ap.add_argument("--vectors", help="package folder to write vectors/ into")
    ap.add_argument("--atol", type=float, default=1e-4, help="pass threshold")
    ap.add_argument("--reference-kernels", action="store_true",
                    help="run the .tflite with TFLite's reference kernels instead of XNNPACK")
    args = ap.parse_args()

    from skimage import data
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    os.makedirs(args.work, exist_ok=True)
    astro = data.astronaut()
    assert astro.shape == (512, 512, 3) and astro.dtype == np.uint8
    astro.tofile(os.path.join(args.work, "astronaut_512x512.rgb"))

    subprocess.run(["node", os.path.join(HERE, "run_tfjs.js"), args.work], check=True, cwd=HERE)
    with open(os.path.join(args.work, "tfjs_cases.json")) as f:
        meta = json.load(f)
    assert meta["labels"] == LABELS, meta["labels"]

    # Keep intermediate tensors so the logits (the input of the final SOFTMAX) can be read too.
    resolver = OpResolverType.BUILTIN_REF if args.reference_kernels else OpResolverType.AUTO
    it = Interpreter(model_path=args.tflite, experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]
    assert list(inp["shape"]) == [1, 112, 112, 3], inp["shape"]
    assert list(out["shape"]) == [1, 7], out["shape"]
    ops = [o["op_name"] for o in it._get_ops_details() if o["op_name"] != "DELEGATE"]
    print(f"tflite {args.tflite}: last op {ops[-1]}, kernels {resolver.name}")
    softmax = [o for o in it._get_ops_details() if o["op_name"] == "SOFTMAX"]
    logits_index = int(softmax[-1]["inputs"][0]) if softmax else None

    worst = 0.0
    worst_logits = 0.0
    rows = []
    for c in meta["cases"]:
        name = c["name"]
        pix = read_f32(os.path.join(args.work, f"{name}.pix.f32"), (1, 112, 112, 3))
        x = read_f32(os.path.join(args.work, f"{name}.in.f32"), (1, 112, 112, 3))
        ref = read_f32(os.path.join(args.work, f"{name}.tfjs_probs.f32"), (1, 7))
        ref_logits = read_f32(os.path.join(args.work, f"{name}.tfjs_logits.f32"), (1, 7))
        # The input contract written in the manifest, applied to face-api's 112x112 pixels.
        x_np = ((pix - MEAN) / np.float32(255.0)).astype(np.float32)
        norm_diff = float(np.abs(x_np - x).max())
        it.set_tensor(inp["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"]).copy()
        d = float(np.abs(y - ref).max())
        worst = max(worst, d)
        dl = float("nan")
        if logits_index is not None:
            dl = float(np.abs(it.get_tensor(logits_index) - ref_logits).max())
            worst_logits = max(worst_logits, dl)
        same_top = int(np.argmax(y)) == int(np.argmax(ref))
        rows.append((name, d, norm_diff, LABELS[int(np.argmax(ref))], float(ref.max()), same_top))
        print(f"{name:26s} max|tflite - tfjs| probs {d:.3e} logits {dl:.3e} (|logit| max {np.abs(ref_logits).max():5.2f})  top tfjs={LABELS[int(np.argmax(ref))]:9s} "
              f"({ref.max():.5f}) same top={same_top}  |numpy norm - tfjs norm| = {norm_diff:.1e}")
    print(f"worst max abs difference over {len(rows)} cases: probabilities {worst:.3e} (threshold {args.atol:g}), "
          f"logits {worst_logits:.3e}")
    ok = worst < args.atol and all(r[5] for r in rows)
    print("MATCH" if ok else "MISMATCH")

    if args.vectors and ok:
        vdir = os.path.join(args.vectors, "vectors")
        os.makedirs(vdir, exist_ok=True)
        for vname, cname in VECTORS:
            shutil.copyfile(os.path.join(args.work, f"{cname}.in.f32"), os.path.join(vdir, f"{vname}.in.f32"))
            shutil.copyfile(os.path.join(args.work, f"{cname}.tfjs_probs.f32"), os.path.join(vdir, f"{vname}.out0.f32"))
            print(f"wrote {vdir}/{vname}.in.f32 and .out0.f32 (from case {cname}, outputs from TF.js)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
