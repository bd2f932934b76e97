//! The fleet backend behind `emotion-fleet serve`: MQTT ingest (shared subscriptions,
//! exactly-once storage), the store (SQLite or PostgreSQL through sqlx), the device
//! registry, rollups, feedback, the HTTP API with its roles, and the dashboard.
//!
//! - [`ingest`] and [`rollup`] are pure: bytes in, typed messages and additive sums out;
//!   [`throttle`] (login rate limiting) is pure too, the time passed in;
//! - [`store`] is the only module that speaks SQL;
//! - [`mqtt`] moves messages from the broker to the store and acknowledges them after commit;
//! - [`api`] serves HTTP; [`serve`] wires it all and hands shutdown to every task;
//! - [`sim`] is the load tool: simulated devices publishing real payloads.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod homeassistant;
pub mod ingest;
pub mod mqtt;
pub mod rollout;
pub mod rollup;
pub mod serve;
pub mod sim;
pub mod sim_orders;
pub mod store;
pub mod throttle;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A monotonically increasing count.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// This process's own figures for `/metrics` (each replica is scraped on its own; the
/// fleet-wide totals are `GET /api/v1/stats`, from the store).
#[derive(Default)]
pub struct Metrics {
    pub received: Counter,
    pub stored: Counter,
    pub duplicates: Counter,
    pub malformed: Counter,
    pub batches: Counter,
    pub store_errors: Counter,
    pub http_requests: Counter,
    pub sse_dropped: Counter,
    connected: AtomicBool,
    lag_ms: AtomicI64,
    pub devices_online: AtomicI64,
    pub devices: AtomicI64,
    pub rollouts: std::sync::Mutex<rollout::Gauges>,
}

impl Metrics {
    pub fn record(&self, o: &store::Outcome) {
        self.received.add(o.received as u64);
        self.stored.add(o.stored as u64);
        self.duplicates.add(o.duplicates as u64);
        self.malformed.add(o.malformed as u64);
        self.batches.inc();
    }
    pub fn set_connected(&self, c: bool) {
        self.connected.store(c, Ordering::Relaxed);
    }
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    /// Now minus the end of the newest window in the last batch.
    pub fn set_lag_ms(&self, ms: i64) {
        self.lag_ms.store(ms, Ordering::Relaxed);
    }

    /// The Prometheus text format (version 0.0.4). Written here rather than through a
    /// metrics crate: a dozen fixed series without labels need nothing more.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut one = |name: &str, kind: &str, help: &str, v: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        let counters: [(&str, &str, &Counter); 8] = [
            (
                "emotion_fleet_messages_received_total",
                "MQTT messages received from devices",
                &self.received,
            ),
            (
                "emotion_fleet_summaries_stored_total",
                "summaries stored for the first time",
                &self.stored,
            ),
            (
                "emotion_fleet_duplicates_total",
                "redelivered summaries and feedback events (stored once)",
                &self.duplicates,
            ),
            (
                "emotion_fleet_malformed_total",
                "messages refused: malformed, oversized, wrong topic",
                &self.malformed,
            ),
            (
                "emotion_fleet_batches_total",
                "store transactions committed by ingest",
                &self.batches,
            ),
            (
                "emotion_fleet_store_errors_total",
                "store transactions that failed (retried)",
                &self.store_errors,
            ),
            (
                "emotion_fleet_http_requests_total",
                "HTTP requests served",
                &self.http_requests,
            ),
            (
                "emotion_fleet_live_clients_dropped_total",
                "live-view clients dropped for reading too slowly",
                &self.sse_dropped,
            ),
        ];
        for (name, help, c) in counters {
            one(name, "counter", help, c.get().to_string());
        }
        one(
            "emotion_fleet_mqtt_connected",
            "gauge",
            "1 while the ingest session is connected to the broker and subscribed",
            (self.connected() as u8).to_string(),
        );
        one(
            "emotion_fleet_ingest_lag_seconds",
            "gauge",
            "now minus the end of the newest window in the last batch",
            format!("{:.3}", self.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0),
        );
        one(
            "emotion_fleet_devices",
            "gauge",
            "devices in the registry",
            self.devices.load(Ordering::Relaxed).to_string(),
        );
        one(
            "emotion_fleet_devices_online",
            "gauge",
            "devices whose retained status is online",
            self.devices_online.load(Ordering::Relaxed).to_string(),
        );
        out.push_str(
            &self
                .rollouts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .render(),
        );
        out
    }
}
