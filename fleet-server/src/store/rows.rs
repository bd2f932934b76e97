//! Multi-row statements: numbered placeholders for many rows at once, and the two additive
//! upserts (counters, rollups) the ingest transaction runs.

use crate::rollup;
use sqlx::{Any, Transaction};

pub(super) async fn bump(
    tx: &mut Transaction<'_, Any>,
    name: &str,
    v: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO counters (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
    )
    .bind(name)
    .bind(v)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn upsert_rollups(
    tx: &mut Transaction<'_, Any>,
    rows: &[(rollup::Key, rollup::Sums)],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO rollups (scope, step_ms, t_ms, summaries, faces_seen, dwell_s, weight, \
         e0, e1, e2, e3, e4, e5, e6, va_weight, valence, arousal) VALUES {} \
         ON CONFLICT (scope, step_ms, t_ms) DO UPDATE SET \
         summaries = rollups.summaries + excluded.summaries, \
         faces_seen = rollups.faces_seen + excluded.faces_seen, \
         dwell_s = rollups.dwell_s + excluded.dwell_s, weight = rollups.weight + excluded.weight, \
         e0 = rollups.e0 + excluded.e0, e1 = rollups.e1 + excluded.e1, e2 = rollups.e2 + excluded.e2, \
         e3 = rollups.e3 + excluded.e3, e4 = rollups.e4 + excluded.e4, e5 = rollups.e5 + excluded.e5, \
         e6 = rollups.e6 + excluded.e6, va_weight = rollups.va_weight + excluded.va_weight, \
         valence = rollups.valence + excluded.valence, arousal = rollups.arousal + excluded.arousal",
        values(rows.len(), 17)
    );
    let mut q = sqlx::query(&sql);
    for ((scope, step, t), s) in rows {
        q = q
            .bind(scope.as_str())
            .bind(*step)
            .bind(*t)
            .bind(s.summaries)
            .bind(s.faces_seen)
            .bind(s.dwell_s)
            .bind(s.weight);
        for e in s.emotions {
            q = q.bind(e);
        }
        q = q.bind(s.va_weight).bind(s.valence).bind(s.arousal);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// `$first, $first+1, ...` (n of them).
pub(super) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, ..., $cols), ($cols+1, ...)`: `rows` rows of `cols` parameters.
pub(super) fn values(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * cols + 1, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn multi_row_placeholders_number_every_parameter_once() {
        assert_eq!(super::values(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::placeholders(3, 2), "$3, $4");
    }
}
