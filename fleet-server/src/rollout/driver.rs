//! The rollout driver inside `serve`: every tick, the replica holding the lease loads each
//! active rollout from the store, feeds it what its devices reported (registry, group
//! membership, `models/state`, summaries: all read from the store, which every replica's
//! ingest fills), ticks the machine, saves (version- and lease-guarded) and only then
//! publishes the orders it recorded. A crash between save and publish loses an order (the
//! device times out and counts as failed), never sends one twice.

use super::machine::{Action, Progress, Report, Rollout, WINDOW_LAG_MS, WINDOW_MARGIN_MS, Window};
use super::orders::{self, Offer, Order, OrderSigner, Where};
use crate::mqtt::MqttConfig;
use crate::store::{DRIVER_LEASE, RolloutMeta, Store, StoreError};
use crate::{Metrics, now_ms};
use emotiond_wire::signed::{SignatureFile, Slot};
use emotiond_wire::state::{ModelState, UpdateState};
use emotiond_wire::summary::{Encoding, Summary};
use emotiond_wire::{SourceState, topics};
use rumqttc::{AsyncClient, QoS};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Evaluation tick.
    pub tick: Duration,
    /// The lease lasts this long without renewal (a dead driver's successor waits for it).
    pub lease_ms: i64,
    /// This replica's name in the lease.
    pub holder: String,
    /// Signs every order (`serve --order-key`); `None`: unsigned orders, which devices
    /// refuse unless `updates.require_signed_orders = false`.
    pub signer: Option<Arc<OrderSigner>>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tick: Duration::from_secs(5),
            lease_ms: 30_000,
            holder: format!("emotion-fleet-{}", std::process::id()),
            signer: None,
        }
    }
}

/// Summaries read per device and tick.
const WINDOWS_PER_TICK: i64 = 20;

/// Run until `stop`: tick, and give the lease up at the end.
pub async fn run(
    mqtt: MqttConfig,
    store: Store,
    cfg: DriverConfig,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    match &cfg.signer {
        Some(s) => log::info!("rollouts: orders are signed by key {}", s.key_id()),
        None => log::warn!(
            "rollouts: orders are unsigned (no --order-key): devices refuse them unless updates.require_signed_orders = false"
        ),
    }
    let client_id = format!("{}-rollouts", mqtt.client_id);
    let mut opts = match mqtt.options(&client_id) {
        Ok(o) => o,
        Err(e) => {
            log::error!("rollouts: {e:#}");
            return;
        }
    };
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    let mut loop_stop = stop.clone();
    let events = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = loop_stop.changed() => return,
                ev = eventloop.poll() => if let Err(e) = ev {
                    log::warn!("rollouts: broker: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let mut d = Driver {
        store: store.clone(),
        prefix: mqtt.prefix.clone(),
        client,
        cfg: cfg.clone(),
        chunks_sent: HashSet::new(),
        metrics,
    };
    let mut tick = tokio::time::interval(cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                if let Err(e) = d.tick(now_ms()).await {
                    log::warn!("rollouts: {e}");
                }
            }
        }
    }
    let _ = store.drop_lease(DRIVER_LEASE, &cfg.holder).await;
    let _ = d.client.disconnect().await;
    let _ = events.await;
}

struct Driver {
    store: Store,
    prefix: String,
    client: AsyncClient,
    cfg: DriverConfig,
    /// Packages whose chunks this process published (retained: once is enough).
    chunks_sent: HashSet<String>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
enum TickError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("broker: {0}")]
    Mqtt(#[from] rumqttc::ClientError),
    #[error("{0}")]
    Package(String),
}

impl Driver {
    async fn tick(&mut self, now: i64) -> Result<(), TickError> {
        let (holder, ttl) = (self.cfg.holder.clone(), self.cfg.lease_ms);
        if !self
            .store
            .take_lease(DRIVER_LEASE, &holder, now, ttl)
            .await?
        {
            return Ok(());
        }
        let mut gauges = super::Gauges::default();
        for meta in self.store.rollouts(true).await? {
            let Some((meta, mut r)) = self.store.load_rollout(&meta.id).await? else {
                continue;
            };
            feed(&self.store, &self.prefix, &meta, &mut r, now).await?;
            let actions = r.tick(now);
            let offer = if actions.iter().any(|a| matches!(a, Action::Order(_))) {
                Some(self.offer(&meta).await?)
            } else {
                None
            };
            if !self
                .store
                .save_rollout(&mut r, meta.version, "rollouts", Some((&holder, now, ttl)))
                .await?
            {
                // an operator saved meanwhile, or the lease is gone: nothing was recorded
                continue;
            }
            let slot: Slot = meta.slot.parse().map_err(TickError::Package)?;
            let signed_at = std::time::SystemTime::now();
            for a in &actions {
                let (device, order) = match (a, &offer) {
                    (Action::Order(d), Some(o)) => (d, Order::Install(o)),
                    (Action::Rollback(d), _) => (d, Order::Rollback(slot)),
                    (Action::Order(_), None) => continue,
                };
                let topic = topics::Topics::new(&self.prefix, device).models_set;
                let payload = match &self.cfg.signer {
                    Some(s) => s.payload(&order, &topic, signed_at),
                    None => orders::order_payload(&order),
                };
                self.client
                    .publish(topic, QoS::AtLeastOnce, true, payload)
                    .await?;
            }
            gauges.add(&r);
        }
        *self
            .metrics
            .rollouts
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = gauges;
        Ok(())
    }

    /// The rollout's package as orders carry it; its chunks published (retained) first.
    async fn offer(&mut self, meta: &RolloutMeta) -> Result<Offer, TickError> {
        let p = self.store.package(&meta.sha256).await?.ok_or_else(|| {
            TickError::Package(format!("package {} is not in the store", meta.sha256))
        })?;
        let slot: Slot = meta.slot.parse().map_err(TickError::Package)?;
        let (chunks, msgs) = orders::chunk_messages(&self.prefix, &p.body, orders::CHUNK);
        let sig = SignatureFile {
            sha256: p.sha256.clone(),
            key_id: p.key_id.clone(),
            signature: p.signature.clone(),
        };
        let offer = orders::offer(&p.body, &sig, slot, Where::Chunks(chunks))
            .map_err(|e| TickError::Package(e.to_string()))?;
        if self.chunks_sent.insert(p.sha256.clone()) {
            for (t, payload) in msgs {
                self.client
                    .publish(t, QoS::AtLeastOnce, true, payload)
                    .await?;
            }
        }
        Ok(offer)
    }
}

/// What the rollout's devices reported since the last tick.
async fn feed(
    store: &Store,
    prefix: &str,
    meta: &RolloutMeta,
    r: &mut Rollout,
    now: i64,
) -> Result<(), StoreError> {
    for (id, tags, online) in store.group_devices(&meta.group).await? {
        if r.members.contains_key(&id) {
            r.online(&id, online, now);
        } else {
            r.join(&id, online, now);
        }
        // the zone its maintenance window is judged in (a retagged device moves)
        let tz = r.plan.device_zone(&tags);
        r.zone(&id, tz, now);
    }
    for (id, json) in store.group_model_states(&meta.group, &meta.slot).await? {
        let Some(m) = r.members.get(&id) else {
            continue;
        };
        let Ok(s) = serde_json::from_str::<ModelState>(&json) else {
            continue;
        };
        // a rollback's state may name either model; everything else must be this package
        let ours = s
            .sha256
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(&meta.sha256))
            || m.progress == Progress::RollbackOrdered;
        if !ours {
            continue;
        }
        let rep = match s.state {
            UpdateState::Downloading | UpdateState::Verifying | UpdateState::Testing => {
                Report::Working
            }
            UpdateState::Active => Report::Active,
            UpdateState::Rejected => Report::Rejected,
            UpdateState::RolledBack => Report::RolledBack,
        };
        let reason = s.reason.map(|c| c.as_str());
        r.report(&id, rep, reason, s.at_ms as i64, now);
    }
    // A refusal of the order itself (unsigned, signed by a key the device does not trust,
    // for another topic, expired, replayed): the device cannot tie it to a slot and names the
    // topic it came on instead. One on the device's own topic since its order fails it.
    for (id, json) in store.group_model_states(&meta.group, "").await? {
        let Some(m) = r.members.get(&id) else {
            continue;
        };
        if !matches!(m.progress, Progress::Ordered | Progress::RollbackOrdered) {
            continue;
        }
        let Ok(s) = serde_json::from_str::<ModelState>(&json) else {
            continue;
        };
        let own = topics::Topics::new(prefix, &id).models_set;
        if s.state != UpdateState::Rejected
            || s.topic.as_deref() != Some(own.as_str())
            || (s.at_ms as i64) < m.since_ms - WINDOW_MARGIN_MS
        {
            continue;
        }
        let reason = s.reason.map(|c| c.as_str());
        r.report(&id, Report::Rejected, reason, s.at_ms as i64, now);
    }
    if meta.slot == Slot::Expression.as_str() && r.plan.feedback_min_labelled > 0 {
        let (canary, control) = store
            .group_feedback(&meta.group, &meta.model, r.stage_started_ms)
            .await?;
        r.set_feedback(canary, control);
    }
    let watching: Vec<(String, i64)> = r
        .members
        .iter()
        .filter(|(_, m)| matches!(m.progress, Progress::Ordered | Progress::Active))
        .map(|(d, m)| (d.clone(), m.window_ms - WINDOW_LAG_MS))
        .collect();
    let expression = meta.slot == Slot::Expression.as_str();
    for (d, after) in watching {
        for body in store.summaries_after(&d, after, WINDOWS_PER_TICK).await? {
            let Ok(s) = Summary::decode(&body, Encoding::Postcard) else {
                continue;
            };
            let model = if expression {
                &s.expression
            } else {
                &s.detector
            };
            if model.id != meta.model {
                r.skip_window(&d, s.window_end_ms as i64);
                continue;
            }
            let w = Window {
                end_ms: s.window_end_ms as i64,
                boot_id: s.boot_id,
                frames: s.frames_processed,
                faces: s.faces_seen,
                camera_ok: s.camera == SourceState::Ok,
                stalls: s.detector.stalls + s.expression.stalls,
            };
            r.window(&d, &w, now);
        }
    }
    Ok(())
}
