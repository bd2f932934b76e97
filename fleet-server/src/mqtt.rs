//! The ingest side of `serve`: one MQTT session (persistent, QoS 1, manual acknowledgements)
//! subscribed through shared subscriptions, and a writer that stores what arrives in
//! batches and acknowledges a batch's messages only after its transaction committed.
//!
//! ```text
//! broker ──> event loop task ──(bounded channel)──> writer task ──> store (one tx per batch)
//!                  ^                                     │
//!                  └──────── PUBACK after commit ────────┘
//! ```
//! A crash between commit and PUBACK makes the broker redeliver: stored once (idempotent on
//! device, boot, seq). The writer hands acknowledgements back to the event loop task over an
//! unbounded channel (at most one per message it was handed, so bounded by the queue), and
//! that task queues them in the event loop itself: the writer never waits for the event
//! loop, so a full queue can never deadlock the two (with rumqttc's bounded request channel
//! it did, under a 30,000-message burst). A database outage stops the writer (it retries the same batch), the
//! channel fills, and the broker keeps the rest in the session.

use crate::ingest::{self, Message};
use crate::store::{Outcome, Received, Store};
use crate::{Metrics, now_ms};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, PubAck, Publish, QoS, Request};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    /// Unique and stable per replica: the broker keeps this session (and what it has not
    /// yet delivered) while the replica is away.
    pub client_id: String,
    /// The shared-subscription group every replica joins.
    pub share_group: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to the broker, when set.
    pub tls: Option<Tls>,
}

/// TLS to the broker: the CA that signed its certificate, and optionally a client
/// certificate and key (for a broker that requires them).
#[derive(Debug, Clone)]
pub struct Tls {
    /// PEM; `None`: the system's CA bundle (`/etc/ssl/certs/ca-certificates.crt`).
    pub ca: Option<std::path::PathBuf>,
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The system's CA bundle (Debian's `ca-certificates`).
pub const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

impl MqttConfig {
    /// rumqttc's options for this broker: host, port, credentials, TLS. `client_id` names the
    /// connection. Files named for TLS are read here, so a missing one is an error at start.
    pub fn options(&self, client_id: &str) -> anyhow::Result<MqttOptions> {
        let mut opts = MqttOptions::new(client_id, &self.host, self.port);
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            opts.set_credentials(u.clone(), p.clone());
        }
        if let Some(tls) = &self.tls {
            opts.set_transport(tls.transport()?);
        }
        Ok(opts)
    }
}

impl Tls {
    /// rumqttc's TLS transport. Files named are read here, so a missing one is an error at
    /// start, naming it.
    pub fn transport(&self) -> anyhow::Result<rumqttc::Transport> {
        use anyhow::Context;
        let read = |p: &std::path::Path, what: &str| {
            std::fs::read(p).with_context(|| format!("cannot read the {what} {}", p.display()))
        };
        let ca_path = self
            .ca
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from(SYSTEM_CA));
        let ca = read(&ca_path, "broker CA")?;
        let client_auth = match &self.client {
            Some((cert, key)) => {
                Some((read(cert, "client certificate")?, read(key, "client key")?))
            }
            None => None,
        };
        Ok(rumqttc::Transport::tls(ca, client_auth, None))
    }
}

/// Largest batch written in one transaction.
pub const MAX_BATCH: usize = 2000;
/// Messages between the MQTT loop and the writer (the broker's in-flight window bounds the
/// QoS 1 ones; this bounds memory whatever a publisher does).
pub const QUEUE: usize = 8192;

/// What the writer reports after each committed batch (for live views and metrics).
pub type OnBatch = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// Run until `stop` turns true: connect (and reconnect), subscribe, store, acknowledge.
pub async fn run(
    cfg: MqttConfig,
    store: Store,
    metrics: Arc<Metrics>,
    on_batch: OnBatch,
    mut stop: watch::Receiver<bool>,
) {
    let mut opts = match cfg.options(&cfg.client_id) {
        Ok(o) => o,
        Err(e) => {
            log::error!("mqtt: {e:#}");
            return;
        }
    };
    opts.set_clean_session(false);
    opts.set_manual_acks(true);
    opts.set_keep_alive(Duration::from_secs(15));
    // Accept big packets so that an oversized payload is read, refused and acknowledged; a
    // packet over this limit would break the connection and be redelivered for ever.
    opts.set_max_packet_size(16 * 1024 * 1024, 256 * 1024);
    let (client, eventloop) = AsyncClient::new(opts, QUEUE);
    let (tx, rx) = mpsc::channel::<Publish>(QUEUE);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<u16>();
    let reader = tokio::spawn(read_loop(
        cfg.clone(),
        client.clone(),
        eventloop,
        tx,
        ack_rx,
        metrics.clone(),
        stop.clone(),
    ));
    write_loop(&cfg, ack_tx, rx, store, metrics, on_batch, &mut stop).await;
    // the reader sees `stop` too; the session stays with the broker for the next start
    let _ = reader.await;
}

async fn read_loop(
    cfg: MqttConfig,
    client: AsyncClient,
    mut eventloop: EventLoop,
    tx: mpsc::Sender<Publish>,
    mut acks: mpsc::UnboundedReceiver<u16>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut was_connected = false;
    let mut warned = false;
    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            pkid = acks.recv() => {
                // PUBACKs of a committed batch: queued in the event loop, sent by its polls
                let Some(pkid) = pkid else { return };
                eventloop.pending.push_back(Request::PubAck(PubAck::new(pkid)));
                while let Ok(pkid) = acks.try_recv() {
                    eventloop.pending.push_back(Request::PubAck(PubAck::new(pkid)));
                }
                continue;
            }
            _ = stop.changed() => return,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                log::info!(
                    "mqtt: connected to {}:{} as {} (session present: {})",
                    cfg.host,
                    cfg.port,
                    cfg.client_id,
                    ack.session_present
                );
                was_connected = true;
                warned = false;
                for f in ingest::filters(&cfg.prefix) {
                    let f = ingest::shared(&cfg.share_group, &f);
                    if let Err(e) = client.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                        log::error!("mqtt: cannot subscribe to {f}: {e}");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                // connected counts from here: the broker now keeps what devices publish
                metrics.set_connected(true);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                tokio::select! {
                    r = tx.send(p) => if r.is_err() { return },
                    _ = stop.changed() => return,
                }
            }
            Ok(_) => {}
            Err(e) => {
                metrics.set_connected(false);
                if was_connected {
                    log::warn!("mqtt: connection to {}:{} lost: {e}", cfg.host, cfg.port);
                    was_connected = false;
                } else if !warned {
                    // once per outage: a wrong port, CA or password shows at the default level
                    log::warn!(
                        "mqtt: cannot connect to {}:{}: {e} (retrying every second)",
                        cfg.host,
                        cfg.port
                    );
                } else {
                    log::debug!("mqtt: cannot connect to {}:{}: {e}", cfg.host, cfg.port);
                }
                warned = true;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

async fn write_loop(
    cfg: &MqttConfig,
    acks: mpsc::UnboundedSender<u16>,
    mut rx: mpsc::Receiver<Publish>,
    store: Store,
    metrics: Arc<Metrics>,
    on_batch: OnBatch,
    stop: &mut watch::Receiver<bool>,
) {
    let mut limiter = LogLimiter::default();
    loop {
        let first = tokio::select! {
            p = rx.recv() => match p { Some(p) => p, None => return },
            _ = stop.changed() => return,
        };
        let mut pubs = vec![first];
        while pubs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => pubs.push(p),
                Err(_) => break,
            }
        }
        let at = now_ms();
        let batch: Vec<Received> = pubs
            .iter()
            .map(|p| match ingest::parse(&cfg.prefix, &p.topic, &p.payload) {
                Ok(m) => Received::Ok(m, at),
                Err(e) => {
                    if limiter.allow(e.device.as_deref().unwrap_or(""), at) {
                        log::warn!(
                            "ingest: refused a message from {} on {:?}: {}",
                            e.device.as_deref().unwrap_or("an unknown device"),
                            p.topic,
                            e.reason
                        );
                    }
                    Received::Malformed(e, at)
                }
            })
            .collect();
        // Retry the same batch until the store takes it: nothing is acknowledged before.
        let mut delay = Duration::from_millis(100);
        let outcome = loop {
            match store.ingest(&batch).await {
                Ok(o) => break o,
                Err(e) => {
                    metrics.store_errors.inc();
                    log::error!(
                        "store: batch of {} not written ({e}); retrying",
                        batch.len()
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        for p in pubs.iter().filter(|p| p.qos == QoS::AtLeastOnce) {
            let _ = acks.send(p.pkid); // QoS 0 needs none; we subscribe at QoS 1, so no QoS 2
        }
        metrics.record(&outcome);
        if let Some(newest) = batch
            .iter()
            .filter_map(|r| match r {
                Received::Ok(Message::Summary(s, _), _) => Some(s.window_end_ms as i64),
                _ => None,
            })
            .max()
        {
            metrics.set_lag_ms(at - newest);
        }
        for (dev, n) in limiter.take_suppressed(at) {
            log::warn!(
                "ingest: {n} more refused messages from {dev} in the last minute (not logged)"
            );
        }
        on_batch(&outcome);
    }
}

/// At most [`LogLimiter::PER_MINUTE`] log lines per device and minute: a device flooding
/// garbage is counted in full but cannot flood the log.
#[derive(Default)]
pub struct LogLimiter {
    minute: i64,
    counts: std::collections::HashMap<String, u64>,
    suppressed: Vec<(String, u64)>,
}

impl LogLimiter {
    pub const PER_MINUTE: u64 = 5;

    pub fn allow(&mut self, device: &str, now_ms: i64) -> bool {
        let m = now_ms / 60_000;
        if m != self.minute {
            self.roll(m);
        }
        let n = self.counts.entry(device.to_string()).or_insert(0);
        *n += 1;
        *n <= Self::PER_MINUTE
    }

    fn roll(&mut self, m: i64) {
        for (d, n) in self.counts.drain() {
            if n > Self::PER_MINUTE {
                self.suppressed.push((d, n - Self::PER_MINUTE));
            }
        }
        self.minute = m;
    }

    /// Devices whose lines were suppressed in minutes now over, with how many.
    pub fn take_suppressed(&mut self, now_ms: i64) -> Vec<(String, u64)> {
        let m = now_ms / 60_000;
        if m != self.minute {
            self.roll(m);
        }
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_device_is_logged_five_times_a_minute_then_summed_up() {
        let mut l = LogLimiter::default();
        let t = 60_000 * 100;
        let allowed = (0..50).filter(|_| l.allow("k1", t)).count();
        assert_eq!(allowed, 5);
        assert!(l.allow("k2", t), "another device still gets its lines");
        assert!(
            l.take_suppressed(t + 1).is_empty(),
            "the minute is not over"
        );
        assert_eq!(l.take_suppressed(t + 60_000), vec![("k1".to_string(), 45)]);
        assert!(l.allow("k1", t + 60_000));
    }
}
