#!/usr/bin/env python3
"""The detect stage against MediaPipe's own C++ face detection (issue 16), one core, measured
alternately in the same run.

MediaPipe side: PyPI `mediapipe==0.10.21` (the wheel models/tools/fetch_blazeface.sh takes the
models from), `mp.solutions.face_detection.FaceDetection(model_selection=0|1)`: its Python API
runs MediaPipe's C++ graph (FaceDetectionShortRangeCpu / FaceDetectionFullRangeCpu: letterbox
to 128x128 or 192x192, the same .tflite files the `tflite` engine runs, on TFLite + XNNPACK,
box decoding, NMS). emotiond side: `emotiond bench PHOTO --engine tflite|tract` with
`models.detector = builtin:blazeface_short_range|blazeface_full_range`, its `detect_ms`
(letterbox into the input tensor, inference, box decoding, NMS).

What is timed: detection on an image decoded beforehand, on both sides; JPEG decoding is
excluded on both. Each photo is decoded once per side (Pillow for MediaPipe, the image crate
for emotiond; `emotiond bench` decodes before it starts its clock) and the same pixels are
detected `--frames` times. MediaPipe: the wall time of `process(rgb)`, which also includes
copying the array into an ImageFrame packet and converting the detections to Python objects
(so MediaPipe carries a little more than emotiond's `detect_ms`); mean after a warm-up.
emotiond: `detect_ms`, the mean over all its frames (its first, cold invocation included).

One core: this process pins itself to `--core` (default 0) before anything starts, so
MediaPipe's graph threads and every `emotiond bench` child run on that one core; TFLite/XNNPACK
use one thread on both sides (`--threads 1` for emotiond; MediaPipe's CPU inference
calculator defaults to one XNNPACK thread on desktop Linux).

Alternation: for each round, model and photo, MediaPipe's block and emotiond's block per
engine run one after the other, the order reversed every other round, so drift of the machine
hits both sides alike.

    python3 -m venv /tmp/mpvenv && /tmp/mpvenv/bin/pip install mediapipe==0.10.21 pillow
    models/tools/fetch_runtimes.sh && cargo build --release -p emotiond
    /tmp/mpvenv/bin/python benches/compare_mediapipe.py            # ~8 min on the 2-core VM
    /tmp/mpvenv/bin/python benches/compare_mediapipe.py --quick    # one photo, few frames (CI)

or without a venv, only what the face detection imports (what CI does, ~25 s of pip):

    python3 -m pip install --no-deps --target target/mpref -r benches/requirements-mediapipe.txt
    PYTHONPATH=target/mpref python3 benches/compare_mediapipe.py --quick

Output: one JSON object per line on stdout (`"kind": "sample"` per round, model, photo and
engine; `"kind": "summary"` per model and engine: mean ms per detect on each side over all
rounds and photos, and `ratio` = MediaPipe ms / emotiond ms, so >= 1.0 means emotiond is at
least as fast); a Markdown table of the summaries on stderr. Exits 1 when the two sides found
different numbers of faces on a photo (they would not have run the same detection).
"""
import argparse, json, os, pathlib, statistics, subprocess, sys, time, tomllib

from benchlib import out

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = {"blazeface_short_range": 0, "blazeface_full_range": 1}  # model_selection


def default_photos():
    d = ROOT / "tests" / "data"
    return ([d / "astronaut_640x480.jpg"] + sorted((d / "faces").glob("*.jpg"))
            + sorted((d / "eval" / "faces").glob("**/*.jpg")))


def args_parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", type=pathlib.Path,
                    help="emotiond binary (default target/release/emotiond; --quick: target/debug)")
    ap.add_argument("--frames", type=int, default=200, help="detections per photo per block")
    ap.add_argument("--warmup", type=int, default=10, help="MediaPipe calls not timed per block")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--engines", default="tflite,tract")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--photos", nargs="*", type=pathlib.Path)
    ap.add_argument("--tflite-library", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("RUNTIMES_CACHE", ROOT / "runtimes-cache"))
                    / "tflite" / "libtensorflowlite_c.so")
    ap.add_argument("--quick", action="store_true",
                    help="one photo, 10 frames, one round, the debug build: for CI, figures mean nothing")
    a = ap.parse_args()
    if a.quick:
        a.frames, a.warmup, a.rounds = 10, 2, 1
        a.photos = a.photos or [ROOT / "tests" / "data" / "astronaut_640x480.jpg"]
    a.bin = a.bin or ROOT / "target" / ("debug" if a.quick else "release") / "emotiond"
    a.photos = a.photos or default_photos()
    a.engines = [e for e in a.engines.split(",") if e]
    a.models = [m for m in a.models.split(",") if m]
    for m in a.models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r} (known: {', '.join(MODELS)})")
    for e in a.engines:
        if e not in ("tflite", "tract", "onnxruntime"):
            ap.error(f"unknown engine {e!r} (tflite, tract or onnxruntime)")
    if a.frames < 1 or a.rounds < 1:
        ap.error("--frames and --rounds must be at least 1")
    if not a.bin.is_file():
        ap.error(f"{a.bin}: no such file (cargo build --release -p emotiond)")
    if "tflite" in a.engines and not a.tflite_library.is_file():
        ap.error(f"{a.tflite_library}: no such file (models/tools/fetch_runtimes.sh)")
    for p in a.photos:
        if not p.is_file():
            ap.error(f"{p}: no such file")
    return a


def score_threshold(model):
    """The package's own score threshold, handed to MediaPipe too so both keep the same boxes."""
    m = tomllib.loads((ROOT / "models" / "packages" / model / "manifest.toml").read_text())
    return float(m["ssd"]["min_score_thresh"])


def mediapipe_block(fd, rgb, frames, warmup):
    for _ in range(warmup):
        fd.process(rgb)
    times, faces = [], 0
    for _ in range(frames):
        t = time.perf_counter()
        r = fd.process(rgb)
        times.append((time.perf_counter() - t) * 1e3)
        faces += len(r.detections or [])
    return statistics.fmean(times), faces / frames


def emotiond_block(a, cfg, photo, engine):
    cmd = [str(a.bin), "bench", str(photo), "--frames", str(a.frames), "--engine", engine,
           "--threads", "1", "--config", str(cfg)]
    if engine == "tflite":
        cmd += ["--delegate", "xnnpack", "--tflite-library", str(a.tflite_library)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"compare_mediapipe: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    # the report line (with `--stages` further lines follow it, one per stage)
    for line in p.stdout.splitlines():
        if line.startswith("{") and '"detect_ms"' in line:
            return json.loads(line)
    raise SystemExit(f"compare_mediapipe: no report line with detect_ms from {' '.join(cmd)}:\n{p.stdout[-2000:]}")


def main():
    a = args_parse()
    os.sched_setaffinity(0, {a.core})  # before MediaPipe starts its threads; children inherit it
    try:
        import numpy as np
        from PIL import Image
        import mediapipe as mp
    except ImportError as e:
        raise SystemExit(f"compare_mediapipe: {e}; install: pip install mediapipe==0.10.21 pillow")
    if mp.__version__ != "0.10.21":
        print(f"compare_mediapipe: mediapipe {mp.__version__}, not the 0.10.21 the packages come from",
              file=sys.stderr)
    import tempfile
    tmpdir = tempfile.TemporaryDirectory(prefix="compare_mediapipe.")  # removed at exit
    tmp = pathlib.Path(tmpdir.name)
    cfgs, fds = {}, {}
    for m in a.models:
        cfgs[m] = tmp / f"{m}.toml"
        cfgs[m].write_text(f'[models]\ndetector = "builtin:{m}"\n')
        fds[m] = mp.solutions.face_detection.FaceDetection(
            model_selection=MODELS[m], min_detection_confidence=score_threshold(m))
    rgbs = {p: np.ascontiguousarray(np.asarray(Image.open(p).convert("RGB"))) for p in a.photos}
    samples = []
    for r in range(a.rounds):
        for m in a.models:
            for photo in a.photos:
                order = ["mediapipe"] + a.engines
                if r % 2:
                    order.reverse()
                got = {}
                for side in order:
                    if side == "mediapipe":
                        got[side] = mediapipe_block(fds[m], rgbs[photo], a.frames, a.warmup)
                    else:
                        got[side] = emotiond_block(a, cfgs[m], photo, side)
                mp_ms, mp_faces = got["mediapipe"]
                for e in a.engines:
                    b = got[e]
                    s = dict(kind="sample", round=r, model=m, photo=str(photo.relative_to(ROOT)
                             if photo.resolve().is_relative_to(ROOT) else photo),
                             engine=b["detector_engine"], frames=a.frames,
                             mediapipe_ms=round(mp_ms, 4), emotiond_ms=round(b["detect_ms"], 4),
                             ratio=round(mp_ms / b["detect_ms"], 3),
                             mediapipe_faces=mp_faces, emotiond_faces=b["faces_per_frame"])
                    samples.append(s)
                    out(**s)
    for d in fds.values():
        d.close()
    rows = []
    for m in a.models:
        for e in sorted({s["engine"] for s in samples if s["model"] == m}):
            ss = [s for s in samples if s["model"] == m and s["engine"] == e]
            mp_ms = statistics.fmean(s["mediapipe_ms"] for s in ss)
            em_ms = statistics.fmean(s["emotiond_ms"] for s in ss)
            per_round = [statistics.fmean(s["mediapipe_ms"] for s in ss if s["round"] == r)
                         / statistics.fmean(s["emotiond_ms"] for s in ss if s["round"] == r)
                         for r in range(a.rounds)]
            row = dict(kind="summary", model=m, engine=e, photos=len(a.photos), rounds=a.rounds,
                       frames=a.frames, mediapipe_ms=round(mp_ms, 3), emotiond_ms=round(em_ms, 3),
                       ratio=round(mp_ms / em_ms, 3), ratio_min_round=round(min(per_round), 3),
                       ratio_max_round=round(max(per_round), 3),
                       same_faces=all(s["mediapipe_faces"] == s["emotiond_faces"] for s in ss),
                       mediapipe=mp.__version__, quick=a.quick)
            rows.append(row)
            out(**row)
    print("| model | engine | MediaPipe ms/detect | emotiond ms/detect | ratio (MP / emotiond; per round) |",
          file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for w in rows:
        print(f"| {w['model']} | {w['engine']} | {w['mediapipe_ms']:.3f} | {w['emotiond_ms']:.3f} | "
              f"**{w['ratio']:.2f}×** ({w['ratio_min_round']:.2f}–{w['ratio_max_round']:.2f}) |",
              file=sys.stderr)
    if not samples:
        raise SystemExit("compare_mediapipe: nothing measured")
    # Same model files, same thresholds: a different number of faces means the two sides did
    # not run the same detection, and their times would not be comparable.
    differ = [s for s in samples if s["mediapipe_faces"] != s["emotiond_faces"]]
    if differ:
        raise SystemExit("compare_mediapipe: MediaPipe and emotiond found different numbers of faces in "
                         + ", ".join(sorted({f"{s['model']}/{s['engine']} on {s['photo']}" for s in differ})))


if __name__ == "__main__":
    main()
