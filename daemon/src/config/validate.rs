//! Validation of a parsed [`Config`]: every problem at once, each with its key path.

use super::{AudioSourceKind, Config, MqttConfig, PinBackend, SourceKind};

impl Config {
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
        if !(100..=600_000).contains(&c.frame_timeout_ms) {
            bad(
                "camera.frame_timeout_ms",
                "must be within 100..=600000 (ms without a frame before the camera is reopened)",
            );
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
        if pl.threads > 64 {
            bad(
                "pipeline.threads",
                "must be within 0..=64 (0: one per CPU core, at most 4)",
            );
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
        if u.min_frames == 0 || u.min_frames > 100_000 {
            bad("updates.min_frames", "must be within 1..=100000");
        }
        if u.max_errors == 0 || u.max_errors > 100_000 {
            bad("updates.max_errors", "must be within 1..=100000");
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
        let (ca, cert, key) = (
            MqttConfig::file(&q.ca_file),
            MqttConfig::file(&q.cert_file),
            MqttConfig::file(&q.key_file),
        );
        if !q.tls {
            for (k, v) in [
                ("mqtt.ca_file", ca),
                ("mqtt.cert_file", cert),
                ("mqtt.key_file", key),
            ] {
                if v.is_some() {
                    bad(
                        k,
                        "is used only over TLS: set mqtt.tls = true (or remove it)",
                    );
                }
            }
        }
        match (cert, key) {
            (Some(_), None) => bad(
                "mqtt.cert_file",
                "needs mqtt.key_file (the client certificate's private key)",
            ),
            (None, Some(_)) => bad(
                "mqtt.key_file",
                "needs mqtt.cert_file (the client certificate it belongs to)",
            ),
            _ => {}
        }
        self.api.problems(&mut bad);
        p
    }
}
