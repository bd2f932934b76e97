//! The built-in page at `/`: plain HTML and JavaScript in the binary (no CDN), reading
//! `/v1/live` and `/v1/health`; with `api.preview` the camera image with the face boxes.

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub const PAGE: &str = include_str!("page.html");

pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}
