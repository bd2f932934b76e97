//! The running pipeline: a capture thread feeding a drop-oldest queue, analysis threads
//! (detect → classify, `pipeline.threads` of them, [`workers`]) and the pipeline thread
//! (results in capture order → track → window), and summaries handed to a sink when each
//! window closes. Shutdown: trigger the [`Shutdown`]; the final partial window is summarised
//! before exit. What it shares with other threads is passed in: the camera's
//! [`SourceHealth`], the audio path ([`VoiceInput`]), feedback presses over a channel.
//!
//! Files: [`queue`] (the hand-off), [`analyzer`] (models on one frame), [`workers`] (the
//! analysis threads, results back in order), [`track`] and [`window`] (pure), [`demo`] (the
//! built-in sample).

pub mod analyzer;
pub mod clock;
pub mod demo;
pub mod queue;
pub mod track;
pub mod window;
pub mod workers;

use crate::analyzer::Analyzer;
use crate::audio::VoiceInput;
use crate::config::PipelineConfig;
use crate::health::SourceHealth;
use crate::queue::DropOldest;
use crate::shutdown::Shutdown;
use crate::summary::Summary;
use crate::track::{Tracker, TrackerConfig};
use crate::window::{SummaryMeta, Window};
use emotiond_hal::{Camera, CameraError, Frame};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use workers::{Next, Pool};

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Run the camera on its own thread until it ends or the shutdown is triggered; its state
/// goes to `health`.
pub fn spawn_capture(
    mut camera: Box<dyn Camera>,
    queue: Arc<DropOldest<Frame>>,
    health: SourceHealth,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let mut was_unavailable = false;
            // whether `ok` has been reported since the last failure (no lock per frame)
            let mut reported_ok = false;
            while !shutdown.is_triggered() {
                match camera.next_frame() {
                    Ok(f) => {
                        if !reported_ok {
                            let d = camera.describe();
                            log::info!("camera ok: {d}");
                            health.ok(d);
                            reported_ok = true;
                            // the next outage is logged as an error again
                            was_unavailable = false;
                        }
                        queue.push(f);
                    }
                    Err(CameraError::Skipped { item, reason }) => {
                        log::warn!("skipped {item}: {reason}");
                        queue.skip();
                    }
                    Err(CameraError::Unavailable {
                        device,
                        reason,
                        retry_in,
                    }) => {
                        if !was_unavailable {
                            log::error!(
                                "camera {device} unavailable: {reason}; retrying with back-off"
                            );
                        } else {
                            log::debug!("camera {device} still unavailable: {reason}");
                        }
                        was_unavailable = true;
                        reported_ok = false;
                        health.unavailable(device, reason);
                        shutdown.sleep(retry_in);
                    }
                    Err(CameraError::End) => {
                        log::info!("camera input ended");
                        health.ended(None);
                        break;
                    }
                    Err(CameraError::Config(m)) => {
                        log::error!("camera: {m}");
                        health.ended(Some(m));
                        break;
                    }
                }
            }
            queue.close();
        })
}

pub struct Pipeline {
    /// One per analysis thread (`pipeline.threads`), each with its own copy of the models.
    pub analyzers: Vec<Analyzer>,
    pub cfg: PipelineConfig,
    pub device_id: String,
    pub boot_id: u32,
    /// Model updates: swaps to apply between frames, and their probation.
    pub updates: Option<crate::updates::Switcher>,
    /// Where feedback events (button presses, answered with the window in progress) go.
    pub feedback: Option<FeedbackSink>,
    /// Presses of the feedback button (from the indicator thread); None: no button.
    pub presses: Option<Receiver<()>>,
    /// The camera's health, whose state each summary carries.
    pub camera: SourceHealth,
    /// The audio path, when on: each window's voice block comes from it.
    pub voice: Option<VoiceInput>,
    /// The HTTP API, when on: live events and metrics after each frame, feedback requests.
    pub api: Option<crate::api::Tap>,
}

/// The topic and MQTT queue for feedback events.
pub struct FeedbackSink {
    pub topic: String,
    pub out: tokio::sync::mpsc::Sender<crate::updates::Out>,
}

impl Pipeline {
    fn meta(&self, pool: &Pool, seq: u64, voice: Option<crate::voice::WindowVoice>) -> SummaryMeta {
        SummaryMeta {
            device_id: self.device_id.clone(),
            boot_id: self.boot_id,
            seq,
            camera: self.camera.state(),
            detector: pool.detector_info(),
            expression: pool.expression_info(),
            voice,
        }
    }

    /// Publish a feedback event (a button press, or the API's with `label`) with the window
    /// in progress; Ok: the topic it was queued for.
    fn send_feedback(
        &self,
        pool: &Pool,
        window: &Window,
        seq: u64,
        label: Option<String>,
    ) -> Result<String, String> {
        let now_ms = unix_ms(SystemTime::now());
        let partial = window.snapshot(
            now_ms,
            self.meta(pool, seq, self.voice.as_ref().map(VoiceInput::peek)),
        );
        let Some(f) = &self.feedback else {
            log::info!("feedback (MQTT is off): window {seq}");
            return Err("MQTT is off (mqtt.enabled = false): feedback is not published".into());
        };
        let mut event = emotiond_wire::summary::Feedback::button(now_ms, partial);
        event.label = label;
        let msg = crate::updates::Out::Publish {
            topic: f.topic.clone(),
            payload: event.to_json(),
            retain: false,
        };
        if f.out.try_send(msg).is_err() {
            log::warn!("feedback event not queued: the MQTT queue is full");
            return Err("the MQTT queue is full: feedback not queued".into());
        }
        Ok(f.topic.clone())
    }

    /// After a frame: the API's metrics, and its live event when a client listens.
    #[allow(clippy::too_many_arguments)]
    fn hand_to_api(
        &mut self,
        pool: &Pool,
        window: &Window,
        seq: u64,
        frame: &Frame,
        t: f64,
        r: &crate::analyzer::FrameResult,
        faces: &[(emotiond_models::BBox, [f32; 7])],
        obs: &[crate::track::Observation],
    ) {
        let Some(api) = &self.api else { return };
        let wall_ms = unix_ms(frame.wall);
        let snapshot = api.live_wanted(t).then(|| {
            window.snapshot(
                unix_ms(SystemTime::now()),
                self.meta(pool, seq, self.voice.as_ref().map(VoiceInput::peek)),
            )
        });
        let due = self.api.as_mut().is_some_and(|a| a.models_due());
        let models = due.then(|| (pool.detector_info(), pool.expression_info()));
        let Some(api) = &mut self.api else { return };
        if let Some((d, e)) = models {
            api.hub.metrics.models(d, e);
            let state = match &self.updates {
                None => crate::api::metrics::UpdateState::Off,
                Some(u) if u.on_probation() => crate::api::metrics::UpdateState::Probation,
                Some(_) => crate::api::metrics::UpdateState::Idle,
            };
            api.hub.metrics.set_update_state(state);
        }
        api.frame(
            crate::api::tap::FrameSeen {
                t,
                wall_ms,
                seq: frame.seq,
                image: &frame.image,
                result: r,
                faces,
                obs,
            },
            snapshot,
        );
    }

    /// Whether the feedback button was pressed since the last look (presses coalesce).
    fn pressed(&self) -> bool {
        self.presses
            .as_ref()
            .is_some_and(|rx| rx.try_iter().count() > 0)
    }

    /// Process frames until the queue closes or the shutdown is triggered; each closed
    /// window goes to `sink`. Returns the number of summaries produced.
    pub fn run(
        mut self,
        queue: Arc<DropOldest<Frame>>,
        shutdown: Shutdown,
        mut sink: impl FnMut(Summary),
    ) -> u64 {
        let analyzers = std::mem::take(&mut self.analyzers);
        let mut pool = match Pool::start(analyzers, queue.clone(), shutdown.clone()) {
            Ok(p) => p,
            Err(e) => {
                log::error!("pipeline: cannot start the analysis threads: {e}");
                shutdown.trigger();
                return 0;
            }
        };
        let start = Instant::now();
        let start_wall = SystemTime::now();
        let mut tracker = Tracker::new(TrackerConfig {
            iou_threshold: self.cfg.track_iou,
            max_missed_s: self.cfg.track_max_missed_s,
            smoothing_tau_s: self.cfg.smoothing_tau_s,
        });
        let mut wall = clock::WallMap::new(0.0, unix_ms(start_wall));
        let mut window = Window::new(self.cfg.window_s, 0.0, unix_ms(start_wall));
        let mut seq = 0u64;
        let (mut seen_dropped, mut seen_skipped) = (0u64, 0u64);
        let mut faces_buf = Vec::new();
        let mut last_done: Option<Instant> = None;
        let mut notifier = crate::service::Notifier::from_env();
        loop {
            notifier.tick(|| {
                let (d, e) = (pool.detector_info(), pool.expression_info());
                format!(
                    "running: {} on {}, {} on {} ({} analysis threads)",
                    d.id,
                    d.engine,
                    e.id,
                    e.engine,
                    pool.threads()
                )
            });
            let now = start.elapsed().as_secs_f64();
            let wait = Duration::from_secs_f64((window.end_t() - now).clamp(0.0, 0.2));
            let popped = pool.next(wait);
            let closed = matches!(popped, Next::Closed);
            if let Some(u) = &mut self.updates {
                u.poll(&mut pool, start.elapsed().as_secs_f64());
            }
            if let Next::Item(done) = popped {
                let workers::Done { frame, result, .. } = done;
                if let Some(u) = &mut self.updates {
                    let (faces, d, c) = match &result {
                        Ok(r) => (Some(r.faces.len()), r.detect_ms, r.classify_ms),
                        Err(_) => (None, 0.0, 0.0),
                    };
                    u.observe(&mut pool, start.elapsed().as_secs_f64(), faces, d, c);
                }
                match result {
                    Ok(r) => {
                        let t = frame
                            .captured
                            .saturating_duration_since(start)
                            .as_secs_f64();
                        faces_buf.clear();
                        faces_buf.extend(r.faces.iter().map(|f| (f.bbox, f.emotions)));
                        let obs = tracker.update(t, &faces_buf);
                        window.add_frame(&obs, r.detect_ms + r.classify_ms);
                        if self.api.is_some() {
                            self.hand_to_api(&pool, &window, seq, &frame, t, &r, &faces_buf, &obs);
                        }
                        let done = Instant::now();
                        if let Some(l) = last_done {
                            window.add_gap((done - l).as_secs_f32() * 1e3);
                        }
                        last_done = Some(done);
                    }
                    Err(e) => {
                        log::error!("inference failed on frame {}: {e:#}", frame.seq);
                        window.add_skipped(1);
                    }
                }
            }
            let d = queue.dropped();
            window.add_dropped((d - seen_dropped) as u32);
            seen_dropped = d;
            let s = queue.skipped();
            window.add_skipped((s - seen_skipped) as u32);
            seen_skipped = s;
            let stopping = closed || shutdown.is_triggered();
            if self.pressed() {
                let _ = self.send_feedback(&pool, &window, seq, None);
            }
            if let Some(api) = &self.api {
                for req in api.feedback.try_iter() {
                    let r = self.send_feedback(&pool, &window, seq, req.label);
                    let _ = req.reply.send(r.map(|topic| (topic, seq)));
                }
            }
            let now = start.elapsed().as_secs_f64();
            if window.due(now) || stopping {
                if let Some(step) = wall.observe(now, unix_ms(SystemTime::now())) {
                    log::warn!(
                        "the wall clock stepped by {:+.1} s: summaries are stamped on the new \
                         time from window {seq} on (windows are timed by the monotonic clock; \
                         seq goes on)",
                        step as f64 / 1e3
                    );
                    window.restamp(wall.wall_ms(window.start_t()));
                }
                let end_t = if stopping { now } else { window.end_t() };
                let meta = self.meta(&pool, seq, self.voice.as_ref().map(VoiceInput::finish));
                sink(window.finish(wall.wall_ms(end_t), meta));
                seq += 1;
            }
            if stopping {
                notifier.stopping();
                return seq;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelsConfig, PipelineConfig};
    use emotiond_hal::{FileSource, Pacing};

    fn clip(frames: usize) -> &'static [u8] {
        let (w, h) = (64, 48);
        let mut out = Vec::new();
        {
            let mut enc = y4m::encode(w, h, y4m::Ratio::new(30, 1))
                .with_colorspace(y4m::Colorspace::C420jpeg)
                .write_header(&mut out)
                .unwrap();
            let c = vec![128u8; (w / 2) * (h / 2)];
            for i in 0..frames {
                let y = vec![(i % 200) as u8 + 16; w * h];
                enc.write_frame(&y4m::Frame::new([&y, &c, &c], None))
                    .unwrap();
            }
        }
        Box::leak(out.into_boxed_slice())
    }

    #[test]
    fn every_frame_is_processed_or_counted_as_dropped_when_inference_falls_behind() {
        frames_are_processed_or_counted(1);
    }

    #[test]
    fn with_three_analysis_threads_every_frame_is_still_processed_or_counted() {
        frames_are_processed_or_counted(3);
    }

    fn frames_are_processed_or_counted(threads: usize) {
        // a camera far faster than inference (decoding a tiny frame vs running two models)
        const N: u64 = 300;
        let cam =
            FileSource::from_y4m_bytes("clip", clip(N as usize), Pacing::AsFastAsPossible, false);
        let queue = Arc::new(DropOldest::new(2));
        let camera = SourceHealth::new();
        let shutdown = Shutdown::new();
        let capture = spawn_capture(
            Box::new(cam),
            queue.clone(),
            camera.clone(),
            shutdown.clone(),
        )
        .unwrap();
        let analyzers = Analyzer::load_copies(
            &ModelsConfig {
                verify_test_vectors: false,
                ..ModelsConfig::default()
            },
            threads,
        )
        .unwrap();
        let p = Pipeline {
            analyzers,
            cfg: PipelineConfig {
                window_s: 3600.0,
                ..PipelineConfig::default()
            },
            device_id: "t".into(),
            boot_id: 1,
            updates: None,
            feedback: None,
            presses: None,
            camera,
            voice: None,
            api: None,
        };
        let mut summaries = Vec::new();
        let n = p.run(queue, shutdown, |s| summaries.push(s));
        capture.join().unwrap();
        assert_eq!(n, 1, "the camera ended: one final summary");
        let s = &summaries[0];
        assert_eq!(
            s.frames_processed as u64 + s.frames_dropped as u64 + s.frames_skipped as u64,
            N,
            "{s:?}"
        );
        assert!(
            s.frames_dropped > 0,
            "inference cannot keep up with this camera: {s:?}"
        );
        assert_eq!(s.camera, "ended");
    }
}
