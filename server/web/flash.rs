//! What an admin page says besides its own content: a "done" line after
//! an action (kept for the session until the next page it opens), and a
//! form's problem, shown at the field with what was typed given back, so
//! a mistake never loses a form.
//!
//! A POST handler that succeeds puts its line with [`Notices::put`] and
//! redirects; the page's GET handler receives it in [`super::guard::Admin`].
//! A POST handler whose form has a mistake renders the form's page again
//! itself, with a [`Flash::problem`] (see [`again`]).

use crate::store::admin::AdminSession;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most "done" lines kept at once (one per admin session): more sessions
/// than that at once, and the oldest lines are forgotten.
const MAX_KEPT: usize = 64;

/// "Done" lines waiting for their session's next page.
#[derive(Default)]
pub struct Notices(Mutex<HashMap<String, String>>);

impl Notices {
    pub fn put(&self, session: &AdminSession, text: impl Into<String>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_KEPT && !m.contains_key(&session.token_hash) {
            m.clear();
        }
        m.insert(session.token_hash.clone(), text.into());
    }

    pub fn take(&self, session: &AdminSession) -> Option<String> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&session.token_hash)
    }
}

/// A form's mistake: the message for the field `field` (its input's id,
/// unique on the page; empty for the form as a whole) and every value the
/// admin typed, by field.
#[derive(Debug, Clone)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
    pub values: Vec<(&'static str, String)>,
}

/// What a page shows above its content, and what a form gives back.
#[derive(Debug, Clone, Default)]
pub struct Flash {
    pub done: Option<String>,
    pub problem: Option<Problem>,
}

impl Flash {
    pub fn done(text: Option<String>) -> Flash {
        Flash {
            done: text,
            problem: None,
        }
    }

    pub fn problem(
        field: &'static str,
        message: impl Into<String>,
        values: Vec<(&'static str, String)>,
    ) -> Flash {
        Flash {
            done: None,
            problem: Some(Problem {
                field,
                message: message.into(),
                values,
            }),
        }
    }

    /// The message to show at `field`, if the mistake is there.
    pub fn error_at(&self, field: &str) -> Option<&str> {
        self.problem
            .as_ref()
            .filter(|p| p.field == field)
            .map(|p| p.message.as_str())
    }

    /// What was typed into `field` when the form comes back, else `stored`
    /// (what the page shows when nothing was typed).
    pub fn value<'a>(&'a self, field: &str, stored: &'a str) -> &'a str {
        self.problem
            .as_ref()
            .and_then(|p| p.values.iter().find(|(k, _)| *k == field))
            .map_or(stored, |(_, v)| v.as_str())
    }
}

/// A tick box as a form gives it back: "on" or "".
pub fn on(ticked: bool) -> &'static str {
    if ticked { "on" } else { "" }
}

/// A form's page shown again with its problem: the status says what
/// kind of mistake (400, or 404 for what is not there).
pub fn again(status: StatusCode, page: super::guard::WebResult) -> super::guard::WebResult {
    page.map(|mut r: Response| {
        *r.status_mut() = status;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(n: usize) -> AdminSession {
        AdminSession {
            token_hash: format!("s{n}"),
            csrf: String::new(),
            created_at: 0,
            expires_at: 0,
            ip: String::new(),
        }
    }

    #[test]
    fn a_notice_is_shown_once_to_its_own_session() {
        let n = Notices::default();
        n.put(&session(1), "Account deleted.");
        assert_eq!(n.take(&session(2)), None);
        assert_eq!(n.take(&session(1)).as_deref(), Some("Account deleted."));
        assert_eq!(n.take(&session(1)), None);
    }

    #[test]
    fn notices_are_bounded() {
        let n = Notices::default();
        for i in 0..10 * MAX_KEPT {
            n.put(&session(i), "x");
        }
        assert!(n.0.lock().unwrap().len() <= MAX_KEPT);
    }

    #[test]
    fn a_problem_gives_back_what_was_typed() {
        let f = Flash::problem(
            "domain",
            "Not a domain.",
            vec![("domain", "sunny meadow".into())],
        );
        assert_eq!(f.error_at("domain"), Some("Not a domain."));
        assert_eq!(f.error_at("name"), None);
        assert_eq!(f.value("domain", "old.camp"), "sunny meadow");
        assert_eq!(f.value("name", "Camp"), "Camp");
        assert_eq!(Flash::default().value("domain", "old.camp"), "old.camp");
    }
}
