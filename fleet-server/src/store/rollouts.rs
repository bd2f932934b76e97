//! Rollouts in the store: the package, the machine's state (JSON, less its devices), one
//! row per device, every decision (stage-level ones also in the audit log), and the lease
//! that lets exactly one replica drive rollouts.
//!
//! Every save is guarded by the row's `version` (an operator's pause and the driver's tick
//! cannot overwrite each other) and, for the driver, by its lease in the same transaction:
//! a replica that lost the lease cannot record an order, so it never publishes one.
//!
//! Length: ~630 lines, ~460 before its tests: the rollout queries for both databases in one
//! place (as store/mod.rs), so a schema change is made once.

use super::rows::values;
use super::{Store, StoreError};
use crate::rollout::{Decision, FeedbackCount, Member, Rollout};
use serde::Serialize;
use sqlx::Row;

/// What a rollout installs, where, and who started it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutMeta {
    pub id: String,
    pub group: String,
    pub slot: String,
    /// `name@version`
    pub model: String,
    pub sha256: String,
    pub created_ms: i64,
    pub created_by: String,
    pub updated_ms: i64,
    pub phase: String,
    #[serde(skip)]
    pub version: i64,
}

/// A signed package as uploaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub key_id: String,
    pub signature: String,
    pub body: Vec<u8>,
}

/// The lease's name in `leases`.
pub const DRIVER_LEASE: &str = "rollouts";

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Invalid(format!("rollout state: {e}"))
}

/// The machine's state without its devices.
fn core_json(r: &mut Rollout) -> Result<String, StoreError> {
    let members = std::mem::take(&mut r.members);
    let out = serde_json::to_string(r).map_err(json_err);
    r.members = members;
    out
}

impl Store {
    pub async fn put_package(&self, p: &Package) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO packages (sha256, name, version, key_id, signature, body, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(p.sha256.as_str())
        .bind(p.name.as_str())
        .bind(p.version.as_str())
        .bind(p.key_id.as_str())
        .bind(p.signature.as_str())
        .bind(p.body.clone())
        .bind(crate::now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn package(&self, sha256: &str) -> Result<Option<Package>, StoreError> {
        let r = sqlx::query(
            "SELECT sha256, name, version, key_id, signature, body FROM packages WHERE sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(self.pool())
        .await?;
        r.map(|r| {
            Ok(Package {
                sha256: r.try_get(0)?,
                name: r.try_get(1)?,
                version: r.try_get(2)?,
                key_id: r.try_get(3)?,
                signature: r.try_get(4)?,
                body: r.try_get(5)?,
            })
        })
        .transpose()
    }

    /// A group's devices: id, tags, online.
    pub async fn group_devices(
        &self,
        group: &str,
    ) -> Result<Vec<(String, Vec<String>, bool)>, StoreError> {
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT d.id, d.online FROM device_groups g JOIN devices d ON d.id = g.device_id \
             WHERE g.grp = $1 ORDER BY d.id",
        )
        .bind(group)
        .fetch_all(self.pool())
        .await?;
        let tags: Vec<(String, String)> = sqlx::query_as(
            "SELECT t.device_id, t.tag FROM device_tags t JOIN device_groups g \
             ON g.device_id = t.device_id WHERE g.grp = $1",
        )
        .bind(group)
        .fetch_all(self.pool())
        .await?;
        let mut by: std::collections::HashMap<String, Vec<String>> = Default::default();
        for (d, t) in tags {
            by.entry(d).or_default().push(t);
        }
        Ok(rows
            .into_iter()
            .map(|(id, online)| {
                let t = by.remove(&id).unwrap_or_default();
                (id, t, online == Some(1))
            })
            .collect())
    }

    /// The newest `models/state` of `slot` of each device of a group: (device, JSON).
    pub async fn group_model_states(
        &self,
        group: &str,
        slot: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT m.device_id, m.state FROM model_states m JOIN device_groups g \
             ON g.device_id = m.device_id WHERE g.grp = $1 AND m.slot = $2",
        )
        .bind(group)
        .bind(slot)
        .fetch_all(self.pool())
        .await?)
    }

    /// Raw summaries (postcard) of `device` whose window ended after `after_ms`: the newest
    /// `limit`, oldest first.
    pub async fn summaries_after(
        &self,
        device: &str,
        after_ms: i64,
        limit: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
            "SELECT body FROM summaries WHERE device_id = $1 AND window_end_ms > $2 \
             ORDER BY window_end_ms DESC LIMIT $3",
        )
        .bind(device)
        .bind(after_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().rev().map(|r| r.0).collect())
    }

    /// Labelled feedback presses since `from_ms` by a group's devices: (on `model`, on any
    /// other model).
    pub async fn group_feedback(
        &self,
        group: &str,
        model: &str,
        from_ms: i64,
    ) -> Result<(FeedbackCount, FeedbackCount), StoreError> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT CAST(CASE WHEN f.model = $2 THEN 1 ELSE 0 END AS BIGINT), COUNT(*), \
             CAST(COALESCE(SUM(f.agrees), 0) AS BIGINT) FROM feedback f JOIN device_groups g \
             ON g.device_id = f.device_id WHERE g.grp = $1 AND f.ts_ms >= $3 \
             AND f.agrees IS NOT NULL GROUP BY 1",
        )
        .bind(group)
        .bind(model)
        .bind(from_ms)
        .fetch_all(self.pool())
        .await?;
        let (mut new, mut old) = (FeedbackCount::default(), FeedbackCount::default());
        for (is_new, n, agree) in rows {
            let c = if is_new == 1 { &mut new } else { &mut old };
            c.labelled += n.max(0) as u64;
            c.agree += agree.max(0) as u64;
        }
        Ok((new, old))
    }

    /// Take or renew the lease `name` for `ttl_ms`: true when `holder` has it.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms \
             WHERE leases.holder = excluded.holder OR leases.expires_ms < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Give a lease up (at shutdown), so another replica takes over at once.
    pub async fn drop_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Store a new rollout (refused while another one of the group's slot runs or is
    /// paused): its row, its devices, its first decisions.
    pub async fn create_rollout(
        &self,
        meta: &RolloutMeta,
        r: &mut Rollout,
    ) -> Result<(), StoreError> {
        let state = core_json(r)?;
        let mut tx = self.begin_write().await?;
        let busy: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM rollouts WHERE grp = $1 AND slot = $2 AND active = 1 \
             AND phase IN ('running', 'paused')",
        )
        .bind(meta.group.as_str())
        .bind(meta.slot.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((other,)) = busy {
            return Err(StoreError::Conflict(format!(
                "rollout {other} of group {} (slot {}) is still running or paused: abort it first",
                meta.group, meta.slot
            )));
        }
        // a finished rollout no longer takes late joiners once a newer one exists
        sqlx::query("UPDATE rollouts SET active = 0 WHERE grp = $1 AND slot = $2")
            .bind(meta.group.as_str())
            .bind(meta.slot.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO rollouts (id, grp, slot, model, sha256, created_ms, created_by, updated_ms, \
             phase, active, version, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, 1, $10)",
        )
        .bind(meta.id.as_str())
        .bind(meta.group.as_str())
        .bind(meta.slot.as_str())
        .bind(meta.model.as_str())
        .bind(meta.sha256.as_str())
        .bind(meta.created_ms)
        .bind(meta.created_by.as_str())
        .bind(meta.created_ms)
        .bind(r.phase.as_str())
        .bind(state)
        .execute(&mut *tx)
        .await?;
        write_changes(&mut tx, r, &meta.created_by).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Save what changed since the load at `version`. `lease`: the driver's (holder, now),
    /// checked and renewed in the same transaction. False when someone else saved in
    /// between or the lease is gone (nothing is written; load again).
    pub async fn save_rollout(
        &self,
        r: &mut Rollout,
        version: i64,
        actor: &str,
        lease: Option<(&str, i64, i64)>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some((holder, now, ttl)) = lease {
            let held = sqlx::query(
                "UPDATE leases SET expires_ms = $3 WHERE name = $1 AND holder = $2 AND expires_ms >= $4",
            )
            .bind(DRIVER_LEASE)
            .bind(holder)
            .bind(now + ttl)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if held.rows_affected() != 1 {
                return Ok(false);
            }
        }
        let state = core_json(r)?;
        let done = sqlx::query(
            "UPDATE rollouts SET version = version + 1, updated_ms = $3, phase = $4, state = $5 \
             WHERE id = $1 AND version = $2",
        )
        .bind(r.id.as_str())
        .bind(version)
        .bind(crate::now_ms())
        .bind(r.phase.as_str())
        .bind(state)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        write_changes(&mut tx, r, actor).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A rollout with its devices and the version to save against.
    pub async fn load_rollout(
        &self,
        id: &str,
    ) -> Result<Option<(RolloutMeta, Rollout)>, StoreError> {
        let Some(row) = sqlx::query(&format!("{META_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let (meta, state) = meta_row(&row)?;
        let mut r: Rollout = serde_json::from_str(&state).map_err(json_err)?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT device_id, data FROM rollout_members WHERE rollout_id = $1")
                .bind(id)
                .fetch_all(self.pool())
                .await?;
        for (d, data) in rows {
            let m: Member = serde_json::from_str(&data).map_err(json_err)?;
            r.members.insert(d, m);
        }
        Ok(Some((meta, r)))
    }

    /// Rollouts, newest first (`active`: only those the driver ticks).
    pub async fn rollouts(&self, active: bool) -> Result<Vec<RolloutMeta>, StoreError> {
        let filter = if active { " WHERE active = 1" } else { "" };
        let rows = sqlx::query(&format!(
            "{META_SELECT}{filter} ORDER BY created_ms DESC, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| meta_row(r).map(|m| m.0)).collect()
    }

    /// A rollout's decisions, oldest first, at most `limit` (the newest ones).
    pub async fn rollout_decisions(
        &self,
        id: &str,
        limit: i64,
    ) -> Result<Vec<Decision>, StoreError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT at_ms, kind, detail FROM rollout_decisions WHERE rollout_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(id)
        .bind(limit.clamp(1, 100_000))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .rev()
            .map(|(at_ms, kind, detail)| Decision {
                at_ms,
                kind,
                detail,
            })
            .collect())
    }
}

const META_SELECT: &str = "SELECT id, grp, slot, model, sha256, created_ms, created_by, updated_ms, \
     phase, version, state FROM rollouts";

fn meta_row(r: &sqlx::any::AnyRow) -> Result<(RolloutMeta, String), StoreError> {
    Ok((
        RolloutMeta {
            id: r.try_get(0)?,
            group: r.try_get(1)?,
            slot: r.try_get(2)?,
            model: r.try_get(3)?,
            sha256: r.try_get(4)?,
            created_ms: r.try_get(5)?,
            created_by: r.try_get(6)?,
            updated_ms: r.try_get(7)?,
            phase: r.try_get(8)?,
            version: r.try_get(9)?,
        },
        r.try_get(10)?,
    ))
}

/// The devices that changed and the new decisions; stage-level decisions also to the audit
/// log (per-device ones only to the rollout's own history: a failing fleet must not flood it).
async fn write_changes(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    r: &mut Rollout,
    actor: &str,
) -> Result<(), StoreError> {
    let dirty = r.take_dirty();
    let mut rows = Vec::with_capacity(dirty.len());
    for d in &dirty {
        if let Some(m) = r.members.get(d) {
            let data = serde_json::to_string(m).map_err(json_err)?;
            rows.push((d.as_str(), m.stage as i64, m.progress.as_str(), data));
        }
    }
    for chunk in rows.chunks(20) {
        let sql = format!(
            "INSERT INTO rollout_members (rollout_id, device_id, stage, progress, data) VALUES {} \
             ON CONFLICT (rollout_id, device_id) DO UPDATE SET stage = excluded.stage, \
             progress = excluded.progress, data = excluded.data",
            values(chunk.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        for (d, stage, progress, data) in chunk {
            q = q
                .bind(r.id.as_str())
                .bind(*d)
                .bind(*stage)
                .bind(*progress)
                .bind(data.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    for d in r.take_decisions() {
        sqlx::query(
            "INSERT INTO rollout_decisions (rollout_id, at_ms, kind, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(r.id.as_str())
        .bind(d.at_ms)
        .bind(d.kind.as_str())
        .bind(d.detail.as_str())
        .execute(&mut **tx)
        .await?;
        if !d.kind.starts_with("device_") {
            sqlx::query("INSERT INTO audit (at_ms, actor, action, detail) VALUES ($1, $2, $3, $4)")
                .bind(d.at_ms)
                .bind(actor)
                .bind(format!("rollout_{}", d.kind))
                .bind(format!("{}: {}", r.id, d.detail))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{Action, Plan, Report};

    fn meta(id: &str) -> RolloutMeta {
        RolloutMeta {
            id: id.into(),
            group: "lobby".into(),
            slot: "expression".into(),
            model: "m@2".into(),
            sha256: "ab".repeat(32),
            created_ms: 1,
            created_by: "alice".into(),
            updated_ms: 1,
            phase: "running".into(),
            version: 1,
        }
    }

    fn devices(n: usize) -> Vec<(String, String, bool)> {
        (0..n)
            .map(|i| (format!("d{i}"), String::new(), true))
            .collect()
    }

    #[tokio::test]
    async fn rollouts_survive_a_reload_and_saves_are_guarded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_dir(dir.path()).await.unwrap();
        let plan = Plan {
            stages: vec![50, 100],
            ..Plan::default()
        };
        let mut r = Rollout::new("r1", plan.clone(), &devices(10), 1000);
        store.create_rollout(&meta("r1"), &mut r).await.unwrap();
        // a second one for the same group and slot is refused while the first runs
        let mut r2 = Rollout::new("r2", plan, &devices(10), 1000);
        let e = store
            .create_rollout(&meta("r2"), &mut r2)
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict(ref m) if m.contains("r1")),
            "{e}"
        );

        assert!(
            store
                .take_lease(DRIVER_LEASE, "a", 1000, 30_000)
                .await
                .unwrap()
        );
        assert!(
            !store
                .take_lease(DRIVER_LEASE, "b", 2000, 30_000)
                .await
                .unwrap()
        );
        let (m, mut r) = store.load_rollout("r1").await.unwrap().unwrap();
        let orders = r.tick(2000);
        assert_eq!(orders.len(), 5);
        // replica b holds no lease: it cannot record anything
        let mut copy = r.clone();
        assert!(
            !store
                .save_rollout(&mut copy, m.version, "rollouts", Some(("b", 2000, 30_000)))
                .await
                .unwrap()
        );
        assert!(
            store
                .save_rollout(&mut r, m.version, "rollouts", Some(("a", 2000, 30_000)))
                .await
                .unwrap()
        );
        // the reloaded rollout orders no one twice
        let (m2, mut back) = store.load_rollout("r1").await.unwrap().unwrap();
        assert_eq!(m2.version, m.version + 1);
        assert_eq!(back.members, r.members);
        assert!(back.tick(3000).is_empty());
        for a in &orders {
            let Action::Order(d) = a else { panic!() };
            back.report(d, Report::Rejected, Some("engine"), 5000, 5000);
        }
        // a save against the old version (an operator's pause meanwhile) is refused
        let (_, mut op) = store.load_rollout("r1").await.unwrap().unwrap();
        op.pause(4000, "operator").unwrap();
        assert!(
            store
                .save_rollout(&mut op, m2.version, "alice", None)
                .await
                .unwrap()
        );
        assert!(
            !store
                .save_rollout(&mut back, m2.version, "rollouts", Some(("a", 5000, 30_000)))
                .await
                .unwrap()
        );
        let (m3, r3) = store.load_rollout("r1").await.unwrap().unwrap();
        assert_eq!(m3.phase, "paused");
        assert_eq!(r3.count(0).failed, 0);
        let kinds: Vec<String> = store
            .rollout_decisions("r1", 100)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.kind)
            .collect();
        assert_eq!(kinds, ["created", "stage_started", "paused"]);
        let audit = store.audit_log(10).await.unwrap();
        assert!(audit.iter().any(|a| a.action == "rollout_paused"
            && a.actor == "alice"
            && a.detail.starts_with("r1: ")));
        // the lease passes on once expired, or at once when given up
        assert!(
            store
                .take_lease(DRIVER_LEASE, "b", 40_000, 30_000)
                .await
                .unwrap()
        );
        store.drop_lease(DRIVER_LEASE, "b").await.unwrap();
        assert!(
            store
                .take_lease(DRIVER_LEASE, "a", 40_001, 30_000)
                .await
                .unwrap()
        );
        assert_eq!(store.rollouts(true).await.unwrap().len(), 1);

        // labelled feedback of the group, by model, since a time
        sqlx::query("INSERT INTO devices (id, first_seen_ms, last_seen_ms) VALUES ('d1', 0, 0), ('d2', 0, 0), ('x', 0, 0)")
            .execute(store.pool())
            .await
            .unwrap();
        store
            .set_groups("d1", &["lobby".into()], &[])
            .await
            .unwrap();
        store
            .set_groups("d2", &["lobby".into()], &[])
            .await
            .unwrap();
        store.set_groups("x", &["other".into()], &[]).await.unwrap();
        for (dev, ts, model, agrees) in [
            ("d1", 100, "m@2", Some(1)),
            ("d1", 101, "m@2", Some(0)),
            ("d1", 50, "m@2", Some(0)), // before the stage
            ("d2", 102, "m@1", Some(1)),
            ("d2", 103, "m@1", None),   // no label
            ("x", 104, "m@2", Some(0)), // another group
        ] {
            sqlx::query(
                "INSERT INTO feedback (device_id, boot_id, ts_ms, kind, label, model, dominant, agrees) \
                 VALUES ($1, 1, $2, 'button', 'happy', $3, 'happy', $4)",
            )
            .bind(dev)
            .bind(ts)
            .bind(model)
            .bind(agrees)
            .execute(store.pool())
            .await
            .unwrap();
        }
        let (new, old) = store.group_feedback("lobby", "m@2", 100).await.unwrap();
        assert_eq!(
            (new.labelled, new.agree, old.labelled, old.agree),
            (2, 1, 1, 1)
        );
    }
}
