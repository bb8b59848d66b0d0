//! What every admin handler stands behind: one error type that becomes a
//! page ([`WebError`], so handlers use `?`), the logged-in admin
//! ([`Admin`]) and a form posted by one with its CSRF token checked
//! ([`AdminForm`]). A POST handler takes an `AdminForm`, so it cannot
//! forget either check: the session is checked before a byte of the body
//! is read, the token before the form's own fields are. The forms before
//! a login (setup, login, join) stand behind [`TokenForm`] instead: the
//! double-submitted form token of the page that showed them.

use super::AppState;
use super::admin::{self, page_error};
use super::flash::Flash;
use crate::store::admin::AdminSession;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

/// Largest admin form body (not uploads, which are streamed).
const MAX_FORM_BODY: usize = 64 << 10;

/// Why an admin page cannot be shown: a page saying what to do.
#[derive(Debug)]
pub enum WebError {
    /// The database or the disk failed: logged, "see the hub's log".
    Unavailable(String),
    /// What the user got wrong or cannot do, in words for them.
    Page(StatusCode, String),
    /// The same on a camper's page (the join page): it leads back to
    /// joining, never to the admin pages.
    Public(StatusCode, String),
    /// Not logged in (or no longer): go to this page.
    Redirect(&'static str),
}

pub type WebResult<T = Response> = Result<T, WebError>;

impl WebError {
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        WebError::Unavailable(e.to_string())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        WebError::Page(StatusCode::BAD_REQUEST, message.into())
    }

    pub fn page(status: StatusCode, message: impl Into<String>) -> Self {
        WebError::Page(status, message.into())
    }

    pub fn public(status: StatusCode, message: impl Into<String>) -> Self {
        WebError::Public(status, message.into())
    }

    /// What the user can fix — its status and words, for the form's page
    /// to say at a field — or, as the error, a failure of the hub itself
    /// (the disk, the database), which stays the error page.
    pub fn into_mistake(self) -> Result<(StatusCode, String), WebError> {
        match self {
            WebError::Page(status, message) if status != StatusCode::SERVICE_UNAVAILABLE => {
                Ok((status, message))
            }
            other => Err(other),
        }
    }

    /// A form that expired or came from another site.
    pub fn forged() -> Self {
        WebError::Page(
            StatusCode::FORBIDDEN,
            "This form expired or came from another site: open the page again.".into(),
        )
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::Unavailable(e) => admin::unavailable(e),
            WebError::Page(status, message) => page_error(status, &message),
            WebError::Public(status, message) => admin::error_page(
                status,
                "That did not work",
                &message,
                &[("/join", "Join the chat"), ("/", "The hub")],
            ),
            WebError::Redirect(to) => Redirect::to(to).into_response(),
        }
    }
}

impl From<crate::store::Error> for WebError {
    fn from(e: crate::store::Error) -> Self {
        WebError::unavailable(e)
    }
}

impl From<std::io::Error> for WebError {
    fn from(e: std::io::Error) -> Self {
        WebError::unavailable(e)
    }
}

/// A logged-in admin's session; without one, the login page.
pub struct Admin(pub AdminSession);

impl FromRequestParts<AppState> for Admin {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> WebResult<Self> {
        admin::require(state, &parts.headers).await.map(Admin)
    }
}

/// An admin page being opened: the session, and what the session's last
/// action left to say on it (taken: said once). Event streams and
/// downloads take [`Admin`], which leaves it for the page.
pub struct AdminPage(pub AdminSession, pub Flash);

impl FromRequestParts<AppState> for AdminPage {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> WebResult<Self> {
        let session = admin::require(state, &parts.headers).await?;
        let flash = Flash::done(state.notices.take(&session));
        Ok(AdminPage(session, flash))
    }
}

impl Admin {
    /// Check a token that came some other way than a form field (an
    /// upload's multipart field).
    pub fn check_csrf(&self, sent: &str) -> WebResult<()> {
        if admin::same_token(&self.0.csrf, sent) {
            Ok(())
        } else {
            Err(WebError::forged())
        }
    }
}

/// A URL-encoded form posted by a logged-in admin, whose `csrf` field is
/// its session's token; then the form's own fields as `T`.
pub struct AdminForm<T>(pub AdminSession, pub T);

/// The tokens a form may carry: `csrf` (an admin session's) or `form`
/// (the double-submitted token of the pages before a login).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Tokens {
    csrf: String,
    form: String,
}

/// Read a posted form: at most [`MAX_FORM_BODY`] bytes, its token checked
/// by `token_ok` before its own fields are decoded. Refusals are made by
/// `refuse` and tell the user to open `again` (e.g. "the page") again.
async fn checked_form<T: DeserializeOwned>(
    body: axum::body::Body,
    token_ok: impl FnOnce(&Tokens) -> bool,
    refuse: impl Fn(StatusCode, String) -> WebError,
    again: &str,
) -> WebResult<T> {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BODY).await else {
        let words = "That form is too large: shorten what you typed.";
        return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, words.into()));
    };
    let tokens: Tokens = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    if !token_ok(&tokens) {
        let words = format!("This form expired or came from another site: open {again} again.");
        return Err(refuse(StatusCode::FORBIDDEN, words));
    }
    serde_urlencoded::from_bytes(&bytes).map_err(|e| {
        let words = format!("The form arrived incomplete ({e}): open {again} again and resend it.");
        refuse(StatusCode::UNPROCESSABLE_ENTITY, words)
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for AdminForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> WebResult<Self> {
        let (mut parts, body) = req.into_parts();
        let Admin(session) = Admin::from_request_parts(&mut parts, state).await?;
        let token_ok = |t: &Tokens| admin::same_token(&session.csrf, &t.csrf);
        let form = checked_form(body, token_ok, WebError::page, "the page").await?;
        Ok(AdminForm(session, form))
    }
}

/// A form posted before any login (the setup, login and join pages):
/// its `form` field must match the form-token cookie the page set, so a
/// form from another site or an old tab is refused before its fields are
/// read. Refusals name the page to open again (the last part of the path);
/// the join page's lead back to joining.
pub struct TokenForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for TokenForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, _state: &AppState) -> WebResult<Self> {
        let (parts, body) = req.into_parts();
        let page = parts.uri.path().rsplit('/').next().unwrap_or("");
        let refuse: fn(StatusCode, String) -> WebError = if page == "join" {
            WebError::public
        } else {
            WebError::page
        };
        let token_ok = |t: &Tokens| admin::form_token_ok(&parts.headers, &t.form);
        let again = format!("the {page} page");
        Ok(TokenForm(
            checked_form(body, token_ok, refuse, &again).await?,
        ))
    }
}
