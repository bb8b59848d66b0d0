//! Web pages (axum + askama): for now the health check and the status page.
//! Each module exposes `router()`; [`router`] merges them.

mod assets;
mod status;
pub mod tls;

use crate::config::Config;
use crate::store::Store;
use axum::Router;
use axum::http::{HeaderValue, header};
use std::sync::Arc;
use std::time::Instant;
use tower_http::set_header::SetResponseHeaderLayer;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub started: Instant,
    pub services: Arc<Vec<Service>>,
    pub fingerprint: Arc<str>,
}

/// A running listener, for the status page.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: &'static str,
    pub address: String,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(status::router())
        .merge(assets::router())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
