//! The on-device HTTP API and live page (`[api]`, off by default): started by
//! [`crate::app::start`] on the daemon's runtime, stopped by the same [`Shutdown`].
//!
//! Routes: `POST /v1/analyze` ([`analyze`]), `GET /v1/live`, `POST /v1/feedback`,
//! `GET /v1/summary/latest`, `GET /v1/health`, `GET /metrics`, `GET /v1/preview.jpg`
//! ([`routes`]) and the page at `/` ([`page`]). The pipeline's side (live events, metrics,
//! feedback requests, the preview frame) is [`tap`]. With `api.token_file` every route
//! needs the token (`Authorization: Bearer <token>` or `?token=<token>`).

pub mod analyze;
pub mod metrics;
pub mod page;
pub mod routes;
pub mod tap;

use crate::analyzer::Analyzer;
use crate::config::Config;
use crate::health::DeviceHealth;
use crate::queue::DropOldest;
use crate::shutdown::Shutdown;
use crate::summary::Summary;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use emotiond_hal::Frame;
use std::net::SocketAddr;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use tap::{FeedbackRequest, Hub, Tap};

/// Socket send buffer per connection, in bytes (the kernel doubles it).
const SEND_BUFFER: usize = 32 * 1024;

/// The latest summary (`GET /v1/summary/latest`), set by the pipeline's sink.
pub type Latest = Arc<Mutex<Option<Summary>>>;

/// What every handler reads.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub analyze: Arc<analyze::AnalyzeQueue>,
    pub feedback: SyncSender<FeedbackRequest>,
    pub latest: Latest,
    pub health: DeviceHealth,
    pub frames: Arc<DropOldest<Frame>>,
    pub mqtt_enabled: bool,
    pub token: Option<Arc<str>>,
    pub shutdown: Shutdown,
}

/// A 4xx/5xx answer: `{"error": "..."}`.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": self.message }).to_string(),
        )
            .into_response()
    }
}

/// Completes once the daemon is stopping.
pub async fn stopped(s: Shutdown) {
    while !s.is_triggered() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The API started: the pipeline's [`Tap`], the latest-summary slot for the sink, the
/// address it listens on and the server task.
pub struct Started {
    pub tap: Tap,
    pub latest: Latest,
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Read the token file, bind `api.listen`, load the analysis models and start serving
/// on `rt`. Errors (no token, address in use, models) stop the start (exit 2), except
/// with `any_port` (the demo): an address in use is replaced by a free port on that host.
pub fn start(
    rt: &tokio::runtime::Runtime,
    cfg: &Config,
    health: DeviceHealth,
    frames: Arc<DropOldest<Frame>>,
    shutdown: Shutdown,
    any_port: bool,
) -> Result<Started> {
    let a = &cfg.api;
    let token = if a.token_file.as_os_str().is_empty() {
        None
    } else {
        let t = std::fs::read_to_string(&a.token_file)
            .with_context(|| format!("config `api.token_file` {}", a.token_file.display()))?;
        let t = t.trim();
        anyhow::ensure!(
            t.len() >= 16,
            "config `api.token_file` {}: the token must be at least 16 characters",
            a.token_file.display()
        );
        Some(Arc::from(t))
    };
    let addr = a
        .addr()
        .with_context(|| format!("config `api.listen` {:?}", a.listen))?;
    let listener = match std::net::TcpListener::bind(addr) {
        Err(e) if any_port && e.kind() == std::io::ErrorKind::AddrInUse => {
            std::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))
        }
        r => r,
    }
    .with_context(|| format!("config `api.listen` {addr}: cannot listen"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let analyzer =
        Analyzer::load(&cfg.models).context("api: loading the models for /v1/analyze")?;
    let analyze = analyze::AnalyzeQueue::start(analyzer, a.analyze_queue, a.max_body_bytes)
        .context("api: starting the analysis thread")?;
    let hub = Arc::new(Hub::new(a.preview));
    let (fb_tx, fb_rx) = std::sync::mpsc::sync_channel(8);
    let latest = Latest::default();
    let state = AppState {
        hub: hub.clone(),
        analyze: Arc::new(analyze),
        feedback: fb_tx,
        latest: latest.clone(),
        health,
        frames,
        mqtt_enabled: cfg.mqtt.enabled,
        token,
        shutdown: shutdown.clone(),
    };
    let app = router(state);
    let task = rt.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!("api: {e}");
                return;
            }
        };
        // Small send buffers: a client that stops reading fills them (and its live queue)
        // within seconds and is dropped, instead of taking megabytes of events first.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(SEND_BUFFER);
        });
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped(shutdown))
            .await
        {
            log::error!("api: {e}");
        }
    });
    log::info!("api: listening on http://{addr}/");
    Ok(Started {
        tap: Tap::new(hub, fb_rx, a.live_max_fps),
        latest,
        addr,
        task,
    })
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page::page))
        .route("/v1/analyze", post(analyze::analyze))
        .route("/v1/live", get(routes::live))
        .route(
            "/v1/feedback",
            post(routes::feedback).layer(axum::extract::DefaultBodyLimit::max(4096)),
        )
        .route("/v1/summary/latest", get(routes::summary_latest))
        .route("/v1/health", get(routes::health))
        .route("/v1/preview.jpg", get(routes::preview))
        .route("/metrics", get(routes::metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// With a token: every request carries it, in the header or the query.
async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(want) = &st.token {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // percent-decoded, as the page sends it (encodeURIComponent)
        let query =
            axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(
                req.uri(),
            )
            .ok()
            .and_then(|q| q.0.get("token").cloned());
        let ok = [header, query.as_deref()]
            .into_iter()
            .flatten()
            .any(|got| same(got.as_bytes(), want.as_bytes()));
        if !ok {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong token (api.token_file)",
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    next.run(req).await
}

/// Compare in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        assert!(super::same(b"abcdef", b"abcdef"));
        assert!(!super::same(b"abcdef", b"abcdeg"));
        assert!(!super::same(b"abc", b"abcdef"));
    }
}
