//! `emotion-fleet serve` and `emotion-fleet simulate`: the fleet backend and its load tool
//! (both in crate `emotion-fleet-server`), on a tokio runtime of their own so the other
//! subcommands stay plain blocking code.
//!
//! Length: ~510 lines: the flags of `serve`, `simulate` and `demo` (mostly documentation) and
//! their start-up; the backend itself is the `fleet-server` crate.

use anyhow::{Context, Result};
use emotion_fleet_server::homeassistant::HaConfig;
use emotion_fleet_server::mqtt::{MqttConfig, Tls};
use emotion_fleet_server::rollout::driver::DriverConfig;
use emotion_fleet_server::rollout::orders::OrderSigner;
use emotion_fleet_server::{serve, sim, sim_orders};
use emotiond_wire::order::Endorsement;
use emotiond_wire::signed;
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
    #[command(flatten)]
    pub tls: TlsArgs,
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
    /// Publish Home Assistant MQTT discovery: each device as sensors (dominant emotion, faces,
    /// valence, online) and its expression model as an update entity.
    #[arg(long)]
    pub ha_discovery: bool,
    /// Home Assistant's discovery prefix.
    #[arg(long, default_value = "homeassistant")]
    pub ha_prefix: String,
    /// Where the backend publishes each device's state for Home Assistant.
    #[arg(long, default_value = "emotion-fleet/ha")]
    pub ha_state_prefix: String,
    /// Seconds between two evaluations of the running rollouts (1 to 10).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10))]
    pub rollout_tick: u64,
    /// Seconds the rollout driver's lease lasts without renewal: after a driver dies, another
    /// replica takes over within this.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=600))]
    pub rollout_lease: u64,
    /// Sign rollout orders with this secret key (`keygen`; mode 0600): devices refuse
    /// unsigned orders by default (`updates.require_signed_orders`). Best a key of the
    /// backend's own, endorsed by the operator's (--order-endorsement).
    #[arg(long, value_name = "FILE", env = "EMOTION_FLEET_ORDER_KEY")]
    pub order_key: Option<PathBuf>,
    /// The operator's endorsement of the --order-key's public key (`endorse`), carried in
    /// every order: devices that trust the operator's key come to trust the backend's.
    #[arg(long, value_name = "FILE", requires = "order_key")]
    pub order_endorsement: Option<PathBuf>,
}

/// The rollouts' order signer of `serve --order-key [--order-endorsement]`.
fn order_signer(
    key: Option<&std::path::Path>,
    endorsement: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<OrderSigner>>> {
    let Some(key) = key else { return Ok(None) };
    let text = std::fs::read_to_string(key)
        .with_context(|| format!("--order-key {}: cannot read it", key.display()))?;
    let sk = signed::parse_secret(&text).with_context(|| {
        format!(
            "--order-key {}: not a secret key made by keygen",
            key.display()
        )
    })?;
    let e = endorsement
        .map(|p| -> Result<Endorsement> {
            let b = std::fs::read(p)
                .with_context(|| format!("--order-endorsement {}: cannot read it", p.display()))?;
            serde_json::from_slice(&b).with_context(|| {
                format!(
                    "--order-endorsement {}: not an endorsement (emotion-fleet endorse)",
                    p.display()
                )
            })
        })
        .transpose()?;
    let s = OrderSigner::new(sk, e).map_err(anyhow::Error::msg)?;
    Ok(Some(std::sync::Arc::new(s)))
}

/// TLS to the broker: the flags of `serve`, `simulate`, `rollout` and `rollback`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// TLS to the broker, trusting the system's CA bundle (implied by --mqtt-ca and --mqtt-cert).
    #[arg(long)]
    pub mqtt_tls: bool,
    /// TLS to the broker, trusting this CA (PEM).
    #[arg(long, value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,
    /// A client certificate (PEM) for a broker that requires one; with --mqtt-key.
    #[arg(long, value_name = "FILE", requires = "mqtt_key")]
    pub mqtt_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "mqtt_cert")]
    pub mqtt_key: Option<PathBuf>,
}

impl TlsArgs {
    /// `None`: plain MQTT.
    pub fn into_tls(self) -> Option<Tls> {
        (self.mqtt_tls || self.mqtt_ca.is_some() || self.mqtt_cert.is_some()).then(|| Tls {
            ca: self.mqtt_ca,
            client: self.mqtt_cert.zip(self.mqtt_key),
        })
    }
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
    /// Devices that answer model orders instead: BEHAVIOUR:COUNT,... over the devices in
    /// order (accept, reject, silent, unhealthy, offline; the rest accept). They publish a
    /// summary every --window-ms and print one JSON line per order received.
    #[arg(long, value_name = "SPEC")]
    pub answer_orders: Option<String>,
    /// With --answer-orders: the devices trust these public keys (`keygen`'s fleet.pub) and,
    /// as real devices do by default, refuse an order not signed by one of them, or signed
    /// for another topic (reason bad_order_signature). Without: they follow any order.
    #[arg(long, value_name = "FILE", requires = "answer_orders")]
    pub trust: Vec<PathBuf>,
    /// With --answer-orders: seconds to run.
    #[arg(long, default_value_t = 60)]
    pub run_for: u64,
    #[command(flatten)]
    pub tls: TlsArgs,
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
    let signer = order_signer(a.order_key.as_deref(), a.order_endorsement.as_deref())?;
    let opts = serve::Options {
        data: a.data,
        db: a.db,
        http: a.http,
        mqtt: MqttConfig {
            host: a.mqtt_host,
            port: a.mqtt_port,
            prefix: a.topic_prefix.clone(),
            client_id: format!("emotion-fleet-{replica}"),
            share_group: a.share_group,
            username: a.mqtt_username,
            password: a.mqtt_password,
            tls: a.tls.into_tls(),
        },
        k: a.k_anonymity.max(1),
        raw_days: a.raw_days.max(1),
        minute_days: a.minute_days.max(1),
        ha: a.ha_discovery.then(|| HaConfig {
            discovery_prefix: a.ha_prefix,
            state_prefix: a.ha_state_prefix,
            fleet_prefix: a.topic_prefix.clone(),
        }),
        rollouts: DriverConfig {
            tick: std::time::Duration::from_secs(a.rollout_tick),
            lease_ms: a.rollout_lease as i64 * 1000,
            holder: replica.clone(),
            signer,
        },
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
        tls: a.tls.into_tls(),
    };
    if let Some(spec) = a.answer_orders {
        let b = sim_orders::parse_behaviours(&spec, o.devices).map_err(anyhow::Error::msg)?;
        let run_for = std::time::Duration::from_secs(a.run_for);
        let trusted = a
            .trust
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("--trust {}: cannot read it", p.display()))?;
                signed::parse_public(&text)
                    .with_context(|| format!("--trust {}: not a public key", p.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        return runtime()?.block_on(sim_orders::run(&o, &b, &trusted, run_for, |v| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{v}");
            let _ = out.flush();
        }));
    }
    let rep = runtime()?.block_on(sim::run(&o))?;
    println!("{}", serde_json::to_string(&rep)?);
    Ok(())
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the demo's store and credentials go.
    #[arg(long, default_value = "fleet-demo")]
    pub data: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Simulated devices.
    #[arg(long, default_value_t = 8)]
    pub devices: usize,
    /// Seconds between two windows of every device.
    #[arg(long, default_value_t = 10)]
    pub interval_s: u64,
    /// Publish one round of windows, check they are stored, and exit (CI runs this).
    #[arg(long)]
    pub once: bool,
}

/// A mosquitto of our own on a free loopback port, killed on drop.
struct DemoBroker(std::process::Child, #[allow(dead_code)] tempfile_dir::Dir);

mod tempfile_dir {
    /// A directory removed on drop (the demo broker's config).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for DemoBroker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo_broker() -> Result<(DemoBroker, u16)> {
    let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .context(
            "the demo starts its own broker and needs mosquitto: sudo apt-get install mosquitto",
        )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("emotion-fleet-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_inflight_messages 0\nmax_queued_messages 1000000\n"
        ),
    )?;
    let child = std::process::Command::new(exe)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {exe}"))?;
    let b = DemoBroker(child, tempfile_dir::Dir(dir));
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(t.elapsed().as_secs() < 10, "mosquitto did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok((b, port))
}

/// `emotion-fleet demo`: a broker, the backend on the embedded store, and simulated devices
/// publishing a window every few seconds, so the dashboard fills up live.
pub fn demo(a: DemoArgs) -> Result<()> {
    let (_broker, port) = demo_broker()?;
    let opts = serve::Options {
        data: a.data.clone(),
        db: None,
        http: a.http,
        mqtt: MqttConfig {
            host: "127.0.0.1".into(),
            port,
            prefix: "emotiond".into(),
            client_id: format!("emotion-fleet-demo-{}", std::process::id()),
            share_group: "emotion-fleet".into(),
            username: None,
            password: None,
            tls: None,
        },
        k: 3,
        raw_days: 30,
        minute_days: 90,
        ha: None,
        rollouts: DriverConfig::default(),
    };
    runtime()?.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(serve::run(opts, stop_rx));
        let password = loop {
            if server.is_finished() {
                return server.await?;
            }
            match std::fs::read_to_string(a.data.join("admin.password")) {
                Ok(p) if !p.trim().is_empty() => break Some(p.trim().to_string()),
                _ if a.data.join("fleet.db").exists()
                    && !a.data.join("admin.password").exists() =>
                {
                    break None; // an earlier demo's store: its password file was removed
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        };
        println!(
            "{}",
            serde_json::json!({
                "event": "demo",
                "dashboard": format!("http://{}/", a.http),
                "user": "admin",
                "password": password,
                "password_file": a.data.join("admin.password").display().to_string(),
                "devices": a.devices,
            })
        );
        // The devices announce themselves (retained status, health, model state); once the
        // backend has them, its subscriptions stand and no window can be missed.
        let announce = sim::SimOptions {
            host: "127.0.0.1".into(),
            port,
            devices: a.devices,
            summaries: 0,
            ..sim::SimOptions::default()
        };
        sim::run(&announce).await?;
        let store = emotion_fleet_server::store::Store::open_dir(&a.data).await?;
        let t = std::time::Instant::now();
        while store.stats().await?.devices < a.devices as i64 {
            anyhow::ensure!(
                t.elapsed().as_secs() < 30,
                "demo: the backend did not see the devices"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut round: u64 = 0;
        let mut stop = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            let now = emotion_fleet_server::now_ms() as u64;
            let o = sim::SimOptions {
                host: "127.0.0.1".into(),
                port,
                devices: a.devices,
                summaries: 1,
                start_seq: round,
                start_ms: Some(now),
                window_ms: a.interval_s.max(1) * 1000,
                feedback: usize::from(round % 6 == 5),
                announce: false,
                ..sim::SimOptions::default()
            };
            sim::run(&o).await?;
            round += 1;
            if a.once {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(a.interval_s.max(1))) => {}
                _ = tokio::signal::ctrl_c() => break,
                _ = stop.recv() => break,
            }
        }
        if a.once {
            // the round must have reached the store
            let t = std::time::Instant::now();
            loop {
                let s = store.stats().await?;
                if s.devices >= a.devices as i64 && s.stored >= a.devices as i64 {
                    println!(
                        "{}",
                        serde_json::json!({"event": "demo_checked", "stats": s})
                    );
                    break;
                }
                anyhow::ensure!(
                    t.elapsed().as_secs() < 30,
                    "demo: the simulated windows were not stored: {s:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        let _ = stop_tx.send(true);
        server.await?
    })
}
