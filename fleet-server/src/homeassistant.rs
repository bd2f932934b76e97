//! Optional Home Assistant MQTT discovery (`serve --ha-discovery`): every device the backend
//! hears appears in Home Assistant as a device with sensors (dominant emotion, faces seen,
//! valence), a connectivity sensor (the device's own retained status and Last Will) and its
//! expression model as an `update` entity.
//!
//! The backend publishes the discovery documents (retained, QoS 1) and one small JSON state
//! per device and summary (retained, QoS 0) on a connection of its own: a slow broker or Home
//! Assistant never holds up ingest (the writer hands snapshots over with `try_send`; a full
//! queue drops them and counts them). It publishes only what the dashboard shows for one
//! device: a few numbers per window, no frame, no track, no identity.
//!
//! The documents are built by pure functions ([`discovery`], [`state`], [`model_state`]),
//! tested below; the task around them only publishes.

use crate::ingest::dominant;
use crate::mqtt::MqttConfig;
use emotiond_wire::summary::Summary;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone)]
pub struct HaConfig {
    /// Home Assistant's discovery prefix (its default: `homeassistant`).
    pub discovery_prefix: String,
    /// Where the backend publishes each device's state: `<state_prefix>/<device>/state` and
    /// `<state_prefix>/<device>/model`.
    pub state_prefix: String,
    /// The devices' topic prefix (their `status` topic is the availability).
    pub fleet_prefix: String,
}

/// What one new summary says, as Home Assistant shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub device_id: String,
    pub t_ms: u64,
    pub dominant: Option<&'static str>,
    pub faces_seen: u32,
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    /// The active expression model (`id@version` as the device reports it).
    pub model: String,
}

impl Snapshot {
    pub fn of(s: &Summary) -> Snapshot {
        Snapshot {
            device_id: s.device_id.clone(),
            t_ms: s.window_end_ms,
            dominant: dominant(s.emotions.to_array()),
            faces_seen: s.faces_seen,
            valence: s.valence,
            arousal: s.arousal,
            model: s.expression.id.clone(),
        }
    }
}

/// A device id as Home Assistant accepts it in a discovery topic and an id
/// (`[a-zA-Z0-9_-]`; anything else becomes `_`).
pub fn node_id(device_id: &str) -> String {
    let clean: String = device_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("emotiond_{clean}")
}

pub fn state_topic(cfg: &HaConfig, device_id: &str) -> String {
    format!("{}/{device_id}/state", cfg.state_prefix)
}

pub fn model_topic(cfg: &HaConfig, device_id: &str) -> String {
    format!("{}/{device_id}/model", cfg.state_prefix)
}

/// The discovery documents of one device: `(topic, retained payload)`.
pub fn discovery(cfg: &HaConfig, device_id: &str) -> Vec<(String, String)> {
    let node = node_id(device_id);
    let status = format!("{}/{device_id}/status", cfg.fleet_prefix);
    let state = state_topic(cfg, device_id);
    let device = json!({
        "identifiers": [node],
        "name": format!("emotiond {device_id}"),
        "manufacturer": "emotiond",
        "model": "emotiond",
    });
    let origin = json!({"name": "emotion-fleet", "sw": env!("CARGO_PKG_VERSION")});
    let availability =
        json!({"topic": status, "payload_available": "online", "payload_not_available": "offline"});
    let sensor = |key: &str, name: &str, template: &str, extra: serde_json::Value| {
        let mut doc = json!({
            "name": name,
            "unique_id": format!("{node}_{key}"),
            "object_id": format!("{node}_{key}"),
            "state_topic": state,
            "value_template": template,
            "availability": availability,
            "device": device,
            "origin": origin,
        });
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        (
            format!("{}/sensor/{node}/{key}/config", cfg.discovery_prefix),
            doc.to_string(),
        )
    };
    vec![
        sensor(
            "dominant",
            "Dominant emotion",
            "{{ value_json.dominant }}",
            json!({"icon": "mdi:emoticon-outline"}),
        ),
        sensor(
            "faces",
            "Faces seen",
            "{{ value_json.faces_seen }}",
            json!({"state_class": "measurement", "icon": "mdi:account-multiple"}),
        ),
        sensor(
            "valence",
            "Valence",
            "{{ value_json.valence }}",
            json!({"state_class": "measurement", "icon": "mdi:emoticon-happy-outline"}),
        ),
        (
            format!(
                "{}/binary_sensor/{node}/online/config",
                cfg.discovery_prefix
            ),
            json!({
                "name": "Online",
                "unique_id": format!("{node}_online"),
                "object_id": format!("{node}_online"),
                "state_topic": status,
                "payload_on": "online",
                "payload_off": "offline",
                "device_class": "connectivity",
                "device": device,
                "origin": origin,
            })
            .to_string(),
        ),
        (
            format!("{}/update/{node}/model/config", cfg.discovery_prefix),
            json!({
                "name": "Expression model",
                "unique_id": format!("{node}_model"),
                "object_id": format!("{node}_model"),
                "state_topic": model_topic(cfg, device_id),
                "availability": availability,
                "device": device,
                "origin": origin,
            })
            .to_string(),
        ),
    ]
}

/// The state document of one device (retained, so Home Assistant has it after a restart).
pub fn state(s: &Snapshot) -> String {
    json!({
        "t_ms": s.t_ms,
        "dominant": s.dominant.unwrap_or("none"),
        "faces_seen": s.faces_seen,
        "valence": s.valence,
        "arousal": s.arousal,
    })
    .to_string()
}

/// The `update` entity's state: the installed model. Staged rollouts (part 2) will set
/// `latest_version` to a rollout's target; until then it is the installed one.
pub fn model_state(s: &Snapshot) -> String {
    json!({
        "installed_version": s.model,
        "latest_version": s.model,
        "title": "emotiond expression model",
    })
    .to_string()
}

/// Snapshots waiting for the publisher; more are dropped (and counted).
pub const QUEUE: usize = 4096;

/// Publish discovery and state until `stop`: discovery once per device and connection (again
/// after a reconnect to a broker that lost its retained messages), state on every snapshot,
/// the model state when it changes.
pub async fn run(
    mqtt: MqttConfig,
    cfg: HaConfig,
    mut rx: mpsc::Receiver<Snapshot>,
    dropped: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut opts = match mqtt.options(&format!("{}-ha", mqtt.client_id)) {
        Ok(o) => o,
        Err(e) => {
            log::error!("homeassistant: {e:#}");
            return;
        }
    };
    opts.set_keep_alive(Duration::from_secs(15));
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    // Each new connection without a session bumps `generation`: announce every device again.
    let (gen_tx, mut generation) = watch::channel(0u64);
    let mut poll_stop = stop.clone();
    let poller = tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        gen_tx.send_modify(|g| *g += 1);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::debug!("homeassistant: broker connection: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = poll_stop.changed() => return,
                        }
                    }
                },
                _ = poll_stop.changed() => return,
            }
        }
    });
    let mut announced: HashSet<String> = HashSet::new();
    let mut models: std::collections::HashMap<String, String> = Default::default();
    let mut seen_generation = 0u64;
    loop {
        let snap = tokio::select! {
            s = rx.recv() => match s { Some(s) => s, None => break },
            _ = generation.changed() => {
                let g = *generation.borrow_and_update();
                if g > 1 && g != seen_generation {
                    // reconnected: announce every device again (retained copies may be gone)
                    announced.clear();
                    models.clear();
                }
                seen_generation = g;
                continue;
            }
            _ = stop.changed() => break,
        };
        let mut out: Vec<(String, String, QoS)> = Vec::new();
        if announced.insert(snap.device_id.clone()) {
            out.extend(
                discovery(&cfg, &snap.device_id)
                    .into_iter()
                    .map(|(t, p)| (t, p, QoS::AtLeastOnce)),
            );
        }
        if models.get(&snap.device_id) != Some(&snap.model) {
            models.insert(snap.device_id.clone(), snap.model.clone());
            out.push((
                model_topic(&cfg, &snap.device_id),
                model_state(&snap),
                QoS::AtLeastOnce,
            ));
        }
        out.push((
            state_topic(&cfg, &snap.device_id),
            state(&snap),
            QoS::AtMostOnce,
        ));
        for (topic, payload, qos) in out {
            tokio::select! {
                r = client.publish(topic, qos, true, payload) => if r.is_err() { break },
                _ = stop.changed() => { poller.abort(); return; }
            }
        }
        let n = dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            log::warn!("homeassistant: {n} state updates dropped (the broker is slow or away)");
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), poller).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HaConfig {
        HaConfig {
            discovery_prefix: "homeassistant".into(),
            state_prefix: "emotion-fleet/ha".into(),
            fleet_prefix: "emotiond".into(),
        }
    }

    #[test]
    fn a_device_becomes_three_sensors_a_connectivity_sensor_and_an_update() {
        let docs = discovery(&cfg(), "kiosk 7/a");
        let topics: Vec<&str> = docs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/sensor/emotiond_kiosk_7_a/dominant/config",
                "homeassistant/sensor/emotiond_kiosk_7_a/faces/config",
                "homeassistant/sensor/emotiond_kiosk_7_a/valence/config",
                "homeassistant/binary_sensor/emotiond_kiosk_7_a/online/config",
                "homeassistant/update/emotiond_kiosk_7_a/model/config",
            ]
        );
        let mut ids = HashSet::new();
        for (t, p) in &docs {
            let d: serde_json::Value = serde_json::from_str(p).unwrap();
            assert!(
                ids.insert(d["unique_id"].as_str().unwrap().to_string()),
                "{t}"
            );
            assert_eq!(d["device"]["identifiers"][0], "emotiond_kiosk_7_a", "{t}");
            assert!(
                d["state_topic"].as_str().unwrap().contains("kiosk 7/a"),
                "{t}"
            );
        }
        let online: serde_json::Value = serde_json::from_str(&docs[3].1).unwrap();
        assert_eq!(online["state_topic"], "emotiond/kiosk 7/a/status");
        let dominant: serde_json::Value = serde_json::from_str(&docs[0].1).unwrap();
        assert_eq!(
            dominant["availability"]["topic"],
            "emotiond/kiosk 7/a/status"
        );
        assert_eq!(dominant["state_topic"], "emotion-fleet/ha/kiosk 7/a/state");
    }

    #[test]
    fn the_state_carries_what_the_templates_read() {
        let s = Snapshot {
            device_id: "k".into(),
            t_ms: 5,
            dominant: Some("happy"),
            faces_seen: 3,
            valence: Some(0.5),
            arousal: None,
            model: "fer@1".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&state(&s)).unwrap();
        assert_eq!(v["dominant"], "happy");
        assert_eq!(v["faces_seen"], 3);
        assert_eq!(v["valence"], 0.5);
        let none = Snapshot {
            dominant: None,
            ..s.clone()
        };
        let v: serde_json::Value = serde_json::from_str(&state(&none)).unwrap();
        assert_eq!(v["dominant"], "none");
        let m: serde_json::Value = serde_json::from_str(&model_state(&s)).unwrap();
        assert_eq!(m["installed_version"], "fer@1");
    }
}
