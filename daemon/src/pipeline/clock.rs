//! Wall-clock stamps for windows timed by the monotonic clock. Pure: the caller passes both
//! clocks' readings in.
//!
//! Windows are cut by the monotonic clock, so their lengths and `seq` never depend on the
//! wall clock. Their stamps (`window_start_ms`, `window_end_ms`) map monotonic time onto the
//! wall clock with an offset that is kept while the two clocks agree (consecutive windows then
//! meet exactly) and taken again when the wall clock steps: a board without a real-time clock
//! (a Raspberry Pi) boots with a stale time that NTP later corrects by minutes or hours, and
//! an operator may set the clock by hand. After a step the summaries carry the corrected time
//! at once; a window that straddles the step is stamped wholly on the new time, so its
//! `window_end_ms - window_start_ms` stays its true length.

/// A change of the wall clock against the monotonic clock larger than this is a step (NTP
/// slews small errors at most 0.5 ms/s; this is 2 s of difference).
pub const STEP_MS: i64 = 2000;

#[derive(Debug, Clone, PartialEq)]
pub struct WallMap {
    /// wall ms - monotonic ms
    offset_ms: i64,
    /// Steps seen so far.
    pub steps: u64,
}

impl WallMap {
    /// At monotonic time `t` (seconds) the wall clock reads `wall_ms`.
    pub fn new(t: f64, wall_ms: u64) -> WallMap {
        WallMap {
            offset_ms: wall_ms as i64 - (t * 1e3).round() as i64,
            steps: 0,
        }
    }

    /// A new reading: at monotonic `t` the wall clock reads `wall_ms`. When it differs from
    /// the mapping by more than [`STEP_MS`], the mapping follows it and the step (ms, negative
    /// backwards) is returned.
    pub fn observe(&mut self, t: f64, wall_ms: u64) -> Option<i64> {
        let offset = wall_ms as i64 - (t * 1e3).round() as i64;
        let step = offset - self.offset_ms;
        if step.abs() > STEP_MS {
            self.offset_ms = offset;
            self.steps += 1;
            Some(step)
        } else {
            None
        }
    }

    /// The wall-clock time (Unix ms) of monotonic time `t`.
    pub fn wall_ms(&self, t: f64) -> u64 {
        ((t * 1e3).round() as i64 + self.offset_ms).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn without_a_step_the_mapping_is_kept_and_windows_meet() {
        let mut m = WallMap::new(0.0, T0);
        // a few ms of drift or slew between the readings is not a step
        assert_eq!(m.observe(10.0, T0 + 10_003), None);
        assert_eq!(m.wall_ms(10.0), T0 + 10_000);
        assert_eq!(m.observe(20.0, T0 + 19_998), None);
        assert_eq!(m.wall_ms(20.0), T0 + 20_000);
        assert_eq!(m.steps, 0);
    }

    #[test]
    fn a_step_forward_or_back_is_followed_and_reported() {
        let mut m = WallMap::new(0.0, T0);
        // NTP corrects a stale boot clock by an hour
        assert_eq!(m.observe(10.0, T0 + 10_000 + 3_600_000), Some(3_600_000));
        assert_eq!(m.wall_ms(10.0), T0 + 3_610_000);
        // a window begun before the step is stamped on the new time: its length stays true
        assert_eq!(m.wall_ms(10.0) - m.wall_ms(0.0), 10_000);
        // and back by an hour
        assert_eq!(m.observe(20.0, T0 + 20_000), Some(-3_600_000));
        assert_eq!(m.wall_ms(20.0), T0 + 20_000);
        assert_eq!(m.steps, 2);
        // just over the threshold is a step, at it is not
        let mut m = WallMap::new(0.0, T0);
        assert_eq!(m.observe(1.0, T0 + 1_000 + STEP_MS as u64), None);
        assert_eq!(
            m.observe(1.0, T0 + 1_000 + STEP_MS as u64 + 1),
            Some(STEP_MS + 1)
        );
    }

    #[test]
    fn a_clock_before_the_epoch_maps_to_zero_not_a_wrap() {
        let m = WallMap::new(100.0, 5_000);
        assert_eq!(m.wall_ms(0.0), 0);
        assert_eq!(m.wall_ms(100.0), 5_000);
    }
}
