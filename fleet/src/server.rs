//! `emotion-fleet serve` and `emotion-fleet simulate`: the fleet backend and its load tool
//! (both in crate `emotion-fleet-server`), on a tokio runtime of their own so the other
//! subcommands stay plain blocking code.

use anyhow::{Context, Result};
use emotion_fleet_server::{mqtt::MqttConfig, serve, sim};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The embedded store (SQLite) and the first admin credentials.
    #[arg(long, default_value = "fleet-data")]
    pub data: PathBuf,
    /// PostgreSQL instead of the embedded store: postgres://USER:PASSWORD@HOST:PORT/DB
    /// (or the environment variable EMOTION_FLEET_DB).
    #[arg(long, env = "EMOTION_FLEET_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// Address of the API and dashboard.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    #[arg(long, default_value = "localhost")]
    pub mqtt_host: String,
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    #[arg(long)]
    pub mqtt_username: Option<String>,
    /// (or the environment variable EMOTION_FLEET_MQTT_PASSWORD)
    #[arg(long, env = "EMOTION_FLEET_MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<String>,
    #[arg(long, default_value = "emotiond")]
    pub topic_prefix: String,
    /// This replica's name, unique among replicas and stable across restarts: the broker
    /// keeps its session (MQTT client id `emotion-fleet-<replica>`). Default: the host name.
    #[arg(long)]
    pub replica: Option<String>,
    /// The shared-subscription group all replicas join.
    #[arg(long, default_value = "emotion-fleet")]
    pub share_group: String,
    /// Groups (and a fleet) with fewer devices show no aggregates.
    #[arg(long, default_value_t = 3)]
    pub k_anonymity: i64,
    /// Days raw summaries are kept.
    #[arg(long, default_value_t = 30)]
    pub raw_days: i64,
    /// Days per-minute rollups are kept (hourly rollups are kept for ever).
    #[arg(long, default_value_t = 90)]
    pub minute_days: i64,
}

#[derive(clap::Args)]
pub struct SimArgs {
    #[arg(long, default_value = "localhost")]
    pub mqtt_host: String,
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    #[arg(long, default_value = "emotiond")]
    pub topic_prefix: String,
    #[arg(long, default_value_t = 10)]
    pub devices: usize,
    /// Summaries per device.
    #[arg(long, default_value_t = 10)]
    pub summaries: usize,
    /// Device ids are ID_PREFIX + number, numbers from --first.
    #[arg(long, default_value = "sim-")]
    pub id_prefix: String,
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    #[arg(long, default_value_t = 0)]
    pub start_seq: u64,
    #[arg(long, default_value_t = 1)]
    pub boot_id: u32,
    /// Every N-th summary in postcard (0: none).
    #[arg(long, default_value_t = 0)]
    pub postcard_every: usize,
    /// Every N-th summary published twice (0: none).
    #[arg(long, default_value_t = 0)]
    pub duplicate_every: usize,
    /// Every N-th seq left out (0: none).
    #[arg(long, default_value_t = 0)]
    pub skip_every: usize,
    /// Feedback presses per device (every other one with a stated label).
    #[arg(long, default_value_t = 0)]
    pub feedback: usize,
    /// Summaries per second in all (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Window length, ms.
    #[arg(long, default_value_t = 10_000)]
    pub window_ms: u64,
    /// Window end of the first summary, ms since the epoch (default: so that the last ends now).
    #[arg(long)]
    pub start_ms: Option<u64>,
    #[arg(long, default_value = "fer_mini_xception@25.10.3+f32.2")]
    pub expression_model: String,
    /// Publish no status, health or model state first.
    #[arg(long)]
    pub no_announce: bool,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "1".into())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn serve(a: ServeArgs) -> Result<()> {
    let replica = a.replica.unwrap_or_else(hostname);
    let opts = serve::Options {
        data: a.data,
        db: a.db,
        http: a.http,
        mqtt: MqttConfig {
            host: a.mqtt_host,
            port: a.mqtt_port,
            prefix: a.topic_prefix,
            client_id: format!("emotion-fleet-{replica}"),
            share_group: a.share_group,
            username: a.mqtt_username,
            password: a.mqtt_password,
        },
        k: a.k_anonymity.max(1),
        raw_days: a.raw_days.max(1),
        minute_days: a.minute_days.max(1),
    };
    runtime()?.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            log::info!("emotion-fleet serve: stopping");
            let _ = stop_tx.send(true);
        });
        serve::run(opts, stop_rx).await
    })
}

pub fn simulate(a: SimArgs) -> Result<()> {
    let o = sim::SimOptions {
        host: a.mqtt_host,
        port: a.mqtt_port,
        prefix: a.topic_prefix,
        id_prefix: a.id_prefix,
        first: a.first,
        devices: a.devices,
        summaries: a.summaries,
        start_seq: a.start_seq,
        boot_id: a.boot_id,
        postcard_every: a.postcard_every,
        duplicate_every: a.duplicate_every,
        skip_every: a.skip_every,
        feedback: a.feedback,
        start_ms: a.start_ms,
        window_ms: a.window_ms.max(1),
        rate: a.rate,
        expression_model: a.expression_model,
        announce: !a.no_announce,
    };
    let rep = runtime()?.block_on(sim::run(&o))?;
    println!("{}", serde_json::to_string(&rep)?);
    Ok(())
}
