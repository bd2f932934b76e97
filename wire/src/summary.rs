//! The summary payload published once per window, and its codecs (JSON, postcard); the
//! feedback event, which carries the window in progress as a partial summary.
//! Only aggregates: no frame, face crop, box or track identity ever appears here.

use crate::health::SourceState;
use crate::manifest::EMOTIONS;
use serde::{Deserialize, Serialize};

/// Payload format version; bump on incompatible changes.
/// 2: `frame_gap_ms_max`, and per model `fallback`, `slow`, `stalls`, `rebuilds`.
/// 3: `voice`, `fused_valence`, `fused_arousal`, `fused_from` (appended; JSON readers of
/// schema 2 are unaffected, and schema-2 JSON decodes with them null).
pub const SCHEMA_VERSION: u32 = 3;

/// A value per emotion, in the order of [`EMOTIONS`] (JSON: an object keyed by name).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PerEmotion<T> {
    pub angry: T,
    pub disgust: T,
    pub fear: T,
    pub happy: T,
    pub sad: T,
    pub surprise: T,
    pub neutral: T,
}

impl<T: Copy> PerEmotion<T> {
    pub fn from_array(a: [T; 7]) -> Self {
        let [angry, disgust, fear, happy, sad, surprise, neutral] = a;
        PerEmotion {
            angry,
            disgust,
            fear,
            happy,
            sad,
            surprise,
            neutral,
        }
    }
    pub fn to_array(&self) -> [T; 7] {
        [
            self.angry,
            self.disgust,
            self.fear,
            self.happy,
            self.sad,
            self.surprise,
            self.neutral,
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `name@version` of the package.
    pub id: String,
    /// Engine running it: "tract", "tflite" or "onnxruntime".
    pub engine: String,
    /// Hardware delegate or execution provider, if any ("xnnpack", "edgetpu", "cuda").
    pub accelerator: Option<String>,
    /// Why this is not the configured engine/accelerator (each skipped step and its
    /// reason); null when it is.
    pub fallback: Option<String>,
    /// Stall watchdog since start: slow inferences, stalls, engines rebuilt.
    pub slow: u64,
    pub stalls: u64,
    pub rebuilds: u64,
}

/// The audio side of a window (`voice`): aggregates only, never audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceSummary {
    /// Microphone state at the window's end: "ok", "unavailable", "ended", "starting" (a
    /// [`SourceState`]); `emotiond analyze` writes "file" for a WAV file read whole, so it
    /// stays a string here.
    pub microphone: String,
    /// `name@version` of the VAD, or `energy_gate`.
    pub vad: String,
    /// "tract", "onnxruntime", or "energy" (the fallback gate).
    pub vad_engine: String,
    /// Why the VAD is not the configured engine, or why the energy gate decides; null when
    /// the configured engine runs.
    pub vad_fallback: Option<String>,
    /// Seconds of audio analysed in the window, and of it, seconds lost to overruns (filled
    /// with silence).
    pub audio_s: f32,
    pub lost_s: f32,
    /// Seconds of speech, and speech / audio.
    pub speech_s: f32,
    pub speech_ratio: f32,
    /// Speech segments ended (or cut by the window's end) in the window.
    pub segments: u32,
    /// Level of the speech, dBFS (energy mean over speech chunks); null without speech.
    pub loudness_dbfs: Option<f32>,
    /// F0 over voiced speech chunks: median (Hz), 10th–90th percentile range and standard
    /// deviation (semitones); null with fewer than 3 voiced chunks.
    pub pitch_hz_median: Option<f32>,
    pub pitch_range_st: Option<f32>,
    pub pitch_sd_st: Option<f32>,
    /// Voiced chunks / speech chunks.
    pub voiced_ratio: Option<f32>,
    /// Vocal arousal in [0, 1]: a prosodic estimate (docs/research.md, Audio), not a classifier.
    pub arousal: Option<f32>,
    /// Speech-emotion probabilities (duration-weighted mean over segments) when a classifier
    /// is configured.
    pub emotions: Option<PerEmotion<f32>>,
    pub classifier: Option<ModelInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema: u32,
    pub device_id: String,
    /// Increases by one per summary from this process start; with `boot_id` it identifies
    /// a summary (consumers de-duplicate redeliveries on the pair).
    pub seq: u64,
    /// Random per process start.
    pub boot_id: u32,
    /// Window bounds, milliseconds since the Unix epoch.
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    pub frames_processed: u32,
    /// Frames the camera delivered that inference had no time for (drop-oldest queue).
    pub frames_dropped: u32,
    /// Frames that could not be decoded (corrupt files, bad camera buffers).
    pub frames_skipped: u32,
    /// Camera state at the end of the window: "ok", "unavailable", "ended" or "starting".
    pub camera: SourceState,
    /// Sum over processed frames of the faces detected.
    pub faces_seen: u32,
    /// Distinct face tracks observed in the window.
    pub distinct_tracks: u32,
    /// Person-seconds of presence: the time each track was observed, summed over tracks.
    pub dwell_s: f32,
    /// Mean over face observations of the smoothed per-track probabilities.
    pub emotions: PerEmotion<f32>,
    /// Per track, its dominant emotion over the window; counts of tracks.
    pub dominant: PerEmotion<u32>,
    /// Circumplex estimate from the probabilities, each in -1..1 (null without faces).
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    /// Inference time per frame (detector + all classifier runs), milliseconds.
    pub inference_ms_mean: Option<f32>,
    pub inference_ms_p95: Option<f32>,
    /// Longest time between two processed frames in the window (a stall, a model switch).
    pub frame_gap_ms_max: Option<f32>,
    pub detector: ModelInfo,
    pub expression: ModelInfo,
    /// The audio side; null when audio is off.
    #[serde(default)]
    pub voice: Option<VoiceSummary>,
    /// Face and voice estimates combined (docs/research.md, Audio: fusion), −1..1; null when
    /// neither faces nor speech were present.
    #[serde(default)]
    pub fused_valence: Option<f32>,
    #[serde(default)]
    pub fused_arousal: Option<f32>,
    /// "faces", "voice" or "both": what the fused values come from.
    #[serde(default)]
    pub fused_from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Json,
    Postcard,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("summary JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("summary postcard: {0}")]
    Postcard(#[from] postcard::Error),
}

impl Summary {
    pub fn encode(&self, enc: Encoding) -> Result<Vec<u8>, CodecError> {
        Ok(match enc {
            Encoding::Json => serde_json::to_vec(self)?,
            Encoding::Postcard => postcard::to_allocvec(self)?,
        })
    }
    pub fn decode(bytes: &[u8], enc: Encoding) -> Result<Summary, CodecError> {
        Ok(match enc {
            Encoding::Json => serde_json::from_slice(bytes)?,
            Encoding::Postcard => postcard::from_bytes(bytes)?,
        })
    }
}

/// The feedback event (`<prefix>/<device>/feedback`): a press of the feedback button, with
/// the window in progress as a partial summary (its `window_end_ms` is the press).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Always `feedback`.
    pub event: String,
    /// Always `button` (the only kind so far).
    pub kind: String,
    pub ts_ms: u64,
    pub device_id: String,
    pub boot_id: u32,
    pub window: Summary,
    /// The emotion the person stated, when the kiosk app asks ("I am happy"): one of
    /// [`EMOTIONS`]. Absent for a plain button press ("it got this wrong").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Feedback {
    pub fn button(ts_ms: u64, window: Summary) -> Feedback {
        Feedback {
            event: "feedback".into(),
            kind: "button".into(),
            ts_ms,
            device_id: window.device_id.clone(),
            boot_id: window.boot_id,
            window,
            label: None,
        }
    }

    /// JSON with sorted keys (the window's too) and its `f32` fields written as `f64`, as
    /// the event has always been published.
    pub fn to_json(&self) -> Vec<u8> {
        crate::json_via_value(self)
    }
}

const _: () = assert!(EMOTIONS.len() == 7);

/// A summary with every field set, for tests of the payloads.
#[doc(hidden)]
pub fn sample() -> Summary {
    Summary {
        schema: SCHEMA_VERSION,
        device_id: "kiosk-7".into(),
        seq: 42,
        boot_id: 7,
        window_start_ms: 1_700_000_000_000,
        window_end_ms: 1_700_000_010_000,
        frames_processed: 150,
        frames_dropped: 3,
        frames_skipped: 1,
        camera: SourceState::Ok,
        faces_seen: 140,
        distinct_tracks: 2,
        dwell_s: 12.5,
        emotions: PerEmotion::from_array([0.01, 0.0, 0.02, 0.8, 0.02, 0.05, 0.1]),
        dominant: PerEmotion::from_array([0, 0, 0, 2, 0, 0, 0]),
        valence: Some(0.6),
        arousal: Some(0.4),
        inference_ms_mean: Some(4.5),
        inference_ms_p95: Some(6.0),
        frame_gap_ms_max: Some(70.0),
        detector: ModelInfo {
            id: "blazeface@1".into(),
            engine: "tract".into(),
            accelerator: None,
            fallback: None,
            slow: 0,
            stalls: 0,
            rebuilds: 0,
        },
        expression: ModelInfo {
            id: "fer@1".into(),
            engine: "tflite".into(),
            accelerator: Some("xnnpack".into()),
            fallback: None,
            slow: 1,
            stalls: 0,
            rebuilds: 0,
        },
        voice: Some(VoiceSummary {
            microphone: "ok".into(),
            vad: "silero_vad@6.2.3".into(),
            vad_engine: "tract".into(),
            vad_fallback: None,
            audio_s: 10.0,
            lost_s: 0.0,
            speech_s: 3.5,
            speech_ratio: 0.35,
            segments: 2,
            loudness_dbfs: Some(-24.0),
            pitch_hz_median: Some(140.0),
            pitch_range_st: Some(6.0),
            pitch_sd_st: Some(2.0),
            voiced_ratio: Some(0.7),
            arousal: Some(0.55),
            emotions: None,
            classifier: None,
        }),
        fused_valence: Some(0.6),
        fused_arousal: Some(0.35),
        fused_from: Some("both".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_postcard_round_trip() {
        let s = sample();
        for enc in [Encoding::Json, Encoding::Postcard] {
            let bytes = s.encode(enc).unwrap();
            assert_eq!(Summary::decode(&bytes, enc).unwrap(), s);
        }
        let pc = s.encode(Encoding::Postcard).unwrap();
        let js = s.encode(Encoding::Json).unwrap();
        assert!(
            pc.len() < js.len() / 2,
            "postcard {} vs json {}",
            pc.len(),
            js.len()
        );
    }

    #[test]
    fn json_names_every_emotion() {
        let v: serde_json::Value =
            serde_json::from_slice(&sample().encode(Encoding::Json).unwrap()).unwrap();
        for e in EMOTIONS {
            assert!(v["emotions"][e].is_number(), "{e}");
            assert!(v["dominant"][e].is_number(), "{e}");
        }
        assert_eq!(v["seq"], 42);
    }

    #[test]
    fn schema_2_json_still_decodes_with_the_new_fields_null() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&sample().encode(Encoding::Json).unwrap()).unwrap();
        let o = v.as_object_mut().unwrap();
        for k in ["voice", "fused_valence", "fused_arousal", "fused_from"] {
            assert!(o.remove(k).is_some(), "{k}");
        }
        o.insert("schema".into(), 2.into());
        let s = Summary::decode(v.to_string().as_bytes(), Encoding::Json).unwrap();
        assert_eq!((s.schema, s.voice, s.fused_from), (2, None, None));
    }

    #[test]
    fn corrupt_payloads_are_errors() {
        assert!(Summary::decode(b"{\"seq\":", Encoding::Json).is_err());
        let pc = sample().encode(Encoding::Postcard).unwrap();
        assert!(Summary::decode(&pc[..pc.len() / 2], Encoding::Postcard).is_err());
    }

    #[test]
    fn feedback_is_the_documented_json() {
        let f = Feedback::button(1_700_000_005_000, sample());
        let v: serde_json::Value = serde_json::from_slice(&f.to_json()).unwrap();
        assert_eq!(v["event"], "feedback");
        assert_eq!(v["kind"], "button");
        assert_eq!(v["ts_ms"], 1_700_000_005_000u64);
        assert_eq!(v["device_id"], "kiosk-7");
        assert_eq!(v["boot_id"], 7);
        assert_eq!(v["window"]["seq"], 42);
        assert_eq!(v["window"]["camera"], "ok");
        // The same bytes `serde_json::json!` gave when the event was built with it.
        let old = serde_json::json!({
            "event": "feedback", "kind": "button", "ts_ms": f.ts_ms,
            "device_id": f.window.device_id, "boot_id": f.window.boot_id, "window": f.window,
        })
        .to_string()
        .into_bytes();
        assert_eq!(f.to_json(), old);
    }
}
