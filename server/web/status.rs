//! `/healthz` for machines and `/` for people: is the hub alive, and what is it.

use super::{AppState, Service};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/", get(status))
}

/// The pages someone may type by hand, as the hub spells them.
const TYPED: &[&str] = &["/", "/join", "/admin", "/setup"];

/// Any other address: one of [`TYPED`] written with capitals or a slash
/// at the end is sent to it (308); anything else is a page that leads to
/// joining, not an empty 404.
pub(super) async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let tidy = path.trim_end_matches('/').to_ascii_lowercase();
    let tidy = if tidy.is_empty() {
        "/".to_string()
    } else {
        tidy
    };
    let typed = TYPED.iter().find(|t| **t == tidy);
    if let Some(to) = typed
        && (method == axum::http::Method::GET || method == axum::http::Method::HEAD)
    {
        return axum::response::Redirect::permanent(to).into_response();
    }
    super::guard::WebError::public(
        StatusCode::NOT_FOUND,
        "There is no page at this address on the hub.",
    )
    .into_response()
}

/// 200 `ok` when the database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => ([(header::CACHE_CONTROL, "no-store")], "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "status.html")]
struct StatusPage {
    name: String,
    version: &'static str,
    domains: Vec<String>,
    accounts: i64,
    uptime: String,
    services: Vec<Service>,
    fingerprint: String,
}

async fn status(State(state): State<AppState>) -> Response {
    let accounts = match state.store.account_count().await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "status page: database unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "The hub's database is not answering; see the hub's log.\n",
            )
                .into_response();
        }
    };
    StatusPage {
        name: state.config.hub.name.clone(),
        version: env!("CARGO_PKG_VERSION"),
        domains: state
            .config
            .hub
            .domains
            .iter()
            .map(|d| d.to_unicode())
            .collect(),
        accounts,
        uptime: human_duration(state.started.elapsed().as_secs()),
        services: state.services.as_ref().clone(),
        fingerprint: state.fingerprint.to_string(),
    }
    .into_response()
}

fn human_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::human_duration(5), "5 s");
        assert_eq!(super::human_duration(125), "2 min");
        assert_eq!(super::human_duration(3 * 3600 + 60), "3 h 1 min");
        assert_eq!(super::human_duration(2 * 86_400 + 7200), "2 d 2 h");
    }
}
