//! Oversized request bodies: a 413 the client can read.
//!
//! `DefaultBodyLimit` stops reading at the limit, answers 413 and hyper then closes the
//! connection with the rest of the body unread. The kernel answers the client's next bytes with
//! a reset, and a client still sending (ureq, curl, a browser) sees "broken pipe" or
//! "connection reset" instead of the 413; the answer itself may be lost with the reset. So a
//! body whose declared length is over the route's limit is read and thrown away here (up to
//! [`DRAIN_MAX`] bytes, within [`DRAIN_TIME`]: what nginx calls a lingering close) before the
//! 413 goes out. Larger declared bodies are refused at once, unread: draining them would cost
//! more than the client's clear error is worth. Bodies without a declared length (chunked) are
//! still capped by `DefaultBodyLimit`.

use super::{ApiError, MAX_BODY, MAX_CREATE_BODY};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tokio_stream::StreamExt;

/// The most body bytes read and discarded to refuse a request cleanly.
pub const DRAIN_MAX: u64 = 4 * 1024 * 1024;
/// The longest time spent discarding them.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The body limit of a route (the rollout create carries a package).
fn limit(method: &Method, path: &str) -> usize {
    if method == Method::POST && path == "/api/v1/rollouts" {
        MAX_CREATE_BODY
    } else {
        MAX_BODY
    }
}

pub async fn refuse_oversized(req: Request, next: Next) -> Response {
    let max = limit(req.method(), req.uri().path());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let Some(len) = declared.filter(|&n| n > max as u64) else {
        return next.run(req).await;
    };
    let refusal = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body of {len} bytes is over this route's limit of {max} bytes"),
    );
    if len > DRAIN_MAX {
        let mut r = refusal.into_response();
        r.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return r;
    }
    let mut body = req.into_body().into_data_stream();
    let drained = tokio::time::timeout(DRAIN_TIME, async {
        let mut n = 0u64;
        while let Some(Ok(chunk)) = body.next().await {
            n += chunk.len() as u64;
            if n > DRAIN_MAX {
                break;
            }
        }
    })
    .await;
    if drained.is_err() {
        log::debug!("api: an oversized body was not sent within {DRAIN_TIME:?}");
    }
    refusal.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rollout_create_route_alone_takes_a_package() {
        assert_eq!(limit(&Method::POST, "/api/v1/rollouts"), MAX_CREATE_BODY);
        assert_eq!(limit(&Method::GET, "/api/v1/rollouts"), MAX_BODY);
        assert_eq!(limit(&Method::POST, "/api/v1/rollouts/1/pause"), MAX_BODY);
        assert_eq!(limit(&Method::PUT, "/api/v1/devices/x/groups"), MAX_BODY);
    }
}
