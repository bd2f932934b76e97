//! One stop signal for every thread and task of the daemon: SIGTERM, the end of the input
//! or a fatal error sets it; each stage checks it between units of work and finishes what
//! it holds (the pipeline publishes its last window). Cloning shares the signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Ask everything to stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sleep for `d`, or less when the stop is asked for meanwhile (the capture threads'
    /// retry back-off). Returns whether the stop was asked for.
    pub fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.is_triggered() {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        self.is_triggered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_triggered_shutdown_cuts_the_sleep_short_for_every_clone() {
        let s = Shutdown::new();
        let other = s.clone();
        assert!(!other.is_triggered());
        let t = std::thread::spawn(move || {
            let t0 = Instant::now();
            let stopped = other.sleep(Duration::from_secs(30));
            (stopped, t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        s.trigger();
        let (stopped, took) = t.join().unwrap();
        assert!(stopped);
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(!Shutdown::new().sleep(Duration::from_millis(10)));
    }
}
