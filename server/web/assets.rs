//! `static/`, embedded in the binary.

use super::AppState;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// (name, content type, bytes) of every embedded file.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "cairn.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/cairn.css"),
    ),
    (
        "bundles.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/bundles.js"),
    ),
    (
        "radio.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/radio.js"),
    ),
    (
        "sync.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/sync.js"),
    ),
    (
        "wizard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/wizard.js"),
    ),
    (
        "print.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/print.js"),
    ),
];

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, bytes)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}
