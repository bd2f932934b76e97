//! MQTT: summaries out at QoS 1, a retained `online`/`offline` status with `offline` as the
//! Last Will, and a retained health document. Summaries go through the [`Outbox`] (on disk
//! under the state directory when there is one): an entry leaves it only when the broker
//! acknowledges it; after a lost connection everything unacknowledged is sent again, so
//! delivery is at least once (consumers de-duplicate on `boot_id` + `seq`).

use super::delivery::{self, Action, InFlight, Leave, Requests};
use super::inbound::{Handed, Inbound};
use crate::config::MqttConfig;
use crate::health::DeviceHealth;
use crate::outbox::Outbox;
use crate::summary::{Encoding, Summary};
use crate::updates::{Msg, Out};
use emotiond_hal::Backoff;
use emotiond_wire::{CameraHealth, Health, MicHealth, OutboxState};
use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub use emotiond_wire::Topics;

/// The client options for `cfg`: TLS (its files read and checked here: an unusable one is a
/// config error naming the key), credentials, the Last Will.
pub fn options(
    cfg: &MqttConfig,
    client_id: &str,
    will_topic: Option<&str>,
) -> Result<MqttOptions, super::tls::FileError> {
    let mut o = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    if let Some(t) = super::tls::transport(cfg)? {
        o.set_transport(t);
    }
    o.set_keep_alive(Duration::from_secs(cfg.keep_alive_s));
    o.set_clean_session(true);
    o.set_max_packet_size(256 * 1024, 256 * 1024);
    if let (Some(u), p) = (&cfg.username, &cfg.password) {
        o.set_credentials(u.clone(), p.clone().unwrap_or_default());
    }
    if let Some(t) = will_topic {
        o.set_last_will(LastWill::new(t, "offline", QoS::AtLeastOnce, true));
    }
    Ok(o)
}

fn health_json(
    camera: &CameraHealth,
    microphone: &Option<MicHealth>,
    outbox: &Outbox,
    sent: u64,
) -> Vec<u8> {
    Health {
        camera: camera.clone(),
        microphone: microphone.clone(),
        summaries_sent: sent,
        outbox: outbox.len(),
        outbox_dropped: outbox.dropped,
        outbox_on_disk: outbox.is_persistent(),
        outbox_state: Some(outbox.state()),
        outbox_memory_only: outbox.memory_only(),
        outbox_write_errors: outbox.write_errors,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
    .to_json()
}

/// State of the publishing side, apart from the network event loop.
struct Session {
    topics: Topics,
    encoding: Encoding,
    rx: mpsc::Receiver<Summary>,
    input_open: bool,
    sources: DeviceHealth,
    outbox: Outbox,
    connected: bool,
    /// Which packet carries which summary (pure bookkeeping).
    in_flight: InFlight,
    sent: u64,
    /// Camera, microphone and outbox state in the last health published.
    last_camera: Option<(CameraHealth, Option<MicHealth>, OutboxState)>,
    drain: Duration,
    drain_deadline: Option<Instant>,
    tick: tokio::time::Interval,
    /// Model updates: what the manager wants published/subscribed, and where inbound
    /// messages go.
    link: Option<Link>,
    /// Their publishes waiting for the broker, and their subscriptions.
    requests: Requests,
    /// Messages for the update manager, acknowledged once it took them.
    inbound: Inbound,
}

/// What other parts of the daemon publish and subscribe (model update states, feedback
/// events), and where inbound messages go (the update manager, when updates are on).
pub struct Link {
    pub out: mpsc::Receiver<Out>,
    pub inbound: Option<std::sync::mpsc::SyncSender<Msg>>,
}

impl Session {
    /// Apply one request of another part of the daemon.
    fn link_out(&mut self, client: &AsyncClient, o: Out) {
        match self.requests.request(o, self.connected) {
            Action::Subscribe(t) => {
                let _ = client.try_subscribe(t, QoS::AtLeastOnce);
            }
            Action::Unsubscribe(t) => {
                let _ = client.try_unsubscribe(t);
            }
            Action::None => {}
        }
    }

    /// Hand received messages to the update manager as its queue has room, and their
    /// acknowledgements to the client.
    fn hand_inbound(&mut self, client: &AsyncClient) {
        let tx = self.link.as_ref().and_then(|l| l.inbound.as_ref());
        self.inbound.hand(|p| match tx {
            None => Handed::Gone,
            Some(tx) => match tx.try_send(Msg::Inbound(p.topic.clone(), p.payload.to_vec())) {
                Ok(()) => Handed::Taken,
                Err(std::sync::mpsc::TrySendError::Full(_)) => Handed::Full,
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Handed::Gone,
            },
        });
        if self.connected {
            self.inbound.acks(|p| client.try_ack(p).is_ok());
        }
    }

    /// Hand queued summaries to the client while connected (at most `MAX_IN_FLIGHT`).
    fn flush(&mut self, client: &AsyncClient) {
        self.hand_inbound(client);
        if !self.connected {
            return;
        }
        while let Some((topic, payload, retain)) = self.requests.pop() {
            match client.try_publish(topic.clone(), QoS::AtLeastOnce, retain, payload.clone()) {
                Ok(()) => self.in_flight.handed(None),
                Err(_) => {
                    self.requests.put_back((topic, payload, retain));
                    break;
                }
            }
        }
        while self.in_flight.has_room() {
            let Some(e) = self.outbox.take() else { break };
            match client.try_publish(
                self.topics.summary.clone(),
                QoS::AtLeastOnce,
                false,
                e.payload.clone(),
            ) {
                Ok(()) => self.in_flight.handed(Some(e)),
                Err(_) => {
                    // request channel full: retry after the next event
                    self.outbox.requeue(vec![e]);
                    break;
                }
            }
        }
    }

    /// Publish health when forced (a new connection) or when the camera, microphone or
    /// outbox state changed (a full disk, and its end).
    fn publish_health(&mut self, client: &AsyncClient, force: bool) {
        let camera = (
            self.sources.camera.camera(),
            self.sources.microphone.as_ref().map(|m| m.microphone()),
            self.outbox.state(),
        );
        if !force && self.last_camera.as_ref() == Some(&camera) {
            return;
        }
        let h = health_json(&camera.0, &camera.1, &self.outbox, self.sent);
        if client
            .try_publish(self.topics.health.clone(), QoS::AtLeastOnce, true, h)
            .is_ok()
        {
            self.in_flight.handed(None);
            self.last_camera = Some(camera);
        }
    }

    /// The outbox and delivery counters, for the API's metrics.
    fn count(&self) {
        self.sources.publish.update(|c| {
            c.outbox = self.outbox.len();
            c.outbox_dropped = self.outbox.dropped;
            c.outbox_on_disk = self.outbox.is_persistent();
            c.outbox_state = self.outbox.state();
            c.outbox_memory_only = self.outbox.memory_only();
            c.outbox_write_errors = self.outbox.write_errors;
            c.summaries_sent = self.sent;
        });
    }

    /// Input closed and everything delivered, or the drain time is up.
    fn should_leave(&mut self) -> bool {
        if self.input_open {
            return false;
        }
        let now = Instant::now();
        let deadline = *self.drain_deadline.get_or_insert(now + self.drain);
        let delivered = self.outbox.is_empty() && self.in_flight.is_idle();
        match delivery::leave(self.input_open, delivered, now, deadline) {
            Leave::Stay => false,
            Leave::Done => true,
            Leave::GiveUp => {
                let left = self.outbox.len() + self.in_flight.len();
                let kept = if self.outbox.is_persistent() {
                    " (kept on disk for the next start)"
                } else {
                    ""
                };
                log::warn!("mqtt: leaving with {left} summaries undelivered{kept}");
                true
            }
        }
    }

    /// Wait for `fut` while taking summaries in and keeping health current. `fut` is
    /// never cancelled except when leaving (rumqttc's `poll` must not be dropped midway
    /// through a connection attempt). `None`: time to leave.
    async fn wait<T>(
        &mut self,
        client: &AsyncClient,
        fut: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        tokio::pin!(fut);
        loop {
            if self.should_leave() {
                return None;
            }
            tokio::select! {
                out = &mut fut => return Some(out),
                s = self.rx.recv(), if self.input_open => match s {
                    Some(s) => {
                        match s.encode(self.encoding) {
                            Ok(p) => {
                                let name = self.outbox.name_for(s.window_end_ms, s.boot_id, s.seq);
                                self.outbox.push(name, p);
                            }
                            Err(e) => log::error!("mqtt: cannot encode summary {}: {e}", s.seq),
                        }
                        self.flush(client);
                    }
                    None => self.input_open = false,
                },
                // the update manager's queue was full: try again soon
                _ = tokio::time::sleep(Duration::from_millis(10)), if !self.inbound.is_idle() => {
                    self.hand_inbound(client);
                }
                _ = self.tick.tick() => {
                    self.count();
                    if self.connected {
                        self.publish_health(client, false);
                    }
                }
                // a camera or microphone state changed: health goes out now, one message
                // per change, not one per tick
                _ = self.sources.camera.changed() => {
                    if self.connected {
                        self.publish_health(client, false);
                    }
                }
                _ = async {
                    match &self.sources.microphone {
                        Some(m) => m.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if self.connected {
                        self.publish_health(client, false);
                    }
                }
                o = async {
                    match self.link.as_mut() {
                        Some(l) => l.out.recv().await,
                        None => std::future::pending().await,
                    }
                } => match o {
                    Some(o) => {
                        self.link_out(client, o);
                        self.flush(client);
                    }
                    None => self.link = None,
                },
            }
        }
    }
}

/// Publish summaries from `rx` until it closes (the pipeline ended), then deliver what is
/// left (for at most `drain`), publish `offline` and disconnect. The caller checked
/// [`options`] first (an unusable TLS file is a config error at start).
pub async fn run(
    cfg: MqttConfig,
    device_id: String,
    rx: mpsc::Receiver<Summary>,
    sources: DeviceHealth,
    outbox: Outbox,
    drain: Duration,
    link: Option<Link>,
) {
    let topics = Topics::new(&cfg.topic_prefix, &device_id);
    let mut opts = match options(&cfg, &format!("emotiond-{device_id}"), Some(&topics.status)) {
        Ok(o) => o,
        Err(e) => {
            log::error!("mqtt: {e}");
            return;
        }
    };
    // Inbound messages are acknowledged once the update manager took them (see inbound.rs).
    opts.set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut s = Session {
        topics,
        encoding: cfg.encoding,
        rx,
        input_open: true,
        sources,
        outbox,
        connected: false,
        in_flight: InFlight::default(),
        sent: 0,
        last_camera: None,
        drain,
        drain_deadline: None,
        tick,
        link,
        requests: Requests::default(),
        inbound: Inbound::default(),
    };
    let mut tls_said: Option<String> = None;
    loop {
        s.flush(&client);
        let Some(ev) = s.wait(&client, eventloop.poll()).await else {
            break;
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                log::info!(
                    "mqtt: connected to {}:{} ({:?})",
                    cfg.host,
                    cfg.port,
                    ack.code
                );
                s.connected = true;
                tls_said = None;
                s.sources.broker.set(true);
                s.sources.publish.update(|c| c.connects += 1);
                backoff.reset();
                if client
                    .try_publish(s.topics.status.clone(), QoS::AtLeastOnce, true, "online")
                    .is_ok()
                {
                    s.in_flight.handed(None);
                }
                s.publish_health(&client, true);
                for t in s.requests.subscriptions() {
                    let _ = client.try_subscribe(t.clone(), QoS::AtLeastOnce);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                for old in s.inbound.arrived(p) {
                    log::warn!(
                        "mqtt: too much waits for the update manager; a message on {} dropped ({} so far)",
                        old.topic,
                        s.inbound.dropped
                    );
                }
                s.hand_inbound(&client);
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                s.in_flight.sent(pkid);
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => {
                if let Some(e) = s.in_flight.acked(a.pkid) {
                    s.outbox.acked(&e);
                    s.sent += 1;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if s.connected {
                    log::warn!("mqtt: connection to {}:{} lost: {e}", cfg.host, cfg.port);
                } else {
                    log::debug!("mqtt: cannot connect to {}:{}: {e}", cfg.host, cfg.port);
                }
                // a TLS problem does not go away by retrying: said once until it changes
                let why = cfg.tls.then(|| super::tls::explain(&e, &cfg)).flatten();
                if why.is_some() && why != tls_said {
                    log::error!(
                        "mqtt: TLS to {}:{}: {} ({e})",
                        cfg.host,
                        cfg.port,
                        why.as_deref().unwrap_or_default()
                    );
                    tls_said = why;
                }
                if matches!(e, ConnectionError::ConnectionRefused(_)) {
                    log::error!("mqtt: broker refused the connection (credentials?): {e}");
                }
                s.connected = false;
                s.sources.broker.set(false);
                s.inbound.disconnected();
                // We redeliver ourselves, from the outbox: drop what the client kept.
                eventloop.pending.clear();
                s.outbox.requeue(s.in_flight.lost());
                if s.wait(&client, tokio::time::sleep(backoff.fail()))
                    .await
                    .is_none()
                {
                    break;
                }
            }
        }
    }
    if s.connected {
        let _ = client.try_publish(s.topics.status.clone(), QoS::AtLeastOnce, true, "offline");
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
// The topic layout is tested where it is defined (emotiond_wire::topics).
