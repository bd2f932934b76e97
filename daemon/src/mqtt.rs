//! MQTT: summaries out at QoS 1, a retained `online`/`offline` status with `offline` as the
//! Last Will, and a retained health document. Summaries go through the [`Outbox`] (on disk
//! under the state directory when there is one): an entry leaves it only when the broker
//! acknowledges it; after a lost connection everything unacknowledged is sent again, so
//! delivery is at least once (consumers de-duplicate on `boot_id` + `seq`).

use crate::config::MqttConfig;
use crate::outbox::{Entry, Outbox, entry_name};
use crate::pipeline::Shared;
use crate::summary::{Encoding, Summary};
use emotiond_hal::Backoff;
use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
pub struct Topics {
    pub summary: String,
    pub status: String,
    pub health: String,
}

impl Topics {
    pub fn new(prefix: &str, device_id: &str) -> Topics {
        let base = format!("{prefix}/{device_id}");
        Topics {
            summary: format!("{base}/summary"),
            status: format!("{base}/status"),
            health: format!("{base}/health"),
        }
    }
}

pub fn options(cfg: &MqttConfig, client_id: &str, will_topic: Option<&str>) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    o.set_keep_alive(Duration::from_secs(cfg.keep_alive_s));
    o.set_clean_session(true);
    o.set_max_packet_size(256 * 1024, 256 * 1024);
    if let (Some(u), p) = (&cfg.username, &cfg.password) {
        o.set_credentials(u.clone(), p.clone().unwrap_or_default());
    }
    if let Some(t) = will_topic {
        o.set_last_will(LastWill::new(t, "offline", QoS::AtLeastOnce, true));
    }
    o
}

fn health_json(shared: &Shared, outbox: &Outbox, sent: u64) -> Vec<u8> {
    serde_json::json!({
        "camera": shared.camera(),
        "summaries_sent": sent,
        "outbox": outbox.len(),
        "outbox_dropped": outbox.dropped,
        "outbox_on_disk": outbox.is_persistent(),
        "version": env!("CARGO_PKG_VERSION"),
    })
    .to_string()
    .into_bytes()
}

/// Publish summaries from `rx` until it closes (the pipeline ended), then deliver what is
/// left (for at most `drain`), publish `offline` and disconnect.
pub async fn run(
    cfg: MqttConfig,
    device_id: String,
    mut rx: mpsc::Receiver<Summary>,
    shared: Arc<Shared>,
    mut outbox: Outbox,
    drain: Duration,
) {
    let topics = Topics::new(&cfg.topic_prefix, &device_id);
    let opts = options(&cfg, &format!("emotiond-{device_id}"), Some(&topics.status));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let mut connected = false;
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    // One slot per publish handed to the client, in order (None: status/health): the event
    // loop reports outgoing publishes in that order, which gives each summary its packet id.
    let mut handed: VecDeque<Option<Entry>> = VecDeque::new();
    let mut unacked: HashMap<u16, Option<Entry>> = HashMap::new();
    let mut sent = 0u64;
    let mut last_health = None;
    let mut input_open = true;
    let mut drain_deadline: Option<Instant> = None;
    let mut health_tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        if connected {
            while handed.len() < 32 {
                let Some(e) = outbox.take() else { break };
                match client.try_publish(
                    topics.summary.clone(),
                    QoS::AtLeastOnce,
                    false,
                    e.payload.clone(),
                ) {
                    Ok(()) => handed.push_back(Some(e)),
                    Err(_) => {
                        // request channel full: retry after the next event
                        outbox.requeue(vec![e]);
                        break;
                    }
                }
            }
        }
        if !input_open {
            let done =
                outbox.is_empty() && handed.is_empty() && unacked.values().all(Option::is_none);
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + drain);
            if done || Instant::now() >= deadline {
                if !done {
                    let left = outbox.len() + handed.len() + unacked.len();
                    log::warn!(
                        "mqtt: leaving with {left} summaries undelivered{}",
                        if outbox.is_persistent() {
                            " (kept on disk for the next start)"
                        } else {
                            ""
                        }
                    );
                }
                break;
            }
        }
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    log::info!("mqtt: connected to {}:{} ({:?})", cfg.host, cfg.port, ack.code);
                    connected = true;
                    backoff.reset();
                    let h = health_json(&shared, &outbox, sent);
                    for (topic, payload) in [(&topics.status, b"online".to_vec()), (&topics.health, h.clone())] {
                        if client.try_publish(topic.clone(), QoS::AtLeastOnce, true, payload).is_ok() {
                            handed.push_back(None);
                        }
                    }
                    last_health = Some(h);
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    let slot = handed.pop_front().flatten();
                    unacked.insert(pkid, slot);
                }
                Ok(Event::Incoming(Packet::PubAck(a))) => {
                    if let Some(Some(e)) = unacked.remove(&a.pkid) {
                        outbox.acked(&e);
                        sent += 1;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        log::warn!("mqtt: connection to {}:{} lost: {e}", cfg.host, cfg.port);
                    } else {
                        log::debug!("mqtt: cannot connect to {}:{}: {e}", cfg.host, cfg.port);
                    }
                    if matches!(e, ConnectionError::ConnectionRefused(_)) {
                        log::error!("mqtt: broker refused the connection (credentials?): {e}");
                    }
                    connected = false;
                    // We redeliver ourselves, from the outbox: drop what the client kept.
                    eventloop.pending.clear();
                    let back: Vec<Entry> = unacked.drain().filter_map(|(_, e)| e).chain(handed.drain(..).flatten()).collect();
                    outbox.requeue(back);
                    let mut wait = backoff.fail();
                    if let Some(d) = drain_deadline {
                        // leaving: never wait past the drain deadline
                        wait = wait.min(d.saturating_duration_since(Instant::now()));
                    }
                    tokio::time::sleep(wait).await;
                }
            },
            s = rx.recv(), if input_open => match s {
                Some(s) => match s.encode(cfg.encoding) {
                    Ok(p) => outbox.push(entry_name(s.window_end_ms, s.boot_id, s.seq), p),
                    Err(e) => log::error!("mqtt: cannot encode summary {}: {e}", s.seq),
                },
                None => input_open = false,
            },
            _ = health_tick.tick() => {
                if connected {
                    let h = health_json(&shared, &outbox, sent);
                    // republish when the camera part changed
                    if last_health.as_ref().map(|l| camera_part(l) != camera_part(&h)).unwrap_or(true) {
                        if client.try_publish(topics.health.clone(), QoS::AtLeastOnce, true, h.clone()).is_ok() {
                            handed.push_back(None);
                        }
                        last_health = Some(h);
                    }
                }
            }
        }
    }
    if connected {
        let _ = client.try_publish(topics.status.clone(), QoS::AtLeastOnce, true, "offline");
        let _ = client.try_disconnect();
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            match tokio::time::timeout(end - Instant::now(), eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
        }
    }
}

fn camera_part(h: &[u8]) -> serde_json::Value {
    serde_json::from_slice::<serde_json::Value>(h)
        .map(|v| v["camera"].clone())
        .unwrap_or_default()
}

/// Helper used by `demo`: encoding chosen by config.
pub fn decode_summary(bytes: &[u8], enc: Encoding) -> Option<Summary> {
    Summary::decode(bytes, enc).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_documented_layout() {
        let t = Topics::new("emotiond", "kiosk-1");
        assert_eq!(t.summary, "emotiond/kiosk-1/summary");
        assert_eq!(t.status, "emotiond/kiosk-1/status");
        assert_eq!(t.health, "emotiond/kiosk-1/health");
    }
}
