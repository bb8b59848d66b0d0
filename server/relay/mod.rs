//! Store-and-forward: this node's identity, peers and routes, custody of
//! outbox items, and bundles — export for a peer, import from one.
//!
//! An outbox item is one message for one next hop. It stays in custody
//! until that hop acknowledges it (in a bundle coming back), or its
//! lifetime runs out and it turns into a bounce. Its content id (SHA-256
//! over envelope and body) makes every import idempotent: an item that
//! arrives twice, by any carriers, is placed once and acknowledged each
//! time. Carriers (`folder`, NNCP, …) only move the bytes.

pub mod bsmtp;
pub mod bundle;
pub mod classic;
pub mod folder;
pub mod fspl;
pub mod gateway;
pub mod keyref;
pub mod link;
pub mod nncp;
pub mod node;
pub mod radio;
pub mod schedule;
pub mod uplink;
pub(crate) mod varint;

use crate::domain::{Address, Domain, hex};
use crate::mail::bounce::{self, BounceInput, Failure};
use crate::mail::rules::{self, Place, Routes, Source};
use crate::store::relay::{
    CustodyRow, ImportApplied, ImportedItem, NewPeer, Onward, PeerRow, Placement, RoutedPart,
};
use crate::store::{self, Store, now};
use aws_lc_rs::digest;
use bundle::{BundleError, BundleReader, BundleWriter, ContentId, Header, Item, Limits, Record};
use node::{Card, Identity, fingerprint};
use std::io::{Read, Write};

/// An item that has crossed this many nodes is dropped with a bounce: a
/// routing loop, or a path longer than any camp needs.
pub use crate::mail::rules::HOP_LIMIT;
/// Default lifetime of an item in custody, summed over hops.
pub const DEFAULT_LIFETIME_DAYS: u64 = 14;
/// How long a content id is remembered, in lifetimes: a second copy that
/// comes later than this (by a forgotten USB stick) would be taken again.
/// Reticulum's LXMF keeps its ids for six message lifetimes; three of ours
/// are six weeks by default.
pub const SEEN_LIFETIMES: u64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Bundle(#[from] BundleError),
    #[error("this bundle is for node {to}, not this node ({me}): carry it to that node instead")]
    WrongRecipient { to: String, me: String },
    #[error(
        "this bundle comes from node {from}, which is not a peer of this node: add its node card with `cairn peer add CARD` first"
    )]
    UnknownSender { from: String },
    #[error("no peer named {0}: see `cairn peer list`")]
    NoSuchPeer(String),
    #[error("the bundle is malformed: {0}")]
    BadItem(String),
    #[error("{0}")]
    Outbox(String),
    /// What a command was given cannot be used (not the store's fault).
    #[error("{0}")]
    Input(String),
    #[error("{0} is a classic peer (Exim, Postfix): it takes batch SMTP, not bundles")]
    Classic(String),
    #[error("no route for {0}: see `cairn route list`")]
    NoSuchRoute(String),
    #[error("{0}")]
    Store(#[from] store::Error),
    #[error("{0}")]
    Node(#[from] node::NodeError),
    #[error("cannot use {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl RelayError {
    /// Worth trying again later unchanged (exit 75 for NNCP, Filespooler,
    /// Exim): the disk or database, not the bundle, is the problem.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            RelayError::Store(_) | RelayError::Io { .. } | RelayError::Bundle(BundleError::Io(_))
        )
    }
}

pub type Result<T, E = RelayError> = std::result::Result<T, E>;

/// Run a carrier tool (`nncp-exec`, `fspl`) with `input` on its stdin, and
/// return its stdout. Its stdin is written while its output is read, so a
/// tool that answers before it has read everything cannot block us; a tool
/// that exits early (an unknown node) is reported by its own exit status
/// and message, not by the broken pipe that it leaves behind. `what` names
/// the call in that report; `install` says where the program comes from.
pub(crate) async fn run_tool(
    mut cmd: tokio::process::Command,
    program: &str,
    install: &str,
    what: &str,
    input: &[u8],
) -> Result<Vec<u8>> {
    use tokio::io::AsyncWriteExt;
    let io = |source| RelayError::Io {
        path: program.to_string(),
        source,
    };
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| RelayError::Io {
            path: format!("{program} ({install})"),
            source,
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let write = async move {
        let written = stdin.write_all(input).await;
        drop(stdin);
        written
    };
    let (written, out) = tokio::join!(write, child.wait_with_output());
    let out = out.map_err(io)?;
    if !out.status.success() {
        return Err(io(std::io::Error::other(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))));
    }
    // Exit 0 without taking the whole input: nothing says it was kept.
    written.map_err(io)?;
    Ok(out.stdout)
}

/// Settings of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub hub_name: String,
    pub domains: Vec<Domain>,
    pub lifetime_ms: u64,
    /// Largest message accepted in a bundle.
    pub max_message_size: u64,
    /// Largest decompressed bundle accepted.
    pub max_bundle_size: u64,
    /// The chatmail encryption rule, applied to mail from classic peers as
    /// on the MX port.
    pub require_encryption: bool,
    /// How a gateway reaches the Internet.
    pub gateway: crate::config::GatewayConfig,
    /// The name this node gives itself to other mail servers.
    pub helo: String,
}

/// The content id of an item: SHA-256 over its canonical envelope and the
/// SHA-256 of its body (the blob name), hex.
pub fn item_id(mail_from: &str, rcpts: &[String], body_hash: &str) -> String {
    let mut sorted: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"cairn-item-v1\0");
    ctx.update(mail_from.as_bytes());
    for r in sorted {
        ctx.update(b"\0");
        ctx.update(r.as_bytes());
    }
    ctx.update(b"\0\0");
    ctx.update(body_hash.as_bytes());
    hex(ctx.finish().as_ref())
}

fn unhex(s: &str) -> Option<ContentId> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn domain_of(addr: &str) -> Option<String> {
    Address::parse(addr).ok().map(|a| a.domain().to_string())
}

/// The header section of a message (for a bounce), cut at a bound.
fn header_section(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| message.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(message.len());
    &message[..end.min(bounce::MAX_RETURNED_HEADERS)]
}

/// What an export put in a bundle; hand it to [`Relay::sent`] once the
/// bundle is durable on its carrier.
#[derive(Debug, Clone)]
pub struct Exported {
    pub peer_id: i64,
    pub peer: String,
    /// The peer's node key; `None` for a classic peer (a batch SMTP file).
    pub peer_key: Option<bundle::NodeKey>,
    pub seq: u64,
    pub rows: Vec<i64>,
    /// The content ids of `rows` (hex), for a cairn peer.
    pub item_ids: Vec<String>,
    pub acks: Vec<String>,
    pub bytes: u64,
    pub message_bytes: u64,
}

impl Exported {
    /// Nothing yet for classic peer `p` (no bundle, no key).
    fn classic(p: PeerRow) -> Exported {
        Exported {
            peer_id: p.id,
            peer: p.name,
            peer_key: None,
            seq: 0,
            rows: Vec::new(),
            item_ids: Vec::new(),
            acks: Vec::new(),
            bytes: 0,
            message_bytes: 0,
        }
    }

    /// Count `more` (a later export to the same peer) in with this one.
    fn absorb(&mut self, more: Exported) {
        self.rows.extend(more.rows);
        self.item_ids.extend(more.item_ids);
        self.acks.extend(more.acks);
        self.bytes += more.bytes;
        self.message_bytes += more.message_bytes;
    }
}

/// An item that arrived whole and authenticated (its message spooled,
/// not in `item.message`), with its checked content id and header section.
pub(crate) struct Arrived {
    pub item: Item,
    pub id: String,
    pub spool: store::Spool,
    pub head: Vec<u8>,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub peer: String,
    pub seq: u64,
    pub items: usize,
    pub applied: ImportApplied,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.applied;
        write!(
            f,
            "bundle {} from {}: {} items ({} delivered here, {} passed on, {} already had, {} refused, {} bounced), {} of our items acknowledged",
            self.seq,
            self.peer,
            self.items,
            a.delivered,
            a.forwarded,
            a.duplicates,
            a.refused,
            a.bounced,
            a.acknowledged
        )
    }
}

/// The store-and-forward side of a node.
#[derive(Clone)]
pub struct Relay {
    store: Store,
    identity: Identity,
    config: RelayConfig,
}

impl Relay {
    pub fn new(store: Store, identity: Identity, config: RelayConfig) -> Self {
        Relay {
            store,
            identity,
            config,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// This node's card.
    pub fn card(&self, addrs: Vec<String>) -> Card {
        let name: String = self
            .config
            .hub_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .take(node::MAX_NAME)
            .collect();
        Card {
            name: if name.is_empty() {
                "cairn".into()
            } else {
                name
            },
            key: self.identity.public,
            domains: self.config.domains.clone(),
            addrs,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_plain: self.config.max_bundle_size,
            // The message plus its envelope (recipients, ids).
            max_record: self.config.max_message_size + (256 << 10),
        }
    }

    /// Add a peer from its card; its domains are routed to it unless
    /// another peer has them already. Returns the routes made.
    pub async fn add_peer(
        &self,
        card: &Card,
        name: Option<&str>,
    ) -> Result<(PeerRow, Vec<String>)> {
        let name = name.unwrap_or(&card.name);
        node::check_name(name)?;
        if card.key == self.identity.public {
            return Err(RelayError::BadItem(
                "that is this node's own card: add the card of the other node".into(),
            ));
        }
        if let Some(d) = card
            .domains
            .iter()
            .find(|d| self.config.domains.contains(d))
        {
            return Err(RelayError::BadItem(format!(
                "the card names {d}, a domain of this hub: a peer cannot carry this hub's own domain (give the other hub a domain of its own)"
            )));
        }
        let domains: Vec<String> = card.domains.iter().map(|d| d.to_string()).collect();
        let row = self
            .store
            .peer_add(&NewPeer {
                name,
                public_key: Some(&card.key),
                domains: &domains,
                addresses: &card.addrs,
                nncp_node: None,
            })
            .await?;
        let made = self.route_new_domains(&row, domains).await?;
        Ok((row, made))
    }

    /// Add a classic peer (Exim, Postfix: batch SMTP, no node key) for
    /// `domains`, reached through NNCP node `nncp` if given. Its domains
    /// are routed to it unless already routed. Returns the routes made.
    pub async fn add_classic_peer(
        &self,
        name: &str,
        domains: &[String],
        nncp: Option<&str>,
    ) -> Result<(PeerRow, Vec<String>)> {
        node::check_name(name)?;
        let mut canonical = Vec::new();
        for d in domains {
            let d = Domain::parse(d.trim())
                .map_err(|e| RelayError::BadItem(format!("`{d}` is not a domain: {e}")))?;
            if self.config.domains.contains(&d) {
                return Err(RelayError::BadItem(format!(
                    "{d} is a domain of this hub, not of the peer"
                )));
            }
            canonical.push(d.to_string());
        }
        if canonical.is_empty() {
            return Err(RelayError::BadItem(
                "name at least one mail domain behind the peer".into(),
            ));
        }
        let nncp = nncp.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = nncp
            && !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(RelayError::BadItem(format!(
                "`{n}` is not an NNCP node id or name"
            )));
        }
        let row = self
            .store
            .peer_add(&NewPeer {
                name,
                public_key: None,
                domains: &canonical,
                addresses: &[],
                nncp_node: nncp,
            })
            .await?;
        let made = self.route_new_domains(&row, canonical).await?;
        Ok((row, made))
    }

    /// Make this node a gateway: the Internet becomes peer `name` (a
    /// classic peer without domains) with the default route, so mail for
    /// every domain without a route of its own leaves by SMTP (smarthost
    /// or MX, per the `gateway` settings).
    pub async fn add_internet_peer(&self, name: &str) -> Result<PeerRow> {
        node::check_name(name)?;
        let row = self
            .store
            .peer_add(&NewPeer {
                name,
                public_key: None,
                domains: &[],
                addresses: &[],
                nncp_node: None,
            })
            .await?;
        self.store.route_set("*", row.id).await?;
        self.reroute().await?;
        Ok(row)
    }

    /// Route a new peer's domains to it where no route exists yet.
    async fn route_new_domains(&self, row: &PeerRow, domains: Vec<String>) -> Result<Vec<String>> {
        let taken: Vec<String> = self
            .store
            .routes()
            .await?
            .into_iter()
            .map(|(d, _, _)| d)
            .collect();
        let mut made = Vec::new();
        for d in domains {
            if !taken.contains(&d) && !self.config.domains.iter().any(|h| h.to_string() == d) {
                self.store.route_set(&d, row.id).await?;
                made.push(d);
            }
        }
        self.reroute().await?;
        Ok(made)
    }

    pub async fn peer(&self, name: &str) -> Result<PeerRow> {
        self.store
            .peer_by_name(name)
            .await?
            .ok_or_else(|| RelayError::NoSuchPeer(name.to_string()))
    }

    /// How a route's domain is stored: canonical, '*' for the default
    /// (also written `default`).
    fn route_key(domain: &str) -> Result<String> {
        let domain = domain.trim();
        if domain == "*" || domain == "default" {
            return Ok("*".into());
        }
        Domain::parse(domain)
            .map(|d| d.to_string())
            .map_err(|e| RelayError::BadItem(format!("`{domain}` is not a domain: {e}")))
    }

    /// Route `domain` ('*' = default) to a peer, and give waiting items
    /// their next hop.
    pub async fn add_route(&self, domain: &str, peer: &str) -> Result<()> {
        let domain = Self::route_key(domain)?;
        let p = self.peer(peer.trim()).await?;
        self.store.route_set(&domain, p.id).await?;
        self.reroute().await?;
        Ok(())
    }

    /// Remove a route; items waiting for its peer follow what routes are
    /// left (or wait for a new one).
    pub async fn remove_route(&self, domain: &str) -> Result<()> {
        if self.store.route_remove(&Self::route_key(domain)?).await? {
            self.reroute().await?;
            Ok(())
        } else {
            Err(RelayError::NoSuchRoute(domain.trim().to_string()))
        }
    }

    /// After a route change: items queued for a peer that the routes no
    /// longer choose, and never handed to any carrier, go to their new next
    /// hop. Items already carried stay with their peer until acknowledged
    /// or expired — moving them could deliver them twice. Returns how many
    /// items moved.
    pub async fn reroute(&self) -> Result<usize> {
        let routes = self.rule_routes().await?;
        let moved: Vec<i64> = self
            .store
            .outbox_untouched()
            .await?
            .into_iter()
            .filter(|row| {
                row.recipients()
                    .iter()
                    .any(|rcpt| domain_of(rcpt).and_then(|d| routes.next_hop(&d)) != row.peer_id)
            })
            .map(|row| row.id)
            .collect();
        let n = if moved.is_empty() {
            0
        } else {
            self.store.outbox_unroute(&moved).await?
        };
        self.route_pending().await?;
        Ok(n)
    }

    /// Remove a peer and its routes; its queued items wait for a new route.
    pub async fn remove_peer(&self, name: &str) -> Result<()> {
        if self.store.peer_remove(name).await? {
            Ok(())
        } else {
            Err(RelayError::NoSuchPeer(name.to_string()))
        }
    }

    /// May `peer` hand this hub mail from `sender`? The relay rules'
    /// answer ([`rules::sender`]): the null sender of a bounce, yes; a
    /// domain this hub hosts, never; otherwise the sender's domain must be
    /// on the peer's card (or list) or routed to it.
    pub(crate) fn sender_behind_peer(
        &self,
        (peer_id, peer_domains): (i64, &[String]),
        routes: &Routes,
        sender: &str,
    ) -> bool {
        let source = Source::Peer {
            id: peer_id,
            domains: peer_domains,
            hops: 0,
            expired: false,
        };
        rules::sender(source, sender, &self.config.domains, routes).is_ok()
    }

    /// The routes as the relay rules read them.
    pub(crate) async fn rule_routes(&self) -> Result<Routes> {
        Ok(Routes::new(
            self.store
                .routes()
                .await?
                .into_iter()
                .map(|(domain, peer, _)| (domain, peer)),
        ))
    }

    /// Give every item waiting for a route its next hops. Returns how many
    /// items were routed.
    pub async fn route_pending(&self) -> Result<usize> {
        let rows = self.store.outbox_unrouted().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let routes = self.rule_routes().await?;
        let mut batch = Vec::new();
        for row in rows {
            let mut by_peer: Vec<(i64, Vec<String>)> = Vec::new();
            let mut rest = Vec::new();
            for rcpt in row.recipients() {
                match domain_of(&rcpt).and_then(|d| routes.next_hop(&d)) {
                    Some(peer) => match by_peer.iter_mut().find(|(p, _)| *p == peer) {
                        Some((_, v)) => v.push(rcpt),
                        None => by_peer.push((peer, vec![rcpt])),
                    },
                    None => rest.push(rcpt),
                }
            }
            if by_peer.is_empty() {
                continue;
            }
            let parts: Vec<RoutedPart> = by_peer
                .into_iter()
                .map(|(peer_id, rcpts)| RoutedPart {
                    peer_id,
                    item_id: item_id(&row.mail_from, &rcpts, &row.blob_hash),
                    rcpts,
                })
                .collect();
            batch.push((row.id, parts, rest));
        }
        let routed = batch.iter().map(|(_, p, _)| p.len()).sum();
        self.store.outbox_route(&batch).await?;
        Ok(routed)
    }

    /// Age of an item now: what it had on arrival plus its time here.
    fn age_now(&self, row: &CustodyRow, t: i64) -> u64 {
        let here = (t - row.created_at).max(0) as u64 * 1000;
        (row.age_ms.max(0) as u64).saturating_add(here)
    }

    fn lifetime(&self, row: &CustodyRow) -> u64 {
        row.lifetime_ms
            .map(|l| l.max(0) as u64)
            .unwrap_or(self.config.lifetime_ms)
    }

    /// Write a bundle for `peer` with every item in custody for it and the
    /// acknowledgements owed to it. Nothing changes until [`Relay::sent`].
    pub async fn export<W: Write + Send + 'static>(
        &self,
        peer: &str,
        out: W,
    ) -> Result<(W, Exported)> {
        self.export_with(peer, out, &[]).await
    }

    /// [`Relay::export`], acknowledging `again` too: acknowledgements an
    /// earlier bundle carried that this one replaces.
    pub async fn export_with<W: Write + Send + 'static>(
        &self,
        peer: &str,
        out: W,
        again: &[String],
    ) -> Result<(W, Exported)> {
        self.route_pending().await?;
        self.expire().await?;
        let p = self.peer(peer).await?;
        let Some(key) = p.key() else {
            return self.export_classic(p, out, None).await;
        };
        let rows = self.store.outbox_for_peer(p.id).await?;
        let mut acks = self.store.acks_due(p.id).await?;
        for a in again {
            if !acks.contains(a) {
                acks.push(a.clone());
            }
        }
        let seq = self.store.peer_take_seq(p.id).await?;
        let header = Header {
            from: self.identity.public,
            to: key,
            seq,
        };
        let t = now();
        let mut items = Vec::with_capacity(rows.len());
        let mut item_ids = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(id) = r.item_id.as_deref().and_then(unhex) else {
                continue;
            };
            item_ids.push(r.item_id.clone().unwrap_or_default());
            items.push((
                r.id,
                self.store.blob_path(&r.blob_hash),
                Item {
                    id,
                    mail_from: r.mail_from.clone(),
                    rcpts: r.recipients(),
                    age_ms: self.age_now(r, t),
                    lifetime_ms: self.lifetime(r),
                    hops: u8::try_from(r.hops).unwrap_or(u8::MAX),
                    message: Vec::new(),
                },
            ));
        }
        let ack_ids: Vec<ContentId> = acks.iter().filter_map(|a| unhex(a)).collect();
        let private = self.identity.private;
        let (out, rows_done, message_bytes, bytes) =
            tokio::task::spawn_blocking(move || -> Result<(W, Vec<i64>, u64, u64)> {
                let counting = Counting { inner: out, n: 0 };
                let mut w = BundleWriter::new(counting, &header, &private)?;
                let mut done = Vec::new();
                let mut message_bytes = 0;
                for (row, path, mut item) in items {
                    item.message = std::fs::read(&path).map_err(|source| RelayError::Io {
                        path: path.display().to_string(),
                        source,
                    })?;
                    message_bytes += item.message.len() as u64;
                    w.item(&item)?;
                    done.push(row);
                }
                w.acks(&ack_ids)?;
                let counting = w.finish()?;
                Ok((counting.inner, done, message_bytes, counting.n))
            })
            .await
            .map_err(|e| RelayError::BadItem(format!("export task failed: {e}")))??;
        Ok((
            out,
            Exported {
                peer_id: p.id,
                peer: p.name,
                peer_key: Some(key),
                seq,
                rows: rows_done,
                item_ids,
                acks,
                bytes,
                message_bytes,
            },
        ))
    }

    /// The bundle of an export is durable on its carrier.
    pub async fn sent(&self, e: &Exported) -> Result<()> {
        match e.peer_key {
            Some(_) => self.store.bundle_sent(e.peer_id, &e.rows, &e.acks).await?,
            // A classic peer's MTA or NNCP spool has custody now.
            None => self.store.handed_over(e.peer_id, &e.rows).await?,
        }
        Ok(())
    }

    /// Import one bundle, all or nothing: nothing changes unless the whole
    /// bundle authenticates to its last byte.
    pub async fn import<R: Read + Send + 'static>(&self, mut input: R) -> Result<Imported> {
        let (header, input) =
            tokio::task::spawn_blocking(move || Header::read(&mut input).map(|h| (h, input)))
                .await
                .map_err(|e| RelayError::BadItem(format!("import task failed: {e}")))??;
        if header.to != self.identity.public {
            return Err(RelayError::WrongRecipient {
                to: fingerprint(&header.to),
                me: fingerprint(&self.identity.public),
            });
        }
        let Some(peer) = self.store.peer_by_key(&header.from).await? else {
            return Err(RelayError::UnknownSender {
                from: fingerprint(&header.from),
            });
        };
        let private = self.identity.private;
        let limits = self.limits();
        let store = self.store.clone();
        let (items, acks) = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut reader = BundleReader::open(input, &header, &private, limits)?;
            let mut items = Vec::new();
            let mut acks = Vec::new();
            while let Some(rec) = reader.next_record()? {
                match rec {
                    Record::Item(mut item) => {
                        let mut spool = store.spool();
                        spool.write(&item.message)?;
                        let id = item_id(&item.mail_from, &item.rcpts, &spool.hash());
                        if unhex(&id) != Some(item.id) {
                            return Err(RelayError::BadItem(
                                "an item's content id does not match its content".into(),
                            ));
                        }
                        let head = header_section(&item.message).to_vec();
                        item.message = Vec::new();
                        items.push((item, id, spool, head));
                    }
                    Record::Acks(ids) => acks.extend(ids.iter().map(|i| hex(i))),
                    Record::End { .. } => {}
                }
            }
            Ok((items, acks))
        })
        .await
        .map_err(|e| RelayError::BadItem(format!("import task failed: {e}")))??;

        // The bundle is authentic and complete: decide, then commit.
        let n = items.len();
        let arrived = items
            .into_iter()
            .map(|(item, id, spool, head)| Arrived {
                item,
                id,
                spool,
                head,
            })
            .collect();
        let applied = self.admit(&peer, arrived, &acks).await?;
        Ok(Imported {
            peer: peer.name,
            seq: header.seq,
            items: n,
            applied,
        })
    }

    /// Take items that arrived whole and authentic from `peer`, and its
    /// acknowledgements, in one transaction: each item not seen before and
    /// from a sender behind that peer is placed (or bounced); every item
    /// is acknowledged back.
    pub(crate) async fn admit(
        &self,
        peer: &PeerRow,
        items: Vec<Arrived>,
        acks: &[String],
    ) -> Result<ImportApplied> {
        let seen = self
            .store
            .items_seen(&items.iter().map(|a| a.id.clone()).collect::<Vec<_>>())
            .await?;
        let routes = self.rule_routes().await?;
        let peer_domains = peer.domain_list();
        let _guard = self.store.blob_guard().await;
        // Which items are new and allowed; their bodies become blobs at once.
        let n = items.len();
        let mut keep = Vec::with_capacity(n);
        let mut spools = Vec::new();
        let mut planned = Vec::with_capacity(n);
        for (
            Arrived {
                item,
                id,
                spool,
                head,
            },
            seen,
        ) in items.into_iter().zip(seen)
        {
            let allowed =
                self.sender_behind_peer((peer.id, &peer_domains), &routes, &item.mail_from);
            if seen || !allowed {
                if !allowed {
                    tracing::warn!(peer = %peer.name, sender = %item.mail_from, "refused an item whose sender's domain is not behind that peer");
                }
                // Acknowledged again (or refused), stored nowhere.
                planned.push(ImportedItem {
                    item_id: id,
                    place: None,
                    bounce: None,
                });
                continue;
            }
            spools.push(spool);
            keep.push((item, id, head));
        }
        let blobs = self.store.commit_all(spools).await?;
        for ((item, id, head), blob) in keep.into_iter().zip(blobs) {
            let (place, failures) = self.place_item(&item, blob).await?;
            let bounce = if failures.is_empty() {
                None
            } else {
                self.bounce_for(&item.mail_from, &failures, &head).await?
            };
            planned.push(ImportedItem {
                item_id: id,
                place: Some(place),
                bounce,
            });
        }
        let applied = self.store.import_items(peer.id, &planned, acks).await?;
        drop(_guard);
        self.route_pending().await?;
        Ok(applied)
    }

    /// Where an arriving item goes: local INBOXes, onward, and failures.
    async fn place_item(
        &self,
        item: &Item,
        blob: store::StagedBlob,
    ) -> Result<(Placement, Vec<Failure>)> {
        let mut local = Vec::new();
        let mut onward = Vec::new();
        let mut failures = Vec::new();
        // Where each recipient goes is the relay rules' answer; the peer's
        // own card matters only to its senders, checked before.
        let source = Source::Peer {
            id: 0,
            domains: &[],
            hops: item.hops,
            expired: item.age_ms >= item.lifetime_ms,
        };
        let routes = Routes::default();
        for rcpt in &item.rcpts {
            let refused = |why: rules::Refusal| Failure {
                recipient: rcpt.clone(),
                status: why.status().into(),
                diagnostic: why.to_string(),
            };
            match rules::recipient(source, rcpt, &self.config.domains, &routes) {
                Ok(Place::Local(addr)) => match self.store.account_find(&addr).await? {
                    Some(a) if !local.contains(&a.id()) => local.push(a.id()),
                    Some(_) => {}
                    None => failures.push(Failure {
                        recipient: rcpt.clone(),
                        status: "5.1.1".into(),
                        diagnostic: format!("there is no user {rcpt} on {}", self.config.hub_name),
                    }),
                },
                // Routed after the commit, or waiting for a route until it expires.
                Ok(Place::Onward(_)) => onward.push(rcpt.clone()),
                Err(why) => failures.push(refused(why)),
            }
        }
        let onward = (!onward.is_empty()).then(|| Onward {
            mail_from: item.mail_from.clone(),
            rcpts: onward,
            age_ms: i64::try_from(item.age_ms).unwrap_or(i64::MAX),
            lifetime_ms: i64::try_from(item.lifetime_ms).unwrap_or(i64::MAX),
            hops: i64::from(item.hops) + 1,
        });
        Ok((
            Placement {
                blob,
                local,
                onward,
            },
            failures,
        ))
    }

    /// A bounce to `sender` (none for the null sender), placed locally or
    /// sent back along the routes.
    async fn bounce_for(
        &self,
        sender: &str,
        failures: &[Failure],
        original_header: &[u8],
    ) -> Result<Option<Placement>> {
        if sender.is_empty() {
            return Ok(None);
        }
        let Some(domain) = self.config.domains.first() else {
            return Ok(None);
        };
        let message = bounce::build(&BounceInput {
            domain,
            reporting_mta: &self.config.hub_name,
            sender,
            failures,
            original_header,
            arrived: now(),
            now: time::OffsetDateTime::now_utc(),
        });
        let mut spool = self.store.spool();
        spool.write(&message)?;
        let blob = spool.commit().await?;
        let mut local = Vec::new();
        let mut onward = None;
        match Address::parse(sender) {
            Ok(a) if self.config.domains.contains(a.domain()) => {
                if let Some(acc) = self.store.account_find(&a).await? {
                    local.push(acc.id());
                } else {
                    return Ok(None);
                }
            }
            Ok(_) => {
                onward = Some(Onward {
                    mail_from: String::new(),
                    rcpts: vec![sender.to_string()],
                    age_ms: 0,
                    lifetime_ms: i64::try_from(self.config.lifetime_ms).unwrap_or(i64::MAX),
                    hops: 0,
                })
            }
            Err(_) => return Ok(None),
        }
        Ok(Some(Placement {
            blob,
            local,
            onward,
        }))
    }

    fn item_state_error(&self, id: i64, state: Option<&str>, want: &str) -> RelayError {
        RelayError::Outbox(match state {
            None => format!("there is no outbox item {id}: see `cairn outbox list`"),
            Some(s) => {
                format!("outbox item {id} is {s}; only {want} items can be changed that way")
            }
        })
    }

    /// Keep an item from leaving until [`Relay::retry`].
    pub async fn hold(&self, id: i64) -> Result<()> {
        if self
            .store
            .outbox_set_state(id, &["no-route", "queued", "in-flight"], "held")
            .await?
        {
            return Ok(());
        }
        let state = self.store.outbox_item(id).await?.map(|r| r.state);
        Err(self.item_state_error(id, state.as_deref(), "waiting or in-flight"))
    }

    /// Send a held or in-flight item again at the next chance.
    pub async fn retry(&self, id: i64) -> Result<()> {
        if self
            .store
            .outbox_set_state(id, &["held", "in-flight", "queued"], "queued")
            .await?
        {
            self.route_pending().await?;
            return Ok(());
        }
        let state = self.store.outbox_item(id).await?.map(|r| r.state);
        Err(self.item_state_error(id, state.as_deref(), "held, queued or in-flight"))
    }

    /// Remove an item; unless `quietly`, its sender gets a bounce saying so.
    pub async fn drop_item(&self, id: i64, quietly: bool) -> Result<()> {
        let Some(row) = self.store.outbox_item(id).await? else {
            return Err(self.item_state_error(id, None, ""));
        };
        let _guard = self.store.blob_guard().await;
        let bounce = if quietly
            || !matches!(
                row.state.as_str(),
                "no-route" | "queued" | "in-flight" | "held"
            ) {
            None
        } else {
            let failures: Vec<Failure> = row
                .recipients()
                .into_iter()
                .map(|rcpt| Failure {
                    recipient: rcpt,
                    status: "5.3.0".into(),
                    diagnostic: "the hub's operator removed it from the outbox".into(),
                })
                .collect();
            let head = header_section(&self.store.blob_read(&row.blob_hash).await?).to_vec();
            self.bounce_for(&row.mail_from, &failures, &head).await?
        };
        self.store.outbox_drop(id, bounce.as_ref()).await?;
        Ok(())
    }

    /// Items whose lifetime ran out become bounces. Returns how many.
    pub async fn expire(&self) -> Result<usize> {
        self.expire_at(now()).await
    }

    /// [`Relay::expire`] as if the clock said `t` (Unix seconds). Content
    /// ids older than [`SEEN_LIFETIMES`] lifetimes are forgotten too, so
    /// the seen-set does not grow for ever.
    pub async fn expire_at(&self, t: i64) -> Result<usize> {
        let horizon = self.config.lifetime_ms / 1000 * SEEN_LIFETIMES;
        let forgotten = self
            .store
            .items_seen_prune(t.saturating_sub(i64::try_from(horizon).unwrap_or(i64::MAX)))
            .await?;
        if forgotten > 0 {
            tracing::info!(
                items = forgotten,
                "forgot content ids older than {SEEN_LIFETIMES} lifetimes"
            );
        }
        // Bundles left on a stick that never came back: whatever they
        // carried has expired here by now.
        self.store
            .folder_bundles_prune(
                t.saturating_sub(i64::try_from(self.config.lifetime_ms / 1000).unwrap_or(i64::MAX)),
            )
            .await?;
        // Half-received link items nobody resumed within a lifetime.
        let stale = self.store.partial_prune(
            t.saturating_sub(i64::try_from(self.config.lifetime_ms / 1000).unwrap_or(i64::MAX)),
        );
        if stale > 0 {
            tracing::info!(
                items = stale,
                "removed half-received link items not resumed within a lifetime"
            );
        }
        let rows = self.store.outbox_live().await?;
        let mut expired = Vec::new();
        let mut bounces = Vec::new();
        let _guard = self.store.blob_guard().await;
        for r in rows {
            if self.age_now(&r, t) < self.lifetime(&r) {
                continue;
            }
            let days = self.lifetime(&r) / (24 * 3600 * 1000);
            let failures: Vec<Failure> = r
                .recipients()
                .into_iter()
                .map(|rcpt| Failure {
                    recipient: rcpt,
                    status: "5.4.7".into(),
                    diagnostic: match r.state.as_str() {
                        "no-route" => format!("no route to its domain appeared within {days} days"),
                        _ => format!("no carrier took it on within {days} days"),
                    },
                })
                .collect();
            let head = header_section(&self.store.blob_read(&r.blob_hash).await?).to_vec();
            if let Some(b) = self.bounce_for(&r.mail_from, &failures, &head).await? {
                bounces.push(b);
            }
            expired.push(r.id);
        }
        if expired.is_empty() {
            return Ok(0);
        }
        self.store.outbox_expire(&expired, &bounces).await?;
        drop(_guard);
        self.route_pending().await?;
        Ok(expired.len())
    }
}

/// Counts the bytes written through it.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_ignore_recipient_order_and_duplicates() {
        let a = item_id(
            "x@a.example",
            &["b@b.example".into(), "c@b.example".into()],
            "00",
        );
        let b = item_id(
            "x@a.example",
            &[
                "c@b.example".into(),
                "b@b.example".into(),
                "c@b.example".into(),
            ],
            "00",
        );
        assert_eq!(a, b);
        assert_ne!(a, item_id("", &["b@b.example".into()], "00"));
        assert_eq!(unhex(&a).map(|b| hex(&b)), Some(a));
    }

    #[test]
    fn header_section_stops_at_the_blank_line() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_section(b"A: 1\n\nbody"), b"A: 1\n");
        assert_eq!(header_section(b"A: 1"), b"A: 1");
    }

    #[tokio::test]
    async fn a_tool_that_quits_before_reading_is_reported_by_its_own_words() {
        // 4 MiB cannot fit in a pipe: the write meets the closed end.
        let input = vec![b'x'; 4 << 20];
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "echo unknown node >&2; exit 3"]);
        let e = run_tool(cmd, "sh", "a shell", "sh quit", &input)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sh quit failed") && e.contains("unknown node"),
            "{e}"
        );

        // A tool that takes its input and answers while reading.
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "cat"]);
        let out = run_tool(cmd, "sh", "a shell", "cat", &input).await.unwrap();
        assert_eq!(out.len(), input.len());

        // Exit 0 without reading everything is not success.
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "exit 0"]);
        let e = run_tool(cmd, "sh", "a shell", "exit", &input)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("Broken pipe"), "{e}");
    }
}
