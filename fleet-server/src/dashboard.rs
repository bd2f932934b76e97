//! The dashboard's files (`fleet-server/dashboard/`), embedded in the binary: no CDN, since
//! kiosks and labs are often offline. Only the listed files are served.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The dashboard's files, embedded in the binary (no CDN: kiosks and labs are offline).
pub fn asset(path: &str) -> Response {
    let (body, ty): (&'static [u8], &str) = match path {
        "index.html" => (
            include_bytes!("../dashboard/index.html"),
            "text/html; charset=utf-8",
        ),
        "app.js" => (
            include_bytes!("../dashboard/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => (
            include_bytes!("../dashboard/style.css"),
            "text/css; charset=utf-8",
        ),
        "vendor/uplot/uPlot.iife.min.js" => (
            include_bytes!("../dashboard/vendor/uplot/uPlot.iife.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "vendor/uplot/uPlot.min.css" => (
            include_bytes!("../dashboard/vendor/uplot/uPlot.min.css"),
            "text/css; charset=utf-8",
        ),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": "no such file"})),
            )
                .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, ty),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        body,
    )
        .into_response()
}
