//! Admin pages for accounts: list and search, create one or a batch with
//! generated passwords, reset a password, delete. Every new password is
//! shown once, with the account's `dclogin:` link and QR code that set up
//! Delta Chat in one scan, on cards that print one per account.

use super::admin::{page_error, require, require_form, unavailable};
use super::{AppState, no_store};
use crate::domain::units::human_bytes;
use crate::mail::dclogin;
use crate::mail::{Accounts, accounts::AccountError};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

/// Most accounts one batch may create.
pub const MAX_BATCH: u32 = 200;
/// Smallest quota an account may be given: room for a few photos.
pub const MIN_QUOTA: u64 = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/accounts", get(list))
        .route("/admin/accounts/create", post(create))
        .route("/admin/accounts/reset", post(reset))
        .route("/admin/accounts/delete", post(delete))
        .route("/admin/accounts/quota", post(set_quota))
}

fn accounts(state: &AppState) -> Accounts {
    Accounts::new(state.store.clone(), state.config.hub.domains.clone())
}

fn account_error(e: AccountError) -> Response {
    let status = match e {
        AccountError::Store(crate::store::Error::AccountExists(_)) => StatusCode::BAD_REQUEST,
        AccountError::Store(_) | AccountError::Hashing(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    page_error(status, &e.to_string())
}

/// Where phones reach this hub: the implicit-TLS IMAP and SMTP listeners,
/// at the first configured hostname when they listen on every address.
pub fn endpoints(state: &AppState) -> Option<dclogin::Endpoints> {
    let find = |name: &str| {
        state
            .services
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.address.parse::<std::net::SocketAddr>().ok())
    };
    let imap = find(crate::app::IMAP_TLS)?;
    let smtp = find(crate::app::SMTP_SUBMISSION_TLS)?;
    let host = if imap.ip().is_unspecified() {
        state.config.hub.hostnames.first()?.to_string()
    } else {
        imap.ip().to_string()
    };
    Some(dclogin::Endpoints {
        host,
        imap_port: imap.port(),
        smtp_port: smtp.port(),
    })
}

struct Line {
    address: String,
    created: String,
    used: String,
    /// The account's own quota, empty for the hub's.
    quota: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts.html")]
struct ListPage {
    name: String,
    csrf: String,
    q: String,
    accounts: Vec<Line>,
    total: usize,
    domain: String,
    default_quota: String,
    version: &'static str,
}

#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let s = match require(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let all = match accounts(&state).list().await {
        Ok(a) => a,
        Err(e) => return unavailable(e),
    };
    let usage = match state.store.account_usage_all().await {
        Ok(u) => u,
        Err(e) => return unavailable(e),
    };
    let total = all.len();
    let needle = query.q.trim().to_lowercase();
    let accounts = all
        .into_iter()
        .filter(|a| needle.is_empty() || a.address.to_lowercase().contains(&needle))
        .map(|a| Line {
            created: time::OffsetDateTime::from_unix_timestamp(a.created_at)
                .map(|t| t.date().to_string())
                .unwrap_or_default(),
            used: human_bytes(usage.get(&a.id).copied().unwrap_or(0).max(0) as u64),
            quota: a
                .quota_bytes
                .map(|q| human_bytes(q.max(0) as u64))
                .unwrap_or_default(),
            address: a.address,
        })
        .collect();
    no_store(ListPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        q: query.q,
        accounts,
        total,
        domain: state
            .config
            .hub
            .domains
            .first()
            .map(|d| d.to_string())
            .unwrap_or_default(),
        default_quota: human_bytes(state.config.limits.mailbox_quota.0),
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(serde::Deserialize)]
struct QuotaForm {
    #[serde(default)]
    csrf: String,
    address: String,
    #[serde(default)]
    quota: String,
}

/// Give an account its own quota ("200 MiB"), or back the hub's (empty).
async fn set_quota(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<QuotaForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    let quota = match f.quota.trim() {
        "" => None,
        q => match crate::config::ByteSize::parse(q) {
            Some(b) if b.0 >= MIN_QUOTA && i64::try_from(b.0).is_ok() => Some(b.0 as i64),
            _ => {
                return page_error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "A quota is a size of at least {} like \"200 MiB\" or \"2 GiB\", or empty for the hub's.",
                        human_bytes(MIN_QUOTA)
                    ),
                );
            }
        },
    };
    let Ok(address) = crate::domain::Address::parse(f.address.trim()) else {
        return page_error(StatusCode::BAD_REQUEST, "That is not an account's address.");
    };
    match state.store.account_set_quota(&address, quota).await {
        Ok(true) => {
            let detail = quota.map(|q| format!("{q} bytes"));
            let _ = state
                .store
                .event(
                    "account.quota",
                    Some(&address.to_string()),
                    detail.as_deref(),
                )
                .await;
            Redirect::to("/admin/accounts").into_response()
        }
        Ok(false) => page_error(
            StatusCode::NOT_FOUND,
            &format!("There is no account {address}."),
        ),
        Err(e) => unavailable(e),
    }
}

/// One account with its new password, as a printable card.
struct Card {
    address: String,
    password: String,
    link: String,
    qr: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "account_cards.html")]
struct CardsPage {
    name: String,
    title: String,
    cards: Vec<Card>,
    /// The hub's Wi-Fi, printed on every card when the wizard set it.
    wifi: Option<super::join::Wifi>,
    version: &'static str,
}

fn card(state: &AppState, address: &str, password: &str) -> Card {
    let link = endpoints(state)
        .map(|at| dclogin::uri(address, password, &at))
        .unwrap_or_default();
    let qr = crate::relay::node::qr_svg(&link).unwrap_or_default();
    Card {
        address: address.to_string(),
        password: password.to_string(),
        link,
        qr,
    }
}

async fn cards_page(state: &AppState, title: &str, cards: Vec<Card>) -> Response {
    let wifi = super::join::wifi(state).await.ok().flatten();
    let page = CardsPage {
        name: state.config.hub.name.clone(),
        title: title.to_string(),
        cards,
        wifi,
        version: env!("CARGO_PKG_VERSION"),
    };
    // Passwords: never cached, never shown again.
    no_store(page)
}

#[derive(serde::Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    /// A name (local part or whole address); empty for generated names.
    #[serde(default)]
    name: String,
    #[serde(default)]
    count: String,
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CreateForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    let count: u32 = match f.count.trim() {
        "" => 1,
        n => match n.parse() {
            Ok(n) if (1..=MAX_BATCH).contains(&n) => n,
            _ => {
                return page_error(
                    StatusCode::BAD_REQUEST,
                    &format!("How many accounts? Give a number from 1 to {MAX_BATCH}."),
                );
            }
        },
    };
    let name = f.name.trim();
    if name.len() > 64 {
        return page_error(
            StatusCode::BAD_REQUEST,
            "That name is too long (64 characters at most).",
        );
    }
    if !name.is_empty() && count > 1 {
        return page_error(
            StatusCode::BAD_REQUEST,
            "Give either a name (one account) or a number of accounts (generated names), not both.",
        );
    }
    let Some(domain) = state.config.hub.domains.first() else {
        return page_error(StatusCode::BAD_REQUEST, "This hub hosts no mail domain.");
    };
    let accounts = accounts(&state);
    let mut cards = Vec::new();
    for _ in 0..count {
        let address = if name.is_empty() {
            match crate::domain::password::random_groups(1, 6) {
                Ok(r) => format!("camper-{r}@{domain}"),
                Err(e) => return unavailable(e),
            }
        } else if name.contains('@') {
            name.to_string()
        } else {
            format!("{name}@{domain}")
        };
        match accounts.create(&address, None).await {
            Ok(created) => {
                let pw = created
                    .generated_password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default();
                cards.push(card(&state, &created.address.to_string(), &pw));
            }
            Err(e) if cards.is_empty() => return account_error(e),
            Err(e) => {
                tracing::warn!(error = %e, "batch account creation stopped early");
                break;
            }
        }
    }
    let title = if cards.len() == 1 {
        "New account".to_string()
    } else {
        format!("{} new accounts", cards.len())
    };
    cards_page(&state, &title, cards).await
}

#[derive(serde::Deserialize)]
struct AddressForm {
    #[serde(default)]
    csrf: String,
    address: String,
    #[serde(default)]
    confirm: String,
}

async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<AddressForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    match accounts(&state).set_password(&f.address, None).await {
        Ok(Some(pw)) => {
            let address = f.address.trim().to_string();
            cards_page(
                &state,
                "New password",
                vec![card(&state, &address, pw.expose())],
            )
            .await
        }
        Ok(None) => unavailable("no password was generated"),
        Err(e) => account_error(e),
    }
}

async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<AddressForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    if f.confirm != "yes" {
        return page_error(
            StatusCode::BAD_REQUEST,
            "Tick the box to confirm: deleting an account deletes its mail.",
        );
    }
    match accounts(&state).remove(&f.address).await {
        Ok(()) => Redirect::to("/admin/accounts").into_response(),
        Err(e) => account_error(e),
    }
}
