//! Admin pages for store-and-forward: the outbox (retry, hold, drop),
//! peers and routes (this node's card as a QR code), and bundles by hand:
//! upload one to import it, download one for a peer.

use super::confirm::{Ask, ConfirmForm, ask, confirmed};
use super::flash::{Flash, again};
use super::guard::{Admin, AdminForm, AdminPage, WebError, WebResult};
use super::{AppState, no_store};
use crate::domain::units::{human_age, human_bytes};
use crate::relay::node;
use crate::store::admin::AdminSession;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
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
impl From<crate::relay::RelayError> for WebError {
    fn from(e: crate::relay::RelayError) -> Self {
        use crate::relay::RelayError as E;
        let status = match e {
            _ if e.is_temporary() => StatusCode::SERVICE_UNAVAILABLE,
            E::NoSuchPeer(_) | E::NoSuchRoute(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        WebError::page(status, e.to_string())
    }
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
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    items: Vec<Item>,
    version: &'static str,
}

async fn outbox_page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    let rows = state.store.outbox().await?;
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
    Ok(no_store(OutboxPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        items,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

async fn outbox_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    AdminForm(s, f): AdminForm<ConfirmForm>,
) -> WebResult {
    let said = match action.as_str() {
        "retry" => {
            state.relay.retry(id).await?;
            format!("Message {id} goes out again at the next chance.")
        }
        "hold" => {
            state.relay.hold(id).await?;
            format!("Message {id} is held: it waits until you press Retry.")
        }
        "drop" if !confirmed(&f.confirm) => {
            return Ok(ask(
                &state,
                s,
                Ask {
                    title: format!("Drop message {id}?"),
                    consequence: "It is taken out of the outbox and never delivered; its sender gets a bounce saying so. This cannot be undone.".into(),
                    action: format!("/admin/outbox/{id}/drop"),
                    fields: Vec::new(),
                    button: "Drop the message",
                    back: "/admin/outbox",
                },
            ));
        }
        "drop" => {
            state.relay.drop_item(id, false).await?;
            format!("Message {id} was dropped; its sender was told.")
        }
        _ => {
            return Err(WebError::page(
                StatusCode::NOT_FOUND,
                "No such outbox action.",
            ));
        }
    };
    let _ = state
        .store
        .event("outbox", Some(&id.to_string()), Some(&action))
        .await;
    state.notices.put(&s, said);
    Ok(Redirect::to("/admin/outbox").into_response())
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
    flash: super::flash::Flash,
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
        .filter(|s| s.name == crate::config::services::LINK)
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

async fn peers_page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    peers_view(&state, s, flash).await
}

/// The peers page; a form with a mistake shows it again with `flash`.
async fn peers_view(state: &AppState, s: AdminSession, flash: Flash) -> WebResult {
    let (peers, routes) = tokio::try_join!(state.store.peer_list(), state.store.routes())?;
    let card = state.relay.card(own_link_addrs(state)).to_text();
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
    Ok(no_store(PeersPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        card,
        qr,
        peers,
        routes,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Deserialize)]
struct PeerAddForm {
    card: String,
    #[serde(default)]
    name: String,
}

/// A relay form's mistake, shown at `field` of the peers page with what
/// was typed; the disk or database failing is still the error page.
async fn peers_again(
    state: &AppState,
    s: AdminSession,
    field: &'static str,
    e: WebError,
    values: Vec<(&'static str, String)>,
) -> WebResult {
    let (status, message) = e.into_mistake()?;
    again(
        status,
        peers_view(state, s, Flash::problem(field, message, values)).await,
    )
}

async fn peer_add(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<PeerAddForm>,
) -> WebResult {
    let values = vec![("peer-card", f.card.clone()), ("peer-name", f.name.clone())];
    if f.card.len() > 4096 || f.name.len() > 256 {
        let e = WebError::bad_request(
            "A field is too long: a node card is one line of a few hundred characters.",
        );
        return peers_again(&state, s, "peer-card", e, values).await;
    }
    let card = match node::Card::parse(&f.card) {
        Ok(c) => c,
        Err(e) => {
            let why = match e {
                crate::relay::node::NodeError::BadCard(why) => why,
                other => other.to_string(),
            };
            let e = WebError::bad_request(format!(
                "That is not a whole node card ({why}). Copy the whole line under \"This node's card\" on the other hub's Peers page (it starts with cairn-node:v1;), or scan its code.",
            ));
            return peers_again(&state, s, "peer-card", e, values).await;
        }
    };
    let name = Some(f.name.trim()).filter(|n| !n.is_empty());
    let (row, routes) = match state.relay.add_peer(&card, name).await {
        Ok(r) => r,
        Err(e) => return peers_again(&state, s, "peer-card", e.into(), values).await,
    };
    let _ = state.store.event("peer.add", Some(&row.name), None).await;
    let mut said = format!("Added the peer {}.", row.name);
    if !routes.is_empty() {
        said.push_str(&format!(" Mail for {} now goes to it.", routes.join(", ")));
    }
    // A card with addresses: sync over a live link whenever there is mail.
    if !card.addrs.is_empty() {
        match state
            .syncer
            .add(&row.name, "link", "", "always", false)
            .await
        {
            Ok(_) => said.push_str(
                " Its card has network addresses, so a live link carries mail whenever it answers (see Uplinks to change that).",
            ),
            Err(e) => {
                tracing::warn!(peer = %row.name, error = %e, "could not add the link uplink")
            }
        }
    }
    state.notices.put(&s, said);
    Ok(Redirect::to("/admin/peers").into_response())
}

#[derive(serde::Deserialize)]
struct ClassicForm {
    name: String,
    domains: String,
    #[serde(default)]
    nncp: String,
}

/// A classic peer: an Exim or Postfix node reached by batch SMTP.
async fn classic_add(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<ClassicForm>,
) -> WebResult {
    let values = vec![
        ("classic-name", f.name.clone()),
        ("classic-domains", f.domains.clone()),
        ("classic-nncp", f.nncp.clone()),
    ];
    if f.name.len() > 256 || f.domains.len() > 4096 || f.nncp.len() > 256 {
        let e = WebError::bad_request("A field is too long.");
        return peers_again(&state, s, "classic-name", e, values).await;
    }
    let domains: Vec<String> = f
        .domains
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    let nncp = Some(f.nncp.trim()).filter(|n| !n.is_empty());
    let row = match state
        .relay
        .add_classic_peer(f.name.trim(), &domains, nncp)
        .await
    {
        Ok((row, _)) => row,
        Err(e) => return peers_again(&state, s, "classic-name", e.into(), values).await,
    };
    let _ = state.store.event("peer.add", Some(&row.name), None).await;
    state.notices.put(
        &s,
        format!(
            "Added the classic peer {}. Give it an uplink (NNCP or a folder) on Uplinks.",
            row.name
        ),
    );
    Ok(Redirect::to("/admin/peers").into_response())
}

#[derive(serde::Deserialize)]
struct NameForm {
    name: String,
    #[serde(default)]
    confirm: String,
}

async fn peer_remove(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<NameForm>,
) -> WebResult {
    if !confirmed(&f.confirm) {
        return Ok(ask(
            &state,
            s,
            Ask {
                title: format!("Remove the peer {}?", f.name),
                consequence: "Its routes and uplinks go with it. Mail waiting for it stays in the outbox with no route until another peer takes its domains; it can be added again from its card.".into(),
                action: "/admin/peers/remove".into(),
                fields: vec![("name", f.name)],
                button: "Remove the peer",
                back: "/admin/peers",
            },
        ));
    }
    state.relay.remove_peer(&f.name).await?;
    let _ = state.store.event("peer.remove", Some(&f.name), None).await;
    state
        .notices
        .put(&s, format!("Removed the peer {}.", f.name));
    Ok(Redirect::to("/admin/peers").into_response())
}

#[derive(serde::Deserialize)]
struct RouteForm {
    domain: String,
    #[serde(default)]
    peer: String,
    #[serde(default)]
    confirm: String,
}

/// How a route's domain reads on the page.
fn route_label(domain: &str) -> &str {
    if domain.trim() == "*" {
        "every other domain"
    } else {
        domain.trim()
    }
}

async fn route_add(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<RouteForm>,
) -> WebResult {
    if let Err(e) = state.relay.add_route(&f.domain, &f.peer).await {
        let values = vec![
            ("route-domain", f.domain.clone()),
            ("route-peer", f.peer.clone()),
        ];
        return peers_again(&state, s, "route-domain", e.into(), values).await;
    }
    state.notices.put(
        &s,
        format!(
            "Mail for {} now goes to {}.",
            route_label(&f.domain),
            f.peer.trim()
        ),
    );
    Ok(Redirect::to("/admin/peers").into_response())
}

async fn route_remove(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<RouteForm>,
) -> WebResult {
    let label = route_label(&f.domain).to_string();
    if !confirmed(&f.confirm) {
        return Ok(ask(
            &state,
            s,
            Ask {
                title: format!("Remove the route for {label}?"),
                consequence: "Mail for it then waits in the outbox until another route takes it."
                    .into(),
                action: "/admin/routes/remove".into(),
                fields: vec![("domain", f.domain)],
                button: "Remove the route",
                back: "/admin/peers",
            },
        ));
    }
    state.relay.remove_route(&f.domain).await?;
    state
        .notices
        .put(&s, format!("Removed the route for {label}."));
    Ok(Redirect::to("/admin/peers").into_response())
}

// ---------------------------------------------------------------- bundles

#[derive(Template, WebTemplate)]
#[template(path = "bundles.html")]
struct BundlesPage {
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    peers: Vec<String>,
    result: Option<String>,
    version: &'static str,
}

async fn bundles_page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    let peers = state
        .store
        .peer_list()
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    Ok(no_store(BundlesPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        peers,
        result: None,
        version: env!("CARGO_PKG_VERSION"),
    }))
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
    // No session, no upload: refused before a byte of the body is read.
    admin: Admin,
    mut form: Multipart,
) -> WebResult {
    use tokio::io::AsyncWriteExt;
    let mut csrf = String::new();
    let mut file: Option<(TempFile, u64)> = None;
    let incomplete = |e: &dyn std::fmt::Display| {
        WebError::bad_request(format!("The upload did not arrive whole: {e}"))
    };
    while let Some(mut field) = form.next_field().await.map_err(|e| incomplete(&e))? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.unwrap_or_default(),
            Some("bundle") => {
                let tmp = TempFile(state.store.temp_path("upload"));
                let mut out = tokio::fs::File::create(&tmp.0).await?;
                let mut size = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(|e| incomplete(&e))? {
                    size += chunk.len() as u64;
                    out.write_all(&chunk).await?;
                }
                out.flush().await?;
                file = Some((tmp, size));
            }
            _ => {}
        }
    }
    admin.check_csrf(&csrf)?;
    let Some((tmp, size)) = file.filter(|(_, size)| *size > 0) else {
        return Err(WebError::bad_request("Choose a bundle file to upload."));
    };
    let reader = std::io::BufReader::with_capacity(256 << 10, std::fs::File::open(&tmp.0)?);
    let r = state.relay.import(reader).await?;
    let _ = state
        .store
        .event("bundle.import", Some(&r.peer), Some(&r.to_string()))
        .await;
    let result = format!("Imported {}: {r}.", human_bytes(size));
    let peers = state
        .store
        .peer_list()
        .await
        .map(|p| p.into_iter().map(|p| p.name).collect())
        .unwrap_or_default();
    Ok(no_store(BundlesPage {
        name: state.config.hub.name.clone(),
        csrf: admin.0.csrf,
        flash: Default::default(),
        peers,
        result: Some(result),
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Deserialize)]
struct ExportQuery {
    peer: String,
}

/// Download a bundle for a peer. A GET because it is a download link; it
/// changes nothing a repeat would harm (items are resent until acknowledged).
async fn bundle_export(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<ExportQuery>,
) -> WebResult {
    let (bytes, exported) = state.relay.export(&q.peer, Vec::new()).await?;
    state.relay.sent(&exported).await?;
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
    Ok(no_store(r))
}
