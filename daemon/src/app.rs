//! The daemon's wiring: from a config to running threads (capture, inference, audio,
//! indicators, model updates) and the MQTT session, until the input ends or a signal
//! stops it. [`start`] takes a config and a [`Shutdown`] and returns the [`Running`]
//! daemon (a test can run it in-process and stop it); `emotiond run` and `emotiond demo`
//! call [`run`], which starts and waits.
//!
//! Length: ~430 lines, most of it [`start`], which builds each piece and hands it what it
//! shares with the others (see ARCHITECTURE.md); splitting it would hide that order.

use crate::analyzer::Analyzer;
use crate::config::{Config, Pace, SourceKind};
use crate::health::{BrokerUp, DeviceHealth, SourceHealth};
use crate::outbox::Outbox;
use crate::pipeline::{FeedbackSink, Pipeline, spawn_capture};
use crate::queue::DropOldest;
use crate::shutdown::Shutdown;
use crate::summary::Summary;
use crate::{audio, demo, indicators, mqtt, probation, updates};
use anyhow::{Context, Result};
use emotiond_hal::{Camera, FileSource, Pacing};
use emotiond_models::signed::{self, Slot};
use emotiond_wire::topics::{self, Topics};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub fn camera_for(cfg: &Config) -> Result<Box<dyn Camera>> {
    let c = &cfg.camera;
    let pacing = match c.pace {
        Pace::Realtime => Pacing::Realtime {
            stills_fps: c.stills_fps,
        },
        Pace::Fast => Pacing::AsFastAsPossible,
    };
    Ok(match c.source {
        SourceKind::Files => Box::new(
            FileSource::new(&c.paths, pacing, c.looping)
                .map_err(|e| anyhow::anyhow!("config `camera.paths`: {e}"))?,
        ),
        SourceKind::Demo => Box::new(FileSource::from_y4m_bytes(
            "builtin:demo.y4m",
            demo::DEMO_CLIP,
            pacing,
            true,
        )),
        SourceKind::V4l2 => v4l2_camera(cfg)?,
    })
}

#[cfg(target_os = "linux")]
fn v4l2_camera(cfg: &Config) -> Result<Box<dyn Camera>> {
    let c = &cfg.camera;
    Ok(Box::new(emotiond_hal::v4l2::V4l2Camera::new(
        emotiond_hal::v4l2::V4l2Config {
            device: c.device.clone(),
            width: c.width,
            height: c.height,
            fps: c.fps,
            format: c.format.clone(),
            frame_timeout: std::time::Duration::from_millis(c.frame_timeout_ms.into()),
        },
    )))
}

#[cfg(not(target_os = "linux"))]
fn v4l2_camera(_: &Config) -> Result<Box<dyn Camera>> {
    anyhow::bail!("config `camera.source`: v4l2 is only available on Linux")
}

/// How a start differs between `emotiond run`, `emotiond demo` and a test.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also print each summary as a JSON line on stdout (`run --stdout`).
    pub stdout: bool,
    /// Subscribe to our own summaries and print what the broker delivers (the demo),
    /// stopping after that many.
    pub echo_from_broker: Option<u64>,
    /// Stop on SIGTERM and SIGINT.
    pub signals: bool,
    /// The demo for people: the live page's URL first, then a short line before each
    /// summary it echoes.
    pub human: bool,
}

/// A started daemon: its threads and tasks, until [`Running::wait`].
pub struct Running {
    rt: tokio::runtime::Runtime,
    shutdown: Shutdown,
    pipeline: JoinHandle<u64>,
    capture: JoinHandle<()>,
    indicators: Option<JoinHandle<()>>,
    audio: Option<JoinHandle<()>>,
    mqtt: Option<tokio::task::JoinHandle<()>>,
    echo: Option<tokio::task::JoinHandle<()>>,
    api: Option<tokio::task::JoinHandle<()>>,
    api_addr: Option<std::net::SocketAddr>,
}

/// `emotiond run` and `emotiond demo`: start, then wait for the end (the input ended, a
/// signal, or the demo printed what it was asked for).
pub fn run(cfg: Config, stdout: bool, echo_from_broker: Option<u64>) -> Result<ExitCode> {
    run_with(
        cfg,
        Options {
            stdout,
            echo_from_broker,
            signals: true,
            human: false,
        },
    )
}

/// [`run`] with every option (`emotiond demo` without `--json`).
pub fn run_with(cfg: Config, opts: Options) -> Result<ExitCode> {
    let running = start(cfg, opts, Shutdown::new())?;
    if let (true, Some(addr)) = (opts.human, running.api_addr()) {
        println!("emotiond demo: live page at http://{addr}/ (Ctrl-C stops)");
    }
    running.wait();
    Ok(ExitCode::SUCCESS)
}

/// Start the daemon with `cfg`: models loaded, every thread and the MQTT session running.
/// It runs until the input ends or `shutdown` is triggered; [`Running::wait`] then waits for
/// the last window to be published and everything to stop.
pub fn start(mut cfg: Config, opts: Options, shutdown: Shutdown) -> Result<Running> {
    let Options {
        stdout,
        echo_from_broker,
        signals,
        human,
    } = opts;
    // Model updates: a stored package chosen by an earlier update replaces the configured one.
    let store = if cfg.updates.enabled && cfg.mqtt.enabled && !cfg.state_dir.as_os_str().is_empty()
    {
        match updates::Store::open(&cfg.state_dir) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!(
                    "model updates off: cannot use {}: {e}",
                    cfg.state_dir.join("models").display()
                );
                None
            }
        }
    } else {
        None
    };
    let configured_models = cfg.models.clone();
    let mut startup_notes = Vec::new();
    if let Some(store) = &store {
        for slot in [Slot::Detector, Slot::Expression] {
            let (dir, note) = store.startup_package(slot);
            if let Some(d) = dir {
                log::info!("{} model from an update: {}", slot.as_str(), d.display());
                let spec = d.display().to_string();
                match slot {
                    Slot::Detector => cfg.models.detector = spec,
                    Slot::Expression => cfg.models.expression = spec,
                }
            }
            if let Some(n) = note {
                startup_notes.push((slot, n));
            }
        }
    }
    // the broker's TLS files first: an unusable one is a config error, before the models
    if cfg.mqtt.enabled {
        mqtt::options(&cfg.mqtt, "emotiond", None)?;
    }
    let threads = cfg.pipeline.analysis_threads();
    let analyzers = Analyzer::load_copies(&cfg.models, threads)?;
    log::info!("pipeline: {threads} analysis thread(s)");
    let camera = camera_for(&cfg)?;
    log::info!(
        "emotiond {} device {} camera {}",
        env!("CARGO_PKG_VERSION"),
        cfg.device_id,
        camera.describe()
    );
    let camera_health = SourceHealth::new();
    let broker_up = BrokerUp::default();
    let queue = Arc::new(DropOldest::new(cfg.pipeline.queue_frames));
    // Audio on: the microphone is in health (`starting`) from the first publish; the audio
    // path itself is loaded after the capture thread starts.
    let mic_health = cfg.audio.enabled.then(SourceHealth::new);
    let sources = DeviceHealth {
        camera: camera_health.clone(),
        microphone: mic_health.clone(),
        broker: broker_up.clone(),
        publish: Default::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let api = if cfg.api.enabled {
        Some(crate::api::start(
            &rt,
            &cfg,
            sources.clone(),
            queue.clone(),
            shutdown.clone(),
            human,
        )?)
    } else {
        None
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Summary>(64);
    // What the update manager and the feedback button publish, through the MQTT session.
    let (out_tx, out_rx) = tokio::sync::mpsc::channel(64);
    let mut inbound = None;
    let mut pipeline_link = None;
    if let Some(store) = store {
        let trusted = cfg
            .updates
            .trusted_keys
            .iter()
            .map(|k| signed::parse_public(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("updates.trusted_keys: {e}"))?;
        let (msg_tx, msg_rx) = std::sync::mpsc::sync_channel(64);
        let (swap_tx, swap_rx) = std::sync::mpsc::sync_channel(1);
        let (ev_tx, ev_rx) = std::sync::mpsc::channel();
        let t = Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id);
        let mut set_topics = vec![t.models_set.clone()];
        if !cfg.updates.group.is_empty() {
            set_topics.push(topics::group_models_set(
                &cfg.mqtt.topic_prefix,
                &cfg.updates.group,
            ));
        }
        let mut manager = updates::Manager::new(
            configured_models,
            trusted,
            store,
            t.models_state,
            set_topics,
            Duration::from_secs(cfg.updates.download_timeout_s),
            out_tx.clone(),
            swap_tx,
            threads,
        );
        manager.require_signed_orders = cfg.updates.require_signed_orders;
        std::thread::Builder::new()
            .name("updates".into())
            .spawn(move || {
                manager.report_startup(&startup_notes);
                manager.run(msg_rx, ev_rx);
            })
            .context("starting the model update thread")?;
        inbound = Some(msg_tx);
        pipeline_link = Some(updates::Switcher::new(
            swap_rx,
            ev_tx,
            probation::ProbationConfig {
                duration_s: cfg.updates.probation_s,
                min_frames: cfg.updates.min_frames,
                min_detection_ratio: cfg.updates.min_detection_ratio,
                max_errors: cfg.updates.max_errors,
            },
        ));
    }
    let mqtt_task = cfg.mqtt.enabled.then(|| {
        let outbox = open_outbox(&cfg);
        rt.spawn(mqtt::run(
            cfg.mqtt.clone(),
            cfg.device_id.clone(),
            rx,
            sources,
            outbox,
            Duration::from_secs(5),
            Some(mqtt::Link {
                out: out_rx,
                inbound,
            }),
        ))
    });
    let feedback =
        (cfg.mqtt.enabled && (cfg.indicators.button.is_some() || api.is_some())).then(|| {
            FeedbackSink {
                topic: Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id).feedback,
                out: out_tx.clone(),
            }
        });
    drop(out_tx);
    let (press_tx, press_rx) = std::sync::mpsc::channel();
    let indicators = indicators::spawn(
        &cfg.indicators,
        cfg.mqtt.enabled,
        indicators::Inputs {
            camera: camera_health.clone(),
            broker: broker_up,
            shutdown: shutdown.clone(),
            presses: Some(press_tx),
        },
    )
    .context("starting the status LED and button")?;
    let echo =
        echo_from_broker.map(|n| rt.spawn(echo_summaries(cfg.clone(), n, shutdown.clone(), human)));
    if signals {
        let shutdown = shutdown.clone();
        rt.spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        log::error!("cannot watch SIGTERM: {e}");
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            log::info!("shutting down: finishing the current window");
            shutdown.trigger();
        });
    }
    let capture = spawn_capture(
        camera,
        queue.clone(),
        camera_health.clone(),
        shutdown.clone(),
    )
    .context("starting the capture thread")?;
    let voice = match mic_health {
        Some(microphone) => Some(audio::VoiceInput {
            state: Arc::new(std::sync::Mutex::new(audio::load_voice(
                &cfg.audio,
                &cfg.models,
            )?)),
            microphone,
        }),
        None => None,
    };
    let audio_thread = match &voice {
        Some(v) => {
            let mic = audio::microphone_for(&cfg.audio)?;
            log::info!("microphone {}", mic.describe());
            Some(
                audio::spawn_audio(mic, v.clone(), shutdown.clone())
                    .context("starting the audio thread")?,
            )
        }
        None => None,
    };
    let (api_tap, api_latest, api_addr, api_task) = match api {
        Some(a) => (Some(a.tap), Some(a.latest), Some(a.addr), Some(a.task)),
        None => (None, None, None, None),
    };
    let pipeline = Pipeline {
        analyzers,
        cfg: cfg.pipeline.clone(),
        device_id: cfg.device_id.clone(),
        boot_id: boot_id(),
        updates: pipeline_link,
        feedback,
        presses: Some(press_rx),
        camera: camera_health,
        voice,
        api: api_tap,
    };
    let mqtt_enabled = cfg.mqtt.enabled;
    let stop = shutdown.clone();
    let pipeline = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            pipeline.run(queue, stop, |s| {
                if let Some(l) = &api_latest {
                    *l.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.clone());
                }
                if stdout {
                    match serde_json::to_string(&s) {
                        Ok(line) => println!("{line}"),
                        Err(e) => log::error!("summary {}: {e}", s.seq),
                    }
                }
                if mqtt_enabled && tx.blocking_send(s).is_err() {
                    log::error!("mqtt task ended; summary not published");
                }
            })
            // `tx` drops here: the MQTT session drains what is left and leaves.
        })
        .context("starting the pipeline thread")?;
    Ok(Running {
        rt,
        shutdown,
        pipeline,
        capture,
        indicators,
        audio: audio_thread,
        mqtt: mqtt_task,
        echo,
        api: api_task,
        api_addr,
    })
}

impl Running {
    /// Where the HTTP API listens, when it is on.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api_addr
    }

    /// The stop signal: trigger it to end the daemon (the window in progress is published).
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Wait until the pipeline ends, then for every thread, and for the MQTT session to
    /// deliver what is left (bounded). Returns the number of summaries made.
    pub fn wait(self) -> u64 {
        let count = self.pipeline.join().unwrap_or_else(|_| {
            log::error!("pipeline thread panicked");
            0
        });
        self.shutdown.trigger();
        if self.capture.join().is_err() {
            log::error!("capture thread panicked");
        }
        if let Some(h) = self.indicators {
            if h.join().is_err() {
                log::error!("indicator thread panicked");
            }
        }
        if let Some(a) = self.audio {
            if a.join().is_err() {
                log::error!("audio thread panicked");
            }
        }
        log::info!("pipeline ended after {count} summaries");
        if let Some(t) = self.mqtt {
            // the task bounds its own drain; this bounds a connect attempt in progress too
            if self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), t).await })
                .is_err()
            {
                log::warn!("mqtt: gave up delivering after 10 s");
            }
        }
        if let Some(a) = self.api {
            // its live streams end with the stop; a slow client is not waited for long
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(2), a).await });
        }
        if let Some(e) = self.echo {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), e).await });
        }
        self.rt.shutdown_timeout(Duration::from_secs(1));
        count
    }
}

/// The outbox under `state_dir`, or in memory when there is none or it is not writable.
pub fn open_outbox(cfg: &Config) -> Outbox {
    if cfg.state_dir.as_os_str().is_empty() {
        return Outbox::in_memory(cfg.mqtt.outbox_max);
    }
    let dir = cfg.state_dir.join("outbox");
    match Outbox::open(&dir, cfg.mqtt.outbox_max) {
        Ok(o) => {
            if !o.is_empty() {
                log::info!(
                    "outbox {}: {} summaries from an earlier run to deliver",
                    dir.display(),
                    o.len()
                );
            }
            o
        }
        Err(e) => {
            log::warn!(
                "outbox {} not usable ({e}): summaries wait in memory only (config `state_dir`)",
                dir.display()
            );
            Outbox::in_memory(cfg.mqtt.outbox_max)
        }
    }
}

pub fn boot_id() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u32) ^ std::process::id().rotate_left(16)
}

/// Subscribe to our own summary topic and print each summary the broker delivers; after
/// `n`, stop the pipeline.
async fn echo_summaries(cfg: Config, n: u64, shutdown: Shutdown, human: bool) {
    let topics = mqtt::Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id);
    let opts = match mqtt::options(
        &cfg.mqtt,
        &format!("emotiond-demo-{}", std::process::id()),
        None,
    ) {
        Ok(o) => o,
        Err(e) => {
            log::error!("demo: {e}");
            return;
        }
    };
    let (client, mut ev) = rumqttc::AsyncClient::new(opts, 16);
    if let Err(e) = client
        .subscribe(topics.summary.clone(), rumqttc::QoS::AtLeastOnce)
        .await
    {
        log::error!("demo: cannot subscribe: {e}");
        return;
    }
    let mut printed = 0;
    loop {
        match ev.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                if let Ok(s) = Summary::decode(&p.payload, cfg.mqtt.encoding) {
                    if human {
                        println!("{}", human_line(&s));
                    }
                    if let Ok(line) = serde_json::to_string(&s) {
                        println!("{line}");
                    }
                    printed += 1;
                    if printed >= n {
                        shutdown.trigger();
                        let _ = client.disconnect().await;
                        return;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                log::debug!("demo subscriber: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A summary at a glance: `window 3: 1 face, mostly happy (87 %), valence +0.81, arousal
/// +0.51, 30 frames` (faces: the window's distinct tracks).
pub fn human_line(s: &Summary) -> String {
    let e = &s.emotions;
    let top = [
        ("angry", e.angry),
        ("disgust", e.disgust),
        ("fear", e.fear),
        ("happy", e.happy),
        ("sad", e.sad),
        ("surprise", e.surprise),
        ("neutral", e.neutral),
    ]
    .into_iter()
    .max_by(|a, b| a.1.total_cmp(&b.1));
    let plural = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "window {}: {}",
        s.seq,
        plural(s.distinct_tracks, "face", "faces")
    );
    match (top, s.faces_seen) {
        (Some((name, share)), 1..) => {
            line += &format!(", mostly {name} ({:.0} %)", share * 100.0);
        }
        _ => line += ", no face",
    }
    if let (Some(v), Some(a)) = (s.valence, s.arousal) {
        line += &format!(", valence {v:+.2}, arousal {a:+.2}");
    }
    line + &format!(", {} frames", s.frames_processed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_at_a_glance() {
        let mut s = emotiond_wire::summary::sample();
        s.seq = 3;
        s.faces_seen = 1;
        s.distinct_tracks = 1;
        s.frames_processed = 30;
        s.emotions = crate::summary::PerEmotion::from_array([0.0, 0.0, 0.0, 0.87, 0.03, 0.0, 0.1]);
        s.valence = Some(0.81);
        s.arousal = Some(-0.5);
        assert_eq!(
            human_line(&s),
            "window 3: 1 face, mostly happy (87 %), valence +0.81, arousal -0.50, 30 frames"
        );
        s.faces_seen = 0;
        s.distinct_tracks = 0;
        s.valence = None;
        assert_eq!(human_line(&s), "window 3: 0 faces, no face, 30 frames");
    }

    #[test]
    fn the_daemon_runs_in_process_and_stops_when_asked() {
        let photo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/astronaut_640x480.jpg");
        let text = format!(
            "device_id = \"in-process\"\nstate_dir = \"\"\n[camera]\nsource = \"files\"\npaths = [{:?}]\nstills_fps = 20.0\nloop = true\n[pipeline]\nwindow_s = 60.0\n[mqtt]\nenabled = false\n",
            photo.display().to_string()
        );
        let cfg = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
        let shutdown = Shutdown::new();
        let running = start(cfg, Options::default(), shutdown.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        running.shutdown().trigger();
        // the window in progress is summarised on the way out
        assert_eq!(running.wait(), 1);
        assert!(shutdown.is_triggered());
    }
}
