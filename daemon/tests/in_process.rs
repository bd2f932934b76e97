//! The daemon run in-process, as `emotiond run` runs it: `app::start` with a config and a
//! `Shutdown`, a running daemon back, stopped by triggering the shutdown (issue 10: the
//! wiring is a library function, so tests need no binary). A file camera, MQTT off, the
//! on-device API on a free loopback port to watch it from outside (and the example kiosk
//! client, `examples/kiosk_live.py`, follows its live stream).

use emotiond::app::{self, Options};
use emotiond::config::Config;
use emotiond::shutdown::Shutdown;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// `GET path` on `addr`: the status code and the body.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|b| b.1).unwrap_or("");
    Ok((status, body.to_string()))
}

#[test]
fn the_daemon_runs_in_process_and_stops_when_told() {
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/astronaut_640x480.jpg");
    let text = format!(
        "device_id = \"in-process\"\nstate_dir = \"\"\n\
         [camera]\nsource = \"files\"\npaths = [{photo:?}]\npace = \"realtime\"\nstills_fps = 5.0\nloop = true\n\
         [pipeline]\nwindow_s = 0.5\n[mqtt]\nenabled = false\n\
         [api]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"
    );
    let cfg = Config::parse(&text, Path::new("in-process.toml")).unwrap();
    let shutdown = Shutdown::new();
    let running = app::start(cfg, Options::default(), shutdown.clone()).unwrap();
    let addr = running.api_addr().expect("the API is on");
    assert_ne!(addr.port(), 0);

    // its summaries, from outside: the first window closes within a second of real time
    let end = Instant::now() + Duration::from_secs(60);
    let summary = loop {
        match get(addr, "/v1/summary/latest") {
            Ok((200, body)) => break serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            Ok(_) | Err(_) => {
                assert!(Instant::now() < end, "no summary within 60 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(summary["device_id"], "in-process", "{summary}");
    assert!(
        summary["faces_seen"].as_u64().unwrap_or(0) >= 1,
        "{summary}"
    );

    // the example kiosk client (examples/kiosk_live.py) follows the live stream and greets
    // the face it sees
    let client = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kiosk_live.py"))
        .args(["--url", &format!("http://{addr}"), "--events", "10"])
        .output()
        .expect("python3 runs examples/kiosk_live.py");
    let said = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(
        said.contains("hello!"),
        "the kiosk client did not greet: {said}"
    );

    // told to stop: every thread ends, the window in progress is counted, the API is gone
    assert!(!shutdown.is_triggered());
    running.shutdown().trigger();
    let made = running.wait();
    assert!(made >= 1, "{made} summaries");
    assert!(
        get(addr, "/v1/health").is_err(),
        "the API still answers after wait()"
    );
}
