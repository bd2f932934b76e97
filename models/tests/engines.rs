//! Every engine against every shipped model, and the fallback chain.
//!
//! The run-time libraries come from `models/tools/fetch_runtimes.sh` (the TFLite C library
//! from the crates.io package tflitec 0.4.0, ONNX Runtime from the PyPI wheel), found in
//! `runtimes-cache/` or through `EMOTIOND_TFLITE_LIB` / `EMOTIOND_ONNXRUNTIME_LIB`. Without
//! them these tests say so and pass, unless `EMOTIOND_REQUIRE_RUNTIMES=1` (as in CI), where
//! a missing library fails them.
//!
//! Length: ~510 lines: every engine against every shipped model, one test per pair and the
//! fallback chain.

use emotiond_models::CheckVectors;
use emotiond_models::runtime::{self, DelegateKind, build, chain};
use emotiond_models::supervise::WatchdogConfig;
use emotiond_models::tflite_engine::Delegate;
use emotiond_models::{
    Attempt, Engine, EngineKind, EngineSettings, ModelPackage, Runtimes, Tensor, builtin,
    load_engine,
};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn library(env: &str, cached: &str) -> Option<PathBuf> {
    let p = match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => repo().join("runtimes-cache").join(cached),
    };
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "{} not found (set {env} or run models/tools/fetch_runtimes.sh)",
        p.display()
    );
    if std::env::var("EMOTIOND_REQUIRE_RUNTIMES").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

fn tflite_lib() -> Option<PathBuf> {
    library("EMOTIOND_TFLITE_LIB", "tflite/libtensorflowlite_c.so")
}

fn ort_lib() -> Option<PathBuf> {
    library(
        "EMOTIOND_ONNXRUNTIME_LIB",
        "onnxruntime/libonnxruntime.so.1.32.0",
    )
}

fn packages() -> Vec<ModelPackage> {
    let v: Vec<_> = builtin::names()
        .map(|n| builtin::load(n).expect("embedded").expect("loads"))
        .collect();
    assert!(v.len() >= 3, "shipped packages: {}", v.len());
    v
}

fn run(e: &mut dyn Engine, input: &[f32]) -> Vec<Tensor> {
    let mut out = Vec::new();
    e.run(input, &mut out).expect("inference");
    out
}

/// Largest |difference| between two engines on the package's vector inputs.
fn max_diff(p: &ModelPackage, a: &mut dyn Engine, b: &mut dyn Engine) -> f32 {
    let mut worst = 0.0f32;
    for v in &p.vectors {
        let (x, y) = (run(a, &v.input), run(b, &v.input));
        assert_eq!(x.len(), y.len());
        for (tx, ty) in x.iter().zip(&y) {
            assert_eq!(tx.shape, ty.shape, "{}", p.id());
            for (u, w) in tx.data.iter().zip(&ty.data) {
                worst = worst.max((u - w).abs());
            }
        }
    }
    worst
}

#[test]
fn tflite_runtime_matches_test_vectors_and_tract_on_every_shipped_model() {
    let Some(lib) = tflite_lib() else { return };
    let rt = Runtimes {
        tflite_library: Some(lib),
        ..Default::default()
    };
    let (version, _) = emotiond_models::tflite_engine::library_info(rt.tflite_library.as_deref())
        .expect("library info");
    assert!(version.starts_with("2."), "{version}");
    // audio packages are ONNX only (tract-onnx and ONNX Runtime)
    for p in packages()
        .into_iter()
        .filter(|p| p.manifest.task.is_vision())
    {
        // The TFLite runtime runs the original file, not the tract rewrite.
        let tfl = p.file_for(EngineKind::TfLite).unwrap();
        assert_ne!(tfl.as_ref(), p.model.as_ref(), "{}: tflite file", p.id());
        // tract refuses the int8 packages (shipped.rs); they are held to the vectors only.
        let mut tract = if emotiond_models::runtime::quantised_onnx_op(&p.model).is_some() {
            None
        } else {
            Some(load_engine(&p, &Attempt::Tract, &rt, 1).unwrap())
        };
        for d in [Delegate::None, Delegate::Xnnpack] {
            let mut e = load_engine(&p, &Attempt::TfLite(d.clone()), &rt, 1)
                .unwrap_or_else(|e| panic!("{}: {e}", p.id()));
            assert_eq!(e.kind(), EngineKind::TfLite);
            assert_eq!(e.accelerator().map(str::to_string), d.label());
            assert_eq!(e.input_shape(), p.manifest.input.shape.as_slice());
            let worst = p
                .check_vectors(e.as_mut())
                .unwrap_or_else(|e| panic!("{d:?}: {e}"));
            let Some(tract) = tract.as_mut() else {
                eprintln!(
                    "{} tflite {:?}: vectors max diff {worst:.2e}",
                    p.id(),
                    d.label()
                );
                continue;
            };
            let vs_tract = max_diff(&p, e.as_mut(), tract.as_mut());
            let atol = p.vectors.iter().map(|v| v.atol).fold(f32::MAX, f32::min);
            eprintln!(
                "{} tflite {:?}: vectors max diff {worst:.2e}, vs tract {vs_tract:.2e}",
                p.id(),
                d.label()
            );
            assert!(vs_tract <= 2.0 * atol, "{}: vs tract {vs_tract}", p.id());
        }
    }
}

#[test]
fn onnxruntime_matches_test_vectors_on_every_shipped_model() {
    let Some(lib) = ort_lib() else { return };
    let rt = Runtimes {
        onnxruntime_library: Some(lib),
        ..Default::default()
    };
    let (_, version) = emotiond_models::onnxruntime_info(rt.onnxruntime_library.as_deref())
        .expect("ONNX Runtime loads");
    assert!(version.starts_with("1."), "{version}");
    for p in packages() {
        assert!(
            p.file_for(EngineKind::OnnxRuntime).is_some(),
            "{} ships no .onnx file",
            p.id()
        );
        let mut e = load_engine(&p, &Attempt::OnnxRuntime(vec!["cpu".into()]), &rt, 1)
            .unwrap_or_else(|e| panic!("{}: {e}", p.id()));
        assert_eq!(e.kind(), EngineKind::OnnxRuntime);
        assert_eq!(e.input_shape(), p.manifest.input.shape.as_slice());
        let worst = p
            .check_vectors(e.as_mut())
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{} onnxruntime: vectors max diff {worst:.2e}", p.id());
    }
}

#[test]
fn missing_tflite_library_falls_back_to_tract_and_says_why() {
    let p = builtin::load(builtin::DEFAULT_EXPRESSION).unwrap().unwrap();
    let rt = Runtimes {
        tflite_library: Some("/nonexistent/libtensorflowlite_c.so".into()),
        onnxruntime_library: None,
    };
    let s = EngineSettings::default();
    let e = runtime::supervised(
        &p,
        EngineKind::TfLite,
        &s,
        &rt,
        true,
        WatchdogConfig::default(),
    )
    .unwrap();
    assert_eq!(e.kind(), EngineKind::Tract);
    let why = e.fallback().expect("a fallback reason");
    assert!(why.contains("tflite+xnnpack: "), "{why}");
    assert!(why.contains("tflite: "), "{why}");
    assert!(why.contains("/nonexistent/libtensorflowlite_c.so"), "{why}");
}

#[test]
fn package_without_onnx_file_falls_back_to_tract() {
    let mut p = builtin::load(builtin::DEFAULT_EXPRESSION).unwrap().unwrap();
    p.engine_files
        .retain(|(k, _)| *k != EngineKind::OnnxRuntime);
    let attempts = chain(EngineKind::OnnxRuntime, &EngineSettings::default()).unwrap();
    let b = build(&p, &attempts, 0, &Runtimes::default(), 1, true).unwrap();
    assert_eq!(b.engine.kind(), EngineKind::Tract);
    assert_eq!(b.level, 1);
    assert!(b.skipped[0].contains("no .onnx file"), "{:?}", b.skipped);
}

#[test]
fn engine_failing_its_test_vectors_is_not_used() {
    // A package whose expected outputs are wrong (as a broken delegate's would be): the
    // engine loads but fails verification, so the chain moves on and finally gives up.
    let mut p = builtin::load(builtin::DEFAULT_EXPRESSION).unwrap().unwrap();
    for v in &mut p.vectors {
        for o in &mut v.outputs {
            o.iter_mut().for_each(|x| *x += 0.5);
        }
    }
    let attempts = chain(EngineKind::Tract, &EngineSettings::default()).unwrap();
    let err = build(&p, &attempts, 0, &Runtimes::default(), 1, true)
        .err()
        .expect("no engine passes");
    assert!(err.to_string().contains("test vectors fail"), "{err}");
    // Without verification the same engine is accepted.
    assert!(build(&p, &attempts, 0, &Runtimes::default(), 1, false).is_ok());
}

/// Compile the mock delegate plugin (tests/fixtures/mock_delegate.c) with the system C
/// compiler.
fn mock_delegate(dir: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mock_delegate.c");
    let out = dir.join("libmock_delegate.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = std::process::Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("{cc}: {e} (a C compiler builds the mock delegate)"));
    assert!(st.success(), "compiling {}", src.display());
    out
}

#[test]
fn mock_external_delegate_plugin_paths_fall_back_to_tflite_cpu() {
    let Some(lib) = tflite_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let plugin = mock_delegate(dir.path());
    let p = builtin::load(builtin::DEFAULT_DETECTOR).unwrap().unwrap();
    let rt = Runtimes {
        tflite_library: Some(lib),
        ..Default::default()
    };
    let settings = |mode: &str| EngineSettings {
        engine: Some(EngineKind::TfLite),
        delegate: DelegateKind::External,
        external_delegate: Some(plugin.clone()),
        external_options: [("mode".to_string(), mode.to_string())].into(),
        ..Default::default()
    };
    // A plugin that takes no nodes: the delegate is accepted, options reached it.
    let attempts = chain(EngineKind::TfLite, &settings("noop")).unwrap();
    let b = build(&p, &attempts, 0, &rt, 1, true).unwrap();
    assert_eq!(b.level, 0, "{:?}", b.skipped);
    assert_eq!(b.engine.accelerator(), Some("mock"));
    // A plugin that cannot create its delegate: its own message is the reason.
    let attempts = chain(EngineKind::TfLite, &settings("refuse")).unwrap();
    let b = build(&p, &attempts, 0, &rt, 1, true).unwrap();
    assert_eq!((b.level, b.engine.kind()), (1, EngineKind::TfLite));
    assert_eq!(b.engine.accelerator(), None);
    assert!(
        b.skipped[0].starts_with("tflite+mock: ") && b.skipped[0].contains("no accelerator"),
        "{:?}",
        b.skipped
    );
    // A delegate that fails to take the graph: TFLite CPU runs the model instead.
    let attempts = chain(EngineKind::TfLite, &settings("fail")).unwrap();
    let b = build(&p, &attempts, 0, &rt, 1, true).unwrap();
    assert_eq!((b.level, b.engine.kind()), (1, EngineKind::TfLite));
    assert!(
        b.skipped[0].contains("interpreter not created with the mock delegate"),
        "{:?}",
        b.skipped
    );
    // An option the plugin does not know.
    let mut s = settings("noop");
    s.external_options.insert("colour".into(), "blue".into());
    let b = build(&p, &chain(EngineKind::TfLite, &s).unwrap(), 0, &rt, 1, true).unwrap();
    assert!(b.skipped[0].contains("unknown option"), "{:?}", b.skipped);
    // Not a plugin at all.
    let mut s = settings("noop");
    s.external_delegate = Some(rt.tflite_library.clone().unwrap());
    let b = build(&p, &chain(EngineKind::TfLite, &s).unwrap(), 0, &rt, 1, true).unwrap();
    assert!(
        b.skipped[0].contains("not a TFLite delegate plugin"),
        "{:?}",
        b.skipped
    );
}

#[test]
fn corrupt_model_bytes_are_a_load_error_on_every_engine() {
    let mut p = builtin::load(builtin::DEFAULT_EXPRESSION).unwrap().unwrap();
    let junk: std::sync::Arc<[u8]> = vec![0x42u8; 4096].into();
    p.model = junk.clone();
    for (_, b) in &mut p.engine_files {
        *b = junk.clone();
    }
    let rt = Runtimes {
        tflite_library: tflite_lib(),
        onnxruntime_library: ort_lib(),
    };
    let mut attempts = vec![Attempt::Tract];
    if rt.tflite_library.is_some() {
        attempts.push(Attempt::TfLite(Delegate::Xnnpack));
    }
    if rt.onnxruntime_library.is_some() {
        attempts.push(Attempt::OnnxRuntime(vec!["cpu".into()]));
    }
    for a in attempts {
        let err = load_engine(&p, &a, &rt, 1)
            .err()
            .expect("junk must not load");
        eprintln!("{}: {err}", a.label());
        assert!(
            err.to_string().contains("cannot load model"),
            "{}: {err}",
            a.label()
        );
    }
}

#[test]
fn tflite_quantises_int8_inputs_and_dequantises_int8_outputs() {
    // A full-integer fer model (int8 in and out, as EdgeTPU and NPU models are), made by
    // tests/fixtures/make_int8_fixture.py with the outputs TFLite 2.6 gives for it.
    let Some(lib) = tflite_lib() else { return };
    let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.join("fer_mini_xception_int8.json")).unwrap())
            .unwrap();
    let bytes: std::sync::Arc<[u8]> = std::fs::read(fx.join("fer_mini_xception_int8.tflite"))
        .unwrap()
        .into();
    let (version, _) = emotiond_models::tflite_engine::library_info(Some(&lib)).unwrap();
    // Exact on the library the expected values came from; other builds may differ by a few
    // output steps (see the fixture's notes).
    let tol = if version.starts_with("2.6.") {
        1e-6
    } else {
        0.02
    };
    for d in [Delegate::None, Delegate::Xnnpack] {
        let mut e = emotiond_models::tflite_engine::TfLiteEngine::load(
            "fer_int8",
            bytes.clone(),
            &emotiond_models::tflite_engine::TfLiteOptions {
                library: Some(lib.clone()),
                delegate: d.clone(),
                threads: 1,
            },
        )
        .unwrap();
        assert_eq!(e.input_shape(), [1, 64, 64, 1]);
        for v in spec["vectors"].as_array().unwrap() {
            let raw = std::fs::read(repo().join(v["input"].as_str().unwrap())).unwrap();
            let input: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let out = run(&mut e, &input);
            assert_eq!(out[0].shape, [1, 7]);
            let want: Vec<f32> = v["int8_dequantised"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            for (g, w) in out[0].data.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= tol,
                    "{d:?} {}: {:?} vs {want:?}",
                    v["input"],
                    out[0].data
                );
            }
            let argmax = out[0]
                .data
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(argmax as u64, v["argmax_float"].as_u64().unwrap());
        }
    }
}

#[test]
fn onnxruntime_provider_that_is_not_in_the_library_falls_back_to_its_cpu() {
    // The PyPI library is a CPU build: asking for CUDA fails (as on a board without NVIDIA's
    // build), and the same runtime on CPU takes over.
    let Some(lib) = ort_lib() else { return };
    let rt = Runtimes {
        onnxruntime_library: Some(lib),
        ..Default::default()
    };
    let p = builtin::load(builtin::DEFAULT_EXPRESSION).unwrap().unwrap();
    let s = EngineSettings {
        providers: vec!["cuda".into()],
        ..Default::default()
    };
    let attempts = chain(EngineKind::OnnxRuntime, &s).unwrap();
    let b = build(&p, &attempts, 0, &rt, 1, true).unwrap();
    assert_eq!((b.level, b.engine.kind()), (1, EngineKind::OnnxRuntime));
    assert_eq!(b.engine.accelerator(), None);
    assert!(
        b.skipped[0].starts_with("onnxruntime+cuda: "),
        "{:?}",
        b.skipped
    );
}

/// The int8 packages end to end on the runtimes that run them (tract refuses them): f32 in,
/// quantised at the boundary (TFLite engine) or inside the graph (the .onnx), f32 out; the
/// vectors, then the expected emotion first on the real labelled photos, the face found by
/// the default (float) detector on tract.
#[test]
fn int8_packages_run_end_to_end_on_tflite_and_onnxruntime() {
    let (Some(tfl), Some(ortl)) = (tflite_lib(), ort_lib()) else {
        return;
    };
    let rt = Runtimes {
        tflite_library: Some(tfl),
        onnxruntime_library: Some(ortl),
    };
    let det = builtin::load(builtin::DEFAULT_DETECTOR).unwrap().unwrap();
    let mut detector = emotiond_models::FaceDetector::new(
        &det,
        load_engine(&det, &Attempt::Tract, &rt, 1).unwrap(),
    )
    .unwrap();
    // Unambiguous labelled photos.
    let photos = [
        ("tests/data/astronaut.png", "happy"),
        (
            "tests/data/faces/neutral_matplotlib_grace_hopper.jpg",
            "neutral",
        ),
        (
            "tests/data/eval/faces/happy/astronaut_wide_mirrored.jpg",
            "happy",
        ),
        (
            "tests/data/eval/faces/neutral/grace_hopper_crop.jpg",
            "neutral",
        ),
    ];
    let int8: Vec<_> = builtin::names().filter(|n| n.ends_with("_int8")).collect();
    assert_eq!(int8, ["fer_mini_xception_int8"]);
    for name in int8 {
        let p = builtin::load(name).unwrap().unwrap();
        for a in [
            Attempt::TfLite(Delegate::None),
            Attempt::TfLite(Delegate::Xnnpack),
            Attempt::OnnxRuntime(vec!["cpu".into()]),
        ] {
            let mut e = load_engine(&p, &a, &rt, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(e.input_shape(), p.manifest.input.shape.as_slice());
            let worst = p
                .check_vectors(e.as_mut())
                .unwrap_or_else(|e| panic!("{}: {e}", a.label()));
            eprintln!("{name} {}: vectors max diff {worst:.2e}", a.label());
            let mut c = emotiond_models::ExpressionClassifier::new(&p, e).unwrap();
            for (path, want) in photos {
                let img = image::open(repo().join(path)).unwrap().to_rgb8();
                let faces = detector.detect(&img).unwrap();
                // the most confident face (the wide photo has a second, weaker box)
                let face = faces
                    .iter()
                    .max_by(|x, y| x.score.total_cmp(&y.score))
                    .unwrap_or_else(|| panic!("no face in {path}"));
                let probs = c.classify(&img, &face.bbox).unwrap();
                // an int8 softmax: probabilities in steps of 1/256
                let sum: f32 = probs.iter().sum();
                assert!((sum - 1.0).abs() < 7.0 / 256.0, "{name}: sum {sum}");
                let top = probs
                    .iter()
                    .enumerate()
                    .max_by(|x, y| x.1.total_cmp(y.1))
                    .unwrap()
                    .0;
                assert_eq!(
                    emotiond_models::EMOTIONS[top],
                    want,
                    "{name} {} on {path}: {probs:?}",
                    a.label()
                );
            }
        }
        // The fallback chain on a board with TFLite: tflite+xnnpack, verified by the vectors.
        let attempts = chain(EngineKind::TfLite, &EngineSettings::default()).unwrap();
        let b = build(&p, &attempts, 0, &rt, 1, true).unwrap();
        assert_eq!((b.level, b.engine.kind()), (0, EngineKind::TfLite));
        // Without any runtime library the chain ends in tract, which refuses clearly.
        let none = Runtimes {
            tflite_library: Some(repo().join("no-such-libtensorflowlite_c.so")),
            ..Default::default()
        };
        let err = build(&p, &attempts, 0, &none, 1, true)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("tract cannot run int8 models"), "{err}");
    }
}
