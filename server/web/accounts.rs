//! Admin pages for accounts: list and search, create one or a batch with
//! generated passwords, reset a password, delete. Every new password is
//! shown once, with the account's `dclogin:` link and QR code that set up
//! Delta Chat in one scan, on cards that print one per account.

use super::confirm::{Ask, ask, confirmed};
use super::flash::{Flash, again};
use super::guard::{AdminForm, AdminPage, WebError, WebResult};
use super::{AppState, no_store};
use crate::domain::units::human_bytes;
use crate::mail::dclogin;
use crate::mail::{Accounts, accounts::AccountError};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
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

impl From<AccountError> for WebError {
    fn from(e: AccountError) -> Self {
        let status = match e {
            AccountError::Store(crate::store::Error::AccountExists(_)) => StatusCode::BAD_REQUEST,
            AccountError::Store(_) | AccountError::Hashing(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        WebError::page(status, e.to_string())
    }
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
    let imap = find(crate::config::services::IMAP_TLS)?;
    let smtp = find(crate::config::services::SMTP_SUBMISSION_TLS)?;
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
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    q: String,
    accounts: Vec<Line>,
    total: usize,
    domain: String,
    default_quota: String,
    version: &'static str,
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
}

async fn list(
    State(state): State<AppState>,
    AdminPage(s, flash): AdminPage,
    Query(query): Query<ListQuery>,
) -> WebResult {
    list_page(&state, s, flash, query).await
}

/// The accounts page; a form with a mistake shows it again with `flash`.
async fn list_page(
    state: &AppState,
    s: crate::store::admin::AdminSession,
    flash: Flash,
    query: ListQuery,
) -> WebResult {
    let all = accounts(state).list().await?;
    let usage = state.store.account_usage_all().await?;
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
    Ok(no_store(ListPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        q: query.q,
        accounts,
        total,
        domain: state.config.hub.first_domain(),
        default_quota: human_bytes(state.config.limits.mailbox_quota.0),
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Deserialize)]
struct QuotaForm {
    address: String,
    #[serde(default)]
    quota: String,
}

/// Give an account its own quota ("200 MiB"), or back the hub's (empty).
async fn set_quota(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<QuotaForm>,
) -> WebResult {
    let quota = match f.quota.trim() {
        "" => None,
        q => match crate::config::ByteSize::parse(q) {
            Some(b) if b.0 >= MIN_QUOTA && i64::try_from(b.0).is_ok() => Some(b.0 as i64),
            _ => {
                let message = format!(
                    "{}: \"{q}\" is not a quota. Give a size of at least {} like \"200 MiB\" or \"2 GiB\", or leave it empty for the hub's.",
                    f.address.trim(),
                    human_bytes(MIN_QUOTA)
                );
                let flash = Flash::problem("", message, Vec::new());
                return again(
                    StatusCode::BAD_REQUEST,
                    list_page(&state, s, flash, ListQuery::default()).await,
                );
            }
        },
    };
    let Ok(address) = crate::domain::Address::parse(f.address.trim()) else {
        return Err(WebError::bad_request("That is not an account's address."));
    };
    if !state.store.account_set_quota(&address, quota).await? {
        return Err(WebError::page(
            StatusCode::NOT_FOUND,
            format!("There is no account {address}."),
        ));
    }
    let detail = quota.map(|q| format!("{q} bytes"));
    let _ = state
        .store
        .event(
            "account.quota",
            Some(&address.to_string()),
            detail.as_deref(),
        )
        .await;
    let said = match quota {
        Some(q) => format!("{address} may now hold {} of mail.", human_bytes(q as u64)),
        None => format!("{address} now has the hub's quota."),
    };
    state.notices.put(&s, said);
    Ok(Redirect::to("/admin/accounts").into_response())
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

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct CreateForm {
    /// A name (local part or whole address); empty for generated names.
    name: String,
    count: String,
}

async fn create(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<CreateForm>,
) -> WebResult {
    let name = f.name.trim();
    let mistake = |field: &'static str, message: String| {
        let values = vec![("new-name", f.name.clone()), ("new-count", f.count.clone())];
        Flash::problem(field, message, values)
    };
    let count: Result<u32, Flash> = match (name, f.count.trim()) {
        _ if name.len() > 64 => Err(mistake(
            "new-name",
            "That name is too long (64 characters at most).".into(),
        )),
        ("", "") => Err(mistake(
            "new-name",
            "Give the new account a name, or say how many accounts to make with generated names."
                .into(),
        )),
        (_, "") => Ok(1),
        (_, n) => match n.parse() {
            Ok(n) if (1..=MAX_BATCH).contains(&n) && (name.is_empty() || n == 1) => Ok(n),
            Ok(n) if (1..=MAX_BATCH).contains(&n) => Err(mistake(
                "new-count",
                "Give either a name (one account) or a number of accounts (generated names), not both."
                    .into(),
            )),
            _ => Err(mistake(
                "new-count",
                format!("How many accounts? Give a number from 1 to {MAX_BATCH}."),
            )),
        },
    };
    let count = match count {
        Ok(c) => c,
        Err(m) => {
            return again(
                StatusCode::BAD_REQUEST,
                list_page(&state, s, m, ListQuery::default()).await,
            );
        }
    };
    let Some(domain) = state.config.hub.domains.first() else {
        return Err(WebError::bad_request("This hub hosts no mail domain."));
    };
    let accounts = accounts(&state);
    let mut cards = Vec::new();
    for _ in 0..count {
        let address = if name.is_empty() {
            let r = crate::domain::password::random_groups(1, 6).map_err(WebError::unavailable)?;
            format!("camper-{r}@{domain}")
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
            Err(e) if cards.is_empty() => {
                let (status, message) = WebError::from(e).into_mistake()?;
                let m = mistake("new-name", message);
                return again(status, list_page(&state, s, m, ListQuery::default()).await);
            }
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
    Ok(cards_page(&state, &title, cards).await)
}

#[derive(serde::Deserialize)]
struct AddressForm {
    address: String,
    #[serde(default)]
    confirm: String,
}

async fn reset(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<AddressForm>,
) -> WebResult {
    if !confirmed(&f.confirm) {
        let address = f.address.trim().to_string();
        return Ok(ask(
            &state,
            s,
            Ask {
                title: format!("Give {address} a new password?"),
                consequence: "The old password stops working at once: the phone that uses it cannot send or fetch mail until it is set up again from the new card, shown next. Its mail stays.".into(),
                action: "/admin/accounts/reset".into(),
                fields: vec![("address", address)],
                button: "Make a new password",
                back: "/admin/accounts",
            },
        ));
    }
    let Some(pw) = accounts(&state).set_password(&f.address, None).await? else {
        return Err(WebError::unavailable("no password was generated"));
    };
    let address = f.address.trim().to_string();
    Ok(cards_page(
        &state,
        "New password",
        vec![card(&state, &address, pw.expose())],
    )
    .await)
}

async fn delete(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<AddressForm>,
) -> WebResult {
    let address = f.address.trim().to_string();
    if !confirmed(&f.confirm) {
        return Ok(ask(
            &state,
            s,
            Ask {
                title: format!("Delete the account {address}?"),
                consequence: "Its mail on the hub is deleted with it and cannot be brought back. The name can be used again for a new account.".into(),
                action: "/admin/accounts/delete".into(),
                fields: vec![("address", address)],
                button: "Delete the account and its mail",
                back: "/admin/accounts",
            },
        ));
    }
    accounts(&state).remove(&address).await?;
    state
        .notices
        .put(&s, format!("Deleted {address} and its mail."));
    Ok(Redirect::to("/admin/accounts").into_response())
}
