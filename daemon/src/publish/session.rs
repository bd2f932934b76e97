//! The MQTT session's decisions, apart from the network (as rumqtt's `MqttState` is): what
//! to publish, subscribe and acknowledge, and when, for each thing that happens. No I/O and
//! no clock: the shell in [`super::mqtt`] reads the camera's and microphone's health and the
//! time, feeds them in as plain values with the client's events, and carries out the
//! [`Effect`]s it gets back on the rumqttc client.
//!
//! Inputs: a connection made ([`Session::connected`]) or lost ([`Session::connection_lost`]);
//! a summary from the pipeline ([`Session::summary`]) and the end of that input
//! ([`Session::input_closed`]); a request of another part of the daemon
//! ([`Session::link_out`]); a camera, microphone or outbox state that may have changed
//! ([`Session::health`], each second and on each change); the client's events (an outgoing
//! publish and its packet id, a PUBACK, a message from the broker); room in the client's
//! queue ([`Session::flush`], after each event). The [`Outbox`] is owned here (in memory in
//! the unit tests, on disk in the daemon, as the update manager owns its store).
//!
//! The client can refuse a request (its queue full): the shell reports each effect back,
//! [`Session::taken`] or, together at the end of a batch, [`Session::refused`]. A publish
//! takes its in-flight slot only once taken; a refused one goes back where it came from (a
//! summary to the outbox, a request to its queue, an acknowledgement to be sent later; a
//! health document is published again on the next tick), so nothing is lost or reordered.
//!
//! Delivery is at least once: a summary leaves the outbox only at its PUBACK, and a lost
//! connection puts every unacknowledged one back, in order, for the next connection (the
//! client's own queue of unsent requests is cleared: [`Effect::ClearPending`]).

use super::delivery::{self, Action, InFlight, Leave, Requests};
use super::inbound::{Handed, Inbound};
use super::outbox::{Entry, Outbox};
use crate::health::PublishCounts;
use crate::updates::Out;
use emotiond_wire::{CameraHealth, Health, MicHealth, OutboxState, Topics};
use std::time::{Duration, Instant};

/// What the camera and, audio on, the microphone report (the shell reads them).
#[derive(Debug, Clone, PartialEq)]
pub struct Sources {
    pub camera: CameraHealth,
    pub microphone: Option<MicHealth>,
}

/// What the shell does on the client, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Publish at QoS 1.
    Publish(Publish),
    /// Subscribe at QoS 1.
    Subscribe(String),
    Unsubscribe(String),
    /// Acknowledge a message from the broker (manual acks).
    Ack(rumqttc::Publish),
    /// Drop the requests the client kept from the lost connection: the session redelivers
    /// from the outbox itself.
    ClearPending,
    Disconnect,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub carries: Carries,
}

/// What a publish carries: where it goes once taken or refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Carries {
    /// `online` or `offline`.
    Status,
    /// The health document, and the states it was made of (published when they change).
    Health(Box<(Sources, OutboxState)>),
    /// A request of another part of the daemon (back to its queue when refused).
    Request,
    /// A summary (back to the outbox when refused).
    Summary(Entry),
}

/// The publishing side's state: outbox, in-flight publishes, requests of other parts,
/// messages for the update manager, connection, last health published, drain.
#[derive(Debug)]
pub struct Session {
    topics: Topics,
    outbox: Outbox,
    connected: bool,
    /// Which packet carries which summary.
    in_flight: InFlight,
    /// Other parts' publishes waiting for the broker, and their subscriptions.
    requests: Requests,
    /// Messages for the update manager, acknowledged once it took them.
    inbound: Inbound,
    /// Summaries the broker acknowledged.
    sent: u64,
    /// Camera, microphone and outbox state in the last health document the client took.
    last_health: Option<(Sources, OutboxState)>,
    input_open: bool,
    drain: Duration,
    drain_deadline: Option<Instant>,
}

/// The health document (retained on the health topic).
fn health_json(sources: &Sources, outbox: &Outbox, sent: u64) -> Vec<u8> {
    Health {
        camera: sources.camera.clone(),
        microphone: sources.microphone.clone(),
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

impl Session {
    /// A session publishing on `topics`, not connected, input open; once the input closes
    /// it delivers what is left for at most `drain`.
    pub fn new(topics: Topics, outbox: Outbox, drain: Duration) -> Session {
        Session {
            topics,
            outbox,
            connected: false,
            in_flight: InFlight::default(),
            requests: Requests::default(),
            inbound: Inbound::default(),
            sent: 0,
            last_health: None,
            input_open: true,
            drain,
            drain_deadline: None,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether summaries still come in.
    pub fn input_open(&self) -> bool {
        self.input_open
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Summaries the broker acknowledged.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Publishes handed to the client or waiting for their PUBACK.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn publish(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        retain: bool,
        carries: Carries,
    ) -> Effect {
        Effect::Publish(Publish {
            topic: topic.to_string(),
            payload: payload.into(),
            retain,
            carries,
        })
    }

    /// The health document when forced or when the camera, microphone or outbox state
    /// changed since the last one published (a full disk, and its end).
    fn health_effect(&self, sources: &Sources, force: bool) -> Option<Effect> {
        let now = (sources.clone(), self.outbox.state());
        if !force && self.last_health.as_ref() == Some(&now) {
            return None;
        }
        let payload = health_json(sources, &self.outbox, self.sent);
        let topic = &self.topics.health;
        Some(self.publish(topic, payload, true, Carries::Health(Box::new(now))))
    }

    /// Connected: `online` (retained), the health document (forced) and every
    /// subscription made so far (a clean session forgets them).
    pub fn connected(&mut self, sources: &Sources) -> Vec<Effect> {
        self.connected = true;
        let mut out = vec![self.publish(
            &self.topics.status,
            emotiond_wire::topics::STATUS_ONLINE,
            true,
            Carries::Status,
        )];
        out.extend(self.health_effect(sources, true));
        out.extend(
            self.requests
                .subscriptions()
                .iter()
                .map(|t| Effect::Subscribe(t.clone())),
        );
        out
    }

    /// The connection dropped (or could not be made): every summary not acknowledged goes
    /// back to the outbox, in order, to be sent again on the next connection; acks of this
    /// connection's messages are not sent on the next.
    pub fn connection_lost(&mut self) -> Vec<Effect> {
        self.connected = false;
        self.inbound.disconnected();
        self.outbox.requeue(self.in_flight.lost());
        vec![Effect::ClearPending]
    }

    /// The camera, microphone or outbox state may have changed (each second, and on each
    /// change of a source): health goes out once per change, while connected.
    pub fn health(&mut self, sources: &Sources) -> Vec<Effect> {
        if !self.connected {
            return Vec::new();
        }
        self.health_effect(sources, false).into_iter().collect()
    }

    /// A new summary, encoded, for the outbox (the name sorts in creation order). It goes
    /// out with the next [`Session::flush`].
    pub fn summary(&mut self, window_end_ms: u64, boot_id: u32, seq: u64, payload: Vec<u8>) {
        let name = self.outbox.name_for(window_end_ms, boot_id, seq);
        self.outbox.push(name, payload);
    }

    /// A request of another part of the daemon: a publish waits for the next
    /// [`Session::flush`] (bounded while disconnected); a subscription goes out now when
    /// connected, and again on every connection.
    pub fn link_out(&mut self, o: Out) -> Vec<Effect> {
        match self.requests.request(o, self.connected) {
            Action::Subscribe(t) => vec![Effect::Subscribe(t)],
            Action::Unsubscribe(t) => vec![Effect::Unsubscribe(t)],
            Action::None => Vec::new(),
        }
    }

    /// Acknowledgements of the messages the update manager took, while connected.
    pub fn acks(&mut self) -> Vec<Effect> {
        if !self.connected {
            return Vec::new();
        }
        self.inbound
            .take_acks()
            .into_iter()
            .map(Effect::Ack)
            .collect()
    }

    /// What can go to the client now (after each event of the client, a new summary or
    /// request): acknowledgements, other parts' publishes, then summaries from the outbox
    /// while fewer than [`delivery::MAX_IN_FLIGHT`] publishes are in flight.
    pub fn flush(&mut self) -> Vec<Effect> {
        let mut out = self.acks();
        if !self.connected {
            return out;
        }
        let mut requests = 0;
        while let Some((topic, payload, retain)) = self.requests.pop() {
            out.push(self.publish(&topic, payload, retain, Carries::Request));
            requests += 1;
        }
        let mut room = self.in_flight.room().saturating_sub(requests);
        while room > 0 {
            let Some(e) = self.outbox.take() else { break };
            let payload = e.payload.clone();
            out.push(self.publish(&self.topics.summary, payload, false, Carries::Summary(e)));
            room -= 1;
        }
        out
    }

    /// The client took `e`: a publish takes its in-flight slot (the client reports
    /// outgoing publishes in the order it took them).
    pub fn taken(&mut self, e: Effect) {
        let Effect::Publish(p) = e else { return };
        match p.carries {
            Carries::Status | Carries::Request => self.in_flight.handed(None),
            Carries::Health(state) => {
                self.in_flight.handed(None);
                self.last_health = Some(*state);
            }
            Carries::Summary(entry) => self.in_flight.handed(Some(entry)),
        }
    }

    /// The client refused these (its queue full), in the order they were given: each goes
    /// back where it came from, keeping its place. Subscriptions are made again on the next
    /// connection; `online` is not repeated.
    pub fn refused(&mut self, effects: Vec<Effect>) {
        let mut summaries = Vec::new();
        let mut acks = Vec::new();
        for e in effects.into_iter().rev() {
            match e {
                Effect::Publish(p) => match p.carries {
                    Carries::Request => self.requests.put_back((p.topic, p.payload, p.retain)),
                    Carries::Summary(entry) => summaries.push(entry),
                    Carries::Status | Carries::Health(_) => {}
                },
                Effect::Ack(p) => acks.push(p),
                Effect::Subscribe(_)
                | Effect::Unsubscribe(_)
                | Effect::ClearPending
                | Effect::Disconnect => {}
            }
        }
        self.outbox.requeue(summaries);
        acks.reverse();
        self.inbound.ack_later(acks);
    }

    /// The client sent the oldest publish it took with packet id `pkid`.
    pub fn outgoing_publish(&mut self, pkid: u16) {
        self.in_flight.sent(pkid);
    }

    /// The broker acknowledged `pkid`: a summary leaves the outbox and counts as sent.
    pub fn puback(&mut self, pkid: u16) {
        if let Some(e) = self.in_flight.acked(pkid) {
            self.outbox.acked(&e);
            self.sent += 1;
        }
    }

    /// A message from the broker, for the update manager (see [`Session::next_inbound`]).
    pub fn incoming(&mut self, p: rumqttc::Publish) {
        for old in self.inbound.arrived(p) {
            log::warn!(
                "mqtt: too much waits for the update manager; a message on {} dropped ({} so far)",
                old.topic,
                self.inbound.dropped
            );
        }
    }

    /// The oldest message waiting for the update manager.
    pub fn next_inbound(&self) -> Option<&rumqttc::Publish> {
        self.inbound.next()
    }

    /// What the update manager's queue did with [`Session::next_inbound`]; `false`: it is
    /// full, try again later. A message taken (or with nowhere to go) is acknowledged with
    /// the next [`Session::acks`] or [`Session::flush`].
    pub fn inbound_handed(&mut self, r: Handed) -> bool {
        match r {
            Handed::Full => false,
            Handed::Taken | Handed::Gone => {
                self.inbound.handed();
                true
            }
        }
    }

    /// Nothing waits for the update manager or to be acknowledged.
    pub fn inbound_idle(&self) -> bool {
        self.inbound.is_idle()
    }

    /// The pipeline ended: what is left is delivered for at most the drain time from `now`.
    pub fn input_closed(&mut self, now: Instant) {
        self.input_open = false;
        self.drain_deadline.get_or_insert(now + self.drain);
    }

    /// Input closed and everything delivered, or the drain time is up.
    pub fn should_leave(&mut self, now: Instant) -> bool {
        if self.input_open {
            return false;
        }
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

    /// Leaving: `offline` (retained) and a clean disconnect, when connected.
    pub fn leave(&mut self) -> Vec<Effect> {
        if !self.connected {
            return Vec::new();
        }
        let offline = self.publish(
            &self.topics.status,
            emotiond_wire::topics::STATUS_OFFLINE,
            true,
            Carries::Status,
        );
        vec![offline, Effect::Disconnect]
    }

    /// The outbox and delivery counters, for the API's metrics.
    pub fn count(&self, c: &mut PublishCounts) {
        c.outbox = self.outbox.len();
        c.outbox_dropped = self.outbox.dropped;
        c.outbox_on_disk = self.outbox.is_persistent();
        c.outbox_state = self.outbox.state();
        c.outbox_memory_only = self.outbox.memory_only();
        c.outbox_write_errors = self.outbox.write_errors;
        c.summaries_sent = self.sent;
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
