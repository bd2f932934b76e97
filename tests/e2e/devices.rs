//! The edges: a missing camera and microphone, the status LED and feedback button on
//! simulated pins, the engines that run (and why one fell back), systemd's notify
//! protocol, and a real recording on the audio path.

use crate::support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn missing_camera_is_retried_and_reported_while_summaries_go_on() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // audio on, with a microphone that is not there either; the status LED on a simulated pin
    let pins = dir.path().join("pins");
    let camera = format!(
        "[indicators]\nbackend = \"sim\"\nstatus_led = 17\nsim_dir = {:?}\n[camera]\nsource = \"v4l2\"\ndevice = \"/dev/video-absent-e2e\"\n[audio]\nenabled = true\ndevice = \"hw:CARD=AbsentE2E,DEV=0\"\n",
        pins.display().to_string()
    );
    let cfg = write_config(dir.path(), "e2e-2", broker.port, &camera);
    let rx = subscribe(broker.port, "emotiond/e2e-2/#");
    let mut daemon = spawn_daemon(&cfg);
    let h = json(&wait_for(
        &rx,
        "emotiond/e2e-2/health",
        Duration::from_secs(30),
        |p| json(p)["camera"]["state"] == "unavailable",
    ));
    assert!(
        h["camera"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot open"),
        "{h}"
    );
    let h = json(&wait_for(
        &rx,
        "emotiond/e2e-2/health",
        Duration::from_secs(30),
        |p| json(p)["microphone"]["state"] == "unavailable",
    ));
    let mic_error = h["microphone"]["error"].as_str().unwrap();
    assert!(mic_error.contains("cannot open"), "{h}");
    let s = json(&wait_for(
        &rx,
        "emotiond/e2e-2/summary",
        Duration::from_secs(30),
        |p| json(p)["camera"] == "unavailable" && json(p)["voice"]["microphone"] == "unavailable",
    ));
    assert_eq!(s["frames_processed"], 0);
    assert_eq!(s["voice"]["audio_s"], 0.0, "{s}");
    assert!(s["fused_from"].is_null(), "neither faces nor speech: {s}");
    // the status LED (simulated pin) blinks fast: no camera
    wait_file(&pins.join("state"), "no_camera", 10);
    // still running (retrying), then a clean stop publishes offline
    assert!(daemon.0.try_wait().unwrap().is_none());
    sigterm(&daemon.0);
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    wait_for(&rx, "emotiond/e2e-2/status", Duration::from_secs(10), |p| {
        p == b"offline"
    });
}

/// Simulated pins (files): the LED's state follows the broker, and a button press publishes
/// the window in progress on the feedback topic. The pins are simulated (no GPIO here); the
/// broker, the network cut and the daemon are real.
#[test]
fn simulated_pins_status_led_follows_the_broker_and_the_button_publishes_feedback() {
    let broker = Broker::start();
    let relay = Relay::start(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let pins = dir.path().join("pins");
    let camera = format!(
        "{}[indicators]\nbackend = \"sim\"\nstatus_led = 17\nbutton = 27\nsim_dir = {:?}\n",
        looping_files(&data("astronaut.png"), 10.0),
        pins.display().to_string()
    );
    let cfg = write_config(dir.path(), "e2e-fb", relay.port, &camera);
    let cfg_text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("window_s = 1.0", "window_s = 30.0");
    std::fs::write(&cfg, cfg_text).unwrap();
    let rx = subscribe(broker.port, "emotiond/e2e-fb/#");
    let mut daemon = spawn_daemon(&cfg);
    wait_for(
        &rx,
        "emotiond/e2e-fb/status",
        Duration::from_secs(30),
        |p| p == b"online",
    );
    wait_file(&pins.join("state"), "running", 20);
    assert_eq!(
        std::fs::read_to_string(pins.join("status_led"))
            .unwrap()
            .trim(),
        "1"
    );
    std::thread::sleep(Duration::from_millis(1500)); // some frames into the (30 s) window
    std::fs::write(pins.join("button"), "1").unwrap();
    let fb = json(&wait_for(
        &rx,
        "emotiond/e2e-fb/feedback",
        Duration::from_secs(10),
        |_| true,
    ));
    std::fs::write(pins.join("button"), "0").unwrap();
    assert_eq!(fb["event"], "feedback", "{fb}");
    assert_eq!(fb["device_id"], "e2e-fb", "{fb}");
    let w = &fb["window"];
    assert_eq!(w["seq"], 0, "the window in progress: {fb}");
    assert!(w["frames_processed"].as_u64().unwrap() > 0, "{fb}");
    assert!(w["faces_seen"].as_u64().unwrap() > 0, "{fb}");
    assert!(w["emotions"]["happy"].as_f64().unwrap() > 0.3, "{fb}");
    let t = fb["ts_ms"].as_u64().unwrap();
    assert!(
        t >= w["window_start_ms"].as_u64().unwrap() && t == w["window_end_ms"].as_u64().unwrap(),
        "{fb}"
    );
    // the broker goes out of reach: the LED blinks slowly; it comes back: steady again
    relay.cut();
    wait_file(&pins.join("state"), "no_broker", 30);
    relay.restore();
    wait_file(&pins.join("state"), "running", 60);
    sigterm(&daemon.0);
    assert!(daemon.0.wait().unwrap().success());
    wait_file(&pins.join("state"), "off", 5);
    assert_eq!(
        std::fs::read_to_string(pins.join("status_led"))
            .unwrap()
            .trim(),
        "0"
    );
}

#[test]
fn summaries_and_check_name_the_engine_that_runs_and_why_one_fell_back() {
    let Some(tflite) = tflite_library() else {
        return;
    };
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // The detector on TFLite + XNNPACK; the expression model asks for ONNX Runtime from a
    // library that is not there, so it falls back to tract and says why.
    let tables = format!(
        "{}\n[models]\nengine = \"tflite\"\ntflite_library = {:?}\nonnxruntime_library = \"/nonexistent/libonnxruntime.so\"\n[models.expression_engine]\nengine = \"onnxruntime\"\n",
        looping_files(&data("astronaut.png"), 10.0),
        tflite.display().to_string()
    );
    let cfg = write_config(dir.path(), "e2e-eng", broker.port, &tables);
    let rx = subscribe(broker.port, "emotiond/e2e-eng/summary");
    let _daemon = spawn_daemon(&cfg);
    let s = next_summary(&rx, "emotiond/e2e-eng/summary", 60);
    assert!(s["faces_seen"].as_u64().unwrap() > 0, "{s}");
    let det = &s["detector"];
    assert_eq!(det["engine"], "tflite", "{s}");
    assert_eq!(det["accelerator"], "xnnpack", "{s}");
    assert!(det["fallback"].is_null(), "{s}");
    assert_eq!(det["stalls"], 0);
    let exp = &s["expression"];
    assert_eq!(exp["engine"], "tract", "{s}");
    let why = exp["fallback"].as_str().unwrap();
    assert!(
        why.starts_with("onnxruntime: ") && why.contains("/nonexistent/libonnxruntime.so"),
        "{why}"
    );

    let out = run_cli(&["check", "--json", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a fallback is a failed check");
    let items: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| json(l.as_bytes()))
        .collect();
    let models = items.iter().find(|i| i["check"] == "models").unwrap();
    assert_eq!(models["ok"], true);
    assert!(
        models["detail"]
            .as_str()
            .unwrap()
            .contains("tflite+xnnpack"),
        "{models}"
    );
    let engine = items.iter().find(|i| i["check"] == "engine").unwrap();
    assert_eq!(engine["ok"], false);
    assert!(
        engine["detail"]
            .as_str()
            .unwrap()
            .contains("fer_mini_xception"),
        "{engine}"
    );
}

#[test]
fn under_systemd_it_reports_ready_and_pings_the_watchdog_from_the_pipeline() {
    // systemd's notify protocol for real: a datagram socket named in NOTIFY_SOCKET.
    use std::os::unix::net::UnixDatagram;
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let cfg = write_config(
        dir.path(),
        "e2e-sd",
        broker.port,
        &looping_files(&data("astronaut.png"), 5.0),
    );
    let _daemon = Daemon(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "400000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 4096];
    let mut msgs = Vec::new();
    let start = Instant::now();
    while msgs
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        let n = sock.recv(&mut buf).expect("a notification within 30 s");
        msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        assert!(start.elapsed() < Duration::from_secs(60), "{msgs:?}");
    }
    assert!(msgs[0].contains("READY=1"), "{msgs:?}");
    assert!(msgs[0].contains("STATUS=running: blazeface"), "{msgs:?}");
}

#[test]
fn summaries_carry_face_and_voice_and_a_silent_window_has_no_speech() {
    let Some(clip) = spoken_clip() else { return };
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // 1.4 s of speech (48 kHz, as recorded), then 4 s of silence
    let mut r = hound::WavReader::open(&clip).unwrap();
    let spec = r.spec();
    let speech: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let wav = dir.path().join("speech_then_silence.wav");
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for &x in speech
        .iter()
        .chain(std::iter::repeat_n(&0, spec.sample_rate as usize * 4))
    {
        w.write_sample(x).unwrap();
    }
    w.finalize().unwrap();
    let camera = format!(
        "{}[audio]\nenabled = true\nsource = \"wav\"\npaths = [{:?}]\n",
        looping_files(&data("astronaut.png"), 10.0),
        wav.display().to_string()
    );
    let cfg = write_config(dir.path(), "e2e-av", broker.port, &camera);
    let rx = subscribe(broker.port, "emotiond/e2e-av/#");
    let _daemon = spawn_daemon(&cfg);
    let mut with_speech = None;
    let mut silent = None;
    let end = Instant::now() + Duration::from_secs(60);
    while silent.is_none() && Instant::now() < end {
        let s = next_summary(&rx, "emotiond/e2e-av/summary", 30);
        let v = &s["voice"];
        assert!(v.is_object(), "audio on: a voice block: {s}");
        assert_eq!(v["vad_engine"], "tract", "{s}");
        assert!(v["vad_fallback"].is_null(), "{s}");
        assert!(s["faces_seen"].as_u64().unwrap() > 0, "{s}");
        let speech_s = v["speech_s"].as_f64().unwrap();
        if speech_s > 0.3 && with_speech.is_none() {
            with_speech = Some(s);
        } else if with_speech.is_some() && v["audio_s"].as_f64().unwrap() > 0.9 && speech_s == 0.0 {
            silent = Some(s);
        }
    }
    let sp = with_speech.expect("a window with speech");
    let v = &sp["voice"];
    assert!(v["segments"].as_u64().unwrap() >= 1, "{sp}");
    let f0 = v["pitch_hz_median"].as_f64().unwrap();
    assert!((75.0..=300.0).contains(&f0), "{sp}");
    let a = v["arousal"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&a), "{sp}");
    assert_eq!(sp["fused_from"], "both", "{sp}");
    assert!(
        sp["fused_arousal"].is_number() && sp["fused_valence"].is_number(),
        "{sp}"
    );
    let si = silent.expect("a window of silence after the speech");
    let v = &si["voice"];
    assert_eq!(
        (v["speech_s"].as_f64(), v["segments"].as_u64()),
        (Some(0.0), Some(0)),
        "{si}"
    );
    assert!(
        v["loudness_dbfs"].is_null() && v["arousal"].is_null(),
        "{si}"
    );
    assert_eq!(si["fused_from"], "faces", "{si}");
    assert_eq!(
        si["fused_arousal"], si["arousal"],
        "faces only: the face estimate: {si}"
    );
    // aggregates only: no samples, no per-segment times, only the documented fields
    crate::delivery::assert_only_documented_fields(&sp);
    crate::delivery::assert_only_documented_fields(&si);
}
