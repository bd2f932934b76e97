//! Keeping the store's size in check: daily partitions of the raw summaries on PostgreSQL, and
//! retention (raw summaries for `raw_days`, per-minute rollups for `minute_days`, hourly rollups
//! for ever, expired sessions).
//!
//! On PostgreSQL `summaries` is partitioned by range of `window_end_ms`: one partition per UTC
//! day (`summaries_dYYYYMMDD`) and a default partition (`summaries_default`) for whatever falls
//! outside them (a device whose clock is far off, summaries that arrive before their day's
//! partition exists). Each pass creates the partitions from the oldest kept day (at most
//! [`PAST_DAYS`] back) to two days ahead, moving the rows the default partition already holds
//! for a day into its new partition, and drops whole days once they are older than `raw_days`
//! (no row-by-row DELETE, nothing left to vacuum). On PostgreSQL a raw summary is therefore
//! kept between `raw_days` and `raw_days + 1` days. SQLite has one table and deletes rows.

use super::{Backend, Store, StoreError};
use crate::rollup;
use std::collections::HashSet;

pub const DAY_MS: i64 = 86_400_000;
/// Partitions are created at most this many days back (older late arrivals go to the default
/// partition, which retention empties row by row).
pub const PAST_DAYS: i64 = 31;

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Maintained {
    pub partitions_created: Vec<String>,
    pub partitions_dropped: Vec<String>,
    pub rows_deleted: u64,
}

/// The partition of UTC day `day` (days since the Unix epoch): `summaries_dYYYYMMDD`.
pub fn partition_name(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("summaries_d{y:04}{m:02}{d:02}")
}

/// The day of a partition named by [`partition_name`]; `None` for any other table.
pub fn partition_day(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("summaries_d")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d) = (
        digits[..4].parse().ok()?,
        digits[4..6].parse().ok()?,
        digits[6..].parse().ok()?,
    );
    let day = days_from_civil(y, m, d);
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Store {
    /// One maintenance pass as of `now_ms`: partitions (PostgreSQL), then retention. `serve`
    /// runs it at start, before ingest, and every hour; replicas take turns (an advisory lock).
    pub async fn maintain(
        &self,
        now_ms: i64,
        raw_days: i64,
        minute_days: i64,
    ) -> Result<Maintained, StoreError> {
        let mut done = Maintained::default();
        let raw_before = now_ms - raw_days * DAY_MS;
        if self.backend == Backend::Postgres {
            self.partitions(now_ms.div_euclid(DAY_MS), raw_before, &mut done)
                .await?;
        }
        done.rows_deleted = self
            .retain(raw_before, now_ms - minute_days * DAY_MS)
            .await?;
        Ok(done)
    }

    async fn partitions(
        &self,
        today: i64,
        raw_before: i64,
        done: &mut Maintained,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // the lock of schema creation too: a replica starting while another creates
        // partitions would otherwise lock the same tables in the other order (a deadlock)
        sqlx::query("SELECT pg_advisory_xact_lock(7205)")
            .execute(&mut *tx)
            .await?;
        let existing: HashSet<String> = sqlx::query_as::<_, (String,)>(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'summaries'::regclass",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| r.0)
        .collect();
        // whole days older than retention keeps: dropped (the names come from the catalogue
        // and match partition_name's pattern, so they are safe to put into the statement)
        let mut old: Vec<&String> = existing
            .iter()
            .filter(|n| partition_day(n).is_some_and(|d| (d + 1) * DAY_MS <= raw_before))
            .collect();
        old.sort();
        for name in old {
            sqlx::query(&format!("DROP TABLE {name}"))
                .execute(&mut *tx)
                .await?;
            done.partitions_dropped.push(name.clone());
        }
        let first = raw_before.div_euclid(DAY_MS).max(today - PAST_DAYS);
        let mut locked = false;
        for day in first..=today + 2 {
            let name = partition_name(day);
            if existing.contains(&name) {
                continue;
            }
            if !locked {
                // no insert may reach the default partition between the move and the attach
                sqlx::query("LOCK TABLE summaries_default IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                locked = true;
            }
            let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
            for stmt in [
                format!("CREATE TABLE {name} (LIKE summaries INCLUDING DEFAULTS)"),
                format!(
                    "WITH moved AS (DELETE FROM summaries_default WHERE window_end_ms >= {from} \
                     AND window_end_ms < {to} RETURNING *) INSERT INTO {name} SELECT * FROM moved"
                ),
                format!(
                    "ALTER TABLE summaries ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to})"
                ),
            ] {
                sqlx::query(&stmt).execute(&mut *tx).await?;
            }
            done.partitions_created.push(name);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Delete raw summaries whose window ended before `raw_before_ms` (on PostgreSQL only
    /// those in the default partition: days go whole, see the module docs), minute rollups
    /// before `minute_before_ms` and expired sessions. Returns rows deleted.
    pub async fn retain(
        &self,
        raw_before_ms: i64,
        minute_before_ms: i64,
    ) -> Result<u64, StoreError> {
        let raw = match self.backend {
            Backend::Sqlite => "DELETE FROM summaries WHERE window_end_ms < $1",
            Backend::Postgres => "DELETE FROM summaries_default WHERE window_end_ms < $1",
        };
        let a = sqlx::query(raw)
            .bind(raw_before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM rollups WHERE step_ms = $1 AND t_ms < $2")
            .bind(rollup::MINUTE_MS)
            .bind(minute_before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let c = sqlx::query("DELETE FROM sessions WHERE expires_ms < $1")
            .bind(crate::now_ms())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(a + b + c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_utc_dates_and_read_back() {
        assert_eq!(partition_name(0), "summaries_d19700101");
        assert_eq!(partition_name(-1), "summaries_d19691231");
        // 2026-12-02 is day 20,789; 2028-02-29 a leap day
        assert_eq!(partition_name(20_789), "summaries_d20261202");
        assert_eq!(partition_day("summaries_d20261202"), Some(20_789));
        assert_eq!(
            partition_name(partition_day("summaries_d20280229").unwrap()),
            "summaries_d20280229"
        );
        for day in -800..80_000 {
            assert_eq!(partition_day(&partition_name(day)), Some(day), "{day}");
        }
        assert_eq!(partition_day("summaries_default"), None);
        assert_eq!(partition_day("summaries_d20270230"), None); // no such date
        assert_eq!(partition_day("summaries_d2026120"), None);
    }
}
