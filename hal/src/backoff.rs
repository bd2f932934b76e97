//! Exponential back-off with a ceiling, as plain state (no clock inside), so reconnect
//! logic is tested without waiting.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
            failures: 0,
        }
    }
    /// Record a failure; returns how long to wait before the next attempt.
    pub fn fail(&mut self) -> Duration {
        let d = self.next;
        self.failures += 1;
        self.next = (self.next * 2).min(self.max);
        d
    }
    /// Record a success: the next failure waits the initial delay again.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.failures = 0;
    }
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
        assert_eq!(b.fail(), Duration::from_millis(250));
        assert_eq!(b.fail(), Duration::from_millis(500));
        assert_eq!(b.fail(), Duration::from_secs(1));
        assert_eq!(b.fail(), Duration::from_secs(1));
        assert_eq!(b.failures(), 4);
        b.reset();
        assert_eq!(b.fail(), Duration::from_millis(250));
    }
}
