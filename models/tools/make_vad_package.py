#!/usr/bin/env python3
"""Build models/packages/silero_vad/ from the PyPI silero-vad 6.2.3 wheel.

    python3 -m pip install onnxruntime==1.32.0 numpy soundfile
    models/tools/make_vad_package.py [--check]

Downloads the wheel into $MODELS_CACHE (default models-cache/) with `pip download`, checks the
sha256 of the wheel and of `silero_vad/data/silero_vad_openvino_16k.onnx`, copies that file and
the wheel's LICENSE into the package, and writes the test vectors: the model run with
onnxruntime (CPU) on a deterministic signal, its recurrent state carried from chunk to chunk,
with the input contract of silero-vad's OnnxWrapper at 16 kHz (64 samples of context from the
previous chunk + 512 new samples, state [2, 1, 128] starting at zero). Each vector is one step:
inputs (the 576 samples, the state before) -> outputs (speech probability, the state after).
`--check` regenerates into a temporary folder and compares byte for byte.

The signal: 0.5 s of silence, 1 s of a synthetic vowel-like harmonic tone (120 Hz, formant
envelope, vibrato), 0.5 s of white noise at -30 dBFS (numpy seed 4), so the vectors cover
state carried through quiet, voiced and noisy input. No recording is committed.
"""
import argparse, hashlib, os, shutil, subprocess, sys, tempfile, zipfile
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = os.path.join(ROOT, "models", "packages", "silero_vad")
CACHE = os.environ.get("MODELS_CACHE", os.path.join(ROOT, "models-cache"))
WHEEL = "silero_vad-6.2.3-py3-none-any.whl"
WHEEL_SHA256 = "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
MEMBER = "silero_vad/data/silero_vad_openvino_16k.onnx"
MEMBER_SHA256 = "7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87"
LICENSE = "silero_vad-6.2.3.dist-info/licenses/LICENSE"
STEPS = [0, 10, 20, 30, 40, 50, 60]  # chunks written as vectors (32 ms each)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def signal():
    sr = 16000
    t = np.arange(sr) / sr
    f0 = 120.0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    vowel = sum((1.0 / k) * np.exp(-((k * 120.0 - 700.0) ** 2) / (2 * 300.0**2)) * np.sin(k * phase)
                for k in range(1, 30))
    vowel = 0.3 * vowel / np.max(np.abs(vowel)) * np.minimum(1, np.minimum(t, 1 - t) * 20)
    noise = np.random.default_rng(4).standard_normal(sr // 2) * 10 ** (-30 / 20)
    x = np.concatenate([np.zeros(sr // 2), vowel, noise]).astype(np.float32)
    return x


def build(out):
    os.makedirs(os.path.join(CACHE, "wheels"), exist_ok=True)
    wheel = os.path.join(CACHE, "wheels", WHEEL)
    if not os.path.exists(wheel):
        subprocess.check_call([sys.executable, "-m", "pip", "download", "silero-vad==6.2.3",
                               "--no-deps", "--only-binary=:all:", "-d", os.path.dirname(wheel)])
    wb = open(wheel, "rb").read()
    assert sha(wb) == WHEEL_SHA256, f"wheel sha256 {sha(wb)}"
    with zipfile.ZipFile(wheel) as z:
        model = z.read(MEMBER)
        lic = z.read(LICENSE)
    assert sha(model) == MEMBER_SHA256, f"model sha256 {sha(model)}"
    os.makedirs(os.path.join(out, "vectors"), exist_ok=True)
    open(os.path.join(out, "silero_vad_openvino_16k.onnx"), "wb").write(model)
    open(os.path.join(out, "LICENSE"), "wb").write(lic)

    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    x = signal()
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros(64, np.float32)
    probs = []
    for i in range(len(x) // 512):
        chunk = x[i * 512:(i + 1) * 512]
        inp = np.concatenate([context, chunk])[None, :].astype(np.float32)
        prob, new_state = s.run(None, {"input": inp, "state": state})
        probs.append(float(prob[0, 0]))
        if i in STEPS:
            base = os.path.join(out, "vectors", f"step{i:02d}")
            inp.astype("<f4").tofile(base + ".in.f32")
            state.astype("<f4").tofile(base + ".state.f32")
            prob.astype("<f4").tofile(base + ".out0.f32")
            new_state.astype("<f4").tofile(base + ".out1.f32")
        state = new_state
        context = chunk[-64:]
    return probs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.check:
        with tempfile.TemporaryDirectory() as d:
            build(d)
            bad = 0
            for rel in sorted(os.listdir(os.path.join(d, "vectors"))) :
                p = os.path.join("vectors", rel)
                same = open(os.path.join(d, p), "rb").read() == open(os.path.join(PKG, p), "rb").read()
                print(("ok   " if same else "DIFF ") + p)
                bad += not same
            for p in ["silero_vad_openvino_16k.onnx", "LICENSE"]:
                same = open(os.path.join(d, p), "rb").read() == open(os.path.join(PKG, p), "rb").read()
                print(("ok   " if same else "DIFF ") + p)
                bad += not same
            sys.exit(1 if bad else 0)
    probs = build(PKG)
    print("speech probability per 32 ms chunk:", " ".join(f"{p:.2f}" for p in probs))


if __name__ == "__main__":
    main()
