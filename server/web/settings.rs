//! The admin's settings page: the certificate fingerprint phones may
//! check, who may make their own account (the join page and `/new`), and
//! the Wi-Fi details shown to newcomers. Settings changed here live in the
//! database; the hub's name and domains come from the configuration.

use super::AppState;
use super::admin::{page_error, require, require_form, unavailable};
use super::join::{JOIN_ENABLED, WIFI_PASSPHRASE, WIFI_SSID};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// IEEE 802.11: an SSID is at most 32 octets.
pub const MAX_SSID: usize = 32;
/// WPA2 passphrases are 8 to 63 ASCII characters (IEEE 802.11i).
pub const WPA_PASSPHRASE: std::ops::RangeInclusive<usize> = 8..=63;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/settings", get(page).post(save))
}

#[derive(Template, WebTemplate)]
#[template(path = "settings.html")]
struct SettingsPage {
    name: String,
    csrf: String,
    fingerprint: String,
    domains: String,
    join: bool,
    ssid: String,
    passphrase: String,
    version: &'static str,
}

async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match require(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let get = |k: &'static str| {
        let store = state.store.clone();
        async move { store.settings_get(k).await }
    };
    let (join, ssid, passphrase) = match tokio::try_join!(
        super::join::enabled(&state),
        get(WIFI_SSID),
        get(WIFI_PASSPHRASE)
    ) {
        Ok(x) => x,
        Err(e) => return unavailable(e),
    };
    let mut r = SettingsPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        fingerprint: state.fingerprint.to_string(),
        domains: state
            .config
            .hub
            .domains
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        join,
        ssid: ssid.unwrap_or_default(),
        passphrase: passphrase.unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION"),
    }
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(serde::Deserialize)]
struct SettingsForm {
    #[serde(default)]
    csrf: String,
    /// Present (any value) when the box is ticked.
    #[serde(default)]
    join: Option<String>,
    #[serde(default)]
    ssid: String,
    #[serde(default)]
    passphrase: String,
}

async fn save(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SettingsForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    let ssid = f.ssid.trim();
    if ssid.len() > MAX_SSID {
        return page_error(
            StatusCode::BAD_REQUEST,
            &format!("A Wi-Fi name is at most {MAX_SSID} bytes."),
        );
    }
    let passphrase = f.passphrase.as_str();
    if !passphrase.is_empty()
        && (!WPA_PASSPHRASE.contains(&passphrase.len())
            || !passphrase.bytes().all(|b| (0x20..0x7f).contains(&b)))
    {
        return page_error(
            StatusCode::BAD_REQUEST,
            "A Wi-Fi password is 8 to 63 plain characters (letters, digits, punctuation), or empty for an open network.",
        );
    }
    if ssid.is_empty() && !passphrase.is_empty() {
        return page_error(
            StatusCode::BAD_REQUEST,
            "Give the Wi-Fi name too, or leave both empty.",
        );
    }
    let result = async {
        let join = if f.join.is_some() { "1" } else { "0" };
        state.store.settings_set(JOIN_ENABLED, join).await?;
        if ssid.is_empty() {
            state.store.settings_delete(WIFI_SSID).await?;
            state.store.settings_delete(WIFI_PASSPHRASE).await?;
        } else {
            state.store.settings_set(WIFI_SSID, ssid).await?;
            state
                .store
                .settings_set(WIFI_PASSPHRASE, passphrase)
                .await?;
        }
        state.store.event("settings.changed", None, None).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/admin/settings").into_response(),
        Err(e) => unavailable(e),
    }
}
