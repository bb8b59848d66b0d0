//! Web pages (axum + askama): the health check, the status page, the
//! phones' connectivity probes, the public join page and `/new`, and the
//! admin pages (setup, login, dashboard, accounts, relay, settings).
//! Each module exposes `router()`; [`router`] merges them.

mod accounts;
pub mod admin;
mod assets;
mod confirm;
mod dashboard;
pub mod flash;
mod gateway;
mod guard;
pub mod https;
pub mod join;
mod probes;
mod radio;
mod relay;
mod settings;
mod status;
mod sync;
pub mod tls;
pub mod wizard;

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
    /// Wrong admin passwords and setup codes per client IP.
    pub login_failures: Arc<crate::mail::ratelimit::RateLimiter<std::net::IpAddr>>,
    /// Accounts made on the join page or `/new` per client IP.
    pub join_limit: Arc<crate::mail::ratelimit::RateLimiter<std::net::IpAddr>>,
    pub relay: crate::relay::Relay,
    pub syncer: crate::relay::uplink::Syncer,
    /// The hub's radio, if it has one.
    pub radio: Option<crate::relay::radio::service::Radio>,
    /// Cancel to have the hub restarted with changed settings.
    pub reload: tokio_util::sync::CancellationToken,
    /// Cancelled when the hub stops: endless responses (event streams)
    /// end then, so stopping does not wait for open pages.
    pub stop: tokio_util::sync::CancellationToken,
    /// Run after the admin saved the Wi-Fi (on the appliance: hand it to
    /// the access point). Given by the hub's start, so the pages need not
    /// know the appliance.
    pub wifi_saved: Hook,
    /// "Done" lines waiting for the next page of their admin session.
    pub notices: Arc<flash::Notices>,
}

/// Something the pages ask the hub to do, which they need not know how.
pub type Hook = Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// For an event stream: what `change` yields once `gap` has passed, or
/// `None` as soon as the hub stops (`stop`), so open pages never hold a
/// restart.
pub(crate) async fn after_gap<F: std::future::Future>(
    stop: &tokio_util::sync::CancellationToken,
    gap: std::time::Duration,
    change: F,
) -> Option<F::Output> {
    tokio::select! {
        _ = stop.cancelled() => None,
        r = async {
            tokio::time::sleep(gap).await;
            change.await
        } => Some(r),
    }
}

/// The client's address, for per-IP limits; filled in by both listeners.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Whether the request came over TLS (cookies get `Secure`); each listener
/// adds it as an extension.
#[derive(Debug, Clone, Copy)]
pub struct Secure(pub bool);

/// A page never kept in caches (passwords, tokens, state that changes).
pub(crate) fn no_store(page: impl axum::response::IntoResponse) -> axum::response::Response {
    let mut r = page.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A running listener, for the status page.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: &'static str,
    pub address: String,
}

/// What a page may load and run: only the hub's own files (scripts from
/// `static/`, no inline script or style), forms posted only to the hub,
/// never framed. A markup injection that slipped past escaping could then
/// run nothing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router(state: AppState) -> Router {
    // An uploaded bundle may be as large as a bundle may expand to.
    let max_upload = usize::try_from(state.config.limits.max_bundle_size.0).unwrap_or(usize::MAX);
    Router::new()
        .merge(status::router())
        .merge(admin::router())
        .merge(dashboard::router())
        .merge(accounts::router())
        .merge(relay::router(max_upload))
        .merge(assets::router())
        .merge(probes::router())
        .merge(join::router())
        .merge(settings::router())
        .merge(wizard::router())
        .merge(sync::router())
        .merge(gateway::router())
        .merge(radio::router())
        .fallback(status::not_found)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
