//! `emotiond run | demo | analyze PATH... | eval PATH | bench | check | config`: parses the command
//! line, loads the config and hands over to the library ([`emotiond::app::run`] and
//! [`emotiond::cli`]); errors become one line on stderr and exit code 2.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use emotiond::cli::load_config;
use emotiond::config::{self, Config, Pace, SourceKind};
use emotiond::{app, cli, demo};
use emotiond_models::EngineKind;
use emotiond_models::runtime::DelegateKind;
use std::path::PathBuf;
use std::process::ExitCode;

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
        /// Print only the summaries' JSON lines (no live page, no URL, no human lines).
        #[arg(long)]
        json: bool,
    },
    /// Analyse images, Y4M and WAV files: one JSON line per image, video frame or WAV file.
    Analyze {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Measure expression models on a labelled set (a folder of label folders, or a CSV of
    /// path,label[,x,y,w,h]) and the detector on face boxes: one JSON object per model, one per
    /// pair of models (McNemar's exact test), one for detection. Exit code 2 on a bad layout.
    Eval {
        /// Folder of label folders (happy/, neutral/, ...) or CSV file; optional with --boxes.
        #[arg(required_unless_present = "boxes")]
        path: Option<PathBuf>,
        /// Expression model (builtin:NAME or a package folder); repeat to compare. Default:
        /// the config's models.expression.
        #[arg(long)]
        expression: Vec<String>,
        /// The images are face crops: the expression model alone, on the whole image.
        #[arg(long)]
        crops: bool,
        /// Write index.html and SVG figures (confusion matrix, per-class bars) into DIR.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// Face boxes (JSON {"image.jpg": [[x,y,w,h], ...]} or CSV path,x,y,w,h; pixels, paths
        /// relative to the file): precision, recall and AP at IoU 0.5 of the detector.
        #[arg(long, value_name = "FILE")]
        boxes: Option<PathBuf>,
        /// Also print one line per labelled face and model (label, prediction, box).
        #[arg(long)]
        per_face: bool,
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
        /// After the report, one JSON line per pipeline stage (decode, detect pre-processing,
        /// invoke, box decoding, NMS, classify pre-processing, invoke, post-processing) with
        /// its mean and p95 in ms.
        #[arg(long)]
        stages: bool,
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

/// What `emotiond config` prints in place of a secret.
const HIDDEN: &str = "<hidden>";

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

fn dispatch(cli: Cli, explicit: bool) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Config { print_default } => {
            if print_default {
                print!("{}", config::DEFAULT_FILE);
            } else {
                let mut c = load_config(&cli.config, explicit)?;
                // The effective configuration goes into bug reports and terminals: the broker
                // password does not (whether one is set still shows).
                if let Some(p) = c.mqtt.password.as_mut() {
                    *p = HIDDEN.to_string();
                }
                print!("{}", toml::to_string_pretty(&c)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { stdout } => {
            let cfg = load_config(&cli.config, explicit)?;
            // the outbox and the model store: the daemon's user and group only
            emotiond::fsutil::restrict_umask();
            app::run(cfg, stdout, None)
        }
        Cmd::Demo {
            once,
            window,
            broker,
            json,
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
            if !json && !cfg.api.enabled {
                // the live page on this machine only: 127.0.0.1:8081, or any free port when
                // that one is taken (Options::human)
                cfg.api.enabled = true;
                cfg.api.token_file = PathBuf::new();
                cfg.api.listen = "127.0.0.1:8081".into();
            }
            app::run_with(
                cfg,
                app::Options {
                    stdout: false,
                    echo_from_broker: Some(if once { 1 } else { u64::MAX }),
                    signals: true,
                    human: !json,
                },
            )
        }
        Cmd::Analyze { paths } => {
            cli::analyze::analyze(&load_config(&cli.config, explicit)?, &paths)
        }
        Cmd::Eval {
            path,
            expression,
            crops,
            report,
            boxes,
            per_face,
        } => cli::eval::eval(
            &load_config(&cli.config, explicit)?,
            &cli::eval::Options {
                path,
                expression,
                crops,
                report,
                boxes,
                per_face,
            },
        ),
        Cmd::Bench {
            input,
            frames,
            engine,
            delegate,
            threads,
            tflite_library,
            onnxruntime_library,
            stages,
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
            cli::bench::bench(&cfg, input, frames, forced, stages)
        }
        Cmd::Check { json } => cli::check::check(&cli.config, explicit, json),
    }
}
