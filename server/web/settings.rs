//! The admin's settings page: the certificate fingerprint phones may
//! check, who may make their own account (the join page and `/new`), and
//! the Wi-Fi details shown to newcomers. Settings changed here live in the
//! database; the hub's name and domains come from the configuration.

use super::confirm::{Ask, ConfirmForm, ask, confirmed};
use super::flash::{Flash, again, on};
use super::guard::{AdminForm, AdminPage, WebResult};
use super::{AppState, no_store};
use crate::store::admin::AdminSession;
use crate::store::settings::{JOIN_ENABLED, WIFI_COUNTRY, WIFI_PASSPHRASE, WIFI_SSID};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Longest time mail may be kept on the hub, in days (a year: phones
/// fetch and delete it long before).
pub const MAX_DELETE_AFTER_DAYS: u32 = 365;

/// Check a Wi-Fi name and password as the wizard and this page take them:
/// the message says what to change.
/// The error names the field ("ssid" or "passphrase").
pub(super) fn check_wifi(ssid: &str, passphrase: &str) -> Result<(), (&'static str, String)> {
    if !ssid.is_empty() && !crate::domain::wifi::ssid_ok(ssid) {
        return Err((
            "ssid",
            format!(
                "A Wi-Fi name is at most {} bytes, without line breaks or other control characters.",
                crate::domain::wifi::MAX_SSID
            ),
        ));
    }
    if !passphrase.is_empty() && !crate::domain::wifi::passphrase_ok(passphrase) {
        return Err(("passphrase", "A Wi-Fi password is 8 to 63 plain characters (letters, digits, punctuation), or empty for an open network.".into()));
    }
    if ssid.is_empty() && !passphrase.is_empty() {
        return Err((
            "ssid",
            "Give the Wi-Fi name too, or leave both empty.".into(),
        ));
    }
    Ok(())
}

/// On the appliance, ask for the access point the admin just saved.
pub(super) async fn ask_for_wifi(state: &AppState) {
    (state.wifi_saved)().await
}

/// One entry of the pages' country list.
pub(super) struct CountryOption {
    pub code: &'static str,
    pub name: &'static str,
    pub selected: bool,
}

/// Every country, by name, `current` (a code) selected.
pub(super) fn country_options(current: &str) -> Vec<CountryOption> {
    crate::domain::wifi::countries()
        .into_iter()
        .map(|(code, name)| CountryOption {
            code,
            name,
            selected: code.eq_ignore_ascii_case(current),
        })
        .collect()
}

/// The country chosen in a form: empty (none), or a country's code.
pub(super) fn chosen_country(given: &str) -> Result<String, String> {
    let country = given.trim().to_ascii_uppercase();
    if country.is_empty() || crate::domain::wifi::country_ok(&country) {
        Ok(country)
    } else {
        Err("Choose the hub's country from the list: it decides which Wi-Fi channels and power are allowed.".into())
    }
}

/// Store the Wi-Fi country (none when empty).
pub(super) async fn save_country(store: &crate::store::Store, country: &str) -> WebResult<()> {
    if country.is_empty() {
        store.settings_delete(WIFI_COUNTRY).await?;
    } else {
        store.settings_set(WIFI_COUNTRY, country).await?;
    }
    Ok(())
}

/// Store the Wi-Fi shown to newcomers (none when `ssid` is empty).
pub(super) async fn save_wifi(
    store: &crate::store::Store,
    ssid: &str,
    passphrase: &str,
) -> Result<(), crate::store::Error> {
    if ssid.is_empty() {
        store.settings_delete(WIFI_SSID).await?;
        store.settings_delete(WIFI_PASSPHRASE).await?;
    } else {
        store.settings_set(WIFI_SSID, ssid).await?;
        store.settings_set(WIFI_PASSPHRASE, passphrase).await?;
    }
    Ok(())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/settings", get(page).post(save))
        .route(
            "/admin/settings/certificate",
            axum::routing::post(new_certificate),
        )
}

#[derive(Template, WebTemplate)]
#[template(path = "settings.html")]
struct SettingsPage {
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    fingerprint: String,
    domains: String,
    ssid: String,
    passphrase: String,
    countries: Vec<CountryOption>,
    /// The hub runs its own access point (the appliance).
    appliance: bool,
    /// Tick boxes as forms give them back: "on" or "".
    join_on: &'static str,
    encryption_on: &'static str,
    delete_after_days: String,
    max_message_size: String,
    mailbox_quota: String,
    version: &'static str,
}

async fn page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    settings_view(&state, s, flash).await
}

/// The settings page; a mistake shows it again with what was typed.
async fn settings_view(state: &AppState, s: AdminSession, flash: Flash) -> WebResult {
    let get = |k: &'static str| {
        let store = state.store.clone();
        async move { store.settings_get(k).await }
    };
    let (join, ssid, passphrase, country) = tokio::try_join!(
        super::join::enabled(state),
        get(WIFI_SSID),
        get(WIFI_PASSPHRASE),
        get(WIFI_COUNTRY)
    )?;
    Ok(no_store(SettingsPage {
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
        join_on: on(join),
        ssid: ssid.unwrap_or_default(),
        passphrase: passphrase.unwrap_or_default(),
        countries: country_options(flash.value("country", &country.unwrap_or_default())),
        appliance: state.config.profile == crate::config::Profile::Appliance,
        encryption_on: on(state.config.mail.require_encryption),
        delete_after_days: state.config.mail.delete_after_days.to_string(),
        max_message_size: state.config.limits.max_message_size.to_string(),
        mailbox_quota: state.config.limits.mailbox_quota.to_string(),
        flash,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct SettingsForm {
    /// Present (any value) when the box is ticked.
    join: Option<String>,
    ssid: String,
    passphrase: String,
    country: String,
    /// Present when the box is ticked.
    encryption: Option<String>,
    delete_after_days: String,
    max_message_size: String,
    mailbox_quota: String,
}

async fn save(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<SettingsForm>,
) -> WebResult {
    let values = vec![
        ("join", on(f.join.is_some()).to_string()),
        ("ssid", f.ssid.clone()),
        ("passphrase", f.passphrase.clone()),
        ("country", f.country.clone()),
        ("encryption", on(f.encryption.is_some()).to_string()),
        ("delete_after_days", f.delete_after_days.clone()),
        ("max_message_size", f.max_message_size.clone()),
        ("mailbox_quota", f.mailbox_quota.clone()),
    ];
    match check(&state, &f) {
        Ok(checked) => apply(&state, s, &f, checked).await,
        Err((field, message)) => again(
            axum::http::StatusCode::BAD_REQUEST,
            settings_view(&state, s, Flash::problem(field, message, values)).await,
        ),
    }
}

/// What a settings form changes, once checked.
struct Checked {
    country: String,
    fields: [(&'static str, toml::Value); 4],
    next: crate::config::Config,
}

/// Check the whole form before anything changes; a mistake names its
/// field.
fn check(state: &AppState, f: &SettingsForm) -> Result<Checked, (&'static str, String)> {
    check_wifi(f.ssid.trim(), &f.passphrase)?;
    let country = chosen_country(&f.country).map_err(|why| ("country", why))?;
    let days = match f.delete_after_days.trim() {
        "" => state.config.mail.delete_after_days,
        d => match d.parse::<u32>() {
            Ok(d) if (1..=MAX_DELETE_AFTER_DAYS).contains(&d) => d,
            _ => {
                return Err((
                    "delete_after_days",
                    format!("Keep mail for 1 to {MAX_DELETE_AFTER_DAYS} days."),
                ));
            }
        },
    };
    // Fields of the configuration, checked exactly as the file's would be:
    // (key, TOML value). Empty size fields keep what runs now.
    let size = |given: &str, now: crate::config::ByteSize| {
        let given = given.trim();
        toml::Value::String(if given.is_empty() {
            now.to_string()
        } else {
            given.to_string()
        })
    };
    let fields = [
        (
            "mail.require_encryption",
            toml::Value::Boolean(f.encryption.is_some()),
        ),
        (
            "mail.delete_after_days",
            toml::Value::Integer(i64::from(days)),
        ),
        (
            "limits.max_message_size",
            size(&f.max_message_size, state.config.limits.max_message_size),
        ),
        (
            "limits.mailbox_quota",
            size(&f.mailbox_quota, state.config.limits.mailbox_quota),
        ),
    ];
    let mut next = (*state.config).clone();
    for (key, value) in &fields {
        if let Err(e) = next.set_field(key, value) {
            let field = match *key {
                "limits.max_message_size" => "max_message_size",
                "limits.mailbox_quota" => "mailbox_quota",
                _ => "",
            };
            return Err((
                field,
                format!("{e}. Sizes are written like \"30 MiB\" or \"2 GiB\"."),
            ));
        }
    }
    Ok(Checked {
        country,
        fields,
        next,
    })
}

async fn apply(state: &AppState, s: AdminSession, f: &SettingsForm, c: Checked) -> WebResult {
    let Checked {
        country,
        fields,
        next,
    } = c;
    let (ssid, passphrase) = (f.ssid.trim(), f.passphrase.as_str());
    let join_on = f.join.is_some();
    let join_was = super::join::enabled(state).await?;
    // What is read at start takes a restart: the mail rules, the limits,
    // and whether a first login may make an account.
    let restart =
        next.mail != state.config.mail || next.limits != state.config.limits || join_on != join_was;
    let join = if f.join.is_some() { "1" } else { "0" };
    state.store.settings_set(JOIN_ENABLED, join).await?;
    save_wifi(&state.store, ssid, passphrase).await?;
    save_country(&state.store, &country).await?;
    save_config_fields(&state.store, &fields).await?;
    ask_for_wifi(state).await;
    if restart {
        restart_soon(state);
        return Ok(restarting(state, "The hub restarts with the new settings."));
    }
    state.notices.put(&s, "Saved.");
    Ok(Redirect::to("/admin/settings").into_response())
}

/// Store configuration fields the admin changed (applied over the file's
/// at the next start) and say that settings changed.
pub(super) async fn save_config_fields(
    store: &crate::store::Store,
    fields: &[(&str, toml::Value)],
) -> Result<(), crate::store::Error> {
    for (key, value) in fields {
        store
            .settings_set(&crate::store::settings::config_key(key), &value.to_string())
            .await?;
    }
    store.event("settings.changed", None, None).await
}

/// Ask the hub's runner for a restart once this answer has gone out.
pub(super) fn restart_soon(state: &AppState) {
    let reload = state.reload.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        reload.cancel();
    });
}

#[derive(Template, WebTemplate)]
#[template(path = "restarting.html")]
struct RestartingPage {
    name: String,
    what: String,
    version: &'static str,
}

pub(super) fn restarting(state: &AppState, what: &str) -> Response {
    no_store(RestartingPage {
        name: state.config.hub.name.clone(),
        what: what.to_string(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// A new TLS key and certificate (after a leak, say): the files go, and
/// the restart makes new ones. Phones accept any certificate (`ic=3`), so
/// they carry on; anyone who checked the fingerprint must check again.
async fn new_certificate(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<ConfirmForm>,
) -> WebResult {
    if !confirmed(&f.confirm) {
        return Ok(ask(
            &state,
            s,
            Ask {
                title: "Make a new certificate?".into(),
                consequence: "The hub makes a new key and certificate and restarts. Phones carry on; anyone who compared the fingerprint must compare the new one, and browsers warn once more.".into(),
                action: "/admin/settings/certificate".into(),
                fields: Vec::new(),
                button: "Make a new certificate",
                back: "/admin/settings",
            },
        ));
    }
    let dir = crate::datadir::Layout::new(state.config.data_dir.clone()).tls_dir();
    for name in ["cert.pem", "key.pem"] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let _ = state.store.event("certificate.new", None, None).await;
    restart_soon(&state);
    Ok(restarting(
        &state,
        "The hub restarts with a new certificate.",
    ))
}
