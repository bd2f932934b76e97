//! Aggregation of per-frame observations into one summary per window. Pure: the caller
//! passes times in; memory is bounded whatever the frame rate or crowd size.

use crate::summary::{ModelInfo, PerEmotion, SCHEMA_VERSION, Summary, valence_arousal};
use crate::track::Observation;
use std::collections::HashMap;

/// Tracks followed individually per window; beyond this, faces still count in the means.
const MAX_TRACKS: usize = 1024;
/// Latency samples kept per window (reservoir sampling beyond this).
const MAX_SAMPLES: usize = 4096;
/// Gaps longer than this between two sightings of a track do not count as dwell time.
const MAX_DWELL_GAP_S: f64 = 1.0;

#[derive(Debug, Default, Clone)]
struct TrackAcc {
    sum: [f64; 7],
    n: u32,
}

/// Fixed-size uniform sample of a stream (Vitter's algorithm R, xorshift for the choice).
#[derive(Debug, Clone)]
pub struct Reservoir {
    samples: Vec<f32>,
    seen: u64,
    rng: u64,
    sum: f64,
}

impl Reservoir {
    pub fn new() -> Reservoir {
        Reservoir {
            samples: Vec::new(),
            seen: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            sum: 0.0,
        }
    }
    pub fn push(&mut self, x: f32) {
        self.seen += 1;
        self.sum += x as f64;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(x);
        } else {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let j = (self.rng % self.seen) as usize;
            if j < MAX_SAMPLES {
                self.samples[j] = x;
            }
        }
    }
    pub fn mean(&self) -> Option<f32> {
        (self.seen > 0).then(|| (self.sum / self.seen as f64) as f32)
    }
    /// Nearest-rank percentile (0..=100) of the sample.
    pub fn percentile(&mut self, p: f32) -> Option<f32> {
        if self.samples.is_empty() {
            return None;
        }
        self.samples.sort_by(f32::total_cmp);
        let rank = ((p / 100.0) * self.samples.len() as f32).ceil() as usize;
        Some(self.samples[rank.clamp(1, self.samples.len()) - 1])
    }
    pub fn clear(&mut self) {
        self.samples.clear();
        self.seen = 0;
        self.sum = 0.0;
    }
}

impl Default for Reservoir {
    fn default() -> Self {
        Self::new()
    }
}

/// One window in progress.
#[derive(Debug, Clone)]
pub struct Window {
    pub len_s: f64,
    start_t: f64,
    start_wall_ms: u64,
    frames_processed: u32,
    frames_dropped: u32,
    frames_skipped: u32,
    faces_seen: u32,
    frames_with_faces: u32,
    sum: [f64; 7],
    n_obs: u64,
    dwell_s: f64,
    tracks: HashMap<u64, TrackAcc>,
    latency: Reservoir,
    gap_ms_max: Option<f32>,
}

/// Identity and context a summary needs besides the window's own counts.
#[derive(Debug, Clone)]
pub struct SummaryMeta {
    pub device_id: String,
    pub boot_id: u32,
    pub seq: u64,
    pub camera: emotiond_wire::SourceState,
    pub detector: ModelInfo,
    pub expression: ModelInfo,
    /// The window's voice block and the voice's (valence, arousal) on the circumplex scale,
    /// when audio is on.
    pub voice: Option<crate::voice::WindowVoice>,
}

impl Window {
    pub fn new(len_s: f64, start_t: f64, start_wall_ms: u64) -> Window {
        Window {
            len_s,
            start_t,
            start_wall_ms,
            frames_processed: 0,
            frames_dropped: 0,
            frames_skipped: 0,
            faces_seen: 0,
            frames_with_faces: 0,
            sum: [0.0; 7],
            n_obs: 0,
            dwell_s: 0.0,
            tracks: HashMap::new(),
            latency: Reservoir::new(),
            gap_ms_max: None,
        }
    }

    /// Time between the end of one processed frame and the end of the next.
    pub fn add_gap(&mut self, ms: f32) {
        self.gap_ms_max = Some(self.gap_ms_max.map_or(ms, |m: f32| m.max(ms)));
    }

    /// Has the window's time run out at monotonic time `t`?
    pub fn due(&self, t: f64) -> bool {
        t >= self.start_t + self.len_s
    }

    pub fn end_t(&self) -> f64 {
        self.start_t + self.len_s
    }

    /// Monotonic time the window began.
    pub fn start_t(&self) -> f64 {
        self.start_t
    }

    /// Stamp the window's start anew (the wall clock stepped, see [`super::clock`]).
    pub fn restamp(&mut self, start_wall_ms: u64) {
        self.start_wall_ms = start_wall_ms;
    }

    pub fn add_frame(&mut self, obs: &[Observation], inference_ms: f32) {
        self.frames_processed += 1;
        if !obs.is_empty() {
            self.frames_with_faces += 1;
        }
        self.latency.push(inference_ms);
        for o in obs {
            self.faces_seen += 1;
            self.n_obs += 1;
            for (s, p) in self.sum.iter_mut().zip(o.probs) {
                *s += p as f64;
            }
            if o.dt <= MAX_DWELL_GAP_S {
                self.dwell_s += o.dt;
            }
            let full = self.tracks.len() >= MAX_TRACKS;
            if let Some(acc) = match self.tracks.get_mut(&o.track_id) {
                Some(a) => Some(a),
                None if !full => Some(self.tracks.entry(o.track_id).or_default()),
                None => None,
            } {
                acc.n += 1;
                for (s, p) in acc.sum.iter_mut().zip(o.probs) {
                    *s += p as f64;
                }
            }
        }
    }

    pub fn add_dropped(&mut self, n: u32) {
        self.frames_dropped += n;
    }
    pub fn add_skipped(&mut self, n: u32) {
        self.frames_skipped += n;
    }

    /// The summary this window would have if it closed at `now_wall_ms`, leaving it open.
    pub fn snapshot(&self, now_wall_ms: u64, meta: SummaryMeta) -> Summary {
        self.clone().finish(now_wall_ms, meta)
    }

    /// Close this window at wall time `end_wall_ms`, returning its summary, and start the
    /// next one where this one ended.
    pub fn finish(&mut self, end_wall_ms: u64, meta: SummaryMeta) -> Summary {
        let means: [f32; 7] = if self.n_obs > 0 {
            self.sum.map(|s| (s / self.n_obs as f64) as f32)
        } else {
            [0.0; 7]
        };
        let mut dominant = [0u32; 7];
        for acc in self.tracks.values() {
            if let Some((i, _)) = acc.sum.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
                dominant[i] += 1;
            }
        }
        let va = if self.n_obs > 0 {
            valence_arousal(&means)
        } else {
            None
        };
        let face_weight = if self.frames_processed > 0 {
            self.frames_with_faces as f32 / self.frames_processed as f32
        } else {
            0.0
        };
        let (voice, voice_va) = match meta.voice {
            Some((v, va)) => (Some(v), va),
            None => (None, None),
        };
        let voice_weight = voice.as_ref().map_or(0.0, |v| v.speech_ratio);
        let fused = crate::voice::fuse(va, face_weight, voice_va, voice_weight);
        let s = Summary {
            schema: SCHEMA_VERSION,
            device_id: meta.device_id,
            seq: meta.seq,
            boot_id: meta.boot_id,
            window_start_ms: self.start_wall_ms,
            window_end_ms: end_wall_ms,
            frames_processed: self.frames_processed,
            frames_dropped: self.frames_dropped,
            frames_skipped: self.frames_skipped,
            camera: meta.camera,
            faces_seen: self.faces_seen,
            distinct_tracks: self.tracks.len() as u32,
            dwell_s: self.dwell_s as f32,
            emotions: PerEmotion::from_array(means),
            dominant: PerEmotion::from_array(dominant),
            valence: va.map(|v| v.0),
            arousal: va.map(|v| v.1),
            inference_ms_mean: self.latency.mean(),
            inference_ms_p95: self.latency.percentile(95.0),
            frame_gap_ms_max: self.gap_ms_max,
            detector: meta.detector,
            expression: meta.expression,
            voice,
            fused_valence: fused.and_then(|f| f.valence),
            fused_arousal: fused.and_then(|f| f.arousal),
            fused_from: fused.map(|f| f.from.to_string()),
        };
        let next_start = self.start_t + self.len_s;
        *self = Window::new(self.len_s, next_start, end_wall_ms);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64) -> SummaryMeta {
        let mi = ModelInfo {
            id: "m@1".into(),
            engine: "tract".into(),
            accelerator: None,
            fallback: None,
            slow: 0,
            stalls: 0,
            rebuilds: 0,
        };
        SummaryMeta {
            device_id: "d".into(),
            boot_id: 1,
            seq,
            camera: emotiond_wire::SourceState::Ok,
            detector: mi.clone(),
            expression: mi,
            voice: None,
        }
    }
    fn obs(id: u64, dt: f64, happy: f32) -> Observation {
        Observation {
            track_id: id,
            dt,
            probs: [0.0, 0.0, 0.0, happy, 0.0, 0.0, 1.0 - happy],
        }
    }

    #[test]
    fn aggregates_counts_means_dominants_and_dwell() {
        let mut w = Window::new(10.0, 0.0, 1000);
        assert!(!w.due(9.9) && w.due(10.0));
        w.add_frame(&[obs(1, 0.0, 0.9), obs(2, 0.0, 0.1)], 4.0);
        w.add_frame(&[obs(1, 0.5, 0.7), obs(2, 0.5, 0.3)], 6.0);
        w.add_frame(&[], 2.0);
        w.add_frame(&[obs(1, 3.0, 0.8)], 8.0); // a gap too long to count as dwell
        w.add_dropped(2);
        w.add_skipped(1);
        let s = w.finish(11_000, meta(5));
        assert_eq!(
            (s.frames_processed, s.frames_dropped, s.frames_skipped),
            (4, 2, 1)
        );
        assert_eq!((s.faces_seen, s.distinct_tracks, s.seq), (5, 2, 5));
        assert!((s.dwell_s - 1.0).abs() < 1e-6);
        assert!((s.emotions.happy - (0.9 + 0.1 + 0.7 + 0.3 + 0.8) / 5.0).abs() < 1e-6);
        assert_eq!(s.dominant.happy, 1);
        assert_eq!(s.dominant.neutral, 1);
        assert_eq!((s.window_start_ms, s.window_end_ms), (1000, 11_000));
        assert_eq!(s.inference_ms_mean, Some(5.0));
        assert_eq!(s.inference_ms_p95, Some(8.0));
        assert!(s.valence.is_some());
        // the next window starts where this one ended, empty
        assert!(!w.due(19.9) && w.due(20.0));
        let e = w.finish(21_000, meta(6));
        assert_eq!(
            (e.frames_processed, e.faces_seen, e.window_start_ms),
            (0, 0, 11_000)
        );
        assert_eq!((e.valence, e.inference_ms_mean), (None, None));
    }

    #[test]
    fn reservoir_is_bounded_and_percentiles_are_nearest_rank() {
        let mut r = Reservoir::new();
        for i in 1..=100 {
            r.push(i as f32);
        }
        assert_eq!(r.percentile(95.0), Some(95.0));
        assert_eq!(r.percentile(100.0), Some(100.0));
        assert_eq!(r.mean(), Some(50.5));
        for i in 0..100_000 {
            r.push((i % 10) as f32);
        }
        assert_eq!(r.samples.len(), MAX_SAMPLES);
        let p50 = r.percentile(50.0).unwrap();
        assert!((3.0..=6.0).contains(&p50), "{p50}");
    }

    #[test]
    fn fused_values_weight_faces_by_presence_and_voice_by_speaking_time() {
        let voice = |speech_ratio: f32| crate::summary::VoiceSummary {
            microphone: "ok".into(),
            vad: "v@1".into(),
            vad_engine: "tract".into(),
            vad_fallback: None,
            audio_s: 10.0,
            lost_s: 0.0,
            speech_s: 10.0 * speech_ratio,
            speech_ratio,
            segments: 1,
            loudness_dbfs: Some(-20.0),
            pitch_hz_median: None,
            pitch_range_st: None,
            pitch_sd_st: None,
            voiced_ratio: None,
            arousal: Some(1.0),
            emotions: None,
            classifier: None,
        };
        // faces in half the frames, all happy (arousal 0.51); voice 50 % of the time, A = 1
        let mut w = Window::new(10.0, 0.0, 0);
        w.add_frame(&[obs(1, 0.0, 1.0)], 1.0);
        w.add_frame(&[], 1.0);
        let mut m = meta(0);
        m.voice = Some((voice(0.5), Some((None, 1.0))));
        let s = w.finish(1, m);
        assert_eq!(s.fused_from.as_deref(), Some("both"));
        assert_eq!(s.fused_valence, s.valence, "prosody has no valence");
        let want = (0.5 * 0.51 + 0.5 * 1.0) / 1.0;
        assert!((s.fused_arousal.unwrap() - want).abs() < 1e-6, "{s:?}");
        assert_eq!(s.voice.unwrap().speech_ratio, 0.5);
        // no faces, no speech: nothing to fuse
        let mut m = meta(1);
        m.voice = Some((voice(0.0), None));
        let s = w.finish(2, m);
        assert_eq!(
            (s.fused_from, s.fused_arousal, s.fused_valence),
            (None, None, None)
        );
    }

    #[test]
    fn track_table_is_bounded() {
        let mut w = Window::new(10.0, 0.0, 0);
        for id in 0..(MAX_TRACKS as u64 + 50) {
            w.add_frame(&[obs(id, 0.0, 1.0)], 1.0);
        }
        let s = w.finish(1, meta(0));
        assert_eq!(s.distinct_tracks as usize, MAX_TRACKS);
        assert_eq!(s.faces_seen as usize, MAX_TRACKS + 50);
    }
}
