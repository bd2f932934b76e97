"""`make_int8.py --measure`: the accuracy cost of each int8 package against its float
original, on the committed files. Both run on TensorFlow 2.21's TFLite kernels (the float
package's tract file, fp32, reference kernels; the int8 .tflite with the TFLite engine's
input quantisation and output dequantisation, reference kernels).

- vectors: the largest |int8 - float expected| per output on the float package's vectors;
- detectors: on every real photo of tests/data, faces of both (manifest SSD decode and
  weighted NMS); a float face counts as kept when an int8 face overlaps it at IoU >= 0.5
  (one-to-one, best IoU first); agreement = kept / (float faces + unmatched int8 faces),
  1 for a photo where neither finds a face;
- expression models: top-1 of both on the same crops: the faces the float short-range
  detector finds in every tests/data photo (cut as the daemon does) and the whole
  tests/data/eval/crops images; as is only (the mirrored copies in eval are separate files).
  Separately, the 50 held-out LFW faces (lfw_subset 50-99, not in the calibration set).
The int8 expression models run on TFLite's reference, builtin and XNNPACK kernels and on
onnxruntime (the .onnx): their agreements differ (int8 kernels round differently), and the
lowest one is the package's figure. A package is shipped only with agreement >= 95 % on the
tests/data photos.
"""
import numpy as np

import calibration as cal

GATE = 0.95


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(fl, q):
    pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(fl) for j, b in enumerate(q)),
                   reverse=True)
    used_f, used_q, ious = set(), set(), []
    for v, i, j in pairs:
        if v >= 0.5 and i not in used_f and j not in used_q:
            used_f.add(i)
            used_q.add(j)
            ious.append(v)
    return len(used_f), len(q) - len(used_q), ious


def vectors_diff(mk, root, name, fpkg, fman):
    import tomllib
    man = tomllib.loads((root / name / "manifest.toml").read_text())
    data = (root / name / man["files"]["tflite"]["file"]).read_bytes()
    run = mk.Runner(data)
    res = {}
    for tv in fman["test_vector"]:
        x = np.fromfile(mk.PACKAGES / fpkg / tv["input"], "<f4").reshape(fman["input"]["shape"])
        want = [np.fromfile(mk.PACKAGES / fpkg / o, "<f4") for o in tv["outputs"]]
        got = run(x)
        res[tv["input"]] = {
            "max_abs_diff": [float(np.abs(g.reshape(-1) - w).max()) for g, w in zip(got, want)],
            "max_abs_diff_float_clipped_as_int8": [
                float(np.abs(g.reshape(-1) - w).max())
                for g, w in zip(got, mk.clip_outputs(fman, want))]}
    return res, run


def measure_detector(mk, fman, flt, q):
    photos = cal.repo_photos()
    rows, kept, denom, ious = [], 0, 0, []
    for p in photos:
        img = cal.rgb(p)
        a = [b for _, b in cal.detect(flt, fman, img)]
        b = [b for _, b in cal.detect(q, fman, img)]
        k, extra, iv = match(a, b)
        kept += k
        denom += len(a) + extra
        ious += iv
        rows.append({"photo": mk.rel(p), "float_faces": len(a), "int8_faces": len(b),
                     "kept_iou_0.5": k, "extra_int8": extra,
                     "ious": [round(v, 3) for v in iv]})
    agreement = 1.0 if denom == 0 else kept / denom
    return {"photos": len(photos), "float_faces": sum(r["float_faces"] for r in rows),
            "int8_faces": sum(r["int8_faces"] for r in rows), "kept": kept,
            "agreement": agreement, "min_iou": min(ious) if ious else None,
            "mean_iou": float(np.mean(ious)) if ious else None, "per_photo": rows}


def top1(run, x, fman):
    return int(np.argmax(run(x)[fman["classifier"]["output"]].reshape(-1)))


def measure_expression(mk, fman, flt, runners):
    """runners: {engine: f32 runner of the int8 package}; the gate is the lowest agreement."""
    photos = cal.repo_photos()
    items = [(t, x) for t, x in mk.classifier_inputs(fman, photos, [])
             if " mirrored" not in t]  # the as-is crops (tags of mirrored copies end so)
    lfw = mk.classifier_inputs(fman, [], cal.LFW_HELD_OUT)
    labels = fman["labels"]
    ref = {t: top1(flt, x, fman) for t, x in items}
    ref_lfw = [top1(flt, x, fman) for _, x in lfw]
    per_engine, rows = {}, {t: {"float": labels[a]} for t, a in ref.items()}
    for name, q in runners.items():
        same = 0
        for t, x in items:
            b = top1(q, x, fman)
            same += ref[t] == b
            rows[t][name] = labels[b]
        lfw_same = sum(a == top1(q, x, fman) for a, (_, x) in zip(ref_lfw, lfw))
        per_engine[name] = {"same_top1": same, "agreement": same / len(items),
                            "lfw_held_out_same_top1": lfw_same,
                            "lfw_held_out_agreement": lfw_same / len(lfw)}
    return {"crops": len(items), "lfw_held_out_faces": len(lfw), "per_engine": per_engine,
            "agreement": min(e["agreement"] for e in per_engine.values()),
            "per_crop": [{"crop": t, **r} for t, r in rows.items()]}


def measure(names, mk, root):
    out = {}
    for name in names:
        fpkg = mk.float_name(name)
        fman, _ = mk.load_manifest(fpkg)
        vec, q = vectors_diff(mk, root, name, fpkg, fman)
        flt = mk.Runner((mk.PACKAGES / fpkg / fman["file"]).read_bytes())
        rec = {"float": f"{fpkg} ({fman['file']})", "vectors_max_abs_diff_vs_float": vec}
        if fman["task"] == "face_detection":
            rec["faces_on_tests_data_photos"] = measure_detector(mk, fman, flt, q)
            agreement = rec["faces_on_tests_data_photos"]["agreement"]
        else:
            import onnxruntime as ort
            onnx_file = (root / name / mk.load_manifest_at(root, name)["files"]["onnxruntime"]["file"])
            tfl = (root / name / mk.load_manifest_at(root, name)["files"]["tflite"]["file"]).read_bytes()
            runners = {"tflite_reference": q, "tflite_builtin": mk.Runner(tfl, "builtin"),
                       "tflite_xnnpack": mk.Runner(tfl, "xnnpack"),
                       "onnxruntime": mk.ort_runner(onnx_file.read_bytes(),
                                                    ort.GraphOptimizationLevel.ORT_ENABLE_ALL)}
            rec["top1_on_tests_data_photos"] = measure_expression(mk, fman, flt, runners)
            agreement = rec["top1_on_tests_data_photos"]["agreement"]
        rec["ship"] = agreement is not None and agreement >= GATE
        out[name] = rec
    return out
