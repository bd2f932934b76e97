//! From 32 ms chunks of 16 kHz audio to voice features: speech segments from the VAD's
//! probabilities (hysteresis and hang-over), per chunk level and F0, per segment and per
//! window loudness, pitch statistics, speaking-time ratio and the prosodic **vocal arousal**
//! estimate, and the fusion of face and voice into one valence/arousal. Pure: the VAD and the
//! classifier are handed in; times are sample counts.
//!
//! Files: this module (segments, features, fusion: pure), [`audio`] (the microphone thread
//! and the voice state the pipeline takes), [`pitch`] (YIN, pure).
//!
//! Length: ~590 lines of code and ~160 of tests; the segmenter, features and fusion are one
//! pure pipeline over the same chunk state, kept together so the formulas read in order.

pub mod audio;
pub mod pitch;

use crate::pitch::{Yin, YinConfig, semitones};
use crate::summary::{CIRCUMPLEX, PerEmotion, VoiceSummary};
use emotiond_models::speech::SpeechEmotionClassifier;
use emotiond_models::vad::{CHUNK, Vad, dbfs};
use serde::Serialize;

/// The voice's (valence, arousal) on the circumplex scale, for fusion: valence only when a
/// speech-emotion model runs; None without speech.
pub type VoiceEstimate = Option<(Option<f32>, f32)>;

/// A closed window's voice block and its estimate.
pub type WindowVoice = (VoiceSummary, VoiceEstimate);

/// Seconds per VAD chunk.
pub const CHUNK_S: f64 = CHUNK as f64 / 16_000.0;

/// Settings of the segmenter and the features (`[audio]` in config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceConfig {
    /// Speech starts at a chunk with probability >= this.
    pub threshold: f32,
    /// Speech continues while probability >= threshold - 0.15 (Silero's own rule).
    pub min_silence_ms: u32,
    /// Segments shorter than this are not speech (clicks, coughs).
    pub min_speech_ms: u32,
    /// Level of the energy gate when no VAD engine runs.
    pub energy_gate_dbfs: f32,
    pub pitch_min_hz: f32,
    pub pitch_max_hz: f32,
    /// Longest segment audio kept for the speech-emotion classifier (the rest is not
    /// classified).
    pub max_segment_s: f32,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig {
            threshold: 0.5,
            min_silence_ms: 300,
            min_speech_ms: 250,
            energy_gate_dbfs: -40.0,
            pitch_min_hz: 60.0,
            pitch_max_hz: 500.0,
            max_segment_s: 10.0,
        }
    }
}

/// What the segmenter says about one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg {
    Silence,
    /// A segment starts at this chunk.
    Start,
    /// Inside a segment (speech, or a pause shorter than `min_silence_ms`).
    Speech,
    /// Below the lower threshold inside a segment: speech if it resumes soon, else not.
    Pause,
    /// The segment ended; its last `trailing` chunks (the pause) were not speech.
    End {
        trailing: u32,
    },
}

/// Hysteresis on VAD probabilities: on at `threshold`, off after `min_silence_ms` below
/// `threshold - 0.15`.
#[derive(Debug, Clone)]
pub struct Segmenter {
    on: f32,
    off: f32,
    silence_chunks: u32,
    in_speech: bool,
    quiet: u32,
}

impl Segmenter {
    pub fn new(cfg: &VoiceConfig) -> Segmenter {
        Segmenter {
            on: cfg.threshold,
            off: (cfg.threshold - 0.15).max(0.01),
            silence_chunks: ((cfg.min_silence_ms as f64 / 1000.0 / CHUNK_S).ceil() as u32).max(1),
            in_speech: false,
            quiet: 0,
        }
    }

    pub fn push(&mut self, p: f32) -> Seg {
        if !self.in_speech {
            if p >= self.on {
                self.in_speech = true;
                self.quiet = 0;
                return Seg::Start;
            }
            return Seg::Silence;
        }
        if p >= self.off {
            self.quiet = 0;
            return Seg::Speech;
        }
        self.quiet += 1;
        if self.quiet >= self.silence_chunks {
            self.in_speech = false;
            let trailing = self.quiet;
            self.quiet = 0;
            return Seg::End { trailing };
        }
        Seg::Pause
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ChunkStats {
    mean_square: f64,
    f0: Option<f32>,
}

/// Features of one speech segment (also a line of `emotiond analyze` for WAV files).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentFeatures {
    /// Seconds from the start of the stream.
    pub start_s: f64,
    pub duration_s: f32,
    pub loudness_dbfs: f32,
    pub pitch_hz_median: Option<f32>,
    /// 10th to 90th percentile of F0, semitones.
    pub pitch_range_st: Option<f32>,
    /// Standard deviation of F0, semitones.
    pub pitch_sd_st: Option<f32>,
    /// Voiced chunks / chunks.
    pub voiced_ratio: f32,
    pub arousal: f32,
    /// Speech-emotion probabilities, when a classifier runs.
    pub emotions: Option<PerEmotion<f32>>,
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f32], p: f32) -> f32 {
    let rank = ((p / 100.0) * sorted.len() as f32).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (median Hz, p10–p90 range in semitones, sd in semitones) of F0 values.
pub fn pitch_stats(f0: &[f32]) -> Option<(f32, f32, f32)> {
    if f0.len() < 3 {
        return None;
    }
    let mut st: Vec<f32> = f0.iter().map(|&h| semitones(h)).collect();
    st.sort_by(f32::total_cmp);
    let mut hz = f0.to_vec();
    hz.sort_by(f32::total_cmp);
    let mean = st.iter().sum::<f32>() / st.len() as f32;
    let sd = (st.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / st.len() as f32).sqrt();
    Some((pct(&hz, 50.0), pct(&st, 90.0) - pct(&st, 10.0), sd))
}

/// Vocal arousal in [0, 1], a prosodic estimate (not a trained classifier): louder, more
/// varied pitch, wider pitch range and more talking read as more aroused.
///
/// `A = (0.45 L + 0.25 V + 0.20 R + 0.10 S) / W`, with `L = clamp((loudness_dbfs + 45) / 30)`,
/// `V = clamp(pitch_sd_st / 4)`, `R = clamp(pitch_range_st / 12)`, `S = clamp(speech_ratio)`,
/// each clamped to [0, 1], and `W` the sum of the weights of the terms present (`V` and `R`
/// are absent when too few chunks were voiced to measure F0).
pub fn vocal_arousal(
    loudness_dbfs: f32,
    pitch_sd_st: Option<f32>,
    pitch_range_st: Option<f32>,
    speech_ratio: f32,
) -> f32 {
    let c = |x: f32| {
        if x.is_finite() {
            x.clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let mut num = 0.45 * c((loudness_dbfs + 45.0) / 30.0) + 0.10 * c(speech_ratio);
    let mut w = 0.55;
    if let Some(v) = pitch_sd_st {
        num += 0.25 * c(v / 4.0);
        w += 0.25;
    }
    if let Some(r) = pitch_range_st {
        num += 0.20 * c(r / 12.0);
        w += 0.20;
    }
    num / w
}

/// One speech segment being gathered.
#[derive(Debug, Default)]
struct SegmentAcc {
    start: u64,
    chunks: Vec<ChunkStats>,
    /// Chunks of a pause that may or may not end the segment.
    pause: Vec<ChunkStats>,
    audio: Vec<f32>,
    pause_audio: usize,
    /// The rest of a segment cut at a window's end: counted whatever its length.
    continued: bool,
}

/// Per-window totals, handed to the summary when the window closes.
#[derive(Debug, Default, Clone)]
pub struct VoiceWindow {
    pub audio_chunks: u64,
    pub lost_samples: u64,
    speech_chunks: u64,
    segments: u32,
    energy: f64,
    f0: Vec<f32>,
    voiced: u64,
    emo_sum: [f64; 7],
    emo_weight: f64,
}

/// F0 values kept per window (a 10 s window has ~310 chunks).
const MAX_F0: usize = 8192;

impl VoiceWindow {
    fn commit(&mut self, seg: &SegmentFeatures, chunks: &[ChunkStats]) {
        self.segments += 1;
        self.speech_chunks += chunks.len() as u64;
        for c in chunks {
            self.energy += c.mean_square;
            if let Some(f) = c.f0 {
                self.voiced += 1;
                if self.f0.len() < MAX_F0 {
                    self.f0.push(f);
                }
            }
        }
        if let Some(e) = seg.emotions {
            let w = seg.duration_s as f64;
            for (s, p) in self.emo_sum.iter_mut().zip(e.to_array()) {
                *s += w * p as f64;
            }
            self.emo_weight += w;
        }
    }

    /// The summary's `voice` block (without the microphone state and VAD, which the caller
    /// adds), and the voice's (valence, arousal) on the circumplex scale for fusion.
    pub fn finish(&self) -> WindowVoice {
        let audio_s = self.audio_chunks as f64 * CHUNK_S;
        let speech_s = self.speech_chunks as f64 * CHUNK_S;
        let ratio = if audio_s > 0.0 {
            (speech_s / audio_s) as f32
        } else {
            0.0
        };
        let loud = (self.speech_chunks > 0)
            .then(|| (10.0 * (self.energy / self.speech_chunks as f64).max(1e-12).log10()) as f32);
        let ps = pitch_stats(&self.f0);
        let arousal = loud.map(|l| vocal_arousal(l, ps.map(|p| p.2), ps.map(|p| p.1), ratio));
        let emotions = (self.emo_weight > 0.0)
            .then(|| PerEmotion::from_array(self.emo_sum.map(|s| (s / self.emo_weight) as f32)));
        let valence =
            emotions.and_then(|e| crate::summary::valence_arousal(&e.to_array()).map(|(v, _)| v));
        // Voice arousal on the circumplex's −1..1: the classifier's when one runs, averaged
        // with the prosodic estimate mapped from [0, 1].
        let fused = arousal.map(|a| {
            let prosodic = 2.0 * a - 1.0;
            let a = match emotions.and_then(|e| crate::summary::valence_arousal(&e.to_array())) {
                Some((_, ca)) => 0.5 * (prosodic + ca),
                None => prosodic,
            };
            (valence, a)
        });
        let s = VoiceSummary {
            microphone: String::new(),
            vad: String::new(),
            vad_engine: String::new(),
            vad_fallback: None,
            audio_s: audio_s as f32,
            lost_s: (self.lost_samples as f64 / 16_000.0) as f32,
            speech_s: speech_s as f32,
            speech_ratio: ratio,
            segments: self.segments,
            loudness_dbfs: loud,
            pitch_hz_median: ps.map(|p| p.0),
            pitch_range_st: ps.map(|p| p.1),
            pitch_sd_st: ps.map(|p| p.2),
            voiced_ratio: (self.speech_chunks > 0)
                .then(|| self.voiced as f32 / self.speech_chunks as f32),
            arousal,
            emotions,
            classifier: None,
        };
        (s, fused)
    }
}

/// Chunk-by-chunk voice analysis: VAD → segmenter → features → segments into the window.
pub struct VoiceAnalyzer {
    pub vad: Vad,
    pub classifier: Option<SpeechEmotionClassifier>,
    cfg: VoiceConfig,
    seg: Segmenter,
    yin: Yin,
    history: Vec<f32>,
    current: Option<SegmentAcc>,
    pos: u64,
    chunk: Vec<f32>,
    pending: Vec<f32>,
}

impl VoiceAnalyzer {
    pub fn new(vad: Vad, classifier: Option<SpeechEmotionClassifier>, cfg: VoiceConfig) -> Self {
        let yin = Yin::new(YinConfig {
            fmin: cfg.pitch_min_hz,
            fmax: cfg.pitch_max_hz,
            ..YinConfig::default()
        });
        VoiceAnalyzer {
            vad,
            classifier,
            seg: Segmenter::new(&cfg),
            history: vec![0.0; yin.frame_len()],
            yin,
            cfg,
            current: None,
            pos: 0,
            chunk: Vec::with_capacity(CHUNK),
            pending: Vec::new(),
        }
    }

    /// Start a new stream (a new file): state, segment and timeline from zero.
    pub fn reset(&mut self) {
        self.vad.reset();
        self.seg = Segmenter::new(&self.cfg);
        self.history.iter_mut().for_each(|x| *x = 0.0);
        self.current = None;
        self.pos = 0;
        self.pending.clear();
    }

    /// Feed samples (16 kHz S16, any count); `lost` of them stood in for lost audio.
    /// Finished segments go into `window` (and `segments`, when given).
    pub fn push(
        &mut self,
        samples: &[i16],
        lost: u32,
        window: &mut VoiceWindow,
        mut segments: Option<&mut Vec<SegmentFeatures>>,
    ) {
        window.lost_samples += lost as u64;
        self.pending
            .extend(samples.iter().map(|&s| s as f32 / 32768.0));
        let mut off = 0;
        while self.pending.len() - off >= CHUNK {
            self.chunk.clear();
            self.chunk
                .extend_from_slice(&self.pending[off..off + CHUNK]);
            off += CHUNK;
            self.process_chunk(window, segments.as_deref_mut());
        }
        self.pending.drain(..off);
    }

    fn process_chunk(
        &mut self,
        window: &mut VoiceWindow,
        segments: Option<&mut Vec<SegmentFeatures>>,
    ) {
        window.audio_chunks += 1;
        let start = self.pos;
        self.pos += CHUNK as u64;
        // pitch history: the last frame_len samples
        let n = self.history.len();
        self.history.copy_within(CHUNK.., 0);
        self.history[n - CHUNK..].copy_from_slice(&self.chunk);
        let p = self.vad.prob(&self.chunk, self.cfg.energy_gate_dbfs);
        let state = self.seg.push(p);
        let stats = |me: &mut Self| {
            let ms = me.chunk.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / CHUNK as f64;
            let f0 = if dbfs(&me.chunk) > -55.0 {
                me.yin.estimate(&me.history).map(|p| p.hz)
            } else {
                None
            };
            ChunkStats {
                mean_square: ms,
                f0,
            }
        };
        match state {
            Seg::Silence => {}
            Seg::Start => {
                let s = stats(self);
                let mut acc = SegmentAcc {
                    start,
                    ..Default::default()
                };
                acc.chunks.push(s);
                self.keep_audio(&mut acc, false);
                self.current = Some(acc);
            }
            Seg::Speech => {
                let s = stats(self);
                if let Some(mut acc) = self.current.take() {
                    // the pause was part of the segment
                    acc.chunks.append(&mut acc.pause);
                    acc.pause_audio = 0;
                    acc.chunks.push(s);
                    self.keep_audio(&mut acc, false);
                    self.current = Some(acc);
                }
            }
            Seg::Pause => {
                let s = stats(self);
                if let Some(mut acc) = self.current.take() {
                    acc.pause.push(s);
                    self.keep_audio(&mut acc, true);
                    self.current = Some(acc);
                }
            }
            Seg::End { .. } => {
                if let Some(mut acc) = self.current.take() {
                    acc.pause.clear();
                    let keep = acc.audio.len() - acc.pause_audio;
                    acc.audio.truncate(keep);
                    self.close(acc, window, segments);
                }
            }
        }
    }

    fn keep_audio(&self, acc: &mut SegmentAcc, pause: bool) {
        let max = (self.cfg.max_segment_s * 16_000.0) as usize;
        if self.classifier.is_some() && acc.audio.len() + CHUNK <= max {
            acc.audio.extend_from_slice(&self.chunk);
            if pause {
                acc.pause_audio += CHUNK;
            }
        }
    }

    fn close(
        &mut self,
        acc: SegmentAcc,
        window: &mut VoiceWindow,
        segments: Option<&mut Vec<SegmentFeatures>>,
    ) {
        let dur = acc.chunks.len() as f64 * CHUNK_S;
        if acc.chunks.is_empty() || (!acc.continued && dur * 1000.0 < self.cfg.min_speech_ms as f64)
        {
            return;
        }
        let energy =
            acc.chunks.iter().map(|c| c.mean_square).sum::<f64>() / acc.chunks.len() as f64;
        let loud = (10.0 * energy.max(1e-12).log10()) as f32;
        let f0: Vec<f32> = acc.chunks.iter().filter_map(|c| c.f0).collect();
        let ps = pitch_stats(&f0);
        let emotions = match self.classifier.as_mut() {
            Some(c) if !acc.audio.is_empty() => match c.classify(&acc.audio) {
                Ok(e) => Some(PerEmotion::from_array(e)),
                Err(e) => {
                    log::error!("speech emotion: {e}");
                    None
                }
            },
            _ => None,
        };
        let f = SegmentFeatures {
            start_s: acc.start as f64 / 16_000.0,
            duration_s: dur as f32,
            loudness_dbfs: loud,
            pitch_hz_median: ps.map(|p| p.0),
            pitch_range_st: ps.map(|p| p.1),
            pitch_sd_st: ps.map(|p| p.2),
            voiced_ratio: f0.len() as f32 / acc.chunks.len() as f32,
            arousal: vocal_arousal(loud, ps.map(|p| p.2), ps.map(|p| p.1), 1.0),
            emotions,
        };
        window.commit(&f, &acc.chunks);
        if let Some(v) = segments {
            v.push(f);
        }
    }

    /// Window boundary: a segment in progress is committed up to here (if it is already
    /// long enough to count) and continues in the next window.
    pub fn cut(&mut self, window: &mut VoiceWindow, segments: Option<&mut Vec<SegmentFeatures>>) {
        let min = (self.cfg.min_speech_ms as f64 / 1000.0 / CHUNK_S).ceil() as usize;
        if let Some(acc) = self.current.as_mut() {
            if acc.chunks.len() >= min.max(1) || (acc.continued && !acc.chunks.is_empty()) {
                // a pause in progress stays pending in the continuation
                let keep = acc.audio.len() - acc.pause_audio;
                let pause_audio = acc.audio.split_off(keep);
                let done = SegmentAcc {
                    start: acc.start,
                    chunks: std::mem::take(&mut acc.chunks),
                    pause: Vec::new(),
                    audio: std::mem::replace(&mut acc.audio, pause_audio),
                    pause_audio: 0,
                    continued: acc.continued,
                };
                acc.start = self.pos;
                acc.continued = true;
                self.close(done, window, segments);
            }
        }
    }

    /// End of the stream: close the segment in progress.
    pub fn finish(
        &mut self,
        window: &mut VoiceWindow,
        segments: Option<&mut Vec<SegmentFeatures>>,
    ) {
        if let Some(mut acc) = self.current.take() {
            acc.pause.clear();
            let keep = acc.audio.len() - acc.pause_audio;
            acc.audio.truncate(keep);
            self.close(acc, window, segments);
        }
    }
}

/// Face and voice combined, weighted by what was present in the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused {
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    /// "faces", "voice" or "both".
    pub from: &'static str,
}

/// The fusion rule: weights `w_face` = fraction of processed frames with a face, `w_voice` =
/// speaking-time ratio; each of valence and arousal is `Σ w·x / Σ w` over the modalities that
/// have it (the voice has a valence only when a speech-emotion classifier runs). None when
/// neither was present.
pub fn fuse(
    face: Option<(f32, f32)>,
    face_weight: f32,
    voice: VoiceEstimate,
    voice_weight: f32,
) -> Option<Fused> {
    let face = face.filter(|_| face_weight > 0.0);
    let voice = voice.filter(|_| voice_weight > 0.0);
    let mix = |a: Option<f32>, wa: f32, b: Option<f32>, wb: f32| -> Option<f32> {
        match (a, b) {
            (Some(x), Some(y)) => Some((wa * x + wb * y) / (wa + wb)),
            (Some(x), None) => Some(x),
            (None, Some(y)) => Some(y),
            (None, None) => None,
        }
    };
    let from = match (face.is_some(), voice.is_some()) {
        (true, true) => "both",
        (true, false) => "faces",
        (false, true) => "voice",
        (false, false) => return None,
    };
    Some(Fused {
        valence: mix(
            face.map(|f| f.0),
            face_weight,
            voice.and_then(|v| v.0),
            voice_weight,
        ),
        arousal: mix(
            face.map(|f| f.1),
            face_weight,
            voice.map(|v| v.1),
            voice_weight,
        ),
        from,
    })
}

const _: () = assert!(CIRCUMPLEX.len() == 7);

#[cfg(test)]
mod tests {
    use super::*;
    use emotiond_hal::{Synth, synthesize};

    #[test]
    fn segmenter_needs_a_sustained_pause_to_end_speech() {
        let cfg = VoiceConfig {
            min_silence_ms: 100, // 4 chunks
            ..VoiceConfig::default()
        };
        let mut s = Segmenter::new(&cfg);
        let seq = [0.1, 0.6, 0.9, 0.2, 0.2, 0.4, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1];
        let out: Vec<Seg> = seq.iter().map(|&p| s.push(p)).collect();
        assert_eq!(
            out,
            [
                Seg::Silence,
                Seg::Start,
                Seg::Speech,
                Seg::Pause,
                Seg::Pause,
                Seg::Speech, // 0.4 >= 0.35 keeps speech going
                Seg::Speech,
                Seg::Pause,
                Seg::Pause,
                Seg::Pause,
                Seg::End { trailing: 4 },
                Seg::Silence,
            ]
        );
    }

    #[test]
    fn pitch_statistics_and_arousal() {
        let (med, range, sd) = pitch_stats(&[100.0, 100.0, 200.0, 200.0]).unwrap();
        assert_eq!(med, 100.0);
        assert!((range - 12.0).abs() < 1e-4 && (sd - 6.0).abs() < 1e-4);
        assert_eq!(pitch_stats(&[100.0, 120.0]), None);
        // quiet monotone speech is calm, loud animated speech is aroused
        let calm = vocal_arousal(-40.0, Some(0.5), Some(2.0), 0.3);
        let excited = vocal_arousal(-18.0, Some(4.0), Some(12.0), 0.9);
        assert!(calm < 0.2 && excited > 0.9, "{calm} {excited}");
        assert!((vocal_arousal(-15.0, Some(4.0), Some(12.0), 1.0) - 1.0).abs() < 1e-6);
        assert_eq!(vocal_arousal(-45.0, Some(0.0), Some(0.0), 0.0), 0.0);
        // without pitch, loudness and speaking time only
        assert!((vocal_arousal(-15.0, None, None, 1.0) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn fusion_weights_by_what_was_present() {
        assert_eq!(fuse(None, 0.0, None, 0.0), None);
        let f = fuse(Some((0.5, 0.2)), 1.0, None, 0.0).unwrap();
        assert_eq!(
            (f.valence, f.arousal, f.from),
            (Some(0.5), Some(0.2), "faces")
        );
        // prosody alone has no valence
        let f = fuse(None, 0.0, Some((None, 0.6)), 0.5).unwrap();
        assert_eq!((f.valence, f.arousal, f.from), (None, Some(0.6), "voice"));
        let f = fuse(Some((0.4, 0.0)), 0.75, Some((None, 0.8)), 0.25).unwrap();
        assert_eq!(f.from, "both");
        assert_eq!(f.valence, Some(0.4));
        assert!((f.arousal.unwrap() - 0.2).abs() < 1e-6);
        let f = fuse(Some((0.4, 0.0)), 0.5, Some((Some(-0.4), 0.8)), 0.5).unwrap();
        assert!(f.valence.unwrap().abs() < 1e-6 && (f.arousal.unwrap() - 0.4).abs() < 1e-6);
        // a face estimate with zero weight does not count
        assert_eq!(fuse(Some((0.4, 0.0)), 0.0, None, 0.0), None);
    }

    fn energy_analyzer() -> VoiceAnalyzer {
        VoiceAnalyzer::new(
            Vad::energy(-40.0, "test".into()),
            None,
            VoiceConfig::default(),
        )
    }

    #[test]
    fn a_tone_burst_is_one_segment_with_its_level_and_pitch_and_silence_is_none() {
        let x = synthesize(&[
            Synth::Silence { secs: 1.0 },
            Synth::Tone {
                hz: 180.0,
                dbfs: -20.0,
                secs: 1.0,
            },
            Synth::Silence { secs: 1.0 },
        ]);
        let mut a = energy_analyzer();
        let mut w = VoiceWindow::default();
        let mut segs = Vec::new();
        a.push(&x, 0, &mut w, Some(&mut segs));
        a.finish(&mut w, Some(&mut segs));
        assert_eq!(segs.len(), 1, "{segs:?}");
        let s = &segs[0];
        assert!((s.start_s - 1.0).abs() < 0.05, "{s:?}");
        assert!((s.duration_s - 1.0).abs() < 0.07, "{s:?}");
        assert!((s.loudness_dbfs + 20.0).abs() < 0.5, "{s:?}");
        let f0 = s.pitch_hz_median.unwrap();
        assert!((f0 - 180.0).abs() < 1.0, "{f0}");
        assert!(s.pitch_sd_st.unwrap() < 0.1, "a steady tone: {s:?}");
        let (v, fused) = w.finish();
        assert_eq!(v.segments, 1);
        assert!((v.audio_s - 3.0).abs() < 0.04, "{v:?}");
        assert!((v.speech_ratio - 1.0 / 3.0).abs() < 0.03, "{v:?}");
        assert!(
            fused.unwrap().0.is_none(),
            "no classifier: no voice valence"
        );

        let mut a = energy_analyzer();
        let mut w = VoiceWindow::default();
        a.push(
            &synthesize(&[Synth::Silence { secs: 2.0 }]),
            0,
            &mut w,
            None,
        );
        let (v, fused) = w.finish();
        assert_eq!(
            (v.speech_s, v.segments, v.loudness_dbfs, v.arousal),
            (0.0, 0, None, None)
        );
        assert!(fused.is_none());
    }

    #[test]
    fn a_click_is_shorter_than_min_speech_and_not_counted() {
        let x = synthesize(&[
            Synth::Silence { secs: 0.5 },
            Synth::Tone {
                hz: 300.0,
                dbfs: -20.0,
                secs: 0.1,
            },
            Synth::Silence { secs: 1.0 },
        ]);
        let mut a = energy_analyzer();
        let mut w = VoiceWindow::default();
        a.push(&x, 0, &mut w, None);
        a.finish(&mut w, None);
        assert_eq!(w.finish().0.segments, 0);
    }

    #[test]
    fn a_segment_across_a_window_boundary_counts_in_both_windows() {
        let x = synthesize(&[Synth::Tone {
            hz: 200.0,
            dbfs: -25.0,
            secs: 2.0,
        }]);
        let mut a = energy_analyzer();
        let (mut w1, mut w2) = (VoiceWindow::default(), VoiceWindow::default());
        a.push(&x[..16_000], 0, &mut w1, None);
        a.cut(&mut w1, None);
        a.push(&x[16_000..], 0, &mut w2, None);
        a.finish(&mut w2, None);
        let (s1, s2) = (w1.finish().0, w2.finish().0);
        assert!(s1.speech_s > 0.9 && s2.speech_s > 0.9, "{s1:?} {s2:?}");
        assert!((s1.speech_s + s2.speech_s - 2.0).abs() < 0.05);
    }
}
