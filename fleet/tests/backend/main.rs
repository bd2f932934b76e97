//! `emotion-fleet serve` end to end, over a real mosquitto, with the embedded store and with
//! a real PostgreSQL: every summary stored exactly once through kills and restarts, two
//! replicas sharing one broker, bad input counted and survived, the API's roles.

mod api;
mod dashboard;
mod device;
mod homeassistant;
mod partitions;
mod real_rollout;
mod rollout_page;
mod rollout_support;
mod rollouts;
mod support;
mod tls;

use emotion_fleet_server::ingest::dominant;
use emotion_fleet_server::sim::{SimOptions, summary};
use support::*;

/// Devices, summaries per device, and the simulator's options the tests use.
const DEVICES: usize = 12;
const SUMMARIES: usize = 40;
const SKIP: usize = 10; // seq 9, 19, 29, 39 left out; 39 is the last, so not known lost
const FEEDBACK: usize = 4;

fn sim_args(rate: &str) -> Vec<String> {
    [
        "--devices",
        &DEVICES.to_string(),
        "--summaries",
        &SUMMARIES.to_string(),
        "--postcard-every",
        "3",
        "--duplicate-every",
        "4",
        "--skip-every",
        &SKIP.to_string(),
        "--feedback",
        &FEEDBACK.to_string(),
        "--start-ms",
        &start_ms().to_string(),
        "--rate",
        rate,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Window end of seq 0: the start of the current hour minus two hours (recent enough for
/// retention to keep; on hour boundaries so the hourly series is predictable).
fn start_ms() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        now - now % 3_600_000 - 2 * 3_600_000
    })
}

fn unique_per_device() -> usize {
    SUMMARIES - SUMMARIES / SKIP
}

/// Wait until the store holds every summary the simulator published; then check that it
/// holds each exactly once, counts the redeliveries and the lost windows, and has the
/// registry, rollups and feedback that follow from the same payloads.
fn check_everything_stored_once(http: &str, token: &str) {
    let want = (DEVICES * unique_per_device()) as i64;
    let stats = wait_until(90, "every summary stored", || {
        let s = http_get(http, "/api/v1/stats", token);
        (s["stored"].as_i64() == Some(want)).then_some(s)
    });
    assert!(
        stats["duplicates"].as_i64().unwrap() >= (DEVICES * SUMMARIES.div_ceil(4)) as i64 - 1,
        "every 4th summary was published twice: {stats}"
    );
    // seq 9, 19, 29 are gaps below the highest seq (39 was skipped too, 38 is the highest)
    assert_eq!(stats["lost_windows"], (DEVICES * 3) as i64, "{stats}");
    assert_eq!(stats["devices"], DEVICES as i64, "{stats}");
    assert_eq!(stats["online"], DEVICES as i64, "{stats}");

    let devices = http_get(http, "/api/v1/devices", token);
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), DEVICES);
    for d in devices {
        let id = d["id"].as_str().unwrap();
        assert_eq!(d["online"], true, "{d}");
        assert_eq!(d["version"], "0.1.0-sim", "{d}");
        assert_eq!(d["camera"], "ok", "{d}");
        assert_eq!(
            d["models"]["expression"]["id"], "fer_mini_xception@25.10.3+f32.2",
            "{d}"
        );
        assert_eq!(d["model_states"]["expression"]["state"], "active", "{d}");
        let c = &d["completeness"];
        assert_eq!(c["stored"], unique_per_device() as i64, "{d}");
        assert_eq!(c["expected"], (SUMMARIES - 1) as i64, "{d}");
        assert_eq!(c["lost_windows"], 3, "{d}");
        // the stored summaries: each seq once, in order, with what was published
        let rows = http_get(http, &format!("/api/v1/devices/{id}/summaries"), token);
        let rows = rows.as_array().unwrap();
        let seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        let want: Vec<u64> = (0..SUMMARIES as u64)
            .filter(|q| (q + 1) % SKIP as u64 != 0)
            .collect();
        assert_eq!(seqs, want, "{id}");
        let n: usize = id.strip_prefix("sim-").unwrap().parse().unwrap();
        let o = SimOptions::default();
        let sent = summary(&o, id, n, 5, start_ms());
        assert_eq!(
            serde_json::from_value::<emotiond_wire::Summary>(rows[5].clone()).unwrap(),
            sent,
            "stored as published (postcard or JSON alike)"
        );
    }

    // fleet series from rollups: the face-weighted mean of what was published
    let series = http_get(
        http,
        &format!(
            "/api/v1/series?from_ms={}&step=hour",
            start_ms() - 3_600_000
        ),
        token,
    );
    assert_eq!(series["suppressed"], false, "{series}");
    let points = series["points"].as_array().unwrap();
    let total: i64 = points
        .iter()
        .map(|p| p["summaries"].as_i64().unwrap())
        .sum();
    assert_eq!(total, want, "{series}");
    let o = SimOptions::default();
    let (mut faces, mut happy) = (0f64, 0f64);
    for d in 0..DEVICES {
        for q in (0..SUMMARIES as u64).filter(|q| (q + 1) % SKIP as u64 != 0) {
            let s = summary(&o, &format!("sim-{d}"), d, q, start_ms());
            faces += s.faces_seen as f64;
            happy += s.emotions.happy as f64 * s.faces_seen as f64;
        }
    }
    let faces_api: i64 = points
        .iter()
        .map(|p| p["faces_seen"].as_i64().unwrap())
        .sum();
    assert_eq!(faces_api as f64, faces);
    if points.len() == 1 {
        let h = points[0]["emotions"]["happy"].as_f64().unwrap();
        assert!((h - happy / faces).abs() < 1e-4, "{h} vs {}", happy / faces);
    }

    // feedback: every press once, agreement = labelled presses whose window's dominant
    // emotion is the label, computed here from the same payloads
    let fb = http_get(http, "/api/v1/feedback/models", token);
    let m = &fb.as_array().unwrap()[0];
    assert_eq!(m["model"], "fer_mini_xception@25.10.3+f32.2");
    assert_eq!(m["presses"], (DEVICES * FEEDBACK) as i64, "{fb}");
    let (mut labelled, mut agree) = (0, 0);
    for d in 0..DEVICES {
        for j in 0..FEEDBACK {
            if j % 2 == 1 {
                let s = summary(&o, &format!("sim-{d}"), d, j as u64, start_ms());
                let label = if (d + j) % 4 == 1 { "sad" } else { "happy" };
                labelled += 1;
                agree += (dominant(s.emotions.to_array()) == Some(label)) as i64;
            }
        }
    }
    assert_eq!(m["labelled"], labelled, "{fb}");
    let a = m["agreement"].as_f64().unwrap();
    assert!((a - agree as f64 / labelled as f64).abs() < 1e-9, "{fb}");
    assert!(m["presses_per_face_hour"].as_f64().unwrap() > 0.0, "{fb}");
}

fn http_get(base: &str, path: &str, token: &str) -> serde_json::Value {
    let a = http("GET", &format!("{base}{path}"), Some(token), None);
    assert_eq!(a.status, 200, "GET {path}: {}", a.body);
    a.json()
}

/// The backend is killed (SIGKILL) while devices publish, and started again on the same
/// store and session: nothing is lost, nothing stored twice.
fn killed_mid_stream(db: Option<&str>) {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(broker.port, data.path(), db, "a");
    let token = serve.admin_token();
    let args = sim_args("400");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut sim = spawn_simulate(broker.port, &args);
    // let part of the stream in, then kill it
    wait_until(30, "the first summaries stored", || {
        let s = http_get(&serve.http, "/api/v1/stats", &token);
        (s["stored"].as_i64().unwrap() > 20).then_some(())
    });
    serve.kill();
    let again = Serve::start(broker.port, data.path(), db, "a");
    assert!(sim.wait().unwrap().success());
    check_everything_stored_once(&again.http, &token);
}

#[test]
fn sqlite_stores_every_summary_once_when_killed_mid_stream() {
    killed_mid_stream(None);
}

#[test]
fn postgres_stores_every_summary_once_when_killed_mid_stream() {
    let pg = Postgres::start();
    killed_mid_stream(Some(&pg.url));
}

/// `/readyz` follows the store: ready with PostgreSQL up, 503 naming the store once it is
/// gone, while `/healthz` (liveness) stays `ok`.
#[test]
fn readiness_follows_the_store_and_liveness_does_not() {
    let pg = Postgres::start();
    let broker = Broker::start();
    let d = tempfile::tempdir().unwrap();
    let s = Serve::start(broker.port, d.path(), Some(&pg.url), "r");
    let ready = http("GET", &format!("{}/readyz", s.http), None, None);
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));
    pg.stop();
    let down = wait_until(30, "/readyz to answer 503", || {
        let a = http("GET", &format!("{}/readyz", s.http), None, None);
        (a.status == 503).then_some(a)
    });
    assert!(down.body.contains("store"), "{}", down.body);
    let live = http("GET", &format!("{}/healthz", s.http), None, None);
    assert_eq!((live.status, live.body.as_str()), (200, "ok"));
}

#[test]
fn two_replicas_share_the_stream_and_one_killed_loses_nothing() {
    let pg = Postgres::start();
    let broker = Broker::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Serve::start(broker.port, da.path(), Some(&pg.url), "a");
    let b = Serve::start(broker.port, db.path(), Some(&pg.url), "b");
    // the first replica made the admin token in the shared store; the second found it
    let token = a.admin_token();
    assert!(!db.path().join("admin.token").exists());
    let args = sim_args("400");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut sim = spawn_simulate(broker.port, &args);
    wait_until(30, "the first summaries stored", || {
        let s = http_get(&b.http, "/api/v1/stats", &token);
        (s["stored"].as_i64().unwrap() > 20).then_some(())
    });
    a.kill();
    assert!(sim.wait().unwrap().success());
    // what the broker had handed to replica a and a never acknowledged waits in a's
    // session: a comes back (same replica name) and stores it
    let a2 = Serve::start(broker.port, da.path(), Some(&pg.url), "a");
    check_everything_stored_once(&b.http, &token);
    // both replicas took a share: each process's own counter is in its /metrics
    let m = http("GET", &format!("{}/metrics", b.http), Some(&token), None).body;
    let line = m
        .lines()
        .find(|l| l.starts_with("emotion_fleet_summaries_stored_total "))
        .unwrap();
    let by_b: f64 = line.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        by_b > 0.0 && by_b < (DEVICES * unique_per_device()) as f64,
        "{line}"
    );
    drop(a2);
}
