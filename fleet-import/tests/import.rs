//! `emotion-fleet model import` on real model files (the shipped packages' .tflite and .onnx
//! files, imported as if they were a data scientist's own), then `pack`, `sign`, `verify`, and
//! the real `emotiond analyze` running the imported package on a real photo. Every call goes
//! through `emotion-fleet` (its `model import` runs `emotion-fleet-import` beside it), as a
//! user types it.

use std::path::{Path, PathBuf};
use std::process::Command;

const IMPORT_BIN: &str = env!("CARGO_BIN_EXE_emotion-fleet-import");

/// `emotion-fleet`, built beside `emotion-fleet-import` by `cargo test --workspace`.
fn bin() -> PathBuf {
    let p = Path::new(IMPORT_BIN).with_file_name("emotion-fleet");
    assert!(
        p.exists(),
        "{} is not built: run the workspace's tests (cargo test --workspace), or cargo build -p emotion-fleet first",
        p.display()
    );
    p
}
const LABELS: &str = "angry,disgust,fear,happy,sad,surprise,neutral";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shipped(pkg: &str, file: &str) -> PathBuf {
    repo().join("models/packages").join(pkg).join(file)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// (exit code, JSON lines on stdout, stderr), with tract computing imported vectors (no
/// TFLite or ONNX Runtime library named).
fn fleet(args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    fleet_with(args, &[])
}

fn fleet_with(args: &[&str], env: &[(&str, &Path)]) -> (i32, Vec<serde_json::Value>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .env_remove("EMOTIOND_TFLITE_LIB")
        .env_remove("EMOTIOND_ONNXRUNTIME_LIB");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `emotiond`, built beside `emotion-fleet` by `cargo test --workspace`.
fn emotiond() -> PathBuf {
    let p = Path::new(IMPORT_BIN).with_file_name("emotiond");
    assert!(
        p.exists(),
        "{} is not built: run the workspace's tests (cargo test --workspace), or cargo build -p emotiond first",
        p.display()
    );
    p
}

/// `emotiond analyze` on the astronaut photo with `[models]` set to `models`: (exit code,
/// the one face's dominant emotion, stderr).
fn analyze(dir: &Path, models: &str) -> (i32, Option<String>, String) {
    let cfg = dir.join(format!("emotiond-{}.toml", models.len()));
    std::fs::write(&cfg, format!("[models]\n{models}\n")).unwrap();
    let out = Command::new(emotiond())
        .args(["analyze", "--config", s(&cfg)])
        .arg(repo().join("tests/data/astronaut.png"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dominant = stdout.lines().next().and_then(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let faces = v["faces"].as_array()?;
        assert_eq!(faces.len(), 1, "{v}");
        faces[0]["dominant"].as_str().map(String::from)
    });
    (
        out.status.code().unwrap(),
        dominant,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn import(model: &Path, out: &Path, extra: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    import_with(model, out, extra, &[])
}

fn import_with(
    model: &Path,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> (i32, Vec<serde_json::Value>, String) {
    let mut args = vec![
        "model",
        "import",
        s(model),
        "--name",
        "my_expression",
        "--version",
        "2.0",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    fleet_with(&args, env)
}

#[test]
fn imported_tflite_and_onnx_pack_sign_and_run_in_emotiond_like_the_builtin() {
    let d = tempfile::tempdir().unwrap();
    let (c, _, e) = fleet(&["keygen", "--out", s(&d.path().join("keys"))]);
    assert_eq!(c, 0, "{e}");
    let (c, builtin, e) = analyze(d.path(), "");
    assert_eq!(c, 0, "{e}");
    assert_eq!(
        builtin.as_deref(),
        Some("happy"),
        "the builtin on the astronaut"
    );

    for file in ["fer_mini_xception.onnx", "fer_mini_xception.tflite"] {
        let out = d.path().join(file.replace('.', "_"));
        let (c, report, e) = import(
            &shipped("fer_mini_xception", file),
            &out,
            &[
                "--task",
                "expression",
                "--labels",
                LABELS,
                "--input-range",
                "-1..1",
            ],
        );
        assert_eq!(c, 0, "{file}: {e}");
        let r = &report[0];
        assert_eq!(r["input"]["shape"], serde_json::json!([1, 64, 64, 1]));
        assert_eq!(r["input"]["color"], "grey");
        assert_eq!(r["input"]["mean"], serde_json::json!([127.5]));
        assert_eq!(
            r["classifier"]["softmax_applied"], true,
            "fer ends in a softmax"
        );
        assert_eq!(r["vectors"].as_array().unwrap().len(), 2);
        for f in ["manifest.toml", "PROVENANCE.md", "vectors/astronaut.in.f32"] {
            assert!(out.join(f).is_file(), "{file}: {f} missing");
        }
        let manifest = std::fs::read_to_string(out.join("manifest.toml")).unwrap();
        assert_eq!(
            manifest.contains("[files.onnxruntime]"),
            file.ends_with(".onnx"),
            "{manifest}"
        );
        // 64x64 grey face crop in, 7 probabilities out
        let len = |f: &str| std::fs::metadata(out.join(f)).unwrap().len();
        assert_eq!(len("vectors/astronaut.in.f32"), 64 * 64 * 4);
        assert_eq!(len("vectors/astronaut.out0.f32"), 7 * 4);

        // pack, sign and verify as any package
        let archive = d.path().join(format!("{file}.empkg"));
        let (c, p, e) = fleet(&["model", "pack", s(&out), "--out", s(&archive)]);
        assert_eq!(
            (c, &p[0]["name"]),
            (0, &serde_json::json!("my_expression")),
            "{e}"
        );
        let key = d.path().join("keys/fleet.key");
        assert_eq!(
            fleet(&["model", "sign", s(&archive), "--key", s(&key)]).0,
            0
        );
        let (c, v, e) = fleet(&[
            "model",
            "verify",
            s(&archive),
            "--key",
            s(&d.path().join("keys/fleet.pub")),
        ]);
        assert_eq!((c, &v[0]["ok"]), (0, &serde_json::json!(true)), "{e}");

        // the daemon loads the folder, runs its vectors, and reads the face as the builtin does
        let (c, dominant, e) = analyze(d.path(), &format!("expression = {:?}", s(&out)));
        assert_eq!(c, 0, "{file}: {e}");
        assert!(
            e.contains("my_expression@2.0") && e.contains("passes 2 test vector(s)"),
            "{e}"
        );
        assert_eq!(dominant, builtin, "{file}");

        // the daemon's check is real: a changed expected output makes it refuse the package
        let vec0 = out.join("vectors/astronaut.out0.f32");
        let mut b = std::fs::read(&vec0).unwrap();
        b[12..16].copy_from_slice(&0.5f32.to_le_bytes());
        std::fs::write(&vec0, b).unwrap();
        let (c, _, e) = analyze(d.path(), &format!("expression = {:?}", s(&out)));
        assert_ne!(c, 0);
        assert!(e.contains("test vectors fail"), "{e}");
    }
}

#[test]
fn an_imported_detector_finds_the_face() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("det");
    let (c, report, e) = import(
        &shipped("blazeface_short_range", "face_detection_short_range.onnx"),
        &out,
        &["--task", "detector", "--input-range", "-1..1"],
    );
    assert_eq!(c, 0, "{e}");
    assert_eq!(report[0]["ssd"]["num_boxes"], 896);
    assert_eq!(report[0]["ssd"]["boxes_output"], 0);
    assert_eq!(report[0]["ssd"]["scores_output"], 1);
    let (c, dominant, e) = analyze(d.path(), &format!("detector = {:?}", s(&out)));
    assert_eq!(c, 0, "{e}");
    assert_eq!(dominant.as_deref(), Some("happy"));
}

#[test]
fn models_that_do_not_fit_are_refused_with_the_tensor_named() {
    let d = tempfile::tempdir().unwrap();
    let fer = shipped("fer_mini_xception", "fer_mini_xception.tflite");
    let expr = |labels: &str| {
        vec![
            "--task".to_string(),
            "expression".into(),
            "--labels".into(),
            labels.into(),
            "--input-range".into(),
            "0..1".into(),
        ]
    };
    let refused = |model: &Path, extra: Vec<String>, want: &str| {
        let out = d.path().join("refused");
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (c, lines, e) = import(model, &out, &extra);
        assert_eq!(c, 2, "{want}: {e}");
        assert!(lines.is_empty());
        assert!(e.contains(want), "wanted {want:?} in: {e}");
        assert!(!out.exists(), "nothing is written for a refused model");
    };
    // six labels for seven outputs
    refused(
        &fer,
        expr("angry,disgust,fear,happy,sad,surprise"),
        "output 0 has 7 classes but --labels names 6",
    );
    // a label emotiond does not report
    refused(
        &fer,
        expr("angry,disgust,fear,happy,sad,surprise,bored"),
        "unknown label \"bored\"",
    );
    // a face detector imported as an expression model: its outputs are boxes, not classes
    refused(
        &shipped(
            "blazeface_short_range",
            "face_detection_short_range_f32.tflite",
        ),
        expr(LABELS),
        "no output holds 7 class scores (output 0 has shape [1, 896, 16], output 1 has shape [1, 896, 1])",
    );
    // an expression model imported as a detector: a grey input is no detector's
    refused(
        &fer,
        vec![
            "--task".into(),
            "detector".into(),
            "--input-range".into(),
            "0..1".into(),
        ],
        "input 0 has shape [1, 64, 64, 1]: a face detector takes [1,H,W,3] or [1,3,H,W]",
    );
    // not a model at all
    let text = d.path().join("notes.tflite");
    std::fs::write(&text, "these are my notes, not a model\n").unwrap();
    refused(
        &text,
        expr(LABELS),
        "notes.tflite is not a TFLite model (no TFL3 identifier at byte 4)",
    );
    let onnx = d.path().join("notes.onnx");
    std::fs::write(&onnx, "these are my notes, not a model\n").unwrap();
    refused(&onnx, expr(LABELS), "tract cannot load the model");
    refused(&d.path().join("missing.onnx"), expr(LABELS), "cannot read");
}

/// A run-time library from `models/tools/fetch_runtimes.sh` (`runtimes-cache/`) or the
/// environment; without it the test says so and passes, unless EMOTIOND_REQUIRE_RUNTIMES=1
/// (CI), as in models/tests/engines.rs.
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

#[test]
fn the_models_own_runtime_computes_the_vectors_and_tract_is_held_to_them() {
    let (Some(tfl), Some(ort)) = (
        library("EMOTIOND_TFLITE_LIB", "tflite/libtensorflowlite_c.so"),
        library(
            "EMOTIOND_ONNXRUNTIME_LIB",
            "onnxruntime/libonnxruntime.so.1.32.0",
        ),
    ) else {
        return;
    };
    let env = [
        ("EMOTIOND_TFLITE_LIB", tfl.as_path()),
        ("EMOTIOND_ONNXRUNTIME_LIB", ort.as_path()),
    ];
    let d = tempfile::tempdir().unwrap();
    let data = repo().join("tests/data");
    let (coffee, astronaut) = (data.join("coffee.png"), data.join("astronaut.png"));
    let args = [
        "--task",
        "expression",
        "--labels",
        LABELS,
        "--input-range",
        "-1..1",
        "--vectors-from",
        s(&coffee),
        s(&astronaut),
    ];

    // .onnx: ONNX Runtime computes the vectors, tract agrees; the daemon runs it on both
    let onnx = d.path().join("onnx");
    let (c, r, e) = import_with(
        &shipped("fer_mini_xception", "fer_mini_xception.onnx"),
        &onnx,
        &args,
        &env,
    );
    assert_eq!(c, 0, "{e}");
    assert!(
        r[0]["reference_engine"]
            .as_str()
            .unwrap()
            .starts_with("ONNX Runtime 1.32.0 on CPU"),
        "{r:?}"
    );
    assert_eq!(r[0]["tract"]["agrees"], true, "{r:?}");
    let on_ort = format!(
        "engine = \"onnxruntime\"\nonnxruntime_library = {:?}\nexpression = {:?}",
        s(&ort),
        s(&onnx)
    );
    let (c, dominant, e) = analyze(d.path(), &on_ort);
    assert_eq!((c, dominant.as_deref()), (0, Some("happy")), "{e}");
    assert!(e.contains("passes 2 test vector(s) on onnxruntime"), "{e}");

    // fer's original .tflite keeps its MEAN, which tract-tflite 0.22 rounds: TFLite computes
    // the vectors, tract is found to differ (exit 1, the package still written) and the
    // daemon refuses it on tract but runs it on TFLite
    let orig = d.path().join("tflite-mean");
    let (c, r, e) = import_with(
        &shipped("fer_mini_xception", "fer_mini_xception.tflite"),
        &orig,
        &args,
        &env,
    );
    assert_eq!(c, 1, "{e}");
    assert!(
        r[0]["reference_engine"]
            .as_str()
            .unwrap()
            .starts_with("TFLite 2.6.0 reference kernels"),
        "{r:?}"
    );
    assert_eq!(r[0]["tract"]["agrees"], false, "{r:?}");
    assert!(r[0]["tract"]["max_diff"].as_f64().unwrap() > 1e-2, "{r:?}");
    assert!(e.contains("tract computes other outputs"), "{e}");
    let provenance = std::fs::read_to_string(orig.join("PROVENANCE.md")).unwrap();
    assert!(
        provenance.contains("tract does NOT reproduce them"),
        "{provenance}"
    );
    let (c, _, e) = analyze(d.path(), &format!("expression = {:?}", s(&orig)));
    assert_ne!(c, 0);
    assert!(e.contains("test vectors fail"), "{e}");
    let on_tflite = format!(
        "engine = \"tflite\"\ntflite_library = {:?}\nexpression = {:?}",
        s(&tfl),
        s(&orig)
    );
    let (c, dominant, e) = analyze(d.path(), &on_tflite);
    assert_eq!((c, dominant.as_deref()), (0, Some("happy")), "{e}");
    assert!(e.contains("passes 2 test vector(s) on tflite"), "{e}");

    // the rewrite for tract (MEAN as SUM x 1/N) agrees with TFLite
    let (c, r, e) = import_with(
        &shipped("fer_mini_xception", "fer_mini_xception_f32.tflite"),
        &d.path().join("tflite-rewrite"),
        &args,
        &env,
    );
    assert_eq!(
        (c, &r[0]["tract"]["agrees"]),
        (0, &serde_json::json!(true)),
        "{e}"
    );
}
