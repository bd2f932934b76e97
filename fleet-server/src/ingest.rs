//! What one MQTT message from a device means: pure, no I/O (the rumqtt way: the MQTT loop
//! hands bytes in, the store gets typed messages out).
//!
//! Every message is either understood or rejected with a [`Malformed`] reason that names
//! the device where the topic gives one; nothing here can fail the ingest loop.

use emotiond_wire::summary::{Encoding, Feedback, Summary};
use emotiond_wire::{Health, ModelState};

/// Largest payload accepted. A summary is about 1–2 KiB in JSON; a device's feedback event
/// carries one summary. Anything bigger is refused (and still acknowledged, so a hostile
/// publisher cannot wedge the session with a message that is redelivered for ever).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The subscriptions `serve` makes under `prefix` (shared through `$share/<group>/`).
pub fn filters(prefix: &str) -> Vec<String> {
    ["summary", "status", "health", "feedback", "models/state"]
        .iter()
        .map(|k| format!("{prefix}/+/{k}"))
        .collect()
}

/// A shared subscription for `filter`: the broker hands each message to one member of
/// `group`, so N replicas split the load.
pub fn shared(group: &str, filter: &str) -> String {
    format!("$share/{group}/{filter}")
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Summary(Box<Summary>, Encoding),
    /// Retained `online` / `offline` (and the Last Will).
    Status {
        device_id: String,
        online: bool,
    },
    Health {
        device_id: String,
        health: Box<Health>,
    },
    ModelState {
        device_id: String,
        state: Box<ModelState>,
    },
    Feedback(Box<Feedback>),
}

impl Message {
    pub fn device_id(&self) -> &str {
        match self {
            Message::Summary(s, _) => &s.device_id,
            Message::Feedback(f) => &f.device_id,
            Message::Status { device_id, .. }
            | Message::Health { device_id, .. }
            | Message::ModelState { device_id, .. } => device_id,
        }
    }
}

/// Why a message was not taken. `device` is the device id from the topic when the topic
/// had the right shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct Malformed {
    pub device: Option<String>,
    pub reason: String,
}

fn bad(device: Option<&str>, reason: impl Into<String>) -> Malformed {
    Malformed {
        device: device.map(str::to_string),
        reason: reason.into(),
    }
}

/// A device id as a device may have it (its config refuses `+`, `#`, `/` and NUL), minus
/// control characters and ids longer than 128 bytes, which no real device has and which
/// would only pollute logs and the registry.
pub fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id
            .chars()
            .any(|c| c.is_control() || matches!(c, '+' | '#' | '/'))
}

/// Decode one message received on `topic` (under `prefix`).
pub fn parse(prefix: &str, topic: &str, payload: &[u8]) -> Result<Message, Malformed> {
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| bad(None, format!("topic {topic:?} is not under {prefix:?}")))?;
    let (device, kind) = rest
        .split_once('/')
        .ok_or_else(|| bad(None, format!("topic {topic:?} has no message kind")))?;
    if !valid_device_id(device) {
        return Err(bad(None, format!("topic {topic:?}: invalid device id")));
    }
    let dev = Some(device);
    if payload.len() > MAX_PAYLOAD {
        return Err(bad(
            dev,
            format!(
                "{kind}: payload of {} bytes is over the {MAX_PAYLOAD}-byte limit",
                payload.len()
            ),
        ));
    }
    let same_device = |claimed: &str| {
        if claimed == device {
            Ok(())
        } else {
            Err(bad(
                dev,
                format!("{kind}: payload names device {claimed:?}, the topic {device:?}"),
            ))
        }
    };
    match kind {
        "summary" => {
            // A JSON summary is an object; postcard's first byte is the schema varint.
            let enc = if payload.first() == Some(&b'{') {
                Encoding::Json
            } else {
                Encoding::Postcard
            };
            let s = Summary::decode(payload, enc).map_err(|e| bad(dev, e.to_string()))?;
            same_device(&s.device_id)?;
            if s.window_end_ms < s.window_start_ms {
                return Err(bad(dev, "summary: window ends before it starts"));
            }
            if s.seq > i64::MAX as u64 {
                return Err(bad(dev, "summary: seq out of range"));
            }
            Ok(Message::Summary(Box::new(s), enc))
        }
        "status" => match payload {
            b"online" => Ok(Message::Status {
                device_id: device.into(),
                online: true,
            }),
            b"offline" => Ok(Message::Status {
                device_id: device.into(),
                online: false,
            }),
            // a retained message being cleared (empty payload) is not a status
            _ => Err(bad(dev, "status: neither \"online\" nor \"offline\"")),
        },
        "health" => serde_json::from_slice::<Health>(payload)
            .map(|h| Message::Health {
                device_id: device.into(),
                health: Box::new(h),
            })
            .map_err(|e| bad(dev, format!("health JSON: {e}"))),
        "models/state" => serde_json::from_slice::<ModelState>(payload)
            .map(|s| Message::ModelState {
                device_id: device.into(),
                state: Box::new(s),
            })
            .map_err(|e| bad(dev, format!("models/state JSON: {e}"))),
        "feedback" => {
            let f: Feedback = serde_json::from_slice(payload)
                .map_err(|e| bad(dev, format!("feedback JSON: {e}")))?;
            same_device(&f.device_id)?;
            if let Some(l) = &f.label {
                if !emotiond_wire::EMOTIONS.contains(&l.as_str()) {
                    return Err(bad(dev, format!("feedback: unknown label {l:?}")));
                }
            }
            Ok(Message::Feedback(Box::new(f)))
        }
        other => Err(bad(dev, format!("unknown message kind {other:?}"))),
    }
}

/// The dominant emotion of per-emotion means (the first of equal maxima), or `None` when
/// every value is zero (no faces).
pub fn dominant(values: [f32; 7]) -> Option<&'static str> {
    let mut best: Option<(usize, f32)> = None;
    for (i, v) in values.iter().enumerate() {
        if *v > 0.0 && best.is_none_or(|(_, b)| *v > b) {
            best = Some((i, *v));
        }
    }
    best.map(|(i, _)| emotiond_wire::EMOTIONS[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use emotiond_wire::summary::sample;

    #[test]
    fn summaries_decode_from_json_and_postcard_and_must_match_their_topic() {
        let s = sample();
        let topic = "emotiond/kiosk-7/summary";
        for enc in [Encoding::Json, Encoding::Postcard] {
            let m = parse("emotiond", topic, &s.encode(enc).unwrap()).unwrap();
            assert_eq!(m, Message::Summary(Box::new(s.clone()), enc));
        }
        let e = parse(
            "emotiond",
            "emotiond/kiosk-8/summary",
            &s.encode(Encoding::Json).unwrap(),
        )
        .unwrap_err();
        assert_eq!(e.device.as_deref(), Some("kiosk-8"));
        assert!(e.reason.contains("names device \"kiosk-7\""), "{e}");
    }

    #[test]
    fn bad_input_is_named_with_its_device_when_the_topic_gives_one() {
        let cases: [(&str, &[u8], Option<&str>, &str); 8] = [
            (
                "emotiond/k1/summary",
                b"{not json",
                Some("k1"),
                "summary JSON",
            ),
            (
                "emotiond/k1/summary",
                &[0xff, 0xff, 0xff],
                Some("k1"),
                "postcard",
            ),
            ("emotiond/k1/status", b"maybe", Some("k1"), "status"),
            ("emotiond/k1/health", b"[]", Some("k1"), "health JSON"),
            (
                "emotiond/k1/bogus",
                b"{}",
                Some("k1"),
                "unknown message kind",
            ),
            ("emotiond/k1", b"{}", None, "no message kind"),
            ("other/k1/summary", b"{}", None, "not under"),
            ("emotiond/k\u{7}1/summary", b"{}", None, "invalid device id"),
        ];
        for (topic, payload, device, why) in cases {
            let e = parse("emotiond", topic, payload).unwrap_err();
            assert_eq!(e.device.as_deref(), device, "{topic}");
            assert!(e.reason.contains(why), "{topic}: {e}");
        }
        let big = vec![b'{'; MAX_PAYLOAD + 1];
        let e = parse("emotiond", "emotiond/k1/summary", &big).unwrap_err();
        assert!(e.reason.contains("over the"), "{e}");
    }

    #[test]
    fn status_health_state_and_labelled_feedback() {
        assert_eq!(
            parse("p", "p/k/status", b"offline").unwrap(),
            Message::Status {
                device_id: "k".into(),
                online: false
            }
        );
        let mut f = Feedback::button(5, sample());
        f.label = Some("happy".into());
        let m = parse("p", "p/kiosk-7/feedback", &f.to_json()).unwrap();
        assert_eq!(m, Message::Feedback(Box::new(f.clone())));
        f.label = Some("bored".into());
        let e = parse("p", "p/kiosk-7/feedback", &f.to_json()).unwrap_err();
        assert!(e.reason.contains("unknown label"), "{e}");
        let st = ModelState::unattached(emotiond_wire::RejectCode::BadSignature, "x").at(3);
        assert!(matches!(
            parse("p", "p/k/models/state", &st.to_json()).unwrap(),
            Message::ModelState { .. }
        ));
    }

    #[test]
    fn dominant_is_the_largest_and_none_without_faces() {
        assert_eq!(dominant([0.1, 0.0, 0.0, 0.7, 0.1, 0.0, 0.1]), Some("happy"));
        assert_eq!(dominant([0.0; 7]), None);
        assert_eq!(
            filters("e"),
            [
                "e/+/summary",
                "e/+/status",
                "e/+/health",
                "e/+/feedback",
                "e/+/models/state"
            ]
        );
        assert_eq!(shared("g", "e/+/summary"), "$share/g/e/+/summary");
    }

    #[test]
    fn health_of_old_and_new_daemons_parses() {
        let old = br#"{"camera":{"error":null,"reconnects":0,"source":"/dev/video0","state":"ok"},"microphone":null,"outbox":2,"outbox_dropped":1,"outbox_on_disk":true,"summaries_sent":3,"version":"0.1.0"}"#;
        let new = br#"{"camera":{"error":null,"reconnects":0,"source":"/dev/video0","state":"ok"},"microphone":null,"outbox":2,"outbox_dropped":1,"outbox_memory_only":2,"outbox_on_disk":true,"outbox_state":"disk_full","outbox_write_errors":5,"summaries_sent":3,"version":"0.1.1"}"#;
        for (payload, state, errors) in [
            (&old[..], None, 0),
            (&new[..], Some(emotiond_wire::OutboxState::DiskFull), 5),
        ] {
            match parse("p", "p/k/health", payload).unwrap() {
                Message::Health { device_id, health } => {
                    assert_eq!(device_id, "k");
                    assert_eq!(health.outbox_state, state);
                    assert_eq!(health.outbox_write_errors, errors);
                    assert_eq!(health.outbox_dropped, 1);
                }
                m => panic!("{m:?}"),
            }
        }
    }
}
