//! What the daemon knows about its sources and its broker, shared between the thread that
//! learns it and the ones that report it (health, summaries, the status LED).
//!
//! A [`SourceHealth`] is one camera's or microphone's state machine
//! (`starting` → `ok` ⇄ `unavailable` → `ended`), with the reconnect count kept by the
//! transitions themselves; the payloads (`CameraHealth`, `MicHealth`) are snapshots of it.

use emotiond_wire::{CameraHealth, MicHealth, SourceState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, Default, PartialEq)]
struct Source {
    state: SourceState,
    source: String,
    error: Option<String>,
    reconnects: u64,
    xruns: u64,
}

/// The health of one source (camera or microphone). Cloning shares it. Every change wakes
/// whoever waits in [`SourceHealth::changed`] (the MQTT session republishes health then).
#[derive(Debug, Clone, Default)]
pub struct SourceHealth {
    inner: Arc<Mutex<Source>>,
    changed: Arc<tokio::sync::Notify>,
}

impl SourceHealth {
    pub fn new() -> SourceHealth {
        SourceHealth::default()
    }

    fn lock(&self) -> MutexGuard<'_, Source> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply `f`; wake a waiter when it changed anything.
    fn update(&self, f: impl FnOnce(&mut Source)) {
        let mut s = self.lock();
        let before = s.clone();
        f(&mut s);
        let changed = *s != before;
        drop(s);
        if changed {
            self.changed.notify_one();
        }
    }

    /// Completes after a change (at once when one happened since the last wait).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Data flows from `source`; coming back from `unavailable` counts a reconnect.
    pub fn ok(&self, source: String) {
        self.update(|s| {
            if s.state == SourceState::Unavailable {
                s.reconnects += 1;
            }
            s.state = SourceState::Ok;
            s.error = None;
            s.source = source;
        })
    }

    /// `source` is missing or failing, because of `error`; it is retried.
    pub fn unavailable(&self, source: String, error: String) {
        self.update(|s| {
            s.state = SourceState::Unavailable;
            s.error = Some(error);
            s.source = source;
        })
    }

    /// The input ended (a file source), or cannot work at all (`error`, a config problem).
    pub fn ended(&self, error: Option<String>) {
        self.update(|s| {
            s.state = SourceState::Ended;
            if error.is_some() {
                s.error = error;
            }
        })
    }

    /// Overruns so far (microphones).
    pub fn set_xruns(&self, xruns: u64) {
        self.update(|s| s.xruns = xruns)
    }

    pub fn state(&self) -> SourceState {
        self.lock().state
    }

    pub fn camera(&self) -> CameraHealth {
        let s = self.lock();
        CameraHealth {
            state: s.state,
            source: s.source.clone(),
            error: s.error.clone(),
            reconnects: s.reconnects,
        }
    }

    pub fn microphone(&self) -> MicHealth {
        let s = self.lock();
        MicHealth {
            state: s.state,
            source: s.source.clone(),
            error: s.error.clone(),
            reconnects: s.reconnects,
            xruns: s.xruns,
        }
    }
}

/// What the MQTT session reports (the camera's and, audio on, the microphone's health) and
/// keeps current (whether the broker is up, for the status LED).
#[derive(Debug, Clone, Default)]
pub struct DeviceHealth {
    pub camera: SourceHealth,
    pub microphone: Option<SourceHealth>,
    pub broker: BrokerUp,
    /// What the MQTT session last knew of its outbox and connections (the API's metrics).
    pub publish: PublishStats,
}

/// The MQTT session's counters, kept current by the session (each second and on each
/// connection) for `GET /metrics` and `GET /v1/health`. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct PublishStats(Arc<Mutex<PublishCounts>>);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishCounts {
    /// Summaries waiting for the broker, dropped because the outbox was full, delivered.
    pub outbox: usize,
    pub outbox_dropped: u64,
    pub outbox_on_disk: bool,
    /// Whether new summaries reach the disk, how many wait in memory only, failed writes
    /// (health `outbox_state`, `outbox_memory_only`, `outbox_write_errors`).
    pub outbox_state: emotiond_wire::OutboxState,
    pub outbox_memory_only: usize,
    pub outbox_write_errors: u64,
    pub summaries_sent: u64,
    /// Connections made to the broker (the first one included).
    pub connects: u64,
}

impl PublishStats {
    pub fn update(&self, f: impl FnOnce(&mut PublishCounts)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
    pub fn get(&self) -> PublishCounts {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Whether the MQTT session is connected (for the status LED). Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct BrokerUp(Arc<AtomicBool>);

impl BrokerUp {
    pub fn set(&self, up: bool) {
        self.0.store(up, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_transition_of_a_source() {
        let h = SourceHealth::new();
        assert_eq!(h.state(), SourceState::Starting);
        h.ok("cam0".into());
        assert_eq!(h.camera().reconnects, 0, "a first start is not a reconnect");
        h.unavailable("cam0".into(), "unplugged".into());
        let c = h.camera();
        assert_eq!(
            (c.state, c.error.as_deref()),
            (SourceState::Unavailable, Some("unplugged"))
        );
        h.unavailable("cam0".into(), "still gone".into());
        h.ok("cam0 again".into());
        let c = h.camera();
        assert_eq!((c.state, c.reconnects, c.error), (SourceState::Ok, 1, None));
        h.ok("cam0 again".into());
        assert_eq!(h.camera().reconnects, 1, "ok after ok is no reconnect");
        h.set_xruns(3);
        assert_eq!(h.microphone().xruns, 3);
        h.ended(None);
        assert_eq!(h.state(), SourceState::Ended);
        h.ended(Some("bad config".into()));
        assert_eq!(h.camera().error.as_deref(), Some("bad config"));
        let shared = h.clone();
        shared.ok("x".into());
        assert_eq!(h.state(), SourceState::Ok);
    }

    #[test]
    fn a_change_wakes_the_waiter_and_no_change_does_not() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let h = SourceHealth::new();
        let wait = |h: &SourceHealth| {
            rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_millis(50), h.changed())
                    .await
                    .is_ok()
            })
        };
        h.unavailable("cam".into(), "gone".into());
        assert!(wait(&h), "a change before the wait is not lost");
        h.unavailable("cam".into(), "gone".into());
        assert!(!wait(&h), "the same state again is no change");
        h.clone().ok("cam".into());
        assert!(wait(&h));
    }

    #[test]
    fn broker_flag_is_shared() {
        let b = BrokerUp::default();
        let c = b.clone();
        c.set(true);
        assert!(b.get());
    }
}
