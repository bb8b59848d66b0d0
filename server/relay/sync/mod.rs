//! The sync protocol, the same over every carrier that moves records
//! reliably and in order (the live link, the radio), and on both sides.
//!
//! The exchange is the same on both sides. Each offers the content ids in
//! custody for the other and the acknowledgements it owes; each answers
//! with the ids it still wants (and where its partial copy of each ends)
//! and acknowledges at once the ones it already has. Then items flow both
//! ways at the same time, smallest first, each acknowledged the moment it
//! is committed. A dropped connection loses nothing: committed items are
//! acknowledged again at the next inventory instead of being sent again,
//! and a half-received item stays in `partial/` and continues where it
//! stopped. When a side has everything it wanted and every item it sent is
//! acknowledged it says `Done`; the sync is over when both have.

mod channel;
mod exchange;
mod msg;

pub(crate) use channel::{Channel, Outgoing};
pub use exchange::MAX_INVENTORY;
pub(crate) use exchange::exchange;
pub(crate) use msg::Msg;

use crate::relay::{Relay, RelayError};
use crate::store::SyncCounts;
use crate::store::relay::PeerRow;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How much of a message's start is read to find its header section (the
/// part whose keys are abbreviated on the air): 16 KiB holds the headers
/// of any mail Delta Chat writes; a longer header section is read no
/// further.
pub(crate) const HEAD_READ: usize = 16 << 10;

/// Message bytes per data frame, leaving room for the frame's envelope.
const DATA_CHUNK: usize = 60 << 10;
/// How long closing waits for the last messages to leave, by default.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    Relay(#[from] RelayError),
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the other side went quiet for {0:?}; the connection is taken as lost")]
    Timeout(Duration),
    #[error("the connection closed before the sync finished; the next sync continues")]
    Closed,
    #[error(
        "the other side does not speak the cairn link protocol: check the address and port (listen.link on that node)"
    )]
    NotALink,
    #[error(
        "the other side speaks link protocol version {0}, this node {v}: update cairn on the older node", v = crate::relay::link::VERSION
    )]
    Version(u8),
    #[error(
        "the secure handshake failed: the other side is not the node whose card this hub has, or sent garbage"
    )]
    Handshake,
    #[error(
        "the other node closed the connection during the handshake: it may not know this node yet (add this hub's node card there: on that hub's Peers page, or with `cairn peer add`)"
    )]
    HandshakeRefused,
    #[error(
        "node {0} is not a peer of this hub: add its node card first (on the Peers page, or with `cairn peer add CARD`)"
    )]
    UnknownPeer(String),
    #[error("the other side broke the link protocol: {0}")]
    Protocol(String),
    #[error("the other side stopped the sync: {0}")]
    Refused(String),
    #[error(
        "{0} has no address for live links: add one to its card (addrs=host:port) or use another carrier"
    )]
    NoAddress(String),
    #[error("could not reach {peer} at {addrs}: {error}")]
    Unreachable {
        peer: String,
        addrs: String,
        error: String,
    },
}

pub type LinkResult<T> = std::result::Result<T, LinkError>;

/// How an exchange fits its carrier.
#[derive(Debug, Clone)]
pub struct ExchangeOptions {
    /// Bytes of a message per `Data` record: also how much a resumed item
    /// can lose, since a partial copy grows by whole records.
    pub data_chunk: usize,
    /// Items larger than this are not offered (they wait for another
    /// carrier), if set.
    pub max_item: Option<u64>,
    /// How long closing waits for the last messages to leave.
    pub close_wait: Duration,
    /// Messages travel in [`keyref`](crate::relay::keyref)'s wire form: Autocrypt
    /// keys the peer holds go by reference (both sides must say so).
    pub keyrefs: bool,
}

impl Default for ExchangeOptions {
    fn default() -> ExchangeOptions {
        ExchangeOptions {
            data_chunk: DATA_CHUNK,
            max_item: None,
            close_wait: CLOSE_WAIT,
            keyrefs: false,
        }
    }
}

/// Where a sync is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    #[default]
    Waiting,
    Connecting,
    Inventory,
    Transfer,
    Done,
    Failed,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Waiting => "waiting",
            LinkState::Connecting => "connecting",
            LinkState::Inventory => "comparing inventories",
            LinkState::Transfer => "transferring",
            LinkState::Done => "done",
            LinkState::Failed => "failed",
        }
    }
}

/// Live progress of one sync, for a progress bar or the Sync now page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinkProgress {
    pub state: LinkState,
    /// Items agreed to go each way in this sync.
    pub to_send: u64,
    pub to_receive: u64,
    pub items_out: u64,
    pub items_in: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub error: Option<String>,
}

impl LinkProgress {
    pub fn counts(&self) -> SyncCounts {
        SyncCounts {
            items_out: self.items_out,
            items_in: self.items_in,
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
        }
    }
}

/// Record a sync's end in the history and the log.
pub(crate) async fn record(
    relay: &Relay,
    run: Option<i64>,
    peer: &str,
    result: &LinkResult<()>,
    progress: &watch::Sender<LinkProgress>,
) {
    let error = result.as_ref().err().map(|e| e.to_string());
    progress.send_modify(|p| {
        if let Some(e) = &error {
            p.state = LinkState::Failed;
            p.error = Some(e.clone());
        }
    });
    let counts = progress.borrow().counts();
    match &error {
        None => tracing::info!(
            peer,
            items_out = counts.items_out,
            items_in = counts.items_in,
            bytes_out = counts.bytes_out,
            bytes_in = counts.bytes_in,
            "link sync finished"
        ),
        Some(e) => tracing::warn!(peer, error = %e, "link sync failed"),
    }
    if let Some(id) = run
        && let Err(e) = relay
            .store()
            .sync_finished(id, &counts, error.as_deref())
            .await
    {
        tracing::warn!(error = %e, "could not record the sync in the history");
    }
}

/// One sync with `peer` over a carrier that moves records reliably and in
/// order (the radio), recorded in the history as `carrier`. Returns when
/// both sides are done; dropping `out` tells the carrier this side is.
pub async fn exchange_records(
    relay: &Relay,
    peer: &PeerRow,
    out: mpsc::Sender<Vec<u8>>,
    records: mpsc::Receiver<Vec<u8>>,
    progress: &watch::Sender<LinkProgress>,
    options: &ExchangeOptions,
    carrier: &str,
) -> LinkResult<SyncCounts> {
    let run = relay
        .store()
        .sync_started(Some(peer.id), &peer.name, carrier)
        .await
        .map_err(RelayError::from)?;
    let ch = Channel::over_records(out, records, options.close_wait);
    let result = exchange(relay, peer, ch, progress, options).await;
    record(relay, Some(run), &peer.name, &result, progress).await;
    result.map(|()| progress.borrow().counts())
}
