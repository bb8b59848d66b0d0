//! The Internet gateway's DNS records in the admin: what to publish for
//! each domain it carries, as a zone file would have it, and a check of
//! what the Internet's DNS has of each (`?check=1`; also
//! `cairn gateway dns --check`).

use super::guard::{AdminPage, WebResult};
use super::{AppState, no_store};
use crate::relay::RelayError;
use crate::relay::publish::Published;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/gateway", get(gateway_page))
}

struct RecordLine {
    kind: &'static str,
    name: String,
    value: String,
    purpose: &'static str,
    /// "found", "different", "missing", "not checked"; empty before a check.
    state: &'static str,
    /// What DNS has instead, or why it could not be asked.
    detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "gateway.html")]
struct GatewayPage {
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    version: &'static str,
    /// Why there are no records (not a gateway, no domain name).
    notice: String,
    /// (domain, its records), in the order the gateway carries them.
    domains: Vec<(String, Vec<RecordLine>)>,
    checked: bool,
    /// Every record found.
    all_found: bool,
    zone: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct CheckQuery {
    check: Option<String>,
}

async fn gateway_page(
    State(state): State<AppState>,
    AdminPage(s, flash): AdminPage,
    Query(q): Query<CheckQuery>,
) -> WebResult {
    let checked = q.check.is_some();
    let mut page = GatewayPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        version: env!("CARGO_PKG_VERSION"),
        notice: String::new(),
        domains: Vec::new(),
        checked,
        all_found: false,
        zone: String::new(),
    };
    let records = match state.relay.dns_records().await {
        Ok(r) => r,
        Err(RelayError::Input(why)) => {
            page.notice = why;
            return Ok(no_store(page));
        }
        Err(e) => return Err(e.into()),
    };
    let results = if checked {
        state.relay.check_dns(&records).await?
    } else {
        Vec::new()
    };
    page.all_found = checked && results.iter().all(|p| *p == Published::Found);
    page.zone = records
        .iter()
        .map(|r| r.zone_line())
        .collect::<Vec<_>>()
        .join("\n");
    for (i, r) in records.into_iter().enumerate() {
        let (state, detail) = match results.get(i) {
            None => ("", String::new()),
            Some(p @ Published::Different(had)) => (p.word(), had.join(" | ")),
            Some(p @ Published::Unknown(why)) => (p.word(), why.clone()),
            Some(p) => (p.word(), String::new()),
        };
        let line = RecordLine {
            kind: r.kind_str(),
            name: r.name,
            value: r.value,
            purpose: r.purpose,
            state,
            detail,
        };
        match page.domains.last_mut() {
            Some((d, lines)) if *d == r.domain => lines.push(line),
            _ => page.domains.push((r.domain, vec![line])),
        }
    }
    Ok(no_store(page))
}
