//! The pipeline's side of the API: what the inference thread hands over after each frame
//! (metrics, the live event, a preview image) and the feedback requests it answers. Nothing
//! here waits: the live event goes to a broadcast channel that drops for slow clients, the
//! counters are atomics, the preview is kept only while someone looks at it.

use super::metrics::Metrics;
use crate::analyzer::FrameResult;
use crate::summary::{PerEmotion, Summary, valence_arousal};
use crate::track::Observation;
use emotiond_models::{BBox, EMOTIONS};
use image::RgbImage;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

/// Live events the broadcast keeps for a client's forwarder (which never falls that far
/// behind unless the runtime is starved).
pub const LIVE_BUFFER: usize = 16;
/// Live events waiting to be written to one client; a client with a full queue is dropped.
pub const CLIENT_QUEUE: usize = 8;

/// What the API shares with the pipeline (one, behind an `Arc`).
pub struct Hub {
    pub live: broadcast::Sender<Arc<str>>,
    pub metrics: Metrics,
    /// `api.preview`: the latest frame and its boxes, while someone asks for it.
    pub preview: Option<Mutex<Preview>>,
}

#[derive(Default)]
pub struct Preview {
    /// Frames are kept until then (set by each request of the preview route).
    pub wanted_until: Option<Instant>,
    pub latest: Option<(Arc<RgbImage>, Instant)>,
}

impl Hub {
    pub fn new(preview: bool) -> Hub {
        Hub {
            live: broadcast::channel(LIVE_BUFFER).0,
            metrics: Metrics::default(),
            preview: preview.then(|| Mutex::new(Preview::default())),
        }
    }
}

/// A feedback request of `POST /v1/feedback`, answered by the pipeline with the topic the
/// event went to and the window's number, or why it was not published.
pub struct FeedbackRequest {
    pub label: Option<String>,
    pub reply: oneshot::Sender<Result<(String, u64), String>>,
}

/// Owned by the pipeline thread.
pub struct Tap {
    pub hub: Arc<Hub>,
    pub feedback: Receiver<FeedbackRequest>,
    /// When each current track was first seen (pipeline seconds), for its age.
    first_seen: HashMap<u64, f64>,
    models_at: Option<Instant>,
    /// `api.live_max_fps` (0: no limit).
    live_max_fps: f32,
    /// When the next live event is due (pipeline seconds; see [`live_due`]).
    live_next: Option<f64>,
}

#[derive(Serialize)]
struct LiveFace {
    track_id: u64,
    #[serde(rename = "box")]
    bbox: BBox,
    age_s: f64,
    emotions: PerEmotion<f32>,
    dominant: &'static str,
    valence: Option<f32>,
    arousal: Option<f32>,
}

#[derive(Serialize)]
struct LiveEvent<'a> {
    ts_ms: u64,
    frame: u64,
    width: u32,
    height: u32,
    faces: Vec<LiveFace>,
    detect_ms: f32,
    classify_ms: f32,
    /// The window in progress as its summary would be now (aggregates and voice block).
    window: &'a Summary,
}

/// One processed frame, as the pipeline saw it.
pub struct FrameSeen<'a> {
    pub t: f64,
    pub wall_ms: u64,
    pub seq: u64,
    pub image: &'a RgbImage,
    pub result: &'a FrameResult,
    pub faces: &'a [(BBox, [f32; 7])],
    pub obs: &'a [Observation],
}

impl Tap {
    pub fn new(hub: Arc<Hub>, feedback: Receiver<FeedbackRequest>, live_max_fps: f32) -> Tap {
        Tap {
            hub,
            feedback,
            first_seen: HashMap::new(),
            models_at: None,
            live_max_fps,
            live_next: None,
        }
    }

    /// Whether the frame at `t` (pipeline seconds) gets a live event: a client listens and
    /// the event is due under `api.live_max_fps`. The pipeline then builds the window's
    /// snapshot and hands it to [`Tap::frame`].
    pub fn live_wanted(&self, t: f64) -> bool {
        self.hub.live.receiver_count() > 0 && live_due(self.live_next, t, self.live_max_fps)
    }

    /// Whether the model counters are due (once a second).
    pub fn models_due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .models_at
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return false;
        }
        self.models_at = Some(now);
        true
    }

    /// After a frame was analysed: metrics always; the live event when `window` (the
    /// snapshot, built only when [`Tap::live_wanted`]); the preview image when asked for.
    pub fn frame(&mut self, f: FrameSeen<'_>, window: Option<Summary>) {
        let m = &self.hub.metrics;
        m.frame(f.result);
        let t = f.t;
        self.first_seen
            .retain(|id, _| f.obs.iter().any(|o| o.track_id == *id));
        for o in f.obs {
            self.first_seen.entry(o.track_id).or_insert(t);
        }
        if let Some(p) = &self.hub.preview {
            let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let fresh = p
                .latest
                .as_ref()
                .is_some_and(|(_, at)| now.duration_since(*at) < Duration::from_millis(100));
            if p.wanted_until.is_some_and(|u| now < u) && !fresh {
                p.latest = Some((Arc::new(f.image.clone()), now));
            } else if p.wanted_until.is_some_and(|u| now >= u) {
                p.latest = None;
            }
        }
        let Some(window) = window else { return };
        self.live_next = Some(live_next(self.live_next, t, self.live_max_fps));
        let faces = f
            .faces
            .iter()
            .zip(f.obs)
            .map(|((bbox, _), o)| {
                let va = valence_arousal(&o.probs);
                LiveFace {
                    track_id: o.track_id,
                    bbox: *bbox,
                    age_s: (t - self.first_seen.get(&o.track_id).copied().unwrap_or(t)).max(0.0),
                    emotions: PerEmotion::from_array(o.probs),
                    dominant: dominant(&o.probs),
                    valence: va.map(|v| v.0),
                    arousal: va.map(|v| v.1),
                }
            })
            .collect();
        let line = crate::cli::json_line(&LiveEvent {
            ts_ms: f.wall_ms,
            frame: f.seq,
            width: f.image.width(),
            height: f.image.height(),
            faces,
            detect_ms: f.result.detect_ms,
            classify_ms: f.result.classify_ms,
            window: &window,
        });
        // no receiver left: nothing to do; a full buffer overwrites the oldest event
        let _ = self.hub.live.send(Arc::from(line));
    }
}

/// Whether a live event is due at `t` (seconds) when the next was due at `next`, for at most
/// `max_fps` events a second on average (0: every frame). A frame up to a quarter of the
/// interval early still counts (the generic cell rate algorithm's tolerance), so a camera
/// whose rate equals the limit, with the usual jitter, keeps every frame.
pub fn live_due(next: Option<f64>, t: f64, max_fps: f32) -> bool {
    match next {
        Some(next) if max_fps > 0.0 => t >= next - 0.25 / f64::from(max_fps),
        _ => true,
    }
}

/// When the event after one sent at `t` is due.
pub fn live_next(next: Option<f64>, t: f64, max_fps: f32) -> f64 {
    if max_fps > 0.0 {
        next.unwrap_or(t).max(t) + 1.0 / f64::from(max_fps)
    } else {
        t
    }
}

/// The most probable emotion.
pub fn dominant(p: &[f32; 7]) -> &'static str {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| EMOTIONS[i])
        .unwrap_or("neutral")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_events_are_limited_to_max_fps() {
        // frames at 100 fps for 10 s, limit 30: at most 30 events a second (frames fall on
        // a 10 ms grid, so a few fewer), never two within two thirds of the interval
        let (mut next, mut sent, mut prev) = (None, 0, f64::NEG_INFINITY);
        for i in 0..1000 {
            let t = f64::from(i) * 0.01;
            if live_due(next, t, 30.0) {
                next = Some(live_next(next, t, 30.0));
                assert!(t - prev > 0.02, "{t} after {prev}");
                prev = t;
                sent += 1;
            }
        }
        assert!((270..=300).contains(&sent), "{sent}");
        // a camera at the limit, with jitter: every frame
        let mut next = None;
        for i in 0..300 {
            let t = f64::from(i) / 30.0 + if i % 2 == 0 { 0.002 } else { -0.002 };
            assert!(live_due(next, t, 30.0), "frame {i}");
            next = Some(live_next(next, t, 30.0));
        }
        // a camera at 15 fps: every frame too
        let mut next = None;
        for i in 0..30 {
            let t = f64::from(i) / 15.0;
            assert!(live_due(next, t, 30.0), "frame {i}");
            next = Some(live_next(next, t, 30.0));
        }
        // no limit: every frame, however close
        assert!(live_due(Some(1.0), 1.0001, 0.0));
        assert!(live_due(None, 0.0, 30.0));
    }

    #[test]
    fn a_track_s_age_counts_from_its_first_frame_and_ends_with_it() {
        let hub = Arc::new(Hub::new(false));
        let mut rx = hub.live.subscribe();
        let (_tx, frx) = std::sync::mpsc::sync_channel(1);
        let mut tap = Tap::new(hub.clone(), frx, 0.0);
        let img = RgbImage::new(4, 4);
        let r = FrameResult::default();
        let bbox = BBox {
            x: 0.1,
            y: 0.1,
            w: 0.2,
            h: 0.2,
        };
        let mut probs = [0.0; 7];
        probs[3] = 1.0;
        let faces = [(bbox, probs)];
        let obs = |id, dt| {
            [Observation {
                track_id: id,
                dt,
                probs,
            }]
        };
        let snap = emotiond_wire::summary::sample();
        for (t, id, dt, age) in [(1.0, 7, 0.0, 0.0), (1.5, 7, 0.5, 0.5), (2.0, 8, 0.0, 0.0)] {
            let o = obs(id, dt);
            tap.frame(
                FrameSeen {
                    t,
                    wall_ms: 5,
                    seq: 1,
                    image: &img,
                    result: &r,
                    faces: &faces,
                    obs: &o,
                },
                Some(snap.clone()),
            );
            let ev: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
            let face = &ev["faces"][0];
            assert_eq!(face["track_id"], id);
            assert_eq!(face["age_s"], age, "{ev}");
            assert_eq!(face["dominant"], "happy");
        }
        assert_eq!(hub.metrics.frames(), 3);
    }

    #[test]
    fn a_client_that_does_not_read_loses_old_events_and_never_blocks_the_sender() {
        let hub = Hub::new(false);
        let mut slow = hub.live.subscribe();
        for i in 0..(LIVE_BUFFER * 10) {
            hub.live.send(Arc::from(i.to_string())).unwrap();
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
