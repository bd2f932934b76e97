//! Delivery: summaries in order, status and Last Will, the outbox across broker outages and
//! crashes.

use crate::support::*;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The fields a summary may have (docs/reference/topics.md, Payloads; `emotiond_wire::summary::Summary`), per
/// object. The privacy review is this list: a field not in it (a box, an image, an identity,
/// or anything new) fails the tests until it is reviewed and added here.
const SUMMARY_FIELDS: &[&str] = &[
    "schema",
    "device_id",
    "seq",
    "boot_id",
    "window_start_ms",
    "window_end_ms",
    "frames_processed",
    "frames_dropped",
    "frames_skipped",
    "camera",
    "faces_seen",
    "distinct_tracks",
    "dwell_s",
    "emotions",
    "dominant",
    "valence",
    "arousal",
    "inference_ms_mean",
    "inference_ms_p95",
    "frame_gap_ms_max",
    "detector",
    "expression",
    "voice",
    "fused_valence",
    "fused_arousal",
    "fused_from",
];
const MODEL_FIELDS: &[&str] = &[
    "id",
    "engine",
    "accelerator",
    "fallback",
    "slow",
    "stalls",
    "rebuilds",
];
const VOICE_FIELDS: &[&str] = &[
    "microphone",
    "vad",
    "vad_engine",
    "vad_fallback",
    "audio_s",
    "lost_s",
    "speech_s",
    "speech_ratio",
    "segments",
    "loudness_dbfs",
    "pitch_hz_median",
    "pitch_range_st",
    "pitch_sd_st",
    "voiced_ratio",
    "arousal",
    "emotions",
    "classifier",
];
const EMOTION_FIELDS: &[&str] = &[
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
];

/// The fields allowed in the object at `path` (keys joined by '.'), or None where no object
/// is documented.
fn allowed_fields(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => SUMMARY_FIELDS,
        "detector" | "expression" | "voice.classifier" => MODEL_FIELDS,
        "voice" => VOICE_FIELDS,
        "emotions" | "dominant" | "voice.emotions" => EMOTION_FIELDS,
        _ => return None,
    })
}

/// Every key of `s`, at every depth, is a documented summary field; no value is an array
/// (none is documented: a list of boxes, samples or crops would be one).
pub(crate) fn assert_only_documented_fields(s: &serde_json::Value) {
    fn walk(v: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(o) => {
                let Some(allowed) = allowed_fields(path) else {
                    bad.push(format!("an object at `{path}`"));
                    return;
                };
                for (k, child) in o {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if allowed.contains(&k.as_str()) {
                        walk(child, &p, bad);
                    } else {
                        bad.push(format!("undocumented field `{p}`"));
                    }
                }
            }
            serde_json::Value::Array(_) => bad.push(format!("an array at `{path}`")),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    if !s.is_object() {
        bad.push("not an object".into());
    }
    walk(s, "", &mut bad);
    assert!(
        bad.is_empty(),
        "summary fields not on the reviewed list: {bad:?} in {s}"
    );
}

#[test]
fn the_field_check_passes_every_documented_field_and_rejects_any_other() {
    let mut full = emotiond_wire::summary::sample();
    let voice = full.voice.as_mut().unwrap();
    voice.emotions = Some(full.emotions);
    voice.classifier = Some(full.expression.clone());
    let full = serde_json::to_value(&full).unwrap();
    assert_only_documented_fields(&full);
    for (path, extra) in [
        ("", serde_json::json!({"box": [0.1, 0.2, 0.3, 0.4]})),
        ("", serde_json::json!({"image": "/9j/4AAQ"})),
        ("detector", serde_json::json!({"track_id": 3})),
        ("voice", serde_json::json!({"speaker": "alice"})),
        ("voice.classifier", serde_json::json!({"embedding": 1.0})),
        ("emotions", serde_json::json!({"contempt": 0.1})),
    ] {
        let mut v = full.clone();
        let target = path
            .split('.')
            .filter(|k| !k.is_empty())
            .fold(&mut v, |v, k| &mut v[k]);
        for (k, x) in extra.as_object().unwrap() {
            target[k] = x.clone();
        }
        let r = std::panic::catch_unwind(|| assert_only_documented_fields(&v));
        assert!(r.is_err(), "{extra} in `{path}` was let through");
    }
    // a documented name holding a list (of boxes, say) is not let through either
    let mut v = full.clone();
    v["emotions"] = serde_json::json!([[0.1, 0.2, 0.3, 0.4]]);
    assert!(std::panic::catch_unwind(|| assert_only_documented_fields(&v)).is_err());
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
        // no image data, box coordinates or identity: only the documented fields
        assert_only_documented_fields(&s);
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
    // What the first run kept: its outbox on disk. The broker was never reachable, so that is
    // every summary it made, from seq 0, under its own boot id.
    let mut kept = BTreeSet::new();
    for e in std::fs::read_dir(&outbox).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sum") {
            continue;
        }
        let s = json(&std::fs::read(e.path()).unwrap());
        let (boot, seq) = (s["boot_id"].as_u64().unwrap(), s["seq"].as_u64().unwrap());
        assert!(
            name.ends_with(&format!("-{boot:08x}-{seq:010}.sum")),
            "{name} holds {s}"
        );
        kept.insert((boot, seq));
    }
    let first_boot = kept.first().expect("an outbox after the crash").0;
    let kept_seqs: Vec<u64> = kept.iter().map(|&(_, seq)| seq).collect();
    assert!(
        kept.iter().all(|&(boot, _)| boot == first_boot),
        "one run wrote the outbox: {kept:?}"
    );
    assert_eq!(
        kept_seqs,
        (0..kept.len() as u64).collect::<Vec<_>>(),
        "nothing delivered, nothing dropped: {kept:?}"
    );
    assert!(kept.len() >= 2, "{kept:?}");
    relay.restore();
    let _again = spawn_daemon(&cfg);
    // The second run sends what the first kept, then its own summaries (under another boot
    // id, from seq 0 again). Wait for two of its own, so that a repeat of a kept summary
    // would have come before.
    let mut from_first = Vec::new();
    let mut from_second = HashMap::<u64, Vec<u64>>::new();
    let end = Instant::now() + Duration::from_secs(40);
    while from_second.values().map(Vec::len).sum::<usize>() < 2 {
        let left = end.saturating_duration_since(Instant::now());
        let Ok((_, p, _)) = rx.recv_timeout(left) else {
            panic!(
                "after the restart, of the kept {kept_seqs:?} (boot {first_boot}) \
                 came {from_first:?}; of the second run's own: {from_second:?}"
            );
        };
        let s = json(&p);
        let (boot, seq) = (s["boot_id"].as_u64().unwrap(), s["seq"].as_u64().unwrap());
        if boot == first_boot {
            from_first.push(seq);
        } else {
            from_second.entry(boot).or_default().push(seq);
        }
    }
    assert_eq!(
        from_second.len(),
        1,
        "the second run has one boot id, not the first's: {from_second:?}"
    );
    let mut arrived = from_first.clone();
    arrived.sort();
    assert_eq!(
        arrived, kept_seqs,
        "exactly the kept summaries, each once, with the first run's boot id {first_boot} \
         (in arrival order: {from_first:?})"
    );
}
