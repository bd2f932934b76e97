"""The images of make_int8.py: calibration (representative data set) and measurement.

Real photos only, all already in the repository or in a registry package:
- REPO: the 14 .png/.jpg photos of tests/data (CALIBRATION_PHOTOS, sha256-pinned: astronaut.png, its 640x480 JPEG, five_faces_640x480.jpg,
  coffee.png, tests/data/faces/*, tests/data/eval/faces/**, tests/data/eval/crops/**);
- SKIMAGE: 17 photographs shipped inside the scikit-image 0.26.0 wheel (skimage/data/);
- LFW: skimage.data.lfw_subset() (same wheel, lfw_subset.npy): 200 grey 25x25 images,
  the first 100 faces (Labeled Faces in the Wild), the last 100 non-faces. Faces 0-49
  calibrate the expression models; faces 50-99 are held out for measuring.

Preprocessing is models/tools/make_test_vectors.py's (bilinear, half-pixel centres, outside
reads black, BT.601 grey, (p - mean) / std in f32) with the package manifest's [input] and
[crop]; detector inputs are whole photos as [input] resize says (letterbox for BlazeFace);
expression inputs are face crops as the daemon cuts them (models/src/classifier.rs
crop_region: face box of the float short-range detector, square, margin), or the whole image
for tests/data/eval/crops (already face crops, as `emotiond eval --crops` uses them).
"""
import hashlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS))
import make_test_vectors as mtv  # noqa: E402  (sample, normalise, letterbox_roi, to_grey, ssd_decode)

ROOT = TOOLS.parents[1]
DATA = ROOT / "tests" / "data"
SKIMAGE = ["astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
           "color.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png",
           "motorcycle_left.png", "page.png", "retina.jpg", "rocket.jpg", "text.png"]
LFW_CALIBRATION = range(0, 50)
LFW_HELD_OUT = range(50, 100)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


# The tests/data photos of the calibration set, pinned (sha256): a photo added later is
# measured (repo_photos) but does not change the committed packages.
CALIBRATION_PHOTOS = {
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "astronaut_640x480.jpg": "23c992949d723b5871c00ccb9a26e4891f391703549604a0b95d74569b7552ca",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "eval/crops/happy/astronaut.jpg": "81175f978ed2702f9bee3e92c7e183d1338f9845b572a388c47faf7d78a1d909",
    "eval/crops/happy/astronaut_mirrored.jpg": "06220035b18e9cb7173893dee7b6c446d24ea05137cba5e9219731f3cf59e9af",
    "eval/crops/neutral/grace_hopper.jpg": "282ec46c358a63f2fbc2037241c9ab19827db66c2bd49526773308ab6dccde78",
    "eval/crops/neutral/grace_hopper_mirrored.jpg": "013d4517cf1743d35549236004513c2ec1754e596663c9251ac17a6285e7d08d",
    "eval/faces/happy/astronaut_crop.jpg": "076e6e119a2aa1ad3b7279c229f6c10ad36f2006b764961ee22746091b14112f",
    "eval/faces/happy/astronaut_wide_mirrored.jpg": "3efcf48afbf5eb57e19e2068d52bdeaa83199d349498c2a252bc305ce828ecaa",
    "eval/faces/neutral/grace_hopper_crop.jpg": "bf48e862d71bd55a53c0da27e1d104ab93dfa1c2820585a9a726f2a9bc479ca6",
    "eval/faces/neutral/grace_hopper_wide_mirrored.jpg": "009f44afb8cfc38c4d01d9f2df8d7f5c7ceeebfaca16574e82a328142ba5690e",
    "faces/neutral_matplotlib_grace_hopper.jpg": "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
    "faces/noface_skimage_rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    "five_faces_640x480.jpg": "6c1e09160ccc56757ed74e2f5cbb377d17f8066545146dc7efb157826ba125c5",
}


def calibration_photos():
    out = []
    for name, want in CALIBRATION_PHOTOS.items():
        p = DATA / name
        if sha256(p) != want:
            raise SystemExit(f"{p}: sha256 {sha256(p)} is not the calibration photo's {want}")
        out.append(p)
    return out


def repo_photos():
    """Every real photo of tests/data (measurement)."""
    exts = {".png", ".jpg", ".jpeg"}
    return sorted(p for p in DATA.rglob("*") if p.suffix.lower() in exts)


def is_crop(path):
    p = Path(path).resolve()
    return p.is_relative_to(DATA) and "crops" in p.relative_to(DATA).parts


def skimage_photos():
    import skimage
    d = Path(skimage.__file__).parent / "data"
    return [d / n for n in SKIMAGE], skimage.__version__


def lfw():
    """(200, 25, 25) uint8 grey: faces 0-99, non-faces 100-199."""
    import skimage.data
    a = skimage.data.lfw_subset()
    return np.clip(np.floor(a * 255.0 + 0.5), 0, 255).astype(np.uint8)


def image_tensor(img, roi, spec):
    """One image region (x0, y0, w, h) in pixels -> the [input] tensor [1, H, W, C] f32."""
    _, h, w, c = spec["shape"]
    if spec["color"] == "grey":
        img = mtv.to_grey(img) if img.shape[2] == 3 else img
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if spec["resize"] == "letterbox":
        x0, y0, rw, rh = roi
        s = max(rw, rh)
        roi = (x0 + (rw - s) / 2.0, y0 + (rh - s) / 2.0, s, s)
    px = mtv.sample(img, roi, w, h)
    if spec["color"] == "bgr":
        px = px[..., ::-1]
    return mtv.normalise(px, spec["mean"], spec["std"])


def whole(img):
    return (0.0, 0.0, float(img.shape[1]), float(img.shape[0]))


def crop_roi(box_xyxy, crop):
    """models/src/classifier.rs crop_region, in pixels."""
    x1, y1, x2, y2 = box_xyxy
    bw, bh = x2 - x1, y2 - y1
    cx, cy = x1 + bw / 2.0, y1 + bh / 2.0
    if crop.get("square", True):
        bw = bh = max(bw, bh)
    m = 1.0 + 2.0 * crop.get("margin", 0.0)
    bw, bh = bw * m, bh * m
    return (cx - bw / 2.0, cy - bh / 2.0, bw, bh)


def detect(run_model, man, img):
    """Faces (score, box xyxy in image pixels) of a detector package on an RGB image;
    run_model(x) -> outputs in model order (float, dequantised)."""
    spec, s = man["input"], man["ssd"]
    _, in_h, in_w, _ = spec["shape"]
    roi = mtv.letterbox_roi(img.shape[1], img.shape[0]) if spec["resize"] == "letterbox" \
        else whole(img)
    outs = run_model(image_tensor(img, whole(img), spec))
    dets = mtv.ssd_decode(s, outs[s["boxes_output"]], outs[s["scores_output"]], in_w, in_h)
    x0, y0, sw, sh = roi
    res = []
    for d in dets:
        b = d["box"]
        res.append((float(d["score"]), (x0 + b[0] * sw, y0 + b[1] * sh,
                                        x0 + b[2] * sw, y0 + b[3] * sh)))
    return res
