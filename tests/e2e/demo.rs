//! `emotiond demo` for people (issue 15, item 6), the real binary with its in-process broker
//! and the built-in sample clip: the live page's URL is its first line, then a line per
//! summary; without `--once` it serves the page and the live stream at that URL until
//! SIGTERM, which it ends with exit 0.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

#[test]
fn the_demo_prints_its_page_first_then_a_line_per_summary_before_the_json() {
    let out = std::process::Command::new(BIN)
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
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("emotiond demo: live page at http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("window 0: ") && lines[1].contains(" face"),
        "{stdout}"
    );
    assert!(
        lines[1].contains("valence") && lines[1].contains("frames"),
        "{stdout}"
    );
    assert_eq!(json(lines[2].as_bytes())["seq"], 0);
}

#[test]
fn the_demo_serves_the_page_and_the_live_stream_at_the_url_it_prints_first_and_stops_on_sigterm() {
    // no --once: it runs until a signal; the page on 127.0.0.1:8081, or on a free port when
    // that one is taken (another test's demo, a daemon on this machine)
    let mut demo = Daemon(
        std::process::Command::new(BIN)
            .args(["demo", "--window", "1"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    // every stdout line, read on a thread (the demo goes on printing a line per summary)
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = demo.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the demo printed nothing within 120 s");
    let url = first
        .strip_prefix("emotiond demo: live page at ")
        .and_then(|rest| rest.strip_suffix(" (Ctrl-C stops)"))
        .filter(|url| url.starts_with("http://127.0.0.1:") && url.ends_with('/'))
        .unwrap_or_else(|| panic!("the first line is not the page's URL: {first:?}"));
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(30))
        .build();
    // the page, without a token (the demo's API is on loopback only, with none)
    let page = agent.get(url).call().expect("GET / of the demo");
    assert_eq!(page.status(), 200);
    assert!(
        page.content_type().starts_with("text/html"),
        "{}",
        page.content_type()
    );
    let html = page.into_string().unwrap();
    assert!(
        html.contains("<title>emotiond — live</title>") && html.contains("id=\"bars\""),
        "{html}"
    );
    // one live event, from the built-in clip
    let live = agent
        .get(&format!("{url}v1/live"))
        .call()
        .expect("GET /v1/live of the demo");
    assert_eq!(live.content_type(), "text/event-stream");
    let event = BufReader::new(live.into_reader())
        .lines()
        .map(|l| l.expect("the live stream of the demo"))
        .find_map(|l| l.strip_prefix("data: ").map(str::to_string))
        .expect("the live stream ended without an event");
    let event = json(event.as_bytes());
    assert!(event["frame"].as_u64().is_some(), "{event}");
    assert!(event["faces"].is_array(), "{event}");
    // SIGTERM: it stops, exit 0
    sigterm(&demo.0);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = demo.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the demo did not stop within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the demo after SIGTERM: {status}");
}
