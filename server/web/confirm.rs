//! The one way a destructive action asks first. Its button posts the
//! action's form without `confirm=yes`; the handler then answers with
//! this page, which says what will happen and cannot be undone, and
//! carries the same fields with `confirm=yes` behind a red button, and a
//! way back. No script, the same on every page and width.

use super::flash::Flash;
use crate::store::admin::AdminSession;
use askama::Template;
use askama_web::WebTemplate;
use axum::response::Response;

/// What to ask.
pub struct Ask {
    /// The question, e.g. "Delete the account alice@camp?".
    pub title: String,
    /// What happens, in a sentence or two.
    pub consequence: String,
    /// Where the confirmed form goes (the action's own URL).
    pub action: String,
    /// The action's fields, sent again with `confirm=yes`.
    pub fields: Vec<(&'static str, String)>,
    /// The red button's words, e.g. "Delete the account".
    pub button: &'static str,
    /// Where "Keep it" leads back to.
    pub back: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    name: String,
    csrf: String,
    flash: Flash,
    ask: Ask,
    version: &'static str,
}

/// The form was not confirmed yet: the page that asks.
pub fn ask(state: &super::AppState, session: AdminSession, ask: Ask) -> Response {
    super::no_store(ConfirmPage {
        name: state.config.hub.name.clone(),
        csrf: session.csrf,
        flash: Flash::default(),
        ask,
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// A form whose only field is the confirmation (an action's own fields
/// are in its path).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ConfirmForm {
    pub confirm: String,
}

/// Whether a form's `confirm` field says yes.
pub fn confirmed(confirm: &str) -> bool {
    confirm == "yes"
}
