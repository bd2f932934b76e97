#!/usr/bin/env python3
"""Full-integer (int8) post-training quantised packages of the shipped vision models.

    python models/tools/make_int8.py [--check] [--measure] [PACKAGE ...]

PACKAGE: fer_mini_xception_int8 (the default: the shipped one), faceapi_expression_int8,
blazeface_short_range_int8, blazeface_full_range_int8 (below the 95 % gate, not shipped:
build them elsewhere with --out DIR and measure them with --out DIR --measure). For each, from the float package of the same
name without `_int8` (models/packages/<float>/):

1. Source graph. The float package's tract file (manifest `file`, float32 throughout) is
   rebuilt as a tf.function (models/tools/int8/tflite_graph.py) and checked against that
   .tflite on the float package's test vectors (TFLite reference kernels): the largest
   |difference| divided by max(1, largest |output|) must be <= 1e-5, or the script stops.
2. Conversion. tf.lite.TFLiteConverter.from_concrete_functions, optimizations = [DEFAULT],
   the representative data set of models/tools/int8/calibration.py (real photos of the
   repository and of the scikit-image wheel, preprocessed as the manifest says),
   supported_ops = [TFLITE_BUILTINS_INT8], inference_input_type = inference_output_type =
   tf.int8, per-tensor FULLY_CONNECTED weights (_experimental_disable_per_channel_
   quantization_for_dense_layers: TFLite 2.6 misreads per-channel ones) -> `<stem>_int8.tflite`
   ([files.tflite]).
3. ONNX. `python -m tf2onnx.convert --tflite <stem>_int8.tflite --opset 13` (QDQ ONNX), f32
   input and outputs added around it (models/tools/int8/onnx_io.py: the TFLite engine's
   quantisation of the input, DequantizeLinear on the outputs), renamed from its structure
   (convert_onnx.canonicalize) -> `<stem>_int8.onnx`: the manifest's `file` (tract-onnx)
   and [files.onnxruntime].
4. Test vectors: the float package's vector inputs (the same bytes); expected outputs are
   TFLite's reference kernels (tf.lite.Interpreter, BUILTIN_REF, one thread) on the int8
   .tflite, the input quantised and the outputs dequantised exactly as the TFLite engine
   does. The same inputs run through the optimised kernels, XNNPACK, and onnxruntime on the
   .onnx (ORT_ENABLE_ALL and ORT_DISABLE_ALL); atol is 1.5 x the largest difference seen,
   in whole steps of the coarsest output, at least 3 steps (int8 kernels of different
   runtimes round differently, and on the detectors the differences grow through the graph
   on anchors with no face).
5. manifest.toml: the float manifest's [input], [ssd] / [classifier] / [crop] copied as
   text, name `<float>_int8`, version `<float version base>+int8.1`, release 1, SHA-256s.

--check   build into a temporary folder and compare every file with the committed package
          (byte for byte); nothing is written.
--measure the accuracy cost, int8 against float (the float package's tract file, TFLite
          reference kernels), printed as JSON: largest output difference on the test
          vectors; for detectors, face boxes on every real photo of tests/data (SSD decode +
          weighted NMS of the manifest, matched at IoU >= 0.5); for expression models, top-1
          agreement on the faces the float short-range detector finds in every tests/data
          photo (crops as the daemon cuts them) and on tests/data/eval/crops, and separately
          on the 50 held-out LFW faces. Below 95 % on the tests/data photos: "ship": false.

Needs (one venv, Python 3.11): tensorflow-cpu 2.21.*, keras 3.15.*, tf2onnx 1.17.0,
onnx 1.23.2, onnxruntime 1.32.0, scikit-image 0.26.0, pillow, numpy, ai-edge-litert 2.3.0
(make_test_vectors.py's import). Set TF_ENABLE_ONEDNN_OPTS=0 (the script does).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS / "int8"))
sys.path.insert(0, str(TOOLS))
import calibration as cal  # noqa: E402
import tflite_graph  # noqa: E402

PACKAGES = TOOLS.parent / "packages"
# Shipped: the packages that pass the 95 % agreement gate (--measure, 2026-12-03). Not shipped:
# faceapi_expression_int8 (top-1 16/17 = 94.1 % on the tests/data faces on TFLite reference,
# XNNPACK and onnxruntime, 17/17 builtin kernels; 88-94 % on the held-out LFW faces;
# `emotiond eval` on tests/data/eval/faces 3/4 where float has 4/4), blazeface_short_range_int8
# (faces 17 kept of 18 = 94.4 %: an extra face on eval/crops/neutral/grace_hopper.jpg) and
# blazeface_full_range_int8 (11 of 14 = 78.6 %: misses both grace_hopper eval faces and one of
# five_faces). Build and measure them outside models/packages with --out DIR.
SHIPPED = ["fer_mini_xception_int8"]
ALL = {"blazeface_short_range_int8": "face_detection_short_range",
       "blazeface_full_range_int8": "face_detection_full_range",
       "fer_mini_xception_int8": "fer_mini_xception",
       "faceapi_expression_int8": "faceapi_expression"}
REBUILD_TOL = 1e-5
# Detector outputs are clipped before quantisation (one int8 scale per output tensor): score
# logits to +-SCORE_CLIP (sigmoid(-16) = 1.1e-7: no detection, threshold or NMS weight
# changes by more than that), box/keypoint regressors to +-REGRESSOR_CLIP x the input side
# (a larger offset only describes a box far outside the image). Unclipped, a few calibration
# photos (skimage text.png: score logits down to -13439) would set an output scale of 52.7.
SCORE_CLIP = 16.0
REGRESSOR_CLIP = 2.0
ATOL_STEPS = 3
VERSIONS = {"tensorflow": "2.21.0", "tf2onnx": "1.17.0", "onnx": "1.23.2", "onnxruntime": "1.32.0"}


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def rel(p):
    p = Path(p).resolve()
    return str(p.relative_to(cal.ROOT)) if p.is_relative_to(cal.ROOT) else f"skimage/data/{p.name}"


def float_name(name):
    return name[: -len("_int8")]


def load_manifest_at(root, pkg):
    return tomllib.loads((Path(root) / pkg / "manifest.toml").read_text())


def load_manifest(pkg):
    text = (PACKAGES / pkg / "manifest.toml").read_text()
    return tomllib.loads(text), text


# ---------------------------------------------------------------- TFLite runs

def interpreter(path_or_bytes, resolver="ref"):
    import tensorflow as tf
    kinds = tf.lite.experimental.OpResolverType
    kind = {"ref": kinds.BUILTIN_REF, "builtin": kinds.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            "xnnpack": kinds.AUTO}[resolver]
    kw = {"model_content": path_or_bytes} if isinstance(path_or_bytes, bytes) \
        else {"model_path": str(path_or_bytes)}
    it = tf.lite.Interpreter(num_threads=1, experimental_op_resolver_type=kind, **kw)
    it.allocate_tensors()
    return it


def output_order(data):
    m = tflite_graph.schema.Model.GetRootAsModel(data, 0)
    sg = m.Subgraphs(0)
    return [sg.Outputs(i) for i in range(sg.OutputsLength())]


def quantise(x, scale, zp):
    """As the TFLite engine (models/src/ffi/tflite/engine.rs): (x / scale + zp) in f32,
    rounded half away from zero, clamped to int8."""
    y = (x.astype(np.float32) / np.float32(scale) + np.float32(zp)).astype(np.float64)
    r = np.sign(y) * np.floor(np.abs(y) + 0.5)  # exact in f64
    return np.clip(r, -128, 127).astype(np.int8)


def dequantise(q, scale, zp):
    return (q.astype(np.float32) - np.float32(zp)) * np.float32(scale)


class Runner:
    """A .tflite with f32 in/out at the boundary (quantising int8 tensors as the engine)."""

    def __init__(self, data, resolver="ref"):
        self.it = interpreter(data, resolver)
        self.inp = self.it.get_input_details()[0]
        det = {d["index"]: d for d in self.it.get_output_details()}
        self.outs = [det[i] for i in output_order(data)]

    def __call__(self, x):
        d = self.inp
        if d["dtype"] == np.int8:
            x = quantise(x, *d["quantization"])
        self.it.set_tensor(d["index"], x.reshape(d["shape"]))
        self.it.invoke()
        res = []
        for o in self.outs:
            y = self.it.get_tensor(o["index"])
            if o["dtype"] == np.int8:
                y = dequantise(y, *o["quantization"])
            res.append(y.astype("<f4").copy())
        return res


# ---------------------------------------------------------------- calibration

def detector_boxes(img):
    """Faces found by the float short-range detector (calibration and measurement crops)."""
    global _DET
    if "_DET" not in globals():
        man, _ = load_manifest("blazeface_short_range")
        _DET = (Runner((PACKAGES / "blazeface_short_range" / man["file"]).read_bytes()), man)
    run, man = _DET
    return [b for _, b in cal.detect(run, man, img)]


def classifier_inputs(man, photos, lfw_idx):
    """(label, tensor) face crops of `photos` (+ mirror) and the LFW faces `lfw_idx`."""
    spec, crop = man["input"], man.get("crop", {})
    out = []
    for p in photos:
        img = cal.rgb(p)
        for mirror in (False, True):
            im = img[:, ::-1].copy() if mirror else img
            tag = rel(p) + (" mirrored" if mirror else "")
            if cal.is_crop(p):
                out.append((tag + " (whole crop)", cal.image_tensor(im, cal.whole(im), spec)))
                continue
            for k, b in enumerate(detector_boxes(im)):
                out.append((f"{tag} face {k}", cal.image_tensor(im, cal.crop_roi(b, crop), spec)))
    faces = cal.lfw()
    for i in lfw_idx:
        im = faces[i][..., None]
        out.append((f"lfw_subset[{i}]", cal.image_tensor(im, cal.whole(im), spec)))
    return out


def calibration_set(man):
    """(description, list of input tensors) of the representative data set."""
    sk, skv = cal.skimage_photos()
    photos = cal.calibration_photos()
    if man["task"] == "face_detection":
        xs = []
        for p in photos + sk:
            img = cal.rgb(p)
            for im in (img, img[:, ::-1].copy()):
                xs.append(cal.image_tensor(im, cal.whole(im), man["input"]))
        desc = (f"{len(xs)} images: the {len(photos)} photos of tests/data (all .png/.jpg) and "
                f"{len(sk)} photos of the scikit-image {skv} wheel (skimage/data: "
                f"{', '.join(p.name for p in sk)}), each as is and mirrored left-right, whole "
                f"image {man['input']['resize']}ed to the input as the manifest says")
        return desc, xs
    items = classifier_inputs(man, photos + [sk[0]], cal.LFW_CALIBRATION)
    n_lfw = len(cal.LFW_CALIBRATION)
    desc = (f"{len(items)} face crops: {len(items) - n_lfw} from the photos of tests/data and "
            f"skimage's astronaut.png, each as is and mirrored (faces found by the float "
            f"blazeface_short_range, cut as the daemon does: [crop] of the manifest; "
            f"tests/data/eval/crops whole), and LFW faces {cal.LFW_CALIBRATION.start}-"
            f"{cal.LFW_CALIBRATION.stop - 1} of skimage.data.lfw_subset() (scikit-image {skv}; "
            f"25x25 grey, stretched to the input)")
    return desc, [x for _, x in items]


# ---------------------------------------------------------------- build

def rebuild_checked(fpkg, fman):
    path = PACKAGES / fpkg / fman["file"]
    fn, g = tflite_graph.rebuild(path)
    ref = Runner(path.read_bytes())
    worst = 0.0
    for tv in fman["test_vector"]:
        x = np.fromfile(PACKAGES / fpkg / tv["input"], "<f4").reshape(fman["input"]["shape"])
        got = [y.numpy() for y in fn(x)]
        want = ref(x)
        for a, b in zip(got, want):
            d = float(np.abs(a.reshape(-1) - b.reshape(-1)).max()) / max(1.0, float(np.abs(b).max()))
            worst = max(worst, d)
    if worst > REBUILD_TOL:
        raise SystemExit(f"{fpkg}: rebuilt graph differs from {fman['file']} by {worst:.3g} "
                         f"(relative), above {REBUILD_TOL}")
    return fn, g, worst


def output_clips(man):
    """{output index: bound} of a package (detectors only)."""
    if man["task"] != "face_detection":
        return {}
    s = man["ssd"]
    return {s["boxes_output"]: REGRESSOR_CLIP * max(s["x_scale"], s["y_scale"]),
            s["scores_output"]: SCORE_CLIP}


def clip_outputs(man, ys):
    """The same clipping applied to float outputs (numpy), for comparisons."""
    c = output_clips(man)
    return [np.clip(y, -c[k], c[k]) if k in c else y for k, y in enumerate(ys)]


def with_clips(fn, man):
    import tensorflow as tf
    clips = output_clips(man)
    if not clips:
        return fn

    def clipped(x):
        ys = fn(x)
        return [tf.clip_by_value(y, -clips[k], clips[k]) if k in clips else y
                for k, y in enumerate(ys)]
    return tf.function(clipped, input_signature=fn.input_signature, autograph=False)


def convert(fn, xs):
    import tensorflow as tf

    def rep():
        for x in xs:
            yield [x]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    # Per-tensor FULLY_CONNECTED weights: TFLite 2.6 (the engine tests' library) and older NPU
    # delegates read only the first scale of per-channel ones (faceapi_expression: 98 output
    # steps off at the FULLY_CONNECTED, the softmax near uniform). Convolutions stay per-channel.
    conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    return conv.convert()


def to_onnx(tflite_bytes, shape, tmp):
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims
    import convert_onnx
    import onnx_io
    src = Path(tmp) / "model_int8.tflite"
    src.write_bytes(tflite_bytes)
    raw = Path(tmp) / "tf2onnx.onnx"
    r = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", src.name,
                        "--output", str(raw), "--opset", str(convert_onnx.OPSET)],
                       cwd=tmp, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit("tf2onnx failed")
    model = onnx.load(str(raw))
    run = Runner(tflite_bytes)
    inq = tuple(run.inp["quantization"])
    outq = [tuple(o["quantization"]) for o in run.outs]
    # tf2onnx keeps the TFLite output order; check the names to be sure
    names = [o["name"] for o in run.outs]
    if [o.name for o in model.graph.output] != names:
        raise SystemExit(f"ONNX outputs {[o.name for o in model.graph.output]} != TFLite {names}")
    model = onnx_io.float_io(model, inq, outq)
    model = onnx_io.drop_output_qdq(model)
    model = convert_onnx.canonicalize(model)
    # tf2onnx sets an empty `domain` on some nodes and not on others, differently from run to
    # run (faceapi): the same graph, other bytes. Leave the default unset everywhere.
    for n in model.graph.node:
        if n.domain == "":
            n.ClearField("domain")
    in_dims = convert_onnx.dims(model.graph.input[0])
    if any(isinstance(d, str) for d in in_dims) or any(
            isinstance(d, str) for o in model.graph.output for d in convert_onnx.dims(o)):
        out_dims = {o.name: [1 if isinstance(d, str) else d for d in convert_onnx.dims(o)]
                    for o in model.graph.output}
        model = update_inputs_outputs_dims(model, {model.graph.input[0].name: list(shape)}, out_dims)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    return model.SerializeToString(deterministic=True)


def ort_runner(onnx_bytes, level):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = level
    s = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda x: [o.astype("<f4") for o in s.run(None, {name: x})]


def manifest_text(name, fman, ftext, stem, tfl_sha, onnx_sha, vectors, cal_desc):
    fpkg = fman["name"]
    start = ftext.index("\n[input]\n") + 1
    ends = [i for i in (ftext.find("\n# Expected outputs"), ftext.find("\n[[test_vector]]"))
            if i >= 0]
    copied = ftext[start:min(ends)].rstrip() + "\n"
    version = fman["version"].split("+")[0] + "+int8.1"
    lines = [
        f"# Full-integer (int8) post-training quantisation of the {fpkg} package (its float32",
        f"# tract file {fman['file']}, sha256 {fman['sha256'][:16]}...), by models/tools/make_int8.py.",
        "# Weights, activations, input and outputs int8; engines see float32: the TFLite engine",
        "# quantises the input and dequantises the outputs with the tensors' scale and zero point,",
        "# the .onnx does the same inside the graph. Provenance, accuracy cost: PROVENANCE.md.",
        f'name = "{name}"',
        f'version = "{version}"',
        "# Release number (anti-rollback): grows with every published package of this name.",
        "release = 1",
        f'task = "{fman["task"]}"',
        "# tract runs the QDQ ONNX file (tract-tflite 0.22.5 does not run int8 .tflite files).",
        f'file = "{stem}_int8.onnx"',
        f'sha256 = "{onnx_sha}"',
        f'license = "{fman["license"]}"',
        f'description = "{fman["description"]}; int8 post-training quantisation (int8 in/out)"',
    ]
    clips = output_clips(fman)
    if clips:
        lines[5:5] = [
            "# Before quantisation the outputs are clipped (one int8 scale per output tensor): score",
            f"# logits to +-{clips[fman['ssd']['scores_output']]:g} (sigmoid 1.1e-7 from 0 or 1), regressors to "
            f"+-{clips[fman['ssd']['boxes_output']]:g} (twice the input side).",
        ]
    if fman.get("labels"):
        lines.append("labels = [" + ", ".join(f'"{l}"' for l in fman["labels"]) + "]")
    if "budget_ms" in fman:
        lines.append(f"budget_ms = {fman['budget_ms']}")
    lines += [
        "",
        "# The TFLite runtime (and its NPU delegates: Edge TPU after edgetpu_compiler, VX, ArmNN)",
        "# runs the int8 .tflite; the TFLite engine quantises the f32 input tensor itself.",
        "[files.tflite]",
        f'file = "{stem}_int8.tflite"',
        f'sha256 = "{tfl_sha}"',
        "",
        "# tf2onnx 1.17.0 (opset 13, QDQ) of the int8 .tflite with f32 input/outputs added, by",
        "# models/tools/make_int8.py; tract (`file` above) runs the same file.",
        "[files.onnxruntime]",
        f'file = "{stem}_int8.onnx"',
        f'sha256 = "{onnx_sha}"',
        "",
        f"# [input] and decoding copied from {fpkg}'s manifest: preprocessing is unchanged.",
        copied,
        "# Expected outputs: TFLite reference kernels (TensorFlow 2.21.0) on the int8 .tflite, input",
        "# quantised and outputs dequantised as the TFLite engine does. atol: 1.5 x the largest",
        "# difference between TFLite's reference, builtin and XNNPACK kernels and onnxruntime on",
        "# the .onnx (int8 kernels round differently), in whole output steps, at least 3 steps.",
    ]
    for tv in vectors:
        lines += ["[[test_vector]]", f'input = "{tv["input"]}"',
                  "outputs = [" + ", ".join(f'"{o}"' for o in tv["outputs"]) + "]",
                  f"atol = {tv['atol']:.4g}", f'note = "{tv["note"]}"', ""]
    return "\n".join(lines).rstrip() + "\n"


def build(name, out_root, tmp):
    """Writes the package into out_root/name; returns a record of what was measured."""
    import onnxruntime as ort
    fpkg = float_name(name)
    stem = ALL[name]
    fman, ftext = load_manifest(fpkg)
    fn, g, rebuild_diff = rebuild_checked(fpkg, fman)
    cal_desc, xs = calibration_set(fman)
    print(f"{name}: rebuilt {fman['file']} ({len(g.sg.operators)} ops), max relative diff "
          f"{rebuild_diff:.2g}; calibration: {cal_desc}", flush=True)
    data = convert(with_clips(fn, fman), xs)
    onnx_bytes = to_onnx(data, fman["input"]["shape"], tmp)
    out = out_root / name
    (out / "vectors").mkdir(parents=True, exist_ok=True)
    (out / f"{stem}_int8.tflite").write_bytes(data)
    (out / f"{stem}_int8.onnx").write_bytes(onnx_bytes)
    ref = Runner(data, "ref")
    others = {"TFLite builtin kernels": Runner(data, "builtin"),
              "TFLite XNNPACK": Runner(data, "xnnpack"),
              "onnxruntime ORT_ENABLE_ALL": ort_runner(onnx_bytes, ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
              "onnxruntime ORT_DISABLE_ALL": ort_runner(onnx_bytes, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)}
    step = max(float(o["quantization"][0]) for o in ref.outs)
    record = {"calibration": cal_desc, "rebuild_max_rel_diff": rebuild_diff,
              "input_quantization": list(map(float, ref.inp["quantization"])),
              "output_quantization": [list(map(float, o["quantization"])) for o in ref.outs],
              "engines": {}}
    worst = 0.0
    for tv in fman["test_vector"]:
        src = PACKAGES / fpkg / tv["input"]
        x = np.fromfile(src, "<f4").reshape(fman["input"]["shape"])
        shutil.copyfile(src, out / tv["input"])
        ys = ref(x)
        for k, y in enumerate(ys):
            (out / tv["input"].replace(".in.f32", f".out{k}.f32")).write_bytes(y.astype("<f4").tobytes())
        for label, r in others.items():
            d = max(float(np.abs(a.reshape(-1) - b.reshape(-1)).max()) for a, b in zip(r(x), ys))
            record["engines"].setdefault(label, {})[tv["input"]] = d
            worst = max(worst, d)
    # int8 kernels of different runtimes round differently (requantisation, saturation), and
    # the differences grow through the graph: atol covers 1.5 x the largest seen between the
    # runtimes above, in whole output steps, at least ATOL_STEPS steps.
    atol = step * max(ATOL_STEPS, int(np.ceil(1.5 * worst / step)))
    record["atol"] = atol
    for label, per in record["engines"].items():
        for v, d in per.items():
            print(f"  {v:36s} {label:28s} max|diff| {d:.4g} (atol {atol:.4g})")
    vectors = [{"input": tv["input"], "atol": atol, "note": tv["note"].replace('"', "'"),
                "outputs": [tv["input"].replace(".in.f32", f".out{k}.f32") for k in range(len(ref.outs))]}
               for tv in fman["test_vector"]]
    text = manifest_text(name, fman, ftext, stem, sha256(data), sha256(onnx_bytes), vectors, cal_desc)
    (out / "manifest.toml").write_text(text)
    man = tomllib.loads(text)
    for key in ("input", "ssd", "classifier", "crop", "labels"):
        if man.get(key) != fman.get(key):
            raise SystemExit(f"{name}: [{key}] differs from {fpkg}'s")
    record.update({"tflite_bytes": len(data), "tflite_sha256": sha256(data),
                   "onnx_bytes": len(onnx_bytes), "onnx_sha256": sha256(onnx_bytes),
                   "float_tract_file": fman["file"], "float_tract_sha256": fman["sha256"]})
    return record


# ---------------------------------------------------------------- main

def check_against_committed(name, fresh_root):
    bad = []
    new = sorted(str(p.relative_to(fresh_root / name)) for p in (fresh_root / name).rglob("*") if p.is_file())
    old_dir = PACKAGES / name
    old = sorted(str(p.relative_to(old_dir)) for p in old_dir.rglob("*")
                 if p.is_file() and p.suffix != ".md") if old_dir.exists() else []
    if new != old:
        bad.append(f"{name}: files differ: {sorted(set(new) ^ set(old))}")
    for f in new:
        if f in old and (fresh_root / name / f).read_bytes() != (old_dir / f).read_bytes():
            bad.append(f"{name}/{f} differs")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temporary folder, compare with models/packages")
    ap.add_argument("--measure", action="store_true", help="measure the accuracy cost, print JSON")
    ap.add_argument("--out", type=Path, default=PACKAGES,
                    help="package root to write (and, with --measure, to read) the int8 packages "
                         "(default: models/packages)")
    ap.add_argument("packages", nargs="*", default=SHIPPED)
    a = ap.parse_args()
    for p in a.packages:
        if p not in ALL:
            raise SystemExit(f"unknown package {p}; known: {', '.join(ALL)}")
    import tensorflow as tf
    import tf2onnx
    import onnx
    import onnxruntime
    have = {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}
    if have != VERSIONS:
        print(f"warning: versions {have}, the committed files were made with {VERSIONS}")
    if a.measure:
        import measure
        print(json.dumps(measure.measure(a.packages, sys.modules[__name__], a.out), indent=1))
        return 0
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "out" if a.check else a.out
        for p in a.packages:
            rec = build(p, root, tmp)
            print(f"{p}: {rec['tflite_bytes']} bytes {rec['tflite_sha256']} (.tflite), "
                  f"{rec['onnx_bytes']} bytes {rec['onnx_sha256']} (.onnx)", flush=True)
            if a.check:
                bad += check_against_committed(p, root)
    if a.check:
        print("check FAILED:\n  " + "\n  ".join(bad) if bad else
              "check OK: rebuilt packages are byte-identical to the committed ones")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
