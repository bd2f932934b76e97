//! `POST /v1/analyze`: an image in the body → the JSON line `emotiond analyze` writes for
//! it. Its own thread and its own instance of the configured models (the camera pipeline
//! never waits for it); a bounded queue in front, and a bound on bodies being read at
//! once: beyond them, 503 with Retry-After, the body read and thrown away first.
//!
//! Refusals before the body is read (busy, a declared length over the limit) first read the
//! rest of the upload and discard it (up to [`DRAIN_MAX`] bytes within [`DRAIN_TIME`]; what
//! nginx calls a lingering close): closing with the upload unread makes the kernel reset the
//! connection, and a client still sending sees "broken pipe" instead of the answer. A larger
//! declared body is refused at once, with `Connection: close`.

use super::{ApiError, AppState};
use crate::analyzer::Analyzer;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

struct Job {
    body: axum::body::Bytes,
    name: String,
    reply: oneshot::Sender<Outcome>,
    /// Its place among the `queue + 1` images waiting or in analysis, given back before the
    /// reply is sent (so a client that sends its next image on the answer finds it free).
    slot: OwnedSemaphorePermit,
}

enum Outcome {
    Done(String),
    /// The image did not decode (400).
    Undecodable(String),
    /// The models failed on it (500, the error line of `emotiond analyze`).
    Failed(String),
}

/// The analysis thread's queue and the bound on requests in progress.
pub struct AnalyzeQueue {
    tx: SyncSender<Job>,
    /// Images waiting or in analysis: `queue + 1`.
    slots: Arc<Semaphore>,
    permits: Arc<Semaphore>,
    max_body: usize,
}

impl AnalyzeQueue {
    /// Start the analysis thread on its own `analyzer`; `queue` images wait besides the
    /// one in analysis.
    pub fn start(
        mut analyzer: Analyzer,
        queue: usize,
        max_body: usize,
    ) -> std::io::Result<AnalyzeQueue> {
        // The slots bound what waits; the channel holds all of them, so a send never fails
        // for a worker that has answered but not yet come back for the next job (with a
        // rendezvous channel, `queue = 0`, it did: a 503 to a client sending one at a time).
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue + 1);
        std::thread::Builder::new()
            .name("api-analyze".into())
            .spawn(move || {
                // ends when the server (every sender) is gone
                for job in rx {
                    let Job {
                        body,
                        name,
                        reply,
                        slot,
                    } = job;
                    let out = match emotiond_hal::decode_image(&body) {
                        Err(e) => Outcome::Undecodable(format!("cannot decode image: {e}")),
                        Ok(img) => {
                            let img = img.to_rgb8();
                            match crate::cli::analyze::analyze_image(&mut analyzer, &name, 0, &img)
                            {
                                Ok(l) => Outcome::Done(l),
                                Err(l) => Outcome::Failed(l),
                            }
                        }
                    };
                    drop(slot);
                    let _ = reply.send(out);
                }
            })?;
        Ok(AnalyzeQueue {
            tx,
            slots: Arc::new(Semaphore::new(queue + 1)),
            // bodies being read or waiting: the queue, the one in analysis, one more
            permits: Arc::new(Semaphore::new(queue + 2)),
            max_body,
        })
    }
}

/// The most body bytes read and discarded to refuse a request cleanly.
pub const DRAIN_MAX: u64 = 16 * 1024 * 1024;
/// The longest time spent discarding them.
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Refuse with `r` once the upload is read and thrown away (see the module's doc); a body
/// declared over [`DRAIN_MAX`] is not read: the connection closes after the answer.
async fn refuse_after_draining(declared: Option<u64>, body: Body, mut r: Response) -> Response {
    if declared.is_some_and(|n| n > DRAIN_MAX) {
        r.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return r;
    }
    let mut data = body.into_data_stream();
    let drained = tokio::time::timeout(DRAIN_TIME, async {
        use tokio_stream::StreamExt;
        let mut n = 0u64;
        while let Some(Ok(chunk)) = data.next().await {
            n += chunk.len() as u64;
            if n > DRAIN_MAX {
                break;
            }
        }
    })
    .await;
    if drained.is_err() {
        log::debug!("api: a refused upload was not sent within {DRAIN_TIME:?}");
    }
    r
}

fn busy() -> Response {
    let mut r = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy: images are being analysed; retry in a second",
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

pub async fn analyze(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let a = &st.analyze;
    let metrics = &st.hub.metrics;
    let count = |c: &std::sync::atomic::AtomicU64| {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Ok(_permit) = a.permits.clone().try_acquire_owned() else {
        count(&metrics.analyze_busy);
        return refuse_after_draining(declared, body, busy()).await;
    };
    let rejected = |status, msg: String| {
        count(&metrics.analyze_rejected);
        ApiError::new(status, msg).into_response()
    };
    if declared.is_some_and(|n| n > a.max_body as u64) {
        let r = rejected(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "image larger than api.max_body_bytes ({} bytes)",
                a.max_body
            ),
        );
        return refuse_after_draining(declared, body, r).await;
    }
    let bytes = match axum::body::to_bytes(body, a.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return rejected(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "image larger than api.max_body_bytes ({} bytes), or the upload broke off",
                    a.max_body
                ),
            );
        }
    };
    if bytes.is_empty() {
        return rejected(
            StatusCode::BAD_REQUEST,
            "empty body: send a JPEG or PNG image".into(),
        );
    }
    match image::guess_format(&bytes) {
        Ok(image::ImageFormat::Jpeg | image::ImageFormat::Png) => {}
        _ => {
            return rejected(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not a JPEG or PNG image".into(),
            );
        }
    }
    let Ok(slot) = a.slots.clone().try_acquire_owned() else {
        count(&metrics.analyze_busy);
        return busy();
    };
    let (reply, answer) = oneshot::channel();
    let job = Job {
        body: bytes,
        name: q.get("name").cloned().unwrap_or_default(),
        reply,
        slot,
    };
    match a.tx.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            count(&metrics.analyze_busy);
            return busy();
        }
        Err(TrySendError::Disconnected(_)) => {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the analysis thread ended")
                .into_response();
        }
    }
    let json = |status, line: String| {
        (status, [(header::CONTENT_TYPE, "application/json")], line).into_response()
    };
    match answer.await {
        Ok(Outcome::Done(line)) => {
            count(&metrics.analyze_ok);
            json(StatusCode::OK, line)
        }
        Ok(Outcome::Undecodable(m)) => rejected(StatusCode::BAD_REQUEST, m),
        Ok(Outcome::Failed(line)) => json(StatusCode::INTERNAL_SERVER_ERROR, line),
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the analysis thread ended")
            .into_response(),
    }
}
