//! The configuration file (TOML). Every key has a default; unknown keys are errors; after
//! parsing, validation reports every problem at once, each with its key path.
//!
//! Length: ~640 lines, nearly all the documented serde tree (one struct per table, each key
//! with its default and doc) and its validation; splitting it would scatter the keys.

use crate::summary::Encoding;
use emotiond_models::supervise::WatchdogConfig;
use emotiond_models::{EngineKind, EngineSettings, Runtimes};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/emotiond/emotiond.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Identifies this device in topics and summaries. Empty: the host name.
    pub device_id: String,
    /// Writable state (the summary outbox). Empty: keep nothing on disk.
    pub state_dir: PathBuf,
    pub camera: CameraConfig,
    pub models: ModelsConfig,
    pub pipeline: PipelineConfig,
    pub mqtt: MqttConfig,
    pub updates: UpdatesConfig,
    pub indicators: IndicatorsConfig,
    pub audio: AudioConfig,
}

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

/// The microphone path (off by default: see the README's Audio section).
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
    /// How long a new model is watched before it is kept.
    pub probation_s: f64,
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
            probation_s: 600.0,
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
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            device_id: String::new(),
            state_dir: PathBuf::from("/var/lib/emotiond"),
            camera: CameraConfig::default(),
            models: ModelsConfig::default(),
            pipeline: PipelineConfig::default(),
            mqtt: MqttConfig::default(),
            updates: UpdatesConfig::default(),
            indicators: IndicatorsConfig::default(),
            audio: AudioConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {}", problems.iter().map(|(k, p)| format!("`{k}`: {p}")).collect::<Vec<_>>().join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<(String, String)>,
    },
}

impl Config {
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let problems = c.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        if c.device_id.is_empty() {
            c.device_id = hostname();
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Every problem, with its key path.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut bad = |k: &str, m: &str| p.push((k.to_string(), m.to_string()));
        let topic_safe = |s: &str| !s.is_empty() && !s.contains(['+', '#', '/', '\0']);
        if !self.device_id.is_empty() && !topic_safe(&self.device_id) {
            bad(
                "device_id",
                "must not contain '/', '+', '#' (it is a topic level)",
            );
        }
        let c = &self.camera;
        if c.source == SourceKind::Files && c.paths.is_empty() {
            bad(
                "camera.paths",
                "source = \"files\" needs at least one file or folder",
            );
        }
        if c.source == SourceKind::V4l2 && c.device.is_empty() {
            bad("camera.device", "must name a device such as /dev/video0");
        }
        if c.width == 0 || c.height == 0 || c.width > 7680 || c.height > 4320 {
            bad(
                "camera.width",
                "width and height must be within 1..=7680 x 1..=4320",
            );
        }
        if c.fps == 0 || c.fps > 240 {
            bad("camera.fps", "must be within 1..=240");
        }
        if !matches!(c.format.to_ascii_uppercase().as_str(), "MJPG" | "YUYV") {
            bad("camera.format", "must be \"MJPG\" or \"YUYV\"");
        }
        if !(c.stills_fps > 0.0 && c.stills_fps <= 240.0) {
            bad("camera.stills_fps", "must be within 0..=240 and above 0");
        }
        let m = &self.models;
        for (k, v) in [
            ("models.detector", &m.detector),
            ("models.expression", &m.expression),
        ] {
            if v.is_empty() {
                bad(k, "must be builtin:<name> or a package folder");
            } else if let Some(name) = v.strip_prefix("builtin:") {
                if !emotiond_models::builtin::names().any(|n| n == name) {
                    let known: Vec<_> = emotiond_models::builtin::names().collect();
                    bad(
                        k,
                        &format!("no built-in package {name:?} (built in: {known:?})"),
                    );
                }
            }
        }
        let ind = &self.indicators;
        if ind.backend != PinBackend::None && ind.status_led.is_none() && ind.button.is_none() {
            bad(
                "indicators.backend",
                "set status_led and/or button (or backend = \"none\")",
            );
        }
        for (k, v) in [
            ("indicators.status_led", ind.status_led),
            ("indicators.button", ind.button),
        ] {
            if v.is_some_and(|p| p > 53) {
                bad(k, "must be a GPIO number within 0..=53");
            }
        }
        if ind.status_led.is_some() && ind.status_led == ind.button {
            bad("indicators.button", "must not be the status LED's pin");
        }
        if ind.backend == PinBackend::Sim && ind.sim_dir.as_os_str().is_empty() {
            bad("indicators.sim_dir", "backend = \"sim\" needs a folder");
        }
        if ind.backend == PinBackend::Rpi && !cfg!(feature = "rpi") {
            bad(
                "indicators.backend",
                "this build has no Raspberry Pi GPIO support (build with --features rpi)",
            );
        }
        if ind.debounce_ms > 1000 {
            bad("indicators.debounce_ms", "must be within 0..=1000");
        }
        if m.max_faces == 0 || m.max_faces > 64 {
            bad("models.max_faces", "must be within 1..=64");
        }
        for (k, s) in [
            ("models.detector_engine", &m.detector_engine),
            ("models.expression_engine", &m.expression_engine),
        ] {
            if let Err(e) = emotiond_models::runtime::chain(s.engine.unwrap_or(m.engine), s) {
                bad(k, &e.to_string());
            }
            if s.threads == 0 || s.threads > 64 {
                bad(k, "threads must be within 1..=64");
            }
        }
        let w = &m.watchdog;
        if !(w.slow_factor >= 1.5 && w.slow_factor <= 1000.0) {
            bad("models.watchdog.slow_factor", "must be within 1.5..=1000");
        }
        if w.stall_ms < 10 || w.stall_ms > 600_000 {
            bad("models.watchdog.stall_ms", "must be within 10..=600000");
        }
        if w.max_rebuilds_per_min == 0 || w.max_rebuilds_per_min > 60 {
            bad(
                "models.watchdog.max_rebuilds_per_min",
                "must be within 1..=60",
            );
        }
        let pl = &self.pipeline;
        if !(pl.window_s >= 0.1 && pl.window_s <= 3600.0) {
            bad("pipeline.window_s", "must be within 0.1..=3600 seconds");
        }
        if pl.queue_frames == 0 || pl.queue_frames > 64 {
            bad("pipeline.queue_frames", "must be within 1..=64");
        }
        if !(pl.smoothing_tau_s >= 0.0 && pl.smoothing_tau_s <= 60.0) {
            bad("pipeline.smoothing_tau_s", "must be within 0..=60 seconds");
        }
        if !(pl.track_iou > 0.0 && pl.track_iou <= 1.0) {
            bad("pipeline.track_iou", "must be within 0..=1 and above 0");
        }
        if !(pl.track_max_missed_s > 0.0 && pl.track_max_missed_s <= 60.0) {
            bad(
                "pipeline.track_max_missed_s",
                "must be within 0..=60 and above 0",
            );
        }
        let u = &self.updates;
        for k in &u.trusted_keys {
            if let Err(e) = emotiond_models::signed::parse_public(k) {
                bad("updates.trusted_keys", &format!("{k:?}: {e}"));
            }
        }
        if u.group.contains(['/', '+', '#']) {
            bad("updates.group", "must be one topic level without / + #");
        }
        if !(u.probation_s >= 0.0 && u.probation_s <= 86_400.0) {
            bad("updates.probation_s", "must be within 0..=86400 seconds");
        }
        if !(u.min_detection_ratio >= 0.0 && u.min_detection_ratio <= 1.0) {
            bad("updates.min_detection_ratio", "must be within 0..=1");
        }
        if u.download_timeout_s == 0 || u.download_timeout_s > 86_400 {
            bad("updates.download_timeout_s", "must be within 1..=86400");
        }
        let a = &self.audio;
        if a.enabled {
            if a.source == AudioSourceKind::Wav && a.paths.is_empty() {
                bad(
                    "audio.paths",
                    "source = \"wav\" needs at least one file or folder",
                );
            }
            if a.source == AudioSourceKind::Alsa && a.device.is_empty() {
                bad(
                    "audio.device",
                    "must name an ALSA device such as default or hw:1,0",
                );
            }
        }
        if let Some(name) = a.vad.strip_prefix("builtin:") {
            if !emotiond_models::builtin::names().any(|n| n == name) {
                bad("audio.vad", &format!("no built-in package {name:?}"));
            }
        } else if a.vad.is_empty() {
            bad("audio.vad", "must be builtin:<name> or a package folder");
        }
        if a.period_ms < 5 || a.period_ms > 1000 {
            bad("audio.period_ms", "must be within 5..=1000");
        }
        if !(a.vad_threshold > 0.15 && a.vad_threshold < 1.0) {
            bad("audio.vad_threshold", "must be within 0.15..1 (exclusive)");
        }
        if a.min_speech_ms > 10_000 || a.min_silence_ms == 0 || a.min_silence_ms > 10_000 {
            bad(
                "audio.min_silence_ms",
                "min_speech_ms within 0..=10000, min_silence_ms within 1..=10000",
            );
        }
        if !(a.energy_gate_dbfs > -120.0 && a.energy_gate_dbfs < 0.0) {
            bad("audio.energy_gate_dbfs", "must be within -120..0 dBFS");
        }
        if !(a.pitch_min_hz >= 30.0 && a.pitch_min_hz < a.pitch_max_hz && a.pitch_max_hz <= 1000.0)
        {
            bad(
                "audio.pitch_min_hz",
                "need 30 <= pitch_min_hz < pitch_max_hz <= 1000",
            );
        }
        for (k, s) in [
            ("audio.vad_engine", &a.vad_engine),
            ("audio.speech_emotion_engine", &a.speech_emotion_engine),
        ] {
            if let Err(e) = emotiond_models::runtime::chain(s.engine.unwrap_or(m.engine), s) {
                bad(k, &e.to_string());
            }
        }
        let q = &self.mqtt;
        if q.enabled && q.host.is_empty() {
            bad("mqtt.host", "must not be empty when mqtt.enabled");
        }
        if q.port == 0 {
            bad("mqtt.port", "must not be 0");
        }
        if !q
            .topic_prefix
            .split('/')
            .all(|l| !l.is_empty() && !l.contains(['+', '#']))
        {
            bad(
                "mqtt.topic_prefix",
                "must be topic levels without '+', '#' or empty levels",
            );
        }
        if q.keep_alive_s < 5 || q.keep_alive_s > 3600 {
            bad("mqtt.keep_alive_s", "must be within 5..=3600");
        }
        if q.outbox_max == 0 || q.outbox_max > 1_000_000 {
            bad("mqtt.outbox_max", "must be within 1..=1000000");
        }
        if q.password.is_some() && q.username.is_none() {
            bad("mqtt.password", "needs mqtt.username");
        }
        p
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().replace(['/', '+', '#'], "_"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "emotiond".into())
}

/// The documented default configuration file (`emotiond config --print-default`).
pub const DEFAULT_FILE: &str = include_str!("../emotiond.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_default_file_equals_the_built_in_defaults() {
        let mut c = Config::parse(DEFAULT_FILE, Path::new("emotiond.toml")).unwrap();
        let mut d = Config::default();
        c.device_id.clear();
        d.device_id.clear();
        assert_eq!(c, d);
    }

    #[test]
    fn empty_file_gives_defaults_and_a_device_id() {
        let c = Config::parse("", Path::new("x")).unwrap();
        assert!(!c.device_id.is_empty());
        assert_eq!(c.pipeline.window_s, 10.0);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[camera]\nwidht = 3\n", Path::new("/etc/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("widht") && e.contains("/etc/x.toml"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = Config::parse("[pipeline]\nwindow_s = \"ten\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("window_s"), "{e}");
    }

    #[test]
    fn every_invalid_value_is_reported_with_its_key() {
        let text = "device_id = \"a/b\"\n[camera]\nsource = \"files\"\nfps = 0\n[pipeline]\nwindow_s = 0.0\n[mqtt]\nport = 0\nencoding = \"json\"\n[models]\ndetector = \"builtin:nope\"\n";
        let e = Config::parse(text, Path::new("x")).unwrap_err().to_string();
        for k in [
            "`device_id`",
            "`camera.paths`",
            "`camera.fps`",
            "`pipeline.window_s`",
            "`mqtt.port`",
            "`models.detector`",
        ] {
            assert!(e.contains(k), "{k} missing from {e}");
        }
    }

    #[test]
    fn indicator_problems_are_named() {
        let text = "[indicators]\nbackend = \"sim\"\nstatus_led = 60\nbutton = 60\n";
        let e = Config::parse(text, Path::new("x")).unwrap_err().to_string();
        for k in [
            "`indicators.status_led`: must be a GPIO number",
            "`indicators.button`: must not be the status LED's pin",
            "`indicators.sim_dir`",
        ] {
            assert!(e.contains(k), "{k} in {e}");
        }
        let e = Config::parse(
            "[indicators]\nbackend = \"sim\"\nsim_dir = \"/tmp/p\"\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("set status_led and/or button"), "{e}");
        let rpi = Config::parse(
            "[indicators]\nbackend = \"rpi\"\nstatus_led = 17\n",
            Path::new("x"),
        );
        assert_eq!(rpi.is_ok(), cfg!(feature = "rpi"), "{rpi:?}");
        let ok =
            "[indicators]\nbackend = \"sim\"\nstatus_led = 17\nbutton = 27\nsim_dir = \"/tmp/p\"\n";
        assert!(Config::parse(ok, Path::new("x")).is_ok());
    }

    #[test]
    fn bad_enum_value_is_named() {
        let e = Config::parse("[mqtt]\nencoding = \"xml\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("xml") || e.contains("encoding"), "{e}");
    }
}
