//! What the API reads: the registry, stored summaries, series from rollups, feedback, stats.

use super::{Store, StoreError};
use crate::rollup::{self, Sums};
use emotiond_wire::EMOTIONS;
use emotiond_wire::summary::{Encoding, Summary};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// A device as `GET /api/v1/devices` shows it (API.md, `device`).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub id: String,
    pub online: Option<bool>,
    pub last_seen_ms: i64,
    pub first_seen_ms: i64,
    pub boot_id: Option<i64>,
    pub version: Option<String>,
    pub groups: Vec<String>,
    pub tags: Vec<String>,
    pub models: Value,
    pub model_states: Map<String, Value>,
    pub camera: Option<String>,
    pub microphone: Option<String>,
    pub last_error: Option<String>,
    pub malformed: i64,
    pub last_malformed: Option<String>,
    pub completeness: Value,
    pub last_summary: Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub received: i64,
    pub stored: i64,
    pub duplicates: i64,
    pub malformed: i64,
    pub lost_windows: i64,
    pub devices: i64,
    pub online: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub t_ms: i64,
    pub summaries: i64,
    pub faces_seen: i64,
    pub dwell_s: f64,
    pub emotions: Option<BTreeMap<&'static str, f64>>,
    pub valence: Option<f64>,
    pub arousal: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub scope: String,
    pub step_ms: i64,
    pub devices: i64,
    pub k: i64,
    pub suppressed: bool,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedbackRow {
    pub device_id: String,
    pub boot_id: i64,
    pub ts_ms: i64,
    pub kind: String,
    pub label: Option<String>,
    pub model: String,
    pub dominant: Option<String>,
    pub agrees: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelFeedback {
    pub model: String,
    pub presses: i64,
    pub labelled: i64,
    /// Labelled presses whose window's dominant emotion was the stated one, / labelled.
    pub agreement: Option<f64>,
    /// Person-hours of faces the model looked at (Σ dwell_s / 3600).
    pub faces_hours: f64,
    pub presses_per_face_hour: Option<f64>,
}

/// Which rows a series covers.
#[derive(Debug, Clone)]
pub enum Scope {
    Fleet,
    Group(String),
    Device(String),
}

impl Store {
    /// Rows of `sql`, with `$1` bound to `id` when given.
    async fn rows(&self, sql: &str, id: Option<&str>) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut q = sqlx::query(sql);
        if let Some(id) = id {
            q = q.bind(id);
        }
        q.fetch_all(self.pool()).await
    }

    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let rows = sqlx::query("SELECT name, value FROM counters")
            .fetch_all(self.pool())
            .await?;
        let mut c: BTreeMap<String, i64> = BTreeMap::new();
        for r in rows {
            c.insert(r.try_get(0)?, r.try_get(1)?);
        }
        let lost: (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(max_seq + 1 - stored), 0) AS BIGINT) FROM boots",
        )
        .fetch_one(self.pool())
        .await?;
        let devices: (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN online = 1 THEN 1 ELSE 0 END), 0) AS BIGINT) FROM devices",
        )
        .fetch_one(self.pool())
        .await?;
        let g = |k: &str| c.get(k).copied().unwrap_or(0);
        Ok(Stats {
            received: g("received"),
            stored: g("stored"),
            duplicates: g("duplicates"),
            malformed: g("malformed"),
            lost_windows: lost.0.max(0),
            devices: devices.0,
            online: devices.1,
        })
    }

    /// Every device (`id` = None) or one.
    pub async fn devices(&self, id: Option<&str>) -> Result<Vec<DeviceView>, StoreError> {
        let filter = if id.is_some() { " WHERE id = $1" } else { "" };
        let rows = self
            .rows(
                &format!(
                    "SELECT id, online, last_seen_ms, first_seen_ms, boot_id, version, camera, microphone, \
                     last_error, models, last_summary, malformed, last_malformed FROM devices{filter} ORDER BY id"
                ),
                id,
            )
            .await?;
        let dfilter = if id.is_some() {
            " WHERE device_id = $1"
        } else {
            ""
        };
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self
            .rows(
                &format!("SELECT device_id, grp FROM device_groups{dfilter} ORDER BY grp"),
                id,
            )
            .await?
        {
            groups.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
        }
        let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self
            .rows(
                &format!("SELECT device_id, tag FROM device_tags{dfilter} ORDER BY tag"),
                id,
            )
            .await?
        {
            tags.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
        }
        let mut states: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for r in self
            .rows(
                &format!("SELECT device_id, slot, state FROM model_states{dfilter}"),
                id,
            )
            .await?
        {
            let slot: String = r.try_get(1)?;
            let state: String = r.try_get(2)?;
            states.entry(r.try_get(0)?).or_default().insert(
                if slot.is_empty() {
                    "unattached".into()
                } else {
                    slot
                },
                serde_json::from_str(&state).unwrap_or(Value::Null),
            );
        }
        let mut complete: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for r in self
            .rows(
                &format!(
                    "SELECT device_id, CAST(SUM(stored) AS BIGINT), CAST(SUM(max_seq + 1) AS BIGINT) \
                     FROM boots{dfilter} GROUP BY device_id"
                ),
                id,
            )
            .await?
        {
            complete.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id")?;
            let online: Option<i64> = r.try_get("online")?;
            let (stored, expected) = complete.get(&id).copied().unwrap_or((0, 0));
            let json_col = |name: &str| -> Result<Value, sqlx::Error> {
                let s: Option<String> = r.try_get(name)?;
                Ok(s.and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or(Value::Null))
            };
            out.push(DeviceView {
                online: online.map(|o| o == 1),
                last_seen_ms: r.try_get("last_seen_ms")?,
                first_seen_ms: r.try_get("first_seen_ms")?,
                boot_id: r.try_get("boot_id")?,
                version: r.try_get("version")?,
                groups: groups.remove(&id).unwrap_or_default(),
                tags: tags.remove(&id).unwrap_or_default(),
                models: json_col("models")?,
                model_states: states.remove(&id).unwrap_or_default(),
                camera: r.try_get("camera")?,
                microphone: r.try_get("microphone")?,
                last_error: r.try_get("last_error")?,
                malformed: r.try_get("malformed")?,
                last_malformed: r.try_get("last_malformed")?,
                completeness: json!({
                    "stored": stored,
                    "expected": expected,
                    "lost_windows": rollup::lost(stored, expected - 1),
                    "ratio": if expected > 0 { Some(stored.min(expected) as f64 / expected as f64) } else { None },
                }),
                last_summary: json_col("last_summary")?,
                id,
            });
        }
        Ok(out)
    }

    /// Stored summaries of a device whose window ended in [from, to], oldest first.
    pub async fn summaries(
        &self,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<Summary>, StoreError> {
        let rows = sqlx::query(
            "SELECT body FROM summaries WHERE device_id = $1 AND window_end_ms >= $2 AND window_end_ms <= $3 \
             ORDER BY window_end_ms, boot_id, seq LIMIT $4",
        )
        .bind(device)
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let body: Vec<u8> = r.try_get(0)?;
                Summary::decode(&body, Encoding::Postcard)
                    .map_err(|e| StoreError::Invalid(format!("stored summary: {e}")))
            })
            .collect()
    }

    /// A chart's points from rollups (never from raw summaries). `k`: a fleet or group with
    /// fewer devices than this is suppressed.
    pub async fn series(
        &self,
        scope: &Scope,
        step_ms: i64,
        from_ms: i64,
        to_ms: i64,
        k: i64,
    ) -> Result<Series, StoreError> {
        const COLS: &str = "t_ms, summaries, faces_seen, dwell_s, weight, e0, e1, e2, e3, e4, e5, e6, va_weight, valence, arousal";
        const SUMS: &str = "t_ms, CAST(SUM(summaries) AS BIGINT), CAST(SUM(faces_seen) AS BIGINT), SUM(dwell_s), SUM(weight), \
             SUM(e0), SUM(e1), SUM(e2), SUM(e3), SUM(e4), SUM(e5), SUM(e6), SUM(va_weight), SUM(valence), SUM(arousal)";
        let (name, devices, rows) = match scope {
            Scope::Device(id) => {
                let rows = sqlx::query(&format!(
                    "SELECT {COLS} FROM rollups WHERE scope = $1 AND step_ms = $2 AND t_ms >= $3 AND t_ms <= $4 ORDER BY t_ms"
                ))
                .bind(rollup::device_scope(id))
                .bind(step_ms)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(self.pool())
                .await?;
                (format!("device:{id}"), 1, rows)
            }
            Scope::Fleet => {
                let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM devices")
                    .fetch_one(self.pool())
                    .await?;
                let rows = sqlx::query(&format!(
                    "SELECT {COLS} FROM rollups WHERE scope = $1 AND step_ms = $2 AND t_ms >= $3 AND t_ms <= $4 ORDER BY t_ms"
                ))
                .bind(rollup::FLEET)
                .bind(step_ms)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(self.pool())
                .await?;
                ("fleet".to_string(), n.0, rows)
            }
            Scope::Group(g) => {
                let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM device_groups WHERE grp = $1")
                    .bind(g.as_str())
                    .fetch_one(self.pool())
                    .await?;
                let rows = sqlx::query(&format!(
                    "SELECT {SUMS} FROM rollups WHERE scope IN \
                     (SELECT 'device:' || device_id FROM device_groups WHERE grp = $1) \
                     AND step_ms = $2 AND t_ms >= $3 AND t_ms <= $4 GROUP BY t_ms ORDER BY t_ms"
                ))
                .bind(g.as_str())
                .bind(step_ms)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(self.pool())
                .await?;
                (format!("group:{g}"), n.0, rows)
            }
        };
        let suppressed = !matches!(scope, Scope::Device(_)) && devices < k;
        let mut points = Vec::new();
        if !suppressed {
            for r in rows {
                let f = |i: usize| -> Result<f64, sqlx::Error> { r.try_get::<f64, _>(i) };
                let mut s = Sums {
                    summaries: r.try_get(1)?,
                    faces_seen: r.try_get(2)?,
                    dwell_s: f(3)?,
                    weight: f(4)?,
                    emotions: [0.0; 7],
                    va_weight: f(12)?,
                    valence: f(13)?,
                    arousal: f(14)?,
                };
                for (j, e) in s.emotions.iter_mut().enumerate() {
                    *e = f(5 + j)?;
                }
                let (e, v, a) = s.means();
                points.push(Point {
                    t_ms: r.try_get(0)?,
                    summaries: s.summaries,
                    faces_seen: s.faces_seen,
                    dwell_s: s.dwell_s,
                    emotions: e.map(|e| EMOTIONS.iter().copied().zip(e).collect()),
                    valence: v,
                    arousal: a,
                });
            }
        }
        Ok(Series {
            scope: name,
            step_ms,
            devices,
            k,
            suppressed,
            points,
        })
    }

    pub async fn feedback(
        &self,
        device: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FeedbackRow>, StoreError> {
        let sql = format!(
            "SELECT device_id, boot_id, ts_ms, kind, label, model, dominant, agrees FROM feedback{} \
             ORDER BY ts_ms DESC LIMIT {}",
            if device.is_some() {
                " WHERE device_id = $1"
            } else {
                ""
            },
            limit.clamp(1, 10_000)
        );
        let rows = self.rows(&sql, device).await?;
        rows.iter()
            .map(|r| {
                let agrees: Option<i64> = r.try_get(7)?;
                Ok(FeedbackRow {
                    device_id: r.try_get(0)?,
                    boot_id: r.try_get(1)?,
                    ts_ms: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    label: r.try_get(4)?,
                    model: r.try_get(5)?,
                    dominant: r.try_get(6)?,
                    agrees: agrees.map(|a| a == 1),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Per expression model: presses, labelled presses, field agreement, press rate.
    pub async fn feedback_by_model(&self) -> Result<Vec<ModelFeedback>, StoreError> {
        let rows = sqlx::query(
            "SELECT model, COUNT(*), CAST(SUM(CASE WHEN label IS NULL THEN 0 ELSE 1 END) AS BIGINT), \
             CAST(SUM(CASE WHEN agrees = 1 THEN 1 ELSE 0 END) AS BIGINT) FROM feedback GROUP BY model",
        )
        .fetch_all(self.pool())
        .await?;
        let mut by: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
        for r in &rows {
            by.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
        }
        let usage = sqlx::query("SELECT model, dwell_s FROM model_usage")
            .fetch_all(self.pool())
            .await?;
        let mut hours: BTreeMap<String, f64> = BTreeMap::new();
        for r in &usage {
            hours.insert(r.try_get(0)?, r.try_get::<f64, _>(1)? / 3600.0);
        }
        let models: std::collections::BTreeSet<String> =
            by.keys().chain(hours.keys()).cloned().collect();
        Ok(models
            .into_iter()
            .map(|m| {
                let (presses, labelled, agree) = by.get(&m).copied().unwrap_or((0, 0, 0));
                let h = hours.get(&m).copied().unwrap_or(0.0);
                ModelFeedback {
                    presses,
                    labelled,
                    agreement: (labelled > 0).then(|| agree as f64 / labelled as f64),
                    faces_hours: h,
                    presses_per_face_hour: (h > 0.0).then(|| presses as f64 / h),
                    model: m,
                }
            })
            .collect())
    }
}
