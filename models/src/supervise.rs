//! The stall watchdog. A [`Supervised`] engine runs the real engine on a worker thread and
//! waits for each inference with a deadline:
//! - an inference slower than `slow_factor` × the recent average is counted and logged;
//! - one that does not finish within `stall_ms` is a stall: the frame gets an error, the
//!   stuck worker is abandoned (a thread blocked in a C runtime cannot be killed; it exits
//!   if the call ever returns) and the engine is rebuilt, at most `max_rebuilds_per_min`
//!   times a minute, after which the next engine down the fallback chain is used.
//!
//! It is itself an [`Engine`], so the pipeline does not know it is there.
#![forbid(unsafe_code)]

use crate::engine::{Engine, EngineError, EngineKind, Tensor};
use crate::error::LoadError;
use crate::runtime::Built;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// `[models.watchdog]` in config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogConfig {
    /// An inference longer than this multiple of the recent average is reported as slow.
    pub slow_factor: f32,
    /// An inference still running after this long is a stall: the engine is torn down and
    /// rebuilt.
    pub stall_ms: u64,
    /// Rebuilds allowed per minute before falling back to the next engine in the chain.
    pub max_rebuilds_per_min: usize,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            slow_factor: 8.0,
            stall_ms: 2000,
            max_rebuilds_per_min: 3,
        }
    }
}

/// What the watchdog has seen, for summaries and health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchdogCounts {
    /// Inferences slower than `slow_factor` × the average.
    pub slow: u64,
    /// Inferences abandoned after `stall_ms`.
    pub stalls: u64,
    /// Engines rebuilt after a stall.
    pub rebuilds: u64,
    /// Recent average inference time, ms.
    pub mean_ms: f32,
}

/// Builds the engine for a chain level (walking further down the chain on failure).
pub type Factory = Box<dyn FnMut(usize) -> Result<Built, LoadError> + Send>;

type Job = (Vec<f32>, Vec<Tensor>);

type Done = (Vec<f32>, Vec<Tensor>, Result<(), EngineError>);

struct Worker {
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
}

impl Worker {
    fn spawn(model: &str, mut engine: Box<dyn Engine>) -> Result<Worker, LoadError> {
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (done_tx, done) = sync_channel::<Done>(1);
        std::thread::Builder::new()
            .name(format!("infer-{model}"))
            .spawn(move || {
                while let Ok((input, mut outputs)) = job_rx.recv() {
                    let r = engine.run(&input, &mut outputs);
                    if done_tx.send((input, outputs, r)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| LoadError::Thread(e.to_string()))?;
        Ok(Worker { jobs, done })
    }
}

pub struct Supervised {
    model: String,
    cfg: WatchdogConfig,
    factory: Factory,
    chain_len: usize,
    worker: Option<Worker>,
    level: usize,
    kind: EngineKind,
    accelerator: Option<String>,
    fallback: Option<String>,
    input_shape: Vec<usize>,
    counts: WatchdogCounts,
    runs: u64,
    rebuilt_at: VecDeque<Instant>,
    last_build_try: Option<Instant>,
    spare_input: Vec<f32>,
}

const WARMUP_RUNS: u64 = 20;
/// Below this an inference is never called slow: sub-millisecond mock or tiny-model runs
/// jitter by more than `slow_factor` whenever the scheduler is busy, and nobody acts on it.
const SLOW_FLOOR_MS: f32 = 2.0;

/// The slow-inference rule, pure (the time is passed in): after `runs` inferences (this
/// one included) with a running mean of `mean` ms, is an inference of `ms` slow, and what
/// is the new mean (an exponential average, 1/20 weight on the newest)?
fn timing(runs: u64, mean: f32, ms: f32, slow_factor: f32) -> (bool, f32) {
    let slow = runs > WARMUP_RUNS && ms >= SLOW_FLOOR_MS && ms > slow_factor * mean;
    let next = if runs <= 1 {
        ms
    } else {
        mean + 0.05 * (ms - mean)
    };
    (slow, next)
}

impl Supervised {
    /// Build the first engine (from chain level 0) and start its worker.
    pub fn new(
        model: &str,
        chain_len: usize,
        cfg: WatchdogConfig,
        mut factory: Factory,
    ) -> Result<Supervised, LoadError> {
        let built = factory(0)?;
        let mut s = Supervised {
            model: model.to_string(),
            cfg,
            factory,
            chain_len,
            worker: None,
            level: 0,
            kind: built.engine.kind(),
            accelerator: None,
            fallback: None,
            input_shape: built.engine.input_shape().to_vec(),
            counts: WatchdogCounts::default(),
            runs: 0,
            rebuilt_at: VecDeque::new(),
            last_build_try: None,
            spare_input: Vec::new(),
        };
        s.install(built)?;
        Ok(s)
    }

    fn install(&mut self, built: Built) -> Result<(), LoadError> {
        self.level = built.level;
        self.kind = built.engine.kind();
        self.accelerator = built.engine.accelerator().map(str::to_string);
        if built.engine.input_shape() != self.input_shape.as_slice() {
            return Err(LoadError::ShapeChanged {
                model: self.model.clone(),
                engine: self.kind,
                got: built.engine.input_shape().to_vec(),
                want: self.input_shape.clone(),
            });
        }
        let mut reasons = self.fallback.take().into_iter().collect::<Vec<_>>();
        reasons.extend(built.skipped);
        self.fallback = (!reasons.is_empty()).then(|| reasons.join("; "));
        self.worker = Some(Worker::spawn(&self.model, built.engine)?);
        self.runs = 0;
        self.counts.mean_ms = 0.0;
        Ok(())
    }

    /// After a stall: rebuild at the same level, or one further down once the rebuild rate
    /// is exceeded.
    fn rebuild(&mut self, why: &str) {
        let now = Instant::now();
        while self
            .rebuilt_at
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.rebuilt_at.pop_front();
        }
        let mut level = self.level;
        if self.rebuilt_at.len() >= self.cfg.max_rebuilds_per_min {
            if level + 1 < self.chain_len {
                level += 1;
                log::error!(
                    "model {}: {} rebuilds within a minute; falling back down the chain",
                    self.model,
                    self.rebuilt_at.len()
                );
                let note = format!("{}: {why}, rebuilt too often", self.kind);
                self.fallback = Some(match self.fallback.take() {
                    Some(f) => format!("{f}; {note}"),
                    None => note,
                });
            }
            self.rebuilt_at.clear();
        }
        self.rebuilt_at.push_back(now);
        self.counts.rebuilds += 1;
        self.last_build_try = Some(now);
        match (self.factory)(level) {
            Ok(built) => {
                if let Err(e) = self.install(built) {
                    log::error!("model {}: {e}", self.model);
                }
            }
            Err(e) => log::error!("model {}: rebuilding the engine failed: {e}", self.model),
        }
    }

    pub fn counts(&self) -> WatchdogCounts {
        self.counts
    }
}

impl Engine for Supervised {
    fn kind(&self) -> EngineKind {
        self.kind
    }

    fn accelerator(&self) -> Option<&str> {
        self.accelerator.as_deref()
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    fn watchdog(&self) -> Option<WatchdogCounts> {
        Some(self.counts)
    }

    fn run(&mut self, input: &[f32], outputs: &mut Vec<Tensor>) -> Result<(), EngineError> {
        if self.worker.is_none() {
            // The last rebuild failed; retry at most every 10 s.
            if self
                .last_build_try
                .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
            {
                self.rebuild("no engine");
            }
        }
        let Some(worker) = &self.worker else {
            return Err(EngineError::Run {
                engine: "watchdog",
                model: self.model.clone(),
                reason: "no engine is running (rebuild failed; retrying)".into(),
            });
        };
        // The input is copied into a reused buffer; the caller's output buffers travel to
        // the worker and back, so nothing is allocated per inference.
        let mut inp = std::mem::take(&mut self.spare_input);
        inp.clear();
        inp.extend_from_slice(input);
        let outs = std::mem::take(outputs);
        let t0 = Instant::now();
        if worker.jobs.send((inp, outs)).is_err() {
            self.worker = None;
            self.rebuild("inference thread ended");
            return Err(EngineError::Run {
                engine: "watchdog",
                model: self.model.clone(),
                reason: "the inference thread ended".into(),
            });
        }
        match worker
            .done
            .recv_timeout(Duration::from_millis(self.cfg.stall_ms.max(1)))
        {
            Ok((inp, outs, result)) => {
                let ms = t0.elapsed().as_secs_f32() * 1e3;
                *outputs = outs;
                self.spare_input = inp;
                self.runs += 1;
                let mean = self.counts.mean_ms;
                let (slow, next_mean) = timing(self.runs, mean, ms, self.cfg.slow_factor);
                if slow {
                    self.counts.slow += 1;
                    if self.counts.slow.is_power_of_two() {
                        log::warn!(
                            "model {} on {}: inference took {ms:.1} ms, {:.0}× the recent average \
                             ({mean:.2} ms); {} slow so far",
                            self.model,
                            self.kind,
                            ms / mean.max(1e-3),
                            self.counts.slow
                        );
                    }
                }
                self.counts.mean_ms = next_mean;
                result
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                self.counts.stalls += 1;
                let why = format!("no result after {} ms", self.cfg.stall_ms);
                log::error!(
                    "model {} on {}: inference stalled ({why}); tearing the engine down",
                    self.model,
                    self.kind
                );
                // Dropping the channels lets the stuck thread exit if the call returns.
                self.worker = None;
                let kind = self.kind;
                self.rebuild(&why);
                Err(EngineError::Stalled {
                    engine: kind.as_str(),
                    model: self.model.clone(),
                    reason: why,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A MOCK engine (the stalls a real runtime has cannot be produced on demand): it
    /// sleeps `delay_ms` (read per run) before answering.
    struct MockEngine {
        label: &'static str,
        delay_ms: Arc<AtomicU64>,
    }

    impl Engine for MockEngine {
        fn kind(&self) -> EngineKind {
            EngineKind::Tract
        }
        fn accelerator(&self) -> Option<&str> {
            Some(self.label)
        }
        fn input_shape(&self) -> &[usize] {
            &[1, 2]
        }
        fn run(&mut self, input: &[f32], outputs: &mut Vec<Tensor>) -> Result<(), EngineError> {
            std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
            outputs.resize_with(1, Tensor::default);
            outputs[0].shape = vec![1, 2];
            outputs[0].data = input.iter().map(|x| x * 2.0).collect();
            Ok(())
        }
    }

    fn mock_factory(stuck_ms: u64, builds: Arc<AtomicU64>) -> Factory {
        Box::new(move |level| {
            builds.fetch_add(1, Ordering::SeqCst);
            let (label, ms) = if level == 0 {
                ("mock-stuck", stuck_ms)
            } else {
                ("mock-ok", 0)
            };
            Ok(Built {
                engine: Box::new(MockEngine {
                    label,
                    delay_ms: Arc::new(AtomicU64::new(ms)),
                }),
                level,
                skipped: vec![],
            })
        })
    }

    #[test]
    fn mock_stalled_engine_is_rebuilt_then_replaced_by_the_next_in_chain() {
        let builds = Arc::new(AtomicU64::new(0));
        let cfg = WatchdogConfig {
            slow_factor: 8.0,
            stall_ms: 300,
            max_rebuilds_per_min: 2,
        };
        let mut s = Supervised::new("m", 2, cfg, mock_factory(3000, builds.clone())).unwrap();
        assert_eq!(s.accelerator(), Some("mock-stuck"));
        let mut out = Vec::new();
        for i in 1..=3 {
            let e = s.run(&[1.0, 2.0], &mut out).unwrap_err();
            assert!(matches!(e, EngineError::Stalled { .. }), "{e}");
            assert_eq!(s.counts().stalls, i);
        }
        // Two rebuilds at level 0 were allowed; the third went down the chain.
        assert_eq!(builds.load(Ordering::SeqCst), 4);
        assert_eq!(s.counts().rebuilds, 3);
        assert_eq!(s.accelerator(), Some("mock-ok"));
        assert!(
            s.fallback().unwrap().contains("rebuilt too often"),
            "{:?}",
            s.fallback()
        );
        s.run(&[1.0, 2.0], &mut out).unwrap();
        assert_eq!(out[0].data, [2.0, 4.0]);
    }

    #[test]
    fn mock_slow_inference_is_counted_not_torn_down() {
        let delay = Arc::new(AtomicU64::new(0));
        let d = delay.clone();
        let factory: Factory = Box::new(move |level| {
            Ok(Built {
                engine: Box::new(MockEngine {
                    label: "mock",
                    delay_ms: d.clone(),
                }),
                level,
                skipped: vec![],
            })
        });
        let mut s = Supervised::new("m", 1, WatchdogConfig::default(), factory).unwrap();
        let mut out = Vec::new();
        for _ in 0..30 {
            s.run(&[1.0, 2.0], &mut out).unwrap();
        }
        // How many of those were slow depends on the machine's load (a busy CI machine can
        // delay the hand-over to the worker thread); only the change is asserted.
        let before = s.counts().slow;
        delay.store(200, Ordering::SeqCst);
        s.run(&[3.0, 4.0], &mut out).unwrap();
        assert_eq!(out[0].data, [6.0, 8.0]);
        let c = s.counts();
        assert_eq!((c.slow - before, c.stalls, c.rebuilds), (1, 0, 0));
    }

    #[test]
    fn the_slow_rule_needs_warm_up_the_factor_and_the_floor() {
        // The first run sets the mean.
        assert_eq!(timing(1, 0.0, 10.0, 8.0), (false, 10.0));
        // During warm-up nothing is slow, however long.
        assert!(!timing(WARMUP_RUNS, 10.0, 1000.0, 8.0).0);
        // After it: over factor × mean (and the floor) is slow, at or under is not.
        assert!(timing(WARMUP_RUNS + 1, 10.0, 80.1, 8.0).0);
        assert!(!timing(WARMUP_RUNS + 1, 10.0, 80.0, 8.0).0);
        // 100× a 0.01 ms mean is still under the 2 ms floor: scheduler jitter, not a slow model.
        assert!(!timing(WARMUP_RUNS + 1, 0.01, 1.0, 8.0).0);
        assert!(timing(WARMUP_RUNS + 1, 0.01, 2.0, 8.0).0);
        // The mean moves 1/20 of the way to the newest run.
        let (_, m) = timing(WARMUP_RUNS + 1, 10.0, 30.0, 8.0);
        assert!((m - 11.0).abs() < 1e-6, "{m}");
    }
}
