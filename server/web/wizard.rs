//! The rest of the first-boot wizard, after the setup code and admin
//! password: the hub's name and mail domain, the Wi-Fi (name, password,
//! country — kept for the appliance image's access point), and the clock
//! ("use this browser's time": a Pi has no clock battery). A new name or
//! domain takes a restart, which the hub does by itself.

use super::flash::{Flash, again};
use super::guard::{AdminForm, AdminPage, WebResult};
use super::settings::{ask_for_wifi, check_wifi, restart_soon, save_wifi};
use super::{AppState, no_store};
use crate::config::Profile;
use crate::domain::Domain;
use crate::store::admin::AdminSession;
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
    wizard_view(&state, s, flash).await
}

/// The wizard's page; a mistake shows it again with what was typed.
async fn wizard_view(state: &AppState, s: AdminSession, flash: Flash) -> WebResult {
    let accounts = state.store.account_count().await?;
    let ssid = state.store.settings_get(WIFI_SSID).await?;
    let passphrase = state.store.settings_get(WIFI_PASSPHRASE).await?;
    let country = state.store.settings_get(WIFI_COUNTRY).await?;
    Ok(no_store(WizardPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        domain: state.config.hub.first_domain(),
        domain_fixed: accounts > 0,
        ssid: ssid.unwrap_or_default(),
        passphrase: passphrase.unwrap_or_default(),
        countries: super::settings::country_options(
            flash.value("country", &country.unwrap_or_default()),
        ),
        flash,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct WizardForm {
    name: String,
    domain: String,
    ssid: String,
    passphrase: String,
    country: String,
    /// The browser's clock, Unix milliseconds (filled in by the page's
    /// script; empty without JavaScript).
    browser_time: String,
}

/// Why `given` cannot be a mail domain, in words for a camp organiser.
pub(super) fn domain_advice(given: &str) -> String {
    let shown: String = given.chars().take(80).collect();
    let why = if given.is_empty() {
        return "Give the hub a mail domain: a name like camp.example, or the hub's address in brackets like [10.42.0.1].".into();
    } else if given.chars().any(char::is_whitespace) {
        "a domain has no spaces (use a hyphen: sunny-meadow.camp)"
    } else if !given.contains('.') && !given.starts_with('[') {
        "a domain has at least two parts with a dot between them, like camp.example"
    } else {
        "use letters, digits and hyphens, with dots between the parts"
    };
    format!(
        "\u{201c}{shown}\u{201d} cannot be a mail domain: {why}. Or use the hub's address in brackets, like [10.42.0.1]."
    )
}

async fn save(State(state): State<AppState>, AdminForm(s, f): AdminForm<WizardForm>) -> WebResult {
    let values = vec![
        ("name", f.name.clone()),
        ("domain", f.domain.clone()),
        ("ssid", f.ssid.clone()),
        ("passphrase", f.passphrase.clone()),
        ("country", f.country.clone()),
    ];
    // Check everything before changing anything.
    let name = f.name.trim();
    let domain = Domain::parse(f.domain.trim());
    let (ssid, passphrase) = (f.ssid.trim(), f.passphrase.as_str());
    let wifi = check_wifi(ssid, passphrase);
    let country = super::settings::chosen_country(&f.country);
    let mistake = if name.is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        Some((
            "name",
            format!("Give the hub a name of 1 to {MAX_NAME} characters."),
        ))
    } else if domain.is_err() {
        Some(("domain", domain_advice(f.domain.trim())))
    } else if let Err(why) = &wifi {
        Some(why.clone())
    } else if let Err(why) = &country {
        Some(("country", why.clone()))
    } else if !f.browser_time.trim().is_empty() && f.browser_time.trim().parse::<i64>().is_err() {
        Some((
            "",
            "The browser's time did not come through: reload the page and save again.".into(),
        ))
    } else {
        None
    };
    let browser_ms: Option<i64> = f.browser_time.trim().parse().ok();
    let mistake = match (mistake, domain) {
        (Some(m), _) => Err(m),
        (None, Ok(domain)) => {
            let current_domain = state.config.hub.domains.first().cloned();
            let domain_changes = current_domain.as_ref() != Some(&domain);
            if domain_changes && state.store.account_count().await? > 0 {
                Err((
                    "domain",
                    "Accounts exist at the current mail domain: it stays as it is (their addresses would stop working).".into(),
                ))
            } else {
                Ok((domain, domain_changes))
            }
        }
        (None, Err(_)) => Err(("domain", domain_advice(f.domain.trim()))),
    };
    let (domain, domain_changes) = match mistake {
        Ok(d) => d,
        Err((field, message)) => {
            let flash = Flash::problem(field, message, values);
            return again(
                axum::http::StatusCode::BAD_REQUEST,
                wizard_view(&state, s, flash).await,
            );
        }
    };
    let country = country.unwrap_or_default();
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
