//! The admin side of the web pages: first-time setup with the one-time
//! setup code, login and logout, sessions with CSRF tokens, the dashboard.
//!
//! Sessions: a random 256-bit token in an HttpOnly, SameSite=Strict cookie
//! (Secure under TLS); the store keeps only its SHA-256 and the session's
//! CSRF token, which every form of the session carries. Forms shown before
//! login carry a double-submit token (cookie + hidden field). Wrong
//! passwords and setup codes are limited per client IP.

use super::flash::{Flash, again};
use super::guard::{AdminForm, AdminPage, TokenForm, WebError, WebResult};
use super::no_store;
use super::{AppState, Secure};
use crate::domain::Password;
use crate::domain::password::PasswordHash;
use crate::store::admin::AdminSession;
use crate::store::settings::{ADMIN_PASSWORD, SETUP_CODE};
use askama::Template;
use askama_web::WebTemplate;
use aws_lc_rs::digest;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::net::IpAddr;

pub const SESSION_COOKIE: &str = "cairn_admin";
pub const FORM_COOKIE: &str = "cairn_form";
/// A session ends this long after login.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// Failed logins (and setup codes) per client IP: a burst, then per minute.
pub const LOGIN_FAILURE_BURST: u32 = 10;
pub const LOGIN_FAILURES_PER_MINUTE: u32 = 6;
/// Longest value any admin form field may have.
const MAX_FIELD: usize = 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/setup", get(setup_page).post(setup_submit))
        .route("/admin/login", get(login_page).post(login_submit))
        .route("/admin/logout", axum::routing::post(logout))
        .route("/admin/password", get(password_page).post(password_submit))
}

pub(super) fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("system random source");
    URL_SAFE_NO_PAD.encode(b)
}

fn sha256_hex(s: &str) -> String {
    crate::domain::hex(digest::digest(&digest::SHA256, s.as_bytes()).as_ref())
}

fn same(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(name: &str, value: &str, max_age: i64, secure: Secure) -> HeaderValue {
    let s = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure.0 { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).expect("cookie is ASCII")
}

/// A Unix time as people read it on the admin pages (RFC 3339, UTC).
pub(super) fn utc(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub(super) fn page_error(status: StatusCode, message: &str) -> Response {
    error_page(
        status,
        "Something needs your attention",
        message,
        &[("/admin", "Back to the admin page")],
    )
}

/// A page that says what went wrong and where to go from here.
pub(super) fn error_page(
    status: StatusCode,
    title: &str,
    message: &str,
    links: &[(&'static str, &'static str)],
) -> Response {
    (
        status,
        ErrorPage {
            title: title.to_string(),
            message: message.to_string(),
            links: links.to_vec(),
            version: env!("CARGO_PKG_VERSION"),
        },
    )
        .into_response()
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "admin page: database unavailable");
    page_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The hub's database is not answering; see the hub's log.",
    )
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
    links: Vec<(&'static str, &'static str)>,
    version: &'static str,
}

/// The valid (unexpired) session of this request, if any.
async fn session(state: &AppState, headers: &HeaderMap) -> WebResult<Option<AdminSession>> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .store
        .admin_session(&sha256_hex(&token))
        .await?
        .filter(|s| s.expires_at > crate::store::now()))
}

/// The session of a logged-in admin, or the redirect to the login page.
/// Handlers take it as the [`super::guard::Admin`] extractor.
pub(super) async fn require(state: &AppState, headers: &HeaderMap) -> WebResult<AdminSession> {
    match session(state, headers).await? {
        Some(s) => Ok(s),
        None if cookie(headers, SESSION_COOKIE).is_some_and(|c| !c.is_empty()) => {
            Err(WebError::Redirect("/admin/login?expired=1"))
        }
        None => Err(WebError::Redirect("/admin/login")),
    }
}

/// A session's CSRF token is `sent` (never an empty one).
pub(super) fn same_token(expected: &str, sent: &str) -> bool {
    !sent.is_empty() && same(expected, sent)
}

async fn admin_password(state: &AppState) -> WebResult<Option<String>> {
    Ok(state.store.settings_get(ADMIN_PASSWORD).await?)
}

/// Start a session: store it, set its cookie, go to `to`.
async fn start_session(state: &AppState, ip: IpAddr, secure: Secure, to: &str) -> WebResult {
    let token = random_token();
    let expires = crate::store::now() + SESSION_SECONDS;
    state
        .store
        .admin_session_create(
            &sha256_hex(&token),
            &random_token(),
            expires,
            &ip.to_string(),
        )
        .await?;
    let _ = state.store.admin_sessions_purge(crate::store::now()).await;
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, SESSION_SECONDS, secure),
    );
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(FORM_COOKIE, "", 0, secure));
    Ok(r)
}

/// A form shown before login, with its double-submit token.
pub(super) fn with_form_token(page: impl IntoResponse, token: &str, secure: Secure) -> Response {
    let mut r = page.into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(FORM_COOKIE, token, 3600, secure),
    );
    no_store(r)
}

pub(super) fn form_token_ok(headers: &HeaderMap, sent: &str) -> bool {
    !sent.is_empty() && cookie(headers, FORM_COOKIE).is_some_and(|c| same(&c, sent))
}

fn too_long(fields: &[&str]) -> bool {
    fields.iter().any(|f| f.len() > MAX_FIELD)
}

/// Charge one attempt to the client's address before checking it (and
/// before any password hash runs), so parallel attempts cannot all pass a
/// limit that only counts finished failures. A right answer is refunded.
fn charge_attempt(state: &AppState, ip: IpAddr) -> WebResult<()> {
    state.login_failures.take(&ip).map_err(|wait| {
        WebError::page(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many wrong attempts from your address: try again in {} s.",
                wait.as_secs().max(1)
            ),
        )
    })
}

// ------------------------------------------------------------------ setup

#[derive(Template, WebTemplate)]
#[template(path = "setup.html")]
struct SetupPage {
    name: String,
    form: String,
    /// A mistake and what was typed, given back.
    flash: Flash,
    version: &'static str,
}

/// The setup code as people type it: case, spaces and dashes do not
/// matter (it is read off a sheet or a screen).
fn code_letters(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Why a new admin password cannot be taken, or `None`.
/// A new admin password typed twice, or why it cannot be taken.
fn new_admin_password(password: &str, again: &str) -> Result<Password, &'static str> {
    if password.chars().count() < crate::domain::password::MIN_PASSWORD_LEN {
        Err("Choose a password of at least 8 characters.")
    } else if password != again {
        Err("The two passwords differ: type the same password twice.")
    } else {
        Password::chosen(password)
            .map_err(|_| "A password has no line breaks and is at most 256 bytes.")
    }
}

/// Hash and store the admin password (the hash off the async workers).
async fn store_admin_password(state: &AppState, password: Password) -> WebResult<()> {
    let hash = match tokio::task::spawn_blocking(move || password.hash()).await {
        Ok(Ok(h)) => h,
        _ => return Err(WebError::unavailable("password hashing failed")),
    };
    Ok(state
        .store
        .settings_set(ADMIN_PASSWORD, hash.as_str())
        .await?)
}

/// Whether `given` is the admin password (`None`: none is set yet).
async fn is_admin_password(state: &AppState, given: &str) -> WebResult<Option<bool>> {
    let Some(stored) = admin_password(state).await? else {
        return Ok(None);
    };
    Ok(Some(match Password::presented(given) {
        Ok(p) => crate::mail::accounts::verify_off_thread(PasswordHash::from_stored(stored), p)
            .await
            .unwrap_or(false),
        Err(_) => false,
    }))
}

#[derive(serde::Deserialize)]
struct SetupForm {
    code: String,
    password: String,
    confirm: String,
}

async fn setup_page(
    State(state): State<AppState>,
    axum::Extension(secure): axum::Extension<Secure>,
) -> WebResult {
    if admin_password(&state).await?.is_some() {
        return Ok(Redirect::to("/admin/login").into_response());
    }
    let token = random_token();
    let page = SetupPage {
        name: state.config.hub.name.clone(),
        form: token.clone(),
        flash: Flash::default(),
        version: env!("CARGO_PKG_VERSION"),
    };
    Ok(with_form_token(page, &token, secure))
}

async fn setup_submit(
    State(state): State<AppState>,
    ConnectInfo(super::ClientAddr(peer)): ConnectInfo<super::ClientAddr>,
    axum::Extension(secure): axum::Extension<Secure>,
    TokenForm(f): TokenForm<SetupForm>,
) -> WebResult {
    if admin_password(&state).await?.is_some() {
        return Ok(Redirect::to("/admin/login").into_response());
    }
    let ip = peer.ip();
    charge_attempt(&state, ip)?;
    // The page again with the mistake at its field; the code is kept,
    // and the passwords too unless they were the mistake.
    let again = |status: StatusCode, field: &'static str, error: &str| {
        let token = random_token();
        let mut values = vec![("code", f.code.clone())];
        if field == "code" {
            values.push(("password", f.password.clone()));
            values.push(("confirm", f.confirm.clone()));
        }
        let page = SetupPage {
            name: state.config.hub.name.clone(),
            form: token.clone(),
            flash: Flash::problem(field, error, values),
            version: env!("CARGO_PKG_VERSION"),
        };
        let mut r = with_form_token(page, &token, secure);
        *r.status_mut() = status;
        Ok(r)
    };
    if too_long(&[&f.code, &f.password, &f.confirm]) {
        return again(StatusCode::BAD_REQUEST, "password", "A field is too long.");
    }
    let expected = state.store.settings_get(SETUP_CODE).await?;
    let given = code_letters(&f.code);
    if !expected.is_some_and(|c| same(&code_letters(&c), &given)) {
        tracing::warn!(%ip, "admin setup: wrong setup code");
        return again(
            StatusCode::FORBIDDEN,
            "code",
            "That is not the setup code. On the hub image it is in HUB-SETUP.txt on the SD card's boot drive (RASPIFIRM) and on the hub's screen; on a computer, the hub printed it when it started (and it is in setup-code.txt in its data directory).",
        );
    }
    state.login_failures.refund(&ip);
    let password = match new_admin_password(&f.password, &f.confirm) {
        Ok(p) => p,
        Err(why) => return again(StatusCode::BAD_REQUEST, "password", why),
    };
    store_admin_password(&state, password).await?;
    let _ = state.store.settings_delete(SETUP_CODE).await;
    let _ = std::fs::remove_file(state.config.data_dir.join("setup-code.txt"));
    let _ = state
        .store
        .event("admin.password", None, Some("set with the setup code"))
        .await;
    // On to the rest of the wizard.
    start_session(&state, ip, secure, "/admin/setup").await
}

// ------------------------------------------------------------------ login

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    name: String,
    form: String,
    error: Option<String>,
    version: &'static str,
}

#[derive(serde::Deserialize)]
struct LoginForm {
    password: String,
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    expired: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    axum::Extension(secure): axum::Extension<Secure>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> WebResult {
    if admin_password(&state).await?.is_none() {
        return Ok(Redirect::to("/setup").into_response());
    }
    let token = random_token();
    let page = LoginPage {
        name: state.config.hub.name.clone(),
        form: token.clone(),
        error: q
            .expired
            .map(|_| "Your session ended: log in again.".to_string()),
        version: env!("CARGO_PKG_VERSION"),
    };
    Ok(with_form_token(page, &token, secure))
}

async fn login_submit(
    State(state): State<AppState>,
    ConnectInfo(super::ClientAddr(peer)): ConnectInfo<super::ClientAddr>,
    axum::Extension(secure): axum::Extension<Secure>,
    TokenForm(f): TokenForm<LoginForm>,
) -> WebResult {
    let ip = peer.ip();
    charge_attempt(&state, ip)?;
    let Some(ok) = is_admin_password(&state, &f.password).await? else {
        return Ok(Redirect::to("/setup").into_response());
    };
    if !ok {
        tracing::warn!(%ip, "admin login: wrong password");
        let token = random_token();
        let page = LoginPage {
            name: state.config.hub.name.clone(),
            form: token.clone(),
            error: Some("Wrong password.".into()),
            version: env!("CARGO_PKG_VERSION"),
        };
        let mut r = with_form_token(page, &token, secure);
        *r.status_mut() = StatusCode::FORBIDDEN;
        return Ok(r);
    }
    state.login_failures.refund(&ip);
    start_session(&state, ip, secure, "/admin").await
}

/// A form that carries only the CSRF token (buttons that post).
#[derive(serde::Deserialize)]
pub(super) struct NoFields {}

async fn logout(
    State(state): State<AppState>,
    axum::Extension(secure): axum::Extension<Secure>,
    super::guard::AdminForm(s, NoFields {}): super::guard::AdminForm<NoFields>,
) -> WebResult {
    state.store.admin_session_delete(&s.token_hash).await?;
    let mut r = Redirect::to("/admin/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, secure),
    );
    Ok(r)
}

// --------------------------------------------------------------- password

#[derive(Template, WebTemplate)]
#[template(path = "password.html")]
struct PasswordPage {
    name: String,
    csrf: String,
    flash: Flash,
    version: &'static str,
}

async fn password_page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    Ok(no_store(PasswordPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PasswordForm {
    current: String,
    password: String,
    confirm: String,
}

/// A new admin password, given the current one; every other session
/// ends (whoever else was logged in must log in with the new one).
async fn password_submit(
    State(state): State<AppState>,
    ConnectInfo(super::ClientAddr(peer)): ConnectInfo<super::ClientAddr>,
    AdminForm(s, f): AdminForm<PasswordForm>,
) -> WebResult {
    let back = |s: AdminSession, status: StatusCode, field: &'static str, why: &str| {
        let page = PasswordPage {
            name: state.config.hub.name.clone(),
            csrf: s.csrf,
            flash: Flash::problem(field, why, Vec::new()),
            version: env!("CARGO_PKG_VERSION"),
        };
        again(status, Ok(no_store(page)))
    };
    if too_long(&[&f.current, &f.password, &f.confirm]) {
        return back(
            s,
            StatusCode::BAD_REQUEST,
            "password",
            "A field is too long.",
        );
    }
    let ip = peer.ip();
    charge_attempt(&state, ip)?;
    let Some(ok) = is_admin_password(&state, &f.current).await? else {
        return Ok(Redirect::to("/setup").into_response());
    };
    if !ok {
        tracing::warn!(%ip, "admin password change: wrong current password");
        return back(
            s,
            StatusCode::FORBIDDEN,
            "current",
            "That is not the current admin password.",
        );
    }
    state.login_failures.refund(&ip);
    let password = match new_admin_password(&f.password, &f.confirm) {
        Ok(p) => p,
        Err(why) => return back(s, StatusCode::BAD_REQUEST, "password", why),
    };
    store_admin_password(&state, password).await?;
    state
        .store
        .admin_sessions_clear_others(&s.token_hash)
        .await?;
    let _ = state
        .store
        .event("admin.password", None, Some("changed on the admin pages"))
        .await;
    state.notices.put(
        &s,
        "The admin password is changed. Anyone else logged in must log in again with the new one.",
    );
    Ok(Redirect::to("/admin/settings").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_codes_are_read_as_people_type_them() {
        assert_eq!(code_letters(" AB2C-d3ef  gh4k "), "ab2cd3efgh4k");
        assert_eq!(
            code_letters("ab2c d3ef gh4k"),
            code_letters("ab2c-d3ef-gh4k")
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x_cairn_admin=1; cairn_admin=tok=en; other=2"),
        );
        assert_eq!(cookie(&h, "cairn_admin").as_deref(), Some("tok=en"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn session_cookie_attributes() {
        let v = set_cookie("a", "b", 60, Secure(true));
        assert_eq!(
            v.to_str().unwrap(),
            "a=b; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(
            !set_cookie("a", "b", 60, Secure(false))
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
