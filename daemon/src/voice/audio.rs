//! The audio path of the daemon: the microphone on its own thread, each chunk through the
//! [`VoiceAnalyzer`] into the current [`VoiceWindow`], which the pipeline takes when a
//! window closes. The analyzer and the window sit behind one lock, so the window's end cuts
//! a segment in progress exactly there. A microphone that is missing or goes away is reported
//! in health and retried with back-off; it never stops the video path.

use crate::analyzer::load_package;
use crate::config::{AudioConfig, AudioSourceKind, ModelsConfig, Pace};
use crate::health::SourceHealth;
use crate::shutdown::Shutdown;
use crate::voice::{SegmentFeatures, VoiceAnalyzer, VoiceWindow};
use anyhow::{Context, Result};
use emotiond_hal::{MicError, Microphone, WavSource};
use emotiond_models::runtime;
use emotiond_models::speech::SpeechEmotionClassifier;
use emotiond_models::vad::Vad;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Microphone health, in `health` and `emotiond check` (the payload type is shared with the
/// fleet); it starts as `starting`.
pub use emotiond_wire::MicHealth;

/// The audio path as the pipeline sees it: the voice state the audio thread fills, and the
/// microphone's health (its state goes into each window's voice block). Cloning shares both.
#[derive(Clone)]
pub struct VoiceInput {
    pub state: Arc<Mutex<VoiceState>>,
    pub microphone: SourceHealth,
}

impl VoiceInput {
    pub fn new(state: VoiceState) -> VoiceInput {
        VoiceInput {
            state: Arc::new(Mutex::new(state)),
            microphone: SourceHealth::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VoiceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Close the voice window: the summary's voice block and the voice estimate.
    pub fn finish(&self) -> crate::voice::WindowVoice {
        let mic = self.microphone.state();
        self.lock().finish_window(mic.as_str())
    }

    /// The voice block of the window in progress, leaving it open.
    pub fn peek(&self) -> crate::voice::WindowVoice {
        let mic = self.microphone.state();
        self.lock().peek_window(mic.as_str())
    }
}

/// The VAD, the features and the window being filled.
pub struct VoiceState {
    pub analyzer: VoiceAnalyzer,
    pub window: VoiceWindow,
    pub classifier_id: Option<String>,
}

impl VoiceState {
    /// Close the window: cut a segment in progress, and return the summary's voice block
    /// (with the microphone state) and the voice's (valence, arousal) for fusion.
    pub fn finish_window(&mut self, microphone: &str) -> crate::voice::WindowVoice {
        self.analyzer.cut(&mut self.window, None);
        let w = std::mem::take(&mut self.window);
        self.describe(w, microphone)
    }

    /// The voice block the window would have if it closed now, leaving it open (a segment
    /// in progress is not counted yet).
    pub fn peek_window(&self, microphone: &str) -> crate::voice::WindowVoice {
        self.describe(self.window.clone(), microphone)
    }

    fn describe(
        &self,
        w: crate::voice::VoiceWindow,
        microphone: &str,
    ) -> crate::voice::WindowVoice {
        let (mut s, va) = w.finish();
        s.microphone = microphone.to_string();
        s.vad = self.analyzer.vad.info.id.clone();
        s.vad_engine = self.analyzer.vad.info.engine.clone();
        s.vad_fallback = self.analyzer.vad.info.fallback.clone();
        s.classifier = match (&self.classifier_id, &self.analyzer.classifier) {
            (Some(id), Some(c)) => Some(crate::summary::model_info(id.clone(), c.engine())),
            _ => None,
        };
        (s, va)
    }
}

/// Load the VAD (the energy gate when no engine runs it) and the speech-emotion model, if
/// configured (one that does not load is an error, as for the vision models).
pub fn load_voice(audio: &AudioConfig, models: &ModelsConfig) -> Result<VoiceState> {
    let vad_pkg = load_package(&audio.vad).map_err(|e| format!("{e:#}"));
    let kind = audio.vad_engine.engine.unwrap_or(models.engine);
    let vad = Vad::load(
        vad_pkg,
        kind,
        &audio.vad_engine,
        &models.runtimes(),
        models.verify_test_vectors,
        audio.energy_gate_dbfs,
    );
    log::info!(
        "voice activity: {} on {}{}",
        vad.info.id,
        vad.info.engine,
        vad.info
            .fallback
            .as_deref()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default()
    );
    let (classifier, classifier_id) = if audio.speech_emotion.is_empty() {
        (None, None)
    } else {
        let pkg = load_package(&audio.speech_emotion).with_context(|| {
            format!("config `audio.speech_emotion` = {:?}", audio.speech_emotion)
        })?;
        let s = &audio.speech_emotion_engine;
        let engine = runtime::supervised(
            &pkg,
            s.engine.unwrap_or(models.engine),
            s,
            &models.runtimes(),
            models.verify_test_vectors,
            models.watchdog.clone(),
        )
        .map_err(|e| anyhow::anyhow!("speech emotion model: {e}"))?;
        let c = SpeechEmotionClassifier::new(&pkg, Box::new(engine))
            .with_context(|| format!("speech emotion model {}", pkg.id()))?;
        (Some(c), Some(pkg.id()))
    };
    Ok(VoiceState {
        analyzer: VoiceAnalyzer::new(vad, classifier, audio.voice()),
        window: VoiceWindow::default(),
        classifier_id,
    })
}

/// The configured microphone.
pub fn microphone_for(a: &AudioConfig) -> Result<Box<dyn Microphone>> {
    Ok(match a.source {
        AudioSourceKind::Wav => Box::new(
            WavSource::new(&a.paths, a.pace == Pace::Realtime, a.looping)
                .map_err(|e| anyhow::anyhow!("config `audio.paths`: {e}"))?,
        ),
        AudioSourceKind::Alsa => alsa_mic(a)?,
    })
}

#[cfg(target_os = "linux")]
fn alsa_mic(a: &AudioConfig) -> Result<Box<dyn Microphone>> {
    Ok(Box::new(emotiond_hal::alsa_mic::AlsaMic::new(
        emotiond_hal::alsa_mic::AlsaConfig {
            device: a.device.clone(),
            period_ms: a.period_ms,
        },
    )))
}

#[cfg(not(target_os = "linux"))]
fn alsa_mic(_: &AudioConfig) -> Result<Box<dyn Microphone>> {
    anyhow::bail!("config `audio.source`: alsa is only available on Linux")
}

/// Run the microphone on its own thread until it ends or the shutdown is triggered.
pub fn spawn_audio(
    mut mic: Box<dyn Microphone>,
    input: VoiceInput,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("audio".into())
        .spawn(move || {
            let VoiceInput {
                state: voice,
                microphone: health,
            } = input;
            let mut was_unavailable = false;
            let mut reported_ok = false;
            let mut xruns = 0;
            while !shutdown.is_triggered() {
                match mic.read() {
                    Ok(chunk) => {
                        if !reported_ok || mic.xruns() != xruns {
                            xruns = mic.xruns();
                            let d = mic.describe();
                            if !reported_ok {
                                log::info!("microphone ok: {d}");
                            }
                            health.set_xruns(xruns);
                            health.ok(d);
                            was_unavailable = false;
                            reported_ok = true;
                        }
                        let mut v = voice.lock().unwrap_or_else(|p| p.into_inner());
                        let VoiceState {
                            analyzer, window, ..
                        } = &mut *v;
                        analyzer.push(&chunk.samples, chunk.lost, window, None);
                    }
                    Err(MicError::Skipped { item, reason }) => {
                        log::warn!("audio: skipped {item}: {reason}");
                    }
                    Err(MicError::Unavailable {
                        device,
                        reason,
                        retry_in,
                    }) => {
                        if !was_unavailable {
                            log::error!(
                                "microphone {device} unavailable: {reason}; retrying with back-off"
                            );
                        }
                        was_unavailable = true;
                        reported_ok = false;
                        health.unavailable(device, reason);
                        shutdown.sleep(retry_in);
                    }
                    Err(MicError::End) => {
                        log::info!("audio input ended");
                        let mut v = voice.lock().unwrap_or_else(|p| p.into_inner());
                        let VoiceState {
                            analyzer, window, ..
                        } = &mut *v;
                        analyzer.finish(window, None);
                        health.ended(None);
                        break;
                    }
                    Err(MicError::Config(m)) => {
                        log::error!("microphone: {m}");
                        health.ended(Some(m));
                        break;
                    }
                }
            }
        })
}

/// `emotiond analyze` on one WAV file: its voice features, per segment and over the file.
pub fn analyze_wav(voice: &mut VoiceState, path: &std::path::Path) -> serde_json::Value {
    let (info, samples) = match emotiond_hal::read_wav(path) {
        Ok(x) => x,
        Err(e) => {
            return serde_json::json!({"path": path.display().to_string(), "error": e.to_string()});
        }
    };
    let t = Instant::now();
    voice.analyzer.reset();
    let mut window = VoiceWindow::default();
    let mut segments: Vec<SegmentFeatures> = Vec::new();
    voice
        .analyzer
        .push(&samples, 0, &mut window, Some(&mut segments));
    voice.analyzer.finish(&mut window, Some(&mut segments));
    voice.window = window;
    let (summary, _) = voice.finish_window("file");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    serde_json::json!({
        "path": path.display().to_string(),
        "sample_rate": info.rate, "channels": info.channels, "bits": info.bits,
        "duration_s": samples.len() as f64 / 16_000.0,
        "voice": summary,
        "segments": segments,
        "analyze_ms": ms,
    })
}
