//! systemd integration (`Type=notify`): READY=1 once the pipeline runs, WATCHDOG=1 from the
//! pipeline loop itself at half the `WatchdogSec` interval, STOPPING=1 on the way out. Without
//! `NOTIFY_SOCKET` (not under systemd) every call is a no-op.

use std::time::{Duration, Instant};

pub struct Notifier {
    ready: bool,
    interval: Option<Duration>,
    last_ping: Option<Instant>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let interval = sd_notify::watchdog_enabled().map(|d| d / 2);
        if let Some(i) = interval {
            log::info!("systemd watchdog: pinging every {i:?} from the pipeline");
        }
        Notifier {
            ready: false,
            interval,
            last_ping: None,
        }
    }

    /// Called on every pipeline loop turn (at least every 0.2 s).
    pub fn tick(&mut self, status: impl FnOnce() -> String) {
        if !self.ready {
            self.ready = true;
            let s = status();
            if let Err(e) = sd_notify::notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(&s),
            ]) {
                log::warn!("systemd notify: {e}");
            }
        }
        let Some(interval) = self.interval else {
            return;
        };
        if self.last_ping.is_none_or(|t| t.elapsed() >= interval) {
            self.last_ping = Some(Instant::now());
            if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                log::warn!("systemd watchdog: {e}");
            }
        }
    }

    pub fn stopping(&self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    }
}
