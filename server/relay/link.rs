//! The live link: two nodes sync over TCP while a connection lasts (a
//! café's Wi-Fi, a hub in reach, a Yggdrasil address).
//!
//! ```text
//! dialler → "CAIRNLNK" | version u8            (clear; also the Noise prologue)
//! frames, both ways:  u16 BE length | Noise message
//! handshake:          Noise_IK_25519_ChaChaPoly_BLAKE2s  → e, es, s, ss   ← e, ee, se
//! transport:          each frame's plaintext is one postcard(Msg)
//! ```
//!
//! Noise IK authenticates both node keys: the dialler knows the peer's key
//! from its card, and the answering side accepts only keys of its peers.
//! Transport nonces are the frame counters of each direction, so frames
//! cannot be dropped, replayed or reordered unnoticed.
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

use super::bundle::{ContentId, Item, NodeKey};
use super::node::fingerprint;
use super::{Arrived, Relay, RelayError, header_section, item_id, unhex};
use crate::domain::hex;
use crate::store::SyncCounts;
use crate::store::relay::{CustodyRow, PeerRow};
use crate::tasks::Tasks;
use serde::{Deserialize, Serialize};
use snow::StatelessTransportState;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub const MAGIC: &[u8; 8] = b"CAIRNLNK";
pub const VERSION: u8 = 1;
/// The Noise protocol of every link.
pub const NOISE: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
const NOISE_MAX: usize = 65535;
/// Message bytes per data frame, leaving room for the frame's envelope.
const DATA_CHUNK: usize = 60 << 10;
/// Ids per inventory message (41 bytes each, well inside a frame).
const INVENTORY_PIECE: usize = 1000;
/// Most ids one side may offer or want in one sync; more waits for the next.
pub const MAX_INVENTORY: usize = 100_000;
/// Limits on the envelope of one item.
const MAX_RCPTS: usize = 1000;
const MAX_ADDRESS: usize = 512;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A link with no frame for this long is taken as lost.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// A side with nothing to say sends a ping this often, so a slow transfer
/// the other way does not look like a lost link.
pub const KEEPALIVE: Duration = Duration::from_secs(20);
/// Links answered at once; more wait for a free slot.
pub const MAX_SESSIONS: usize = 16;
/// Links answered at once from one address: a peer needs one, so a few
/// silent connections from one client cannot take the slots (16 of them
/// delayed a real peer by the 10-s handshake time).
pub const MAX_SESSIONS_PER_ADDRESS: u32 = 2;

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
        "the other side speaks link protocol version {0}, this node {VERSION}: update cairn on the older node"
    )]
    Version(u8),
    #[error(
        "the secure handshake failed: the other side is not the node whose card this hub has, or sent garbage"
    )]
    Handshake,
    #[error(
        "the other node closed the connection during the handshake: it may not know this node yet (add this hub's node card there with `cairn peer add`)"
    )]
    HandshakeRefused,
    #[error(
        "node {0} is not a peer of this hub: add its node card with `cairn peer add CARD` first"
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

/// An item offered: its content id and message size.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Offered {
    id: ContentId,
    size: u64,
}

/// An item wanted, from byte `from` of its message on.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wanted {
    id: ContentId,
    from: u64,
}

/// An item's envelope; its message follows in `Data` frames from `from`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Start {
    id: ContentId,
    mail_from: String,
    rcpts: Vec<String>,
    age_ms: u64,
    lifetime_ms: u64,
    hops: u8,
    size: u64,
    from: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Offer {
        items: Vec<Offered>,
        acks: Vec<ContentId>,
        more: bool,
    },
    Want {
        items: Vec<Wanted>,
        more: bool,
    },
    Acks(Vec<ContentId>),
    Start(Start),
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The sender no longer has an item it offered.
    Gone(ContentId),
    Ping,
    Done,
    /// The sender stops the sync, saying why.
    Refuse(String),
    /// An item named a key the receiver does not hold: not taken; it goes
    /// again in full at the next sync. Only with [`ExchangeOptions::keyrefs`].
    Unresolved(ContentId),
}

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
    /// Messages travel in [`keyref`](super::keyref)'s wire form: Autocrypt
    /// keys the peer holds go by reference (both sides must say so).
    pub keyrefs: bool,
}

impl Default for ExchangeOptions {
    fn default() -> ExchangeOptions {
        ExchangeOptions {
            data_chunk: DATA_CHUNK,
            max_item: None,
            close_wait: HANDSHAKE_TIMEOUT,
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

fn params() -> snow::params::NoiseParams {
    NOISE.parse().expect("the link's Noise pattern parses")
}

/// What the dialler sends first, in clear; the Noise prologue.
const PROLOGUE: &[u8; 9] = b"CAIRNLNK\x01";

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> LinkResult<bool> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    r.read_exact(buf).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            LinkError::Closed
        } else {
            e.into()
        }
    })?;
    Ok(true)
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(frame.len()).expect("a Noise message fits a u16");
    let mut out = Vec::with_capacity(frame.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
    w.write_all(&out).await
}

/// A channel's two ways out, control first so acknowledgements never wait
/// behind item data; `None` once both are closed.
struct Outgoing {
    control: mpsc::UnboundedReceiver<Msg>,
    data: mpsc::Receiver<Msg>,
    control_open: bool,
    data_open: bool,
}

impl Outgoing {
    fn new(control: mpsc::UnboundedReceiver<Msg>, data: mpsc::Receiver<Msg>) -> Outgoing {
        Outgoing {
            control,
            data,
            control_open: true,
            data_open: true,
        }
    }

    /// The next message to send, or a `Ping` after `keepalive` of quiet.
    async fn next(&mut self, keepalive: Option<Duration>) -> Option<Msg> {
        while self.control_open || self.data_open {
            tokio::select! {
                biased;
                m = self.control.recv(), if self.control_open => match m {
                    Some(m) => return Some(m),
                    None => self.control_open = false,
                },
                m = self.data.recv(), if self.data_open => match m {
                    Some(m) => return Some(m),
                    None => self.data_open = false,
                },
                _ = tokio::time::sleep(keepalive.unwrap_or(Duration::MAX)), if keepalive.is_some() => {
                    return Some(Msg::Ping);
                }
            }
        }
        None
    }
}

/// The encrypted channel after the handshake: incoming messages, and two
/// ways out — control messages (never blocking, so acknowledgements always
/// get through) and item data (bounded, so a large item streams).
struct Channel {
    incoming: mpsc::Receiver<LinkResult<Msg>>,
    control: mpsc::UnboundedSender<Msg>,
    data: mpsc::Sender<Msg>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
    /// How long closing waits for the last messages to go out.
    close_wait: Duration,
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Channel {
    fn open<S>(stream: S, noise: StatelessTransportState) -> Channel
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let noise = Arc::new(noise);
        let (mut rd, mut wr) = tokio::io::split(stream);
        let (in_tx, incoming) = mpsc::channel(4);
        let (control, control_rx) = mpsc::unbounded_channel::<Msg>();
        let (data, data_rx) = mpsc::channel::<Msg>(4);
        let n = noise.clone();
        let reader = tokio::spawn(async move {
            let mut nonce = 0u64;
            let mut frame = Vec::new();
            let mut plain = vec![0u8; NOISE_MAX];
            loop {
                let got = match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut rd, &mut frame))
                    .await
                {
                    Err(_) => Err(LinkError::Timeout(IDLE_TIMEOUT)),
                    Ok(Ok(false)) => Err(LinkError::Closed),
                    Ok(Ok(true)) => n
                        .read_message(nonce, &frame, &mut plain)
                        .map_err(|_| {
                            LinkError::Protocol(
                                "a frame failed authentication (corrupted or tampered with)".into(),
                            )
                        })
                        .and_then(|len| {
                            postcard::from_bytes::<Msg>(&plain[..len]).map_err(|e| {
                                LinkError::Protocol(format!("a frame does not decode: {e}"))
                            })
                        }),
                    Ok(Err(e)) => Err(e),
                };
                nonce += 1;
                let stop = got.is_err();
                if let Ok(Msg::Ping) = got {
                    continue;
                }
                if in_tx.send(got).await.is_err() || stop {
                    return;
                }
            }
        });
        let writer = tokio::spawn(async move {
            let mut nonce = 0u64;
            let mut frame = vec![0u8; NOISE_MAX];
            let mut outgoing = Outgoing::new(control_rx, data_rx);
            while let Some(msg) = outgoing.next(Some(KEEPALIVE)).await {
                let plain = postcard::to_allocvec(&msg).expect("messages serialise");
                let Ok(len) = noise.write_message(nonce, &plain, &mut frame) else {
                    tracing::error!(len = plain.len(), "a link message does not fit a frame");
                    return;
                };
                nonce += 1;
                if write_frame(&mut wr, &frame[..len]).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        Channel {
            incoming,
            control,
            data,
            reader,
            writer,
            close_wait: HANDSHAKE_TIMEOUT,
        }
    }

    /// A channel over a carrier that moves whole records reliably and in
    /// order (the radio's session layer): each record is one postcard(Msg).
    /// Closing `out` tells the carrier this side has nothing more to say.
    fn over_records(
        out: mpsc::Sender<Vec<u8>>,
        mut records: mpsc::Receiver<Vec<u8>>,
        close_wait: Duration,
    ) -> Channel {
        let (in_tx, incoming) = mpsc::channel(4);
        let (control, control_rx) = mpsc::unbounded_channel::<Msg>();
        let (data, data_rx) = mpsc::channel::<Msg>(1);
        let reader = tokio::spawn(async move {
            loop {
                let got = match records.recv().await {
                    None => Err(LinkError::Closed),
                    Some(r) => postcard::from_bytes::<Msg>(&r)
                        .map_err(|e| LinkError::Protocol(format!("a record does not decode: {e}"))),
                };
                let stop = got.is_err();
                if in_tx.send(got).await.is_err() || stop {
                    return;
                }
            }
        });
        let writer = tokio::spawn(async move {
            let mut outgoing = Outgoing::new(control_rx, data_rx);
            // The radio's session keeps its own watch on silence: no pings.
            while let Some(msg) = outgoing.next(None).await {
                let record = postcard::to_allocvec(&msg).expect("messages serialise");
                if out.send(record).await.is_err() {
                    return;
                }
            }
        });
        Channel {
            incoming,
            control,
            data,
            reader,
            writer,
            close_wait,
        }
    }

    /// Let everything queued go out (the last acknowledgements, `Done`),
    /// then close the connection.
    async fn close(mut self) {
        let (control, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.control, control));
        let (data, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.data, data));
        let _ = tokio::time::timeout(self.close_wait, &mut self.writer).await;
    }

    async fn recv(&mut self) -> LinkResult<Msg> {
        match self.incoming.recv().await {
            Some(Ok(Msg::Refuse(why))) => Err(LinkError::Refused(why)),
            Some(r) => r,
            None => Err(LinkError::Closed),
        }
    }

    fn send(&self, m: Msg) -> LinkResult<()> {
        self.control.send(m).map_err(|_| LinkError::Closed)
    }
}

/// Dial `peer` at the first of its addresses that answers.
async fn connect(peer: &PeerRow) -> LinkResult<TcpStream> {
    let addrs = peer.address_list();
    if addrs.is_empty() {
        return Err(LinkError::NoAddress(peer.name.clone()));
    }
    let mut last = String::new();
    for a in &addrs {
        let resolved: Vec<SocketAddr> = match tokio::net::lookup_host(a.as_str()).await {
            Ok(r) => r.collect(),
            Err(e) => {
                last = format!("{a}: {e}");
                continue;
            }
        };
        for sa in resolved {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(sa)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => last = format!("{sa}: {e}"),
                Err(_) => last = format!("{sa}: no answer within {CONNECT_TIMEOUT:?}"),
            }
        }
    }
    Err(LinkError::Unreachable {
        peer: peer.name.clone(),
        addrs: addrs.join(", "),
        error: last,
    })
}

/// The dialling side of the handshake, to the node with `key`.
async fn handshake_dial<S>(relay: &Relay, mut stream: S, key: &NodeKey) -> LinkResult<Channel>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let work = async {
        let mut hs = snow::Builder::new(params())
            .local_private_key(&relay.identity().private)
            .and_then(|b| b.remote_public_key(key))
            .and_then(|b| b.prologue(PROLOGUE))
            .and_then(|b| b.build_initiator())
            .map_err(|_| LinkError::Handshake)?;
        let mut buf = vec![0u8; NOISE_MAX];
        let n = hs
            .write_message(&[], &mut buf)
            .map_err(|_| LinkError::Handshake)?;
        let mut first = PROLOGUE.to_vec();
        first.extend_from_slice(&(n as u16).to_be_bytes());
        first.extend_from_slice(&buf[..n]);
        stream.write_all(&first).await?;
        let mut frame = Vec::new();
        match read_frame(&mut stream, &mut frame).await {
            Ok(true) => {}
            Ok(false) | Err(LinkError::Closed) => return Err(LinkError::HandshakeRefused),
            Err(LinkError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(LinkError::HandshakeRefused);
            }
            Err(e) => return Err(e),
        }
        hs.read_message(&frame, &mut buf)
            .map_err(|_| LinkError::Handshake)?;
        hs.into_stateless_transport_mode()
            .map_err(|_| LinkError::Handshake)
    };
    let noise = tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .map_err(|_| LinkError::Timeout(HANDSHAKE_TIMEOUT))??;
    Ok(Channel::open(stream, noise))
}

/// The answering side of the handshake: who is calling, if a peer.
async fn handshake_answer<S>(relay: &Relay, mut stream: S) -> LinkResult<(PeerRow, Channel)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let work = async {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                LinkError::NotALink
            } else {
                e.into()
            }
        })?;
        if &head[..8] != MAGIC {
            return Err(LinkError::NotALink);
        }
        if head[8] != VERSION {
            return Err(LinkError::Version(head[8]));
        }
        let mut hs = snow::Builder::new(params())
            .local_private_key(&relay.identity().private)
            .and_then(|b| b.prologue(PROLOGUE))
            .and_then(|b| b.build_responder())
            .map_err(|_| LinkError::Handshake)?;
        let mut frame = Vec::new();
        if !read_frame(&mut stream, &mut frame).await? {
            return Err(LinkError::Closed);
        }
        let mut buf = vec![0u8; NOISE_MAX];
        hs.read_message(&frame, &mut buf)
            .map_err(|_| LinkError::Handshake)?;
        let key: NodeKey = hs
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or(LinkError::Handshake)?;
        let Some(peer) = relay
            .store()
            .peer_by_key(&key)
            .await
            .map_err(RelayError::from)?
        else {
            return Err(LinkError::UnknownPeer(fingerprint(&key)));
        };
        let n = hs
            .write_message(&[], &mut buf)
            .map_err(|_| LinkError::Handshake)?;
        write_frame(&mut stream, &buf[..n]).await?;
        let noise = hs
            .into_stateless_transport_mode()
            .map_err(|_| LinkError::Handshake)?;
        Ok((peer, noise))
    };
    let (peer, noise) = tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .map_err(|_| LinkError::Timeout(HANDSHAKE_TIMEOUT))??;
    Ok((peer, Channel::open(stream, noise)))
}

/// The name of an item's partial body from `peer`.
/// Wire-form copies have their own name: the bytes differ.
fn partial_name(peer: &PeerRow, id: &ContentId, keyrefs: bool) -> String {
    let form = if keyrefs { "-k" } else { "" };
    format!("link-{}-{}{form}", peer.id, hex(id))
}

/// What a message may grow by in wire form (its list of keys).
fn wire_slack(keyrefs: bool) -> u64 {
    if keyrefs {
        super::keyref::MAX_PREFIX as u64
    } else {
        0
    }
}

fn check_start(s: &Start, max_size: u64) -> Result<(), String> {
    if s.size > max_size {
        return Err(format!(
            "an item of {} bytes is larger than the {max_size} allowed",
            s.size
        ));
    }
    if s.rcpts.is_empty() || s.rcpts.len() > MAX_RCPTS {
        return Err(format!("an item has {} recipients", s.rcpts.len()));
    }
    if s.mail_from.len() > MAX_ADDRESS || s.rcpts.iter().any(|r| r.len() > MAX_ADDRESS) {
        return Err("an item's envelope has an address too long".into());
    }
    if s.from > s.size {
        return Err("an item starts past its end".into());
    }
    Ok(())
}

/// The item being received.
struct Incoming {
    start: Start,
    spool: crate::store::Spool,
}

/// One sync over an open channel with `peer`, both sides alike.
async fn exchange(
    relay: &Relay,
    peer: &PeerRow,
    mut ch: Channel,
    progress: &watch::Sender<LinkProgress>,
    options: &ExchangeOptions,
) -> LinkResult<()> {
    let r = exchange_steps(relay, peer, &mut ch, progress, options).await;
    if let Err(LinkError::Relay(e)) = &r {
        // Our own trouble (a full disk, say): tell the other side why.
        let _ = ch.send(Msg::Refuse(format!("{}: {e}", relay.config.hub_name)));
    }
    // Let the last acknowledgements, `Done` or the refusal go out.
    ch.close().await;
    r
}

async fn exchange_steps(
    relay: &Relay,
    peer: &PeerRow,
    ch: &mut Channel,
    progress: &watch::Sender<LinkProgress>,
    options: &ExchangeOptions,
) -> LinkResult<()> {
    let store = relay.store();
    relay.route_pending().await?;
    relay.expire().await?;
    progress.send_modify(|p| p.state = LinkState::Inventory);

    // 1. Offer what is in custody for the peer, and the acknowledgements owed.
    let rows = store
        .outbox_for_peer(peer.id)
        .await
        .map_err(RelayError::from)?;
    let mut ours: HashMap<ContentId, CustodyRow> = HashMap::new();
    let mut offered = Vec::new();
    let fits = |r: &CustodyRow| {
        options
            .max_item
            .is_none_or(|max| u64::try_from(r.size).unwrap_or(u64::MAX) <= max)
    };
    for r in rows.into_iter().filter(fits).take(MAX_INVENTORY) {
        if let Some(id) = r.item_id.as_deref().and_then(unhex) {
            offered.push(Offered {
                id,
                size: u64::try_from(r.size).unwrap_or(0),
            });
            ours.insert(id, r);
        }
    }
    let owed = store.acks_due(peer.id).await.map_err(RelayError::from)?;
    let owed_ids: Vec<ContentId> = owed.iter().filter_map(|a| unhex(a)).collect();
    let pieces = offered
        .len()
        .max(owed_ids.len())
        .div_ceil(INVENTORY_PIECE)
        .max(1);
    for i in 0..pieces {
        let slice = |v: &[ContentId]| -> Vec<ContentId> {
            v.iter()
                .skip(i * INVENTORY_PIECE)
                .take(INVENTORY_PIECE)
                .copied()
                .collect()
        };
        ch.send(Msg::Offer {
            items: offered
                .iter()
                .skip(i * INVENTORY_PIECE)
                .take(INVENTORY_PIECE)
                .cloned()
                .collect(),
            acks: slice(&owed_ids),
            more: i + 1 < pieces,
        })?;
    }

    // 2. Their offer: purge what they acknowledge, acknowledge what we
    // have, want the rest.
    let mut theirs: Vec<Offered> = Vec::new();
    let mut their_acks: Vec<String> = Vec::new();
    let mut pending_acks: Vec<String> = Vec::new();
    loop {
        match ch.recv().await? {
            Msg::Offer { items, acks, more } => {
                theirs.extend(items);
                their_acks.extend(acks.iter().map(|a| hex(a)));
                if theirs.len() > MAX_INVENTORY || their_acks.len() > MAX_INVENTORY {
                    return Err(refuse(ch, "the inventory is larger than allowed"));
                }
                if !more {
                    break;
                }
            }
            Msg::Acks(ids) => pending_acks.extend(ids.iter().map(|a| hex(a))),
            other => return Err(unexpected(ch, &other, "an offer")),
        }
    }
    their_acks.extend(pending_acks);
    if !their_acks.is_empty() {
        relay.admit(peer, Vec::new(), &their_acks).await?;
    }
    let ids: Vec<String> = theirs.iter().map(|o| hex(&o.id)).collect();
    let seen = store.items_seen(&ids).await.map_err(RelayError::from)?;
    let max_size = relay.config.max_message_size;
    let mut have = Vec::new();
    let mut wanted: Vec<Wanted> = Vec::new();
    for (o, seen) in theirs.iter().zip(seen) {
        if seen {
            have.push(o.id);
        } else if o.size > max_size {
            tracing::warn!(peer = %peer.name, size = o.size, "not taking an item larger than limits.max_message_size; it stays with the peer");
        } else if !wanted.iter().any(|w| w.id == o.id) {
            let name = partial_name(peer, &o.id, options.keyrefs);
            let mut from = store.partial_len(&name);
            if from > o.size + wire_slack(options.keyrefs) {
                store.partial_remove(&name);
                from = 0;
            }
            wanted.push(Wanted { id: o.id, from });
        }
    }
    let mut acks_sent: Vec<String> = owed.clone();
    for piece in have.chunks(INVENTORY_PIECE) {
        acks_sent.extend(piece.iter().map(|i| hex(i)));
        ch.send(Msg::Acks(piece.to_vec()))?;
    }
    let pieces = wanted.len().div_ceil(INVENTORY_PIECE).max(1);
    for i in 0..pieces {
        ch.send(Msg::Want {
            items: wanted
                .iter()
                .skip(i * INVENTORY_PIECE)
                .take(INVENTORY_PIECE)
                .cloned()
                .collect(),
            more: i + 1 < pieces,
        })?;
    }

    // 3. What they want of ours.
    let mut sends: Vec<Wanted> = Vec::new();
    loop {
        match ch.recv().await? {
            Msg::Want { items, more } => {
                sends.extend(items);
                if sends.len() > offered.len() {
                    return Err(refuse(ch, "more items wanted than offered"));
                }
                if !more {
                    break;
                }
            }
            Msg::Acks(ids) => {
                let acks: Vec<String> = ids.iter().map(|a| hex(a)).collect();
                let n = relay.admit(peer, Vec::new(), &acks).await?.acknowledged;
                progress.send_modify(|p| p.items_out += n as u64);
            }
            other => return Err(unexpected(ch, &other, "a want list")),
        }
    }
    // Send in our order (smallest first), only what was offered.
    let order: HashMap<ContentId, u64> = sends.iter().map(|w| (w.id, w.from)).collect();
    let plan: Vec<(CustodyRow, u64)> = offered
        .iter()
        .filter_map(|o| Some((ours.get(&o.id)?.clone(), *order.get(&o.id)?)))
        .collect();
    let mut awaiting: HashSet<ContentId> = plan
        .iter()
        .filter_map(|(r, _)| r.item_id.as_deref().and_then(unhex))
        .collect();
    let mut expecting: HashSet<ContentId> = wanted.iter().map(|w| w.id).collect();
    progress.send_modify(|p| {
        p.state = LinkState::Transfer;
        p.to_send = awaiting.len() as u64;
        p.to_receive = expecting.len() as u64;
    });

    // 4. Items both ways at once.
    let data = ch.data.clone();
    let sender = send_items(relay, peer, plan, data, progress, options);
    let receiver = async {
        let mut current: Option<Incoming> = None;
        let mut done_received = false;
        while !(awaiting.is_empty() && expecting.is_empty() && current.is_none()) {
            let msg = ch.recv().await?;
            match msg {
                Msg::Acks(ids) => {
                    let acks: Vec<String> = ids.iter().map(|a| hex(a)).collect();
                    let n = relay.admit(peer, Vec::new(), &acks).await?.acknowledged;
                    for id in &ids {
                        awaiting.remove(id);
                    }
                    progress.send_modify(|p| p.items_out += n as u64);
                }
                Msg::Start(s) => {
                    if current.is_some() || !expecting.contains(&s.id) {
                        return Err(refuse(
                            ch,
                            "an item that was not wanted, or one inside another",
                        ));
                    }
                    if let Err(why) = check_start(&s, max_size + wire_slack(options.keyrefs)) {
                        return Err(refuse(ch, &why));
                    }
                    let name = partial_name(peer, &s.id, options.keyrefs);
                    let have = store.partial_len(&name);
                    if have != s.from {
                        // Our partial copy changed since the want list
                        // (another sync): start it again next time.
                        store.partial_remove(&name);
                        return Err(refuse(
                            ch,
                            "an item resumed at the wrong place; it restarts at the next sync",
                        ));
                    }
                    let st = store.clone();
                    let spool = tokio::task::spawn_blocking(move || st.spool_resume(&name))
                        .await
                        .map_err(|e| LinkError::Relay(RelayError::BadItem(e.to_string())))?
                        .map_err(RelayError::from)?;
                    current = Some(Incoming { start: s, spool });
                    if let Some((done, taken)) =
                        finish_if_complete(relay, peer, &mut current, ch, options.keyrefs).await?
                    {
                        expecting.remove(&done);
                        if taken {
                            acks_sent.push(hex(&done));
                            progress.send_modify(|p| p.items_in += 1);
                        }
                    }
                }
                Msg::Data(bytes) => {
                    let Some(cur) = current.as_mut() else {
                        return Err(refuse(ch, "data outside an item"));
                    };
                    if cur.spool.size() + bytes.len() as u64 > cur.start.size {
                        return Err(refuse(ch, "an item is longer than it said"));
                    }
                    if let Err(e) = cur.spool.write(&bytes) {
                        // Most likely a full disk: the partial copy cannot
                        // grow, so it goes (and frees what it took).
                        let name = partial_name(peer, &cur.start.id, options.keyrefs);
                        drop(current.take());
                        store.partial_remove(&name);
                        return Err(RelayError::from(e).into());
                    }
                    progress.send_modify(|p| p.bytes_in += bytes.len() as u64);
                    if let Some((done, taken)) =
                        finish_if_complete(relay, peer, &mut current, ch, options.keyrefs).await?
                    {
                        expecting.remove(&done);
                        if taken {
                            acks_sent.push(hex(&done));
                            progress.send_modify(|p| p.items_in += 1);
                        }
                    }
                }
                Msg::Unresolved(id) if options.keyrefs && awaiting.remove(&id) => {
                    // It lost a key we thought it held: forget them all,
                    // and the item goes again in full next time.
                    tracing::warn!(peer = %peer.name, item = %hex(&id), "the peer does not hold a key an item named; it goes in full at the next sync");
                    store
                        .keys_held_forget(peer.id)
                        .await
                        .map_err(RelayError::from)?;
                }
                Msg::Gone(id) => {
                    if current.as_ref().is_some_and(|c| c.start.id == id) {
                        current = None;
                    }
                    expecting.remove(&id);
                }
                Msg::Done => {
                    done_received = true;
                    if !(awaiting.is_empty() && expecting.is_empty() && current.is_none()) {
                        return Err(LinkError::Protocol(
                            "it said done before the exchange was complete".into(),
                        ));
                    }
                }
                other => return Err(unexpected(ch, &other, "items")),
            }
        }
        Ok::<bool, LinkError>(done_received)
    };
    let (sent, received) = tokio::join!(sender, receiver);
    let mut done_received = match (received, sent) {
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(d), Ok(())) => d,
    };

    // 5. Both sides done.
    ch.send(Msg::Done)?;
    while !done_received {
        match ch.recv().await? {
            Msg::Done => done_received = true,
            Msg::Acks(_) => {}
            other => return Err(unexpected(ch, &other, "done")),
        }
    }
    store
        .acks_delivered(peer.id, &acks_sent)
        .await
        .map_err(RelayError::from)?;
    progress.send_modify(|p| p.state = LinkState::Done);
    Ok(())
}

/// Tell the other side why the sync stops, and return the error for here.
fn refuse(ch: &Channel, why: &str) -> LinkError {
    let _ = ch.send(Msg::Refuse(why.to_string()));
    LinkError::Protocol(why.to_string())
}

fn unexpected(ch: &Channel, got: &Msg, wanted: &str) -> LinkError {
    let name = match got {
        Msg::Offer { .. } => "an offer",
        Msg::Want { .. } => "a want list",
        Msg::Acks(_) => "acknowledgements",
        Msg::Start(_) => "an item",
        Msg::Data(_) => "item data",
        Msg::Gone(_) => "a withdrawn item",
        Msg::Ping => "a ping",
        Msg::Done => "done",
        Msg::Refuse(_) => "a refusal",
        Msg::Unresolved(_) => "an unresolved key",
    };
    refuse(ch, &format!("{name} came where {wanted} belonged"))
}

/// If the item being received is complete: check it, commit it, and
/// acknowledge it. Returns its id when it is done with, and whether it was
/// taken (not: it named a key we do not hold, and was answered
/// [`Msg::Unresolved`]).
async fn finish_if_complete(
    relay: &Relay,
    peer: &PeerRow,
    current: &mut Option<Incoming>,
    ch: &Channel,
    keyrefs: bool,
) -> LinkResult<Option<(ContentId, bool)>> {
    let complete = current
        .as_ref()
        .is_some_and(|c| c.spool.size() == c.start.size);
    if !complete {
        return Ok(None);
    }
    let Incoming { start, spool } = current.take().expect("checked above");
    let store = relay.store();
    let name = partial_name(peer, &start.id, keyrefs);
    let (spool, learned) = if keyrefs {
        match rebuild(relay, peer, &spool).await? {
            Ok(x) => x,
            Err(super::keyref::RebuildError::Form(super::keyref::KeyrefError::Unresolved)) => {
                store.partial_remove(&name);
                ch.send(Msg::Unresolved(start.id))?;
                return Ok(Some((start.id, false)));
            }
            Err(e) => {
                store.partial_remove(&name);
                return Err(refuse(
                    ch,
                    &format!("an item's wire form is unusable ({e}); it restarts at the next sync"),
                ));
            }
        }
    } else {
        (spool, Vec::new())
    };
    let id = item_id(&start.mail_from, &start.rcpts, &spool.hash());
    if unhex(&id) != Some(start.id) {
        store.partial_remove(&name);
        return Err(refuse(
            ch,
            "an item's content does not match its content id; it restarts at the next sync",
        ));
    }
    store
        .keys_learn(peer.id, &learned)
        .await
        .map_err(RelayError::from)?;
    let head = {
        let r = spool.reader().map_err(RelayError::from)?;
        let mut buf = Vec::new();
        r.take(crate::mail::bounce::MAX_RETURNED_HEADERS as u64)
            .read_to_end(&mut buf)
            .map_err(|e| partial_io(&name, e))?;
        header_section(&buf).to_vec()
    };
    let arrived = Arrived {
        item: Item {
            id: start.id,
            mail_from: start.mail_from,
            rcpts: start.rcpts,
            age_ms: start.age_ms,
            lifetime_ms: start.lifetime_ms,
            hops: start.hops,
            message: Vec::new(),
        },
        id,
        spool,
        head,
    };
    relay.admit(peer, vec![arrived], &[]).await?;
    if keyrefs {
        // The message was rebuilt into a spool of its own.
        store.partial_remove(&name);
    }
    ch.send(Msg::Acks(vec![start.id]))?;
    Ok(Some((start.id, true)))
}

fn partial_io(name: &str, source: std::io::Error) -> LinkError {
    LinkError::Relay(RelayError::Io {
        path: format!("partial item {name}"),
        source,
    })
}

/// The message of a complete wire-form item, with the keys it carried;
/// the inner result says what is wrong with the form itself.
async fn rebuild(
    relay: &Relay,
    peer: &PeerRow,
    wire: &crate::store::Spool,
) -> LinkResult<
    Result<
        (crate::store::Spool, Vec<(super::keyref::Digest, Vec<u8>)>),
        super::keyref::RebuildError,
    >,
> {
    use super::keyref::{Entry, MAX_PREFIX, RebuildError, read_entries};
    let store = relay.store();
    let mut r = wire.reader().map_err(RelayError::from)?;
    let mut prefix = Vec::new();
    (&mut r)
        .take(MAX_PREFIX as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| partial_io("(wire form)", e))?;
    let (entries, used) = match read_entries(&prefix) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e.into())),
    };
    let wanted: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Referenced { digest, .. } => Some(*digest),
            Entry::Carried { .. } => None,
        })
        .collect();
    let keys = store
        .keys_learned(peer.id, &wanted)
        .await
        .map_err(RelayError::from)?;
    // The message starts after the entries: what was read past them,
    // then the rest.
    let mut r = Read::chain(&prefix[used..], r);
    let mut message = store.spool();
    let max = relay.config.max_message_size;
    let mut write = |b: &[u8]| -> std::io::Result<()> {
        if message.size() + b.len() as u64 > max {
            return Err(std::io::Error::other(
                "the rebuilt message is larger than limits.max_message_size",
            ));
        }
        message.write(b).map_err(std::io::Error::other)
    };
    let carried = super::keyref::rebuild(&entries, &keys, &mut r, &mut write);
    drop(r);
    Ok(match carried {
        Ok(carried) => Ok((message, carried)),
        Err(RebuildError::Io(e)) => return Err(partial_io("(rebuilt)", e)),
        Err(e) => Err(e),
    })
}

/// Send the planned items in order, each from where the peer's copy ends.
async fn send_items(
    relay: &Relay,
    peer: &PeerRow,
    plan: Vec<(CustodyRow, u64)>,
    data: mpsc::Sender<Msg>,
    progress: &watch::Sender<LinkProgress>,
    options: &ExchangeOptions,
) -> LinkResult<()> {
    let t = crate::store::now();
    for (row, mut from) in plan {
        let Some(id) = row.item_id.as_deref().and_then(unhex) else {
            continue;
        };
        let path = relay.store().blob_path(&row.blob_hash);
        let size = u64::try_from(row.size).unwrap_or(0);
        // In wire form the header section is rewritten here; the rest of
        // the message follows from the file as it is.
        let form = match std::fs::File::open(&path) {
            Err(_) => None,
            Ok(f) if !options.keyrefs => Some((f, Vec::new(), 0)),
            Ok(mut f) => wire_head(relay, peer, &row, &mut f, from)
                .await?
                .map(|(head, head_len)| (f, head, head_len)),
        };
        let opened = form.and_then(|(mut f, head, head_len)| {
            let wire_size = (head.len() as u64 + size).checked_sub(head_len)?;
            if options.keyrefs && from > wire_size {
                // A copy made from another form: the peer drops it.
                from = 0;
            }
            let skip = from.saturating_sub(head.len() as u64);
            f.seek(std::io::SeekFrom::Start(head_len + skip)).ok()?;
            (from <= wire_size).then_some((head, f, wire_size))
        });
        let Some((head, file, wire_size)) = opened else {
            tracing::error!(path = %path.display(), "an outbox item's message is missing; withdrawn from this sync");
            data.send(Msg::Gone(id))
                .await
                .map_err(|_| LinkError::Closed)?;
            continue;
        };
        let start = Start {
            id,
            mail_from: row.mail_from.clone(),
            rcpts: row.recipients(),
            age_ms: relay.age_now(&row, t),
            lifetime_ms: relay.lifetime(&row),
            hops: u8::try_from(row.hops).unwrap_or(u8::MAX),
            size: wire_size,
            from,
        };
        data.send(Msg::Start(start))
            .await
            .map_err(|_| LinkError::Closed)?;
        let in_head = usize::try_from(from).unwrap_or(usize::MAX).min(head.len());
        let mut src = AsyncReadExt::chain(&head[in_head..], tokio::fs::File::from_std(file));
        let mut left = wire_size - from;
        while left > 0 {
            let mut buf = vec![0u8; options.data_chunk.min(left as usize)];
            src.read_exact(&mut buf).await.map_err(|e| RelayError::Io {
                path: path.display().to_string(),
                source: e,
            })?;
            left -= buf.len() as u64;
            let n = buf.len() as u64;
            data.send(Msg::Data(buf))
                .await
                .map_err(|_| LinkError::Closed)?;
            progress.send_modify(|p| p.bytes_out += n);
        }
    }
    Ok(())
}

/// An item's header section in wire form for `peer`, read from its
/// message `file`, and how long the header section is in the message;
/// `None` when the message cannot be read.
/// A transfer that starts records the form; one that resumes reuses it,
/// so the bytes continue where the peer's copy ends.
async fn wire_head(
    relay: &Relay,
    peer: &PeerRow,
    row: &CustodyRow,
    file: &mut std::fs::File,
    from: u64,
) -> LinkResult<Option<(Vec<u8>, u64)>> {
    let store = relay.store();
    let mut buf = Vec::new();
    if file
        .take(crate::mail::bounce::MAX_RETURNED_HEADERS as u64)
        .read_to_end(&mut buf)
        .is_err()
    {
        return Ok(None);
    }
    let head = header_section(&buf);
    let recorded = if from > 0 {
        store
            .item_form_refs(row.id)
            .await
            .map_err(RelayError::from)?
    } else {
        None
    };
    let w = match &recorded {
        Some(refs) => super::keyref::write_head(head, &|d| refs.contains(d)),
        None => {
            let held = store.keys_held(peer.id).await.map_err(RelayError::from)?;
            let w = super::keyref::write_head(head, &|d| held.contains(d));
            store
                .item_form_set(row.id, &w.refs, &w.marks)
                .await
                .map_err(RelayError::from)?;
            w
        }
    };
    Ok(Some((w.bytes, head.len() as u64)))
}

/// Record a sync's end in the history and the log.
async fn record(
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

/// Sync with `peer` now over a live link: dial it, exchange, record the
/// run in the sync history. `progress` follows it as it goes.
pub async fn sync_peer(
    relay: &Relay,
    peer: &PeerRow,
    progress: &watch::Sender<LinkProgress>,
) -> LinkResult<SyncCounts> {
    sync_with(relay, peer, None::<TcpStream>, progress).await
}

/// [`sync_peer`] over a stream already open to the peer (a test's pipe,
/// a tunnel), or dialling when `stream` is `None`.
pub async fn sync_with<S>(
    relay: &Relay,
    peer: &PeerRow,
    stream: Option<S>,
    progress: &watch::Sender<LinkProgress>,
) -> LinkResult<SyncCounts>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(key) = peer.key() else {
        return Err(RelayError::Classic(peer.name.clone()).into());
    };
    progress.send_modify(|p| p.state = LinkState::Connecting);
    let run = relay
        .store()
        .sync_started(Some(peer.id), &peer.name, "link (dialled)")
        .await
        .map_err(RelayError::from)?;
    let result = async {
        let ch = match stream {
            Some(s) => handshake_dial(relay, s, &key).await?,
            None => handshake_dial(relay, connect(peer).await?, &key).await?,
        };
        exchange(relay, peer, ch, progress, &ExchangeOptions::default()).await
    }
    .await;
    record(relay, Some(run), &peer.name, &result, progress).await;
    result.map(|()| progress.borrow().counts())
}

/// Answer one incoming link on any stream (TCP, or a test's pipe).
pub async fn answer<S>(relay: &Relay, stream: S, remote: &str) -> LinkResult<SyncCounts>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (peer, ch) = match handshake_answer(relay, stream).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(remote, error = %e, "refused a link");
            return Err(e);
        }
    };
    let (progress, _) = watch::channel(LinkProgress::default());
    let run = relay
        .store()
        .sync_started(Some(peer.id), &peer.name, "link (answered)")
        .await
        .map_err(RelayError::from)?;
    let result = exchange(relay, &peer, ch, &progress, &ExchangeOptions::default()).await;
    record(relay, Some(run), &peer.name, &result, &progress).await;
    result.map(|()| progress.borrow().counts())
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

/// Answer links on `listener` until `stop`: at most [`MAX_SESSIONS`] at
/// once, [`MAX_SESSIONS_PER_ADDRESS`] from one address (the link speaks
/// second, so one turned away is closed without a word; its hub tries
/// again at the next sync).
pub async fn serve(listener: TcpListener, relay: Relay, stop: CancellationToken, tracker: Tasks) {
    let admission = crate::admission::Admission::new(MAX_SESSIONS, MAX_SESSIONS_PER_ADDRESS);
    let spawner = tracker.clone();
    let refusals = crate::admission::Refusals::SILENT;
    crate::admission::accept_loop(
        "link",
        listener,
        Some(admission),
        refusals,
        stop.clone(),
        tracker,
        move |stream, remote, admitted| {
            let relay = relay.clone();
            let stop = stop.clone();
            let remote = remote.to_string();
            spawner.spawn(async move {
                tokio::select! {
                    _ = answer(&relay, stream, &remote) => {}
                    _ = stop.cancelled() => {}
                }
                drop(admitted);
            });
        },
    )
    .await
}
