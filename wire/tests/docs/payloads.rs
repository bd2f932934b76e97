//! The payload column of the `health`, `models/state`, `feedback` and `status` rows of the
//! topic table against their wire types. A row must name in backticks every key its type
//! serialises (a sample with every `Option` set, encoded as the daemon publishes it) and every
//! value listed here from the wire enums and constants; every backticked word in the row must
//! be one of those, or a word the row may name besides (the `feedback` row: the keys of the
//! summary its `window` is; the `models/state` row: the reason codes).

use crate::topics::{device, edited, payload_of};
use crate::{backticked, keys, reference};
use emotiond_wire::signed::Slot;
use emotiond_wire::summary::{self, Feedback};
use emotiond_wire::topics::{STATUS_OFFLINE, STATUS_ONLINE};
use emotiond_wire::{
    CameraHealth, Health, MicHealth, ModelState, OutboxState, RejectCode, SourceState, UpdateState,
};
use std::collections::BTreeSet;

/// What a payload row must name, and what else it may name.
#[derive(Default)]
struct Expect {
    named: BTreeSet<String>,
    also: BTreeSet<String>,
}

/// What is wrong with the row of `what`: a key or value it does not name, a backticked word
/// that is neither.
fn check_row(what: &str, row: &str, e: &Expect) -> Vec<String> {
    let in_row: BTreeSet<&str> = backticked(row).collect();
    let missing = e
        .named
        .iter()
        .filter(|k| !in_row.contains(k.as_str()))
        .map(|k| format!("the {what} row does not name `{k}`"));
    let stale = in_row
        .iter()
        .filter(|w| !e.named.contains(**w) && !e.also.contains(**w))
        .map(|w| format!("the {what} row names `{w}`, not a key or value of the payload"));
    missing.chain(stale).collect()
}

/// The name a value has on the wire (a JSON string).
fn wire_name<T: serde::Serialize>(v: T) -> String {
    let v = serde_json::to_value(v).unwrap();
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn json(bytes: Vec<u8>) -> serde_json::Value {
    serde_json::from_slice(&bytes).expect("a JSON payload")
}

/// The outbox states a daemon publishes (`Unknown` is how this build reads a newer daemon's).
fn outbox_states() -> Vec<OutboxState> {
    use OutboxState as O;
    // Exhaustive on purpose: a new state fails to compile here until it is listed.
    let published = |s: &O| match s {
        O::Ok | O::DiskFull | O::WriteError | O::MemoryOnly => true,
        O::Unknown => false,
    };
    [O::Ok, O::DiskFull, O::WriteError, O::MemoryOnly, O::Unknown]
        .into_iter()
        .filter(published)
        .collect()
}

fn update_states() -> [UpdateState; 6] {
    use UpdateState as U;
    // Exhaustive on purpose: a new state fails to compile here until it is listed.
    let _ = |s: U| match s {
        U::Downloading | U::Verifying | U::Testing | U::Active | U::Rejected | U::RolledBack => {}
    };
    [
        U::Downloading,
        U::Verifying,
        U::Testing,
        U::Active,
        U::Rejected,
        U::RolledBack,
    ]
}

/// `<prefix>/<device_id>/health`: the keys of the document, of `camera` and of `microphone`;
/// the source states and the outbox states.
fn health() -> Expect {
    // Struct literals without `..`: a field added fails to compile here until it is set.
    let h = Health {
        camera: CameraHealth {
            state: SourceState::Unavailable,
            source: "/dev/video0".into(),
            error: Some("gone".into()),
            reconnects: 1,
        },
        microphone: Some(MicHealth {
            state: SourceState::Ok,
            source: "hw:1".into(),
            error: Some("overrun".into()),
            reconnects: 0,
            xruns: 2,
        }),
        summaries_sent: 3,
        outbox: 1,
        outbox_dropped: 0,
        outbox_on_disk: true,
        outbox_state: Some(OutboxState::DiskFull),
        outbox_memory_only: 1,
        outbox_write_errors: 4,
        version: "0.1.0".into(),
    };
    let v = json(h.to_json());
    let mut named = keys(&v);
    named.extend(keys(&v["camera"]));
    named.extend(keys(&v["microphone"]));
    named.extend(SourceState::ALL.map(wire_name));
    named.extend(outbox_states().into_iter().map(wire_name));
    Expect {
        named,
        ..Expect::default()
    }
}

/// `<prefix>/<device_id>/models/state`: the keys of a state message and the update states
/// (the reason codes may be named too; docs/models.md lists them).
fn model_state() -> Expect {
    let m = ModelState {
        slot: Some(Slot::Expression),
        state: UpdateState::Rejected,
        model: Some("fer@2".into()),
        sha256: Some("ab".into()),
        reason: Some(RejectCode::TestVectors),
        detail: Some("vector 0".into()),
        topic: Some("emotiond/kiosk-7/models/set".into()),
        at_ms: 5,
    };
    let mut named = keys(&json(m.to_json()));
    named.extend(update_states().map(wire_name));
    Expect {
        named,
        also: RejectCode::ALL.map(wire_name).into(),
    }
}

/// `<prefix>/<device_id>/feedback`: the keys of the event and its `event` and `kind` values;
/// the keys of the summary in `window` may be named too.
fn feedback() -> Expect {
    let mut f = Feedback::button(1_700_000_005_000, summary::sample());
    f.label = Some("happy".into());
    // Without `..`: a field added to `Feedback` fails to compile here until it is looked at.
    let Feedback {
        event,
        kind,
        ts_ms: _,
        device_id: _,
        boot_id: _,
        window: _,
        label: _,
    } = &f;
    let v = json(f.to_json());
    let mut named = keys(&v);
    named.extend([event.clone(), kind.clone()]);
    Expect {
        named,
        also: keys(&v["window"]),
    }
}

/// `<prefix>/<device_id>/status`: the two payloads the daemon publishes, and nothing else.
fn status() -> Expect {
    Expect {
        named: [STATUS_ONLINE, STATUS_OFFLINE].map(String::from).into(),
        ..Expect::default()
    }
}

#[test]
fn the_payload_rows_name_every_key_and_value_and_nothing_else() {
    let text = reference();
    let t = device();
    let mut problems = Vec::new();
    for (what, topic, expect) in [
        ("health", &t.health, health()),
        ("models/state", &t.models_state, model_state()),
        ("feedback", &t.feedback, feedback()),
        ("status", &t.status, status()),
    ] {
        problems.extend(check_row(what, &payload_of(&text, topic), &expect));
    }
    assert!(
        problems.is_empty(),
        "docs/reference/topics.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_key_or_value_missing_from_a_row_or_left_behind_fails() {
    let text = reference();
    let t = device();
    let health_row = payload_of(&text, &t.health);
    assert_eq!(
        check_row(
            "health",
            &edited(&health_row, "`xruns`", "xruns"),
            &health()
        ),
        ["the health row does not name `xruns`"]
    );
    assert_eq!(
        check_row(
            "health",
            &edited(&health_row, "`disk_full`", "`disk_fill`"),
            &health()
        ),
        [
            "the health row does not name `disk_full`",
            "the health row names `disk_fill`, not a key or value of the payload",
        ]
    );
    let state_row = payload_of(&text, &t.models_state);
    assert_eq!(
        check_row(
            "models/state",
            &edited(&state_row, "`topic`", "`order_topic`"),
            &model_state()
        ),
        [
            "the models/state row does not name `topic`",
            "the models/state row names `order_topic`, not a key or value of the payload",
        ]
    );
    let feedback_row = payload_of(&text, &t.feedback);
    assert_eq!(
        check_row(
            "feedback",
            &edited(&feedback_row, "`label`", "label"),
            &feedback()
        ),
        ["the feedback row does not name `label`"]
    );
    assert_eq!(
        check_row(
            "feedback",
            &edited(&feedback_row, "`window_end_ms`", "`window_ends_ms`"),
            &feedback()
        ),
        ["the feedback row names `window_ends_ms`, not a key or value of the payload"]
    );
    let status_row = payload_of(&text, &t.status);
    assert_eq!(
        check_row(
            "status",
            &edited(&status_row, "`offline`", "`disconnected`"),
            &status()
        ),
        [
            "the status row does not name `offline`",
            "the status row names `disconnected`, not a key or value of the payload",
        ]
    );
}
