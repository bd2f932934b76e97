//! MQTT: summaries out at QoS 1, a retained `online`/`offline` status with `offline` as the
//! Last Will, and a retained health document. While the broker is unreachable summaries
//! wait in a bounded in-memory outbox (oldest dropped and counted beyond `outbox_max`);
//! what was already handed to the client is redelivered by rumqttc after reconnecting, so
//! delivery is at least once (consumers de-duplicate on `boot_id` + `seq`).

use crate::config::MqttConfig;
use crate::pipeline::Shared;
use crate::summary::{Encoding, Summary};
use emotiond_hal::Backoff;
use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashSet, VecDeque};
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

/// Bounded queue of encoded summaries waiting for a connection.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Vec<u8>>,
    max: usize,
    pub dropped: u64,
}

impl Outbox {
    pub fn new(max: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            max: max.max(1),
            dropped: 0,
        }
    }
    pub fn push(&mut self, payload: Vec<u8>) {
        if self.queue.len() >= self.max {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(payload);
    }
    pub fn front(&self) -> Option<&Vec<u8>> {
        self.queue.front()
    }
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.queue.pop_front()
    }
    pub fn len(&self) -> usize {
        self.queue.len()
    }
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

fn health_json(shared: &Shared, outbox: &Outbox, sent: u64) -> Vec<u8> {
    serde_json::json!({
        "camera": shared.camera(),
        "summaries_sent": sent,
        "outbox": outbox.len(),
        "outbox_dropped": outbox.dropped,
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
    drain: Duration,
) {
    let topics = Topics::new(&cfg.topic_prefix, &device_id);
    let opts = options(&cfg, &format!("emotiond-{device_id}"), Some(&topics.status));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let mut outbox = Outbox::new(cfg.outbox_max);
    let mut connected = false;
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    let mut unacked: HashSet<u16> = HashSet::new();
    let (mut handed, mut went_out, mut sent) = (0u64, 0u64, 0u64);
    let mut last_health = None;
    let mut input_open = true;
    let mut drain_deadline: Option<Instant> = None;
    let mut health_tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        if connected {
            while let Some(p) = outbox.front() {
                match client.try_publish(topics.summary.clone(), QoS::AtLeastOnce, false, p.clone())
                {
                    Ok(()) => {
                        outbox.pop();
                        handed += 1;
                        sent += 1;
                    }
                    Err(_) => break, // request channel full; retry after the next event
                }
            }
        }
        if !input_open {
            let done = outbox.is_empty() && unacked.is_empty() && went_out >= handed;
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + drain);
            if done || Instant::now() >= deadline {
                if !done {
                    log::warn!(
                        "mqtt: leaving with {} summaries undelivered",
                        outbox.len() + unacked.len()
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
                    let _ = client.try_publish(topics.status.clone(), QoS::AtLeastOnce, true, "online");
                    let h = health_json(&shared, &outbox, sent);
                    let _ = client.try_publish(topics.health.clone(), QoS::AtLeastOnce, true, h.clone());
                    last_health = Some(h);
                    handed += 2;
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    went_out += 1;
                    if pkid != 0 {
                        unacked.insert(pkid);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(a))) => {
                    unacked.remove(&a.pkid);
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
                    // rumqttc re-sends what it held after reconnecting; count it as handed.
                    went_out = went_out.min(handed);
                    unacked.clear();
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
                    Ok(p) => outbox.push(p),
                    Err(e) => log::error!("mqtt: cannot encode summary {}: {e}", s.seq),
                },
                None => input_open = false,
            },
            _ = health_tick.tick() => {
                if connected {
                    let h = health_json(&shared, &outbox, sent);
                    // republish only on change of anything but the counters' growth
                    if last_health.as_ref().map(|l| camera_part(l) != camera_part(&h)).unwrap_or(true) {
                        if client.try_publish(topics.health.clone(), QoS::AtLeastOnce, true, h.clone()).is_ok() {
                            handed += 1;
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

    #[test]
    fn outbox_drops_oldest_beyond_its_bound() {
        let mut o = Outbox::new(2);
        for i in 0..5u8 {
            o.push(vec![i]);
        }
        assert_eq!(o.dropped, 3);
        assert_eq!(o.pop(), Some(vec![3]));
        assert_eq!(o.pop(), Some(vec![4]));
        assert!(o.is_empty());
    }
}
