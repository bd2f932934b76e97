//! Home Assistant MQTT discovery (`serve --ha-discovery`): what a Home Assistant subscribed
//! to the broker would find, retained, once devices have published (no Home Assistant runs
//! here: the documents are checked against the keys its MQTT integration reads).

use crate::support::*;
use emotion_fleet_server::ingest::dominant;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Every retained message under `filters`, collected until `done` says enough or 20 s pass.
fn retained(
    port: u16,
    filters: &[&str],
    done: impl Fn(&BTreeMap<String, serde_json::Value>) -> bool,
) -> BTreeMap<String, serde_json::Value> {
    let (c, mut conn) = Client::new(MqttOptions::new("ha-probe", "127.0.0.1", port), 64);
    for f in filters {
        c.subscribe(*f, QoS::AtLeastOnce).unwrap();
    }
    let mut got = BTreeMap::new();
    let t = Instant::now();
    while !done(&got) && t.elapsed() < Duration::from_secs(20) {
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            conn.recv_timeout(Duration::from_millis(500))
        {
            let v = serde_json::from_slice(&p.payload)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e})", p.topic));
            got.insert(p.topic.clone(), v);
        }
    }
    let _ = c.disconnect();
    got
}

#[test]
fn each_device_is_announced_to_home_assistant_with_its_latest_state() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start_with(broker.port, data.path(), None, "a", &["--ha-discovery"]);
    let token = serve.admin_token();
    let devices = 3;
    simulate(
        broker.port,
        &[
            "--devices",
            "3",
            "--summaries",
            "4",
            "--postcard-every",
            "2",
        ],
    );
    wait_until(30, "every summary stored", || {
        let a = http(
            "GET",
            &format!("{}/api/v1/stats", serve.http),
            Some(&token),
            None,
        );
        (a.json()["stored"] == 12).then_some(())
    });
    // each device's newest stored summary (whether it came as JSON or postcard)
    let newest: Vec<emotiond_wire::Summary> = (0..devices)
        .map(|d| {
            let rows = http(
                "GET",
                &format!("{}/api/v1/devices/sim-{d}/summaries", serve.http),
                Some(&token),
                None,
            )
            .json();
            serde_json::from_value(rows.as_array().unwrap().last().unwrap().clone()).unwrap()
        })
        .collect();
    // the backend publishes after it stored: wait for the newest state, not just any
    let got = retained(
        broker.port,
        &["homeassistant/#", "emotion-fleet/ha/#"],
        |m| {
            m.len() == devices * 7
                && newest.iter().all(|s| {
                    m.get(&format!("emotion-fleet/ha/{}/state", s.device_id))
                        .is_some_and(|v| v["t_ms"] == s.window_end_ms)
                })
        },
    );
    assert_eq!(got.len(), devices * 7, "{:#?}", got.keys());
    for (d, last) in newest.iter().enumerate() {
        let id = format!("sim-{d}");
        let node = format!("emotiond_sim-{d}");
        for (component, key) in [
            ("sensor", "dominant"),
            ("sensor", "faces"),
            ("sensor", "valence"),
            ("binary_sensor", "online"),
            ("update", "model"),
        ] {
            let t = format!("homeassistant/{component}/{node}/{key}/config");
            let doc = &got[&t];
            assert_eq!(doc["unique_id"], format!("{node}_{key}"), "{t}");
            assert_eq!(doc["device"]["identifiers"][0], node, "{t}");
            // every topic a document names is one that carries data
            let st = doc["state_topic"].as_str().unwrap();
            if key == "online" {
                assert_eq!(st, format!("emotiond/{id}/status"));
            } else {
                assert!(got.contains_key(st), "{t}: {st} has no retained state");
                assert_eq!(
                    doc["availability"]["topic"],
                    format!("emotiond/{id}/status")
                );
            }
        }
        // the state is the newest stored summary's
        let state = &got[&format!("emotion-fleet/ha/{id}/state")];
        assert_eq!(state["t_ms"], last.window_end_ms, "{state}");
        assert_eq!(state["faces_seen"], last.faces_seen, "{state}");
        assert_eq!(
            state["dominant"],
            dominant(last.emotions.to_array()).unwrap_or("none"),
            "{state}"
        );
        let model = &got[&format!("emotion-fleet/ha/{id}/model")];
        assert_eq!(model["installed_version"], last.expression.id, "{model}");
    }
}
