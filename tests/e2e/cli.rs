//! The command line: `analyze`, `bench --stages`, start-up failures (model, config), `demo --once`, `check`.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn analyze_prints_one_line_per_input_and_goes_past_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"not an image").unwrap();
    let a = data("astronaut.png");
    let c = data("coffee.png");
    let out = run_cli(&[
        "analyze",
        a.to_str().unwrap(),
        bad.to_str().unwrap(),
        c.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed input makes the exit code 1"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| json(l.as_bytes()))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["faces"].as_array().unwrap().len(), 1);
    assert_eq!(lines[0]["faces"][0]["dominant"], "happy");
    assert!(
        lines[1]["error"].as_str().unwrap().contains("decode"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2]["faces"].as_array().unwrap().len(), 0);
}

#[test]
fn bench_stages_prints_the_report_then_one_line_per_stage() {
    let img = data("five_faces_640x480.jpg");
    let out = run_cli(&["bench", img.to_str().unwrap(), "--frames", "3", "--stages"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| json(l.as_bytes()))
        .collect();
    // The report operators script against comes first and is unchanged.
    assert_eq!(lines[0]["frames"], 3, "{}", lines[0]);
    assert_eq!(lines[0]["faces_per_frame"], 5.0, "{}", lines[0]);
    let stages: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "decode",
            "detect_preprocess",
            "detect_invoke",
            "detect_decode",
            "detect_nms",
            "classify_preprocess",
            "classify_invoke",
            "classify_postprocess",
            "other",
            "frame"
        ]
    );
    for l in &lines[1..] {
        let (mean, p95) = (
            l["mean_ms"].as_f64().unwrap(),
            l["p95_ms"].as_f64().unwrap(),
        );
        assert!(
            mean >= 0.0 && p95 >= 0.0 && l["n"].as_u64().unwrap() >= 1,
            "{l}"
        );
    }
    // Five faces: the classifier ran; the stages add up to the frame.
    let ms = |name: &str| {
        lines[1..].iter().find(|l| l["stage"] == name).unwrap()["mean_ms"]
            .as_f64()
            .unwrap()
    };
    assert!(ms("classify_invoke") > 0.0 && ms("detect_invoke") > 0.0);
    let parts: f64 = stages[1..stages.len() - 1].iter().map(|s| ms(s)).sum();
    assert!(
        (parts - ms("frame")).abs() < 1e-6 * ms("frame").max(1.0),
        "{parts}"
    );
}

#[test]
fn analyze_with_the_full_range_detector_config_line_finds_the_face() {
    // issue 14's contract: `models.detector = "builtin:blazeface_full_range"` selects it.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("full_range.toml");
    std::fs::write(
        &cfg,
        "[models]\ndetector = \"builtin:blazeface_full_range\"\n",
    )
    .unwrap();
    let (kiosk, square) = (data("astronaut_640x480.jpg"), data("astronaut.png"));
    let out = run_cli(&[
        "analyze",
        "--config",
        cfg.to_str().unwrap(),
        kiosk.to_str().unwrap(),
        square.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| json(l.as_bytes()))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert_eq!(l["faces"].as_array().unwrap().len(), 1, "{l}");
        assert_eq!(l["faces"][0]["dominant"], "happy", "{l}");
    }
    let b = |l: &serde_json::Value, k: &str| l["faces"][0]["box"][k].as_f64().unwrap();
    // 640x480: her face, centre about (0.45, 0.24) of the frame
    let (cx, cy) = (
        b(&lines[0], "x") + b(&lines[0], "w") / 2.0,
        b(&lines[0], "y") + b(&lines[0], "h") / 2.0,
    );
    assert!(
        (cx - 0.45).abs() < 0.03 && (cy - 0.24).abs() < 0.03,
        "{}",
        lines[0]
    );
    // astronaut.png is the package's test-vector image: the box is the full-range model's
    // reference decoding (vectors/expected_detections.json: x 171.9-278.5, y 66.1-172.7 of
    // 512), not the short-range one's (x 179.1-271.7, y 81.3-174.0).
    let want = [171.87, 66.09, 278.49 - 171.87, 172.7 - 66.09];
    for (k, w) in ["x", "y", "w", "h"].iter().zip(want) {
        let got = b(&lines[1], k) * 512.0;
        assert!((got - w).abs() < 2.0, "{k}: {got} vs {w}: {}", lines[1]);
    }
}

#[test]
fn config_prints_the_effective_file_without_the_broker_password() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[mqtt]\nusername = \"kiosk-7\"\npassword = \"s3cret-Pa55\"\n",
    )
    .unwrap();
    let out = run_cli(&["--config", cfg.to_str().unwrap(), "config"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("s3cret-Pa55"), "{text}");
    let back: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(back["mqtt"]["username"].as_str(), Some("kiosk-7"));
    assert_eq!(back["mqtt"]["password"].as_str(), Some("<hidden>"));
}

#[test]
fn corrupt_or_missing_model_fails_at_start_up_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("fer");
    std::fs::create_dir(&pkg).unwrap();
    let src =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/packages/fer_mini_xception");
    let manifest = std::fs::read_to_string(src.join("manifest.toml")).unwrap();
    std::fs::write(pkg.join("manifest.toml"), &manifest).unwrap();
    std::fs::create_dir(pkg.join("vectors")).unwrap();
    for e in std::fs::read_dir(src.join("vectors")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), pkg.join("vectors").join(e.file_name())).unwrap();
    }
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[models]\nexpression = {:?}\n", pkg.display().to_string()),
    )
    .unwrap();
    let a = data("astronaut.png");
    // start-up fails with exit code 2; returns stderr
    let fails = || {
        let out = run_cli(&[
            "analyze",
            "--config",
            cfg.to_str().unwrap(),
            a.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{err}");
        err
    };
    // missing model file
    let err = fails();
    assert!(err.contains("fer_mini_xception_f32.tflite"), "{err}");
    // corrupt model file (one byte flipped)
    let mut bytes = std::fs::read(src.join("fer_mini_xception_f32.tflite")).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(pkg.join("fer_mini_xception_f32.tflite"), &bytes).unwrap();
    let err = fails();
    assert!(
        err.contains("fer_mini_xception_f32.tflite") && err.contains("SHA-256"),
        "{err}"
    );
}

#[test]
fn invalid_config_names_the_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[pipeline]\nwindow_s = -1.0\n[mqtt]\nport = 0\n").unwrap();
    let out = run_cli(&["run", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pipeline.window_s") && err.contains("mqtt.port") && err.contains("bad.toml"),
        "{err}"
    );
    let missing = run_cli(&["run", "--config", "/nonexistent/emotiond.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/emotiond.toml"));
}

#[test]
fn demo_once_prints_one_summary_from_its_own_broker_and_exits_0() {
    let out = Command::new(BIN)
        .args(["demo", "--once", "--window", "1", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let s = json(lines[0].as_bytes());
    assert_eq!(s["seq"], 0);
    assert!(s["frames_processed"].as_u64().unwrap() > 0, "{s}");
    assert!(
        s["faces_seen"].as_u64().unwrap() > 0,
        "the sample clip shows real faces: {s}"
    );
}

#[test]
fn check_reports_every_item_and_fails_on_an_unreachable_broker() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let camera = looping_files(&data("astronaut.png"), 5.0);
    let good = write_config(dir.path(), "e2e-5", broker.port, &camera);
    // As root, `check` asks whether the service user (`emotiond`, where it exists: a machine
    // that once installed the package keeps it) could write the state directory, not root.
    // A root-owned 0700 temp dir would then fail; a sticky, world-writable one passes for
    // any account, so this test does not depend on who the machine's users are.
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run_cli(&["check", "--json", "--config", good.to_str().unwrap()]);
    let items: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| json(l.as_bytes()))
        .collect();
    let names: Vec<&str> = items.iter().map(|i| i["check"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["config", "models", "camera", "broker", "state", "clock"]
    );
    assert!(items.iter().all(|i| i["ok"] == true), "{items:?}");
    assert_eq!(out.status.code(), Some(0));

    // unreachable broker, and audio on with a microphone that is not there
    let bad_dir = tempfile::tempdir().unwrap();
    let with_mic =
        format!("{camera}[audio]\nenabled = true\ndevice = \"hw:CARD=AbsentCheck,DEV=0\"\n");
    let bad = write_config(bad_dir.path(), "e2e-5", free_port(), &with_mic);
    let out = run_cli(&["check", "--json", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let items: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| json(l.as_bytes()))
        .collect();
    let broker_item = items.iter().find(|i| i["check"] == "broker").unwrap();
    assert_eq!(broker_item["ok"], false);
    assert!(!broker_item["hint"].as_str().unwrap().is_empty());
    let vad = items.iter().find(|i| i["check"] == "vad").unwrap();
    assert_eq!(vad["ok"], true, "{vad}");
    assert!(
        vad["detail"].as_str().unwrap().contains("silero_vad@"),
        "{vad}"
    );
    let mic = items.iter().find(|i| i["check"] == "microphone").unwrap();
    assert_eq!(mic["ok"], false, "{mic}");
    assert!(
        mic["detail"].as_str().unwrap().contains("cannot open"),
        "{mic}"
    );
    assert!(
        mic["hint"].as_str().unwrap().contains("audio.device"),
        "{mic}"
    );
}
