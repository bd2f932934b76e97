//! Criterion benches: the detector, the classifier and the whole per-frame pipeline on a
//! 640x480 frame holding one real face (the public-domain astronaut photo, scaled into
//! the frame). Run: `cargo bench -p emotiond --bench pipeline`.

use criterion::{Criterion, criterion_group, criterion_main};
use emotiond::analyzer::Analyzer;
use emotiond::config::ModelsConfig;
use emotiond_models::{EngineKind, ExpressionClassifier, FaceDetector, builtin, load_engine};
use image::{Rgb, RgbImage, imageops};
use std::hint::black_box;
use std::path::PathBuf;

fn frame_640x480() -> RgbImage {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/astronaut.png");
    let photo = image::open(p).expect("tests/data/astronaut.png").to_rgb8();
    let face = imageops::resize(&photo, 480, 480, imageops::FilterType::Triangle);
    let mut frame = RgbImage::from_pixel(640, 480, Rgb([96, 96, 96]));
    imageops::overlay(&mut frame, &face, 80, 0);
    frame
}

fn benches(c: &mut Criterion) {
    let frame = frame_640x480();
    let det_pkg = builtin::load(builtin::DEFAULT_DETECTOR).unwrap().unwrap();
    let mut det = FaceDetector::new(
        &det_pkg,
        load_engine(EngineKind::Tract, "det", &det_pkg.model).unwrap(),
    )
    .unwrap();
    let faces = det.detect(&frame).unwrap();
    assert_eq!(faces.len(), 1, "the bench frame must hold one face");
    c.bench_function("detect_640x480_tract", |b| {
        b.iter(|| black_box(det.detect(black_box(&frame)).unwrap()))
    });

    for name in builtin::names().filter(|n| *n != builtin::DEFAULT_DETECTOR) {
        let pkg = builtin::load(name).unwrap().unwrap();
        let Ok(engine) = load_engine(EngineKind::Tract, name, &pkg.model) else {
            continue;
        };
        let mut cls = ExpressionClassifier::new(&pkg, engine).unwrap();
        let bbox = faces[0].bbox;
        c.bench_function(&format!("classify_{name}_tract"), |b| {
            b.iter(|| black_box(cls.classify(black_box(&frame), &bbox).unwrap()))
        });
    }

    let mut analyzer = Analyzer::load(&ModelsConfig {
        verify_test_vectors: false,
        ..ModelsConfig::default()
    })
    .unwrap();
    c.bench_function("pipeline_frame_640x480_one_face_tract", |b| {
        b.iter(|| black_box(analyzer.analyze(black_box(&frame)).unwrap()))
    });
}

criterion_group!(name = group; config = Criterion::default().sample_size(50); targets = benches);
criterion_main!(group);
