//! Small faces (people further from the camera): the short-range and full-range BlazeFace
//! packages on the same frames.
//!
//! No redistributable real photo of a group at a few metres was found in the registry
//! packages checked (see tests/data/faces/SOURCES.md), so the frames are composites of the
//! real photos already here: three hand-boxed faces (astronaut.png, Grace Hopper, the
//! astronaut mirrored), each cut out with its surroundings, scaled so that the face is
//! `width` pixels wide, and pasted side by side on the real no-face photo of a rocket
//! launch (640×480). A 16 cm wide face in a 640 px wide frame at 3 m is about 47 px wide
//! behind a 40° (horizontal) lens and 24 px behind a 70° one.

use emotiond_models::{Attempt, BBox, FaceDetector, Runtimes, builtin, load_engine};
use image::{RgbImage, imageops};
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

fn detector(name: &str) -> FaceDetector {
    let p = builtin::load(name).expect("embedded").expect("loads");
    FaceDetector::new(
        &p,
        load_engine(&p, &Attempt::Tract, &Runtimes::default(), 1).unwrap(),
    )
    .unwrap()
}

/// (photo, mirrored, hand-drawn face box x, y, w, h in its pixels; tests/data/faces/SOURCES.md)
const FACES: [(&str, bool, [u32; 4]); 3] = [
    ("astronaut.png", false, [170, 55, 115, 135]),
    (
        "faces/neutral_matplotlib_grace_hopper.jpg",
        false,
        [165, 150, 190, 185],
    ),
    ("astronaut.png", true, [170, 55, 115, 135]),
];

/// The background (640×480) and each face cut out: the face with 0.8 of its size around it,
/// inside the photo, and the face box's offset in the cut-out.
struct Parts {
    bg: RgbImage,
    cuts: Vec<(RgbImage, u32, u32, u32, u32)>,
}

fn parts() -> Parts {
    let bg = image::open(data("faces/noface_skimage_rocket.jpg"))
        .unwrap()
        .to_rgb8();
    let bg = imageops::resize(&bg, 640, 480, imageops::FilterType::Triangle);
    let mut cuts = Vec::new();
    for (file, mirror, [fx, fy, fw, fh]) in FACES {
        let mut img = image::open(data(file)).unwrap().to_rgb8();
        let mut fx = fx;
        if mirror {
            img = imageops::flip_horizontal(&img);
            fx = img.width() - fx - fw;
        }
        let (mx, my) = (fw * 4 / 5, fh * 4 / 5);
        let x0 = fx.saturating_sub(mx);
        let y0 = fy.saturating_sub(my);
        let x1 = (fx + fw + mx).min(img.width());
        let y1 = (fy + fh + my).min(img.height());
        let cut = imageops::crop_imm(&img, x0, y0, x1 - x0, y1 - y0).to_image();
        cuts.push((cut, fx - x0, fy - y0, fw, fh));
    }
    Parts { bg, cuts }
}

/// A 640×480 frame with the three faces `width` px wide, and their boxes (normalised).
fn frame(parts: &Parts, width: u32) -> (RgbImage, Vec<BBox>) {
    let mut bg = parts.bg.clone();
    let mut boxes = Vec::new();
    for (k, (cut, ox, oy, fw, fh)) in parts.cuts.iter().enumerate() {
        let s = width as f32 / *fw as f32;
        let (cw, ch) = (
            ((cut.width() as f32 * s).round() as u32).max(1),
            ((cut.height() as f32 * s).round() as u32).max(1),
        );
        let small = imageops::resize(cut, cw, ch, imageops::FilterType::Triangle);
        let (px, py) = (107 + 213 * k as i64 - cw as i64 / 2, 240 - ch as i64 / 2);
        imageops::replace(&mut bg, &small, px, py);
        boxes.push(BBox {
            x: (px as f32 + *ox as f32 * s) / 640.0,
            y: (py as f32 + *oy as f32 * s) / 480.0,
            w: *fw as f32 * s / 640.0,
            h: *fh as f32 * s / 480.0,
        });
    }
    (bg, boxes)
}

/// (placed faces found, detections on no placed face): a face is found when a detection's
/// centre lies in its box.
fn count(d: &mut FaceDetector, img: &RgbImage, faces: &[BBox]) -> (usize, usize) {
    let dets = d.detect(img).unwrap();
    let inside =
        |b: &BBox, (x, y): (f32, f32)| x >= b.x && x <= b.x + b.w && y >= b.y && y <= b.y + b.h;
    let found = faces
        .iter()
        .filter(|f| dets.iter().any(|det| inside(f, det.bbox.center())))
        .count();
    let extra = dets
        .iter()
        .filter(|det| !faces.iter().any(|f| inside(f, det.bbox.center())))
        .count();
    (found, extra)
}

#[test]
fn full_range_finds_at_least_as_many_small_faces_as_short_range() {
    let mut short = detector("blazeface_short_range");
    let mut full = detector("blazeface_full_range");
    let parts = parts();
    for width in [32, 40, 48, 56, 64, 80, 100, 120] {
        let (img, faces) = frame(&parts, width);
        let (s, s_extra) = count(&mut short, &img, &faces);
        let (f, f_extra) = count(&mut full, &img, &faces);
        eprintln!(
            "face width {width:3} px of 640: short range {s}/3 (+{s_extra} extra), full range {f}/3 (+{f_extra} extra)"
        );
        assert!(f >= s, "{width} px: full range {f} < short range {s}");
        assert_eq!(f_extra, 0, "{width} px: full range false faces");
        assert_eq!(s_extra, 0, "{width} px: short range false faces");
        if width >= 56 {
            // measured here: full range finds all three from 48 px, short range from 100 px
            assert_eq!(f, 3, "{width} px: full range");
        }
    }
}
