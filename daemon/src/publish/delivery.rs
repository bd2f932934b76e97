//! The bookkeeping of at-least-once delivery, apart from the network (as rumqtt's
//! `MqttState` is): which summary each packet id carries, what goes back to the outbox when
//! the connection drops, and what other parts of the daemon asked to publish or subscribe
//! while the broker was away. No I/O: the session's state machine in [`super::session`]
//! uses it.

use super::outbox::Entry;
use crate::updates::Out;
use std::collections::{HashMap, VecDeque};

/// Publishes handed to the client at most at once (summaries and others together).
pub const MAX_IN_FLIGHT: usize = 32;
/// Messages of other parts queued while disconnected; beyond this the oldest is dropped.
pub const OUT_QUEUE_MAX: usize = 256;

/// Publishes between the client and the broker's PUBACK. Each publish handed to the client
/// takes a slot (`Some(entry)` for a summary, `None` for status, health and the others);
/// the event loop reports outgoing publishes in the order they were handed, which gives each
/// slot its packet id.
#[derive(Debug, Default)]
pub struct InFlight {
    handed: VecDeque<Option<Entry>>,
    unacked: HashMap<u16, Option<Entry>>,
}

impl InFlight {
    /// A publish was handed to the client.
    pub fn handed(&mut self, summary: Option<Entry>) {
        self.handed.push_back(summary);
    }

    /// The client sent the oldest handed publish with packet id `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        let slot = self.handed.pop_front().flatten();
        self.unacked.insert(pkid, slot);
    }

    /// The broker acknowledged `pkid`: the summary it carried, if it was one (to remove
    /// from the outbox and count as sent).
    pub fn acked(&mut self, pkid: u16) -> Option<Entry> {
        self.unacked.remove(&pkid).flatten()
    }

    /// The connection dropped: every summary not acknowledged, to publish again (the
    /// outbox puts them back in order). The others are not kept.
    pub fn lost(&mut self) -> Vec<Entry> {
        self.unacked
            .drain()
            .filter_map(|(_, e)| e)
            .chain(self.handed.drain(..).flatten())
            .collect()
    }

    /// Room for another publish.
    pub fn has_room(&self) -> bool {
        self.room() > 0
    }

    /// Publishes the client may take before the limit.
    pub fn room(&self) -> usize {
        MAX_IN_FLIGHT.saturating_sub(self.handed.len())
    }

    /// No summary is waiting for the client or the broker.
    pub fn is_idle(&self) -> bool {
        self.handed.is_empty() && self.unacked.values().all(Option::is_none)
    }

    /// Publishes handed or unacknowledged.
    pub fn len(&self) -> usize {
        self.handed.len() + self.unacked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the session does for a request of another part of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Subscribe(String),
    Unsubscribe(String),
    /// Nothing now (a publish waits in the queue; a subscription waits for a connection).
    None,
}

/// Requests of other parts (update states, feedback events, subscriptions for updates):
/// publishes wait in a bounded queue until the session can hand them over; subscriptions
/// are remembered and made again on every connection.
#[derive(Debug, Default)]
pub struct Requests {
    queue: VecDeque<(String, Vec<u8>, bool)>,
    subs: Vec<String>,
    /// Publishes dropped because the queue was full.
    pub dropped: u64,
}

impl Requests {
    /// Take a request; `connected` says whether a (un)subscription can go out now.
    pub fn request(&mut self, o: Out, connected: bool) -> Action {
        match o {
            Out::Publish {
                topic,
                payload,
                retain,
            } => {
                if self.queue.len() >= OUT_QUEUE_MAX {
                    if let Some((t, _, _)) = self.queue.pop_front() {
                        self.dropped += 1;
                        log::warn!(
                            "mqtt: queue full while disconnected; dropped a message for {t}"
                        );
                    }
                }
                self.queue.push_back((topic, payload, retain));
                Action::None
            }
            Out::Subscribe(t) => {
                if !self.subs.contains(&t) {
                    self.subs.push(t.clone());
                }
                if connected {
                    Action::Subscribe(t)
                } else {
                    Action::None
                }
            }
            Out::Unsubscribe(t) => {
                self.subs.retain(|s| *s != t);
                if connected {
                    Action::Unsubscribe(t)
                } else {
                    Action::None
                }
            }
        }
    }

    /// The oldest queued publish (topic, payload, retain).
    pub fn pop(&mut self) -> Option<(String, Vec<u8>, bool)> {
        self.queue.pop_front()
    }

    /// Put back a publish the client could not take.
    pub fn put_back(&mut self, p: (String, Vec<u8>, bool)) {
        self.queue.push_front(p);
    }

    /// The subscriptions to make on a new connection.
    pub fn subscriptions(&self) -> &[String] {
        &self.subs
    }
}

/// Whether the session may leave once its input (the pipeline) has closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// Summaries are still on their way and the drain time is not up.
    Stay,
    /// Everything was delivered.
    Done,
    /// The drain time is up with summaries undelivered (kept on disk when the outbox is).
    GiveUp,
}

/// The drain rule: with the input closed, leave when the outbox is empty and no summary is
/// in flight, or at `deadline` whatever is left.
pub fn leave(
    input_open: bool,
    delivered: bool,
    now: std::time::Instant,
    deadline: std::time::Instant,
) -> Leave {
    if input_open {
        Leave::Stay
    } else if delivered {
        Leave::Done
    } else if now >= deadline {
        Leave::GiveUp
    } else {
        Leave::Stay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: &str) -> Entry {
        Entry {
            name: n.into(),
            payload: n.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_summary_is_acked_by_the_packet_id_it_was_sent_with() {
        let mut f = InFlight::default();
        f.handed(None); // status
        f.handed(Some(e("a")));
        assert!(!f.is_idle());
        f.sent(1);
        f.sent(2);
        assert_eq!(f.acked(1), None, "the status carries no summary");
        assert_eq!(f.acked(2), Some(e("a")));
        assert_eq!(f.acked(2), None, "a second PUBACK is ignored");
        assert!(f.is_idle() && f.is_empty());
    }

    #[test]
    fn a_lost_connection_gives_back_every_summary_not_acked() {
        let mut f = InFlight::default();
        f.handed(Some(e("a")));
        f.handed(Some(e("b")));
        f.handed(None);
        f.handed(Some(e("c")));
        f.sent(7); // a
        f.sent(8); // b
        assert_eq!(f.acked(7), Some(e("a")));
        let mut back = f.lost();
        back.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(
            back,
            [e("b"), e("c")],
            "sent but unacked, and handed but unsent"
        );
        assert!(f.is_empty());
        // after the reconnect, packet ids start over: nothing stale is matched
        assert_eq!(f.acked(8), None);
    }

    #[test]
    fn only_so_many_publishes_in_flight() {
        let mut f = InFlight::default();
        for _ in 0..MAX_IN_FLIGHT {
            assert!(f.has_room());
            f.handed(None);
        }
        assert!(!f.has_room());
        assert_eq!(f.room(), 0);
        f.sent(1);
        assert!(f.has_room());
        assert_eq!(f.room(), 1);
        assert!(!f.is_idle(), "a publish not yet sent holds up leaving");
        for pkid in 2..=MAX_IN_FLIGHT as u16 {
            f.sent(pkid);
        }
        assert!(f.is_idle(), "sent status and health do not hold up leaving");
    }

    #[test]
    fn the_session_leaves_when_all_is_delivered_or_the_drain_time_is_up() {
        let t0 = std::time::Instant::now();
        let end = t0 + std::time::Duration::from_secs(5);
        assert_eq!(leave(true, true, t0, end), Leave::Stay, "input still open");
        assert_eq!(leave(false, true, t0, end), Leave::Done);
        assert_eq!(leave(false, false, t0, end), Leave::Stay);
        assert_eq!(leave(false, false, end, end), Leave::GiveUp);
    }

    #[test]
    fn requests_queue_publishes_and_remember_subscriptions() {
        let mut r = Requests::default();
        let sub = |t: &str| Out::Subscribe(t.into());
        assert_eq!(r.request(sub("a/set"), false), Action::None);
        assert_eq!(
            r.request(sub("a/set"), true),
            Action::Subscribe("a/set".into())
        );
        assert_eq!(r.subscriptions(), ["a/set"], "no duplicate");
        assert_eq!(r.request(sub("p/+"), true), Action::Subscribe("p/+".into()));
        assert_eq!(
            r.request(Out::Unsubscribe("p/+".into()), true),
            Action::Unsubscribe("p/+".into())
        );
        assert_eq!(
            r.request(Out::Unsubscribe("a/set".into()), false),
            Action::None
        );
        assert!(r.subscriptions().is_empty());
        let publish = |i: usize| Out::Publish {
            topic: format!("t/{i}"),
            payload: vec![],
            retain: true,
        };
        for i in 0..OUT_QUEUE_MAX + 2 {
            assert_eq!(r.request(publish(i), false), Action::None);
        }
        assert_eq!(r.dropped, 2, "the oldest are dropped");
        let first = r.pop().unwrap();
        assert_eq!(first.0, "t/2");
        r.put_back(first);
        assert_eq!(
            r.pop().unwrap().0,
            "t/2",
            "a refused publish keeps its place"
        );
    }
}
