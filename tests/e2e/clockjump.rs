//! The clock-jump fault (issue 13, item 5) against the real binary and a real mosquitto: the
//! daemon runs under libfaketime (Debian's `libfaketime`, LD_PRELOAD), which moves the wall
//! clock it reads (CLOCK_REALTIME) by the offset in a file the test rewrites while it runs;
//! the monotonic clock is left alone (`DONT_FAKE_MONOTONIC=1`), as on a board whose clock NTP
//! or an operator steps. The clock goes forward by an hour, then back by an hour.
//!
//! What must hold: seq goes on without a hole or a repeat (nothing published twice), every
//! window keeps its length (`window_end_ms - window_start_ms` is the configured second, the
//! window the step falls in too), and the stamps follow the clock: about an hour ahead of the
//! real time after the first step, back on it after the second. Prints one `fault:` line.
//!
//! Needs libfaketime (`scripts/setup --test` installs it); without it the test fails saying so.
//! `cargo test -p emotiond --test e2e clockjump -- --nocapture`

use crate::support::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!(
            "clockjump: needs libfaketime (/usr/lib/<triplet>/faketime/libfaketimeMT.so.1): \
             apt-get install libfaketime, or scripts/setup --test"
        )
    })
}

fn real_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const HOUR_MS: i64 = 3_600_000;

#[test]
fn clock_steps_forward_and_back_keep_seq_and_windows_and_stamps_follow_the_clock() {
    let lib = libfaketime();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let device = "clockjump";
    let broker = Broker::start();
    let rx = subscribe(broker.port, &format!("emotiond/{device}/summary"));
    let cfg = write_config(
        dir.path(),
        device,
        broker.port,
        &looping_files(&data("astronaut.png"), 10.0),
    );
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_emotiond"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info,tract_linalg=warn")
            .env("LD_PRELOAD", &lib)
            .env("FAKETIME_TIMESTAMP_FILE", &offset)
            .env("FAKETIME_NO_CACHE", "1")
            .env("DONT_FAKE_MONOTONIC", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let topic = format!("emotiond/{device}/summary");
    let mut got: Vec<serde_json::Value> = Vec::new();
    // summaries until `n` more have arrived whose end stamp is `ahead` ms from the real time
    // (within a minute)
    let mut phase = |ahead: i64, n: usize, what: &str| {
        let mut matched = 0;
        let end = Instant::now() + Duration::from_secs(40);
        while matched < n {
            assert!(
                Instant::now() < end,
                "clockjump: {what}: no {n} summaries stamped {ahead} ms from the real time \
                 within 40 s; got {:?}",
                got.iter()
                    .map(|s| (s["seq"].clone(), s["window_end_ms"].clone()))
                    .collect::<Vec<_>>()
            );
            let s = next_summary(&rx, &topic, 30);
            let end_ms = s["window_end_ms"].as_i64().unwrap();
            if (end_ms - real_ms() - ahead).abs() < 60_000 {
                matched += 1;
            }
            got.push(s);
        }
    };
    phase(0, 3, "before the steps");
    std::fs::write(&offset, "+1h\n").unwrap();
    phase(HOUR_MS, 3, "after the clock went forward an hour");
    std::fs::write(&offset, "+0\n").unwrap();
    phase(0, 3, "after the clock went back an hour");
    sigterm(&daemon.0);
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "the daemon exited with {status}");
    // the last window, closed at shutdown
    while let Ok((t, p, _)) = rx.recv_timeout(Duration::from_secs(2)) {
        if t == topic {
            got.push(json(&p));
        }
    }

    let seqs: Vec<u64> = got.iter().map(|s| s["seq"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (0..seqs.len() as u64).collect();
    assert_eq!(seqs, want, "seq must go on without a hole or a repeat");
    let boots: std::collections::BTreeSet<u64> =
        got.iter().map(|s| s["boot_id"].as_u64().unwrap()).collect();
    assert_eq!(boots.len(), 1, "one boot: {boots:?}");
    let lens: Vec<i64> = got
        .iter()
        .map(|s| s["window_end_ms"].as_i64().unwrap() - s["window_start_ms"].as_i64().unwrap())
        .collect();
    // every window but the last (cut short by the shutdown) lasts the configured second
    for (i, l) in lens[..lens.len() - 1].iter().enumerate() {
        assert!(
            (999..=1001).contains(l),
            "window seq {i} lasts {l} ms on its stamps, not 1000: {lens:?}"
        );
    }
    assert!((0..=1001).contains(lens.last().unwrap()), "{lens:?}");
    // the steps show in the stamps: one forward by about an hour, one back
    let ends: Vec<i64> = got
        .iter()
        .map(|s| s["window_end_ms"].as_i64().unwrap())
        .collect();
    let steps: Vec<i64> = ends
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| d.abs() > 10_000)
        .collect();
    assert_eq!(steps.len(), 2, "two steps in the stamps: {ends:?}");
    assert!(
        (steps[0] - HOUR_MS).abs() < 10_000 && (steps[1] + HOUR_MS).abs() < 10_000,
        "an hour forward, then back: {steps:?}"
    );
    println!(
        "fault: {}",
        serde_json::json!({
            "fault": "clock_jump",
            "summaries": got.len(),
            "steps_ms": steps,
            "test_s": t0.elapsed().as_secs_f32(),
        })
    );
}
