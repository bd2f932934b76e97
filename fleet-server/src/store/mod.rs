//! The fleet store: SQLite (embedded, the default) or PostgreSQL, one schema and one set of
//! queries through sqlx's `any` driver. Writes happen in batches, one transaction each;
//! the MQTT messages of a batch are acknowledged only after it commits (see `mqtt.rs`), so a
//! crash loses nothing the broker delivered and a redelivery is stored once.
//!
//! Length: ~580 lines: the one set of queries both databases run, kept together so a schema
//! change is made once; reads for the API are in `read.rs`, rollouts in `rollouts.rs`.

mod auth;
mod read;
mod retention;
mod rollouts;
mod rows;

use rows::{bump, placeholders, upsert_rollups, values};

pub use auth::{AuditRow, TokenInfo};
pub use read::{DeviceView, FeedbackRow, ModelFeedback, Point, Scope, Series, Stats};
pub use retention::{DAY_MS, Maintained, partition_day, partition_name};
pub use rollouts::{DRIVER_LEASE, Package, RolloutMeta};

use crate::ingest::{Malformed, Message};
use crate::rollup;
use emotiond_wire::summary::{Encoding, Summary};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with what the store holds (a rollout already running).
    #[error("{0}")]
    Conflict(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    pub backend: Backend,
}

/// One message as the ingest loop hands it over: understood or not, and when it arrived.
#[derive(Debug, Clone)]
pub enum Received {
    Ok(Message, i64),
    Malformed(Malformed, i64),
}

/// What a committed batch did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub received: i64,
    pub stored: i64,
    pub duplicates: i64,
    pub malformed: i64,
    /// Summaries stored for the first time (for live views).
    pub new_summaries: Vec<Summary>,
    /// Devices whose registry entry changed beyond "last seen" (appeared, status, health,
    /// models).
    pub changed_devices: Vec<String>,
}

const SCHEMA: &str = include_str!("schema.sql");
pub const SCHEMA_VERSION: &str = "2";

impl Store {
    /// `sqlite://PATH` (created when missing) or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Invalid(format!(
                "database URL {url:?}: expected sqlite://PATH or postgres://..."
            )));
        };
        let opts = AnyPoolOptions::new();
        let pool = match backend {
            Backend::Sqlite => {
                opts.max_connections(4)
                    .after_connect(|c, _| {
                        Box::pin(async move {
                            // WAL: readers never block the writer; FULL: a committed batch
                            // (whose messages are then acknowledged) survives a power cut.
                            c.execute("PRAGMA journal_mode = WAL").await?;
                            c.execute("PRAGMA synchronous = FULL").await?;
                            c.execute("PRAGMA busy_timeout = 10000").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => opts.max_connections(8).connect(url).await?,
        };
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// The embedded store in `dir` (created if needed).
    pub async fn open_dir(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
        let url = format!("sqlite://{}?mode=rwc", dir.join("fleet.db").display());
        Store::open(&url).await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let pg = self.backend == Backend::Postgres;
        let (blob, serial, key, partitioned) = if pg {
            (
                "BYTEA",
                "BIGSERIAL PRIMARY KEY",
                "device_id, boot_id, seq, window_end_ms",
                " PARTITION BY RANGE (window_end_ms)",
            )
        } else {
            (
                "BLOB",
                "INTEGER PRIMARY KEY AUTOINCREMENT",
                "device_id, boot_id, seq",
                "",
            )
        };
        let text: String = SCHEMA
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("{blob}", blob)
            .replace("{serial}", serial)
            .replace("{summaries_key}", key)
            .replace("{partitioned}", partitioned);
        let mut tx = self.pool.begin().await?;
        if pg {
            // several replicas may start at once: one creates, the others wait
            sqlx::query("SELECT pg_advisory_xact_lock(7205)")
                .execute(&mut *tx)
                .await?;
        }
        // the version first: an older store must be refused before any statement touches it
        sqlx::query("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let found: Option<(String,)> =
            sqlx::query_as("SELECT value FROM meta WHERE key = 'schema'")
                .fetch_optional(&mut *tx)
                .await?;
        match found.as_ref().map(|f| f.0.as_str()) {
            None => {}
            Some(v) if v == SCHEMA_VERSION => {}
            // schema 2 only partitioned PostgreSQL's summaries: SQLite's tables are unchanged
            Some("1") if !pg => {}
            Some("1") => {
                return Err(StoreError::Invalid(
                    "this PostgreSQL store has schema 1 (raw summaries not partitioned), which \
                     only development builds before 2026-12-02 wrote: point --db at a new database"
                        .into(),
                ));
            }
            Some(v) => {
                return Err(StoreError::Invalid(format!(
                    "the store has schema {v}; this emotion-fleet knows schema {SCHEMA_VERSION}"
                )));
            }
        }
        for stmt in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(stmt).execute(&mut *tx).await?;
        }
        if pg {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS summaries_default PARTITION OF summaries DEFAULT",
            )
            .execute(&mut *tx)
            .await?;
        }
        // written only when it changes: a store opened beside a running backend (the demo's
        // check) must not write, or SQLite refuses its transaction (busy snapshot, code 517)
        if found.as_ref().map(|f| f.0.as_str()) != Some(SCHEMA_VERSION) {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('schema', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(SCHEMA_VERSION)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Store a batch in one transaction. Idempotent: a summary or feedback event already
    /// stored counts as a duplicate and changes nothing. The per-summary work (the summaries,
    /// the registry rows, completeness, rollups) is done in multi-row statements, a few per
    /// batch rather than several per summary.
    pub async fn ingest(&self, batch: &[Received]) -> Result<Outcome, StoreError> {
        let mut out = Outcome {
            received: batch.len() as i64,
            ..Outcome::default()
        };
        let mut tx = self.begin_write().await?;
        // Devices seen in this batch: (first message time, last message time).
        let mut seen: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for r in batch {
            if let Received::Ok(m, at) = r {
                let e = seen.entry(m.device_id()).or_insert((*at, *at));
                e.0 = e.0.min(*at);
                e.1 = e.1.max(*at);
            }
        }
        let ids: Vec<&str> = seen.keys().copied().collect();
        let mut known: HashSet<String> = HashSet::new();
        for chunk in ids.chunks(self.rows_per_statement(1)) {
            let sql = format!(
                "SELECT id FROM devices WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String,)>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            known.extend(q.fetch_all(&mut *tx).await?.into_iter().map(|r| r.0));
        }
        // a device appears on its first message
        let mut changed: Vec<String> = ids
            .iter()
            .filter(|i| !known.contains(**i))
            .map(|i| i.to_string())
            .collect();

        // Summaries: once per key within the batch, then once per key in the store.
        let mut keys: HashSet<(&str, u32, u64)> = HashSet::new();
        let mut candidates: Vec<(&Summary, i64)> = Vec::new();
        for r in batch {
            if let Received::Ok(Message::Summary(s, _), at) = r {
                if keys.insert((s.device_id.as_str(), s.boot_id, s.seq)) {
                    candidates.push((s, *at));
                } else {
                    out.duplicates += 1;
                }
            }
        }
        let mut inserted: HashSet<(String, i64, i64)> = HashSet::new();
        for chunk in candidates.chunks(self.rows_per_statement(6)) {
            let sql = format!(
                "INSERT INTO summaries (device_id, boot_id, seq, window_end_ms, received_ms, body) \
                 VALUES {} ON CONFLICT DO NOTHING RETURNING device_id, boot_id, seq",
                values(chunk.len(), 6)
            );
            let mut q = sqlx::query_as::<_, (String, i64, i64)>(&sql);
            for (s, at) in chunk {
                let body = s
                    .encode(Encoding::Postcard)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                q = q
                    .bind(s.device_id.as_str())
                    .bind(s.boot_id as i64)
                    .bind(s.seq as i64)
                    .bind(s.window_end_ms as i64)
                    .bind(*at)
                    .bind(body);
            }
            inserted.extend(q.fetch_all(&mut *tx).await?);
        }
        for (s, _) in &candidates {
            if inserted.contains(&(s.device_id.clone(), s.boot_id as i64, s.seq as i64)) {
                out.stored += 1;
                out.new_summaries.push((*s).clone());
            } else {
                out.duplicates += 1;
            }
        }
        let mut newest: BTreeMap<&str, &Summary> = BTreeMap::new();
        for s in &out.new_summaries {
            let n = newest.entry(s.device_id.as_str()).or_insert(s);
            if s.window_end_ms > n.window_end_ms {
                *n = s;
            }
        }
        // The registry rows of every device in the batch: last seen, and what its newest
        // new summary says (models, boot, last summary) when that is newer than the stored one.
        let rows: Vec<(&str, i64, i64, Option<Latest>)> = seen
            .iter()
            .map(|(id, (first, last))| {
                let latest = newest.get(id).map(|s| {
                    let (models, last) = registry_json(s);
                    (s.boot_id as i64, models, last, s.window_end_ms as i64)
                });
                (*id, *first, *last, latest)
            })
            .collect();
        const NEWER: &str = "excluded.last_summary_ms IS NOT NULL AND (devices.last_summary_ms IS NULL \
             OR excluded.last_summary_ms >= devices.last_summary_ms)";
        for chunk in rows.chunks(self.rows_per_statement(7)) {
            let sql = format!(
                "INSERT INTO devices (id, first_seen_ms, last_seen_ms, boot_id, models, last_summary, last_summary_ms) \
                 VALUES {} ON CONFLICT (id) DO UPDATE SET \
                 last_seen_ms = CASE WHEN excluded.last_seen_ms > devices.last_seen_ms \
                 THEN excluded.last_seen_ms ELSE devices.last_seen_ms END, \
                 boot_id = CASE WHEN {NEWER} THEN excluded.boot_id ELSE devices.boot_id END, \
                 models = CASE WHEN {NEWER} THEN excluded.models ELSE devices.models END, \
                 last_summary = CASE WHEN {NEWER} THEN excluded.last_summary ELSE devices.last_summary END, \
                 last_summary_ms = CASE WHEN {NEWER} THEN excluded.last_summary_ms ELSE devices.last_summary_ms END",
                values(chunk.len(), 7)
            );
            let mut q = sqlx::query(&sql);
            for (id, first, last, latest) in chunk {
                let (boot, models, summary, ms) = match latest {
                    Some((b, m, l, t)) => (Some(*b), Some(m.as_str()), Some(l.as_str()), Some(*t)),
                    None => (None, None, None, None),
                };
                q = q
                    .bind(*id)
                    .bind(*first)
                    .bind(*last)
                    .bind(boot)
                    .bind(models)
                    .bind(summary)
                    .bind(ms);
            }
            q.execute(&mut *tx).await?;
        }

        // The rarer messages, one statement each.
        for r in batch {
            match r {
                Received::Malformed(m, _) => {
                    out.malformed += 1;
                    if let Some(dev) = &m.device {
                        // only devices already known: garbage must not create devices
                        sqlx::query(
                            "UPDATE devices SET malformed = malformed + 1, last_malformed = $2 \
                             WHERE id = $1",
                        )
                        .bind(dev.as_str())
                        .bind(m.reason.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Received::Ok(Message::Summary(..), _) => {}
                Received::Ok(Message::Status { device_id, online }, _) => {
                    sqlx::query("UPDATE devices SET online = $2 WHERE id = $1")
                        .bind(device_id.as_str())
                        .bind(*online as i64)
                        .execute(&mut *tx)
                        .await?;
                    changed.push(device_id.clone());
                }
                Received::Ok(Message::Health { device_id, health }, _) => {
                    let last_error = health
                        .camera
                        .error
                        .clone()
                        .or_else(|| health.microphone.as_ref().and_then(|m| m.error.clone()));
                    sqlx::query(
                        "UPDATE devices SET version = $2, camera = $3, microphone = $4, \
                         last_error = COALESCE($5, last_error) WHERE id = $1",
                    )
                    .bind(device_id.as_str())
                    .bind(health.version.as_str())
                    .bind(health.camera.state.as_str())
                    .bind(health.microphone.as_ref().map(|m| m.state.as_str()))
                    .bind(last_error)
                    .execute(&mut *tx)
                    .await?;
                    changed.push(device_id.clone());
                }
                Received::Ok(Message::ModelState { device_id, state }, _) => {
                    let slot = state.slot.map(|s| s.as_str()).unwrap_or_default();
                    let json = String::from_utf8_lossy(&state.to_json()).into_owned();
                    sqlx::query(
                        "INSERT INTO model_states (device_id, slot, at_ms, state) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (device_id, slot) DO UPDATE SET at_ms = excluded.at_ms, state = excluded.state \
                         WHERE excluded.at_ms >= model_states.at_ms",
                    )
                    .bind(device_id.as_str())
                    .bind(slot)
                    .bind(state.at_ms as i64)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
                    changed.push(device_id.clone());
                }
                Received::Ok(Message::Feedback(f), _) => {
                    let dominant = crate::ingest::dominant(f.window.emotions.to_array());
                    let agrees = f.label.as_deref().map(|l| (dominant == Some(l)) as i64);
                    let done = sqlx::query(
                        "INSERT INTO feedback (device_id, boot_id, ts_ms, kind, label, model, dominant, agrees) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                    )
                    .bind(f.device_id.as_str())
                    .bind(f.boot_id as i64)
                    .bind(f.ts_ms as i64)
                    .bind(f.kind.as_str())
                    .bind(f.label.as_deref())
                    .bind(f.window.expression.id.as_str())
                    .bind(dominant)
                    .bind(agrees)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        out.duplicates += 1;
                    }
                }
            }
        }

        // Rollups, completeness and model usage from the new summaries only.
        let sums: Vec<_> = rollup::fold(&out.new_summaries).into_iter().collect();
        for chunk in sums.chunks(self.rows_per_statement(17)) {
            upsert_rollups(&mut tx, chunk).await?;
        }
        let boots: Vec<_> = rollup::boots(&out.new_summaries).into_iter().collect();
        for chunk in boots.chunks(self.rows_per_statement(4)) {
            let sql = format!(
                "INSERT INTO boots (device_id, boot_id, stored, max_seq) VALUES {} \
                 ON CONFLICT (device_id, boot_id) DO UPDATE SET stored = boots.stored + excluded.stored, \
                 max_seq = CASE WHEN excluded.max_seq > boots.max_seq THEN excluded.max_seq ELSE boots.max_seq END",
                values(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for ((dev, boot), (stored, max_seq)) in chunk {
                q = q
                    .bind(dev.as_str())
                    .bind(*boot as i64)
                    .bind(*stored)
                    .bind(*max_seq);
            }
            q.execute(&mut *tx).await?;
        }
        let mut usage: BTreeMap<&str, (i64, i64, f64)> = BTreeMap::new();
        for s in &out.new_summaries {
            let u = usage.entry(s.expression.id.as_str()).or_default();
            u.0 += 1;
            u.1 += s.faces_seen as i64;
            u.2 += s.dwell_s as f64;
        }
        for (model, (n, faces, dwell)) in usage {
            sqlx::query(
                "INSERT INTO model_usage (model, summaries, faces_seen, dwell_s) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (model) DO UPDATE SET summaries = model_usage.summaries + excluded.summaries, \
                 faces_seen = model_usage.faces_seen + excluded.faces_seen, \
                 dwell_s = model_usage.dwell_s + excluded.dwell_s",
            )
            .bind(model)
            .bind(n)
            .bind(faces)
            .bind(dwell)
            .execute(&mut *tx)
            .await?;
        }
        for (name, v) in [
            ("received", out.received),
            ("stored", out.stored),
            ("duplicates", out.duplicates),
            ("malformed", out.malformed),
        ] {
            if v != 0 {
                bump(&mut tx, name, v).await?;
            }
        }
        tx.commit().await?;
        changed.sort();
        changed.dedup();
        out.changed_devices = changed;
        Ok(out)
    }

    /// Replace a device's groups and tags.
    pub async fn set_groups(
        &self,
        device: &str,
        groups: &[String],
        tags: &[String],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let known: Option<(String,)> = sqlx::query_as("SELECT id FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM device_groups WHERE device_id = $1")
            .bind(device)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM device_tags WHERE device_id = $1")
            .bind(device)
            .execute(&mut *tx)
            .await?;
        for g in groups {
            sqlx::query(
                "INSERT INTO device_groups (device_id, grp) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(device)
            .bind(g.as_str())
            .execute(&mut *tx)
            .await?;
        }
        for t in tags {
            sqlx::query(
                "INSERT INTO device_tags (device_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(device)
            .bind(t.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Rows per multi-row statement with `cols` parameters a row. PostgreSQL: a whole batch
    /// per statement where its 65,535-parameter limit allows (measured with
    /// `benches/fleet_ingest.py`, 10,000 devices: 2,276 summaries/s at 50 rows, 4,211 at 500,
    /// 6,617 at 2,000). SQLite: 20 rows; longer statements got slower per row, not faster
    /// (8,445/s at 20 rows, 7,156 at 50, 1,732 at 500: a 470-row rollup upsert took 93 ms).
    fn rows_per_statement(&self, cols: usize) -> usize {
        match self.backend {
            Backend::Sqlite => 20,
            Backend::Postgres => (60_000 / cols).clamp(1, 2_000),
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that will write. On SQLite it takes the write lock at its start
    /// (`BEGIN IMMEDIATE`, waiting up to the busy timeout for another writer): a deferred
    /// transaction that reads first and writes later fails at its first write with
    /// SQLITE_BUSY_SNAPSHOT when another connection committed in between, which waiting
    /// cannot cure.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}

/// A device's registry columns from its newest summary: boot, `models`, `last_summary`
/// (JSON) and that summary's window end.
type Latest = (i64, String, String, i64);

/// A device's `models` and `last_summary` registry columns (JSON) from a summary.
fn registry_json(s: &Summary) -> (String, String) {
    let models = serde_json::json!({
        "detector": {"id": s.detector.id, "engine": s.detector.engine, "accelerator": s.detector.accelerator},
        "expression": {"id": s.expression.id, "engine": s.expression.engine, "accelerator": s.expression.accelerator},
        "voice": s.voice.as_ref().map(|v| serde_json::json!({"id": v.vad, "engine": v.vad_engine})),
    });
    let last = serde_json::json!({
        "t_ms": s.window_end_ms,
        "faces_seen": s.faces_seen,
        "dominant": crate::ingest::dominant(s.emotions.to_array()),
        "valence": s.valence,
        "arousal": s.arousal,
        "camera": s.camera.as_str(),
    });
    (models.to_string(), last.to_string())
}
