//! Criterion benches: raw inference of every shipped model, the detector, the classifier and
//! the whole per-frame pipeline on a 640x480 frame holding one real face (the public-domain
//! astronaut photo, scaled into the frame) and, for the whole frame, also on two 640x480
//! photos: one face (`astronaut_640x480.jpg`, as `emotiond bench` measures) and five faces
//! (`five_faces_640x480.jpg`, provenance in tests/data/SOURCES.md); on every engine available
//! here: tract always;
//! TFLite (plain CPU and XNNPACK) and ONNX Runtime when their libraries are found
//! (`models/tools/fetch_runtimes.sh`, or EMOTIOND_TFLITE_LIB / EMOTIOND_ONNXRUNTIME_LIB).
//! Run: `cargo bench -p emotiond --bench pipeline`. One thread per engine throughout. CI runs
//! every bench once (`cargo test --benches`) so that none can rot.
//! `benches/tflite_reference.py` measures Python's TFLite + XNNPACK on the same files.

use criterion::{Criterion, criterion_group, criterion_main};
use emotiond::analyzer::Analyzer;
use emotiond::config::ModelsConfig;
use emotiond_models::runtime::DelegateKind;
use emotiond_models::tflite_engine::Delegate;
use emotiond_models::{
    Attempt, EngineKind, EngineSettings, ExpressionClassifier, FaceDetector, Runtimes, Tensor,
    builtin, load_engine, manifest::Task,
};
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

fn photo(name: &str) -> RgbImage {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name);
    image::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
}

fn lib(env: &str, cached: &str) -> Option<PathBuf> {
    let p = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../runtimes-cache")
            .join(cached)
    });
    p.is_file().then_some(p)
}

fn benches(c: &mut Criterion) {
    let frame = frame_640x480();
    let rt = Runtimes {
        tflite_library: lib("EMOTIOND_TFLITE_LIB", "tflite/libtensorflowlite_c.so"),
        onnxruntime_library: lib(
            "EMOTIOND_ONNXRUNTIME_LIB",
            "onnxruntime/libonnxruntime.so.1.32.0",
        ),
    };
    let mut attempts = vec![Attempt::Tract];
    if rt.tflite_library.is_some() {
        attempts.push(Attempt::TfLite(Delegate::None));
        attempts.push(Attempt::TfLite(Delegate::Xnnpack));
    } else {
        eprintln!("no TFLite C library: tflite benches skipped");
    }
    if rt.onnxruntime_library.is_some() {
        attempts.push(Attempt::OnnxRuntime(vec!["cpu".into()]));
    } else {
        eprintln!("no ONNX Runtime library: onnxruntime benches skipped");
    }

    // Raw inference: the engine alone on each model's first test vector.
    for name in builtin::names() {
        let pkg = builtin::load(name).unwrap().unwrap();
        for a in &attempts {
            let Ok(mut e) = load_engine(&pkg, a, &rt, 1) else {
                eprintln!("{name}: {} does not load", a.label());
                continue;
            };
            // every input of the vector: a recurrent model (the VAD) takes its state too
            let v = &pkg.vectors[0];
            let inputs: Vec<&[f32]> = std::iter::once(v.input.as_slice())
                .chain(v.extra_inputs.iter().map(Vec::as_slice))
                .collect();
            let mut out: Vec<Tensor> = Vec::new();
            c.bench_function(&format!("infer_{name}/{}", a.label()), |b| {
                b.iter(|| e.run_multi(black_box(&inputs), &mut out).unwrap())
            });
        }
    }

    let det_pkg = builtin::load(builtin::DEFAULT_DETECTOR).unwrap().unwrap();
    for a in &attempts {
        let mut det =
            FaceDetector::new(&det_pkg, load_engine(&det_pkg, a, &rt, 1).unwrap()).unwrap();
        let faces = det.detect(&frame).unwrap();
        assert_eq!(faces.len(), 1, "the bench frame must hold one face");
        c.bench_function(&format!("detect_640x480/{}", a.label()), |b| {
            b.iter(|| black_box(det.detect(black_box(&frame)).unwrap()))
        });
        let bbox = faces[0].bbox;
        for name in builtin::names() {
            let pkg = builtin::load(name).unwrap().unwrap();
            if pkg.manifest.task != Task::Expression {
                continue; // the detectors and the VAD have no place in a face crop
            }
            let Ok(engine) = load_engine(&pkg, a, &rt, 1) else {
                continue;
            };
            let mut cls = ExpressionClassifier::new(&pkg, engine).unwrap();
            c.bench_function(&format!("classify_{name}/{}", a.label()), |b| {
                b.iter(|| black_box(cls.classify(black_box(&frame), &bbox).unwrap()))
            });
        }
    }

    // The whole frame as the daemon runs it: under the stall watchdog, default models.
    for a in &attempts {
        let (engine, delegate) = match a {
            Attempt::Tract => (EngineKind::Tract, DelegateKind::None),
            Attempt::TfLite(Delegate::Xnnpack) => (EngineKind::TfLite, DelegateKind::Xnnpack),
            Attempt::TfLite(_) => (EngineKind::TfLite, DelegateKind::None),
            Attempt::OnnxRuntime(_) => (EngineKind::OnnxRuntime, DelegateKind::None),
        };
        let s = EngineSettings {
            delegate,
            ..EngineSettings::default()
        };
        let mut analyzer = Analyzer::load(&ModelsConfig {
            engine,
            verify_test_vectors: false,
            tflite_library: rt.tflite_library.clone(),
            onnxruntime_library: rt.onnxruntime_library.clone(),
            detector_engine: s.clone(),
            expression_engine: s,
            ..ModelsConfig::default()
        })
        .unwrap();
        assert!(analyzer.detector_info().fallback.is_none());
        c.bench_function(
            &format!("pipeline_frame_640x480_one_face/{}", a.label()),
            |b| b.iter(|| black_box(analyzer.analyze(black_box(&frame)).unwrap())),
        );
        for (name, file, faces) in [
            ("photo_one_face", "astronaut_640x480.jpg", 1),
            ("photo_five_faces", "five_faces_640x480.jpg", 5),
        ] {
            let img = photo(file);
            let found = analyzer.analyze(&img).unwrap().faces.len();
            assert_eq!(found, faces, "{file}: faces found");
            c.bench_function(
                &format!("pipeline_frame_640x480_{name}/{}", a.label()),
                |b| b.iter(|| black_box(analyzer.analyze(black_box(&img)).unwrap())),
            );
        }
    }
}

criterion_group!(name = group; config = Criterion::default().sample_size(50); targets = benches);
criterion_main!(group);
