//! `GET /metrics`: the daemon's counters in the Prometheus text format. The pipeline
//! records each frame here (atomics and one uncontended lock); the rest (queue drops,
//! camera and broker state, the MQTT outbox, the models' watchdog counters) is read from
//! where it is already kept when the page is asked for.

use crate::analyzer::FrameResult;
use crate::summary::ModelInfo;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the inference time buckets, in milliseconds.
pub const BUCKETS_MS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// One histogram: counts per bucket (not cumulative), the sum and the count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub counts: [u64; BUCKETS_MS.len() + 1],
    pub sum_ms: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, ms: f64) {
        let i = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        self.counts[i] += 1;
        self.sum_ms += ms;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cum += c;
            let le = BUCKETS_MS
                .get(i)
                .map(|b| format!("{}", b / 1000.0))
                .unwrap_or_else(|| "+Inf".into());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cum}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_ms / 1000.0);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// Per model (its `name@version` and engine): inference times and watchdog counters.
#[derive(Debug, Clone)]
struct ModelSeries {
    info: ModelInfo,
    times: Histogram,
}

/// Model updates as the pipeline sees them (`emotiond_update_state`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UpdateState {
    /// Updates are off (no state_dir, no broker or updates.enabled = false).
    Off = 0,
    /// On, no switched model under watch.
    Idle = 1,
    /// A model switched in by an update is on probation (rolled back if it misbehaves).
    Probation = 2,
}

#[derive(Default)]
pub struct Metrics {
    update_state: AtomicU64,
    frames: AtomicU64,
    faces: AtomicU64,
    faces_total: AtomicU64,
    /// (stage, model id, engine label) → series; the current pair is the last two.
    models: Mutex<Vec<(&'static str, ModelSeries)>>,
    pub analyze_ok: AtomicU64,
    pub analyze_rejected: AtomicU64,
    pub analyze_busy: AtomicU64,
    pub live_dropped: AtomicU64,
    pub feedback_sent: AtomicU64,
}

impl Metrics {
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// A frame analysed: counts and inference times under the current models.
    pub fn frame(&self, r: &FrameResult) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.faces.store(r.faces.len() as u64, Ordering::Relaxed);
        self.faces_total
            .fetch_add(r.faces.len() as u64, Ordering::Relaxed);
        let mut m = self.models.lock().unwrap_or_else(|p| p.into_inner());
        for (stage, ms) in [("detector", r.detect_ms), ("expression", r.classify_ms)] {
            if let Some((_, s)) = m.iter_mut().rev().find(|(st, _)| *st == stage) {
                s.times.observe(ms as f64);
            }
        }
    }

    pub fn set_update_state(&self, s: UpdateState) {
        self.update_state.store(s as u64, Ordering::Relaxed);
    }

    /// The models in use now (their engine, fallback, watchdog counters): a model or
    /// engine not seen before starts its own series.
    pub fn models(&self, detector: ModelInfo, expression: ModelInfo) {
        let mut m = self.models.lock().unwrap_or_else(|p| p.into_inner());
        for (stage, info) in [("detector", detector), ("expression", expression)] {
            let key = |s: &ModelSeries| (s.info.id.clone(), crate::cli::engine_label(&s.info));
            let want = (info.id.clone(), crate::cli::engine_label(&info));
            match m.iter().position(|(st, s)| *st == stage && key(s) == want) {
                Some(i) => {
                    let (st, mut s) = m.remove(i);
                    s.info = info;
                    m.push((st, s));
                }
                None => m.push((
                    stage,
                    ModelSeries {
                        info,
                        times: Histogram::default(),
                    },
                )),
            }
        }
    }

    /// The page: these counters and `extra` (gauges and counters read elsewhere: name,
    /// type, help, value).
    pub fn render(&self, extra: &[(&str, &str, &str, f64)]) -> String {
        let mut out = String::new();
        let mut one = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        one(
            "emotiond_frames_processed_total",
            "counter",
            "Frames analysed by the pipeline.",
            load(&self.frames),
        );
        one(
            "emotiond_faces",
            "gauge",
            "Faces in the last frame analysed.",
            load(&self.faces),
        );
        one(
            "emotiond_faces_total",
            "counter",
            "Faces detected, summed over frames.",
            load(&self.faces_total),
        );
        for (name, help, a) in [
            (
                "emotiond_api_analyze_total",
                "Images analysed over the API.",
                &self.analyze_ok,
            ),
            (
                "emotiond_api_analyze_rejected_total",
                "Analyze requests refused as bad input (4xx).",
                &self.analyze_rejected,
            ),
            (
                "emotiond_api_analyze_busy_total",
                "Analyze requests refused with 503 (busy).",
                &self.analyze_busy,
            ),
            (
                "emotiond_api_live_dropped_total",
                "Live clients dropped for not keeping up.",
                &self.live_dropped,
            ),
            (
                "emotiond_api_feedback_total",
                "Feedback events published from the API.",
                &self.feedback_sent,
            ),
        ] {
            one(name, "counter", help, load(a));
        }
        one(
            "emotiond_update_state",
            "gauge",
            "Model updates: 0 off, 1 on and idle, 2 a new model on probation.",
            load(&self.update_state),
        );
        for (name, kind, help, v) in extra {
            one(name, kind, help, *v);
        }
        let m = self.models.lock().unwrap_or_else(|p| p.into_inner());
        let name = "emotiond_inference_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Inference time per frame, per model and engine.\n# TYPE {name} histogram"
        );
        for (stage, s) in m.iter() {
            s.times.write(&mut out, name, &labels(stage, &s.info));
        }
        for (metric, help, get) in [
            (
                "emotiond_model_fallback",
                "1 when the model runs on a fallback engine.",
                (|i: &ModelInfo| i.fallback.is_some() as u64) as fn(&ModelInfo) -> u64,
            ),
            (
                "emotiond_model_slow_total",
                "Slow inferences (watchdog).",
                |i: &ModelInfo| i.slow,
            ),
            (
                "emotiond_model_stalls_total",
                "Stalled inferences (watchdog).",
                |i: &ModelInfo| i.stalls,
            ),
            (
                "emotiond_model_rebuilds_total",
                "Engines rebuilt after a stall.",
                |i: &ModelInfo| i.rebuilds,
            ),
        ] {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} gauge");
            for (stage, s) in m.iter() {
                let _ = writeln!(
                    out,
                    "{metric}{{{}}} {}",
                    labels(stage, &s.info),
                    get(&s.info)
                );
            }
        }
        out
    }
}

fn labels(stage: &str, i: &ModelInfo) -> String {
    format!(
        "stage=\"{stage}\",model=\"{}\",engine=\"{}\"",
        escape(&i.id),
        escape(&crate::cli::engine_label(i))
    )
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, engine: &str) -> ModelInfo {
        ModelInfo {
            id: id.into(),
            engine: engine.into(),
            accelerator: None,
            fallback: None,
            slow: 0,
            stalls: 2,
            rebuilds: 0,
        }
    }

    #[test]
    fn buckets_are_cumulative_with_the_sum_and_count() {
        let mut h = Histogram::default();
        for ms in [0.5, 3.0, 3.0, 10_000.0] {
            h.observe(ms);
        }
        let mut out = String::new();
        h.write(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"5\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 4\n"), "{out}");
    }

    #[test]
    fn each_model_and_engine_has_its_series() {
        let m = Metrics::default();
        m.models(info("det@1", "tract"), info("fer@1", "tract"));
        m.frame(&FrameResult {
            faces: vec![],
            detect_ms: 4.0,
            classify_ms: 1.0,
        });
        // the engine fell back: a new series; the old one stays
        m.models(info("det@1", "tract"), info("fer@1", "onnxruntime"));
        m.frame(&FrameResult {
            faces: vec![],
            detect_ms: 4.0,
            classify_ms: 1.0,
        });
        m.set_update_state(UpdateState::Probation);
        let page = m.render(&[("emotiond_x", "gauge", "X.", 3.0)]);
        for want in [
            "emotiond_frames_processed_total 2\n",
            "emotiond_inference_seconds_count{stage=\"detector\",model=\"det@1\",engine=\"tract\"} 2\n",
            "emotiond_inference_seconds_count{stage=\"expression\",model=\"fer@1\",engine=\"tract\"} 1\n",
            "emotiond_inference_seconds_count{stage=\"expression\",model=\"fer@1\",engine=\"onnxruntime\"} 1\n",
            "emotiond_model_stalls_total{stage=\"detector\",model=\"det@1\",engine=\"tract\"} 2\n",
            "# TYPE emotiond_x gauge\nemotiond_x 3\n",
            "emotiond_update_state 2\n",
        ] {
            assert!(page.contains(want), "{want} in\n{page}");
        }
    }
}
