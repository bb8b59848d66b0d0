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
pub mod carrier;
pub mod classic;
mod custody;
pub mod folder;
pub mod fspl;
pub mod gateway;
mod intake;
pub mod keyref;
pub mod link;
pub mod nncp;
pub mod node;
mod peers;
pub mod publish;
pub mod radio;
pub mod schedule;
pub mod sync;
pub mod uplink;
pub(crate) mod varint;

use crate::domain::PeerId;
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
        "this bundle comes from node {from}, which is not a peer of this node: add its node card first (on the Peers page, or with `cairn peer add CARD`)"
    )]
    UnknownSender { from: String },
    #[error("no peer named {0}: see the Peers page or `cairn peer list`")]
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

impl From<carrier::CarrierError> for RelayError {
    fn from(e: carrier::CarrierError) -> RelayError {
        RelayError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

pub type Result<T, E = RelayError> = std::result::Result<T, E>;

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
    /// Where the gateway keeps its DKIM keys (`DATA/dkim`).
    pub dkim_dir: std::path::PathBuf,
    /// Whether this hub has a radio (`radio.port` is set): lora uplinks
    /// can be added, from the pages or the command line, whether the hub's
    /// radio service runs in this process or not.
    pub radio: bool,
    /// Free disk space kept (`limits.min_free_disk`): below it, what comes
    /// waits where it is.
    pub min_free_disk: u64,
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
    pub peer_id: PeerId,
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
    carriers: std::sync::Arc<dyn carrier::Carriers>,
}

impl Relay {
    /// `carriers` makes the folder and spool carriers uplinks use.
    pub fn new(
        store: Store,
        identity: Identity,
        config: RelayConfig,
        carriers: std::sync::Arc<dyn carrier::Carriers>,
    ) -> Self {
        Relay {
            store,
            identity,
            config,
            carriers,
        }
    }

    /// The disk keeps its reserve (`limits.min_free_disk`); if not, what
    /// comes waits where it is (a bundle in its folder, an item with the
    /// peer) and the error says so.
    pub fn room(&self) -> Result<()> {
        match self.store.short_of_disk(self.config.min_free_disk, 0) {
            Some(free) => Err(RelayError::Io {
                path: "the hub's data disk".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!(
                        "only {} MiB free and {} MiB are kept free: make room, then try again",
                        free >> 20,
                        self.config.min_free_disk >> 20
                    ),
                ),
            }),
            None => Ok(()),
        }
    }

    /// The bundle carriers this node was given.
    pub fn carriers(&self) -> &dyn carrier::Carriers {
        self.carriers.as_ref()
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
}
