//! The configuration's tables, one struct per table, each key with its default and doc;
//! re-exported by [`crate::config`].

use crate::summary::Encoding;
use emotiond_models::supervise::WatchdogConfig;
use emotiond_models::{EngineKind, EngineSettings, Runtimes};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinBackend {
    /// No LED, no button.
    None,
    /// Raspberry Pi GPIO through rppal (BCM numbers); a build with `--features rpi`.
    Rpi,
    /// Simulated pins mirrored to files in `sim_dir` (tests, demos, no hardware).
    Sim,
}

/// Status LED (running / no broker / no camera) and feedback button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndicatorsConfig {
    pub backend: PinBackend,
    /// GPIO (BCM number) of the status LED; unset: no LED.
    pub status_led: Option<u8>,
    /// The LED lights when its pin is low (wired to the supply).
    pub led_active_low: bool,
    /// GPIO (BCM number) of the feedback button; unset: no button.
    pub button: Option<u8>,
    /// The button connects the pin to ground (internal pull-up; pressed = low).
    pub button_active_low: bool,
    pub debounce_ms: u64,
    /// `backend = "sim"`: the folder holding the simulated pins' files.
    pub sim_dir: PathBuf,
}

impl Default for IndicatorsConfig {
    fn default() -> Self {
        IndicatorsConfig {
            backend: PinBackend::None,
            status_led: None,
            led_active_low: false,
            button: None,
            button_active_low: true,
            debounce_ms: 30,
            sim_dir: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioSourceKind {
    /// An ALSA capture device (`audio.device`).
    Alsa,
    /// WAV files or folders (`audio.paths`).
    Wav,
}

/// The microphone path (off by default: see docs/research.md, Audio).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    pub enabled: bool,
    pub source: AudioSourceKind,
    /// ALSA device: `default`, `hw:1,0`, `plughw:CARD=Device,DEV=0`...
    pub device: String,
    /// ALSA period asked of the device, ms.
    pub period_ms: u32,
    /// For source = "wav".
    pub paths: Vec<PathBuf>,
    pub pace: Pace,
    #[serde(rename = "loop")]
    pub looping: bool,
    /// `builtin:silero_vad` or a `voice_activity` package folder.
    pub vad: String,
    /// Engine of the VAD (unset `engine`: models.engine); a VAD that runs on no engine
    /// falls back to the energy gate.
    pub vad_engine: EngineSettings,
    pub vad_threshold: f32,
    pub min_speech_ms: u32,
    pub min_silence_ms: u32,
    /// Level above which a chunk is speech for the energy gate (fallback).
    pub energy_gate_dbfs: f32,
    pub pitch_min_hz: f32,
    pub pitch_max_hz: f32,
    /// A `speech_emotion` package folder; empty: none (no model ships with emotiond).
    pub speech_emotion: String,
    pub speech_emotion_engine: EngineSettings,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            enabled: false,
            source: AudioSourceKind::Alsa,
            device: "default".into(),
            period_ms: 32,
            paths: Vec::new(),
            pace: Pace::Realtime,
            looping: false,
            vad: "builtin:silero_vad".into(),
            vad_engine: EngineSettings::default(),
            vad_threshold: 0.5,
            min_speech_ms: 250,
            min_silence_ms: 300,
            energy_gate_dbfs: -40.0,
            pitch_min_hz: 60.0,
            pitch_max_hz: 500.0,
            speech_emotion: String::new(),
            speech_emotion_engine: EngineSettings::default(),
        }
    }
}

impl AudioConfig {
    pub fn voice(&self) -> crate::voice::VoiceConfig {
        crate::voice::VoiceConfig {
            threshold: self.vad_threshold,
            min_silence_ms: self.min_silence_ms,
            min_speech_ms: self.min_speech_ms,
            energy_gate_dbfs: self.energy_gate_dbfs,
            pitch_min_hz: self.pitch_min_hz,
            pitch_max_hz: self.pitch_max_hz,
            ..crate::voice::VoiceConfig::default()
        }
    }
}

/// Model updates pushed by the fleet over MQTT (needs `state_dir` and MQTT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdatesConfig {
    pub enabled: bool,
    /// Also follow `<prefix>/groups/<group>/models/set`; empty: only this device's topic.
    pub group: String,
    /// Ed25519 public keys (64 hex digits each) whose signatures are accepted. Empty: every
    /// package is refused.
    pub trusted_keys: Vec<String>,
    /// Refuse models/set messages without a valid order signature from a trusted key
    /// (reason `bad_order_signature`). Off: unsigned orders are followed as before signed
    /// orders existed (packages are still verified), without replay or expiry checks.
    pub require_signed_orders: bool,
    /// How long a new model is watched before it is kept.
    pub probation_s: f64,
    /// Frames a new model must have run before its detection rate and inference time are
    /// judged.
    pub min_frames: u64,
    /// Engine errors during probation that roll a new model back at once.
    pub max_errors: u64,
    /// Detection rate after the switch / before it below this: the detector is rolled back.
    pub min_detection_ratio: f32,
    /// A package whose chunks have not all arrived after this is refused.
    pub download_timeout_s: u64,
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        UpdatesConfig {
            enabled: true,
            group: String::new(),
            trusted_keys: Vec::new(),
            require_signed_orders: true,
            probation_s: 600.0,
            min_frames: 30,
            max_errors: 5,
            min_detection_ratio: 0.2,
            download_timeout_s: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A V4L2 device (`camera.device`).
    V4l2,
    /// Image and Y4M files or folders (`camera.paths`).
    Files,
    /// The sample clip built into the binary.
    Demo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// Y4M at its frame rate, stills at `stills_fps`.
    Realtime,
    /// As fast as inference goes.
    Fast,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    pub source: SourceKind,
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// "MJPG" or "YUYV": tried first; the other is the fallback.
    pub format: String,
    /// V4L2: no frame for this long (twice that for the first after opening) and the camera
    /// is wedged: reported unavailable, closed and reopened.
    pub frame_timeout_ms: u32,
    pub paths: Vec<PathBuf>,
    pub pace: Pace,
    pub stills_fps: f32,
    /// Start the files over at the end instead of stopping.
    #[serde(rename = "loop")]
    pub looping: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Engine for both models unless `detector_engine.engine` / `expression_engine.engine`
    /// say otherwise: `tract`, `tflite` or `onnxruntime`.
    pub engine: EngineKind,
    /// `builtin:<name>` or a package folder holding `manifest.toml`.
    pub detector: String,
    pub expression: String,
    /// Run each package's test vectors on the engine before using it; an engine that fails
    /// them is skipped for the next one in the fallback chain.
    pub verify_test_vectors: bool,
    pub max_faces: usize,
    /// Faces smaller than this (pixels, shorter side) are not classified or counted.
    pub min_face_px: u32,
    /// The TFLite C library; unset: `libtensorflowlite_c.so` from the loader's path.
    pub tflite_library: Option<PathBuf>,
    /// ONNX Runtime; unset: `libonnxruntime.so` from the loader's path.
    pub onnxruntime_library: Option<PathBuf>,
    pub detector_engine: EngineSettings,
    pub expression_engine: EngineSettings,
    pub watchdog: WatchdogConfig,
}

impl ModelsConfig {
    pub fn runtimes(&self) -> Runtimes {
        Runtimes {
            tflite_library: self.tflite_library.clone(),
            onnxruntime_library: self.onnxruntime_library.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    pub window_s: f64,
    /// Frames waiting for inference; when full the oldest is dropped (and counted).
    pub queue_frames: usize,
    pub smoothing_tau_s: f64,
    pub track_iou: f32,
    pub track_max_missed_s: f64,
    /// Threads analysing frames, each with its own copy of the models (frames are taken in
    /// turn and their results put back in capture order); 0: one per CPU core, at most 4.
    pub threads: usize,
}

impl PipelineConfig {
    /// Most analysis threads `threads = 0` picks.
    pub const AUTO_THREADS_MAX: usize = 4;

    /// The analysis threads to run: `threads`, or for 0 the CPU cores this process may use
    /// (at most [`Self::AUTO_THREADS_MAX`]).
    pub fn analysis_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(Self::AUTO_THREADS_MAX),
            n => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub topic_prefix: String,
    pub encoding: Encoding,
    pub keep_alive_s: u64,
    /// Summaries kept (on disk under `state_dir/outbox`) until the broker acknowledges them;
    /// beyond this the oldest is dropped.
    pub outbox_max: usize,
    /// TLS to the broker: its certificate is checked against `ca_file` and must be for `host`.
    pub tls: bool,
    /// The CA (PEM) that signed the broker's certificate; unset or empty: the system bundle
    /// ([`SYSTEM_CA_FILE`]).
    pub ca_file: Option<PathBuf>,
    /// This device's client certificate (PEM), for a broker that requires one (mutual TLS);
    /// with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key_file: Option<PathBuf>,
}

/// The system's CA bundle (Debian's `ca-certificates`), trusted when `mqtt.ca_file` is unset.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

impl MqttConfig {
    /// A file key that is set: absent and empty both mean unset.
    pub fn file(key: &Option<PathBuf>) -> Option<&std::path::Path> {
        key.as_deref().filter(|p| !p.as_os_str().is_empty())
    }
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            source: SourceKind::V4l2,
            device: "/dev/video0".into(),
            width: 640,
            height: 480,
            fps: 15,
            format: "MJPG".into(),
            frame_timeout_ms: 3000,
            paths: Vec::new(),
            pace: Pace::Realtime,
            stills_fps: 5.0,
            looping: false,
        }
    }
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            engine: EngineKind::Tract,
            detector: format!("builtin:{}", emotiond_models::builtin::DEFAULT_DETECTOR),
            expression: format!("builtin:{}", emotiond_models::builtin::DEFAULT_EXPRESSION),
            verify_test_vectors: true,
            max_faces: 8,
            min_face_px: 24,
            tflite_library: None,
            onnxruntime_library: None,
            detector_engine: EngineSettings::default(),
            expression_engine: EngineSettings::default(),
            watchdog: WatchdogConfig::default(),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            window_s: 10.0,
            queue_frames: 2,
            smoothing_tau_s: 0.5,
            track_iou: 0.3,
            track_max_missed_s: 1.0,
            threads: 0,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: true,
            host: "localhost".into(),
            port: 1883,
            username: None,
            password: None,
            topic_prefix: "emotiond".into(),
            encoding: Encoding::Json,
            keep_alive_s: 15,
            outbox_max: 1000,
            tls: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}
