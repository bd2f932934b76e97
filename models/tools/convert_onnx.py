#!/usr/bin/env python3
"""Convert the packages' tract .tflite files (the manifest's `file`) to ONNX for the ONNX
Runtime engine, and check the results against the packages' test vectors.

    python convert_onnx.py [--check] [PACKAGE ...]

For each package (default: the four vision packages under models/packages/):

1. `python -m tf2onnx.convert --tflite <file> --output <tmp>.onnx --opset 13`, run inside
   the package folder so the ONNX doc_string ("converted from <file>") holds no machine
   path. No --inputs-as-nchw: the input stays NHWC, as in the TFLite model. The result is
   `<stem>.onnx`, <stem> being the manifest's `file` without `_f32.tflite`.
2. The graph is renamed and its nodes ordered from its structure only (`canonicalize`):
   tf2onnx 1.17.0's output differs from run to run in generated names (`const_fold_opt__N`,
   `Transpose__N`, ...) and node order, not in content. Intermediate tensors and nodes get
   structural names (`Conv_12`, `const_3`); the graph input and output names stay tf2onnx's
   (the TFLite tensor names).
3. Symbolic dimensions left by tf2onnx (fer_mini_xception's batch, `unk__*`) are fixed with
   onnx.tools.update_model_dims: the input to the manifest's `[input] shape`, the outputs'
   batch to 1. onnx.checker (full check) and strict shape inference must pass and every
   input and output dimension must be fixed. Written with deterministic protobuf
   serialisation.
4. Checks: exactly one input, f32, of the manifest's shape; as many outputs as each test
   vector has, in the TFLite model's output order: every vector input is also run through
   the .tflite file (tf.lite.Interpreter) and ONNX output i must have TFLite output i's
   shape and be closer to it than to any other TFLite output of that shape. Then every
   test vector is run through onnxruntime (CPUExecutionProvider, one thread) with graph
   optimisation ORT_ENABLE_ALL (and, for information, ORT_DISABLE_ALL); the largest
   |onnx - expected| of each vector must be within its atol.

Without --check the .onnx files are written into the package folders and their sha256 is
printed (copy it into the manifest's `[files.onnxruntime]` table). With --check the
conversion goes to a temporary folder and its sha256 must equal both the manifest's
`[files.onnxruntime] sha256` and the committed file; the vectors are run on the committed
file. Exit status 1 on any failure.

Needs (one virtual environment, Python 3.11): tensorflow-cpu 2.21.*, keras 3.15.* (tf2onnx
imports tensorflow), tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0, numpy.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import onnx
import onnxruntime as ort
from onnx.tools.update_model_dims import update_inputs_outputs_dims

PACKAGES = Path(__file__).resolve().parents[1] / "packages"
ALL = ["blazeface_short_range", "fer_mini_xception", "faceapi_expression", "blazeface_full_range"]
OPSET = 13
VERSIONS = {"tf2onnx": "1.17.0", "onnx": "1.23.2", "onnxruntime": "1.32.0"}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stem_of(man):
    f = man["file"]
    assert f.endswith("_f32.tflite"), f
    return f[: -len("_f32.tflite")]


def dims(vi):
    return [d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in vi.type.tensor_type.shape.dim]


def canonicalize(model):
    """tf2onnx 1.17.0 is not deterministic: its optimisers iterate over sets of graph objects,
    so the generated names (`const_fold_opt__N`, `Transpose__N`, which initialiser name survives
    a merge) and the node order change from run to run, while the graph itself does not. This
    rewrites the graph from its structure only: nodes in depth-first post-order from the graph
    outputs (inputs visited in position order), node k named `<op>_<k>` with outputs
    `<op>_<k>` (`:j` when it has several), initialisers `const_<n>` in order of first use. The
    graph input and output names are kept. Nothing else changes (ops, attributes, values)."""
    g = model.graph
    for node in g.node:
        for a in node.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise SystemExit("canonicalize: subgraphs are not supported")
    producer = {out: node for node in g.node for out in node.output if out}
    inits = {i.name: i for i in g.initializer}
    io_names = {v.name for v in g.input} | {v.name for v in g.output}
    order, done = [], set()
    for out in g.output:
        stack = [(producer[out.name], False)] if out.name in producer else []
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            for name in reversed(node.input):
                p = producer.get(name)
                if p is not None and id(p) not in done:
                    stack.append((p, False))
    if len(order) != len(g.node):
        raise SystemExit(f"canonicalize: {len(g.node) - len(order)} nodes do not reach an output")
    rename, init_order = {}, []
    for k, node in enumerate(order):
        for name in node.input:
            if name in inits and name not in rename:
                rename[name] = f"const_{len(init_order)}"
                init_order.append(inits[name])
        for j, name in enumerate(node.output):
            if name and name not in io_names:
                rename[name] = f"{node.op_type}_{k}" + (f":{j}" if len(node.output) > 1 else "")
    if len(init_order) != len(g.initializer):
        raise SystemExit("canonicalize: unused initialisers")
    nodes = []
    for k, node in enumerate(order):
        n = onnx.NodeProto()
        n.CopyFrom(node)
        n.name = f"{node.op_type}_{k}"
        n.ClearField("doc_string")
        n.input[:] = [rename.get(x, x) for x in node.input]
        n.output[:] = [rename.get(x, x) for x in node.output]
        nodes.append(n)
    new_inits = []
    for t in init_order:
        c = onnx.TensorProto()
        c.CopyFrom(t)
        c.name = rename[t.name]
        new_inits.append(c)
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.value_info[:]
    return model


def convert(pkg_dir, man, out_path):
    """tf2onnx conversion of the package's tract file, then fixed input/output shapes."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "tf2onnx.onnx"
        r = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", man["file"],
                            "--output", str(raw), "--opset", str(OPSET)],
                           cwd=pkg_dir, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            raise SystemExit(f"tf2onnx failed for {pkg_dir.name}")
        model = canonicalize(onnx.load(str(raw)))
    shape = list(man["input"]["shape"])
    if len(model.graph.input) != 1:
        raise SystemExit(f"{pkg_dir.name}: {len(model.graph.input)} inputs, expected 1")
    inp = model.graph.input[0]
    in_dims = dims(inp)
    if len(in_dims) != len(shape) or any(isinstance(a, int) and a != b
                                         for a, b in zip(in_dims, shape)):
        raise SystemExit(f"{pkg_dir.name}: ONNX input {in_dims} does not fit manifest {shape}")
    out_dims = {}
    for o in model.graph.output:
        d = dims(o)
        if any(isinstance(x, str) for x in d[1:]):
            raise SystemExit(f"{pkg_dir.name}: output {o.name} {d} has a symbolic non-batch dim")
        out_dims[o.name] = [1 if isinstance(d[0], str) else d[0]] + d[1:]
    if any(isinstance(x, str) for x in in_dims) or any(
            isinstance(x, str) for o in model.graph.output for x in dims(o)):
        model = update_inputs_outputs_dims(model, {inp.name: shape}, out_dims)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    for vi in list(model.graph.input) + list(model.graph.output):
        if not all(isinstance(x, int) and x > 0 for x in dims(vi)):
            raise SystemExit(f"{pkg_dir.name}: {vi.name} {dims(vi)} not fixed")
    out_path.write_bytes(model.SerializeToString(deterministic=True))


def tflite_outputs(tflite_path, x):
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_path=str(tflite_path), num_threads=1)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def session(path, level):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = level
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def check(pkg_dir, man, onnx_path):
    """Returns True when the file passes; prints the measured differences."""
    ok = True
    model = onnx.load(str(onnx_path))
    opsets = {o.domain: o.version for o in model.opset_import}
    shape = list(man["input"]["shape"])
    ins, outs = list(model.graph.input), list(model.graph.output)
    vectors = man["test_vector"]
    print(f"{pkg_dir.name}: {onnx_path.name} sha256 {sha256(onnx_path)}, opset {opsets.get('', '?')}, "
          f"input {ins[0].name} {dims(ins[0])}, outputs "
          + ", ".join(f"{o.name} {dims(o)}" for o in outs))
    if opsets.get("") != OPSET:
        print(f"  FAIL: opset {opsets.get('')}, expected {OPSET}"); ok = False
    if len(ins) != 1 or dims(ins[0]) != shape or \
            ins[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        print(f"  FAIL: input must be one f32 tensor of shape {shape}"); ok = False
    if any(len(tv["outputs"]) != len(outs) for tv in vectors):
        print(f"  FAIL: {len(outs)} outputs, vectors have {[len(tv['outputs']) for tv in vectors]}")
        return False
    sessions = {"ORT_ENABLE_ALL": session(onnx_path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
                "ORT_DISABLE_ALL": session(onnx_path, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)}
    for tv in vectors:
        x = np.fromfile(pkg_dir / tv["input"], "<f4").reshape(shape)
        exp = [np.fromfile(pkg_dir / o, "<f4") for o in tv["outputs"]]
        ref = tflite_outputs(pkg_dir / man["file"], x)
        got = {k: s.run(None, {s.get_inputs()[0].name: x}) for k, s in sessions.items()}
        g = got["ORT_ENABLE_ALL"]
        # Output order: ONNX output i is TFLite output i (shape, and closest by value).
        for i, gi in enumerate(g):
            if gi.shape != ref[i].shape or gi.size != exp[i].size:
                print(f"  FAIL: output {i} shape {gi.shape}, TFLite {ref[i].shape}, "
                      f"vector {exp[i].size} values"); ok = False
                continue
            d_same = float(np.abs(gi - ref[i]).max())
            for j, rj in enumerate(ref):
                if j != i and rj.shape == gi.shape and float(np.abs(gi - rj).max()) <= d_same:
                    print(f"  FAIL: output {i} is as close to TFLite output {j} as to {i}"); ok = False
        line = f"  {Path(tv['input']).name:28s} atol {tv['atol']:g}:"
        for k, gk in got.items():
            per = [float(np.abs(a.reshape(-1) - e).max()) for a, e in zip(gk, exp)]
            line += f"  {k} max|diff| " + "/".join(f"{p:.3g}" for p in per)
            if k == "ORT_ENABLE_ALL" and max(per) > tv["atol"]:
                ok = False; line += " FAIL"
        per_tfl = [float(np.abs(a.reshape(-1) - b.reshape(-1)).max()) for a, b in zip(g, ref)]
        line += "  (vs this .tflite: " + "/".join(f"{p:.3g}" for p in per_tfl) + ")"
        print(line)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="reconvert into a temporary folder and compare sha256 with the manifests")
    ap.add_argument("packages", nargs="*", default=ALL)
    args = ap.parse_args()
    import tf2onnx
    have = {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__}
    if have != VERSIONS:
        print(f"warning: versions {have}, the committed files were made with {VERSIONS}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for pkg in args.packages:
            d = PACKAGES / pkg
            man = tomllib.loads((d / "manifest.toml").read_text())
            name = stem_of(man) + ".onnx"
            if sha256(d / man["file"]) != man["sha256"]:
                print(f"{pkg}: FAIL: {man['file']} sha256 differs from the manifest"); ok = False
            if args.check:
                fresh = Path(tmp) / name
                convert(d, man, fresh)
                entry = man.get("files", {}).get("onnxruntime")
                committed = d / name
                if entry is None or entry.get("file") != name:
                    print(f"{pkg}: FAIL: manifest has no [files.onnxruntime] file = \"{name}\""); ok = False
                elif sha256(fresh) != entry["sha256"]:
                    print(f"{pkg}: FAIL: reconversion sha256 {sha256(fresh)} != manifest {entry['sha256']}"); ok = False
                if not committed.exists() or sha256(committed) != sha256(fresh):
                    print(f"{pkg}: FAIL: {name} in the package differs from the reconversion"); ok = False
                else:
                    print(f"{pkg}: reconversion is byte-identical to the committed {name}")
                target = committed if committed.exists() else fresh
            else:
                target = d / name
                convert(d, man, target)
            ok &= check(d, man, target)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
