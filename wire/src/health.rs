//! The retained health document (`<prefix>/<device>/health`) and the state of a source
//! (camera, microphone), which summaries carry too.

use serde::{Deserialize, Serialize};

/// State of a camera or microphone. On the wire it is a string (`"ok"`...), in JSON and in
/// postcard alike (summaries have always carried it as a string), so its codec is written
/// by hand rather than derived (a derived enum would be a variant index in postcard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SourceState {
    /// Not opened yet.
    #[default]
    Starting,
    /// Frames (or audio) flow.
    Ok,
    /// Missing, unplugged or failing; retried with back-off.
    Unavailable,
    /// A file source reached its end.
    Ended,
}

impl SourceState {
    pub const ALL: [SourceState; 4] = [
        SourceState::Starting,
        SourceState::Ok,
        SourceState::Unavailable,
        SourceState::Ended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Ok => "ok",
            SourceState::Unavailable => "unavailable",
            SourceState::Ended => "ended",
        }
    }
}

impl std::fmt::Display for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SourceState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SourceState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown source state {s:?}"))
    }
}

impl PartialEq<&str> for SourceState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for SourceState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SourceState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether the outbox writes to disk (`health.outbox_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// The last write succeeded and every queued summary is on disk.
    #[default]
    Ok,
    /// The last write failed for lack of space (ENOSPC, or EDQUOT: over quota), also after
    /// removing the oldest outbox files to make room: new summaries wait in memory.
    DiskFull,
    /// The last write failed for another reason (logged): new summaries wait in memory.
    WriteError,
    /// The outbox has no disk (no `state_dir`, or it was not usable at the start).
    MemoryOnly,
    /// A state this build does not know (a newer daemon).
    #[serde(other)]
    Unknown,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Ok => "ok",
            OutboxState::DiskFull => "disk_full",
            OutboxState::WriteError => "write_error",
            OutboxState::MemoryOnly => "memory_only",
            OutboxState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for OutboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Camera health (`health.camera`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CameraHealth {
    pub state: SourceState,
    /// The device or files, as configured.
    pub source: String,
    /// Why it is unavailable (or ended), when it is.
    pub error: Option<String>,
    pub reconnects: u64,
}

/// Microphone health (`health.microphone`, and `emotiond check`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MicHealth {
    pub state: SourceState,
    pub source: String,
    pub error: Option<String>,
    pub reconnects: u64,
    /// Overruns recovered (audio lost and filled with silence).
    pub xruns: u64,
}

/// The health document, republished when a source's state changes and on every
/// connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub camera: CameraHealth,
    /// None with audio off.
    pub microphone: Option<MicHealth>,
    pub summaries_sent: u64,
    /// Summaries waiting for the broker, dropped because the outbox was full, and whether
    /// the outbox is on disk.
    pub outbox: usize,
    pub outbox_dropped: u64,
    pub outbox_on_disk: bool,
    /// Whether new summaries reach the disk (see [`OutboxState`]); absent from daemons
    /// before it was added (None).
    #[serde(default)]
    pub outbox_state: Option<OutboxState>,
    /// With the outbox on disk: unacknowledged summaries (queued or in flight) held in memory
    /// only (a write failed, or their files were removed to make room on a full disk), lost
    /// if the daemon stops before they are delivered or written again. 0 when absent, and
    /// for an outbox without disk (`outbox_state` `memory_only`).
    #[serde(default)]
    pub outbox_memory_only: usize,
    /// Outbox writes that failed since the start, whatever the cause (each one logged);
    /// 0 when absent.
    #[serde(default)]
    pub outbox_write_errors: u64,
    /// The daemon's version.
    pub version: String,
}

impl Health {
    /// JSON with sorted keys, as it has always been published.
    pub fn to_json(&self) -> Vec<u8> {
        crate::json_via_value(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_states_are_strings_in_json_and_postcard() {
        for (s, name) in [
            (SourceState::Starting, "starting"),
            (SourceState::Ok, "ok"),
            (SourceState::Unavailable, "unavailable"),
            (SourceState::Ended, "ended"),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), name);
            assert_eq!(
                postcard::to_allocvec(&s).unwrap(),
                postcard::to_allocvec(name).unwrap()
            );
            let back: SourceState =
                postcard::from_bytes(&postcard::to_allocvec(name).unwrap()).unwrap();
            assert_eq!(back, s);
            assert_eq!(s, name);
        }
        assert!(serde_json::from_str::<SourceState>("\"lost\"").is_err());
    }

    #[test]
    fn health_is_the_documented_json() {
        let h = Health {
            camera: CameraHealth {
                state: SourceState::Unavailable,
                source: "/dev/video0".into(),
                error: Some("gone".into()),
                reconnects: 2,
            },
            microphone: None,
            summaries_sent: 3,
            outbox: 1,
            outbox_dropped: 0,
            outbox_on_disk: true,
            outbox_state: Some(OutboxState::DiskFull),
            outbox_memory_only: 1,
            outbox_write_errors: 4,
            version: "0.1.0".into(),
        };
        assert_eq!(
            String::from_utf8(h.to_json()).unwrap(),
            r#"{"camera":{"error":"gone","reconnects":2,"source":"/dev/video0","state":"unavailable"},"microphone":null,"outbox":1,"outbox_dropped":0,"outbox_memory_only":1,"outbox_on_disk":true,"outbox_state":"disk_full","outbox_write_errors":4,"summaries_sent":3,"version":"0.1.0"}"#
        );
        let back: Health = serde_json::from_slice(&h.to_json()).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn health_of_a_daemon_before_the_outbox_state_still_parses() {
        let old = r#"{"camera":{"error":null,"reconnects":0,"source":"/dev/video0","state":"ok"},"microphone":null,"outbox":2,"outbox_dropped":1,"outbox_on_disk":true,"summaries_sent":3,"version":"0.1.0"}"#;
        let h: Health = serde_json::from_str(old).unwrap();
        assert_eq!(h.outbox_state, None);
        assert_eq!(
            (h.outbox, h.outbox_dropped, h.outbox_memory_only),
            (2, 1, 0)
        );
        assert_eq!(h.outbox_write_errors, 0);
        // a state a newer daemon may add is not an error either
        let newer = old.replace(
            r#""outbox_on_disk":true"#,
            r#""outbox_on_disk":true,"outbox_state":"frozen""#,
        );
        let h: Health = serde_json::from_str(&newer).unwrap();
        assert_eq!(h.outbox_state, Some(OutboxState::Unknown));
        for s in ["ok", "disk_full", "write_error", "memory_only"] {
            let v: OutboxState = serde_json::from_value(s.into()).unwrap();
            assert_eq!(v.as_str(), s);
            assert_eq!(serde_json::to_value(v).unwrap(), s);
        }
    }
}
