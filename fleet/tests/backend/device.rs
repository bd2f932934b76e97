//! A real `emotiond` (the workspace's own binary, on a looping still image with real faces
//! and the real models) publishing postcard summaries and a feedback press into the backend.

use crate::support::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `emotiond`, built beside `emotion-fleet` by `cargo test --workspace`.
pub fn emotiond() -> PathBuf {
    let p = std::path::Path::new(BIN).with_file_name("emotiond");
    assert!(
        p.exists(),
        "{} is not built: run the workspace's tests (cargo test --workspace), or cargo build -p emotiond first",
        p.display()
    );
    p
}

/// `emotiond run --config cfg`, logging warnings and errors to the test's stderr.
pub fn spawn_emotiond(cfg: &std::path::Path) -> std::process::Child {
    Command::new(emotiond())
        .args(["run", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_real_device_is_registered_and_its_summaries_and_feedback_stored() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(broker.port, data.path(), None, "a");
    let token = serve.admin_token();
    let dev = tempfile::tempdir().unwrap();
    let pins = dev.path().join("pins");
    let image = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/astronaut.png");
    let cfg = dev.path().join("emotiond.toml");
    std::fs::write(
        &cfg,
        format!(
            "device_id = \"kiosk-real\"\nstate_dir = {:?}\n[camera]\nsource = \"files\"\npaths = [{:?}]\n\
             loop = true\nstills_fps = 5.0\n[pipeline]\nwindow_s = 1.0\n[mqtt]\nhost = \"127.0.0.1\"\n\
             port = {}\nkeep_alive_s = 5\nencoding = \"postcard\"\n[indicators]\nbackend = \"sim\"\n\
             button = 27\nsim_dir = {:?}\n",
            dev.path().join("state").display().to_string(),
            image.display().to_string(),
            broker.port,
            pins.display().to_string(),
        ),
    )
    .unwrap();
    let mut daemon = spawn_emotiond(&cfg);
    let get = |p: &str| {
        let a = http("GET", &format!("{}{p}", serve.http), Some(&token), None);
        assert_eq!(a.status, 200, "{p}: {}", a.body);
        a.json()
    };
    let d = wait_until(90, "the device's summaries", || {
        let a = http(
            "GET",
            &format!("{}/api/v1/devices/kiosk-real", serve.http),
            Some(&token),
            None,
        );
        (a.status == 200 && a.json()["completeness"]["stored"].as_i64().unwrap_or(0) >= 3)
            .then(|| a.json())
    });
    // press the feedback button (a simulated pin): one feedback event
    std::fs::write(pins.join("button"), "1").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(pins.join("button"), "0").unwrap();
    let fb = wait_until(30, "the feedback press", || {
        let f = get("/api/v1/feedback?device=kiosk-real");
        (f.as_array().unwrap().len() == 1).then_some(f)
    });
    let _ = daemon.kill();
    let _ = daemon.wait();

    assert_eq!(d["online"], true, "{d}");
    assert_eq!(d["camera"], "ok", "{d}");
    assert_eq!(d["version"], env!("CARGO_PKG_VERSION"), "{d}");
    assert!(
        d["models"]["expression"]["id"]
            .as_str()
            .unwrap()
            .starts_with("fer_mini_xception@"),
        "{d}"
    );
    assert_eq!(d["models"]["expression"]["engine"], "tract", "{d}");
    assert_eq!(d["completeness"]["lost_windows"], 0, "{d}");
    assert!(
        d["last_summary"]["faces_seen"].as_i64().unwrap() > 0,
        "the image shows a face: {d}"
    );
    let f = &fb[0];
    assert_eq!(f["kind"], "button", "{fb}");
    assert!(f["label"].is_null(), "{fb}");
    assert!(
        f["model"]
            .as_str()
            .unwrap()
            .starts_with("fer_mini_xception@"),
        "{fb}"
    );
    // the device's summaries, decoded from postcard, stored and served as JSON
    let rows = get("/api/v1/devices/kiosk-real/summaries");
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 3);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["device_id"], "kiosk-real");
        assert_eq!(r["seq"], i as u64, "in order, each once");
    }
}
