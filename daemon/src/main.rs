//! `emotiond run | demo | analyze PATH... | bench | check | config`
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use emotiond::analyzer::Analyzer;
use emotiond::config::{self, Config, Pace, SourceKind};
use emotiond::health::{BrokerUp, DeviceHealth, SourceHealth};
use emotiond::outbox::Outbox;
use emotiond::pipeline::{FeedbackSink, Pipeline, spawn_capture};
use emotiond::queue::DropOldest;
use emotiond::shutdown::Shutdown;
use emotiond::summary::{ModelInfo, Summary};
use emotiond::{audio, demo, indicators, mqtt, probation, updates};
use emotiond_hal::{Camera, CameraError, FileSource, Pacing};
use emotiond_models::EngineKind;
use emotiond_models::runtime::DelegateKind;
use emotiond_models::signed::{self, Slot};
use emotiond_wire::topics::{self, Topics};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "emotiond",
    version,
    about = "Edge emotion-recognition daemon: camera -> faces -> expressions -> summaries over MQTT"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon.
    Run {
        /// Also print each summary as a JSON line on stdout.
        #[arg(long)]
        stdout: bool,
    },
    /// Run on the built-in sample clip with an in-process broker; print summaries.
    Demo {
        /// Print one summary and exit.
        #[arg(long)]
        once: bool,
        /// Window length in seconds.
        #[arg(long, default_value_t = 3.0)]
        window: f64,
        /// Use this broker (host:port) instead of starting one.
        #[arg(long)]
        broker: Option<String>,
    },
    /// Analyse images, Y4M and WAV files: one JSON line per image, video frame or WAV file.
    Analyze {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Measure frames/s and per-stage times on an input (default: the sample clip): one JSON
    /// line. `decode_ms` is reading and decoding a frame; fps counts inference (detect +
    /// classify) on frames decoded beforehand.
    Bench {
        /// Image or Y4M file.
        input: Option<PathBuf>,
        #[arg(long, default_value_t = 200)]
        frames: usize,
        /// Engine for both models (overrides the config): tract, tflite, onnxruntime.
        #[arg(long)]
        engine: Option<EngineKind>,
        /// TFLite delegate (overrides the config): none, xnnpack.
        #[arg(long)]
        delegate: Option<String>,
        /// Threads per engine (overrides the config).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        tflite_library: Option<PathBuf>,
        #[arg(long)]
        onnxruntime_library: Option<PathBuf>,
    },
    /// Check config, models, camera, microphone (audio on) and broker; non-zero exit on any
    /// failure.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Print the documented default configuration file.
    Config {
        #[arg(long)]
        print_default: bool,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(
        "info,rumqttd=off,tracing=off,rumqttc=warn,tract=warn,tract_linalg=warn,tract_core=warn",
    ))
    .target(env_logger::Target::Stderr)
    .init();
    let cli = Cli::parse();
    let explicit = std::env::args().any(|a| a == "--config" || a.starts_with("--config="));
    match dispatch(cli, explicit) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("emotiond: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The config file, or the built-in defaults when the default path does not exist.
fn load_config(path: &Path, explicit: bool) -> Result<Config> {
    if !explicit && !path.exists() {
        log::info!("{} not found: using built-in defaults", path.display());
        return Ok(Config::parse("", path)?);
    }
    Ok(Config::load(path)?)
}

fn camera_for(cfg: &Config) -> Result<Box<dyn Camera>> {
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
        },
    )))
}

#[cfg(not(target_os = "linux"))]
fn v4l2_camera(_: &Config) -> Result<Box<dyn Camera>> {
    bail!("config `camera.source`: v4l2 is only available on Linux")
}

fn dispatch(cli: Cli, explicit: bool) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Config { print_default } => {
            if print_default {
                print!("{}", config::DEFAULT_FILE);
            } else {
                let c = load_config(&cli.config, explicit)?;
                print!("{}", toml::to_string_pretty(&c)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { stdout } => {
            let cfg = load_config(&cli.config, explicit)?;
            run(cfg, stdout, None)
        }
        Cmd::Demo {
            once,
            window,
            broker,
        } => {
            let mut cfg = if explicit {
                Config::load(&cli.config)?
            } else {
                Config::parse("", &cli.config)?
            };
            if !explicit {
                cfg.state_dir = PathBuf::new();
                cfg.camera.source = SourceKind::Demo;
                cfg.camera.pace = Pace::Realtime;
                cfg.pipeline.window_s = window;
            }
            match broker {
                Some(b) => {
                    let (h, p) = b.rsplit_once(':').context("--broker must be host:port")?;
                    cfg.mqtt.host = h.to_string();
                    cfg.mqtt.port = p.parse().context("--broker port")?;
                }
                None if !explicit => {
                    cfg.mqtt.host = "127.0.0.1".into();
                    cfg.mqtt.port = demo::start_broker()?;
                    log::info!(
                        "demo: in-process MQTT broker on 127.0.0.1:{}",
                        cfg.mqtt.port
                    );
                }
                None => {}
            }
            cfg.mqtt.enabled = true;
            run(cfg, false, Some(if once { 1 } else { u64::MAX }))
        }
        Cmd::Analyze { paths } => analyze(&load_config(&cli.config, explicit)?, &paths),
        Cmd::Bench {
            input,
            frames,
            engine,
            delegate,
            threads,
            tflite_library,
            onnxruntime_library,
        } => {
            let mut cfg = load_config(&cli.config, explicit)?;
            let m = &mut cfg.models;
            let forced = engine.is_some() || delegate.is_some();
            if let Some(e) = engine {
                m.engine = e;
            }
            for s in [&mut m.detector_engine, &mut m.expression_engine] {
                if engine.is_some() {
                    s.engine = None;
                }
                if let Some(d) = &delegate {
                    s.delegate = match d.as_str() {
                        "none" => DelegateKind::None,
                        "xnnpack" => DelegateKind::Xnnpack,
                        other => bail!(
                            "--delegate {other:?}: none or xnnpack (external delegates are set in the config)"
                        ),
                    };
                }
                if let Some(n) = threads {
                    s.threads = n.max(1);
                }
            }
            if tflite_library.is_some() {
                m.tflite_library = tflite_library;
            }
            if onnxruntime_library.is_some() {
                m.onnxruntime_library = onnxruntime_library;
            }
            bench(&cfg, input, frames, forced)
        }
        Cmd::Check { json } => check(&cli.config, explicit, json),
    }
}

/// The daemon. With `echo_from_broker`, subscribe to our own summaries and print what the
/// broker delivers (the demo), exiting after that many.
fn run(mut cfg: Config, stdout: bool, echo_from_broker: Option<u64>) -> Result<ExitCode> {
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
    let analyzer = Analyzer::load(&cfg.models)?;
    let camera = camera_for(&cfg)?;
    log::info!(
        "emotiond {} device {} camera {}",
        env!("CARGO_PKG_VERSION"),
        cfg.device_id,
        camera.describe()
    );
    let shutdown = Shutdown::new();
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
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
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
        let manager = updates::Manager::new(
            configured_models,
            trusted,
            store,
            t.models_state,
            set_topics,
            Duration::from_secs(cfg.updates.download_timeout_s),
            out_tx.clone(),
            swap_tx,
        );
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
                min_frames: 30,
                min_detection_ratio: cfg.updates.min_detection_ratio,
                max_errors: 5,
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
    let feedback = (cfg.mqtt.enabled && cfg.indicators.button.is_some()).then(|| FeedbackSink {
        topic: Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id).feedback,
        out: out_tx.clone(),
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
    let echo = echo_from_broker.map(|n| rt.spawn(echo_summaries(cfg.clone(), n, shutdown.clone())));
    {
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
    let pipeline = Pipeline {
        analyzer,
        cfg: cfg.pipeline.clone(),
        device_id: cfg.device_id.clone(),
        boot_id: boot_id(),
        updates: pipeline_link,
        feedback,
        presses: Some(press_rx),
        camera: camera_health,
        voice,
    };
    let count = pipeline.run(queue, shutdown.clone(), |s| {
        if stdout {
            match serde_json::to_string(&s) {
                Ok(line) => println!("{line}"),
                Err(e) => log::error!("summary {}: {e}", s.seq),
            }
        }
        if cfg.mqtt.enabled && tx.blocking_send(s).is_err() {
            log::error!("mqtt task ended; summary not published");
        }
    });
    shutdown.trigger();
    drop(tx);
    if capture.join().is_err() {
        log::error!("capture thread panicked");
    }
    if let Some(h) = indicators {
        if h.join().is_err() {
            log::error!("indicator thread panicked");
        }
    }
    if let Some(a) = audio_thread {
        if a.join().is_err() {
            log::error!("audio thread panicked");
        }
    }
    log::info!("pipeline ended after {count} summaries");
    if let Some(t) = mqtt_task {
        // the task bounds its own drain; this bounds a connect attempt in progress too
        if rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), t).await })
            .is_err()
        {
            log::warn!("mqtt: gave up delivering after 10 s");
        }
    }
    if let Some(e) = echo {
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), e).await });
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(ExitCode::SUCCESS)
}

/// The outbox under `state_dir`, or in memory when there is none or it is not writable.
fn open_outbox(cfg: &Config) -> Outbox {
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

fn boot_id() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u32) ^ std::process::id().rotate_left(16)
}

/// Subscribe to our own summary topic and print each summary the broker delivers; after
/// `n`, stop the pipeline.
async fn echo_summaries(cfg: Config, n: u64, shutdown: Shutdown) {
    let topics = mqtt::Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id);
    let opts = mqtt::options(
        &cfg.mqtt,
        &format!("emotiond-demo-{}", std::process::id()),
        None,
    );
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

fn analyze(cfg: &Config, paths: &[PathBuf]) -> Result<ExitCode> {
    let is_wav = |p: &PathBuf| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
    };
    let (wavs, paths): (Vec<PathBuf>, Vec<PathBuf>) = paths.iter().cloned().partition(is_wav);
    let mut failed = 0;
    if !wavs.is_empty() {
        let mut voice = audio::load_voice(&cfg.audio, &cfg.models)?;
        for w in &wavs {
            let line = audio::analyze_wav(&mut voice, w);
            if line.get("error").is_some() {
                failed += 1;
            }
            println!("{line}");
        }
    }
    if paths.is_empty() {
        return Ok(if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let mut analyzer = Analyzer::load(&cfg.models)?;
    let mut src = FileSource::new(&paths, Pacing::AsFastAsPossible, false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    loop {
        match src.next_frame() {
            Ok(f) => {
                let (path, index) = f.origin.clone().unwrap_or_else(|| ("".into(), 0));
                let line = match analyzer.analyze(&f.image) {
                    Ok(r) => serde_json::json!({
                        "path": &*path, "frame": index, "width": f.image.width(), "height": f.image.height(),
                        "faces": r.faces.iter().map(|face| {
                            let dominant = face.emotions.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
                                .map(|(i, _)| emotiond_models::EMOTIONS[i]).unwrap_or("neutral");
                            serde_json::json!({"box": face.bbox, "score": face.score, "emotions": emotiond::summary::PerEmotion::from_array(face.emotions), "dominant": dominant})
                        }).collect::<Vec<_>>(),
                        "detect_ms": r.detect_ms, "classify_ms": r.classify_ms,
                    }),
                    Err(e) => {
                        failed += 1;
                        serde_json::json!({"path": &*path, "frame": index, "error": format!("{e:#}")})
                    }
                };
                println!("{line}");
            }
            Err(CameraError::Skipped { item, reason }) => {
                failed += 1;
                println!("{}", serde_json::json!({"path": item, "error": reason}));
            }
            Err(CameraError::End) => break,
            Err(e) => bail!("{e}"),
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn bench(cfg: &Config, input: Option<PathBuf>, frames: usize, forced: bool) -> Result<ExitCode> {
    let mut analyzer = Analyzer::load(&cfg.models)?;
    if forced {
        // A benchmark of a fallback would measure the wrong engine.
        for m in [analyzer.detector_info(), analyzer.expression_info()] {
            if let Some(why) = m.fallback {
                bail!("model {} does not run on the requested engine: {why}", m.id);
            }
        }
    }
    let mut src: Box<dyn Camera> = match &input {
        Some(p) => Box::new(
            FileSource::new(std::slice::from_ref(p), Pacing::AsFastAsPossible, true)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => Box::new(FileSource::from_y4m_bytes(
            "builtin:demo.y4m",
            demo::DEMO_CLIP,
            Pacing::AsFastAsPossible,
            true,
        )),
    };
    // Decode up to 64 distinct frames first so decoding is not timed.
    let mut imgs = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..frames.clamp(1, 64) {
        let t = Instant::now();
        let next = src.next_frame();
        decode.push(t.elapsed().as_secs_f64() * 1e3);
        match next {
            Ok(f) => imgs.push(f.image),
            Err(CameraError::End) => break,
            Err(e) => bail!("bench input: {e}"),
        }
    }
    let first = imgs.first().context("bench input has no frames")?.clone();
    let (mut det, mut cls, mut faces) = (Vec::new(), Vec::new(), 0usize);
    let mut totals = Vec::new();
    let t0 = Instant::now();
    for i in 0..frames.max(1) {
        let img = &imgs[i % imgs.len()];
        let t = Instant::now();
        let r = analyzer.analyze(img)?;
        totals.push(t.elapsed().as_secs_f64() * 1e3);
        det.push(r.detect_ms as f64);
        cls.push(r.classify_ms as f64);
        faces += r.faces.len();
    }
    let wall = t0.elapsed().as_secs_f64();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    totals.sort_by(f64::total_cmp);
    let p95 = totals[((totals.len() as f64 * 0.95).ceil() as usize).clamp(1, totals.len()) - 1];
    println!(
        "{}",
        serde_json::json!({
            "input": input.map(|p| p.display().to_string()).unwrap_or_else(|| "builtin:demo.y4m".into()),
            "width": first.width(), "height": first.height(), "frames": totals.len(),
            "fps": totals.len() as f64 / wall, "faces_per_frame": faces as f64 / totals.len() as f64,
            "decode_ms": mean(&decode), "detect_ms": mean(&det), "classify_ms": mean(&cls), "total_ms": mean(&totals), "total_ms_p95": p95,
            "detector": analyzer.detector_info().id, "expression": analyzer.expression_info().id,
            "detector_engine": engine_label(&analyzer.detector_info()), "expression_engine": engine_label(&analyzer.expression_info()),
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// "tflite+xnnpack", "tract", "onnxruntime+cuda".
fn engine_label(m: &ModelInfo) -> String {
    match &m.accelerator {
        Some(a) => format!("{}+{a}", m.engine),
        None => m.engine.clone(),
    }
}

/// Connect to the broker as the daemon would (credentials included) and wait for CONNACK.
fn check_broker(cfg: &Config) -> (bool, String) {
    let addr = format!("{}:{}", cfg.mqtt.host, cfg.mqtt.port);
    let opts = mqtt::options(
        &cfg.mqtt,
        &format!("emotiond-check-{}", std::process::id()),
        None,
    );
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return (false, format!("{addr}: {e}")),
    };
    rt.block_on(async {
        let (client, mut ev) = rumqttc::AsyncClient::new(opts, 4);
        let r = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ev.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        let _ = client.try_disconnect();
        match r {
            Ok(Ok(())) => (true, format!("{addr}: connected, credentials accepted")),
            Ok(Err(e)) => (false, format!("{addr}: {e}")),
            Err(_) => (false, format!("{addr}: no answer within 5 s")),
        }
    })
}

fn check(path: &Path, explicit: bool, json: bool) -> Result<ExitCode> {
    let mut items: Vec<(&str, bool, String, &str)> = Vec::new();
    let cfg = match load_config(path, explicit) {
        Ok(c) => {
            items.push((
                "config",
                true,
                format!(
                    "{} ({})",
                    path.display(),
                    if path.exists() { "file" } else { "defaults" }
                ),
                "",
            ));
            Some(c)
        }
        Err(e) => {
            items.push((
                "config",
                false,
                format!("{e:#}"),
                "fix the named key; `emotiond config --print-default` shows every key",
            ));
            None
        }
    };
    if let Some(cfg) = &cfg {
        match Analyzer::load(&cfg.models) {
            Ok(a) => {
                let (d, x) = (a.detector_info(), a.expression_info());
                items.push((
                    "models",
                    true,
                    format!(
                        "{} on {} and {} on {}{}",
                        d.id,
                        engine_label(&d),
                        x.id,
                        engine_label(&x),
                        if cfg.models.verify_test_vectors {
                            ", test vectors pass"
                        } else {
                            ""
                        }
                    ),
                    "",
                ));
                for m in [d, x] {
                    if let Some(why) = &m.fallback {
                        items.push((
                            "engine",
                            false,
                            format!("{} falls back to {}: {why}", m.id, engine_label(&m)),
                            "install the runtime library or delegate named above, or set models.tflite_library / models.onnxruntime_library / the engine in config",
                        ));
                    }
                }
            }
            Err(e) => items.push((
                "models",
                false,
                format!("{e:#}"),
                "reinstall the model package or point models.* at a valid one",
            )),
        }
        match camera_for(cfg).map(|mut c| (c.next_frame(), c.describe())) {
            Ok((Ok(f), d)) => items.push((
                "camera",
                true,
                format!(
                    "{d}: frame {}x{} decoded",
                    f.image.width(),
                    f.image.height()
                ),
                "",
            )),
            Ok((Err(e), d)) => items.push((
                "camera",
                false,
                format!("{d}: {e}"),
                "check camera.device, the cable, and that the user is in the video group",
            )),
            Err(e) => items.push((
                "camera",
                false,
                format!("{e:#}"),
                "check the [camera] section",
            )),
        }
        #[cfg(target_os = "linux")]
        if cfg.camera.source == SourceKind::V4l2 {
            match emotiond_hal::v4l2::modes(&cfg.camera.device) {
                Ok(m) => items.push((
                    "camera_modes",
                    m.iter().any(|m| matches!(m.fourcc.as_str(), "MJPG" | "YUYV")),
                    {
                        // the formats emotiond reads; the others are only counted
                        let (usable, other): (Vec<_>, Vec<_>) = m
                            .into_iter()
                            .partition(|m| matches!(m.fourcc.as_str(), "MJPG" | "YUYV"));
                        format!(
                            "{} offers {}{}",
                            cfg.camera.device,
                            if usable.is_empty() {
                                "neither MJPG nor YUYV".to_string()
                            } else {
                                emotiond_hal::v4l2::describe_modes(&usable)
                            },
                            if other.is_empty() {
                                String::new()
                            } else {
                                format!(" (and {} other formats emotiond does not read)", other.len())
                            }
                        )
                    },
                    "the device offers neither MJPG nor YUYV capture: is it a capture node (try the other /dev/video*)?",
                )),
                Err(e) => items.push((
                    "camera_modes",
                    false,
                    format!("{}: {e}", cfg.camera.device),
                    "check camera.device, the cable, and that the user is in the video group",
                )),
            }
        }
        if cfg.indicators.backend != config::PinBackend::None {
            let stop = Shutdown::new();
            let r = indicators::spawn(
                &cfg.indicators,
                false,
                indicators::Inputs {
                    shutdown: stop.clone(),
                    ..Default::default()
                },
            );
            stop.trigger();
            let r = r.and_then(|h| {
                h.map(|h| h.join())
                    .transpose()
                    .map_err(|_| anyhow::anyhow!("indicator thread panicked"))
            });
            items.push((
                "indicators",
                r.is_ok(),
                match r {
                    Ok(_) => format!(
                        "{:?} pins: status LED {}, button {}",
                        cfg.indicators.backend,
                        cfg.indicators
                            .status_led
                            .map_or("none".into(), |p| p.to_string()),
                        cfg.indicators
                            .button
                            .map_or("none".into(), |p| p.to_string())
                    ),
                    Err(e) => format!("{e:#}"),
                },
                "check indicators.* (GPIO numbers are BCM) and that the user is in the gpio group",
            ));
        }
        if cfg.audio.enabled {
            match audio::load_voice(&cfg.audio, &cfg.models) {
                Ok(v) => {
                    let i = &v.analyzer.vad.info;
                    items.push((
                        "vad",
                        i.fallback.is_none(),
                        match &i.fallback {
                            None => format!("{} on {}", i.id, i.engine),
                            Some(f) => format!("{} on {}: {f}", i.id, i.engine),
                        },
                        "install the runtime named above, or point audio.vad at a valid voice_activity package",
                    ));
                }
                Err(e) => items.push((
                    "vad",
                    false,
                    format!("{e:#}"),
                    "check audio.speech_emotion and the [audio] section",
                )),
            }
            match audio::microphone_for(&cfg.audio).map(|mut m| (m.read(), m.describe())) {
                Ok((Ok(c), d)) => items.push((
                    "microphone",
                    true,
                    format!("{d}: {} samples read", c.samples.len()),
                    "",
                )),
                Ok((Err(e), d)) => items.push((
                    "microphone",
                    false,
                    format!("{d}: {e}"),
                    "check audio.device (arecord -l lists capture devices) and that the user is in the audio group",
                )),
                Err(e) => items.push((
                    "microphone",
                    false,
                    format!("{e:#}"),
                    "check the [audio] section",
                )),
            }
        }
        if cfg.mqtt.enabled {
            let (ok, detail) = check_broker(cfg);
            items.push((
                "broker",
                ok,
                detail,
                "check mqtt.host/port, the network, and mqtt.username/password",
            ));
        }
        if !cfg.state_dir.as_os_str().is_empty() {
            let probe = cfg.state_dir.join("outbox").join(".check");
            let r = std::fs::create_dir_all(cfg.state_dir.join("outbox"))
                .and_then(|_| std::fs::write(&probe, b"ok"))
                .and_then(|_| std::fs::remove_file(&probe));
            items.push((
                "state",
                r.is_ok(),
                match r {
                    Ok(()) => format!("{} writable", cfg.state_dir.display()),
                    Err(e) => format!("{}: {e}", cfg.state_dir.display()),
                },
                "create state_dir writable by the daemon's user (systemd: StateDirectory=emotiond)",
            ));
        }
    }
    // Window timestamps are wall-clock: a board without RTC and NTP starts in 1970.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let sane = now >= 1_735_689_600; // 2025-01-01
    items.push((
        "clock",
        sane,
        format!("{} s since the Unix epoch{}", now, if sane { "" } else { " (before 2025: not set)" }),
        "enable time synchronisation (systemd-timesyncd, chrony) before relying on window timestamps",
    ));
    let all_ok = items.iter().all(|i| i.1);
    for (name, ok, detail, hint) in &items {
        if json {
            println!(
                "{}",
                serde_json::json!({"check": name, "ok": ok, "detail": detail, "hint": if *ok { "" } else { *hint }})
            );
        } else if *ok {
            println!("ok    {name:8} {detail}");
        } else {
            println!(
                "FAIL  {name:8} {detail}
      hint: {hint}"
            );
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
