//! MQTT: summaries out at QoS 1, a retained `online`/`offline` status with `offline` as the
//! Last Will, and a retained health document. Summaries go through the [`Outbox`] (on disk
//! under the state directory when there is one): an entry leaves it only when the broker
//! acknowledges it; after a lost connection everything unacknowledged is sent again, so
//! delivery is at least once (consumers de-duplicate on `boot_id` + `seq`).
//!
//! This is the thin shell: the decisions are the state machine's in [`super::session`]; here
//! the sources' health, the pipeline's summaries, the other parts' requests and the client's
//! events are fed in, and the effects carried out on the rumqttc client.

use super::inbound::Handed;
use super::session::{Effect, Session, Sources};
use crate::config::MqttConfig;
use crate::health::DeviceHealth;
use crate::outbox::Outbox;
use crate::summary::{Encoding, Summary};
use crate::updates::{Msg, Out};
use emotiond_hal::Backoff;
use rumqttc::{
    AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, Request,
};
use std::collections::VecDeque;
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
        o.set_last_will(LastWill::new(
            t,
            emotiond_wire::topics::STATUS_OFFLINE,
            QoS::AtLeastOnce,
            true,
        ));
    }
    Ok(o)
}

/// The thin shell around the session's state machine ([`super::session`]): it reads the
/// sources' health, the pipeline's summaries and the other parts' requests, and carries out
/// the machine's effects on the client.
struct Shell {
    m: Session,
    client: AsyncClient,
    encoding: Encoding,
    rx: mpsc::Receiver<Summary>,
    sources: DeviceHealth,
    tick: tokio::time::Interval,
    /// Model updates: what the manager wants published/subscribed, and where inbound
    /// messages go.
    link: Option<Link>,
}

/// What other parts of the daemon publish and subscribe (model update states, feedback
/// events), and where inbound messages go (the update manager, when updates are on).
pub struct Link {
    pub out: mpsc::Receiver<Out>,
    pub inbound: Option<std::sync::mpsc::SyncSender<Msg>>,
}

impl Shell {
    /// The camera's and microphone's health now.
    fn sources(&self) -> Sources {
        Sources {
            camera: self.sources.camera.camera(),
            microphone: self.sources.microphone.as_ref().map(|m| m.microphone()),
        }
    }

    /// Carry out `effects` in order; what the client refuses (its request queue is full)
    /// goes back to the session.
    fn exec(&mut self, effects: Vec<Effect>) {
        self.exec_with(effects, None)
    }

    /// [`Shell::exec`], with the client's queue of requests kept from the last connection
    /// (the event loop's, free only between its polls).
    fn exec_with(&mut self, effects: Vec<Effect>, mut pending: Option<&mut VecDeque<Request>>) {
        let mut refused = Vec::new();
        for e in effects {
            let ok = match &e {
                Effect::Publish(p) => self
                    .client
                    .try_publish(
                        p.topic.clone(),
                        QoS::AtLeastOnce,
                        p.retain,
                        p.payload.clone(),
                    )
                    .is_ok(),
                Effect::Subscribe(t) => self
                    .client
                    .try_subscribe(t.clone(), QoS::AtLeastOnce)
                    .is_ok(),
                Effect::Unsubscribe(t) => self.client.try_unsubscribe(t.clone()).is_ok(),
                Effect::Ack(p) => self.client.try_ack(p).is_ok(),
                Effect::ClearPending => {
                    if let Some(p) = pending.as_deref_mut() {
                        p.clear();
                    }
                    true
                }
                Effect::Disconnect => self.client.try_disconnect().is_ok(),
            };
            if ok {
                self.m.taken(e);
            } else {
                refused.push(e);
            }
        }
        if !refused.is_empty() {
            self.m.refused(refused);
        }
    }

    /// Hand received messages to the update manager as its queue has room.
    fn hand_inbound(&mut self) {
        let tx = self.link.as_ref().and_then(|l| l.inbound.as_ref());
        while let Some(p) = self.m.next_inbound() {
            let r = match tx {
                None => Handed::Gone,
                Some(tx) => match tx.try_send(Msg::Inbound(p.topic.clone(), p.payload.to_vec())) {
                    Ok(()) => Handed::Taken,
                    Err(std::sync::mpsc::TrySendError::Full(_)) => Handed::Full,
                    Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Handed::Gone,
                },
            };
            if !self.m.inbound_handed(r) {
                break;
            }
        }
    }

    /// Messages to the update manager, then whatever the client can take now.
    fn flush(&mut self) {
        self.hand_inbound();
        let fx = self.m.flush();
        self.exec(fx);
    }

    /// Health, when a source or the outbox state changed.
    fn health(&mut self) {
        let src = self.sources();
        let fx = self.m.health(&src);
        self.exec(fx);
    }

    /// The outbox and delivery counters, for the API's metrics.
    fn count(&self) {
        self.sources.publish.update(|c| self.m.count(c));
    }

    /// Wait for `fut` while taking summaries in and keeping health current. `fut` is
    /// never cancelled except when leaving (rumqttc's `poll` must not be dropped midway
    /// through a connection attempt). `None`: time to leave.
    async fn wait<T>(&mut self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            if self.m.should_leave(Instant::now()) {
                return None;
            }
            tokio::select! {
                out = &mut fut => return Some(out),
                s = self.rx.recv(), if self.m.input_open() => match s {
                    Some(s) => {
                        match s.encode(self.encoding) {
                            Ok(p) => self.m.summary(s.window_end_ms, s.boot_id, s.seq, p),
                            Err(e) => log::error!("mqtt: cannot encode summary {}: {e}", s.seq),
                        }
                        self.flush();
                    }
                    None => self.m.input_closed(Instant::now()),
                },
                // the update manager's queue was full: try again soon
                _ = tokio::time::sleep(Duration::from_millis(10)), if !self.m.inbound_idle() => {
                    self.hand_inbound();
                    let fx = self.m.acks();
                    self.exec(fx);
                }
                _ = self.tick.tick() => {
                    self.count();
                    self.health();
                }
                // a camera or microphone state changed: health goes out now, one message
                // per change, not one per tick
                _ = self.sources.camera.changed() => self.health(),
                _ = async {
                    match &self.sources.microphone {
                        Some(m) => m.changed().await,
                        None => std::future::pending().await,
                    }
                } => self.health(),
                o = async {
                    match self.link.as_mut() {
                        Some(l) => l.out.recv().await,
                        None => std::future::pending().await,
                    }
                } => match o {
                    Some(o) => {
                        let fx = self.m.link_out(o);
                        self.exec(fx);
                        self.flush();
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
    let mut s = Shell {
        m: Session::new(topics, outbox, drain),
        client,
        encoding: cfg.encoding,
        rx,
        sources,
        tick,
        link,
    };
    let mut tls_said: Option<String> = None;
    loop {
        s.flush();
        let Some(ev) = s.wait(eventloop.poll()).await else {
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
                tls_said = None;
                s.sources.broker.set(true);
                s.sources.publish.update(|c| c.connects += 1);
                backoff.reset();
                let src = s.sources();
                let fx = s.m.connected(&src);
                s.exec(fx);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => s.m.incoming(p),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => s.m.outgoing_publish(pkid),
            Ok(Event::Incoming(Packet::PubAck(a))) => s.m.puback(a.pkid),
            Ok(_) => {}
            Err(e) => {
                if s.m.is_connected() {
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
                s.sources.broker.set(false);
                // We redeliver ourselves, from the outbox: drop what the client kept.
                let fx = s.m.connection_lost();
                s.exec_with(fx, Some(&mut eventloop.pending));
                if s.wait(tokio::time::sleep(backoff.fail())).await.is_none() {
                    break;
                }
            }
        }
    }
    if s.m.is_connected() {
        let fx = s.m.leave();
        s.exec(fx);
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
// The session's decisions are tested in session_tests.rs; the shell end to end
// (tests/e2e: delivery, faults, updates, tls).
