#!/usr/bin/env python3
"""Build daemon/assets/demo.y4m: a short deterministic clip panned and zoomed over real photos.

Only numpy and Pillow are needed.  Run from anywhere:

    python3 daemon/assets/make_demo_clip.py            # writes daemon/assets/demo.y4m
    python3 daemon/assets/make_demo_clip.py -o /tmp/x.y4m

The photos and their licences are listed in daemon/assets/SOURCES.md.  Output:
320x240, 10 fps, 50 frames (5 s), 8-bit 4:2:0 ('C420jpeg' chroma siting), BT.601
limited range (the range hal/src/pixel.rs assumes when no XCOLORRANGE is given).
The same inputs and Pillow version give byte-identical output.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "data" / "faces"

W, H = 320, 240
FPS = 10
FRAMES_PER_SHOT = 25  # 2.5 s per photo, 2 photos -> 50 frames, ~5.8 MB

# Per photo: file, face box in source pixels (x, y, w, h), start and end crop
# windows (x, y, w, h) in source pixels, all 4:3 so nothing is stretched.
SHOTS = [
    {
        "name": "astronaut (Eileen Collins, NASA, public domain), smiling",
        "file": "../astronaut.png",
        "face": (170, 55, 115, 135),
        "start": (0.0, 0.0, 512.0, 384.0),
        "end": (88.0, 0.0, 280.0, 210.0),
    },
    {
        "name": "Grace Hopper (US Navy, public domain), neutral",
        "file": "neutral_matplotlib_grace_hopper.jpg",
        "face": (165, 150, 190, 185),
        "start": (0.0, 60.0, 512.0, 384.0),
        "end": (100.0, 120.0, 320.0, 240.0),
    },
]

MIN_FACE_PX = 60


def find_photo(file: str) -> Path:
    p = FACES / file
    if p.is_file():
        return p
    if file == "../astronaut.png":
        # Fall back to scikit-image's own copy (located, not imported).
        spec = importlib.util.find_spec("skimage")
        if spec is not None and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                q = Path(loc) / "data" / "astronaut.png"
                if q.is_file():
                    return q
    sys.exit(f"missing input photo: {p}")


def smoothstep(t: float) -> float:
    return t * t * (3.0 - 2.0 * t)


def lerp_box(a, b, t):
    return tuple(x + (y - x) * t for x, y in zip(a, b))


def face_on_screen(face, box):
    fx, fy, fw, fh = face
    bx, by, bw, bh = box
    sx, sy = W / bw, H / bh
    return ((fx - bx) * sx, (fy - by) * sy, fw * sx, fh * sy)


def rgb_to_i420_limited(rgb: np.ndarray) -> bytes:
    """BT.601 limited range, chroma averaged over each 2x2 block (centred siting)."""
    f = rgb.astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    cb = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    cr = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0

    def sub(c: np.ndarray) -> np.ndarray:
        return (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2]) / 4.0

    def q(c: np.ndarray) -> bytes:
        return np.clip(np.floor(c + 0.5), 0, 255).astype(np.uint8).tobytes()

    return q(y) + q(sub(cb)) + q(sub(cr))


def render() -> list[bytes]:
    frames = []
    for shot in SHOTS:
        src = Image.open(find_photo(shot["file"])).convert("RGB")
        sw, sh = src.size
        for i in range(FRAMES_PER_SHOT):
            t = smoothstep(i / (FRAMES_PER_SHOT - 1))
            bx, by, bw, bh = lerp_box(shot["start"], shot["end"], t)
            assert bx >= 0 and by >= 0 and bx + bw <= sw and by + bh <= sh, (shot["file"], i)
            x, y, w, h = face_on_screen(shot["face"], (bx, by, bw, bh))
            assert x >= 0 and y >= 0 and x + w <= W and y + h <= H, (shot["file"], i, "face leaves frame")
            assert h >= MIN_FACE_PX, (shot["file"], i, "face too small")
            img = src.resize((W, H), Image.Resampling.BILINEAR, box=(bx, by, bx + bw, by + bh))
            frames.append(rgb_to_i420_limited(np.asarray(img)))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=Path(__file__).resolve().parent / "demo.y4m")
    args = ap.parse_args()
    frames = render()
    header = f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg XYSCSS=420JPEG\n".encode()
    with open(args.output, "wb") as out:
        out.write(header)
        for f in frames:
            out.write(b"FRAME\n")
            out.write(f)
    print(f"{args.output}: {len(frames)} frames, {W}x{H} @ {FPS} fps, {args.output.stat().st_size} bytes")
    for shot in SHOTS:
        a = face_on_screen(shot["face"], shot["start"])
        b = face_on_screen(shot["face"], shot["end"])
        print(f"  {shot['name']}: face on screen from {tuple(round(v) for v in a)} to {tuple(round(v) for v in b)}")


if __name__ == "__main__":
    main()
