//! `emotion-fleet serve`: open the store, make the first admin credentials, start ingest,
//! the HTTP server, the live feed and retention; stop them all on SIGINT/SIGTERM (each task
//! gets the shutdown signal, mini-redis style, and the process waits for them).

use crate::api::{self, AppState, LiveEvent};
use crate::auth::{self, Role};
use crate::homeassistant::{self, HaConfig, Snapshot};
use crate::mqtt::{self, MqttConfig};
use crate::store::{Outcome, Store};
use crate::{Metrics, now_ms};
use anyhow::{Context, Result};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

#[derive(Debug, Clone)]
pub struct Options {
    /// Embedded store and first credentials live here.
    pub data: PathBuf,
    /// `postgres://...` instead of the embedded store.
    pub db: Option<String>,
    pub http: SocketAddr,
    pub mqtt: MqttConfig,
    /// Groups (and a fleet) with fewer devices show no aggregates.
    pub k: i64,
    /// Raw summaries are kept this many days; per-minute rollups `minute_days`; hourly for ever.
    pub raw_days: i64,
    pub minute_days: i64,
    /// Home Assistant MQTT discovery, when set.
    pub ha: Option<HaConfig>,
    /// The rollout driver's tick and lease.
    pub rollouts: crate::rollout::driver::DriverConfig,
}

/// What `serve` prints when it is up (one JSON line; tests and scripts read it).
pub fn ready_line(http: SocketAddr, data: &Path, token_file: Option<&Path>) -> String {
    serde_json::json!({
        "event": "ready",
        "http": format!("http://{http}"),
        "data": data.display().to_string(),
        "admin_token_file": token_file.map(|p| p.display().to_string()),
    })
    .to_string()
}

/// Write a secret to a new file readable by its owner only.
fn write_secret(path: &Path, secret: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{secret}")?;
    f.sync_all()?;
    Ok(())
}

/// On a store without tokens: an `admin` operator token in `<data>/admin.token` and a user
/// `admin` whose password is in `<data>/admin.password` (both 0600). Returns the token file.
///
/// Replicas that start together on an empty store all see no token; the one whose token
/// insert wins writes the files and the user, the others write nothing (before, each wrote
/// files, and all but one held a token the store did not have). The secrets go to temporary
/// files first and are renamed into place once the token is stored, so a crash in between
/// leaves them readable by hand rather than lost.
async fn first_credentials(store: &Store, data: &Path) -> Result<Option<PathBuf>> {
    if store.token_count().await? > 0 {
        return Ok(None);
    }
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let token = auth::new_secret("eft_");
    let password = auth::new_secret("")[..24].to_string();
    let tfile = data.join("admin.token");
    let pfile = data.join("admin.password");
    let (ttmp, ptmp) = (
        data.join(".admin.token.new"),
        data.join(".admin.password.new"),
    );
    for f in [&tfile, &pfile, &ttmp, &ptmp] {
        // a leftover file from an earlier store would hold a secret that no longer works
        let _ = std::fs::remove_file(f);
    }
    write_secret(&ttmp, &token)?;
    write_secret(&ptmp, &password)?;
    let won = store
        .add_token("admin", Role::Operator, &auth::secret_hash(&token))
        .await?;
    if !won {
        let _ = std::fs::remove_file(&ttmp);
        let _ = std::fs::remove_file(&ptmp);
        log::info!(
            "first start: another replica made the first credentials (its data folder holds admin.token)"
        );
        return Ok(None);
    }
    std::fs::rename(&ttmp, &tfile)
        .and_then(|()| std::fs::rename(&ptmp, &pfile))
        .with_context(|| format!("cannot put the first credentials in {}", data.display()))?;
    let phc = tokio::task::spawn_blocking(move || auth::hash_password(&password)).await?;
    store.put_user("admin", Role::Operator, &phc).await?;
    store
        .audit(
            "emotion-fleet",
            "token_created",
            "admin (operator), first start",
        )
        .await?;
    log::info!(
        "first start: an operator API token is in {} and the dashboard user admin's password in {}",
        tfile.display(),
        pfile.display()
    );
    Ok(Some(tfile))
}

pub async fn run(opts: Options, stop: watch::Receiver<bool>) -> Result<()> {
    // a TLS file that cannot be read stops the start, not just ingest
    opts.mqtt
        .options(&opts.mqtt.client_id)
        .context("the broker connection")?;
    let store = match &opts.db {
        Some(url) => Store::open(url).await,
        None => Store::open_dir(&opts.data).await,
    }
    .context("cannot open the store")?;
    // partitions for today and the days around it exist before the first batch arrives
    // (the retention task repeats this every hour)
    store
        .maintain(now_ms(), opts.raw_days, opts.minute_days)
        .await
        .context("store maintenance")?;
    let token_file = first_credentials(&store, &opts.data).await?;
    let metrics = Arc::new(Metrics::default());
    let (events, _) = broadcast::channel::<LiveEvent>(1024);
    let state = AppState {
        store: store.clone(),
        metrics: metrics.clone(),
        events: events.clone(),
        k: opts.k,
        started_ms: now_ms(),
        logins: Arc::default(),
    };

    // Live feed: summary events straight from each batch; device events (which need a
    // registry read) through a small task; a stats event once a second after changes.
    let dirty = Arc::new(AtomicBool::new(true));
    let (dev_tx, dev_rx) = mpsc::channel::<String>(1024);
    let ha_dropped = Arc::new(AtomicU64::new(0));
    let (ha_tx, ha_rx) = match opts.ha {
        Some(_) => {
            let (t, r) = mpsc::channel::<Snapshot>(homeassistant::QUEUE);
            (Some(t), Some(r))
        }
        None => (None, None),
    };
    let on_batch: mqtt::OnBatch = {
        let events = events.clone();
        let dirty = dirty.clone();
        let ha_dropped = ha_dropped.clone();
        Arc::new(move |o: &Outcome| {
            if o.received > 0 {
                dirty.store(true, Ordering::Relaxed);
            }
            if let Some(ha) = &ha_tx {
                for s in &o.new_summaries {
                    // never waits: a slow broker drops Home Assistant updates, not ingest
                    if ha.try_send(Snapshot::of(s)).is_err() {
                        ha_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if events.receiver_count() == 0 {
                return;
            }
            for s in &o.new_summaries {
                let data = serde_json::json!({
                    "device_id": s.device_id,
                    "t_ms": s.window_end_ms,
                    "faces_seen": s.faces_seen,
                    "dominant": crate::ingest::dominant(s.emotions.to_array()),
                    "valence": s.valence,
                    "arousal": s.arousal,
                });
                let _ = events.send(LiveEvent {
                    name: "summary",
                    data: data.to_string().into(),
                });
            }
            for d in &o.changed_devices {
                let _ = dev_tx.try_send(d.clone()); // a full queue: the next change catches up
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(live(
        store.clone(),
        events.clone(),
        dev_rx,
        dirty,
        stop.clone(),
    ));
    tasks.spawn(mqtt::run(
        opts.mqtt.clone(),
        store.clone(),
        metrics.clone(),
        on_batch,
        stop.clone(),
    ));
    if let (Some(cfg), Some(rx)) = (opts.ha.clone(), ha_rx) {
        tasks.spawn(homeassistant::run(
            opts.mqtt.clone(),
            cfg,
            rx,
            ha_dropped,
            stop.clone(),
        ));
    }
    tasks.spawn(crate::rollout::driver::run(
        opts.mqtt.clone(),
        store.clone(),
        opts.rollouts.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    tasks.spawn(retention(
        store.clone(),
        opts.raw_days,
        opts.minute_days,
        stop.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .with_context(|| format!("cannot listen on {}", opts.http))?;
    let addr = listener.local_addr()?;
    log::info!(
        "emotion-fleet serve: http://{addr}, store {}, broker {}:{} (prefix {:?}, replica {:?})",
        opts.db.as_deref().map(redact).unwrap_or_else(|| opts
            .data
            .join("fleet.db")
            .display()
            .to_string()),
        opts.mqtt.host,
        opts.mqtt.port,
        opts.mqtt.prefix,
        opts.mqtt.client_id
    );
    println!("{}", ready_line(addr, &opts.data, token_file.as_deref()));
    let mut http_stop = stop.clone();
    // the peer's address reaches the handlers (the login throttle counts per address)
    let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|s| *s).await;
        })
        .await?;
    while tasks.join_next().await.is_some() {}
    store.pool().close().await;
    log::info!("emotion-fleet serve: stopped");
    Ok(())
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn live(
    store: Store,
    events: broadcast::Sender<LiveEvent>,
    mut devices: mpsc::Receiver<String>,
    dirty: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            d = devices.recv() => {
                let Some(d) = d else { return };
                if events.receiver_count() == 0 { continue; }
                if let Ok(Some(v)) = store.devices(Some(&d)).await.map(|mut v| v.pop()) {
                    let _ = events.send(LiveEvent {
                        name: "device",
                        data: serde_json::to_string(&v).unwrap_or_default().into(),
                    });
                }
            }
            _ = tick.tick() => {
                if events.receiver_count() > 0 && dirty.swap(false, Ordering::Relaxed) {
                    if let Ok(st) = store.stats().await {
                        let _ = events.send(LiveEvent {
                            name: "stats",
                            data: serde_json::to_string(&st).unwrap_or_default().into(),
                        });
                    }
                }
            }
        }
    }
}

/// Partitions and retention ([`Store::maintain`]): at start, then every hour.
async fn retention(store: Store, raw_days: i64, minute_days: i64, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {
                match store.maintain(now_ms(), raw_days, minute_days).await {
                    Ok(m) => {
                        if !m.partitions_created.is_empty() || !m.partitions_dropped.is_empty() {
                            log::info!(
                                "retention: partitions created {:?}, dropped {:?}",
                                m.partitions_created,
                                m.partitions_dropped
                            );
                        }
                        if m.rows_deleted > 0 {
                            log::info!("retention: {} old rows deleted", m.rows_deleted);
                        }
                    }
                    Err(e) => log::warn!("retention: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_stay_out_of_logs() {
        assert_eq!(
            super::redact("postgres://fleet:s3cret@db:5432/fleet"),
            "postgres://fleet:***@db:5432/fleet"
        );
        assert_eq!(super::redact("postgres://db/fleet"), "postgres://db/fleet");
    }

    /// Replicas starting together on an empty store: exactly one writes the first
    /// credentials, and its token is the one the store knows. Before, every replica wrote
    /// files and all but one held a token that did not work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_starting_together_write_one_working_set_of_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open_dir(&dir.path().join("store"))
            .await
            .unwrap();
        let datas: Vec<_> = (0..4)
            .map(|i| dir.path().join(format!("replica-{i}")))
            .collect();
        let runs: Vec<_> = datas
            .iter()
            .map(|d| {
                let (store, d) = (store.clone(), d.clone());
                tokio::spawn(async move { super::first_credentials(&store, &d).await })
            })
            .collect();
        let mut made = Vec::new();
        for r in runs {
            made.push(r.await.unwrap().unwrap());
        }
        let written: Vec<_> = made.iter().flatten().collect();
        assert_eq!(written.len(), 1, "{made:?}");
        let token = std::fs::read_to_string(written[0]).unwrap();
        let who = store
            .who(&crate::auth::secret_hash(token.trim()))
            .await
            .unwrap();
        assert!(who.is_some(), "the written token is not in the store");
        for d in &datas {
            let has = d.join("admin.token").exists();
            assert_eq!(has, d == written[0].parent().unwrap(), "{}", d.display());
            assert!(!d.join(".admin.token.new").exists(), "{}", d.display());
        }
        // a later start finds the token and writes nothing
        assert!(
            super::first_credentials(&store, &datas[0])
                .await
                .unwrap()
                .is_none()
        );
    }
}
