//! Watching a newly switched model for a probation period (pure logic; the pipeline feeds
//! it one observation per frame). A model fails probation on repeated engine errors, on
//! inference slower than its manifest's budget, or (detectors) when its detection rate
//! collapses compared with the previous model on the same camera just before the switch.

use std::collections::VecDeque;

#[derive(Debug, Clone, PartialEq)]
pub struct ProbationConfig {
    pub duration_s: f64,
    /// Frames needed before the rate and time rules judge.
    pub min_frames: u64,
    /// Detection rate after / before below this: collapse.
    pub min_detection_ratio: f32,
    /// Engine errors that fail a model at once.
    pub max_errors: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Continue,
    Passed,
    Failed(String),
}

/// Faces per frame over the last frames, as a baseline for the next switch.
#[derive(Debug, Default)]
pub struct RecentRate {
    faces: VecDeque<u16>,
}

impl RecentRate {
    const KEEP: usize = 300;

    pub fn push(&mut self, faces: usize) {
        if self.faces.len() == Self::KEEP {
            self.faces.pop_front();
        }
        self.faces.push_back(faces.min(u16::MAX as usize) as u16);
    }

    /// (faces per frame, frames), None without frames.
    pub fn rate(&self) -> Option<(f32, usize)> {
        let n = self.faces.len();
        (n > 0).then(|| {
            (
                self.faces.iter().map(|&f| f as f32).sum::<f32>() / n as f32,
                n,
            )
        })
    }
}

#[derive(Debug)]
pub struct Probation {
    cfg: ProbationConfig,
    started_t: f64,
    /// The old model's detection rate (detectors only; None: not judged on rate).
    baseline: Option<f32>,
    budget_ms: Option<f32>,
    frames: u64,
    faces: u64,
    errors: u64,
    ms_sum: f64,
}

impl Probation {
    pub fn new(
        cfg: ProbationConfig,
        now_t: f64,
        baseline: Option<(f32, usize)>,
        budget_ms: Option<f32>,
    ) -> Probation {
        // A baseline is only meaningful over enough frames that saw faces.
        let baseline = baseline
            .filter(|&(r, n)| n as u64 >= cfg.min_frames && r >= 0.2)
            .map(|(r, _)| r);
        Probation {
            cfg,
            started_t: now_t,
            baseline,
            budget_ms,
            frames: 0,
            faces: 0,
            errors: 0,
            ms_sum: 0.0,
        }
    }

    /// One frame on the new model: `faces` found (None: the model failed on it) and its
    /// inference time.
    pub fn observe(&mut self, now_t: f64, faces: Option<usize>, ms: f32) -> Verdict {
        match faces {
            None => self.errors += 1,
            Some(f) => {
                self.frames += 1;
                self.faces += f as u64;
                self.ms_sum += ms as f64;
            }
        }
        if self.errors >= self.cfg.max_errors {
            return Verdict::Failed(format!("{} inference errors", self.errors));
        }
        if self.frames >= self.cfg.min_frames {
            let mean_ms = (self.ms_sum / self.frames as f64) as f32;
            if let Some(b) = self.budget_ms.filter(|b| mean_ms > *b) {
                return Verdict::Failed(format!(
                    "inference takes {mean_ms:.1} ms per frame on average, over the manifest's budget of {b} ms"
                ));
            }
            if let Some(base) = self.baseline {
                let rate = self.faces as f32 / self.frames as f32;
                if rate < self.cfg.min_detection_ratio * base {
                    return Verdict::Failed(format!(
                        "detection rate collapsed: {rate:.2} faces per frame over {} frames, the previous model found {base:.2}",
                        self.frames
                    ));
                }
            }
        }
        if now_t - self.started_t >= self.cfg.duration_s {
            return Verdict::Passed;
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ProbationConfig {
        ProbationConfig {
            duration_s: 10.0,
            min_frames: 20,
            min_detection_ratio: 0.2,
            max_errors: 5,
        }
    }

    #[test]
    fn a_detector_that_finds_nothing_fails_once_enough_frames_are_seen() {
        let mut p = Probation::new(cfg(), 0.0, Some((1.0, 100)), None);
        for i in 0..19 {
            assert_eq!(p.observe(i as f64 * 0.1, Some(0), 5.0), Verdict::Continue);
        }
        let Verdict::Failed(why) = p.observe(2.0, Some(0), 5.0) else {
            panic!()
        };
        assert!(why.contains("collapsed"), "{why}");
    }

    #[test]
    fn a_healthy_model_passes_when_the_period_ends() {
        let mut p = Probation::new(cfg(), 0.0, Some((1.0, 100)), Some(50.0));
        let mut t = 0.0;
        while t < 9.9 {
            assert_eq!(p.observe(t, Some(1), 5.0), Verdict::Continue);
            t += 0.1;
        }
        assert_eq!(p.observe(10.0, Some(1), 5.0), Verdict::Passed);
    }

    #[test]
    fn no_baseline_without_faces_before_the_switch() {
        // An empty room before the switch says nothing about the new detector.
        let mut p = Probation::new(cfg(), 0.0, Some((0.0, 100)), None);
        for i in 0..50 {
            assert_eq!(p.observe(i as f64 * 0.1, Some(0), 5.0), Verdict::Continue);
        }
    }

    #[test]
    fn errors_and_slowness_fail() {
        let mut p = Probation::new(cfg(), 0.0, None, None);
        for _ in 0..4 {
            assert_eq!(p.observe(0.0, None, 0.0), Verdict::Continue);
        }
        assert!(matches!(p.observe(0.0, None, 0.0), Verdict::Failed(w) if w.contains("errors")));
        let mut p = Probation::new(cfg(), 0.0, None, Some(10.0));
        let mut last = Verdict::Continue;
        for _ in 0..20 {
            last = p.observe(0.0, Some(1), 30.0);
        }
        assert!(matches!(last, Verdict::Failed(w) if w.contains("budget")));
    }

    #[test]
    fn recent_rate_is_bounded() {
        let mut r = RecentRate::default();
        assert_eq!(r.rate(), None);
        for i in 0..1000 {
            r.push(i % 2);
        }
        assert_eq!(r.rate(), Some((0.5, 300)));
    }
}
