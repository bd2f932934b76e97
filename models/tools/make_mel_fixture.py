#!/usr/bin/env python3
"""Reference log-mel features for the Rust front end (models/src/mel.rs), from librosa.

    python3 -m pip install librosa==0.11.0 numpy
    models/tools/make_mel_fixture.py [--check]

Writes models/tests/fixtures/logmel/: `input.f32` (1 s at 16 kHz, little-endian f32: a
100 Hz -> 4 kHz chirp, a harmonic tone and seeded white noise) and, per feature spec in
SPECS, `<name>.f32` = ln(librosa.feature.melspectrogram(y, sr, n_fft, hop_length,
win_length, n_mels, fmin, fmax) + log_offset), row-major [n_mels][frames], computed in
float64 from the float32 input; `specs.json` lists the specs. librosa's defaults are used for
everything else: center=True, pad_mode="constant", window="hann", power=2.0, htk=False,
norm="slaney". `--check` recomputes and compares with the committed files.
"""
import argparse, json, os, sys
import numpy as np
import librosa

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "models", "tests", "fixtures", "logmel")
SPECS = [
    dict(name="w400_h160_fft512_m40", sample_rate=16000, window=400, hop=160, n_fft=512,
         n_mels=40, fmin=0.0, fmax=8000.0, log_offset=1e-6),
    dict(name="w400_h160_fft400_m64_50_7600", sample_rate=16000, window=400, hop=160,
         n_fft=400, n_mels=64, fmin=50.0, fmax=7600.0, log_offset=1e-2),
    dict(name="w1024_h256_fft1024_m128", sample_rate=16000, window=1024, hop=256, n_fft=1024,
         n_mels=128, fmin=0.0, fmax=8000.0, log_offset=1e-10),
]


def signal():
    sr = 16000
    t = np.arange(sr // 2) / sr
    chirp = 0.4 * np.sin(2 * np.pi * (100 * t + (3900 / 1.0) * t**2))
    k = np.arange(1, 20)[:, None]
    tone = 0.3 * (np.sin(2 * np.pi * 150 * k * t[: sr // 4]) / k).sum(0) / 2
    noise = 0.05 * np.random.default_rng(7).standard_normal(sr // 4)
    return np.concatenate([chirp, tone, noise]).astype(np.float32)


def compute(x, s):
    y = x.astype(np.float64)
    mel = librosa.feature.melspectrogram(
        y=y, sr=s["sample_rate"], n_fft=s["n_fft"], hop_length=s["hop"],
        win_length=s["window"], n_mels=s["n_mels"], fmin=s["fmin"], fmax=s["fmax"])
    return np.log(mel + s["log_offset"]).astype("<f4")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    x = signal()
    if a.check:
        bad = 0
        got = np.fromfile(os.path.join(OUT, "input.f32"), "<f4")
        bad += not np.array_equal(got, x)
        for s in SPECS:
            ref = np.fromfile(os.path.join(OUT, s["name"] + ".f32"), "<f4")
            d = np.abs(ref - compute(x, s).ravel()).max()
            print(f"{s['name']}: max diff {d:.2e}")
            bad += d > 1e-5
        sys.exit(1 if bad else 0)
    os.makedirs(OUT, exist_ok=True)
    x.astype("<f4").tofile(os.path.join(OUT, "input.f32"))
    for s in SPECS:
        m = compute(x, s)
        m.tofile(os.path.join(OUT, s["name"] + ".f32"))
        s["frames"] = int(m.shape[1])
        print(s["name"], m.shape)
    json.dump({"librosa": librosa.__version__, "numpy": np.__version__, "specs": SPECS},
              open(os.path.join(OUT, "specs.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
