//! The read routes (`/v1/live`, `/v1/summary/latest`, `/v1/health`, `/metrics`,
//! `/v1/preview.jpg`) and `POST /v1/feedback`.

use super::tap::FeedbackRequest;
use super::{ApiError, AppState, stopped};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use emotiond_wire::Health;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::error::TrySendError;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Server-sent events, one `frame` event per analysed frame. Each client has a forwarder
/// task between the broadcast and its response, with a queue of
/// [`super::tap::CLIENT_QUEUE`] events: a client whose queue is full (it stopped reading and
/// the socket buffers in front of it are full) or that fell behind the broadcast is dropped:
/// its stream ends, and its place in the broadcast is given up at once.
pub async fn live(State(st): State<AppState>) -> Response {
    let mut rx = st.hub.live.subscribe();
    let (tx, out) = tokio::sync::mpsc::channel::<Arc<str>>(super::tap::CLIENT_QUEUE);
    let hub = st.hub.clone();
    let stop = stopped(st.shutdown.clone());
    tokio::spawn(async move {
        tokio::pin!(stop);
        let dropped = || {
            hub.metrics.live_dropped.fetch_add(1, Ordering::Relaxed);
        };
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Ok(line) => match tx.try_send(line) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => return dropped(),
                        Err(TrySendError::Closed(_)) => return,
                    },
                    Err(RecvError::Lagged(_)) => return dropped(),
                    Err(RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
                _ = &mut stop => return,
            }
        }
    });
    let events = ReceiverStream::new(out)
        .map(|line| Ok::<_, Infallible>(Event::default().event("frame").data(&*line)));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
        .into_response()
}

pub async fn summary_latest(State(st): State<AppState>) -> Response {
    let latest = st.latest.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match latest {
        Some(s) => json(StatusCode::OK, crate::cli::json_line(&s)),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "no summary yet: the first window is still open",
        )
        .into_response(),
    }
}

/// The health document (as published on `<prefix>/<device_id>/health`), plus `broker`:
/// `connected`, `disconnected` or `off`.
pub fn health_value(st: &AppState) -> serde_json::Value {
    let p = st.health.publish.get();
    let h = Health {
        camera: st.health.camera.camera(),
        microphone: st.health.microphone.as_ref().map(|m| m.microphone()),
        summaries_sent: p.summaries_sent,
        outbox: p.outbox,
        outbox_dropped: p.outbox_dropped,
        outbox_on_disk: p.outbox_on_disk,
        outbox_state: Some(p.outbox_state),
        outbox_memory_only: p.outbox_memory_only,
        outbox_write_errors: p.outbox_write_errors,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut v = serde_json::to_value(&h).unwrap_or_default();
    let broker = match (st.mqtt_enabled, st.health.broker.get()) {
        (false, _) => "off",
        (true, true) => "connected",
        (true, false) => "disconnected",
    };
    v["broker"] = broker.into();
    v
}

pub async fn health(State(st): State<AppState>) -> Response {
    json(StatusCode::OK, health_value(&st).to_string())
}

pub async fn metrics(State(st): State<AppState>) -> Response {
    let cam = st.health.camera.camera();
    let p = st.health.publish.get();
    let mic = st.health.microphone.as_ref().map(|m| m.microphone());
    let state = |s: emotiond_wire::SourceState| (s == emotiond_wire::SourceState::Ok) as u64 as f64;
    let mut extra = vec![
        (
            "emotiond_frames_dropped_total",
            "counter",
            "Frames dropped because inference was behind.",
            st.frames.dropped() as f64,
        ),
        (
            "emotiond_frames_skipped_total",
            "counter",
            "Frames or files the camera could not deliver.",
            st.frames.skipped() as f64,
        ),
        (
            "emotiond_camera_up",
            "gauge",
            "1 when the camera delivers frames.",
            state(cam.state),
        ),
        (
            "emotiond_camera_reconnects_total",
            "counter",
            "Times the camera came back after an outage.",
            cam.reconnects as f64,
        ),
        (
            "emotiond_broker_up",
            "gauge",
            "1 when connected to the MQTT broker.",
            st.health.broker.get() as u64 as f64,
        ),
        (
            "emotiond_broker_connects_total",
            "counter",
            "Connections made to the broker (reconnects are this minus 1).",
            p.connects as f64,
        ),
        (
            "emotiond_outbox_depth",
            "gauge",
            "Summaries waiting for the broker.",
            p.outbox as f64,
        ),
        (
            "emotiond_outbox_dropped_total",
            "counter",
            "Summaries dropped because the outbox was full.",
            p.outbox_dropped as f64,
        ),
        (
            "emotiond_summaries_sent_total",
            "counter",
            "Summaries acknowledged by the broker.",
            p.summaries_sent as f64,
        ),
        (
            "emotiond_api_live_clients",
            "gauge",
            "Clients of GET /v1/live.",
            st.hub.live.receiver_count() as f64,
        ),
    ];
    if let Some(m) = &mic {
        extra.push((
            "emotiond_microphone_up",
            "gauge",
            "1 when the microphone delivers audio.",
            state(m.state),
        ));
        extra.push((
            "emotiond_microphone_xruns_total",
            "counter",
            "Microphone overruns recovered.",
            m.xruns as f64,
        ));
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.hub.metrics.render(&extra),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    label: Option<String>,
    kind: Option<String>,
}

pub async fn feedback(State(st): State<AppState>, body: axum::body::Bytes) -> Response {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m).into_response();
    let b: FeedbackBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(format!(
                "body must be JSON such as {{\"label\": \"happy\"}} or {{\"kind\": \"wrong\"}}: {e}"
            ));
        }
    };
    if let Some(k) = b.kind.as_deref().filter(|k| *k != "wrong") {
        return bad(format!("unknown kind {k:?}: the only kind is \"wrong\""));
    }
    if let Some(l) = b
        .label
        .as_deref()
        .filter(|l| !emotiond_models::EMOTIONS.contains(l))
    {
        return bad(format!(
            "unknown label {l:?}: one of {:?}",
            emotiond_models::EMOTIONS
        ));
    }
    if b.label.is_none() && b.kind.is_none() {
        return bad("give a label (an emotion) or \"kind\": \"wrong\"".into());
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let req = FeedbackRequest {
        label: b.label.clone(),
        reply,
    };
    if st.feedback.try_send(req).is_err() {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: feedback requests are queued; retry",
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    }
    match tokio::time::timeout(Duration::from_secs(5), answer).await {
        Ok(Ok(Ok((topic, window_seq)))) => {
            st.hub.metrics.feedback_sent.fetch_add(1, Ordering::Relaxed);
            json(
                StatusCode::OK,
                serde_json::json!({"published": true, "topic": topic, "label": b.label, "window_seq": window_seq})
                    .to_string(),
            )
        }
        Ok(Ok(Err(m))) => ApiError::new(StatusCode::CONFLICT, m).into_response(),
        _ => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline did not answer",
        )
        .into_response(),
    }
}

/// `api.preview`: the latest camera frame as a JPEG (frames are kept only while this is
/// asked for).
pub async fn preview(State(st): State<AppState>) -> Response {
    let Some(p) = &st.hub.preview else {
        return ApiError::new(StatusCode::NOT_FOUND, "preview is off (api.preview)")
            .into_response();
    };
    let latest = {
        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
        p.wanted_until = Some(Instant::now() + Duration::from_secs(3));
        p.latest.as_ref().map(|(img, _)| img.clone())
    };
    let Some(img) = latest else {
        let mut r =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no frame yet; retry").into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    };
    let jpeg = tokio::task::spawn_blocking(move || {
        let mut out = std::io::Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75)
            .encode_image(&*img)
            .map(|_| out.into_inner())
    })
    .await;
    match jpeg {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        _ => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the preview",
        )
        .into_response(),
    }
}
