//! The rest of the first-boot wizard, after the setup code and admin
//! password: the hub's name and mail domain, the Wi-Fi (name, password,
//! country — kept for the appliance image's access point), and the clock
//! ("use this browser's time": a Pi has no clock battery). A new name or
//! domain takes a restart, which the hub does by itself.

use super::guard::{AdminForm, AdminPage, WebError, WebResult};
use super::settings::{ask_for_wifi, check_wifi, restart_soon, save_wifi};
use super::{AppState, no_store};
use crate::config::Profile;
use crate::domain::Domain;
use crate::store::settings::{
    HUB_DOMAINS, HUB_NAME, SETUP_DONE, WIFI_COUNTRY, WIFI_PASSPHRASE, WIFI_SSID,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

/// Longest hub name (it is shown on every page and card).
pub const MAX_NAME: usize = 64;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/setup", get(page).post(save))
}

/// Whether the wizard still has to be completed.
pub async fn pending(state: &AppState) -> bool {
    !matches!(state.store.settings_get(SETUP_DONE).await, Ok(Some(_)))
}

#[derive(Template, WebTemplate)]
#[template(path = "wizard.html")]
struct WizardPage {
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    domain: String,
    /// Accounts exist: the domain stays as it is.
    domain_fixed: bool,
    ssid: String,
    passphrase: String,
    countries: Vec<super::settings::CountryOption>,
    version: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "wizard_done.html")]
struct DonePage {
    name: String,
    notes: Vec<String>,
    restart: bool,
    version: &'static str,
}

async fn page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    let accounts = state.store.account_count().await?;
    let ssid = state.store.settings_get(WIFI_SSID).await?;
    let passphrase = state.store.settings_get(WIFI_PASSPHRASE).await?;
    let country = state.store.settings_get(WIFI_COUNTRY).await?;
    Ok(no_store(WizardPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        domain: state.config.hub.first_domain(),
        domain_fixed: accounts > 0,
        ssid: ssid.unwrap_or_default(),
        passphrase: passphrase.unwrap_or_default(),
        countries: super::settings::country_options(&country.unwrap_or_default()),
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Deserialize)]
struct WizardForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    ssid: String,
    #[serde(default)]
    passphrase: String,
    #[serde(default)]
    country: String,
    /// The browser's clock, Unix milliseconds (filled in by the page's
    /// script; empty without JavaScript).
    #[serde(default)]
    browser_time: String,
}

fn bad(message: &str) -> WebResult {
    Err(WebError::bad_request(message))
}

async fn save(State(state): State<AppState>, AdminForm(_, f): AdminForm<WizardForm>) -> WebResult {
    // Check everything before changing anything.
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return bad(&format!(
            "Give the hub a name of 1 to {MAX_NAME} characters."
        ));
    }
    let domain = match Domain::parse(f.domain.trim()) {
        Ok(d) => d,
        Err(e) => {
            return bad(&format!(
                "`{}` cannot be a mail domain: {e}. Use a name like camp.example, or the hub's address in brackets like [10.42.0.1].",
                f.domain.trim().chars().take(80).collect::<String>()
            ));
        }
    };
    let (ssid, passphrase) = (f.ssid.trim(), f.passphrase.as_str());
    check_wifi(ssid, passphrase).map_err(WebError::bad_request)?;
    let country = match super::settings::chosen_country(&f.country) {
        Ok(c) => c,
        Err(why) => return bad(&why),
    };
    let browser_ms: Option<i64> = match f.browser_time.trim() {
        "" => None,
        t => match t.parse() {
            Ok(ms) => Some(ms),
            Err(_) => return bad("The browser's time did not come through: reload the page."),
        },
    };
    let current_domain = state.config.hub.domains.first().cloned();
    let domain_changes = current_domain.as_ref() != Some(&domain);
    if domain_changes && state.store.account_count().await? > 0 {
        return bad(
            "Accounts exist at the current mail domain: it stays as it is (their addresses would stop working).",
        );
    }
    let name_changes = name != state.config.hub.name;

    let mut notes = Vec::new();
    let store = &state.store;
    if name_changes {
        store.settings_set(HUB_NAME, name).await?;
    }
    if domain_changes {
        let list = serde_json::to_string(&[domain.to_string()]).expect("strings serialise");
        store.settings_set(HUB_DOMAINS, &list).await?;
    }
    save_wifi(store, ssid, passphrase).await?;
    super::settings::save_country(store, &country).await?;
    store.settings_set(SETUP_DONE, "1").await?;
    store.event("setup.done", Some(name), None).await?;
    ask_for_wifi(&state).await;
    if let Some(ms) = browser_ms {
        notes.push(clock_note(&state, ms).await);
    }
    let restart = name_changes || domain_changes;
    if !restart && notes.is_empty() {
        return Ok(Redirect::to("/admin").into_response());
    }
    if restart {
        notes.push(format!(
            "The hub restarts now as {name} with mail domain {domain}."
        ));
        restart_soon(&state);
    }
    Ok(no_store(DonePage {
        name: name.to_string(),
        notes,
        restart,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

/// Compare the clocks and, on the appliance, take the browser's time.
async fn clock_note(state: &AppState, ms: i64) -> String {
    let off = crate::clock::offset_secs(ms);
    if off.unsigned_abs() < crate::clock::TOLERANCE.as_secs() {
        return "The hub's clock agrees with this browser's.".into();
    }
    let by = crate::domain::units::human_age(off.abs());
    let ahead = if off > 0 { "behind" } else { "ahead of" };
    if state.config.profile != Profile::Appliance {
        return format!(
            "The hub's clock is {by} {ahead} this browser's; it was left alone (the hub runs on a laptop profile, whose clock is the computer's business)."
        );
    }
    match tokio::task::spawn_blocking(move || crate::clock::set(ms)).await {
        Ok(Ok(())) => {
            let _ = state
                .store
                .event("clock.set", None, Some(&format!("moved by {off} s")))
                .await;
            format!(
                "The hub's clock was {by} {ahead} this browser's: it now uses the browser's time."
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot set the system clock");
            format!(
                "The hub's clock is {by} {ahead} this browser's, and the hub may not set it ({e}): mail will show odd times until it is set."
            )
        }
        Err(e) => format!("The clock could not be checked: {e}"),
    }
}
