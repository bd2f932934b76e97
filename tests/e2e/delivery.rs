//! Delivery: summaries in order, status and Last Will, the outbox across broker outages and
//! crashes.

use crate::support::*;
use std::time::{Duration, Instant};

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
