//! The public join page: people at the camp make their own account — one
//! tap gives a `dclogin:` link and QR code that set up Delta Chat — and
//! the chatmail-style JSON endpoint (`POST /new`) that does the same for
//! programs. Both are limited per client address and can be switched off
//! by the admin (setting `join.enabled`).

use super::admin::{random_token, with_form_token};
use super::guard::{TokenForm, WebError, WebResult};
use super::no_store;
use super::{AppState, ClientAddr, Secure};
use crate::mail::dclogin;
use crate::mail::{Accounts, accounts::AccountError};
use crate::store::settings::{JOIN_ENABLED, WIFI_PASSPHRASE, WIFI_SSID};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};

/// Length of a generated local part (chatmail's `username_min_length`).
pub const LOCAL_PART_LEN: usize = 9;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/join", get(join_page).post(join_submit))
        .route("/new", post(new_account).get(new_get))
}

/// Whether people may make their own accounts (on unless switched off).
pub async fn enabled(state: &AppState) -> Result<bool, crate::store::Error> {
    Ok(state.store.settings_get(JOIN_ENABLED).await?.as_deref() != Some("0"))
}

/// The Wi-Fi network QR text (the de-facto `WIFI:` format Android and iOS
/// cameras read), `\`, `;`, `,`, `:` and `"` escaped with a backslash.
pub fn wifi_qr_text(ssid: &str, passphrase: &str) -> String {
    let esc = |s: &str| {
        let mut o = String::with_capacity(s.len());
        for c in s.chars() {
            if matches!(c, '\\' | ';' | ',' | ':' | '"') {
                o.push('\\');
            }
            o.push(c);
        }
        o
    };
    if passphrase.is_empty() {
        format!("WIFI:T:nopass;S:{};;", esc(ssid))
    } else {
        format!("WIFI:T:WPA;S:{};P:{};;", esc(ssid), esc(passphrase))
    }
}

pub(super) struct Wifi {
    pub ssid: String,
    pub passphrase: String,
    pub qr: String,
}

pub(super) async fn wifi(state: &AppState) -> Result<Option<Wifi>, crate::store::Error> {
    let Some(ssid) = state.store.settings_get(WIFI_SSID).await? else {
        return Ok(None);
    };
    let passphrase = state
        .store
        .settings_get(WIFI_PASSPHRASE)
        .await?
        .unwrap_or_default();
    let qr = crate::relay::node::qr_svg(&wifi_qr_text(&ssid, &passphrase)).unwrap_or_default();
    Ok(Some(Wifi {
        ssid,
        passphrase,
        qr,
    }))
}

#[derive(Template, WebTemplate)]
#[template(path = "join.html")]
struct JoinPage {
    name: String,
    form: String,
    wifi: Option<Wifi>,
    account: Option<NewAccount>,
    version: &'static str,
}

struct NewAccount {
    address: String,
    password: String,
    link: String,
    qr: String,
}

fn switched_off() -> WebError {
    WebError::public(
        StatusCode::NOT_FOUND,
        "This hub does not hand out accounts here: ask the person who runs it for one.",
    )
}

async fn join_page(
    State(state): State<AppState>,
    axum::Extension(secure): axum::Extension<Secure>,
) -> WebResult {
    if !enabled(&state).await? {
        return Err(switched_off());
    }
    let wifi = wifi(&state).await?;
    let token = random_token();
    let page = JoinPage {
        name: state.config.hub.name.clone(),
        form: token.clone(),
        wifi,
        account: None,
        version: env!("CARGO_PKG_VERSION"),
    };
    Ok(with_form_token(page, &token, secure))
}

/// Why an account could not be made, for a person or a program.
enum Refusal {
    Off,
    TooSoon(std::time::Duration),
    Failed(String),
}

/// Make an account with a generated name and password, within the
/// per-address limit.
async fn make_account(state: &AppState, ip: std::net::IpAddr) -> Result<NewAccount, Refusal> {
    match enabled(state).await {
        Ok(true) => {}
        Ok(false) => return Err(Refusal::Off),
        Err(e) => return Err(Refusal::Failed(e.to_string())),
    }
    if let Err(wait) = state.join_limit.take(&ip) {
        tracing::warn!(target: "cairn::auth", %ip, "join page account creation rate-limited");
        return Err(Refusal::TooSoon(wait));
    }
    let Some(domain) = state.config.hub.domains.first() else {
        return Err(Refusal::Failed("this hub hosts no mail domain".into()));
    };
    let Some(at) = super::accounts::endpoints(state) else {
        return Err(Refusal::Failed(
            "the hub's mail services are not listening".into(),
        ));
    };
    let accounts = Accounts::new(state.store.clone(), state.config.hub.domains.clone());
    // A clash among 31^9 names is unlikely; try a few times anyway.
    for _ in 0..5 {
        let local = crate::domain::password::random_groups(1, LOCAL_PART_LEN)
            .map_err(|e| Refusal::Failed(e.to_string()))?;
        match accounts.create(&format!("{local}@{domain}"), None).await {
            Ok(created) => {
                let address = created.address.to_string();
                let password = created
                    .generated_password
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default();
                let link = dclogin::uri(&address, &password, &at);
                let qr = crate::relay::node::qr_svg(&link).unwrap_or_default();
                tracing::info!(target: "cairn::auth", %ip, %address, "account created on the join page");
                return Ok(NewAccount {
                    address,
                    password,
                    link,
                    qr,
                });
            }
            Err(AccountError::Store(crate::store::Error::AccountExists(_))) => continue,
            Err(e) => return Err(Refusal::Failed(e.to_string())),
        }
    }
    Err(Refusal::Failed("no free account name was found".into()))
}

/// The join form has no fields of its own (its token is checked by
/// [`TokenForm`]).
#[derive(serde::Deserialize)]
struct JoinForm {}

async fn join_submit(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    axum::Extension(secure): axum::Extension<Secure>,
    TokenForm(JoinForm {}): TokenForm<JoinForm>,
) -> WebResult {
    let account = match make_account(&state, peer.ip()).await {
        Ok(a) => a,
        Err(Refusal::Off) => return Err(switched_off()),
        Err(Refusal::TooSoon(wait)) => {
            return Err(WebError::public(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Many accounts were just made from this phone: try again in {} s.",
                    wait.as_secs().max(1)
                ),
            ));
        }
        Err(Refusal::Failed(e)) => return Err(WebError::unavailable(e)),
    };
    let wifi = wifi(&state).await.ok().flatten();
    let token = random_token();
    let page = JoinPage {
        name: state.config.hub.name.clone(),
        form: token.clone(),
        wifi,
        account: Some(account),
        version: env!("CARGO_PKG_VERSION"),
    };
    // The password is shown once: never cached (with_form_token says no-store).
    Ok(with_form_token(page, &token, secure))
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    no_store((
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    ))
}

/// Chatmail's `/new` in its self-signed form: `{email, password,
/// dclogin_url}`; errors are `{reason}`.
async fn new_account(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
) -> Response {
    match make_account(&state, peer.ip()).await {
        Ok(a) => json(
            StatusCode::OK,
            serde_json::json!({"email": a.address, "password": a.password, "dclogin_url": a.link}),
        ),
        Err(Refusal::Off) => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"reason": "this hub does not hand out accounts here"}),
        ),
        Err(Refusal::TooSoon(wait)) => {
            let mut r = json(
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({"reason": format!("too many accounts from this address: try again in {} s", wait.as_secs().max(1))}),
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(Refusal::Failed(e)) => {
            tracing::warn!(error = %e, "account creation on /new failed");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"reason": "the hub could not make an account just now: try again later"}),
            )
        }
    }
}

async fn new_get() -> Response {
    let mut r = json(
        StatusCode::METHOD_NOT_ALLOWED,
        serde_json::json!({"reason": "POST to this address to get a new account; people use /join"}),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}
