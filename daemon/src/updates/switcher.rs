//! The pipeline's side of updates: between two frames, take a pending swap and start its
//! probation; after each frame, feed probation and swap the old model back when it fails.

use super::{Model, Swap, SwapEvent};
use emotiond_models::signed::Slot;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

/// Pipeline side: applies swaps between frames and runs probation.
pub struct Switcher {
    pub swaps: Receiver<Swap>,
    pub events: Sender<SwapEvent>,
    pub probation: crate::probation::ProbationConfig,
    watching: Option<Watch>,
    recent: crate::probation::RecentRate,
}

struct Watch {
    slot: Slot,
    id: String,
    old: Model,
    old_id: String,
    probation: crate::probation::Probation,
}

impl Switcher {
    pub fn new(
        swaps: Receiver<Swap>,
        events: Sender<SwapEvent>,
        probation: crate::probation::ProbationConfig,
    ) -> Switcher {
        Switcher {
            swaps,
            events,
            probation,
            watching: None,
            recent: Default::default(),
        }
    }

    /// Whether a model switched in by an update is on probation now.
    pub fn on_probation(&self) -> bool {
        self.watching.is_some()
    }

    /// Between frames: take a pending swap.
    pub fn poll(&mut self, analyzer: &mut crate::pipeline::workers::Pool, now_t: f64) {
        let Ok(s) = self.swaps.try_recv() else { return };
        let t0 = Instant::now();
        // A swap during probation ends it: the model under watch is replaced.
        self.watching = None;
        let (old, old_id) = match s.model {
            Model::Detector(d) => {
                let (o, id) = analyzer.swap_detector(d, s.id.clone());
                (Model::Detector(o), id)
            }
            Model::Classifier(c) => {
                let (o, id) = analyzer.swap_classifier(c, s.id.clone());
                (Model::Classifier(o), id)
            }
        };
        log::info!(
            "switched {} from {old_id} to {} in {:.3} ms",
            s.slot.as_str(),
            s.id,
            t0.elapsed().as_secs_f64() * 1e3
        );
        let _ = self.events.send(SwapEvent::Swapped {
            slot: s.slot,
            id: s.id.clone(),
        });
        if s.probation {
            let baseline = (s.slot == Slot::Detector)
                .then(|| self.recent.rate())
                .flatten();
            self.watching = Some(Watch {
                slot: s.slot,
                id: s.id,
                old,
                old_id,
                probation: crate::probation::Probation::new(
                    self.probation.clone(),
                    now_t,
                    baseline,
                    s.budget_ms,
                ),
            });
        }
    }

    /// After a frame: `faces` found (None: inference failed), and the detector's and the
    /// classifier's time on it (the budget in a manifest is per inference).
    pub fn observe(
        &mut self,
        analyzer: &mut crate::pipeline::workers::Pool,
        now_t: f64,
        faces: Option<usize>,
        detect_ms: f32,
        classify_ms: f32,
    ) {
        if let Some(f) = faces {
            self.recent.push(f);
        }
        let Some(w) = &mut self.watching else { return };
        let ms = match w.slot {
            Slot::Detector => detect_ms,
            Slot::Expression => classify_ms / faces.unwrap_or(1).max(1) as f32,
        };
        let verdict = w.probation.observe(now_t, faces, ms);
        if verdict == crate::probation::Verdict::Continue {
            return;
        }
        let Some(w) = self.watching.take() else {
            return;
        };
        match verdict {
            crate::probation::Verdict::Continue => {}
            crate::probation::Verdict::Passed => {
                let _ = self.events.send(SwapEvent::Passed {
                    slot: w.slot,
                    id: w.id,
                });
            }
            crate::probation::Verdict::Failed(reason) => {
                match w.old {
                    Model::Detector(d) => {
                        analyzer.swap_detector(d, w.old_id.clone());
                    }
                    Model::Classifier(c) => {
                        analyzer.swap_classifier(c, w.old_id.clone());
                    }
                }
                log::warn!(
                    "model {} failed probation ({reason}); back to {}",
                    w.id,
                    w.old_id
                );
                self.recent = Default::default();
                let _ = self.events.send(SwapEvent::RolledBack {
                    slot: w.slot,
                    id: w.id,
                    reason,
                });
            }
        }
    }
}
