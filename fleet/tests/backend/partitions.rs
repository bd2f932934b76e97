//! PostgreSQL's raw summaries in daily partitions: where rows land, how late rows move into a
//! day created after them, and retention dropping whole days; driven through the store's own
//! API on a real PostgreSQL.

use crate::support::*;
use emotion_fleet_server::ingest::Message;
use emotion_fleet_server::sim::{SimOptions, summary};
use emotion_fleet_server::store::{DAY_MS, Received, Store, partition_name};
use emotiond_wire::summary::Encoding;
use sqlx::Row;

/// Which table holds each stored summary of `device`: seq → partition.
async fn placement(store: &Store, device: &str) -> Vec<(i64, String)> {
    sqlx::query(
        "SELECT seq, tableoid::regclass::text FROM summaries WHERE device_id = $1 ORDER BY seq",
    )
    .bind(device)
    .fetch_all(store.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)))
    .collect()
}

#[test]
fn postgres_keeps_raw_summaries_in_daily_partitions_and_drops_whole_days() {
    let pg = Postgres::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&pg.url).await.unwrap();
        let now = emotion_fleet_server::now_ms();
        let today = now.div_euclid(DAY_MS);
        // seq 0: now; 1: two days ago; 2: 40 days ago; 3: ten days ahead (a clock far off)
        let ends = [now, now - 2 * DAY_MS, now - 40 * DAY_MS, now + 10 * DAY_MS];
        let batch: Vec<Received> = ends
            .iter()
            .enumerate()
            .map(|(i, end)| {
                let mut s = summary(&SimOptions::default(), "p-1", 1, i as u64, now as u64);
                s.window_end_ms = *end as u64;
                s.window_start_ms = s.window_end_ms - 10_000;
                Received::Ok(Message::Summary(Box::new(s), Encoding::Json), now)
            })
            .collect();
        // before any maintenance everything lands in the default partition
        assert_eq!(store.ingest(&batch).await.unwrap().stored, 4);
        assert!(
            placement(&store, "p-1")
                .await
                .iter()
                .all(|(_, t)| t == "summaries_default")
        );

        // the first pass creates the kept days (30) and two ahead, moving rows into them;
        // the row 40 days back stays in the default partition, where retention deletes it
        let m = store.maintain(now, 30, 90).await.unwrap();
        assert_eq!(m.partitions_created.len(), 33, "{m:?}");
        assert_eq!(
            m.partitions_created.last().unwrap(),
            &partition_name(today + 2)
        );
        assert!(m.partitions_dropped.is_empty());
        assert_eq!(m.rows_deleted, 1, "{m:?}");
        assert_eq!(
            placement(&store, "p-1").await,
            [
                (0, partition_name(today)),
                (1, partition_name(today - 2)),
                (3, "summaries_default".to_string()),
            ]
        );
        // a redelivery is still one row, in a partition as in the default one
        let again = store.ingest(&batch[..2]).await.unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 2));
        // a second pass at the same time changes nothing
        let m = store.maintain(now, 30, 90).await.unwrap();
        assert!(
            m.partitions_created.is_empty() && m.partitions_dropped.is_empty(),
            "{m:?}"
        );

        // 29 days later with 30 days kept: the day two days back (now older than 30 days)
        // goes whole, today's stays, and the far-ahead day is created with its row moved in
        let later = now + 29 * DAY_MS;
        let m = store.maintain(later, 30, 90).await.unwrap();
        assert!(
            m.partitions_dropped.contains(&partition_name(today - 2)),
            "{m:?}"
        );
        assert!(
            !m.partitions_dropped.contains(&partition_name(today)),
            "{m:?}"
        );
        assert!(
            m.partitions_created.contains(&partition_name(today + 10)),
            "{m:?}"
        );
        assert_eq!(
            placement(&store, "p-1").await,
            [(0, partition_name(today)), (3, partition_name(today + 10))]
        );
        store.pool().close().await;
    });
}

#[test]
fn a_schema_1_store_is_upgraded_on_sqlite_and_refused_on_postgres() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let set_v1 = |store: Store| async move {
            sqlx::query("UPDATE meta SET value = '1' WHERE key = 'schema'")
                .execute(store.pool())
                .await
                .unwrap();
            store.pool().close().await;
        };
        // SQLite: schema 2 changed nothing there, so a schema-1 store opens and is marked 2
        set_v1(Store::open_dir(dir.path()).await.unwrap()).await;
        let store = Store::open_dir(dir.path()).await.unwrap();
        let v: (String,) = sqlx::query_as("SELECT value FROM meta WHERE key = 'schema'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(v.0, "2");
        store.pool().close().await;
        // PostgreSQL: its summaries would need partitioning; refused with what to do
        set_v1(Store::open(&pg.url).await.unwrap()).await;
        let e = Store::open(&pg.url)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("schema 1") && e.contains("new database"), "{e}");
    });
}
