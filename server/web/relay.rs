//! Admin pages for store-and-forward: the outbox (retry, hold, drop),
//! peers and routes (this node's card as a QR code), and bundles by hand:
//! upload one to import it, download one for a peer.

use super::admin::{CsrfForm, page_error, require, require_form, unavailable};
use super::{AppState, no_store};
use crate::domain::units::{human_age, human_bytes};
use crate::relay::node;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub fn router(max_upload: usize) -> Router<AppState> {
    Router::new()
        .route("/admin/outbox", get(outbox_page))
        .route("/admin/outbox/{id}/{action}", post(outbox_action))
        .route("/admin/peers", get(peers_page))
        .route("/admin/peers/add", post(peer_add))
        .route("/admin/peers/add-classic", post(classic_add))
        .route("/admin/peers/remove", post(peer_remove))
        .route("/admin/routes/add", post(route_add))
        .route("/admin/routes/remove", post(route_remove))
        .route("/admin/bundles", get(bundles_page))
        .route(
            "/admin/bundles/import",
            post(bundle_import).layer(axum::extract::DefaultBodyLimit::max(max_upload)),
        )
        .route("/admin/bundles/export", get(bundle_export))
}

/// A relay error as a page: 503 for the disk or database, 404 for what
/// is not there, 400 for the rest.
pub(super) fn relay_error(e: crate::relay::RelayError) -> Response {
    use crate::relay::RelayError as E;
    let status = match e {
        _ if e.is_temporary() => StatusCode::SERVICE_UNAVAILABLE,
        E::NoSuchPeer(_) | E::NoSuchRoute(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    page_error(status, &e.to_string())
}

// ----------------------------------------------------------------- outbox

struct Item {
    id: i64,
    state: String,
    next_hop: String,
    age: String,
    size: String,
    from: String,
    to: String,
    error: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "outbox.html")]
struct OutboxPage {
    name: String,
    csrf: String,
    items: Vec<Item>,
    version: &'static str,
}

async fn outbox_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match require(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let rows = match state.store.outbox().await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let now = crate::store::now();
    let items = rows
        .into_iter()
        .map(|o| Item {
            id: o.id,
            to: o.recipients().join(", "),
            state: o.state,
            next_hop: o.next_hop.unwrap_or_else(|| "—".into()),
            age: human_age(now - o.created_at),
            size: human_bytes(u64::try_from(o.size).unwrap_or(0)),
            from: if o.mail_from.is_empty() {
                "<>".into()
            } else {
                o.mail_from
            },
            error: o.last_error.unwrap_or_default(),
        })
        .collect();
    no_store(
        OutboxPage {
            name: state.config.hub.name.clone(),
            csrf: s.csrf,
            items,
            version: env!("CARGO_PKG_VERSION"),
        }
        .into_response(),
    )
}

async fn outbox_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    let r = match action.as_str() {
        "retry" => state.relay.retry(id).await,
        "hold" => state.relay.hold(id).await,
        "drop" => state.relay.drop_item(id, false).await,
        _ => return page_error(StatusCode::NOT_FOUND, "No such outbox action."),
    };
    match r {
        Ok(()) => {
            let _ = state
                .store
                .event("outbox", Some(&id.to_string()), Some(&action))
                .await;
            Redirect::to("/admin/outbox").into_response()
        }
        Err(e) => relay_error(e),
    }
}

// ------------------------------------------------------------------ peers

struct PeerLine {
    name: String,
    node: String,
    domains: String,
    sent: String,
    received: String,
}

struct RouteLine {
    /// As stored ('*' for the default route); `label` is what people read.
    domain: String,
    label: String,
    peer: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "peers.html")]
struct PeersPage {
    name: String,
    csrf: String,
    card: String,
    qr: String,
    peers: Vec<PeerLine>,
    routes: Vec<RouteLine>,
    version: &'static str,
}

/// Where this hub's live links answer, for its card.
fn own_link_addrs(state: &AppState) -> Vec<String> {
    let bound: Vec<std::net::SocketAddr> = state
        .services
        .iter()
        .filter(|s| s.name == crate::app::LINK)
        .filter_map(|s| s.address.parse().ok())
        .collect();
    let names: Vec<String> = state
        .config
        .hub
        .hostnames
        .iter()
        .map(|h| h.to_string())
        .collect();
    node::link_addrs(&bound, &names)
}

async fn peers_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match require(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (peers, routes) = match tokio::try_join!(state.store.peer_list(), state.store.routes()) {
        Ok(x) => x,
        Err(e) => return unavailable(e),
    };
    let card = state.relay.card(own_link_addrs(&state)).to_text();
    let qr = node::qr_svg(&card).unwrap_or_default();
    let now = crate::store::now();
    let ago = |t: Option<i64>| {
        t.map_or("never".to_string(), |t| {
            format!("{} ago", human_age(now - t))
        })
    };
    let peers = peers
        .into_iter()
        .map(|p| PeerLine {
            node: node::describe(&p),
            domains: p.domain_list().join(", "),
            sent: ago(p.last_sent_at),
            received: ago(p.last_received_at),
            name: p.name,
        })
        .collect();
    let routes = routes
        .into_iter()
        .map(|(d, _, p)| RouteLine {
            label: if d == "*" {
                "* (default)".into()
            } else {
                d.clone()
            },
            domain: d,
            peer: p,
        })
        .collect();
    no_store(
        PeersPage {
            name: state.config.hub.name.clone(),
            csrf: s.csrf,
            card,
            qr,
            peers,
            routes,
            version: env!("CARGO_PKG_VERSION"),
        }
        .into_response(),
    )
}

#[derive(serde::Deserialize)]
struct PeerAddForm {
    #[serde(default)]
    csrf: String,
    card: String,
    #[serde(default)]
    name: String,
}

async fn peer_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<PeerAddForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    if f.card.len() > 4096 || f.name.len() > 256 {
        return page_error(StatusCode::BAD_REQUEST, "A field is too long.");
    }
    let card = match node::Card::parse(&f.card) {
        Ok(c) => c,
        Err(e) => return page_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let name = Some(f.name.trim()).filter(|n| !n.is_empty());
    match state.relay.add_peer(&card, name).await {
        Ok((row, _)) => {
            let _ = state.store.event("peer.add", Some(&row.name), None).await;
            // A card with addresses: sync over a live link whenever there is mail.
            if !card.addrs.is_empty()
                && let Err(e) = state
                    .syncer
                    .add(&row.name, "link", "", "always", false)
                    .await
            {
                tracing::warn!(peer = %row.name, error = %e, "could not add the link uplink");
            }
            Redirect::to("/admin/peers").into_response()
        }
        Err(e) => relay_error(e),
    }
}

#[derive(serde::Deserialize)]
struct ClassicForm {
    #[serde(default)]
    csrf: String,
    name: String,
    domains: String,
    #[serde(default)]
    nncp: String,
}

/// A classic peer: an Exim or Postfix node reached by batch SMTP.
async fn classic_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<ClassicForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    if f.name.len() > 256 || f.domains.len() > 4096 || f.nncp.len() > 256 {
        return page_error(StatusCode::BAD_REQUEST, "A field is too long.");
    }
    let domains: Vec<String> = f
        .domains
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    let nncp = Some(f.nncp.trim()).filter(|n| !n.is_empty());
    match state
        .relay
        .add_classic_peer(f.name.trim(), &domains, nncp)
        .await
    {
        Ok((row, _)) => {
            let _ = state.store.event("peer.add", Some(&row.name), None).await;
            Redirect::to("/admin/peers").into_response()
        }
        Err(e) => relay_error(e),
    }
}

#[derive(serde::Deserialize)]
struct NameForm {
    #[serde(default)]
    csrf: String,
    name: String,
}

async fn peer_remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<NameForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    match state.relay.remove_peer(&f.name).await {
        Ok(()) => {
            let _ = state.store.event("peer.remove", Some(&f.name), None).await;
            Redirect::to("/admin/peers").into_response()
        }
        Err(e) => relay_error(e),
    }
}

#[derive(serde::Deserialize)]
struct RouteForm {
    #[serde(default)]
    csrf: String,
    domain: String,
    #[serde(default)]
    peer: String,
}

async fn route_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<RouteForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    match state.relay.add_route(&f.domain, &f.peer).await {
        Ok(()) => Redirect::to("/admin/peers").into_response(),
        Err(e) => relay_error(e),
    }
}

async fn route_remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<RouteForm>,
) -> Response {
    if let Err(r) = require_form(&state, &headers, &f.csrf).await {
        return r;
    }
    match state.relay.remove_route(&f.domain).await {
        Ok(()) => Redirect::to("/admin/peers").into_response(),
        Err(e) => relay_error(e),
    }
}

// ---------------------------------------------------------------- bundles

#[derive(Template, WebTemplate)]
#[template(path = "bundles.html")]
struct BundlesPage {
    name: String,
    csrf: String,
    peers: Vec<String>,
    result: Option<String>,
    version: &'static str,
}

async fn bundles_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match require(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let peers = match state.store.peer_list().await {
        Ok(p) => p.into_iter().map(|p| p.name).collect(),
        Err(e) => return unavailable(e),
    };
    no_store(
        BundlesPage {
            name: state.config.hub.name.clone(),
            csrf: s.csrf,
            peers,
            result: None,
            version: env!("CARGO_PKG_VERSION"),
        }
        .into_response(),
    )
}

/// Removes an upload's temp file however the request ends.
struct TempFile(std::path::PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `multipart/form-data` with `csrf` and then `bundle` (the file), which
/// is streamed to a temp file, never held in memory.
async fn bundle_import(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    use tokio::io::AsyncWriteExt;
    // No session, no upload: refuse before reading a byte of the body.
    if let Err(r) = require(&state, &headers).await {
        return r;
    }
    let mut csrf = String::new();
    let mut file: Option<(TempFile, u64)> = None;
    let incomplete = |e: &dyn std::fmt::Display| {
        page_error(
            StatusCode::BAD_REQUEST,
            &format!("The upload did not arrive whole: {e}"),
        )
    };
    loop {
        match form.next_field().await {
            Ok(Some(mut field)) => match field.name() {
                Some("csrf") => csrf = field.text().await.unwrap_or_default(),
                Some("bundle") => {
                    let tmp = TempFile(state.store.temp_path("upload"));
                    let mut out = match tokio::fs::File::create(&tmp.0).await {
                        Ok(f) => f,
                        Err(e) => return unavailable(e),
                    };
                    let mut size = 0u64;
                    loop {
                        match field.chunk().await {
                            Ok(Some(chunk)) => {
                                size += chunk.len() as u64;
                                if let Err(e) = out.write_all(&chunk).await {
                                    return unavailable(e);
                                }
                            }
                            Ok(None) => break,
                            Err(e) => return incomplete(&e),
                        }
                    }
                    if let Err(e) = out.flush().await {
                        return unavailable(e);
                    }
                    file = Some((tmp, size));
                }
                _ => {}
            },
            Ok(None) => break,
            Err(e) => return incomplete(&e),
        }
    }
    let s = match require_form(&state, &headers, &csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some((tmp, size)) = file.filter(|(_, size)| *size > 0) else {
        return page_error(StatusCode::BAD_REQUEST, "Choose a bundle file to upload.");
    };
    let reader = match std::fs::File::open(&tmp.0) {
        Ok(f) => std::io::BufReader::with_capacity(256 << 10, f),
        Err(e) => return unavailable(e),
    };
    let result = match state.relay.import(reader).await {
        Ok(r) => {
            let _ = state
                .store
                .event("bundle.import", Some(&r.peer), Some(&r.to_string()))
                .await;
            format!("Imported {}: {r}.", human_bytes(size))
        }
        Err(e) => return relay_error(e),
    };
    let peers = state
        .store
        .peer_list()
        .await
        .map(|p| p.into_iter().map(|p| p.name).collect())
        .unwrap_or_default();
    no_store(
        BundlesPage {
            name: state.config.hub.name.clone(),
            csrf: s.csrf,
            peers,
            result: Some(result),
            version: env!("CARGO_PKG_VERSION"),
        }
        .into_response(),
    )
}

#[derive(serde::Deserialize)]
struct ExportQuery {
    peer: String,
}

/// Download a bundle for a peer. A GET because it is a download link; it
/// changes nothing a repeat would harm (items are resent until acknowledged).
async fn bundle_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ExportQuery>,
) -> Response {
    if let Err(r) = require(&state, &headers).await {
        return r;
    }
    let (bytes, exported) = match state.relay.export(&q.peer, Vec::new()).await {
        Ok(x) => x,
        Err(e) => return relay_error(e),
    };
    if let Err(e) = state.relay.sent(&exported).await {
        return relay_error(e);
    }
    let file = crate::relay::folder::export_name(&exported, &state.relay.identity().public);
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match exported.peer_key {
            Some(_) => "application/octet-stream",
            // RFC 2442's media type.
            None => "application/batch-SMTP",
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    no_store(r)
}
