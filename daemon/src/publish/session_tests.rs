//! Every transition of the session's state machine, with plain values: no broker, no
//! runtime. The tests play the client: they take (or refuse) the effects, and report packet
//! ids and PUBACKs as the event loop would.
//!
//! Length: ~510 lines: one test per transition of the session (see session.rs).

use super::*;
use crate::publish::delivery::{MAX_IN_FLIGHT, OUT_QUEUE_MAX};
use emotiond_wire::SourceState;

const DRAIN: Duration = Duration::from_secs(5);

fn session() -> Session {
    Session::new(Topics::new("t", "d"), Outbox::in_memory(100), DRAIN)
}

fn sources(state: SourceState) -> Sources {
    Sources {
        camera: CameraHealth {
            state,
            source: "cam0".into(),
            error: None,
            reconnects: 0,
        },
        microphone: None,
    }
}

fn ok() -> Sources {
    sources(SourceState::Ok)
}

/// An effect in words: `publish <topic> <payload>`, `subscribe <topic>`, `ack <pkid>`...
fn word(e: &Effect) -> String {
    match e {
        Effect::Publish(p) if p.topic.ends_with("/health") => format!("publish {} {{..}}", p.topic),
        Effect::Publish(p) => {
            let retained = if p.retain { " retained" } else { "" };
            let payload = String::from_utf8_lossy(&p.payload);
            format!("publish {} {payload}{retained}", p.topic)
        }
        Effect::Subscribe(t) => format!("subscribe {t}"),
        Effect::Unsubscribe(t) => format!("unsubscribe {t}"),
        Effect::Ack(p) => format!("ack {}", p.pkid),
        Effect::ClearPending => "clear pending".into(),
        Effect::Disconnect => "disconnect".into(),
    }
}

fn words(fx: &[Effect]) -> Vec<String> {
    fx.iter().map(word).collect()
}

/// The client takes every effect; their words.
fn take(s: &mut Session, fx: Vec<Effect>) -> Vec<String> {
    let w = words(&fx);
    for e in fx {
        s.taken(e);
    }
    w
}

/// The client sends what it took with packet ids from `first` on.
fn send(s: &mut Session, first: u16, n: usize) {
    for pkid in first..first + n as u16 {
        s.outgoing_publish(pkid);
    }
}

fn summary(s: &mut Session, seq: u64) {
    s.summary(1_000 + seq, 7, seq, format!("s{seq}").into_bytes());
}

fn publish(topic: &str, payload: &str) -> Out {
    Out::Publish {
        topic: topic.into(),
        payload: payload.into(),
        retain: false,
    }
}

fn message(pkid: u16) -> rumqttc::Publish {
    let mut p = rumqttc::Publish::new("t/d/models/set", rumqttc::QoS::AtLeastOnce, vec![1]);
    p.pkid = pkid;
    p
}

/// Connected, with the connection's publishes taken and sent (packet ids 1 and 2).
fn connected() -> Session {
    let mut s = session();
    let fx = s.connected(&ok());
    take(&mut s, fx);
    send(&mut s, 1, 2);
    s
}

#[test]
fn a_connection_publishes_online_and_health_and_makes_every_subscription_again() {
    let mut s = session();
    assert!(
        s.link_out(Out::Subscribe("t/d/models/set".into()))
            .is_empty()
    );
    assert!(
        s.link_out(Out::Subscribe("t/g/models/set".into()))
            .is_empty()
    );
    assert!(!s.is_connected());
    let fx = s.connected(&ok());
    assert!(s.is_connected());
    assert_eq!(
        take(&mut s, fx),
        [
            "publish t/d/status online retained",
            "publish t/d/health {..}",
            "subscribe t/d/models/set",
            "subscribe t/g/models/set",
        ]
    );
    assert_eq!(s.in_flight(), 2, "status and health take a slot each");
    // health is retained and says what the sources and the outbox say
    s.connection_lost();
    let fx = s.connected(&ok());
    let Effect::Publish(h) = &fx[1] else {
        panic!("{fx:?}")
    };
    assert!(h.retain);
    let doc: serde_json::Value = serde_json::from_slice(&h.payload).unwrap();
    assert_eq!(doc["camera"]["source"], "cam0");
    assert_eq!(doc["outbox_state"], "memory_only");
    // forced on every connection, though nothing changed
    take(&mut s, fx);
    s.connection_lost();
    let fx = s.connected(&ok());
    assert_eq!(words(&fx)[1], "publish t/d/health {..}");
}

#[test]
fn summaries_go_out_only_while_connected_and_up_to_the_in_flight_limit() {
    let mut s = session();
    for seq in 0..40 {
        summary(&mut s, seq);
    }
    assert!(s.flush().is_empty(), "not connected: they wait");
    assert_eq!(s.outbox().len(), 40);
    let mut s = {
        let fx = s.connected(&ok());
        take(&mut s, fx); // status and health: 2 slots
        s
    };
    let fx = s.flush();
    assert_eq!(fx.len(), MAX_IN_FLIGHT - 2);
    assert_eq!(words(&fx)[0], "publish t/d/summary s0");
    assert!(fx.iter().all(|e| matches!(
        e,
        Effect::Publish(Publish {
            retain: false,
            carries: Carries::Summary(_),
            ..
        })
    )));
    take(&mut s, fx);
    assert!(s.flush().is_empty(), "the limit is reached");
    assert_eq!(s.outbox().len(), 40 - (MAX_IN_FLIGHT - 2));
    // the client sent three: three more may go
    send(&mut s, 1, 3);
    let fx = s.flush();
    assert_eq!(
        words(&fx),
        [
            "publish t/d/summary s30",
            "publish t/d/summary s31",
            "publish t/d/summary s32"
        ]
    );
}

#[test]
fn a_puback_removes_the_summary_from_the_outbox_and_counts_it_sent() {
    let mut s = connected();
    summary(&mut s, 0);
    summary(&mut s, 1);
    let fx = s.flush();
    take(&mut s, fx);
    send(&mut s, 3, 2);
    assert_eq!(s.outbox().len(), 0, "taken out, in flight");
    s.puback(1); // the status: no summary
    assert_eq!(s.sent(), 0);
    s.puback(4);
    assert_eq!(s.sent(), 1);
    s.puback(4);
    assert_eq!(s.sent(), 1, "a second PUBACK counts nothing");
    let mut c = PublishCounts::default();
    s.count(&mut c);
    assert_eq!((c.summaries_sent, c.outbox), (1, 0));
    // the one not acknowledged comes back after a lost connection; the acked one does not
    s.connection_lost();
    assert_eq!(s.outbox().len(), 1);
    s.count(&mut c);
    assert_eq!((c.summaries_sent, c.outbox), (1, 1));
}

#[test]
fn an_acknowledged_summary_leaves_the_disk_and_the_others_stay_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let on_disk = || Outbox::open(dir.path(), 10).unwrap().len();
    let mut s = Session::new(
        Topics::new("t", "d"),
        Outbox::open(dir.path(), 10).unwrap(),
        DRAIN,
    );
    let fx = s.connected(&ok());
    take(&mut s, fx);
    send(&mut s, 1, 2);
    summary(&mut s, 0);
    summary(&mut s, 1);
    let fx = s.flush();
    take(&mut s, fx);
    send(&mut s, 3, 2);
    assert_eq!(on_disk(), 2, "in flight, still on disk");
    s.puback(3);
    assert_eq!(on_disk(), 1);
    s.connection_lost();
    assert_eq!(on_disk(), 1, "the unacknowledged one stays");
}

#[test]
fn a_lost_connection_redelivers_every_unacked_summary_in_order_once() {
    let mut s = connected();
    for seq in 0..5 {
        summary(&mut s, seq);
    }
    let fx = s.flush();
    take(&mut s, fx);
    send(&mut s, 3, 3); // s0..s2 sent; s3, s4 taken but not sent
    s.puback(4); // s1 acknowledged
    summary(&mut s, 5); // arrives while in flight
    assert_eq!(s.connection_lost(), [Effect::ClearPending]);
    assert!(!s.is_connected());
    assert_eq!(s.in_flight(), 0);
    assert!(s.flush().is_empty(), "nothing goes while disconnected");
    s.puback(5); // a late PUBACK of the old connection matches nothing
    assert_eq!(s.sent(), 1);
    let fx = s.connected(&ok());
    take(&mut s, fx);
    let fx = s.flush();
    assert_eq!(
        words(&fx),
        [
            "publish t/d/summary s0",
            "publish t/d/summary s2",
            "publish t/d/summary s3",
            "publish t/d/summary s4",
            "publish t/d/summary s5",
        ],
        "the same order, s1 not again"
    );
    take(&mut s, fx);
    send(&mut s, 1, 7);
    for pkid in 3..=7 {
        s.puback(pkid);
    }
    assert_eq!(s.sent(), 6);
    assert!(s.outbox().is_empty());
    assert!(s.flush().is_empty(), "no duplicate");
}

#[test]
fn health_goes_out_once_per_change_and_only_while_connected() {
    let mut s = session();
    assert!(s.health(&ok()).is_empty(), "not connected");
    let fx = s.connected(&ok());
    take(&mut s, fx);
    assert!(
        s.health(&ok()).is_empty(),
        "nothing changed since the connection"
    );
    let down = sources(SourceState::Unavailable);
    let fx = s.health(&down);
    assert_eq!(words(&fx), ["publish t/d/health {..}"]);
    take(&mut s, fx);
    assert!(s.health(&down).is_empty(), "one message per change");
    let mut with_mic = down.clone();
    with_mic.microphone = Some(MicHealth::default());
    assert_eq!(s.health(&with_mic).len(), 1, "the microphone counts too");
    // a health the client did not take is not taken as published
    assert_eq!(s.health(&with_mic).len(), 1);
    s.connection_lost();
    assert!(s.health(&ok()).is_empty(), "not connected");
}

#[test]
fn health_follows_the_outbox_state() {
    let dir = tempfile::tempdir().unwrap();
    // a disk that fails every write
    let broken = crate::publish::outbox::Writer::new(|_, _| Err(std::io::Error::other("EIO")));
    let outbox = Outbox::open_with(dir.path(), 10, broken).unwrap();
    let mut s = Session::new(Topics::new("t", "d"), outbox, DRAIN);
    let fx = s.connected(&ok());
    take(&mut s, fx);
    assert!(s.health(&ok()).is_empty());
    summary(&mut s, 0); // cannot be written: it waits in memory
    assert_eq!(s.outbox().state(), OutboxState::WriteError);
    let fx = s.health(&ok());
    assert_eq!(words(&fx), ["publish t/d/health {..}"]);
    let Effect::Publish(h) = &fx[0] else {
        panic!("{fx:?}")
    };
    let doc: serde_json::Value = serde_json::from_slice(&h.payload).unwrap();
    assert_eq!(doc["outbox_state"], "write_error");
    assert_eq!(
        (doc["outbox"].as_u64(), doc["outbox_memory_only"].as_u64()),
        (Some(1), Some(1))
    );
    take(&mut s, fx);
    assert!(s.health(&ok()).is_empty(), "once");
}

#[test]
fn requests_wait_while_disconnected_go_on_connect_and_the_oldest_are_dropped() {
    let mut s = session();
    for i in 0..OUT_QUEUE_MAX + 2 {
        assert!(
            s.link_out(publish("t/d/feedback", &i.to_string()))
                .is_empty()
        );
    }
    assert!(s.flush().is_empty(), "not connected");
    let fx = s.connected(&ok());
    take(&mut s, fx);
    summary(&mut s, 0);
    let fx = s.flush();
    let w = words(&fx);
    assert_eq!(
        w.len(),
        OUT_QUEUE_MAX,
        "all requests, no room left for the summary"
    );
    assert_eq!(
        w[0], "publish t/d/feedback 2",
        "the two oldest were dropped"
    );
    assert_eq!(
        w[OUT_QUEUE_MAX - 1],
        format!("publish t/d/feedback {}", OUT_QUEUE_MAX + 1)
    );
    take(&mut s, fx);
    // connected: a request goes with the next flush, before summaries
    send(&mut s, 3, OUT_QUEUE_MAX);
    s.link_out(publish("t/d/models/state", "x"));
    assert_eq!(
        words(&s.flush()),
        ["publish t/d/models/state x", "publish t/d/summary s0"]
    );
}

#[test]
fn subscriptions_go_out_when_connected_and_are_remembered() {
    let mut s = connected();
    assert_eq!(
        words(&s.link_out(Out::Subscribe("a".into()))),
        ["subscribe a"]
    );
    assert_eq!(
        words(&s.link_out(Out::Subscribe("b".into()))),
        ["subscribe b"]
    );
    assert_eq!(
        words(&s.link_out(Out::Unsubscribe("a".into()))),
        ["unsubscribe a"]
    );
    s.connection_lost();
    assert!(s.link_out(Out::Subscribe("c".into())).is_empty(), "later");
    let fx = s.connected(&ok());
    assert_eq!(words(&fx)[2..], ["subscribe b", "subscribe c"]);
}

#[test]
fn what_the_client_refuses_goes_back_in_its_place() {
    let mut s = session();
    let fx = s.connected(&ok());
    // the client's queue is full from the start: nothing of the connection is taken
    s.refused(fx);
    assert_eq!(s.in_flight(), 0, "a refused publish takes no slot");
    let fx = s.health(&ok());
    assert_eq!(
        words(&fx),
        ["publish t/d/health {..}"],
        "health goes out again"
    );
    take(&mut s, fx);
    for seq in 0..3 {
        summary(&mut s, seq);
    }
    s.link_out(publish("r", "0"));
    s.link_out(publish("r", "1"));
    let fx = s.flush();
    assert_eq!(fx.len(), 5);
    // the client takes the first request only
    let mut fx = fx.into_iter();
    s.taken(fx.next().unwrap());
    s.refused(fx.collect());
    assert_eq!(s.in_flight(), 2);
    assert_eq!(s.outbox().len(), 3, "the summaries are back in the outbox");
    assert_eq!(
        words(&s.flush()),
        [
            "publish r 1",
            "publish t/d/summary s0",
            "publish t/d/summary s1",
            "publish t/d/summary s2"
        ],
        "same order"
    );
}

#[test]
fn a_refused_acknowledgement_is_sent_later_in_order() {
    let mut s = connected();
    for pkid in [10, 11, 12] {
        s.incoming(message(pkid));
        assert!(s.inbound_handed(Handed::Taken));
    }
    let fx = s.flush();
    assert_eq!(words(&fx), ["ack 10", "ack 11", "ack 12"]);
    let mut fx = fx.into_iter();
    s.taken(fx.next().unwrap());
    s.refused(fx.collect());
    assert_eq!(words(&s.acks()), ["ack 11", "ack 12"]);
}

#[test]
fn a_message_is_acknowledged_only_once_the_update_manager_took_it() {
    let mut s = connected();
    s.incoming(message(10));
    s.incoming(message(11));
    assert!(!s.inbound_idle());
    assert_eq!(s.next_inbound().map(|p| p.pkid), Some(10));
    assert!(!s.inbound_handed(Handed::Full), "full: try again later");
    assert!(s.flush().is_empty(), "not taken: not acknowledged");
    assert!(s.inbound_handed(Handed::Taken));
    assert_eq!(words(&s.flush()), ["ack 10"]);
    assert!(s.acks().is_empty(), "acknowledged once");
    // no manager (updates off): acknowledged all the same
    assert_eq!(s.next_inbound().map(|p| p.pkid), Some(11));
    assert!(s.inbound_handed(Handed::Gone));
    assert_eq!(words(&s.acks()), ["ack 11"]);
    assert!(s.inbound_idle() && s.next_inbound().is_none());
}

#[test]
fn no_acknowledgement_crosses_a_lost_connection() {
    let mut s = connected();
    s.incoming(message(10));
    s.incoming(message(11));
    assert!(s.inbound_handed(Handed::Taken)); // 10 taken, its ack not yet sent
    s.connection_lost();
    assert!(s.acks().is_empty(), "not connected");
    let fx = s.connected(&ok());
    take(&mut s, fx);
    assert!(
        s.acks().is_empty(),
        "10's packet id belongs to the old connection"
    );
    assert_eq!(
        s.next_inbound().map(|p| p.pkid),
        Some(11),
        "11 is still handed over"
    );
    assert!(s.inbound_handed(Handed::Taken));
    assert!(s.acks().is_empty(), "nor 11's");
    assert!(s.inbound_idle());
}

#[test]
fn the_session_leaves_once_everything_is_delivered() {
    let t0 = Instant::now();
    let mut s = connected();
    summary(&mut s, 0);
    let fx = s.flush();
    take(&mut s, fx);
    assert!(!s.should_leave(t0), "input still open");
    s.input_closed(t0);
    assert!(!s.input_open());
    assert!(!s.should_leave(t0), "s0 not acknowledged");
    send(&mut s, 3, 1);
    s.puback(3);
    assert!(s.should_leave(t0));
    let fx = s.leave();
    assert_eq!(
        take(&mut s, fx),
        ["publish t/d/status offline retained", "disconnect"]
    );
}

#[test]
fn the_session_leaves_at_the_drain_deadline_with_summaries_undelivered() {
    let t0 = Instant::now();
    let mut s = session();
    summary(&mut s, 0);
    s.input_closed(t0);
    assert!(!s.should_leave(t0));
    assert!(!s.should_leave(t0 + DRAIN - Duration::from_millis(1)));
    assert!(s.should_leave(t0 + DRAIN));
    assert!(s.leave().is_empty(), "not connected: no offline to publish");
    assert_eq!(s.outbox().len(), 1, "kept");
    // the deadline is set once, when the input closed
    s.input_closed(t0 + DRAIN);
    assert!(s.should_leave(t0 + DRAIN));
}
