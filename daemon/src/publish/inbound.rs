//! Messages from the broker for the update manager, with flow control instead of drops.
//!
//! The session acknowledges a QoS 1 message only once the manager's bounded queue took it
//! (manual acks), so a broker that limits unacknowledged messages per client holds back
//! what follows. Debian 12's mosquitto 2.0.11 was seen sending a burst of 1,000 without
//! waiting (tests/e2e/faults.rs), so what waits here is bounded by count and bytes
//! ([`PENDING_MAX`], [`PENDING_MAX_BYTES`]: a burst of 1,000 orders of up to 8 KiB fits);
//! beyond that the oldest is dropped, counted and acknowledged. No I/O: the session's state
//! machine ([`super::session`]) asks and is told.

use rumqttc::Publish;
use std::collections::VecDeque;

/// Messages received and not yet taken by the manager, at most.
pub const PENDING_MAX: usize = 4096;
/// Their payloads together, at most.
pub const PENDING_MAX_BYTES: usize = 4 << 20;

/// What the manager's queue did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    Taken,
    /// Full: keep it, try again later.
    Full,
    /// No manager (updates off, or it ended): the message has nowhere to go.
    Gone,
}

#[derive(Debug, Default)]
pub struct Inbound {
    /// Received, not yet taken; `true`: to acknowledge once taken (this connection's).
    pending: VecDeque<(Publish, bool)>,
    /// Taken (or dropped), acknowledgement not yet handed to the client.
    to_ack: VecDeque<Publish>,
    /// Payload bytes in `pending`.
    bytes: usize,
    /// Dropped because [`PENDING_MAX`] or [`PENDING_MAX_BYTES`] were waiting.
    pub dropped: u64,
}

impl Inbound {
    /// A message arrived on the current connection. Returns those dropped to make room.
    pub fn arrived(&mut self, p: Publish) -> Vec<Publish> {
        self.bytes += p.payload.len();
        self.pending.push_back((p, true));
        let mut out = Vec::new();
        while self.pending.len() > PENDING_MAX
            || (self.bytes > PENDING_MAX_BYTES && self.pending.len() > 1)
        {
            let Some((old, ack)) = self.pending.pop_front() else {
                break;
            };
            self.bytes -= old.payload.len();
            self.dropped += 1;
            if ack {
                self.to_ack.push_back(old.clone());
            }
            out.push(old);
        }
        out
    }

    /// Hand waiting messages to the manager, oldest first, until its queue is full.
    pub fn hand(&mut self, mut send: impl FnMut(&Publish) -> Handed) {
        while let Some(p) = self.next() {
            match send(p) {
                Handed::Full => return,
                Handed::Taken | Handed::Gone => self.handed(),
            }
        }
    }

    /// The oldest message waiting for the manager.
    pub fn next(&self) -> Option<&Publish> {
        self.pending.front().map(|(p, _)| p)
    }

    /// The manager took [`Inbound::next`] (or there is none to take it): it is to be
    /// acknowledged.
    pub fn handed(&mut self) {
        if let Some((p, ack)) = self.pending.pop_front() {
            self.bytes -= p.payload.len();
            if ack {
                self.to_ack.push_back(p);
            }
        }
    }

    /// Hand acknowledgements to the client (`ack` false: its queue is full, try later).
    pub fn acks(&mut self, mut ack: impl FnMut(&Publish) -> bool) {
        while let Some(p) = self.to_ack.front() {
            if !ack(p) {
                return;
            }
            self.to_ack.pop_front();
        }
    }

    /// Every acknowledgement due, oldest first (those the client refuses come back with
    /// [`Inbound::ack_later`]).
    pub fn take_acks(&mut self) -> Vec<Publish> {
        self.to_ack.drain(..).collect()
    }

    /// Acknowledgements the client refused (in their order): sent first next time.
    pub fn ack_later(&mut self, acks: Vec<Publish>) {
        for p in acks.into_iter().rev() {
            self.to_ack.push_front(p);
        }
    }

    /// The connection dropped: packet ids of the old connection must not be acknowledged
    /// on the next one (the broker sends unacknowledged QoS 1 messages again).
    pub fn disconnected(&mut self) {
        self.to_ack.clear();
        for (_, ack) in &mut self.pending {
            *ack = false;
        }
    }

    /// Nothing waits to be handed over or acknowledged.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.to_ack.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    fn msg(i: u16) -> Publish {
        let mut p = Publish::new("d/models/set", QoS::AtLeastOnce, vec![i as u8]);
        p.pkid = i;
        p
    }

    /// A manager queue with room for `cap`.
    fn queue(cap: usize, taken: &mut Vec<u16>) -> impl FnMut(&Publish) -> Handed + '_ {
        move |p| {
            if taken.len() >= cap {
                Handed::Full
            } else {
                taken.push(p.pkid);
                Handed::Taken
            }
        }
    }

    fn ack_all(acked: &mut Vec<u16>) -> impl FnMut(&Publish) -> bool + '_ {
        |p| {
            acked.push(p.pkid);
            true
        }
    }

    #[test]
    fn a_message_is_acknowledged_only_once_the_manager_took_it_and_in_order() {
        let mut inb = Inbound::default();
        let (mut taken, mut acked) = (Vec::new(), Vec::new());
        for i in 1..=5 {
            assert!(inb.arrived(msg(i)).is_empty());
        }
        inb.hand(queue(2, &mut taken));
        inb.acks(ack_all(&mut acked));
        assert_eq!(taken, [1, 2]);
        assert_eq!(
            acked,
            [1, 2],
            "3..5 wait unacknowledged: the broker holds back more"
        );
        assert!(!inb.is_idle());
        // the manager took what it had: room again
        taken.clear();
        inb.hand(queue(10, &mut taken));
        // the client's queue is full for the first ack: kept for later, in order
        let mut first = true;
        inb.acks(|_| !std::mem::take(&mut first));
        inb.acks(ack_all(&mut acked));
        assert_eq!(taken, [3, 4, 5]);
        assert_eq!(acked, [1, 2, 3, 4, 5]);
        assert!(inb.is_idle());
        assert_eq!(inb.dropped, 0);
    }

    #[test]
    fn beyond_the_bound_the_oldest_is_dropped_counted_and_acknowledged() {
        let mut inb = Inbound::default();
        for i in 0..PENDING_MAX as u16 {
            assert!(inb.arrived(msg(i)).is_empty());
        }
        let old = inb.arrived(msg(5000));
        assert_eq!(old.iter().map(|p| p.pkid).collect::<Vec<_>>(), [0]);
        assert_eq!(inb.dropped, 1);
        let mut acked = Vec::new();
        inb.acks(ack_all(&mut acked));
        assert_eq!(acked, [0]);
        // by bytes: a 3 MiB message and a 2 MiB one do not both wait
        let mut inb = Inbound::default();
        let big = |i: u16, n: usize| {
            let mut p = Publish::new("d/models/set", QoS::AtLeastOnce, vec![0u8; n]);
            p.pkid = i;
            p
        };
        assert!(inb.arrived(big(1, 3 << 20)).is_empty());
        let old = inb.arrived(big(2, 2 << 20));
        assert_eq!(old.iter().map(|p| p.pkid).collect::<Vec<_>>(), [1]);
        // one message alone always waits, whatever its size
        assert!(inb.arrived(big(3, 1)).is_empty());
        assert_eq!(inb.dropped, 1);
    }

    #[test]
    fn no_manager_acknowledges_and_forgets_and_a_new_connection_gets_no_stale_acks() {
        let mut inb = Inbound::default();
        inb.arrived(msg(1));
        inb.hand(|_| Handed::Gone);
        let mut acked = Vec::new();
        inb.acks(ack_all(&mut acked));
        assert_eq!(acked, [1]);
        assert!(inb.is_idle());

        inb.arrived(msg(2));
        inb.arrived(msg(3));
        inb.hand(|p| {
            if p.pkid == 2 {
                Handed::Taken
            } else {
                Handed::Full
            }
        });
        inb.disconnected(); // 2's ack was not sent, 3 still waits
        let mut taken = Vec::new();
        inb.hand(queue(5, &mut taken));
        let mut acked = Vec::new();
        inb.acks(ack_all(&mut acked));
        assert_eq!(taken, [3], "what arrived is still handed over");
        assert!(
            acked.is_empty(),
            "no packet id of the old connection: {acked:?}"
        );
        assert!(inb.is_idle());
    }
}
